//! Wire ↔ model: turns Fusion's user and catalog objects into our normalised
//! [`TenantUser`] and [`Catalogs`].
//!
//! Tenant data is outside input: a record whose UPN does not parse is skipped, a field that
//! does not parse (country, number) is dropped, each with a warning — never a panic and
//! never a failed snapshot for one odd user.

use super::wire::{GroupsAnswer, LicensesAnswer, UsersPage, VrpsAnswer, WireUser};
use crate::model::{Country, GroupInfo, LicenseInfo, TenantUser, Upn, UserDetails, VrpInfo, E164};

/// Maps one user. `with_details` is true only for the single-user GET, the one answer that
/// carries groups and VRP (list entries have neither, so their `details` stay `None`).
pub fn user_from_wire(w: &WireUser, with_details: bool) -> Result<TenantUser, String> {
    let m = &w.ms_teams;
    let upn =
        Upn::parse(&m.user_principal_name).map_err(|e| format!("user {}: skipped, {e}", m.id))?;
    let country = match m.location.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(loc) => match Country::parse(loc) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(upn = %upn, "tenant location ignored: {e}");
                None
            }
        },
    };
    let number = match w
        .draas
        .as_ref()
        .and_then(|d| d.phone_number.as_deref())
        .map(str::trim)
    {
        None | Some("") => None,
        Some(n) => match E164::parse_canonical(n) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(upn = %upn, "tenant phone number ignored: {e}");
                None
            }
        },
    };
    let details = with_details.then(|| UserDetails {
        groups: m
            .groups
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|g| g.id().to_string())
            .collect(),
        vrp: m
            .vrp
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
    });
    Ok(TenantUser {
        id: m.id.clone(),
        upn,
        display_name: m.display_name.clone().unwrap_or_default(),
        country,
        voice_enabled: m
            .voice_enabled
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes")),
        number,
        licenses: m
            .licenses
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|l| l.sku_id.clone())
            .collect(),
        customer_licenses: w
            .draas
            .as_ref()
            .and_then(|d| d.customer_licenses.clone())
            .unwrap_or_default(),
        details,
        account_type: None,
    })
}

/// Maps a list page, skipping (with a warning) entries that are not user objects or whose
/// UPN does not parse.
pub fn users_from_page(page: &UsersPage) -> Vec<TenantUser> {
    page.users
        .iter()
        .filter_map(|raw| {
            let w: WireUser = match serde_json::from_value(raw.clone()) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!("tenant user entry skipped: not a user object ({e})");
                    return None;
                }
            };
            match user_from_wire(&w, false) {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        })
        .collect()
}

/// Orphan SRE-filter entries are left out: they name no group a user can join.
pub fn groups_from_wire(a: GroupsAnswer) -> Vec<GroupInfo> {
    a.groups
        .into_iter()
        .filter(|g| !g.orphan)
        .map(|g| GroupInfo {
            display_name: g.display_name.unwrap_or_else(|| g.id.clone()),
            id: g.id,
        })
        .collect()
}

pub fn licenses_from_wire(a: LicensesAnswer) -> Vec<LicenseInfo> {
    a.licenses
        .into_iter()
        .map(|l| LicenseInfo {
            sku_id: l.sku_id,
            sku_part_number: l.sku_part_number,
            sku_description: l.sku_description.filter(|d| !d.trim().is_empty()),
            total: l.total,
            free: l.free,
        })
        .collect()
}

pub fn vrps_from_wire(a: VrpsAnswer) -> Vec<VrpInfo> {
    a.into_items()
        .into_iter()
        .map(|v| VrpInfo {
            identity: v.identity,
            description: v.description.filter(|d| !d.trim().is_empty()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(v: serde_json::Value) -> WireUser {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn single_user_maps_every_field() {
        let w = wire(json!({
            "msTeams": {
                "id": "2da7", "userPrincipalName": "Thomas.Anderson@Netaxisdev.onmicrosoft.com",
                "displayName": "Thomas Anderson", "location": "nl",
                "groups": [{"displayName": "g", "id": "e54f"}],
                "licenses": [{"skuId": "295a", "skuPartNumber": "MCOCAP"}],
                "voiceEnabled": "yes", "vrp": "World-DRaaS"
            },
            "draas": {"id": 11, "customerLicenses": ["test-sku"], "phoneNumber": "+31302861233", "status": "active"}
        }));
        let u = user_from_wire(&w, true).unwrap();
        assert_eq!(u.id, "2da7");
        assert_eq!(u.upn.as_str(), "thomas.anderson@netaxisdev.onmicrosoft.com");
        assert_eq!(u.display_name, "Thomas Anderson");
        assert_eq!(u.country.unwrap().as_str(), "NL");
        assert!(u.voice_enabled);
        assert_eq!(u.number.unwrap().to_string(), "+31302861233");
        assert_eq!(u.licenses, vec!["295a"]);
        assert_eq!(u.customer_licenses, vec!["test-sku"]);
        let d = u.details.unwrap();
        assert_eq!(d.groups, vec!["e54f"]);
        assert_eq!(d.vrp.as_deref(), Some("World-DRaaS"));
    }

    #[test]
    fn list_entry_has_no_details_even_if_fields_present() {
        let w = wire(
            json!({"msTeams": {"id": "x", "userPrincipalName": "a@b.com", "displayName": "A",
            "voiceEnabled": "no", "groups": [], "vrp": "Global"}}),
        );
        let u = user_from_wire(&w, false).unwrap();
        assert!(u.details.is_none());
        assert!(!u.voice_enabled);
        assert!(u.number.is_none());
        assert!(u.customer_licenses.is_empty());
    }

    #[test]
    fn odd_fields_are_dropped_not_fatal() {
        for loc in ["", "  ", "XX", "Belgium", "UK"] {
            let w = wire(
                json!({"msTeams": {"id": "x", "userPrincipalName": "a@b.com", "location": loc,
                "voiceEnabled": "maybe"}, "draas": {"phoneNumber": "0032 2 540", "customerLicenses": []}}),
            );
            let u = user_from_wire(&w, true).unwrap();
            assert!(u.country.is_none(), "{loc}");
            assert!(u.number.is_none());
            assert!(!u.voice_enabled);
            assert_eq!(u.display_name, "");
            let d = u.details.unwrap();
            assert!(d.groups.is_empty());
            assert!(d.vrp.is_none());
        }
        let w = wire(json!({"msTeams": {"id": "x", "userPrincipalName": "a@b.com", "vrp": ""}}));
        assert!(user_from_wire(&w, true)
            .unwrap()
            .details
            .unwrap()
            .vrp
            .is_none());
    }

    #[test]
    fn page_skips_bad_upns_and_non_objects() {
        let page: UsersPage = serde_json::from_value(json!({"users": [
            {"msTeams": {"id": "1", "userPrincipalName": "not a upn", "displayName": "Bad"}},
            {"msTeams": {"id": "2", "userPrincipalName": "ok@contoso.com", "displayName": "Ok"}},
            "garbage",
            {"msTeams": {"id": 3}},
            {"draas": {}}
        ]}))
        .unwrap();
        let users = users_from_page(&page);
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].id, "2");
    }

    #[test]
    fn catalogs_map_and_drop_orphans() {
        let g: GroupsAnswer = serde_json::from_value(json!({"groups": [
            {"id": "a", "displayName": "All"}, {"id": "o", "displayName": "Orphan", "orphan": true}, {"id": "n"}]}))
        .unwrap();
        let g = groups_from_wire(g);
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].display_name, "n");
        let l: LicensesAnswer = serde_json::from_value(json!({"licenses": [
            {"skuId": "s", "skuPartNumber": "P", "skuDescription": "", "total": 5, "free": 1}]}))
        .unwrap();
        let l = licenses_from_wire(l);
        assert_eq!(
            (l[0].total, l[0].free, l[0].sku_description.clone()),
            (5, 1, None)
        );
        let v: VrpsAnswer = serde_json::from_value(
            json!({"results": [{"identity": "Global", "description": "Global"}]}),
        )
        .unwrap();
        assert_eq!(vrps_from_wire(v)[0].description.as_deref(), Some("Global"));
    }
}
