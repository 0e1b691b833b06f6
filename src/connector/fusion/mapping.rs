//! Wire ↔ model: turns Fusion's user and catalog objects into our normalised
//! [`TenantUser`] and [`Catalogs`](crate::model::Catalogs).
//!
//! Tenant data is outside input: a record whose UPN does not parse is skipped, a field that
//! does not parse (country, number) is dropped, each with a warning — never a panic and
//! never a failed snapshot for one odd user.

use super::wire::{
    DraasUser, GroupsAnswer, LicenseRef, LicensesAnswer, ResourceAccountsAnswer, UsersPage,
    VrpsAnswer, WireResourceAccount, WireUser,
};
use crate::model::{
    AccountType, Country, GroupInfo, LicenseInfo, TenantUser, Upn, UserDetails, VrpInfo, E164,
};

/// Maps one user. `with_details` is true only for the single-user GET, the one answer that
/// carries groups and VRP (list entries have neither, so their `details` stay `None`).
pub fn user_from_wire(w: &WireUser, with_details: bool) -> Result<TenantUser, String> {
    let m = &w.ms_teams;
    let upn =
        Upn::parse(&m.user_principal_name).map_err(|e| format!("user {}: skipped, {e}", m.id))?;
    let country = parse_country(&upn, m.location.as_deref());
    let number = parse_number(
        &upn,
        w.draas.as_ref().and_then(|d| d.phone_number.as_deref()),
        "tenant phone number",
    );
    let details = with_details.then(|| UserDetails {
        groups: m
            .groups
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|g| g.id().to_string())
            .collect(),
        vrp: vrp_name(m.vrp.as_deref()),
    });
    Ok(TenantUser {
        display_name: m.display_name.clone().unwrap_or_default(),
        country,
        voice_enabled: m
            .voice_enabled
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("yes")),
        number,
        licenses: sku_ids(m.licenses.as_deref()),
        customer_licenses: customer_licenses(w.draas.as_ref()),
        details,
        ..TenantUser::new(m.id.clone(), upn)
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

/// Maps a resource account. Its number is the `draas` one, else the `msTeams` one. It has
/// no single GET, so its details exist only when the list reports `vrp` (groups: none).
/// `voice_enabled` is true: the tenant gives every resource account its virtual-user
/// Phone System license itself.
pub fn resource_account_from_wire(w: &WireResourceAccount) -> Result<TenantUser, String> {
    let m = &w.ms_teams;
    let upn = Upn::parse(&m.user_principal_name)
        .map_err(|e| format!("resource account {}: skipped, {e}", m.id))?;
    let account_type: AccountType = match m.account_type.as_deref().map(str::trim) {
        Some(t) => serde_json::from_value(serde_json::Value::String(t.to_ascii_lowercase()))
            .map_err(|_| format!("resource account {upn}: skipped, unknown accountType {t:?}"))?,
        None => return Err(format!("resource account {upn}: skipped, no accountType")),
    };
    let draas_number = w.draas.as_ref().and_then(|d| d.phone_number.as_deref());
    let number = parse_number(
        &upn,
        draas_number.or(m.phone_number.as_deref()),
        "resource account phone number",
    );
    Ok(TenantUser {
        display_name: m.display_name.clone().unwrap_or_default(),
        country: parse_country(&upn, m.location.as_deref()),
        voice_enabled: true,
        number,
        licenses: sku_ids(m.licenses.as_deref()),
        customer_licenses: customer_licenses(w.draas.as_ref()),
        details: m.vrp.as_ref().map(|v| UserDetails {
            groups: Vec::new(),
            vrp: vrp_name(v.as_deref()),
        }),
        account_type: Some(account_type),
        ..TenantUser::new(m.id.clone(), upn)
    })
}

/// A number from the tenant; one that is not E.164 is dropped with a warning (`what` says
/// which field), never a failed snapshot.
fn parse_number(upn: &Upn, raw: Option<&str>, what: &str) -> Option<E164> {
    match raw.map(str::trim) {
        None | Some("") => None,
        Some(n) => match E164::parse_canonical(n) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(upn = %upn, "{what} ignored: {e}");
                None
            }
        },
    }
}

fn sku_ids(licenses: Option<&[LicenseRef]>) -> Vec<String> {
    licenses
        .unwrap_or_default()
        .iter()
        .map(|l| l.sku_id.clone())
        .collect()
}

/// Customer licenses live only in the `draas` object (users with a number).
fn customer_licenses(d: Option<&DraasUser>) -> Vec<String> {
    d.and_then(|d| d.customer_licenses.clone())
        .unwrap_or_default()
}

/// A VRP name; blank means none.
fn vrp_name(v: Option<&str>) -> Option<String> {
    v.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// Maps the resource-account list, skipping odd entries with a warning.
pub fn resource_accounts_from_answer(a: &ResourceAccountsAnswer) -> Vec<TenantUser> {
    a.resource_accounts
        .iter()
        .filter_map(|raw| {
            let w: WireResourceAccount = match serde_json::from_value(raw.clone()) {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(
                        "resource account entry skipped: not a resource account object ({e})"
                    );
                    return None;
                }
            };
            resource_account_from_wire(&w)
                .map_err(|e| tracing::warn!("{e}"))
                .ok()
        })
        .collect()
}

fn parse_country(upn: &Upn, loc: Option<&str>) -> Option<Country> {
    match loc.map(str::trim) {
        None | Some("") => None,
        Some(loc) => match Country::parse(loc) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(upn = %upn, "tenant location ignored: {e}");
                None
            }
        },
    }
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
    fn resource_accounts_map_with_type_number_and_optional_vrp() {
        let a: ResourceAccountsAnswer = serde_json::from_value(json!({"resourceAccounts": [
            {"msTeams": {"id": "r1", "userPrincipalName": "CQ@contoso.com", "displayName": "Queue",
                "location": "BE", "phoneNumber": "+3225405239", "accountType": "call-queue",
                "licenses": [{"skuId": "vu", "skuPartNumber": "PHONESYSTEM_VIRTUALUSER"}]},
             "draas": {"id": 117, "customerLicenses": ["test-sku"], "phoneNumber": "+3225405239", "status": "active"}},
            {"msTeams": {"id": "r2", "userPrincipalName": "aa@contoso.com", "displayName": "AA",
                "location": "NL", "accountType": "auto-attendant", "vrp": "Global"}},
            {"msTeams": {"id": "r3", "userPrincipalName": "x@contoso.com", "accountType": "fax-machine"}},
            {"msTeams": {"id": "r4", "userPrincipalName": "y@contoso.com"}},
            {"msTeams": {"id": "r5", "userPrincipalName": "z@contoso.com", "accountType": "call-queue",
                "phoneNumber": "+3225405240"}},
            42
        ]}))
        .unwrap();
        let ras = resource_accounts_from_answer(&a);
        assert_eq!(ras.len(), 3);
        assert_eq!(ras[0].upn.as_str(), "cq@contoso.com");
        assert_eq!(ras[0].account_type, Some(AccountType::CallQueue));
        assert_eq!(ras[0].number.as_ref().unwrap().to_string(), "+3225405239");
        assert_eq!(ras[0].customer_licenses, ["test-sku"]);
        assert!(ras[0].details.is_none(), "vrp not reported: unknown");
        assert_eq!(ras[1].account_type, Some(AccountType::AutoAttendant));
        assert_eq!(
            ras[1].details.as_ref().unwrap().vrp.as_deref(),
            Some("Global")
        );
        assert_eq!(ras[2].number.as_ref().unwrap().to_string(), "+3225405240");
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
