//! `number = auto`: concrete numbers from named ranges, chosen before the diff.
//!
//! A row asking for `auto` names a range (its own `auto:RANGE`, or its template's
//! `number_range`). Choosing here, before any per-user diff, means the plan shows (and the
//! history records) a concrete number like any other, and the number checks downstream
//! (claimed twice, held by someone else) apply to it unchanged.
//!
//! Rules, all deterministic so that the same sheet and snapshot give the same plan:
//! - a user who already holds a number keeps it (so a second run changes nothing);
//! - otherwise the lowest free number of the range that no row of this sheet names or
//!   has been given already, in sheet order;
//! - an explicit number (or `-`) in the row wins over the range; `disable`/`delete` rows
//!   ignore it;
//! - an unknown range, a full range, or a backend without ranges is a plan error on the
//!   row's `number` column.

use super::diff::{Ctx, Report};
use crate::model::{Field, RowAction, Snapshot, TenantUser, Upn, UserSpec, E164};
use std::collections::{HashMap, HashSet};

/// The specs with every `auto` number resolved, or `None` when no row asks for one (the
/// caller then uses its own slice, no copy).
pub(crate) fn assign(
    ctx: &Ctx,
    specs: &[UserSpec],
    snapshot: &Snapshot,
    rep: &mut Report,
) -> Option<Vec<UserSpec>> {
    let wants = |s: &UserSpec| {
        s.number_range.is_some() && s.number.is_keep() && s.action == RowAction::Upsert
    };
    if !specs.iter().any(wants) {
        return None;
    }
    let by_upn: HashMap<&Upn, &TenantUser> = snapshot.users.iter().map(|u| (&u.upn, u)).collect();
    // Numbers already spoken for: written in the sheet or held in the tenant.
    let mut taken: HashSet<E164> = specs
        .iter()
        .filter_map(|s| s.number.as_set().cloned())
        .collect();
    taken.extend(snapshot.users.iter().filter_map(|u| u.number.clone()));
    let mut out = specs.to_vec();
    for spec in out.iter_mut().filter(|s| wants(s)) {
        let Some(range_name) = spec.number_range.clone() else {
            continue;
        };
        if !ctx.profile.number_ranges {
            let msg = format!(
                "number `auto` (range {range_name:?}) needs a backend with number ranges, and the {} backend has none; write the number",
                ctx.backend
            );
            rep.error(ctx, spec, Some("number"), msg);
            continue;
        }
        if by_upn.get(&spec.upn).is_some_and(|u| u.number.is_some()) {
            continue;
        }
        let wanted = range_name.trim().to_lowercase();
        let Some(range) = snapshot
            .number_ranges
            .iter()
            .find(|r| r.name.trim().to_lowercase() == wanted)
        else {
            let known: Vec<&str> = snapshot
                .number_ranges
                .iter()
                .map(|r| r.name.as_str())
                .collect();
            let msg = if known.is_empty() {
                format!("unknown number range {range_name:?}: the tenant lists no ranges")
            } else {
                format!(
                    "unknown number range {range_name:?} (known: {})",
                    known.join(", ")
                )
            };
            rep.error(ctx, spec, Some("number"), msg);
            continue;
        };
        if let Some(n) = range.numbers_free.iter().find(|n| !taken.contains(*n)) {
            taken.insert(n.clone());
            spec.number = Field::Set(n.clone());
        } else {
            let msg = format!(
                "number range {:?} has no free number left for `auto` ({} free in the tenant, all given to earlier rows or held)",
                range.name,
                range.numbers_free.len()
            );
            rep.error(ctx, spec, Some("number"), msg);
        }
    }
    Some(out)
}
