//! Sheet names → catalog entries (groups, licenses, VRPs).
//!
//! A sheet names things the way people do ("Project X", "E5", "BE-National"); the tenant
//! wants object IDs. Matching is case-insensitive and exact (no fuzzy guesses: a wrong group
//! is worse than an error), in tiers: an exact ID wins over a name, so a sheet can always
//! disambiguate by pasting the ID the error lists.

use crate::model::attr::Catalog;
use crate::model::{Catalogs, GroupInfo, LicenseInfo, VrpInfo};
use std::collections::HashMap;

/// Why a name did not resolve to exactly one catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ResolveError {
    /// Nothing matched; the strings are near misses worth suggesting (may be empty).
    Unknown(Vec<String>),
    /// Several entries matched; each is described as "name (id)".
    Ambiguous(Vec<String>),
}

impl ResolveError {
    /// The text of a plan error, e.g. `unknown group "Sales": candidates: ...`.
    pub(crate) fn describe(&self, what: &str, name: &str) -> String {
        match self {
            ResolveError::Unknown(near) if near.is_empty() => {
                format!("unknown {what} {name:?}: the tenant has no {what} of that name")
            }
            ResolveError::Unknown(near) => {
                format!("unknown {what} {name:?}; did you mean: {}", near.join(", "))
            }
            ResolveError::Ambiguous(cands) => format!(
                "ambiguous {what} {name:?}: {} entries match ({}); use the id instead",
                cands.len(),
                cands.join(", ")
            ),
        }
    }
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

/// A key of a catalog entry that a name may match (None: the entry lacks that key).
type KeyFn<T> = fn(&T) -> Option<&str>;

const GROUP_KEYS: [KeyFn<GroupInfo>; 2] = [|g| Some(&g.id), |g| Some(&g.display_name)];
const LICENSE_KEYS: [KeyFn<LicenseInfo>; 3] = [
    |l| Some(&l.sku_id),
    |l| Some(&l.sku_part_number),
    |l| l.sku_description.as_deref(),
];
const VRP_KEYS: [KeyFn<VrpInfo>; 2] = [|v| Some(&v.identity), |v| v.description.as_deref()];

/// Normalised key → entry positions, one map per tier, built once per snapshot so that
/// resolving 100k rows does not scan the catalogs for every cell.
struct Index {
    tiers: Vec<HashMap<String, Vec<usize>>>,
}

impl Index {
    fn build<T>(items: &[T], keys: &[KeyFn<T>]) -> Index {
        let tiers = keys
            .iter()
            .map(|key| {
                let mut m: HashMap<String, Vec<usize>> = HashMap::new();
                for (i, it) in items.iter().enumerate() {
                    if let Some(k) = key(it) {
                        m.entry(norm(k)).or_default().push(i);
                    }
                }
                m
            })
            .collect();
        Index { tiers }
    }

    /// Picks from the first tier that matches; several matches in that tier are ambiguous.
    fn find<'a, T>(
        &self,
        items: &'a [T],
        name: &str,
        keys: &[KeyFn<T>],
        describe: fn(&T) -> String,
    ) -> Result<&'a T, ResolveError> {
        let needle = norm(name);
        for tier in &self.tiers {
            match tier.get(&needle).map(Vec::as_slice) {
                None | Some([]) => {}
                Some([one]) => return Ok(&items[*one]),
                Some(many) => {
                    return Err(ResolveError::Ambiguous(
                        many.iter().map(|&i| describe(&items[i])).collect(),
                    ))
                }
            }
        }
        // Near misses: substring either way, at most five, for the error message only.
        let mut near: Vec<String> = Vec::new();
        if !needle.is_empty() {
            for it in items {
                let hit = keys.iter().any(|key| {
                    key(it).is_some_and(|k| {
                        let k = norm(k);
                        !k.is_empty() && (k.contains(&needle) || needle.contains(&k))
                    })
                });
                if hit && near.len() < 5 {
                    near.push(describe(it));
                }
            }
        }
        Err(ResolveError::Unknown(near))
    }
}

/// Resolves names against one snapshot's catalogs.
pub(crate) struct Resolver<'a> {
    pub catalogs: &'a Catalogs,
    groups: Index,
    licenses: Index,
    vrps: Index,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(catalogs: &'a Catalogs) -> Self {
        Resolver {
            catalogs,
            groups: Index::build(&catalogs.groups, &GROUP_KEYS),
            licenses: Index::build(&catalogs.licenses, &LICENSE_KEYS),
            vrps: Index::build(&catalogs.vrps, &VRP_KEYS),
        }
    }

    /// Groups by object ID, then displayName.
    pub(crate) fn group(&self, name: &str) -> Result<&'a GroupInfo, ResolveError> {
        self.groups
            .find(&self.catalogs.groups, name, &GROUP_KEYS, |g| {
                format!("{} ({})", g.display_name, g.id)
            })
    }

    /// Licenses by skuId, then skuPartNumber, then skuDescription.
    pub(crate) fn license(&self, name: &str) -> Result<&'a LicenseInfo, ResolveError> {
        self.licenses
            .find(&self.catalogs.licenses, name, &LICENSE_KEYS, |l| {
                format!("{} ({})", l.sku_part_number, l.sku_id)
            })
    }

    /// VRPs by identity, then description.
    pub(crate) fn vrp(&self, name: &str) -> Result<&'a VrpInfo, ResolveError> {
        self.vrps.find(&self.catalogs.vrps, name, &VRP_KEYS, |v| {
            match &v.description {
                Some(d) => format!("{} ({d})", v.identity),
                None => v.identity.clone(),
            }
        })
    }

    /// A sheet name → the id carried and the name shown, from `catalog`.
    pub(crate) fn resolve(
        &self,
        catalog: Catalog,
        name: &str,
    ) -> Result<(String, String), ResolveError> {
        match catalog {
            Catalog::Groups => self
                .group(name)
                .map(|g| (g.id.clone(), g.display_name.clone())),
            Catalog::Licenses => self
                .license(name)
                .map(|l| (l.sku_id.clone(), l.sku_part_number.clone())),
            Catalog::Vrps => self
                .vrp(name)
                .map(|v| (v.identity.clone(), v.identity.clone())),
        }
    }

    /// How a person reads an id of `catalog` (the id itself where the catalog lacks it).
    pub(crate) fn name_of(&self, catalog: Option<Catalog>, id: &str) -> String {
        match catalog {
            Some(Catalog::Groups) => self.group_name(id),
            Some(Catalog::Licenses) => self.license_name(id),
            Some(Catalog::Vrps) | None => id.to_string(),
        }
    }

    /// Display name of a group ID, falling back to the ID for groups the catalog lacks.
    pub(crate) fn group_name(&self, id: &str) -> String {
        self.groups.tiers[0]
            .get(&norm(id))
            .and_then(|v| v.first())
            .map_or_else(
                || id.to_string(),
                |&i| self.catalogs.groups[i].display_name.clone(),
            )
    }

    /// skuPartNumber of a skuId, falling back to the ID.
    pub(crate) fn license_name(&self, sku_id: &str) -> String {
        self.license_by_id(sku_id)
            .map_or_else(|| sku_id.to_string(), |l| l.sku_part_number.clone())
    }

    pub(crate) fn license_by_id(&self, sku_id: &str) -> Option<&'a LicenseInfo> {
        self.licenses.tiers[0]
            .get(&norm(sku_id))
            .and_then(|v| v.first())
            .map(|&i| &self.catalogs.licenses[i])
    }
}

/// Whether a license SKU carries Teams Phone System, which Teams requires before it
/// assigns a number. The part numbers are Microsoft's: Teams Phone Standard (MCOEV and its
/// variants), the resource-account virtual user, the E5 suites (ENTERPRISEPREMIUM*,
/// SPE_E5*), the Common Area Phone (MCOCAP, which Fusion's own example gives a number) and
/// Teams Phone with Calling Plan (MCOTEAMS_ESSENTIALS) all include it.
pub(crate) fn carries_phone_system(sku_part_number: &str) -> bool {
    let p = sku_part_number.trim().to_uppercase();
    p == "MCOEV"
        || p.starts_with("MCOEV_")
        || p == "PHONESYSTEM_VIRTUALUSER"
        || p.starts_with("ENTERPRISEPREMIUM")
        || p.starts_with("SPE_E5")
        || p == "MCOCAP"
        || p == "MCOTEAMS_ESSENTIALS"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats() -> Catalogs {
        Catalogs {
            groups: vec![
                GroupInfo {
                    id: "g1".into(),
                    display_name: "Project X".into(),
                },
                GroupInfo {
                    id: "g2".into(),
                    display_name: "project x".into(),
                },
                GroupInfo {
                    id: "g3".into(),
                    display_name: "Sales".into(),
                },
            ],
            licenses: vec![LicenseInfo {
                sku_id: "AAAA-1".into(),
                sku_part_number: "MCOEV".into(),
                sku_description: Some("Microsoft Teams Phone Standard".into()),
                total: 10,
                free: 3,
            }],
            vrps: vec![VrpInfo {
                identity: "BE-National".into(),
                description: Some("Belgium".into()),
            }],
        }
    }

    #[test]
    fn groups_resolve_by_id_or_name_case_insensitively() {
        let c = cats();
        let r = Resolver::new(&c);
        assert_eq!(r.group("SALES").unwrap().id, "g3");
        assert_eq!(r.group("G1").unwrap().id, "g1");
        match r.group("Project X") {
            Err(ResolveError::Ambiguous(c)) => {
                assert_eq!(
                    c,
                    vec!["Project X (g1)".to_string(), "project x (g2)".to_string()]
                );
            }
            other => panic!("expected ambiguity, got {other:?}"),
        }
        match r.group("Sale") {
            Err(ResolveError::Unknown(near)) => assert_eq!(near, vec!["Sales (g3)".to_string()]),
            other => panic!("expected unknown, got {other:?}"),
        }
    }

    #[test]
    fn licenses_resolve_by_part_number_id_or_description() {
        let c = cats();
        let r = Resolver::new(&c);
        assert_eq!(r.license("mcoev").unwrap().sku_id, "AAAA-1");
        assert_eq!(r.license("aaaa-1").unwrap().sku_id, "AAAA-1");
        assert_eq!(
            r.license("microsoft teams phone standard").unwrap().sku_id,
            "AAAA-1"
        );
        assert!(r.license("E3").is_err());
        assert_eq!(r.license_name("aaaa-1"), "MCOEV");
        assert_eq!(r.license_name("zzz"), "zzz");
    }

    #[test]
    fn vrps_resolve_by_identity_then_description() {
        let c = cats();
        let r = Resolver::new(&c);
        assert_eq!(r.vrp("be-national").unwrap().identity, "BE-National");
        assert_eq!(r.vrp("belgium").unwrap().identity, "BE-National");
        assert!(r.vrp("NL").is_err());
    }

    #[test]
    fn phone_system_skus() {
        for p in [
            "MCOEV",
            "mcoev_gov",
            "PHONESYSTEM_VIRTUALUSER",
            "ENTERPRISEPREMIUM",
            "SPE_E5",
        ] {
            assert!(carries_phone_system(p), "{p}");
        }
        for p in ["STANDARDPACK", "MCOPSTNC", "ENTERPRISEPACK", "FLOW_FREE"] {
            assert!(!carries_phone_system(p), "{p}");
        }
    }
}
