//! Saved plans (`plan --out`, `apply --plan`) and the drift check that guards them.
//!
//! A saved plan is applied exactly as reviewed, so it must refuse a tenant that changed
//! since: the plan keeps a fingerprint of the snapshot state it depends on — the records
//! of the users it lists (unchanged ones too), the holders of the numbers it claims and the
//! catalog entries its names resolved against — and `check_drift` recomputes it over a
//! fresh snapshot. Only that state counts, so unrelated churn elsewhere in a large tenant
//! (other users, license free counts) does not block an apply.

use super::diff::{self, Ctx, Report};
use super::model::{FieldChange, Mode, Operation, Plan, UserPlan, PLAN_FORMAT};
use super::resolve::Resolver;
use crate::connector::Capabilities;
use crate::model::{Field, RowAction, Snapshot, TenantUser, Upn, UserSpec};
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
        "{path} is a plan of format {found}; this teamsync reads format {expected} (re-run `plan`)"
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
        Some(f) if f == u64::from(PLAN_FORMAT) => {}
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

fn sorted_lower(v: &[String]) -> Vec<String> {
    let s: BTreeSet<String> = v.iter().map(|x| x.trim().to_lowercase()).collect();
    s.into_iter().collect()
}

/// The part of a tenant record a plan for this user depends on: its identity, its number
/// (claims and customer licenses hinge on it), and the fields its row touches (all of them
/// for a delete, whose `before` keeps everything). Groups/VRP count only when the row
/// touches them or the plan released a known VRP, so a fresh snapshot that happens to read
/// more details than the original does not look like drift.
fn user_record(up: &UserPlan, tu: Option<&TenantUser>) -> Value {
    let Some(t) = tu else {
        return json!({"upn": up.upn, "absent": true});
    };
    let d = &up.desired;
    let all = d.action == RowAction::Delete;
    let mut r = json!({
        "upn": t.upn,
        "id": t.id,
        "number": t.number.as_ref().map(|n| n.to_string()),
        "accountType": t.account_type,
    });
    if all || !d.display_name.is_keep() {
        r["displayName"] = json!(t.display_name);
    }
    if all || !d.country.is_keep() {
        r["country"] = json!(t.country);
    }
    if all || !d.licenses.is_keep() || !d.number.is_keep() {
        r["licenses"] = json!(sorted_lower(&t.licenses));
    }
    if all || !d.customer_licenses.is_keep() {
        r["customerLicenses"] = json!(sorted_lower(&t.customer_licenses));
    }
    if !d.groups.is_keep() || up.before.contains_key("groups") {
        r["groups"] = json!(t.details.as_ref().map(|x| sorted_lower(&x.groups)));
    }
    if !d.vrp.is_keep() || up.before.contains_key("vrp") {
        r["vrp"] = json!(t
            .details
            .as_ref()
            .map(|x| x.vrp.as_ref().map(|v| v.to_lowercase())));
    }
    r
}

/// Catalog entries any of the plan's names match (by any key, case-insensitively), so a
/// renamed, added or removed entry that would change a resolution changes the hash.
fn catalog_records(snapshot: &Snapshot, users: &[UserPlan]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    for up in users {
        let d = &up.desired;
        for f in [&d.groups, &d.licenses] {
            if let Field::Set(v) = f {
                names.extend(v.iter().map(|n| n.trim().to_lowercase()));
            }
        }
        if let Field::Set(v) = &d.vrp {
            names.insert(v.trim().to_lowercase());
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
        .filter_map(|o| match &o.op {
            Operation::SetNumber { number: Some(n) } => Some(n.to_string()),
            _ => None,
        })
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

/// Every capability, except `country` when the plan's creates carry none (a backend
/// without a country, such as PortSIP, planned them): re-planning must not ask for one.
fn all_capabilities(plan: &Plan) -> Capabilities {
    let country = !plan.users.iter().flat_map(|u| &u.ops).any(|o| {
        matches!(
            o.op,
            crate::plan::model::Operation::Create { country: None, .. }
        )
    });
    Capabilities {
        read: true,
        write: true,
        create: true,
        delete: true,
        groups: true,
        licenses: true,
        vrp: true,
        customer_licenses: true,
        resource_accounts: true,
        number_ranges: true,
        country,
        extension: true,
    }
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
        caps: all_capabilities(plan),
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
        // A mirror removal planned without details releases the VRP blind; a fresh read
        // that now knows the VRP is not drift.
        let blind_vrp = up
            .changes
            .iter()
            .any(|c| c.field == "vrp" && c.old == json!(diff::VRP_NOT_READ));
        let keep = |c: &&FieldChange| !(blind_vrp && c.field == "vrp");
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
            let Operation::SetNumber { number: Some(n) } = &op.op else {
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
