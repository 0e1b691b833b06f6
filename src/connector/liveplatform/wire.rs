//! The Live Platform API as this connector reads it: serde types for the two answers it
//! parses and for its problem-details errors.
//!
//! Kept apart from the simulator's wire types (ARCHITECTURE.md, "The simulators"): sharing one struct
//! would let both sides agree on a misreading of the document. Entries stay raw JSON in the
//! page types so one malformed record is skipped (by `mapping`) rather than failing a page.
//! Only the fields teamsync maps are named; the others (`Status`, `HostingProvider`,
//! `PsCount`, …) are ignored.

use serde::Deserialize;

/// `GET /api/v3/customer/{umpCustomerGuid}/user`: one page of users.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsersPage {
    /// The page the server says it answered; checked against the one asked for.
    #[serde(default)]
    pub current_page: Option<u64>,
    #[serde(default)]
    pub page_size: Option<u64>,
    pub total_pages: u64,
    #[serde(default)]
    pub total_records: Option<u64>,
    #[serde(default)]
    pub data: Vec<serde_json::Value>,
}

/// One user with its Teams Phone attributes, as the document's example spells the keys
/// (PascalCase, `LineURI`). Everything but the UPN may be `null`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TeamsUser {
    #[serde(default)]
    pub identity: Option<String>,
    #[serde(default)]
    pub object_id: Option<String>,
    pub user_principal_name: String,
    #[serde(default)]
    pub web_name: Option<String>,
    #[serde(default)]
    pub sip_address: Option<String>,
    #[serde(default, rename = "LineURI")]
    pub line_uri: Option<String>,
    #[serde(default)]
    pub usage_location: Option<String>,
    #[serde(default)]
    pub enterprise_voice_enabled: Option<bool>,
    #[serde(default)]
    pub online_voice_routing_policy: Option<String>,
}

/// `GET /api/v2/customer/{umpCustomerGuid}/licensedUsers`: one entry of the bare array.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicensedUser {
    pub sip_address: String,
    #[serde(default)]
    pub license_criteria: Option<String>,
}

/// The 400/500 body (RFC 7807 problem details plus AudioCodes' extras), as the licensed
/// users document lists its fields. All optional: "the actual fields returned may differ".
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub status: Option<serde_json::Value>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub error_ticket: Option<String>,
    /// A string in the table; a number is accepted too.
    #[serde(default)]
    pub error_code: Option<serde_json::Value>,
    #[serde(default)]
    pub trace_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = include_str!("../../../tests/fixtures/liveplatform/users-page-1.json");
    const LICENSED: &str = include_str!("../../../tests/fixtures/liveplatform/licensed-users.json");

    #[test]
    fn the_documents_examples_parse() {
        let p: UsersPage = serde_json::from_str(PAGE).unwrap();
        assert_eq!(
            (p.current_page, p.page_size, p.total_pages, p.total_records),
            (Some(1), Some(10), 4, Some(37))
        );
        assert_eq!(p.data.len(), 10);
        let u: TeamsUser = serde_json::from_value(p.data[0].clone()).unwrap();
        assert_eq!(
            u.user_principal_name,
            "MeganB@M365x33712745.OnMicrosoft.com"
        );
        assert_eq!(u.web_name.as_deref(), Some("Megan Bowen"));
        assert_eq!(u.line_uri, None);
        assert_eq!(u.enterprise_voice_enabled, Some(false));
        let l: Vec<LicensedUser> = serde_json::from_str(LICENSED).unwrap();
        assert_eq!(l.len(), 9);
        assert_eq!(
            l[0].license_criteria.as_deref(),
            Some("Managed Users - By User Interface")
        );
    }

    #[test]
    fn problem_fields_are_all_optional() {
        let p: Problem = serde_json::from_str("{}").unwrap();
        assert!(p.title.is_none() && p.error_code.is_none());
        let p: Problem = serde_json::from_str(
            r#"{"type":"t","title":"Bad","status":400,"errorCode":17,"traceId":"x"}"#,
        )
        .unwrap();
        assert_eq!(p.error_code, Some(serde_json::json!(17)));
    }
}
