//! Which request carries which planned change of a UMP user, and its body.
//!
//! | model | written as |
//! | --- | --- |
//! | `displayName` | never (not in the document's table of updatable attributes; see the module doc) |
//! | `country` | `UsageLocation` |
//! | `number` | `LineURI` `tel:+…` + `EnterpriseVoiceEnabled: true`; release: `LineURI: null` + `EnterpriseVoiceEnabled: false` |
//! | `vrp` | `VoicePolicy`, `null` to remove |
//!
//! Every change of one user that may share a request goes into one
//! `PUT proxy/endpoint/{sip}/script` (the document: "if multiple values must be updated at
//! once, they should be separated by a comma"): UMP declares that one script carries every
//! attribute it writes ([`batching`]), and the shared grouping
//! ([`crate::connector::group_steps`]) ends a request after an op another user waits for
//! (`awaited`) and starts one at an op that waits (`after`) or whose attribute the body
//! already carries (a release then a claim of a number).

use crate::connector::{group_steps, Batching, ConnectorError, Step};
use crate::model::{Attr, AttrSet, AttrValue, E164};
use crate::plan::model::{AttrChange, Operation, UserPlan};
use serde_json::{json, Map, Value};

/// The script attributes a change writes, with their values, in body order; `None` for
/// an attribute UMP has no script attribute for.
fn writes(c: &AttrChange) -> Option<Vec<(&'static str, Value)>> {
    Some(match (c.attr, &c.after) {
        (Attr::Country, v) => vec![(
            "UsageLocation",
            json!(v.as_ref().map(std::string::ToString::to_string)),
        )],
        (Attr::Number, v) => {
            let n = v.as_ref().and_then(AttrValue::as_number);
            vec![
                ("LineURI", json!(n.map(E164::to_tel_uri))),
                ("EnterpriseVoiceEnabled", json!(n.is_some())),
            ]
        }
        (Attr::Vrp, v) => vec![(
            "VoicePolicy",
            json!(v.as_ref().map(std::string::ToString::to_string)),
        )],
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
        together: AttrSet::of(&[Attr::Country, Attr::Number, Attr::Vrp]),
        ..Batching::ONE_BY_ONE
    }
}

/// The fewest `PUT …/script` requests the rules in the module doc allow.
pub fn group(user: &UserPlan) -> Vec<Step> {
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
    use crate::model::{Country, Upn, UserSpec};
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
                None,
                Some(Country::parse("NL").unwrap()),
            )),
            op(Operation::set_number(num("+31205550101"))),
            op(Operation::set_vrp(Some("National".into()))),
        ]);
        let st = group(&up);
        assert_eq!(st.len(), 1);
        assert_eq!(
            st[0].label,
            "PUT proxy/endpoint/{sip}/script [UsageLocation, LineURI, EnterpriseVoiceEnabled, VoicePolicy]"
        );
        assert_eq!(
            script_body(&up, &st[0]).unwrap(),
            json!({"UsageLocation": "NL", "LineURI": "tel:+31205550101",
                   "EnterpriseVoiceEnabled": true, "VoicePolicy": "National"})
        );
        // The display name is never written: a plan that asks for it is refused here too.
        let up = plan(vec![op(Operation::set_properties(Some("A".into()), None))]);
        let st = group(&up);
        assert!(matches!(
            script_body(&up, &st[0]),
            Err(ConnectorError::Unsupported(m)) if m.contains("displayName")
        ));

        // A swap: release (awaited by another user), then claim after someone else's release.
        let mut release = op(Operation::set_number(None));
        release.awaited = true;
        let mut claim = op(Operation::set_number(num("+31205550102")));
        claim.after = vec![OpRef {
            upn: Upn::parse("b@x.com").unwrap(),
            index: 0,
        }];
        let up = plan(vec![release, claim, op(Operation::set_vrp(None))]);
        let st = group(&up);
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
        let s = group(&up);
        assert!(matches!(
            script_body(&up, &s[0]),
            Err(ConnectorError::Unsupported(m)) if m.contains("groups")
        ));
    }
}
