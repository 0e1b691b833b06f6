//! Saved plans (`plan --out`, `apply --plan`) and the drift check that guards them.
//!
//! A saved plan is applied exactly as reviewed, so it must refuse a tenant that changed
//! since: the plan keeps a fingerprint of the snapshot state it depends on — the records
//! of the users it lists (unchanged ones too), the holders of the numbers it claims and the
//! catalog entries its names resolved against — and `check_drift` recomputes it over a
//! fresh snapshot. Only that state counts, so unrelated churn elsewhere in a large tenant
//! (other users, license free counts) does not block an apply.

use super::diff::{self, Ctx, Report};
use super::model::{FieldChange, Mode, Operation, Plan, UserPlan, PLAN_FORMAT, PLAN_FORMAT_MIN};
use super::resolve::Resolver;
use crate::model::{
    Attr, AttrSet, AttrValue, Field, Profile, RowAction, Snapshot, TenantUser, Upn, UserSpec, E164,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("cannot read plan file {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is not a teamsync plan: {message}")]
    Invalid { path: String, message: String },
    #[error(
        "{path} is a plan of format {found}; this teamsync reads formats 1 to {expected} (re-run `plan`)"
    )]
    Format {
        path: String,
        found: u64,
        expected: u32,
    },
}

/// Writes the plan as pretty JSON (reviewable, diffable), via a temporary file so an
/// interrupted save never leaves half a plan behind ([`crate::files::write_private`]).
pub fn save(plan: &Plan, path: &Path) -> io::Result<()> {
    let text = serde_json::to_string_pretty(plan).map_err(io::Error::other)?;
    crate::files::write_private(path, (text + "\n").as_bytes())
}

/// Reads a saved plan, checking its format version before its shape so an old file gets
/// a clear message rather than a serde error.
pub fn load(path: &Path) -> Result<Plan, SavedPlanError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SavedPlanError::Io {
        path: p.clone(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| SavedPlanError::Invalid {
        path: p.clone(),
        message: e.to_string(),
    })?;
    match value.get("format").and_then(Value::as_u64) {
        // Format 1 differs only in how operations are written, which they still read.
        Some(f) if (u64::from(PLAN_FORMAT_MIN)..=u64::from(PLAN_FORMAT)).contains(&f) => {}
        Some(found) => {
            return Err(SavedPlanError::Format {
                path: p,
                found,
                expected: PLAN_FORMAT,
            })
        }
        None => {
            return Err(SavedPlanError::Invalid {
                path: p,
                message: "no \"format\" version field".into(),
            });
        }
    }
    serde_json::from_value(value).map_err(|e| SavedPlanError::Invalid {
        path: p,
        message: e.to_string(),
    })
}

/// The part of a tenant record a plan for this user depends on: its identity, its number
/// (claims and customer licenses hinge on it), and the attributes its row touches (every
/// common one for a delete, whose `before` keeps everything), in their compared form.
/// Attributes the snapshot may not have read (groups, VRP) count only when the row touches
/// them or the plan released a known value, so a fresh snapshot that happens to read more
/// details than the original does not look like drift.
pub(super) fn user_record(up: &UserPlan, tu: Option<&TenantUser>) -> Value {
    let Some(t) = tu else {
        return json!({"upn": up.upn, "absent": true});
    };
    let d = &up.desired;
    let all = d.action == RowAction::Delete;
    let mut touched = d.touched();
    // A number needs a Phone System license: a number change depends on the licenses.
    if touched.contains(Attr::Number) {
        touched = touched.with(Attr::Licenses);
    }
    let mut r = json!({
        "upn": t.upn,
        "id": t.id,
        "number": t.number.as_ref().map(std::string::ToString::to_string),
        "accountType": t.account_type,
    });
    for attr in Attr::all().filter(|a| *a != Attr::Number) {
        let info = attr.info();
        let counts = if info.in_details {
            touched.contains(attr) || up.before.contains_key(info.name)
        } else {
            touched.contains(attr) || (all && info.common)
        };
        if counts {
            r[info.name] = match t.get(attr) {
                Some(Some(v)) => v.normalised(attr).to_json(),
                Some(None) | None => Value::Null,
            };
        }
    }
    r
}

/// Catalog entries any of the plan's names match (by any key, case-insensitively), so a
/// renamed, added or removed entry that would change a resolution changes the hash.
fn catalog_records(snapshot: &Snapshot, users: &[UserPlan]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    let resolved = || Attr::all().filter(|a| a.info().catalog.is_some());
    for up in users {
        for attr in resolved() {
            match up.desired.get(attr) {
                Field::Set(AttrValue::List(v)) => {
                    names.extend(v.iter().map(|n| n.trim().to_lowercase()));
                }
                Field::Set(AttrValue::Text(n)) => {
                    names.insert(n.trim().to_lowercase());
                }
                _ => {}
            }
        }
    }
    let hit = |k: &str| names.contains(&k.trim().to_lowercase());
    let c = &snapshot.catalogs;
    let mut out = BTreeSet::new();
    for g in &c.groups {
        if hit(&g.id) || hit(&g.display_name) {
            out.insert(json!(["group", g.id, g.display_name]).to_string());
        }
    }
    for l in &c.licenses {
        if hit(&l.sku_id)
            || hit(&l.sku_part_number)
            || l.sku_description.as_deref().is_some_and(hit)
        {
            out.insert(
                json!(["license", l.sku_id, l.sku_part_number, l.sku_description]).to_string(),
            );
        }
    }
    for v in &c.vrps {
        if hit(&v.identity) || v.description.as_deref().is_some_and(hit) {
            out.insert(json!(["vrp", v.identity, v.description]).to_string());
        }
    }
    out
}

fn claimed_numbers(users: &[UserPlan]) -> BTreeSet<String> {
    users
        .iter()
        .flat_map(|u| u.ops.iter())
        .filter_map(|o| o.op.claims_number().map(E164::to_string))
        .collect()
}

/// SHA-256 (hex) over the snapshot state the plan depends on, in a stable order: the same
/// state gives the same hash whatever order the backend listed users or catalogs in.
pub fn fingerprint(snapshot: &Snapshot, plan_users: &[UserPlan]) -> String {
    let by_upn: HashMap<&Upn, &TenantUser> = snapshot.users.iter().map(|u| (&u.upn, u)).collect();
    let mut holders: HashMap<String, BTreeSet<String>> = HashMap::new();
    for u in &snapshot.users {
        if let Some(n) = &u.number {
            holders
                .entry(n.to_string())
                .or_default()
                .insert(u.upn.to_string());
        }
    }
    let mut h = Sha256::new();
    h.update(b"teamsync plan fingerprint v1\n");
    let mut sorted: Vec<&UserPlan> = plan_users.iter().collect();
    sorted.sort_by(|a, b| a.upn.cmp(&b.upn));
    for up in sorted {
        h.update(user_record(up, by_upn.get(&up.upn).copied()).to_string());
        h.update(b"\n");
    }
    for n in claimed_numbers(plan_users) {
        h.update(json!(["number", n, holders.get(&n)]).to_string());
        h.update(b"\n");
    }
    for c in catalog_records(snapshot, plan_users) {
        h.update(c);
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// A profile that refuses nothing the plan holds: a saved plan passed its backend's
/// rules when it was made, and its drift report is about the tenant. Creates need what
/// the plan's creates carry (a backend without a country, such as PortSIP, planned them
/// without one; re-planning must not ask for one).
fn permissive_profile(plan: &Plan) -> Profile {
    let mut needs: Option<AttrSet> = None;
    for o in plan.users.iter().flat_map(|u| &u.ops) {
        if let Operation::Create { .. } = o.op {
            let carried = o.op.attrs();
            needs = Some(match needs {
                None => carried,
                Some(n) => n.iter().filter(|a| carried.contains(*a)).collect(),
            });
        }
    }
    Profile::permissive(
        "saved plan",
        needs.unwrap_or(AttrSet::of(&[Attr::DisplayName])),
    )
}

/// A user only a mirror run touches: no sheet row, the synthesised disable row.
fn is_mirror_user(plan: &Plan, up: &UserPlan) -> bool {
    plan.mode == Mode::Mirror
        && up.origin.is_none()
        && up.desired == {
            let mut s = UserSpec::new(up.upn.clone());
            s.number = Field::Clear;
            s.action = RowAction::Disable;
            s
        }
}

fn change_key(c: &FieldChange) -> String {
    format!("{}: {} → {}", c.field, c.old, c.new)
}

/// Recomputes the plan's fingerprint over `fresh`; when it differs, re-plans each user
/// against the fresh state and lists what changed (one line per finding).
pub fn check_drift(plan: &Plan, fresh: &Snapshot) -> Result<(), Vec<String>> {
    if fingerprint(fresh, &plan.users) == plan.snapshot_fingerprint {
        return Ok(());
    }
    let by_upn: HashMap<&Upn, &TenantUser> = fresh.users.iter().map(|u| (&u.upn, u)).collect();
    let ctx = Ctx {
        backend: &plan.backend,
        kind: plan.kind,
        profile: permissive_profile(plan),
        resolver: Resolver::new(&fresh.catalogs),
        default_file: plan.sources.join(", "),
    };
    let mut found = vec![];
    for up in &plan.users {
        let tu = by_upn.get(&up.upn).copied();
        match (&up.user_id, tu) {
            (None, Some(_)) => {
                found.push(format!(
                    "{}: now exists in the tenant (the plan creates it)",
                    up.upn
                ));
                continue;
            }
            (Some(_), None) => {
                found.push(format!("{}: no longer in the tenant", up.upn));
                continue;
            }
            (Some(id), Some(t)) if *id != t.id => {
                found.push(format!(
                    "{}: is a different tenant object now (id {} → {})",
                    up.upn, id, t.id
                ));
                continue;
            }
            _ => {}
        }
        let mut rep = Report::default();
        let fresh_plan = if is_mirror_user(plan, up) {
            let mut p = up.clone();
            p.ops.clear();
            p.changes.clear();
            if let Some(t) = tu {
                diff::disable_ops(&ctx, &up.desired, t, &mut p, &mut rep, false);
            }
            p
        } else {
            diff::diff_user(&ctx, &up.desired, tu, &mut rep)
        };
        for e in &rep.errors {
            found.push(format!("{}: would not plan now: {}", up.upn, e.message));
        }
        if !rep.errors.is_empty() {
            continue;
        }
        // A mirror removal planned without details releases what it never read blind; a
        // fresh read that now knows the value is not drift.
        let blind: BTreeSet<&str> = up
            .changes
            .iter()
            .filter(|c| c.old == json!(diff::NOT_READ))
            .map(|c| c.field.as_str())
            .collect();
        let keep = |c: &&FieldChange| !blind.contains(c.field.as_str());
        let old: Vec<String> = up.changes.iter().filter(keep).map(change_key).collect();
        let new: Vec<String> = fresh_plan
            .changes
            .iter()
            .filter(keep)
            .map(change_key)
            .collect();
        if old != new {
            let show = |v: &[String]| {
                if v.is_empty() {
                    "no change".to_string()
                } else {
                    v.join("; ")
                }
            };
            found.push(format!(
                "{}: planned [{}], the tenant now needs [{}]",
                up.upn,
                show(&old),
                show(&new)
            ));
        }
    }
    // Holders of the numbers the plan claims.
    let planned_upns: BTreeSet<&Upn> = plan.users.iter().map(|u| &u.upn).collect();
    let mut holders: HashMap<&crate::model::E164, Vec<&Upn>> = HashMap::new();
    for t in &fresh.users {
        if let Some(n) = &t.number {
            holders.entry(n).or_default().push(&t.upn);
        }
    }
    for up in &plan.users {
        for op in &up.ops {
            let Some(n) = op.op.claims_number() else {
                continue;
            };
            for h in holders.get(n).into_iter().flatten() {
                if **h != up.upn && !planned_upns.contains(h) {
                    found.push(format!(
                        "number {n} (claimed for {}) is now held by {h}",
                        up.upn
                    ));
                }
            }
        }
    }
    if found.is_empty() {
        found.push(
            "the tenant state this plan depends on changed (the catalog entries its names resolve against, or fields it does not change)".into(),
        );
    }
    Err(found)
}
