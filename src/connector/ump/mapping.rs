//! UMP wire ↔ teamsync model, and which request carries which planned change.
//!
//! | model | UMP attribute | read from | written as |
//! | --- | --- | --- | --- |
//! | `upn` | `SipAddress` without `sip:` | list, detail | (the user's key, never written) |
//! | `displayName` | `WebName` (list) / `DisplayName` (detail) | list, detail | `DisplayName` |
//! | `country` | `UsageLocation` | list | `UsageLocation` |
//! | `number` | `LineURI` (`tel:+…`, trimmed) | list, detail | `LineURI` `tel:+…` + `EnterpriseVoiceEnabled: true`; release: `LineURI: null` + `EnterpriseVoiceEnabled: false` |
//! | `vrp` | `VoicePolicy` | detail | `VoicePolicy`, `null` to remove |
//!
//! Every change of one user that may share a request goes into one
//! `PUT proxy/endpoint/{sip}/script` (the document: "if multiple values must be updated at
//! once, they should be separated by a comma"): UMP declares that one script carries every
//! attribute it writes ([`batching`]), and the shared grouping
//! ([`crate::connector::group_steps`]) ends a request after an op another user waits for
//! (`awaited`) and starts one at an op that waits (`after`) or whose attribute the body
//! already carries (a release then a claim of a number).

use super::wire;
use crate::connector::{group_steps, Batching, ConnectorError, Step};
use crate::model::{Attr, AttrValue, Country, NumberRange, TenantUser, Upn, UserDetails, E164};
use crate::plan::model::{AttrChange, Operation, UserPlan};
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// At most this many free numbers are listed per range: `auto` takes the lowest ones, and
/// a range of millions must not fill memory.
pub const MAX_FREE_PER_RANGE: usize = 10_000;

/// `sip:Alice@Contoso.com` → `alice@contoso.com`.
pub fn upn_of_sip(sip: &str) -> Result<Upn, String> {
    let s = sip.trim();
    let bare = match s.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("sip:") => &s[4..],
        _ => s,
    };
    Upn::parse(bare).map_err(|e| format!("SipAddress {sip:?}: {e}"))
}

/// The path key of a user: `sip:` plus the address, as the document's URLs show it.
pub fn sip_of(id_or_upn: &str) -> String {
    let s = id_or_upn.trim();
    match s.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("sip:") => s.to_string(),
        _ => format!("sip:{s}"),
    }
}

/// A `LineURI` as E.164; empty means none (the detail example has a leading space).
pub fn number_of(line_uri: Option<&str>) -> Result<Option<E164>, String> {
    match line_uri.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => E164::parse_canonical(s).map(Some),
    }
}

fn country_of(loc: Option<&str>) -> Option<Country> {
    loc.map(str::trim)
        .filter(|s| !s.is_empty())
        .and_then(|s| Country::parse(s).ok())
}

/// A LineURI that is not E.164 (an on-premises extension like `tel:1234`) is no number to
/// us: the user stays in the snapshot, without one, and a warning names it.
fn number_or_warn(upn: &Upn, line_uri: Option<&str>) -> Option<E164> {
    number_of(line_uri).unwrap_or_else(|e| {
        tracing::warn!(%upn, "LineURI ignored: {e}");
        None
    })
}

/// A list entry; `Err` names what is wrong with it (the caller skips it with a warning).
pub fn user_from_list(u: &wire::ListUser) -> Result<TenantUser, String> {
    let sip = u.sip_address.as_deref().unwrap_or_default();
    let upn = upn_of_sip(sip)?;
    let number = number_or_warn(&upn, u.line_uri.as_deref());
    Ok(TenantUser {
        display_name: u.web_name.clone().unwrap_or_default().trim().to_string(),
        country: country_of(u.usage_location.as_deref()),
        voice_enabled: number.is_some(),
        number,
        ..TenantUser::new(sip_of(sip), upn)
    })
}

/// A detail read (its country is `None` when the server leaves `UsageLocation` out).
pub fn user_from_detail(d: &wire::DetailUser) -> Result<TenantUser, String> {
    let sip = d.sip_address.as_deref().unwrap_or_default();
    let upn = upn_of_sip(sip)?;
    let number = number_or_warn(&upn, d.line_uri.as_deref());
    Ok(TenantUser {
        display_name: d
            .display_name
            .clone()
            .unwrap_or_default()
            .trim()
            .to_string(),
        country: country_of(d.usage_location.as_deref()),
        voice_enabled: d.enterprise_voice_enabled.unwrap_or(number.is_some()),
        number,
        details: Some(UserDetails {
            groups: vec![],
            vrp: d
                .voice_policy
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        }),
        ..TenantUser::new(sip_of(sip), upn)
    })
}

/// `tel:+311111120` … `tel:+311111140` minus the numbers users hold, ascending, at most
/// [`MAX_FREE_PER_RANGE`]. A range without bounds (the document's `MsPhoneSystem` row has
/// empty ones) or with bounds of different lengths lists no number.
pub fn range_free(r: &wire::NumberRangeRow, held: &HashSet<E164>) -> NumberRange {
    let bound = |s: &Option<String>| -> Option<(usize, u64)> {
        let n = number_of(s.as_deref()).ok()??;
        if n.ext().is_some() {
            return None;
        }
        let digits = &n.number()[1..];
        Some((digits.len(), digits.parse().ok()?))
    };
    let mut free = Vec::new();
    if let (Some((la, a)), Some((lb, b))) = (bound(&r.start), bound(&r.end)) {
        if la == lb && a <= b {
            for v in a..=b {
                if free.len() >= MAX_FREE_PER_RANGE {
                    break;
                }
                let Ok(n) = E164::parse_canonical(&format!("+{v:0la$}")) else {
                    continue;
                };
                if !held.contains(&n) {
                    free.push(n);
                }
            }
        }
    }
    NumberRange {
        name: r.identity.clone(),
        numbers_free: free,
    }
}

/// The script attributes a change writes, with their values, in body order; `None` for
/// an attribute UMP has no script attribute for.
fn writes(c: &AttrChange) -> Option<Vec<(&'static str, Value)>> {
    Some(match (c.attr, &c.after) {
        (Attr::DisplayName, v) => vec![("DisplayName", json!(v.as_ref().map(|v| v.to_string())))],
        (Attr::Country, v) => vec![("UsageLocation", json!(v.as_ref().map(|v| v.to_string())))],
        (Attr::Number, v) => {
            let n = v.as_ref().and_then(AttrValue::as_number);
            vec![
                ("LineURI", json!(n.map(E164::to_tel_uri))),
                ("EnterpriseVoiceEnabled", json!(n.is_some())),
            ]
        }
        (Attr::Vrp, v) => vec![("VoicePolicy", json!(v.as_ref().map(|v| v.to_string())))],
        _ => return None,
    })
}

fn attributes(op: &Operation) -> Vec<&'static str> {
    op.changes()
        .iter()
        .filter_map(writes)
        .flatten()
        .map(|(k, _)| k)
        .collect()
}

fn unsupported(op: &Operation) -> Option<String> {
    match op {
        Operation::Create { .. } => {
            Some("creating users (the document has no create endpoint)".into())
        }
        Operation::Delete => Some("deleting users (the document has no delete endpoint)".into()),
        Operation::Set { changes } => changes
            .iter()
            .find(|c| writes(c).is_none())
            .map(|c| c.attr.name().to_string()),
    }
}

/// What one `PUT …/script` can carry: every attribute UMP writes (see the table above).
pub fn batching() -> Batching {
    Batching {
        together: super::PROFILE.attrs,
        ..Batching::ONE_BY_ONE
    }
}

/// The fewest `PUT …/script` requests the rules in the module doc allow.
pub fn steps(user: &UserPlan) -> Vec<Step> {
    group_steps(user, &batching())
        .into_iter()
        .map(|ops| {
            let attrs: Vec<&str> = ops
                .iter()
                .flat_map(|&j| attributes(&user.ops[j].op))
                .collect();
            Step {
                label: format!("PUT proxy/endpoint/{{sip}}/script [{}]", attrs.join(", ")),
                ops,
            }
        })
        .collect()
}

/// The script body of one step; `Unsupported` for an op UMP cannot carry (the planner
/// refuses those first, through the profile).
pub fn script_body(user: &UserPlan, step: &Step) -> Result<Value, ConnectorError> {
    let mut m = Map::new();
    for &i in &step.ops {
        let op = &user
            .ops
            .get(i)
            .ok_or_else(|| {
                ConnectorError::Config(format!("step names op {i}, which the plan lacks"))
            })?
            .op;
        if let Some(what) = unsupported(op) {
            return Err(ConnectorError::Unsupported(format!("UMP 365: {what}")));
        }
        for (k, v) in op.changes().iter().filter_map(writes).flatten() {
            m.insert(k.into(), v);
        }
    }
    Ok(Value::Object(m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserSpec;
    use crate::plan::model::{OpRef, PlannedOp, UserAction};

    fn plan(ops: Vec<PlannedOp>) -> UserPlan {
        let upn = Upn::parse("a@x.com").unwrap();
        UserPlan {
            upn: upn.clone(),
            user_id: Some("sip:a@x.com".into()),
            action: UserAction::Update,
            desired: UserSpec::new(upn),
            origin: None,
            changes: vec![],
            ops,
            before: Default::default(),
        }
    }
    fn op(op: Operation) -> PlannedOp {
        PlannedOp {
            op,
            after: vec![],
            awaited: false,
        }
    }
    fn num(s: &str) -> Option<E164> {
        Some(E164::parse_canonical(s).unwrap())
    }

    #[test]
    fn one_script_request_per_user_unless_a_number_waits() {
        let up = plan(vec![
            op(Operation::set_properties(
                Some("A".into()),
                Some(Country::parse("NL").unwrap()),
            )),
            op(Operation::set_number(num("+31205550101"))),
            op(Operation::set_vrp(Some("National".into()))),
        ]);
        let st = steps(&up);
        assert_eq!(st.len(), 1);
        assert_eq!(
            st[0].label,
            "PUT proxy/endpoint/{sip}/script [DisplayName, UsageLocation, LineURI, EnterpriseVoiceEnabled, VoicePolicy]"
        );
        assert_eq!(
            script_body(&up, &st[0]).unwrap(),
            json!({"DisplayName": "A", "UsageLocation": "NL", "LineURI": "tel:+31205550101",
                   "EnterpriseVoiceEnabled": true, "VoicePolicy": "National"})
        );

        // A swap: release (awaited by another user), then claim after someone else's release.
        let mut release = op(Operation::set_number(None));
        release.awaited = true;
        let mut claim = op(Operation::set_number(num("+31205550102")));
        claim.after = vec![OpRef {
            upn: Upn::parse("b@x.com").unwrap(),
            index: 0,
        }];
        let up = plan(vec![release, claim, op(Operation::set_vrp(None))]);
        let st = steps(&up);
        let ops: Vec<Vec<usize>> = st.iter().map(|s| s.ops.clone()).collect();
        assert_eq!(ops, vec![vec![0], vec![1, 2]]);
        assert_eq!(
            script_body(&up, &st[0]).unwrap(),
            json!({"LineURI": null, "EnterpriseVoiceEnabled": false})
        );
        assert_eq!(
            script_body(&up, &st[1]).unwrap()["VoicePolicy"],
            Value::Null
        );
    }

    #[test]
    fn ops_ump_cannot_carry_are_refused_not_dropped() {
        let up = plan(vec![op(Operation::set_groups(vec![]))]);
        let s = steps(&up);
        assert!(matches!(
            script_body(&up, &s[0]),
            Err(ConnectorError::Unsupported(m)) if m.contains("groups")
        ));
    }

    #[test]
    fn sip_upn_and_line_uri_readings() {
        assert_eq!(
            upn_of_sip("sip:Walter.VanSchaik@AudioCodes.com")
                .unwrap()
                .as_str(),
            "walter.vanschaik@audiocodes.com"
        );
        assert!(upn_of_sip("walter").is_err());
        assert_eq!(sip_of("a@x.com"), "sip:a@x.com");
        assert_eq!(sip_of("SIP:a@x.com"), "SIP:a@x.com");
        assert_eq!(
            number_of(Some(" tel:+31365461212")).unwrap(),
            num("+31365461212")
        );
        assert_eq!(number_of(Some("")).unwrap(), None);
        assert!(number_of(Some("tel:12")).is_err());
    }

    #[test]
    fn a_line_uri_that_is_no_e164_number_keeps_the_user_without_one() {
        let u = wire::ListUser {
            sip_address: Some("sip:ext@x.com".into()),
            web_name: Some("Ext".into()),
            line_uri: Some("tel:1234".into()),
            usage_location: Some("NL".into()),
        };
        let t = user_from_list(&u).unwrap();
        assert_eq!((t.upn.as_str(), t.number), ("ext@x.com", None));
    }

    #[test]
    fn free_numbers_of_a_range() {
        let row = |s: &str, e: &str| wire::NumberRangeRow {
            identity: "R".into(),
            numbers_available: None,
            start: Some(s.into()),
            end: Some(e.into()),
        };
        let held: HashSet<E164> = [num("+311111121").unwrap()].into_iter().collect();
        let r = range_free(&row("tel:+311111120", "tel:+311111123"), &held);
        let got: Vec<String> = r.numbers_free.iter().map(|n| n.to_string()).collect();
        assert_eq!(got, ["+311111120", "+311111122", "+311111123"]);
        assert!(range_free(&row("", ""), &held).numbers_free.is_empty());
        assert!(range_free(&row("tel:+3111", "tel:+311111123"), &held)
            .numbers_free
            .is_empty());
        let big = range_free(&row("tel:+31200000000", "tel:+31299999999"), &held);
        assert_eq!(big.numbers_free.len(), MAX_FREE_PER_RANGE);
    }
}
