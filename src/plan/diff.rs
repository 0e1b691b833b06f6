//! One user's desired row against the tenant's record → that user's ordered operations.
//!
//! This is the heart of "only what differs": every comparison happens on normalised values
//! (E.164, lowercase IDs, names resolved to catalog IDs, sets instead of lists), so a cell
//! that differs only in spelling plans nothing, and a re-run after a successful apply plans
//! zero operations. Cross-user concerns (numbers moving between users, mirror removals,
//! license counts) are left to the sibling modules; this one sees a single user.
//!
//! It is written over the attribute table (`model::attr`) and the backend's
//! [`Profile`]: which attributes resolve against which catalog, compare how, clear on
//! `disable` and group into which operation is the table's; which ones a backend carries,
//! needs to create, sets only at creation or keeps only for numbered users is the
//! profile's. The rules left here by name are Teams' own (a number needs a Phone System
//! license) and the row actions'.

use super::model::{AttrChange, FieldChange, Operation, PlannedOp, UserAction, UserPlan};
use super::resolve::{carries_phone_system, Resolver};
use crate::model::attr::{is_none_value, none_of, same_value, Kind, OpGroup};
use crate::model::{
    Attr, AttrSet, AttrValue, Diagnostic, Field, JobKind, Profile, RowAction, TenantUser, UserSpec,
    E164,
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
            .map_or_else(|| default_file.to_string(), |o| o.file.to_string()),
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

fn json_of(v: Option<&AttrValue>) -> Value {
    v.map_or(Value::Null, AttrValue::to_json)
}

/// A desired value resolved against the catalogs: what to carry (ids) and, for lists,
/// each member's id and the name a person reads.
struct Want {
    attr: Attr,
    value: Option<AttrValue>,
    pairs: Vec<(String, String)>,
}

/// The row's desired values for the attributes it touches and the backend carries, in
/// operation order, names resolved to ids through the attribute's catalog. An attribute
/// whose names do not resolve is left out (its errors are reported); an empty text cell
/// counts as untouched.
fn wants(ctx: &Ctx, spec: &UserSpec, rep: &mut Report) -> Vec<Want> {
    let ra = ctx.kind == JobKind::MsResourceAccounts;
    let mut out = Vec::new();
    for attr in spec.touched().iter() {
        let info = attr.info();
        if !ctx.profile.carries(attr) || (ra && !info.resource_accounts) {
            continue; // refused by check_row
        }
        let v = match spec.get(attr) {
            Field::Keep => continue,
            Field::Clear => {
                out.push(Want {
                    attr,
                    value: none_of(attr),
                    pairs: vec![],
                });
                continue;
            }
            Field::Set(v) => v,
        };
        let want = match (v, info.catalog) {
            (AttrValue::List(names), Some(catalog)) => {
                let mut ok = true;
                let mut seen = BTreeSet::new();
                let mut pairs = Vec::new();
                for name in &names {
                    match ctx.resolver.resolve(catalog, name) {
                        Ok((id, shown)) => {
                            if seen.insert(id.to_lowercase()) {
                                pairs.push((id, shown));
                            }
                        }
                        Err(e) => {
                            ok = false;
                            rep.error(ctx, spec, Some(info.name), e.describe(catalog.noun(), name));
                        }
                    }
                }
                if !ok {
                    continue;
                }
                Want {
                    attr,
                    value: Some(AttrValue::List(
                        pairs.iter().map(|(id, _)| id.clone()).collect(),
                    )),
                    pairs,
                }
            }
            (AttrValue::Text(name), Some(catalog)) => match ctx.resolver.resolve(catalog, &name) {
                Ok((id, _)) => Want {
                    attr,
                    value: Some(AttrValue::Text(id)),
                    pairs: vec![],
                },
                Err(e) => {
                    rep.error(
                        ctx,
                        spec,
                        Some(info.name),
                        e.describe(catalog.noun(), &name),
                    );
                    continue;
                }
            },
            (AttrValue::List(items), None) => {
                let items = dedup_ci(&items);
                Want {
                    attr,
                    pairs: items.iter().map(|s| (s.clone(), s.clone())).collect(),
                    value: Some(AttrValue::List(items)),
                }
            }
            (AttrValue::Text(t), None) if t.trim().is_empty() => continue,
            (AttrValue::Text(t), None) => Want {
                attr,
                value: Some(AttrValue::Text(t.trim().to_string())),
                pairs: vec![],
            },
            (other, _) => Want {
                attr,
                value: Some(other),
                pairs: vec![],
            },
        };
        out.push(want);
    }
    // In operation order, so changes and operations come out in the order they run.
    out.sort_by_key(|w| (w.attr.info().group, w.attr));
    out
}

/// The change of one attribute as a person reads it (history `changes`, plan display):
/// lists by names, with members added and removed.
fn field_change(ctx: &Ctx, want: &Want, current: Option<&AttrValue>) -> FieldChange {
    let attr = want.attr;
    let catalog = attr.info().catalog;
    if attr.info().kind != Kind::List {
        return FieldChange {
            field: attr.name().into(),
            old: json_of(current),
            new: json_of(want.value.as_ref()),
            added: vec![],
            removed: vec![],
        };
    }
    let current: &[String] = current.and_then(AttrValue::as_list).unwrap_or(&[]);
    let key = |s: &str| s.trim().to_lowercase();
    let have: BTreeSet<String> = current.iter().map(|s| key(s)).collect();
    let want_ids: BTreeSet<String> = want.pairs.iter().map(|(id, _)| key(id)).collect();
    let name_of = |id: &str| ctx.resolver.name_of(catalog, id);
    FieldChange {
        field: attr.name().into(),
        old: json!(current.iter().map(|id| name_of(id)).collect::<Vec<_>>()),
        new: json!(want
            .pairs
            .iter()
            .map(|(_, n)| n.clone())
            .collect::<Vec<_>>()),
        added: want
            .pairs
            .iter()
            .filter(|(id, _)| !have.contains(&key(id)))
            .map(|(_, n)| n.clone())
            .collect(),
        removed: current
            .iter()
            .filter(|id| !want_ids.contains(&key(id)))
            .map(|id| name_of(id))
            .collect(),
    }
}

/// One operation per group, in operation order, from the changes of a user.
fn push_changes(up: &mut UserPlan, changes: Vec<AttrChange>) {
    for group in OpGroup::ALL {
        let mine: Vec<AttrChange> = changes
            .iter()
            .filter(|c| c.attr.info().group == group)
            .cloned()
            .collect();
        if !mine.is_empty() {
            push(up, Operation::Set { changes: mine });
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
    let wants = wants(ctx, spec, rep);
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
        (RowAction::Upsert, None) => plan_create(ctx, spec, &wants, &mut up, rep),
        (RowAction::Upsert, Some(cur)) => plan_update(ctx, spec, cur, &wants, &mut up, rep),
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

/// Everything known about a user, for reverting a delete: every attribute the backend
/// carries and the snapshot read.
fn full_before(ctx: &Ctx, cur: &TenantUser) -> Map<String, Value> {
    let mut b = Map::new();
    for attr in ctx.profile.attrs.iter() {
        if let Some(v) = cur.get(attr) {
            b.insert(attr.name().into(), json_of(v.as_ref()));
        }
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
    if let Some(n) = &cur.number {
        up.changes.push(FieldChange {
            field: Attr::Number.name().into(),
            old: json!(n.to_string()),
            new: Value::Null,
            added: vec![],
            removed: vec![],
        });
    }
    up.before = full_before(ctx, cur);
}

/// Shared by `action = disable` rows and mirror removals: release what a disable releases
/// (the attributes the table marks `disable_clears`: number and VRP).
/// `details_required`: a sheet row asked for this user's details, so their absence is a
/// caller bug; a mirror removal never has them and releases an unread value blind
/// (harmless, and the user holds no number afterwards, so a re-run plans nothing).
pub(crate) fn disable_ops(
    ctx: &Ctx,
    spec: &UserSpec,
    cur: &TenantUser,
    up: &mut UserPlan,
    rep: &mut Report,
    details_required: bool,
) {
    let mut changes = vec![];
    let cleared = Attr::all().filter(|a| a.info().disable_clears && ctx.profile.carries(*a));
    for attr in cleared {
        match cur.get(attr) {
            Some(v) if is_none_value(v.as_ref()) => {}
            Some(v) => {
                up.changes.push(FieldChange {
                    field: attr.name().into(),
                    old: json_of(v.as_ref()),
                    new: Value::Null,
                    added: vec![],
                    removed: vec![],
                });
                up.before.insert(attr.name().into(), json_of(v.as_ref()));
                changes.push(AttrChange {
                    attr,
                    before: Some(v),
                    after: none_of(attr),
                });
            }
            None if details_required => {
                rep.error(ctx, spec, Some(attr.name()), details_not_read(&[attr]));
                return;
            }
            None => {
                up.changes.push(FieldChange {
                    field: attr.name().into(),
                    old: json!(NOT_READ),
                    new: Value::Null,
                    added: vec![],
                    removed: vec![],
                });
                changes.push(AttrChange {
                    attr,
                    before: None,
                    after: none_of(attr),
                });
            }
        }
    }
    push_changes(up, changes);
}

/// The old value shown for a mirror removal's attribute whose details were never read.
pub(crate) const NOT_READ: &str = "(not read)";

/// The old value shown for what the backend never shows of a resource account.
pub(crate) const NOT_SHOWN: &str = "(not shown by the backend)";

fn details_not_read(attrs: &[Attr]) -> String {
    let names: Vec<&str> = attrs.iter().map(|a| a.name()).collect();
    format!(
        "{} details were not read for this user (the snapshot must read details for plan::detail_upns); refusing to guess",
        names.join("/")
    )
}

fn plan_disable(ctx: &Ctx, spec: &UserSpec, cur: &TenantUser, up: &mut UserPlan, rep: &mut Report) {
    // Clearing what a disable releases anyway is no other value.
    let other = spec
        .touched()
        .iter()
        .any(|a| !(a.info().disable_clears && matches!(spec.get(a), Field::Clear)));
    if other {
        rep.warnings.push(format!(
            "{}: action disable releases {} only; the row's other values are ignored",
            spec.upn,
            Attr::names_where(|i| i.disable_clears)
        ));
    }
    disable_ops(ctx, spec, cur, up, rep, true);
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

fn list_of(v: Option<&AttrValue>) -> Vec<String> {
    v.and_then(AttrValue::as_list)
        .map(<[String]>::to_vec)
        .unwrap_or_default()
}

/// An attribute the backend keeps only for users with a number, on a user that would end
/// without one: wanting any is an error, and there is nothing to change.
fn needs_a_number(
    ctx: &Ctx,
    spec: &UserSpec,
    want: &Want,
    end_number: &Option<E164>,
    rep: &mut Report,
) -> bool {
    if end_number.is_some() || !ctx.profile.need_number.contains(want.attr) {
        return false;
    }
    if !is_none_value(want.value.as_ref()) {
        rep.error(
            ctx,
            spec,
            Some(want.attr.name()),
            format!(
                "{} exist only for users with a number on the {} backend, and this user would end without one",
                want.attr.name(),
                ctx.backend
            ),
        );
    }
    true
}

fn plan_create(ctx: &Ctx, spec: &UserSpec, wants: &[Want], up: &mut UserPlan, rep: &mut Report) {
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
    let given: AttrSet = wants
        .iter()
        .filter(|w| !is_none_value(w.value.as_ref()))
        .map(|w| w.attr)
        .collect();
    let missing: Vec<Attr> = ctx
        .profile
        .create_needs
        .iter()
        .filter(|a| !given.contains(*a))
        .collect();
    let ra_type_missing = ctx.kind == JobKind::MsResourceAccounts && spec.account_type.is_none();
    if let Some(first) = missing.first() {
        // A backend-specific attribute (an extension) is named as a person calls it, and
        // comes from the row only.
        let common = missing.iter().any(|a| a.info().common);
        let mut names: Vec<&str> = missing
            .iter()
            .map(|a| if common { a.name() } else { a.info().noun })
            .collect();
        if ra_type_missing {
            names.push("accountType");
        }
        let (on, from) = if common {
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
    let value = |attr: Attr| {
        wants
            .iter()
            .find(|w| w.attr == attr)
            .and_then(|w| w.value.as_ref())
    };
    let end_number = value(Attr::Number).and_then(AttrValue::as_number).cloned();
    let end_licenses = list_of(value(Attr::Licenses));
    // The create request carries the user's properties; every other group follows as an
    // operation of its own, from nothing.
    let (props, rest): (Vec<&Want>, Vec<&Want>) = wants
        .iter()
        .filter(|w| !is_none_value(w.value.as_ref()))
        .partition(|w| w.attr.info().group == OpGroup::Properties);
    let mut create = vec![];
    for w in props {
        if let Some(v) = &w.value {
            create.push((w.attr, v.clone()));
            up.changes.push(field_change(ctx, w, None));
        }
    }
    push(up, Operation::create(create));
    let mut changes = vec![];
    for w in rest {
        if needs_a_number(ctx, spec, w, &end_number, rep) {
            continue;
        }
        let from = none_of(w.attr);
        up.changes.push(field_change(ctx, w, from.as_ref()));
        changes.push(AttrChange {
            attr: w.attr,
            before: Some(from),
            after: w.value.clone(),
        });
    }
    check_phone_system(ctx, spec, &end_number, &end_licenses, rep);
    push_changes(up, changes);
    up.before.clear(); // nothing to revert to: the user did not exist
}

fn plan_update(
    ctx: &Ctx,
    spec: &UserSpec,
    cur: &TenantUser,
    wants: &[Want],
    up: &mut UserPlan,
    rep: &mut Report,
) {
    // Attributes set only at creation: another value cannot be carried out.
    for attr in ctx.profile.create_only.iter() {
        let (Field::Set(want), Some(Some(have))) = (spec.get(attr), cur.get(attr)) else {
            continue;
        };
        if !same_value(attr, Some(&want), Some(&have)) {
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
    for w in wants {
        if w.value.is_none() && !w.attr.info().clearable {
            rep.error(
                ctx,
                spec,
                Some(w.attr.name()),
                format!("{} cannot be cleared", w.attr),
            );
        }
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
    let end_number = match &spec.number {
        Field::Keep => cur.number.clone(),
        Field::Clear => None,
        Field::Set(n) => Some(n.clone()),
    };
    // What the backend never shows of a resource account: sent blind (see below).
    let unshown = |a: Attr| {
        cur.account_type.is_some()
            && ctx.profile.unshown_on_accounts.contains(a)
            && cur.get(a).is_none()
    };
    // Details the row needs but the snapshot did not read: refuse to guess.
    let unread: Vec<Attr> = wants
        .iter()
        .map(|w| w.attr)
        .filter(|a| cur.get(*a).is_none() && !unshown(*a))
        .collect();
    if let Some(first) = unread.first() {
        rep.error(ctx, spec, Some(first.name()), details_not_read(&unread));
    }
    let mut changes = vec![];
    for w in wants {
        if w.value.is_none() && !w.attr.info().clearable {
            continue;
        }
        if unshown(w.attr) {
            // Nothing to compare with: sent on every run, its before unknown.
            let mut c = field_change(ctx, w, None);
            c.old = json!(NOT_SHOWN);
            up.changes.push(c);
            rep.warnings.push(format!(
                "{}: the {} backend does not show a resource account's {}, so it is sent on every run and cannot be verified",
                spec.upn, ctx.backend, w.attr
            ));
            changes.push(AttrChange {
                attr: w.attr,
                before: None,
                after: w.value.clone(),
            });
            continue;
        }
        let Some(mut current) = cur.get(w.attr) else {
            continue;
        };
        // Where the backend keeps it only for numbered users, a user without a number
        // holds none.
        if ctx.profile.need_number.contains(w.attr) && cur.number.is_none() {
            current = none_of(w.attr);
        }
        if needs_a_number(ctx, spec, w, &end_number, rep) {
            continue;
        }
        if same_value(w.attr, w.value.as_ref(), current.as_ref()) {
            continue;
        }
        up.changes.push(field_change(ctx, w, current.as_ref()));
        up.before
            .insert(w.attr.name().into(), json_of(current.as_ref()));
        changes.push(AttrChange {
            attr: w.attr,
            before: Some(current),
            after: w.value.clone(),
        });
    }
    let changed = |a: Attr| changes.iter().any(|c: &AttrChange| c.attr == a);
    if changed(Attr::Number) || changed(Attr::Licenses) {
        let end_licenses = match changes.iter().find(|c| c.attr == Attr::Licenses) {
            Some(c) => list_of(c.after.as_ref()),
            None => cur.licenses.clone(),
        };
        check_phone_system(ctx, spec, &end_number, &end_licenses, rep);
    }
    push_changes(up, changes);
}
