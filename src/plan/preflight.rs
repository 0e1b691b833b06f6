//! Pre-flight: would the tenant have enough free licenses for the whole plan?
//!
//! Running out of licenses halfway through a 5,000-user migration leaves a tenant half
//! done; counting first turns that into a plan error. The count is net: assignments the
//! plan adds minus the ones it frees (license removals, deleted users). Timing within the
//! run is not modelled — a plan that frees licenses from some users and gives them to
//! others may still see a transient shortage at apply time if the gains run first.
//! (Names that do not resolve and numbers that are not free are caught by `resolve` and
//! `numbers`; this module only counts.)

use super::diff::Report;
use super::model::{Operation, UserPlan};
use crate::model::{Attr, AttrValue, Diagnostic, JobKind, Snapshot, TenantUser, Upn};
use std::collections::{BTreeMap, HashMap};

/// The SKU Fusion gives every resource account it creates.
const VIRTUAL_USER_SKU: &str = "PHONESYSTEM_VIRTUALUSER";

pub(crate) fn check_licenses(
    users: &[UserPlan],
    snapshot: &Snapshot,
    kind: JobKind,
    file: &str,
    rep: &mut Report,
) {
    let by_upn: HashMap<&Upn, &TenantUser> = snapshot.users.iter().map(|u| (&u.upn, u)).collect();
    let key = |s: &str| s.trim().to_lowercase();
    // skuId (lowercase) → (net change, users gaining it)
    let mut net: BTreeMap<String, (i64, Vec<String>)> = BTreeMap::new();
    let virtual_user = snapshot
        .catalogs
        .licenses
        .iter()
        .find(|l| l.sku_part_number.eq_ignore_ascii_case(VIRTUAL_USER_SKU));
    for up in users {
        let current: Vec<String> = by_upn
            .get(&up.upn)
            .map(|t| t.licenses.iter().map(|l| key(l)).collect())
            .unwrap_or_default();
        let mut end = current.clone();
        for op in &up.ops {
            match &op.op {
                o @ Operation::Set { .. } if o.change(Attr::Licenses).is_some() => {
                    end = match o.sets(Attr::Licenses) {
                        Some(Some(AttrValue::List(ids))) => ids.iter().map(|l| key(l)).collect(),
                        _ => Vec::new(),
                    }
                }
                Operation::Delete => end.clear(),
                Operation::Create { .. } if kind == JobKind::MsResourceAccounts => match virtual_user {
                    Some(v) => end.push(key(&v.sku_id)),
                    None => rep.errors.push(Diagnostic {
                        file: file.to_string(),
                        row: up.origin.as_ref().map(|o| o.row),
                        column: None,
                        message: format!(
                            "{}: creating a resource account needs a free {VIRTUAL_USER_SKU} license, and the tenant has none",
                            up.upn
                        ),
                    }),
                },
                _ => {}
            }
        }
        for sku in &end {
            if !current.contains(sku) {
                let e = net.entry(sku.clone()).or_default();
                e.0 += 1;
                e.1.push(up.upn.to_string());
            }
        }
        for sku in &current {
            if !end.contains(sku) {
                net.entry(sku.clone()).or_default().0 -= 1;
            }
        }
    }
    for (sku, (n, gainers)) in net {
        if n <= 0 {
            continue;
        }
        let Some(info) = snapshot
            .catalogs
            .licenses
            .iter()
            .find(|l| key(&l.sku_id) == sku)
        else {
            continue; // unresolvable names are reported by the resolver
        };
        if n > info.free {
            let mut who = gainers
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if gainers.len() > 5 {
                who.push_str(&format!(" and {} more", gainers.len() - 5));
            }
            rep.errors.push(Diagnostic {
                file: file.to_string(),
                row: None,
                column: Some("licenses".into()),
                message: format!(
                    "not enough {} licenses: the plan needs {n} more than it frees, the tenant has {} free (assigned to {who})",
                    info.sku_part_number, info.free
                ),
            });
        }
    }
}
