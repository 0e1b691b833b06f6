//! UMP wire → teamsync model: what a list or detail answer means, and the free numbers of
//! a number range. (What is written, and how, is `steps`.)
//!
//! | model | UMP attribute | read from |
//! | --- | --- | --- |
//! | `upn` | `SipAddress` without `sip:` | list, detail |
//! | `displayName` | `WebName` (list) / `DisplayName` (detail) | list, detail |
//! | `country` | `UsageLocation` | list (and detail, when present) |
//! | `number` | `LineURI` (`tel:+…`, trimmed) | list, detail |
//! | `vrp` | `VoicePolicy` | detail |

use super::wire;
use crate::model::{Country, NumberRange, TenantUser, Upn, UserDetails, E164};
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
pub fn range_free<S: std::hash::BuildHasher>(
    r: &wire::NumberRangeRow,
    held: &HashSet<E164, S>,
) -> NumberRange {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Option<E164> {
        Some(E164::parse_canonical(s).unwrap())
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
        let got: Vec<String> = r
            .numbers_free
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        assert_eq!(got, ["+311111120", "+311111122", "+311111123"]);
        assert!(range_free(&row("", ""), &held).numbers_free.is_empty());
        assert!(range_free(&row("tel:+3111", "tel:+311111123"), &held)
            .numbers_free
            .is_empty());
        let big = range_free(&row("tel:+31200000000", "tel:+31299999999"), &held);
        assert_eq!(big.numbers_free.len(), MAX_FREE_PER_RANGE);
    }
}
