//! Which Graph requests carry a user's changes, and their bodies.
//!
//! Every change of a user that the plan lets go together is one step, and a step is one
//! `$batch` (one request when it needs only one part): the properties are one `PATCH
//! users/{id}` (display name, usage location), licenses one `assignLicense` (added and
//! removed at once), each group membership one `members/$ref`, the VRP one policy
//! `assign`/`unassign`, the number one `assignNumber`/`unassignNumber`. Inside the batch,
//! `assignLicense` waits (`dependsOn`) for a `PATCH` that sets the usage location (Graph
//! refuses licenses without one) and `assignNumber` for `assignLicense` (Teams Phone must
//! be licensed first); the rest run independently.

use super::client::Part;
use super::VRP_POLICY_TYPE;
use crate::connector::{group_steps, Batching, ConnectorError, Step};
use crate::model::{Attr, AttrSet, AttrValue};
use crate::plan::model::{AttrChange, UserPlan};
use reqwest::Method;
use serde_json::json;

/// Everything Graph can change of a user goes in one step (a batch), as the plan allows.
pub const BATCHING: Batching = Batching {
    together: super::PROFILE.attrs,
    with_create: AttrSet::EMPTY,
    apart: never_apart,
};

fn never_apart(_: &AttrChange, _: &AttrChange) -> bool {
    false
}

fn endpoint(c: &AttrChange) -> &'static str {
    match c.attr {
        Attr::DisplayName | Attr::Country => "PATCH users",
        Attr::Licenses => "assignLicense",
        Attr::Groups => "members/$ref",
        Attr::Vrp if c.after.is_some() => "policy assign",
        Attr::Vrp => "policy unassign",
        Attr::Number if c.after.is_some() => "assignNumber",
        Attr::Number => "unassignNumber",
        _ => "unsupported",
    }
}

pub fn group(user: &UserPlan) -> Vec<Step> {
    group_steps(user, &BATCHING)
        .into_iter()
        .map(|ops| {
            let mut names: Vec<&str> = Vec::new();
            for &i in &ops {
                for c in user.ops[i].op.changes() {
                    let e = endpoint(c);
                    if !names.contains(&e) {
                        names.push(e);
                    }
                }
            }
            let label = if names.len() == 1 {
                names[0].to_string()
            } else {
                format!("$batch: {}", names.join(" + "))
            };
            Step { ops, label }
        })
        .collect()
}

/// What [`parts`] needs beyond the plan: the tenant's facts it was resolved against.
pub struct Known<'a> {
    pub user_id: &'a str,
    /// The policy id of the VRP being assigned.
    pub policy_id: Option<String>,
    /// The number to claim and its `numberType`.
    pub claim: Option<(String, String)>,
    /// The number to release and its `numberType`.
    pub release: Option<(String, String)>,
    /// The licenses and groups the user has now (the plan's `before`, or read).
    pub licenses_now: Vec<String>,
    pub groups_now: Vec<String>,
    pub location_id: Option<&'a str>,
}

fn list(v: &Option<AttrValue>) -> Vec<String> {
    match v {
        Some(AttrValue::List(l)) => l.clone(),
        _ => Vec::new(),
    }
}

fn has(list: &[String], x: &str) -> bool {
    list.iter().any(|y| y.eq_ignore_ascii_case(x))
}

/// The parts of a step, in an order where a part only depends on earlier ones.
pub fn parts(changes: &[&AttrChange], k: &Known) -> Result<Vec<Part>, ConnectorError> {
    let id = k.user_id;
    let mut out: Vec<Part> = Vec::new();
    let mut patch = serde_json::Map::new();
    for c in changes {
        match (c.attr, &c.after) {
            (Attr::DisplayName, Some(AttrValue::Text(t))) => {
                patch.insert("displayName".into(), json!(t));
            }
            (Attr::Country, Some(AttrValue::Country(cc))) => {
                patch.insert("usageLocation".into(), json!(cc.as_str()));
            }
            (Attr::Country, None) => {
                patch.insert("usageLocation".into(), serde_json::Value::Null);
            }
            _ => {}
        }
    }
    let mut licensed_after = None;
    let patch_sets_location = patch.contains_key("usageLocation");
    if !patch.is_empty() {
        out.push(Part {
            method: Method::PATCH,
            url: format!("users/{id}"),
            body: Some(serde_json::Value::Object(patch)),
            depends_on: None,
        });
    }
    // The number last: its assignment waits for the licenses.
    let ordered = changes
        .iter()
        .filter(|c| c.attr != Attr::Number)
        .chain(changes.iter().filter(|c| c.attr == Attr::Number));
    for c in ordered {
        match c.attr {
            Attr::Licenses => {
                let want = list(&c.after);
                let add: Vec<_> = want
                    .iter()
                    .filter(|s| !has(&k.licenses_now, s))
                    .map(|s| json!({"skuId": s, "disabledPlans": []}))
                    .collect();
                let remove: Vec<&String> =
                    k.licenses_now.iter().filter(|s| !has(&want, s)).collect();
                if add.is_empty() && remove.is_empty() {
                    continue;
                }
                licensed_after = Some(out.len());
                out.push(Part {
                    method: Method::POST,
                    url: format!("users/{id}/assignLicense"),
                    body: Some(json!({"addLicenses": add, "removeLicenses": remove})),
                    depends_on: patch_sets_location.then_some(0),
                });
            }
            Attr::Groups => {
                let want = list(&c.after);
                for g in want.iter().filter(|g| !has(&k.groups_now, g)) {
                    out.push(Part {
                        method: Method::POST,
                        url: format!("groups/{g}/members/$ref"),
                        body: Some(json!({
                            "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{id}")
                        })),
                        depends_on: None,
                    });
                }
                for g in k.groups_now.iter().filter(|g| !has(&want, g)) {
                    out.push(Part {
                        method: Method::DELETE,
                        url: format!("groups/{g}/members/{id}/$ref"),
                        body: None,
                        depends_on: None,
                    });
                }
            }
            Attr::Vrp => {
                let body = match &k.policy_id {
                    Some(p) if c.after.is_some() => json!({"value": [{
                        "userId": id, "policyType": VRP_POLICY_TYPE, "policyId": p
                    }]}),
                    _ => json!({"value": [{"userId": id, "policyType": VRP_POLICY_TYPE}]}),
                };
                let action = if c.after.is_some() {
                    "assign"
                } else {
                    "unassign"
                };
                out.push(Part {
                    method: Method::POST,
                    url: format!("admin/teams/policy/userAssignments/{action}"),
                    body: Some(body),
                    depends_on: None,
                });
            }
            Attr::Number => {
                let (action, body) = match (&c.after, &k.claim, &k.release) {
                    (Some(_), Some((n, t)), _) => {
                        let mut b = json!({
                            "telephoneNumber": n,
                            "assignmentTargetId": id,
                            "numberType": t,
                            "assignmentCategory": "primary",
                        });
                        if let Some(l) = k.location_id {
                            b["locationId"] = json!(l);
                        }
                        ("assignNumber", b)
                    }
                    (None, _, Some((n, t))) => (
                        "unassignNumber",
                        json!({"telephoneNumber": n, "numberType": t}),
                    ),
                    (None, _, None) => continue,
                    (Some(_), None, _) => {
                        return Err(ConnectorError::Config(
                            "the number to assign was not resolved".into(),
                        ))
                    }
                };
                out.push(Part {
                    method: Method::POST,
                    url: format!(
                        "admin/teams/telephoneNumberManagement/numberAssignments/{action}"
                    ),
                    body: Some(body),
                    depends_on: if action == "assignNumber" {
                        licensed_after
                    } else {
                        None
                    },
                });
            }
            Attr::DisplayName | Attr::Country => {}
            other => {
                return Err(ConnectorError::Unsupported(format!(
                    "Graph does not carry {other}"
                )))
            }
        }
    }
    Ok(out)
}
