//! Wire ↔ model for Live Platform: users with their Teams Phone attributes, the licensed
//! users joined onto them, the catalogs derived from both, and problem-details errors.
//!
//! Tenant data is outside input: a record whose UPN does not parse is skipped and a field
//! that does not parse (usage location, LineURI) is dropped, each with a warning; one odd
//! user never fails an audit. The field table is in the module doc of `super`.

use super::wire::{LicensedUser, Problem, TeamsUser, UsersPage};
use crate::connector::http::{excerpt, parse_error_body};
use crate::model::{Catalogs, Country, LicenseInfo, TenantUser, Upn, UserDetails, VrpInfo, E164};
use reqwest::StatusCode;
use std::collections::{BTreeMap, HashMap};

/// Said in the license catalog, so `tenant licenses` shows where these come from.
pub const LICENSE_DESCRIPTION: &str = "Live Platform license criterion";

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

/// `sip:alice@contoso.com` and `alice@contoso.com` name the same SIP user: compared without
/// the scheme, case-insensitively.
pub fn sip_key(s: &str) -> String {
    let s = s.trim();
    let s = match s.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("sip:") => &s[4..],
        _ => s,
    };
    s.to_lowercase()
}

/// One listed user, with details (the list carries the VRP; Live Platform has no groups).
/// Licenses are joined later from the licensed-users answer.
pub fn user_from_wire(w: &TeamsUser) -> Result<TenantUser, String> {
    let id = non_empty(w.identity.as_deref())
        .or(non_empty(w.object_id.as_deref()))
        .map(str::to_lowercase);
    let upn = Upn::parse(&w.user_principal_name)
        .map_err(|e| format!("user {}: skipped, {e}", id.as_deref().unwrap_or("?")))?;
    let country = non_empty(w.usage_location.as_deref()).and_then(|c| {
        Country::parse(c)
            .map_err(|e| tracing::warn!(upn = %upn, "UsageLocation ignored: {e}"))
            .ok()
    });
    let number = non_empty(w.line_uri.as_deref()).and_then(|n| {
        E164::parse_canonical(n)
            .map_err(|e| tracing::warn!(upn = %upn, "LineURI ignored: {e}"))
            .ok()
    });
    Ok(TenantUser {
        display_name: w.web_name.as_deref().unwrap_or_default().trim().to_string(),
        country,
        voice_enabled: w.enterprise_voice_enabled.unwrap_or(false),
        number,
        details: Some(UserDetails {
            groups: Vec::new(),
            vrp: non_empty(w.online_voice_routing_policy.as_deref()).map(str::to_string),
        }),
        // No id at all is survivable: the UPN identifies the user to this read-only connector.
        ..TenantUser::new(id.unwrap_or_else(|| upn.to_string()), upn)
    })
}

/// The users of a page plus the SIP key of each (for the license join), skipping entries
/// that are not user objects or whose UPN does not parse.
pub fn users_from_page(page: &UsersPage) -> Vec<(TenantUser, Option<String>)> {
    page.data
        .iter()
        .filter_map(|raw| {
            let w: TeamsUser = serde_json::from_value(raw.clone())
                .map_err(|e| tracing::warn!("tenant user entry skipped: not a user object ({e})"))
                .ok()?;
            let sip = non_empty(w.sip_address.as_deref()).map(sip_key);
            user_from_wire(&w)
                .map_err(|e| tracing::warn!("{e}"))
                .ok()
                .map(|u| (u, sip))
        })
        .collect()
}

/// Parses the licensed-users array entry by entry (bad entries skipped with a warning).
pub fn licensed_from_wire(raw: &[serde_json::Value]) -> Vec<LicensedUser> {
    raw.iter()
        .filter_map(|v| {
            serde_json::from_value::<LicensedUser>(v.clone())
                .map_err(|e| tracing::warn!("licensed user entry skipped ({e})"))
                .ok()
        })
        .filter(|l| !l.sip_address.trim().is_empty())
        .collect()
}

/// Gives each user its license criterion (matched by SIP address, then by UPN) and returns
/// how many licensed entries matched no user.
pub fn join_licenses(
    users: &mut [(TenantUser, Option<String>)],
    licensed: &[LicensedUser],
) -> usize {
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for (i, (u, sip)) in users.iter().enumerate() {
        by_key.entry(u.upn.to_string()).or_insert(i);
        if let Some(s) = sip {
            // A SIP address beats another user's UPN that happens to be equal.
            by_key.insert(s.clone(), i);
        }
    }
    let mut unmatched = 0;
    for l in licensed {
        let criterion = non_empty(l.license_criteria.as_deref())
            .unwrap_or("Licensed")
            .to_string();
        match by_key.get(&sip_key(&l.sip_address)) {
            Some(&i) => {
                let lic = &mut users[i].0.licenses;
                if !lic.contains(&criterion) {
                    lic.push(criterion);
                }
            }
            None => unmatched += 1,
        }
    }
    unmatched
}

/// The catalogs the documents let us know: the license criteria in use (with how many users
/// hold each; there is no pool, so `free` is 0) and the voice routing policies users hold
/// (no policy list is documented). No groups: Live Platform has none.
pub fn catalogs_from_users(users: &[TenantUser]) -> Catalogs {
    let mut lic: BTreeMap<&str, i64> = BTreeMap::new();
    let mut vrps: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for u in users {
        for l in &u.licenses {
            *lic.entry(l.as_str()).or_default() += 1;
        }
        if let Some(v) = u.details.as_ref().and_then(|d| d.vrp.as_deref()) {
            vrps.insert(v);
        }
    }
    Catalogs {
        groups: Vec::new(),
        licenses: lic
            .into_iter()
            .map(|(name, n)| LicenseInfo {
                sku_id: name.to_string(),
                sku_part_number: name.to_string(),
                sku_description: Some(LICENSE_DESCRIPTION.to_string()),
                total: n,
                free: 0,
            })
            .collect(),
        vrps: vrps
            .into_iter()
            .map(|v| VrpInfo {
                identity: v.to_string(),
                description: None,
            })
            .collect(),
    }
}

/// `(code, reason)` from a problem-details body: `errorCode` is the code; the reason is the
/// title and detail, plus the error ticket and trace id a support call needs. A body that is
/// not problem details falls back to the generic reading.
pub fn parse_problem(body: &[u8], status: StatusCode) -> (Option<String>, String) {
    let p = match serde_json::from_slice::<Problem>(body) {
        Ok(p) if p.title.is_some() || p.detail.is_some() || p.error_code.is_some() => p,
        _ => return parse_error_body(body, status),
    };
    let code = match &p.error_code {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let mut parts: Vec<String> = Vec::new();
    for s in [
        non_empty(p.title.as_deref()),
        non_empty(p.detail.as_deref()),
    ]
    .into_iter()
    .flatten()
    {
        if !parts.iter().any(|x| x == s) {
            parts.push(s.to_string());
        }
    }
    if parts.is_empty() {
        parts.push(
            status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_string(),
        );
    }
    let mut reason = excerpt(&parts.join(": "));
    let refs: Vec<String> = [
        ("error ticket", non_empty(p.error_ticket.as_deref())),
        ("trace id", non_empty(p.trace_id.as_deref())),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k} {}", excerpt(v))))
    .collect();
    if !refs.is_empty() {
        reason.push_str(&format!(" ({})", refs.join(", ")));
    }
    (code, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PAGE: &str = include_str!("../../../tests/fixtures/liveplatform/users-page-1.json");
    const LICENSED: &str = include_str!("../../../tests/fixtures/liveplatform/licensed-users.json");

    fn teams(v: serde_json::Value) -> TeamsUser {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn documents_example_page_maps() {
        let page: UsersPage = serde_json::from_str(PAGE).unwrap();
        let users = users_from_page(&page);
        assert_eq!(users.len(), 10);
        let (megan, sip) = &users[0];
        assert_eq!(megan.id, "04b6aa84-eb73-4f46-ba4a-200f86a2563a");
        assert_eq!(megan.upn.as_str(), "meganb@m365x33712745.onmicrosoft.com");
        assert_eq!(megan.display_name, "Megan Bowen");
        assert_eq!(megan.country.as_ref().unwrap().as_str(), "US");
        assert!(megan.number.is_none());
        assert!(!megan.voice_enabled);
        assert_eq!(
            megan.details,
            Some(UserDetails {
                groups: vec![],
                vrp: None
            })
        );
        assert_eq!(sip.as_deref(), Some("meganb@m365x33712745.onmicrosoft.com"));
        // Brian Johnson has a null UsageLocation.
        assert!(users[8].0.country.is_none());
        assert_eq!(users[8].0.display_name, "Brian Johnson (TAILSPIN)");
    }

    #[test]
    fn phone_attributes_map() {
        let u = user_from_wire(&teams(json!({
            "Identity": null, "ObjectId": "ABC-1", "UserPrincipalName": "Lee@Contoso.com",
            "WebName": " Lee Gu ", "LineURI": "tel:+14255550123;ext=123", "UsageLocation": "us",
            "EnterpriseVoiceEnabled": true, "OnlineVoiceRoutingPolicy": "Unrestricted"
        })))
        .unwrap();
        assert_eq!(u.id, "abc-1");
        assert_eq!(u.display_name, "Lee Gu");
        assert_eq!(u.number.unwrap().to_string(), "+14255550123;ext=123");
        assert_eq!(u.country.unwrap().as_str(), "US");
        assert!(u.voice_enabled);
        assert_eq!(u.details.unwrap().vrp.as_deref(), Some("Unrestricted"));
    }

    #[test]
    fn odd_fields_are_dropped_and_bad_entries_skipped() {
        let u = user_from_wire(&teams(json!({
            "UserPrincipalName": "a@b.com", "LineURI": "tel:5550123", "UsageLocation": "Narnia",
            "OnlineVoiceRoutingPolicy": "  "
        })))
        .unwrap();
        assert_eq!(u.id, "a@b.com");
        assert!(u.number.is_none() && u.country.is_none());
        assert!(u.details.unwrap().vrp.is_none());
        let page: UsersPage = serde_json::from_value(json!({"totalPages": 1, "data": [
            {"UserPrincipalName": "not a upn"}, "garbage", {"Identity": "x"},
            {"UserPrincipalName": "ok@contoso.com"}
        ]}))
        .unwrap();
        let users = users_from_page(&page);
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].0.upn.as_str(), "ok@contoso.com");
    }

    #[test]
    fn licenses_join_by_sip_then_upn_and_count_strays() {
        let page: UsersPage = serde_json::from_str(PAGE).unwrap();
        let mut users = users_from_page(&page);
        // The document's two examples come from different tenants: only the local parts
        // agree, so nothing matches...
        let raw: Vec<serde_json::Value> = serde_json::from_str(LICENSED).unwrap();
        let licensed = licensed_from_wire(&raw);
        assert_eq!(join_licenses(&mut users, &licensed), 9);
        // ...until the domain is the page's.
        let same: Vec<LicensedUser> = licensed
            .iter()
            .map(|l| LicensedUser {
                sip_address: l.sip_address.replace("m365x89839532", "M365X33712745"),
                license_criteria: l.license_criteria.clone(),
            })
            .collect();
        assert_eq!(
            join_licenses(&mut users, &same),
            6,
            "alexw, lidiah, pattif, debrab, isaiahl, miriamg are not on page 1"
        );
        let megan = &users[0].0;
        assert_eq!(
            megan.licenses,
            vec!["Managed Users - By LifeCycle Management"]
        );
        // Cameron has no SIP address: matched by UPN.
        let by_upn = [LicensedUser {
            sip_address: "sip:CameronW@M365x33712745.OnMicrosoft.com".into(),
            license_criteria: None,
        }];
        assert_eq!(join_licenses(&mut users, &by_upn), 0);
        assert_eq!(users[2].0.licenses, vec!["Licensed"]);
        let cat = catalogs_from_users(&users.into_iter().map(|(u, _)| u).collect::<Vec<_>>());
        assert!(cat.groups.is_empty());
        assert_eq!(cat.licenses.len(), 2);
        let lcm = cat
            .licenses
            .iter()
            .find(|l| l.sku_id == "Managed Users - By LifeCycle Management")
            .unwrap();
        assert_eq!((lcm.total, lcm.free), (3, 0));
    }

    #[test]
    fn problem_details_become_clear_reasons() {
        let s = StatusCode::BAD_REQUEST;
        let body = br#"{"type":"https://tools.ietf.org/html/rfc7231#section-6.5.1","title":"Bad Request","status":400,"detail":"Page size must be between 2 and 10000","instance":"/api/v3/customer/x/user","errorTicket":"T-17","errorCode":"LP-400-7","traceId":"00-ab-01"}"#;
        assert_eq!(
            parse_problem(body, s),
            (
                Some("LP-400-7".into()),
                "Bad Request: Page size must be between 2 and 10000 (error ticket T-17, trace id 00-ab-01)"
                    .into()
            )
        );
        assert_eq!(
            parse_problem(br#"{"title":"Oops","detail":"Oops","errorCode":5}"#, s),
            (Some("5".into()), "Oops".into())
        );
        assert_eq!(
            parse_problem(br#"{"errorCode":"E1"}"#, s),
            (Some("E1".into()), "Bad Request".into())
        );
        // Not problem details: the generic reading.
        assert_eq!(parse_problem(b"", s), (None, "Bad Request".into()));
        assert_eq!(
            parse_problem(br#"{"message":"nope"}"#, s),
            (None, "nope".into())
        );
    }

    #[test]
    fn sip_keys_ignore_scheme_and_case() {
        assert_eq!(sip_key(" SIP:A@B.com"), "a@b.com");
        assert_eq!(sip_key("a@b.com"), "a@b.com");
        assert_eq!(sip_key("si"), "si");
    }
}
