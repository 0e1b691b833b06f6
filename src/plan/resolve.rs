//! Sheet names → catalog entries (groups, licenses, VRPs).
//!
//! A sheet names things the way people do ("Project X", "E5", "BE-National"); the tenant
//! wants object IDs. Matching is case-insensitive and exact (no fuzzy guesses: a wrong group
//! is worse than an error), in tiers: an exact ID wins over a name, so a sheet can always
//! disambiguate by pasting the ID the error lists.

use crate::model::{Catalogs, GroupInfo, LicenseInfo, VrpInfo};

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

fn eq(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// A key of a catalog entry that a name may match (None: the entry lacks that key).
type KeyFn<'k, T> = &'k dyn Fn(&T) -> Option<&str>;

/// Picks from the first tier that matches; several matches in that tier are ambiguous.
fn tiered<'a, T>(
    items: &'a [T],
    name: &str,
    tiers: &[KeyFn<'_, T>],
    describe: &dyn Fn(&T) -> String,
) -> Result<&'a T, ResolveError> {
    for tier in tiers {
        let hits: Vec<&T> = items
            .iter()
            .filter(|it| tier(it).is_some_and(|k| eq(k, name)))
            .collect();
        match hits.len() {
            0 => continue,
            1 => return Ok(hits[0]),
            _ => {
                return Err(ResolveError::Ambiguous(
                    hits.iter().map(|h| describe(h)).collect(),
                ))
            }
        }
    }
    // Near misses: substring either way, at most five, for the error message only.
    let needle = name.trim().to_lowercase();
    let mut near: Vec<String> = Vec::new();
    if !needle.is_empty() {
        for it in items {
            let hit = tiers.iter().any(|t| {
                t(it).is_some_and(|k| {
                    let k = k.to_lowercase();
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

/// Resolves names against one snapshot's catalogs.
pub(crate) struct Resolver<'a> {
    pub catalogs: &'a Catalogs,
}

impl<'a> Resolver<'a> {
    pub(crate) fn new(catalogs: &'a Catalogs) -> Self {
        Resolver { catalogs }
    }

    /// Groups by object ID, then displayName.
    pub(crate) fn group(&self, name: &str) -> Result<&'a GroupInfo, ResolveError> {
        tiered(
            &self.catalogs.groups,
            name,
            &[&|g: &GroupInfo| Some(g.id.as_str()), &|g: &GroupInfo| {
                Some(g.display_name.as_str())
            }],
            &|g| format!("{} ({})", g.display_name, g.id),
        )
    }

    /// Licenses by skuId, then skuPartNumber, then skuDescription.
    pub(crate) fn license(&self, name: &str) -> Result<&'a LicenseInfo, ResolveError> {
        tiered(
            &self.catalogs.licenses,
            name,
            &[
                &|l: &LicenseInfo| Some(l.sku_id.as_str()),
                &|l: &LicenseInfo| Some(l.sku_part_number.as_str()),
                &|l: &LicenseInfo| l.sku_description.as_deref(),
            ],
            &|l| format!("{} ({})", l.sku_part_number, l.sku_id),
        )
    }

    /// VRPs by identity, then description.
    pub(crate) fn vrp(&self, name: &str) -> Result<&'a VrpInfo, ResolveError> {
        tiered(
            &self.catalogs.vrps,
            name,
            &[&|v: &VrpInfo| Some(v.identity.as_str()), &|v: &VrpInfo| {
                v.description.as_deref()
            }],
            &|v| match &v.description {
                Some(d) => format!("{} ({d})", v.identity),
                None => v.identity.clone(),
            },
        )
    }

    /// Display name of a group ID, falling back to the ID for groups the catalog lacks.
    pub(crate) fn group_name(&self, id: &str) -> String {
        self.catalogs
            .groups
            .iter()
            .find(|g| eq(&g.id, id))
            .map(|g| g.display_name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// skuPartNumber of a skuId, falling back to the ID.
    pub(crate) fn license_name(&self, sku_id: &str) -> String {
        self.license_by_id(sku_id)
            .map(|l| l.sku_part_number.clone())
            .unwrap_or_else(|| sku_id.to_string())
    }

    pub(crate) fn license_by_id(&self, sku_id: &str) -> Option<&'a LicenseInfo> {
        self.catalogs
            .licenses
            .iter()
            .find(|l| eq(&l.sku_id, sku_id))
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
                )
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
