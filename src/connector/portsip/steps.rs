//! Grouping a user's planned operations into PortSIP requests, and building each one.
//!
//! | operation(s) in one step | request | body |
//! | --- | --- | --- |
//! | `create` (+ the `set_number` that follows it) | `POST users` | `name` (UPN local part), `email` (UPN), `display_name`, `extension_number` (the create's `extension`), `enabled: true`, random `password` and `extension_password`, and `office_phone_number` + `outbound_caller_ids` when a number is set |
//! | `set_properties` (display name) and/or `set_number` | `POST users/{id}` | `display_name`; `office_phone_number` and `outbound_caller_ids` (`""` and `[]` release the number) |
//!
//! The number is the office phone and the user's one outbound caller ID: teamsync owns
//! the caller-ID list of the users it numbers (an update replaces it with `[number]`).
//!
//! Which operations share a request is the shared grouping's
//! ([`crate::connector::group_steps`]); PortSIP declares ([`batching`]) that a request
//! carries the display name and the number, on a create too.
//!
//! Passwords: a created user gets a random 24-character password and extension
//! password, drawn from the OS-seeded generator, put in the request body and dropped with
//! it. They are never stored, logged, shown or written to the history; the user sets their
//! own through PortSIP's reset flow.

use super::wire::{CreateBody, ModifyBody};
use crate::connector::{group_steps, Batching, ConnectorError, Step};
use crate::model::{Attr, AttrValue, E164};
use crate::plan::model::{Operation, UserPlan};
use rand::Rng;

/// Length of the generated passwords.
pub const PASSWORD_LEN: usize = 24;

/// Characters of generated passwords: letters and digits, so no PBX or SIP client
/// mangles them.
const PASSWORD_CHARS: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";

pub fn random_password() -> String {
    let mut rng = rand::rng();
    (0..PASSWORD_LEN)
        .map(|_| PASSWORD_CHARS[rng.random_range(0..PASSWORD_CHARS.len())] as char)
        .collect()
}

/// What one PortSIP request can carry: every attribute PortSIP has (display name and
/// number), also on the create, except the extension, which only a create sets (its
/// own value).
pub fn batching() -> Batching {
    let carried = super::PROFILE.attrs.without(Attr::Extension);
    Batching {
        together: carried,
        with_create: carried,
        ..Batching::ONE_BY_ONE
    }
}

/// The fewest steps the rules above allow, in plan order.
pub fn group(user: &UserPlan) -> Vec<Step> {
    group_steps(user, &batching())
        .into_iter()
        .map(|ops| Step {
            label: label(user, &ops),
            ops,
        })
        .collect()
}

fn label(user: &UserPlan, ops: &[usize]) -> String {
    match ops.first().and_then(|&i| user.ops.get(i)).map(|p| &p.op) {
        Some(Operation::Create { .. }) => "POST users".into(),
        _ => "POST users/{id}".into(),
    }
}

/// Why PortSIP cannot send an op, if it cannot.
fn unsupported(op: &Operation) -> Option<String> {
    match op {
        Operation::Delete => Some("delete users".into()),
        Operation::Create { changes } => changes
            .iter()
            .find(|c| !super::PROFILE.carries(c.attr))
            .map(|c| format!("set {}", c.attr)),
        Operation::Set { changes } => changes
            .iter()
            .find(|c| !batching().together.contains(c.attr))
            .map(|c| format!("set {}", c.attr)),
    }
}

/// One request to send.
pub struct Call {
    pub path: Vec<String>,
    pub body: serde_json::Value,
    pub creates: bool,
}

fn number_fields(n: &Option<E164>) -> (String, Vec<String>) {
    match n {
        Some(n) => (n.number().to_string(), vec![n.number().to_string()]),
        None => (String::new(), vec![]),
    }
}

/// Builds the step's request. Refuses, without sending, what PortSIP cannot carry.
pub fn build(user: &UserPlan, user_id: Option<&str>, step: &Step) -> Result<Call, ConnectorError> {
    let ops: Vec<&Operation> = step
        .ops
        .iter()
        .map(|&i| {
            user.ops.get(i).map(|p| &p.op).ok_or_else(|| {
                ConnectorError::Config(format!("{}: step names a missing operation", user.upn))
            })
        })
        .collect::<Result<_, _>>()?;
    if let Some(what) = ops.iter().find_map(|o| unsupported(o)) {
        return Err(ConnectorError::Unsupported(format!(
            "{}: PortSIP cannot {what} (no such endpoint in its users API)",
            user.upn
        )));
    }
    let mut display_name: Option<String> = None;
    let mut number: Option<Option<E164>> = None;
    let mut extension: Option<&str> = None;
    let mut create = false;
    for op in &ops {
        create |= matches!(op, Operation::Create { .. });
        for c in op.changes() {
            match (c.attr, &c.after) {
                (Attr::DisplayName, Some(v)) => display_name = Some(v.to_string()),
                (Attr::Number, v) => {
                    number = Some(v.as_ref().and_then(AttrValue::as_number).cloned());
                }
                (Attr::Extension, Some(v)) => extension = v.as_text(),
                _ => {}
            }
        }
    }
    if create {
        // A create planned before operations carried their values has the extension only
        // in the desired row.
        let ext = extension
            .or(user.desired.extension.as_set().map(String::as_str))
            .ok_or_else(|| {
                ConnectorError::Config(format!(
                    "{}: a PortSIP user needs an extension number to be created",
                    user.upn
                ))
            })?;
        let (office, caller_ids) = match &number {
            Some(n) => {
                let (o, c) = number_fields(n);
                (Some(o), Some(c))
            }
            None => (None, None),
        };
        let password = random_password();
        let extension_password = random_password();
        let body = CreateBody {
            name: user.upn.local_part(),
            password: &password,
            extension_number: ext,
            extension_password: &extension_password,
            email: user.upn.as_str(),
            display_name: display_name.as_deref().unwrap_or_default(),
            enabled: true,
            office_phone_number: office,
            outbound_caller_ids: caller_ids,
        };
        let body = serde_json::to_value(&body)
            .map_err(|e| ConnectorError::Config(format!("{}: {e}", user.upn)))?;
        return Ok(Call {
            path: vec!["users".into()],
            body,
            creates: true,
        });
    }
    let id = user_id.filter(|s| !s.is_empty()).ok_or_else(|| {
        ConnectorError::Config(format!("{}: no PortSIP user id to update", user.upn))
    })?;
    let mut body = ModifyBody {
        display_name,
        ..ModifyBody::default()
    };
    if let Some(n) = &number {
        let (o, c) = number_fields(n);
        body.office_phone_number = Some(o);
        body.outbound_caller_ids = Some(c);
    }
    let body = serde_json::to_value(&body)
        .map_err(|e| ConnectorError::Config(format!("{}: {e}", user.upn)))?;
    Ok(Call {
        path: vec!["users".into(), id.to_string()],
        body,
        creates: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Field, Upn, UserSpec};
    use crate::plan::model::{OpRef, PlannedOp, UserAction};

    fn plan(ops: Vec<PlannedOp>, ext: Option<&str>) -> UserPlan {
        let upn = Upn::parse("jane.doe@example.com").unwrap();
        let mut desired = UserSpec::new(upn.clone());
        if let Some(e) = ext {
            desired.extension = Field::Set(e.into());
        }
        UserPlan {
            upn,
            user_id: None,
            action: UserAction::Create,
            desired,
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
    fn create_carries_the_number_and_random_passwords() {
        let u = plan(
            vec![
                op(Operation::create_user("Jane Doe".into(), None)),
                op(Operation::set_number(num("+3225405200"))),
            ],
            Some("101"),
        );
        let steps = group(&u);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].label, "POST users");
        let a = build(&u, None, &steps[0]).unwrap();
        let b = build(&u, None, &steps[0]).unwrap();
        assert!(a.creates);
        assert_eq!(a.path, vec!["users"]);
        let body = &a.body;
        assert_eq!(body["name"], "jane.doe");
        assert_eq!(body["email"], "jane.doe@example.com");
        assert_eq!(body["extension_number"], "101");
        assert_eq!(body["office_phone_number"], "+3225405200");
        assert_eq!(
            body["outbound_caller_ids"],
            serde_json::json!(["+3225405200"])
        );
        let pw = body["password"].as_str().unwrap();
        assert_eq!(pw.len(), PASSWORD_LEN);
        assert_ne!(
            pw,
            b.body["password"].as_str().unwrap(),
            "a fresh password each time"
        );
        assert_ne!(pw, body["extension_password"].as_str().unwrap());
    }

    /// The planner puts the extension in the create itself; the desired row is only the
    /// fallback for plans saved before operations carried values.
    #[test]
    fn the_extension_comes_from_the_create() {
        let create = Operation::create([
            (Attr::DisplayName, AttrValue::Text("Jane".into())),
            (Attr::Extension, AttrValue::Text("0107".into())),
        ]);
        let u = plan(vec![op(create)], Some("999"));
        let c = build(&u, None, &group(&u)[0]).unwrap();
        assert_eq!(c.body["extension_number"], "0107");
        assert_eq!(c.body["display_name"], "Jane");
    }

    #[test]
    fn create_without_extension_is_refused_before_sending() {
        let u = plan(vec![op(Operation::create_user("Jane".into(), None))], None);
        let s = group(&u);
        assert!(matches!(
            build(&u, None, &s[0]),
            Err(ConnectorError::Config(m)) if m.contains("extension")
        ));
    }

    #[test]
    fn a_waiting_number_claim_gets_its_own_step_and_release_clears_both_fields() {
        let mut claim = op(Operation::set_number(num("+3225405201")));
        claim.after = vec![OpRef {
            upn: Upn::parse("other@example.com").unwrap(),
            index: 0,
        }];
        let mut u = plan(
            vec![op(Operation::set_properties(Some("J".into()), None)), claim],
            None,
        );
        u.user_id = Some("100000000001".into());
        let steps = group(&u);
        assert_eq!(steps.len(), 2);
        assert_eq!(steps[1].label, "POST users/{id}");
        let c = build(&u, u.user_id.as_deref(), &steps[0]).unwrap();
        assert_eq!(c.path, vec!["users", "100000000001"]);
        assert_eq!(c.body, serde_json::json!({"display_name": "J"}));

        let u = plan(vec![op(Operation::set_number(None))], None);
        let s = group(&u);
        let c = build(&u, Some("9"), &s[0]).unwrap();
        assert_eq!(
            c.body,
            serde_json::json!({"office_phone_number": "", "outbound_caller_ids": []})
        );
    }

    #[test]
    fn unsupported_operations_are_refused_without_sending() {
        let u = plan(vec![op(Operation::Delete)], None);
        let s = group(&u);
        assert!(matches!(
            build(&u, Some("9"), &s[0]),
            Err(ConnectorError::Unsupported(_))
        ));
    }
}
