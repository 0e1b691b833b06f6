//! What a plan takes away, spelled out: licenses by SKU with the users losing them, group
//! memberships, numbers released, users disabled and deleted.
//!
//! Why: a template assigned to existing staff once removed ENTERPRISEPACK (E3 → E1) from
//! about twenty users and dropped their Sales/Support groups, and the only summary was
//! "40 to update". Removals are what hurts people the next morning, so the plan summary and
//! the `apply` confirmation name them ("removes ENTERPRISEPACK from 22 users; 31 group
//! memberships; releases 4 numbers"), and removing licenses from more users than a
//! threshold is refused without `--allow-license-removals N`, as mirror mode's removals
//! are without `--allow-removals N`.
//!
//! Counted from the plan's field changes (what a reviewer reads), not its operations, so
//! the summary says exactly what the plan's lines say.

use super::model::{Plan, UserAction};
use crate::model::Snapshot;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// The removals of a plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removals {
    /// License (as the plan names it) → users losing it.
    pub licenses: BTreeMap<String, usize>,
    /// Users losing at least one license.
    pub users_losing_licenses: usize,
    /// Group memberships removed, over all users.
    pub group_memberships: usize,
    /// Numbers no user holds after the plan (a number moved to another user is not
    /// released).
    pub numbers_released: usize,
    pub users_disabled: usize,
    pub users_deleted: usize,
}

fn strings(v: &Value) -> impl Iterator<Item = &str> {
    v.as_str().into_iter()
}

/// Counts what `plan` removes.
pub fn removals(plan: &Plan) -> Removals {
    let mut r = Removals::default();
    let mut released = BTreeSet::new();
    let mut claimed = BTreeSet::new();
    for u in plan.users.iter().filter(|u| !u.ops.is_empty()) {
        match u.action {
            UserAction::Disable => r.users_disabled += 1,
            UserAction::Delete => r.users_deleted += 1,
            _ => {}
        }
        for c in &u.changes {
            match c.field.as_str() {
                "licenses" if !c.removed.is_empty() => {
                    r.users_losing_licenses += 1;
                    for l in &c.removed {
                        *r.licenses.entry(l.clone()).or_default() += 1;
                    }
                }
                "groups" => r.group_memberships += c.removed.len(),
                "number" => {
                    released.extend(strings(&c.old).map(str::to_string));
                    claimed.extend(strings(&c.new).map(str::to_string));
                }
                _ => {}
            }
        }
    }
    r.numbers_released = released.difference(&claimed).count();
    r
}

impl Removals {
    pub fn is_empty(&self) -> bool {
        *self == Removals::default()
    }

    /// "removes ENTERPRISEPACK from 22 users, MCOEV from 1 user; 31 group memberships;
    /// releases 4 numbers; disables 2 users", or `None` when the plan removes nothing.
    pub fn describe(&self) -> Option<String> {
        use crate::human::count;
        let mut parts = Vec::new();
        if !self.licenses.is_empty() {
            let mut by_count: Vec<_> = self.licenses.iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let each: Vec<String> = by_count
                .iter()
                .map(|(sku, n)| format!("{sku} from {}", count(**n, "user")))
                .collect();
            parts.push(format!("removes {}", each.join(", ")));
        }
        if self.group_memberships > 0 {
            let g = count(self.group_memberships, "group membership");
            parts.push(if parts.is_empty() {
                format!("removes {g}")
            } else {
                g
            });
        }
        if self.numbers_released > 0 {
            parts.push(format!(
                "releases {}",
                count(self.numbers_released, "number")
            ));
        }
        if self.users_disabled > 0 {
            parts.push(format!("disables {}", count(self.users_disabled, "user")));
        }
        if self.users_deleted > 0 {
            parts.push(format!("deletes {}", count(self.users_deleted, "user")));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Users that may lose licenses without `--allow-license-removals`: 10, or 5 % of the
/// tenant's licensed users, whichever is larger (mirror mode's rule for numbers).
pub fn license_removal_threshold(snapshot: &Snapshot) -> usize {
    let licensed = snapshot
        .users
        .iter()
        .filter(|u| !u.licenses.is_empty() && u.account_type.is_none())
        .count();
    (licensed * 5 / 100).max(10)
}

/// Refuses a plan that removes licenses from more users than the threshold unless
/// `allow` (`--allow-license-removals N`) covers them; the message says what and how.
pub fn check_license_removals(
    plan: &Plan,
    snapshot: &Snapshot,
    allow: Option<usize>,
) -> Result<(), String> {
    let r = removals(plan);
    let n = r.users_losing_licenses;
    let limit = license_removal_threshold(snapshot);
    if n <= limit || allow.is_some_and(|a| a >= n) {
        return Ok(());
    }
    Err(format!(
        "the plan {}, more users losing licenses than the safety threshold of {limit} (10 or 5 % of the tenant's licensed users, whichever is larger); check the sheet and its templates, or pass --allow-license-removals {n}",
        r.describe().unwrap_or_default()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{JobKind, Upn, UserSpec};
    use crate::plan::model::{FieldChange, Operation, PlannedOp, UserPlan, PLAN_FORMAT};
    use serde_json::json;

    fn user(upn: &str, action: UserAction, changes: Vec<FieldChange>) -> UserPlan {
        let upn = Upn::parse(upn).unwrap();
        UserPlan {
            desired: UserSpec::new(upn.clone()),
            upn,
            user_id: Some("id".into()),
            action,
            origin: None,
            changes,
            ops: vec![PlannedOp {
                op: Operation::Delete,
                after: vec![],
                awaited: false,
            }],
            before: Default::default(),
        }
    }

    fn change(field: &str, old: Value, new: Value, removed: &[&str]) -> FieldChange {
        FieldChange {
            field: field.into(),
            old,
            new,
            added: vec![],
            removed: removed
                .iter()
                .map(std::string::ToString::to_string)
                .collect(),
        }
    }

    fn plan(users: Vec<UserPlan>) -> Plan {
        Plan {
            format: PLAN_FORMAT,
            tenant: "t".into(),
            backend: "fusion".into(),
            mode: Default::default(),
            kind: JobKind::MsUsers,
            sources: vec![],
            source_sha256: String::new(),
            created_on: String::new(),
            snapshot_fingerprint: String::new(),
            snapshot_requests: 0,
            users,
            warnings: vec![],
            refresh: None,
        }
    }

    #[test]
    fn removals_are_counted_by_kind() {
        let p = plan(vec![
            user(
                "a@x.com",
                UserAction::Update,
                vec![
                    change(
                        "licenses",
                        json!(["ENTERPRISEPACK", "MCOEV"]),
                        json!(["STANDARDPACK", "MCOEV"]),
                        &["ENTERPRISEPACK"],
                    ),
                    change(
                        "groups",
                        json!(["Sales", "Support"]),
                        json!([]),
                        &["Sales", "Support"],
                    ),
                ],
            ),
            user(
                "b@x.com",
                UserAction::Update,
                vec![change(
                    "licenses",
                    json!(["ENTERPRISEPACK"]),
                    json!([]),
                    &["ENTERPRISEPACK"],
                )],
            ),
            // A number moving from c to d is not released; e's is.
            user(
                "c@x.com",
                UserAction::Update,
                vec![change("number", json!("+3225405200"), json!(null), &[])],
            ),
            user(
                "d@x.com",
                UserAction::Update,
                vec![change("number", json!(null), json!("+3225405200"), &[])],
            ),
            user(
                "e@x.com",
                UserAction::Disable,
                vec![change("number", json!("+3225405201"), json!(null), &[])],
            ),
        ]);
        let r = removals(&p);
        assert_eq!(r.users_losing_licenses, 2);
        assert_eq!(r.licenses["ENTERPRISEPACK"], 2);
        assert_eq!(r.group_memberships, 2);
        assert_eq!(r.numbers_released, 1);
        assert_eq!(
            r.describe().unwrap(),
            "removes ENTERPRISEPACK from 2 users; 2 group memberships; releases 1 number; disables 1 user"
        );
        assert!(removals(&plan(vec![])).describe().is_none());
    }

    #[test]
    fn license_removals_above_the_threshold_need_an_allowance() {
        let users: Vec<UserPlan> = (0..11)
            .map(|i| {
                user(
                    &format!("u{i}@x.com"),
                    UserAction::Update,
                    vec![change(
                        "licenses",
                        json!(["ENTERPRISEPACK"]),
                        json!([]),
                        &["ENTERPRISEPACK"],
                    )],
                )
            })
            .collect();
        let p = plan(users);
        let snap = Snapshot::default();
        let e = check_license_removals(&p, &snap, None).unwrap_err();
        assert!(e.contains("removes ENTERPRISEPACK from 11 users"), "{e}");
        assert!(e.contains("--allow-license-removals 11"), "{e}");
        assert!(check_license_removals(&p, &snap, Some(10)).is_err());
        assert!(check_license_removals(&p, &snap, Some(11)).is_ok());
        let p10 = plan(p.users[..10].to_vec());
        assert!(check_license_removals(&p10, &snap, None).is_ok());
    }
}
