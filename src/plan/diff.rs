//! One user's desired row against the tenant's record → that user's ordered operations.
//!
//! This is the heart of "only what differs": every comparison happens on normalised values
//! (E.164, lowercase IDs, names resolved to catalog IDs, sets instead of lists), so a cell
//! that differs only in spelling plans nothing, and a re-run after a successful apply plans
//! zero operations. Cross-user concerns (numbers moving between users, mirror removals,
//! license counts) are left to the sibling modules; this one sees a single user.

use super::model::{FieldChange, Operation, PlannedOp, UserAction, UserPlan};
use super::resolve::{carries_phone_system, Resolver};
use crate::model::{
    Attr, Diagnostic, Field, GroupInfo, JobKind, LicenseInfo, Profile, RowAction, TenantUser,
    UserSpec, VrpInfo, E164,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// What every per-user diff needs to know about the run.
pub(crate) struct Ctx<'a> {
    /// Backend name in messages (a saved plan's, when re-planning for drift).
    pub backend: &'a str,
    pub kind: JobKind,
    pub profile: Profile,
    pub resolver: Resolver<'a>,
    /// File named in diagnostics of rows without an origin (hand-built specs).
    pub default_file: String,
}

/// Collects a run's diagnostics and warnings instead of stopping at the first.
#[derive(Default)]
pub(crate) struct Report {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<String>,
}

impl Report {
    pub(crate) fn error(
        &mut self,
        ctx: &Ctx,
        spec: &UserSpec,
        column: Option<&str>,
        message: String,
    ) {
        self.errors
            .push(diagnostic(&ctx.default_file, spec, column, message));
    }
}

pub(crate) fn diagnostic(
    default_file: &str,
    spec: &UserSpec,
    column: Option<&str>,
    message: String,
) -> Diagnostic {
    Diagnostic {
        file: spec
            .origin
            .as_ref()
            .map(|o| o.file.to_string())
            .unwrap_or_else(|| default_file.to_string()),
        row: spec.origin.as_ref().map(|o| o.row),
        column: column.map(str::to_string),
        message: format!("{}: {message}", spec.upn),
    }
}

/// "file:row (upn)" — how errors that involve two rows name each of them.
pub(crate) fn row_label(default_file: &str, spec: &UserSpec) -> String {
    match &spec.origin {
        Some(o) => format!("{}:{} ({})", o.file, o.row, spec.upn),
        None => format!("{default_file} ({})", spec.upn),
    }
}

fn lower_set<'a>(items: impl IntoIterator<Item = &'a String>) -> BTreeSet<String> {
    items.into_iter().map(|s| s.trim().to_lowercase()).collect()
}

/// A list field's change, shown by names and carried by IDs.
struct ListChange {
    ids: Vec<String>,
    change: FieldChange,
}

/// Compares a desired set of `(id, name)` with the current IDs; `None` when equal as sets.
fn list_change(
    field: &str,
    desired: &[(String, String)],
    current: &[String],
    name_of: &dyn Fn(&str) -> String,
) -> Option<ListChange> {
    let want = lower_set(desired.iter().map(|(id, _)| id));
    let have = lower_set(current.iter());
    if want == have {
        return None;
    }
    let added = desired
        .iter()
        .filter(|(id, _)| !have.contains(&id.trim().to_lowercase()))
        .map(|(_, n)| n.clone())
        .collect();
    let removed = current
        .iter()
        .filter(|id| !want.contains(&id.trim().to_lowercase()))
        .map(|id| name_of(id))
        .collect();
    Some(ListChange {
        ids: desired.iter().map(|(id, _)| id.clone()).collect(),
        change: FieldChange {
            field: field.into(),
            old: json!(current.iter().map(|id| name_of(id)).collect::<Vec<_>>()),
            new: json!(desired.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>()),
            added,
            removed,
        },
    })
}

fn scalar_change(field: &str, old: Value, new: Value) -> FieldChange {
    FieldChange {
        field: field.into(),
        old,
        new,
        added: vec![],
        removed: vec![],
    }
}

fn num_json(n: &Option<E164>) -> Value {
    n.as_ref()
        .map(|n| json!(n.to_string()))
        .unwrap_or(Value::Null)
}

/// Names resolved against the catalogs; `None` for a field the row leaves alone
/// (or that cannot be resolved — the error is already reported).
#[derive(Default)]
struct Resolved<'a> {
    groups: Option<Vec<&'a GroupInfo>>,
    licenses: Option<Vec<&'a LicenseInfo>>,
    /// `Some(None)`: clear the VRP.
    vrp: Option<Option<&'a VrpInfo>>,
}

fn resolve<'a>(ctx: &Ctx<'a>, spec: &UserSpec, rep: &mut Report) -> Resolved<'a> {
    let mut out = Resolved::default();
    if ctx.profile.carries(Attr::Groups) && ctx.kind == JobKind::MsUsers {
        out.groups = resolve_list(
            ctx,
            spec,
            rep,
            &spec.groups,
            "groups",
            "group",
            &|n| ctx.resolver.group(n),
            &|g| g.id.clone(),
        );
    }
    if ctx.profile.carries(Attr::Licenses) && ctx.kind == JobKind::MsUsers {
        out.licenses = resolve_list(
            ctx,
            spec,
            rep,
            &spec.licenses,
            "licenses",
            "license",
            &|n| ctx.resolver.license(n),
            &|l| l.sku_id.to_lowercase(),
        );
    }
    if ctx.profile.carries(Attr::Vrp) {
        match &spec.vrp {
            Field::Keep => {}
            Field::Clear => out.vrp = Some(None),
            Field::Set(name) => match ctx.resolver.vrp(name) {
                Ok(v) => out.vrp = Some(Some(v)),
                Err(e) => rep.error(
                    ctx,
                    spec,
                    Some("vrp"),
                    e.describe("voice routing policy", name),
                ),
            },
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn resolve_list<'a, T>(
    ctx: &Ctx<'a>,
    spec: &UserSpec,
    rep: &mut Report,
    field: &Field<Vec<String>>,
    column: &str,
    what: &str,
    find: &dyn Fn(&str) -> Result<&'a T, super::resolve::ResolveError>,
    key: &dyn Fn(&T) -> String,
) -> Option<Vec<&'a T>> {
    match field {
        Field::Keep => None,
        Field::Clear => Some(vec![]),
        Field::Set(names) => {
            let mut ok = true;
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for name in names {
                match find(name) {
                    Ok(item) => {
                        if seen.insert(key(item).to_lowercase()) {
                            out.push(item);
                        }
                    }
                    Err(e) => {
                        ok = false;
                        rep.error(ctx, spec, Some(column), e.describe(what, name));
                    }
                }
            }
            ok.then_some(out)
        }
    }
}

/// The row's problems that need no tenant data, all of them: the backend's own rules,
/// attributes the backend (or the sheet kind) cannot carry — refused rather than dropped —
/// and a resource-account column in a user sheet.
pub(crate) fn check_row(ctx: &Ctx, spec: &UserSpec, rep: &mut Report) {
    for p in ctx.profile.row_problems(spec) {
        rep.error(ctx, spec, Some(p.column), p.message);
    }
    let ra = ctx.kind == JobKind::MsResourceAccounts;
    for attr in spec.touched().iter() {
        let col = attr.name();
        if ra && !attr.info().resource_accounts {
            rep.error(
                ctx,
                spec,
                Some(col),
                format!("resource accounts have no {col} column (the tenant assigns their virtual-user license itself)"),
            );
        } else if !ctx.profile.carries(attr) {
            rep.error(
                ctx,
                spec,
                Some(col),
                format!(
                    "the {} backend cannot set {col}; leave the column empty for this tenant",
                    ctx.backend
                ),
            );
        }
    }
    if !ra && spec.account_type.is_some() {
        rep.error(
            ctx,
            spec,
            Some("accountType"),
            "accountType belongs in resource-account sheets only".into(),
        );
    }
}

/// Diffs one sheet row against the tenant's record of that UPN (`None`: not in the tenant).
pub(crate) fn diff_user(
    ctx: &Ctx,
    spec: &UserSpec,
    current: Option<&TenantUser>,
    rep: &mut Report,
) -> UserPlan {
    let errors_before = rep.errors.len();
    check_row(ctx, spec, rep);
    if let Some(cur) = current {
        match (ctx.kind, cur.account_type.is_some()) {
            (JobKind::MsUsers, true) => rep.error(
                ctx,
                spec,
                Some("upn"),
                "is a resource account in the tenant; plan it from a resource-account sheet".into(),
            ),
            (JobKind::MsResourceAccounts, false) => rep.error(
                ctx,
                spec,
                Some("upn"),
                "is a user in the tenant, not a resource account".into(),
            ),
            _ => {}
        }
    }
    let res = resolve(ctx, spec, rep);
    let mut up = UserPlan {
        upn: spec.upn.clone(),
        user_id: current.map(|c| c.id.clone()),
        action: UserAction::Unchanged,
        desired: spec.clone(),
        origin: spec.origin.clone(),
        changes: vec![],
        ops: vec![],
        before: Map::new(),
    };
    if rep.errors.len() > errors_before {
        return up;
    }
    match (spec.action, current) {
        (RowAction::Delete | RowAction::Disable, None) => {
            rep.warnings.push(format!(
                "{}: {} requested but the user is not in the tenant; nothing to do",
                spec.upn,
                if spec.action == RowAction::Delete {
                    "delete"
                } else {
                    "disable"
                }
            ));
        }
        (RowAction::Delete, Some(cur)) => plan_delete(ctx, spec, cur, &mut up, rep),
        (RowAction::Disable, Some(cur)) => plan_disable(ctx, spec, cur, &mut up, rep),
        (RowAction::Upsert, None) => plan_create(ctx, spec, &res, &mut up, rep),
        (RowAction::Upsert, Some(cur)) => plan_update(ctx, spec, cur, &res, &mut up, rep),
    }
    up.action = if up.ops.is_empty() {
        UserAction::Unchanged
    } else if up
        .ops
        .iter()
        .any(|o| matches!(o.op, Operation::Create { .. }))
    {
        UserAction::Create
    } else if up.ops.iter().any(|o| matches!(o.op, Operation::Delete)) {
        UserAction::Delete
    } else if spec.action == RowAction::Disable {
        UserAction::Disable
    } else {
        UserAction::Update
    };
    up
}

fn push(up: &mut UserPlan, op: Operation) {
    up.ops.push(PlannedOp {
        op,
        after: vec![],
        awaited: false,
    });
}

/// Everything known about a user, for reverting a delete.
fn full_before(cur: &TenantUser) -> Map<String, Value> {
    let mut b = Map::new();
    b.insert("displayName".into(), json!(cur.display_name));
    b.insert("country".into(), json!(cur.country));
    b.insert("number".into(), num_json(&cur.number));
    b.insert("licenses".into(), json!(cur.licenses));
    b.insert("customerLicenses".into(), json!(cur.customer_licenses));
    if let Some(d) = &cur.details {
        b.insert("groups".into(), json!(d.groups));
        b.insert("vrp".into(), json!(d.vrp));
    }
    if let Some(t) = cur.account_type {
        b.insert("accountType".into(), json!(t));
    }
    b
}

fn plan_delete(ctx: &Ctx, spec: &UserSpec, cur: &TenantUser, up: &mut UserPlan, rep: &mut Report) {
    if !ctx.profile.delete {
        rep.error(
            ctx,
            spec,
            Some("action"),
            format!("the {} backend cannot delete users", ctx.backend),
        );
        return;
    }
    push(up, Operation::Delete);
    if cur.number.is_some() {
        up.changes
            .push(scalar_change("number", num_json(&cur.number), Value::Null));
    }
    up.before = full_before(cur);
}

/// Shared by `action = disable` rows and mirror removals: release number and VRP.
/// `details_required`: a sheet row asked for this user's details, so their absence is a
/// caller bug; a mirror removal never has them and releases the VRP unconditionally
/// (harmless, and the user holds no number afterwards, so a re-run plans nothing).
pub(crate) fn disable_ops(
    ctx: &Ctx,
    spec: &UserSpec,
    cur: &TenantUser,
    up: &mut UserPlan,
    rep: &mut Report,
    details_required: bool,
) {
    if cur.number.is_some() {
        push(up, Operation::SetNumber { number: None });
        up.changes
            .push(scalar_change("number", num_json(&cur.number), Value::Null));
        up.before.insert("number".into(), num_json(&cur.number));
    }
    if !ctx.profile.carries(Attr::Vrp) {
        return;
    }
    let vrp: Option<Option<String>> = match &cur.details {
        Some(d) => Some(d.vrp.clone()),
        None if details_required => {
            rep.error(ctx, spec, Some("vrp"), details_not_read());
            return;
        }
        None => None,
    };
    match vrp {
        Some(None) => {}
        Some(Some(v)) => {
            push(up, Operation::SetVrp { vrp: None });
            up.changes.push(scalar_change("vrp", json!(v), Value::Null));
            up.before.insert("vrp".into(), json!(v));
        }
        None => {
            push(up, Operation::SetVrp { vrp: None });
            up.changes
                .push(scalar_change("vrp", json!(VRP_NOT_READ), Value::Null));
        }
    }
}

/// The old VRP shown for a mirror removal whose details were never read.
pub(crate) const VRP_NOT_READ: &str = "(not read)";

fn details_not_read() -> String {
    "groups/VRP details were not read for this user (the snapshot must read details for plan::detail_upns); refusing to guess".into()
}

fn plan_disable(ctx: &Ctx, spec: &UserSpec, cur: &TenantUser, up: &mut UserPlan, rep: &mut Report) {
    let other = !spec.display_name.is_keep()
        || !spec.country.is_keep()
        || !spec.groups.is_keep()
        || !spec.licenses.is_keep()
        || !spec.customer_licenses.is_keep()
        || matches!(spec.number, Field::Set(_))
        || matches!(spec.vrp, Field::Set(_));
    if other {
        rep.warnings.push(format!(
            "{}: action disable releases number and VRP only; the row's other values are ignored",
            spec.upn
        ));
    }
    disable_ops(ctx, spec, cur, up, rep, true);
}

fn license_pairs(ctx: &Ctx, ls: &[&LicenseInfo]) -> Vec<(String, String)> {
    let _ = ctx;
    ls.iter()
        .map(|l| (l.sku_id.clone(), l.sku_part_number.clone()))
        .collect()
}

fn group_pairs(gs: &[&GroupInfo]) -> Vec<(String, String)> {
    gs.iter()
        .map(|g| (g.id.clone(), g.display_name.clone()))
        .collect()
}

fn dedup_ci(items: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && seen.insert(s.to_lowercase()))
        .collect()
}

/// Teams assigns a number only to a user holding a Phone System license.
fn check_phone_system(
    ctx: &Ctx,
    spec: &UserSpec,
    end_number: &Option<E164>,
    end_licenses: &[String],
    rep: &mut Report,
) {
    // A backend without a license catalog cannot tell; the tenant will.
    if ctx.kind != JobKind::MsUsers
        || end_number.is_none()
        || !ctx.profile.carries(Attr::Licenses)
        || ctx.resolver.catalogs.licenses.is_empty()
    {
        return;
    }
    let ok = end_licenses.iter().any(|id| {
        ctx.resolver
            .license_by_id(id)
            .is_some_and(|l| carries_phone_system(&l.sku_part_number))
    });
    if !ok {
        let have: Vec<String> = end_licenses
            .iter()
            .map(|id| ctx.resolver.license_name(id))
            .collect();
        rep.error(
            ctx,
            spec,
            Some("licenses"),
            format!(
                "a number needs a Phone System license (MCOEV or a suite that includes it), but the user would hold [{}]",
                have.join(", ")
            ),
        );
    }
}

fn plan_create(ctx: &Ctx, spec: &UserSpec, res: &Resolved, up: &mut UserPlan, rep: &mut Report) {
    if !ctx.profile.create {
        rep.error(
            ctx,
            spec,
            Some("upn"),
            format!(
                "not in the tenant, and the {} backend cannot create users",
                ctx.backend
            ),
        );
        return;
    }
    let missing: Vec<Attr> = ctx
        .profile
        .create_needs
        .iter()
        .filter(|a| match spec.get(*a) {
            Field::Set(crate::model::AttrValue::Text(t)) => t.trim().is_empty(),
            Field::Set(_) => false,
            _ => true,
        })
        .collect();
    let ra_type_missing = ctx.kind == JobKind::MsResourceAccounts && spec.account_type.is_none();
    if let Some(first) = missing.first() {
        let mut names: Vec<&str> = missing.iter().map(|a| a.name()).collect();
        if ra_type_missing {
            names.push("accountType");
        }
        // A backend-specific attribute (an extension) comes from the row only.
        let (on, from) = if missing.iter().any(|a| a.info().common) {
            (String::new(), "from the row or its template")
        } else {
            (format!(" on the {} backend", ctx.backend), "from the row")
        };
        rep.error(
            ctx,
            spec,
            Some(first.name()),
            format!(
                "not in the tenant, so it would be created, which needs {}{on} ({from})",
                names.join(" and ")
            ),
        );
        return;
    }
    if ra_type_missing {
        rep.error(
            ctx,
            spec,
            Some("accountType"),
            "a new resource account needs accountType (call-queue or auto-attendant)".into(),
        );
        return;
    }
    let dn = spec
        .display_name
        .as_set()
        .map(|d| d.trim().to_string())
        .unwrap_or_default();
    let country = spec
        .country
        .as_set()
        .filter(|_| ctx.profile.carries(Attr::Country))
        .cloned();
    push(
        up,
        Operation::Create {
            display_name: dn.clone(),
            country: country.clone(),
            customer_licenses: vec![],
        },
    );
    up.changes
        .push(scalar_change("displayName", Value::Null, json!(dn)));
    if let Some(c) = &country {
        up.changes
            .push(scalar_change("country", Value::Null, json!(c)));
    }
    if let Some(e) = spec.extension.as_set() {
        up.changes
            .push(scalar_change("extension", Value::Null, json!(e)));
    }
    let mut end_licenses: Vec<String> = vec![];
    if let Some(ls) = &res.licenses {
        if !ls.is_empty() {
            let lc = list_change("licenses", &license_pairs(ctx, ls), &[], &|id| {
                ctx.resolver.license_name(id)
            });
            if let Some(lc) = lc {
                end_licenses = lc.ids.clone();
                push(up, Operation::SetLicenses { sku_ids: lc.ids });
                up.changes.push(lc.change);
            }
        }
    }
    let end_number = spec.number.as_set().cloned();
    check_phone_system(ctx, spec, &end_number, &end_licenses, rep);
    if let Some(n) = &end_number {
        push(
            up,
            Operation::SetNumber {
                number: Some(n.clone()),
            },
        );
        up.changes
            .push(scalar_change("number", Value::Null, json!(n.to_string())));
    }
    if let Some(Some(v)) = res.vrp {
        push(
            up,
            Operation::SetVrp {
                vrp: Some(v.identity.clone()),
            },
        );
        up.changes
            .push(scalar_change("vrp", Value::Null, json!(v.identity)));
    }
    if let Some(gs) = &res.groups {
        if let Some(lc) = list_change("groups", &group_pairs(gs), &[], &|id| {
            ctx.resolver.group_name(id)
        }) {
            push(up, Operation::SetGroups { group_ids: lc.ids });
            up.changes.push(lc.change);
        }
    }
    customer_licenses(ctx, spec, &end_number, &[], up, rep);
    up.before.clear(); // nothing to revert to: the user did not exist
}

/// Customer licenses; on a backend that keeps them only for users with a number (the
/// profile's `need_number`), a user ending without one cannot be given any.
fn customer_licenses(
    ctx: &Ctx,
    spec: &UserSpec,
    end_number: &Option<E164>,
    current: &[String],
    up: &mut UserPlan,
    rep: &mut Report,
) {
    if !ctx.profile.carries(Attr::CustomerLicenses) {
        return;
    }
    let want = match &spec.customer_licenses {
        Field::Keep => return,
        Field::Clear => vec![],
        Field::Set(v) => dedup_ci(v),
    };
    if end_number.is_none() && ctx.profile.need_number.contains(Attr::CustomerLicenses) {
        if !want.is_empty() {
            rep.error(
                ctx,
                spec,
                Some("customerLicenses"),
                "customer licenses exist only for users with a number, and this user would end without one".into(),
            );
        }
        return;
    }
    let pairs: Vec<(String, String)> = want.iter().map(|s| (s.clone(), s.clone())).collect();
    if let Some(lc) = list_change("customerLicenses", &pairs, current, &|s| s.to_string()) {
        up.before.insert("customerLicenses".into(), json!(current));
        push(up, Operation::SetCustomerLicenses { skus: lc.ids });
        up.changes.push(lc.change);
    }
}

fn plan_update(
    ctx: &Ctx,
    spec: &UserSpec,
    cur: &TenantUser,
    res: &Resolved,
    up: &mut UserPlan,
    rep: &mut Report,
) {
    // Attributes set only at creation: another value cannot be carried out.
    for attr in ctx.profile.create_only.iter() {
        let (Field::Set(want), Some(Some(have))) = (spec.get(attr), cur.get(attr)) else {
            continue;
        };
        if !crate::model::attr::same_value(attr, Some(&want), Some(&have)) {
            rep.error(
                ctx,
                spec,
                Some(attr.name()),
                format!(
                    "has {attr} {have} in {}; its API cannot change {attr} once the user exists (leave the cell empty or write {have})",
                    ctx.backend
                ),
            );
        }
    }
    // Properties.
    let mut props_dn = None;
    let mut props_country = None;
    match &spec.display_name {
        Field::Set(d) if d.trim() != cur.display_name.trim() && !d.trim().is_empty() => {
            props_dn = Some(d.trim().to_string());
        }
        Field::Clear => rep.error(
            ctx,
            spec,
            Some("displayName"),
            "displayName cannot be cleared".into(),
        ),
        _ => {}
    }
    match &spec.country {
        Field::Set(c) if cur.country.as_ref() != Some(c) => props_country = Some(c.clone()),
        Field::Clear => rep.error(
            ctx,
            spec,
            Some("country"),
            "country cannot be cleared".into(),
        ),
        _ => {}
    }
    if ctx.kind == JobKind::MsResourceAccounts {
        if let (Some(want), Some(have)) = (spec.account_type, cur.account_type) {
            if want != have {
                rep.error(
                    ctx,
                    spec,
                    Some("accountType"),
                    "changing the accountType of an existing resource account is not supported; delete it and create it again".into(),
                );
            }
        }
    }
    if let Some(d) = &props_dn {
        up.changes.push(scalar_change(
            "displayName",
            json!(cur.display_name),
            json!(d),
        ));
        up.before
            .insert("displayName".into(), json!(cur.display_name));
    }
    if let Some(c) = &props_country {
        up.changes
            .push(scalar_change("country", json!(cur.country), json!(c)));
        up.before.insert("country".into(), json!(cur.country));
    }
    if props_dn.is_some() || props_country.is_some() {
        push(
            up,
            Operation::SetProperties {
                display_name: props_dn,
                country: props_country,
            },
        );
    }

    // Licenses.
    let mut end_licenses = cur.licenses.clone();
    let mut licenses_changed = false;
    if let Some(ls) = &res.licenses {
        if let Some(lc) = list_change("licenses", &license_pairs(ctx, ls), &cur.licenses, &|id| {
            ctx.resolver.license_name(id)
        }) {
            end_licenses = lc.ids.clone();
            licenses_changed = true;
            up.before.insert("licenses".into(), json!(cur.licenses));
            push(up, Operation::SetLicenses { sku_ids: lc.ids });
            up.changes.push(lc.change);
        }
    }

    // Number.
    let end_number = match &spec.number {
        Field::Keep => cur.number.clone(),
        Field::Clear => None,
        Field::Set(n) => Some(n.clone()),
    };
    let number_changed = end_number != cur.number;
    if number_changed || licenses_changed {
        check_phone_system(ctx, spec, &end_number, &end_licenses, rep);
    }
    if number_changed {
        up.before.insert("number".into(), num_json(&cur.number));
        up.changes.push(scalar_change(
            "number",
            num_json(&cur.number),
            num_json(&end_number),
        ));
        push(
            up,
            Operation::SetNumber {
                number: end_number.clone(),
            },
        );
    }

    // VRP and groups need the single-user read.
    let needs_details = res.vrp.is_some() || res.groups.is_some();
    let details = match (&cur.details, needs_details) {
        (Some(d), _) => Some(d),
        (None, true) => {
            rep.error(
                ctx,
                spec,
                Some(if res.groups.is_some() {
                    "groups"
                } else {
                    "vrp"
                }),
                details_not_read(),
            );
            None
        }
        (None, false) => None,
    };
    if let (Some(want), Some(d)) = (&res.vrp, details) {
        let want_id = want.map(|v| v.identity.clone());
        let same = match (&want_id, &d.vrp) {
            (Some(a), Some(b)) => a.to_lowercase() == b.to_lowercase(),
            (None, None) => true,
            _ => false,
        };
        if !same {
            up.before.insert("vrp".into(), json!(d.vrp));
            up.changes
                .push(scalar_change("vrp", json!(d.vrp), json!(want_id)));
            push(up, Operation::SetVrp { vrp: want_id });
        }
    }
    if let (Some(gs), Some(d)) = (&res.groups, details) {
        if let Some(lc) = list_change("groups", &group_pairs(gs), &d.groups, &|id| {
            ctx.resolver.group_name(id)
        }) {
            up.before.insert("groups".into(), json!(d.groups));
            push(up, Operation::SetGroups { group_ids: lc.ids });
            up.changes.push(lc.change);
        }
    }

    // Where customer licenses need a number, a user without one holds none.
    let current_cl =
        if cur.number.is_some() || !ctx.profile.need_number.contains(Attr::CustomerLicenses) {
            cur.customer_licenses.clone()
        } else {
            vec![]
        };
    customer_licenses(ctx, spec, &end_number, &current_cl, up, rep);
}
