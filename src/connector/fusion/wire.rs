//! The Fusion MS Teams API as this connector reads it: serde types for the answers it
//! parses and the bodies it sends.
//!
//! Kept apart from the simulator's wire types on purpose (ARCHITECTURE.md, "The simulators"): if both
//! sides shared one struct they would agree on every misreading of the document and no test
//! could see it. The contract tests at the bottom parse the document's own examples.
//!
//! Answers are read leniently where the document is loose (optional fields the tables call
//! mandatory, a missing `displayName`, groups given as objects or bare ids, VRPs wrapped in
//! `results` or not), because a tenant that sends one odd record must not stop a nightly
//! sync; the odd record is skipped or its field dropped, with a warning, by `mapping`.

use serde::{Deserialize, Serialize};

/// `GET …/msteams/users`: one page of the list, with a continuation token when there is more.
///
/// Users stay raw JSON here so one malformed record can be skipped instead of failing the
/// whole page (see `mapping::users_from_page`).
#[derive(Debug, Deserialize)]
pub struct UsersPage {
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub users: Vec<serde_json::Value>,
}

/// A User Object (list entry or single-user GET): `msTeams` plus `draas` when the user has
/// Fusion data (a number).
#[derive(Debug, Deserialize)]
pub struct WireUser {
    #[serde(rename = "msTeams")]
    pub ms_teams: MsTeamsUser,
    #[serde(default)]
    pub draas: Option<DraasUser>,
}

/// The MS Teams User Object. `groups` and `vrp` only come with the single-user GET.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MsTeamsUser {
    pub id: String,
    pub user_principal_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub licenses: Option<Vec<LicenseRef>>,
    /// `yes`, `no` (and `maybe` in the filters table): only `yes` counts as enabled.
    #[serde(default)]
    pub voice_enabled: Option<String>,
    #[serde(default)]
    pub groups: Option<Vec<GroupRef>>,
    #[serde(default)]
    pub vrp: Option<String>,
}

/// Microsoft licensing Object as it appears on a user.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseRef {
    pub sku_id: String,
}

/// A user's group: the document shows `{displayName, id}` objects; a bare id string is
/// accepted too (the "User Properties Object" lists groups as ids).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum GroupRef {
    Object { id: String },
    Id(String),
}

impl GroupRef {
    pub fn id(&self) -> &str {
        match self {
            GroupRef::Object { id } | GroupRef::Id(id) => id,
        }
    }
}

/// The Fusion User Object (`draas`): exists only for users with a number.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DraasUser {
    #[serde(default)]
    pub customer_licenses: Option<Vec<String>>,
    #[serde(default)]
    pub phone_number: Option<String>,
}

/// `GET …/msteams/groups`.
#[derive(Debug, Deserialize)]
pub struct GroupsAnswer {
    #[serde(default)]
    pub groups: Vec<WireGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireGroup {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// An SRE-filter entry with no Office 365 group behind it any more: not assignable.
    #[serde(default)]
    pub orphan: bool,
}

/// `GET …/msteams/licenses`.
#[derive(Debug, Deserialize)]
pub struct LicensesAnswer {
    #[serde(default)]
    pub licenses: Vec<WireSku>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireSku {
    pub sku_id: String,
    pub sku_part_number: String,
    #[serde(default)]
    pub sku_description: Option<String>,
    #[serde(default)]
    pub total: i64,
    #[serde(default)]
    pub free: i64,
}

/// `GET …/msteams/vrps`. The example wraps the policies in `results`; the field table
/// describes the items alone, so a bare array is accepted as well.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum VrpsAnswer {
    Wrapped {
        #[serde(default)]
        results: Vec<WireVrp>,
    },
    Bare(Vec<WireVrp>),
}

impl VrpsAnswer {
    pub fn into_items(self) -> Vec<WireVrp> {
        match self {
            VrpsAnswer::Wrapped { results } | VrpsAnswer::Bare(results) => results,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct WireVrp {
    pub identity: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// `GET …/msteams/status`: only `status` is interpreted; the whole body is kept as details.
#[derive(Debug, Deserialize)]
pub struct StatusAnswer {
    pub status: String,
}

/// `POST …/msteams/users` body. `username@domain` forms the UPN.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserBody<'a> {
    pub display_name: &'a str,
    pub domain: &'a str,
    pub location: &'a str,
    pub username: &'a str,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub customer_licenses: &'a [String],
}

/// `POST …/msteams/users` answer (201).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateUserAnswer {
    pub ms_teams_id: String,
}

/// The error body as we read the document (`{"error": {"code": 2095, "reason": "…"}}`, from
/// the bulk partial-success example). The code may be a number or a string.
/// The answer to `PUT users/bulk` (200, 207, and 400 when no user was updated):
/// `details` one entry per item, `errors` the failed ones again.
#[derive(Debug, Deserialize)]
pub struct BulkAnswer {
    #[serde(default)]
    pub details: Vec<BulkDetail>,
    #[serde(default)]
    pub errors: Option<Vec<BulkDetail>>,
    #[serde(default)]
    pub message: Option<String>,
}

/// "MS Teams user update response" (`details`) or "… error" (`error`).
#[derive(Debug, Deserialize)]
pub struct BulkDetail {
    pub upn: String,
    #[serde(default)]
    pub details: Option<serde_json::Value>,
    #[serde(default)]
    pub error: Option<BulkError>,
}

#[derive(Debug, Deserialize)]
pub struct BulkError {
    /// A number in the examples; kept as it comes.
    #[serde(default)]
    pub code: serde_json::Value,
    #[serde(default)]
    pub reason: String,
}

/// A page of `GET users/bulk`.
#[derive(Debug, Deserialize)]
pub struct BulkPage {
    #[serde(default)]
    pub bulks: Vec<BulkSummary>,
    #[serde(default)]
    pub next: Option<String>,
}

/// "Bulk jobs": `job_id` is a string in the table and a number in one example.
#[derive(Debug, Deserialize)]
pub struct BulkSummary {
    pub id: i64,
    #[serde(default)]
    pub job_id: serde_json::Value,
    #[serde(default)]
    pub title: String,
}

/// `GET users/bulk/{bulk_id}`: the items with their status.
#[derive(Debug, Deserialize)]
pub struct BulkDetails {
    #[serde(default)]
    pub job_items: Vec<BulkJobItem>,
}

#[derive(Debug, Deserialize)]
pub struct BulkJobItem {
    pub upn: String,
    pub status: String,
}

#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET …/msteams/resource_accounts` (not paged). Entries stay raw JSON for the same reason
/// as [`UsersPage::users`].
#[derive(Debug, Deserialize)]
pub struct ResourceAccountsAnswer {
    #[serde(default, rename = "resourceAccounts")]
    pub resource_accounts: Vec<serde_json::Value>,
}

/// A Resource Account Object: `msTeams` plus `draas` when it has Fusion data.
#[derive(Debug, Deserialize)]
pub struct WireResourceAccount {
    #[serde(rename = "msTeams")]
    pub ms_teams: RaMsTeams,
    #[serde(default)]
    pub draas: Option<DraasUser>,
}

/// The MS Teams Resource Account Object. The document lists no `vrp` here (it can only be
/// written); `vrp` is `None` when absent and `Some(None)` when sent as `null`, so a server
/// that does report it lets the planner compare it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RaMsTeams {
    pub id: String,
    pub user_principal_name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub account_type: Option<String>,
    #[serde(default)]
    pub licenses: Option<Vec<LicenseRef>>,
    #[serde(default, deserialize_with = "present")]
    pub vrp: Option<Option<String>>,
}

/// Tells an absent field (`None`, via `default`) from an explicit `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `POST …/msteams/resource_accounts` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateResourceAccountBody<'a> {
    pub account_type: &'a str,
    pub user_principal_name: &'a str,
    pub display_name: &'a str,
    pub location: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub customer_licenses: &'a [String],
}

#[cfg(test)]
mod tests {
    //! Contract tests against the document's own examples (repaired minimally: the list
    //! example lacks a comma after the `roles` array).
    use super::*;

    const LIST_EXAMPLE: &str = r#"{
"next": "RFNwdAoAAQAAAAAAAAAAFAAAAKjVyoqLxNlBtsHxKUuhaFYBAAAAAAAAAAAAAAAAAAAXMS4yLjg0MC4xMTM1NTYuMS40LjIzMzEGAAAAAAAB1Kb5zKwLv0m1qYbrTc_qVgFPAAAAAQAAAAA",
"users": [
{
"msTeams": {
"id": "2da785f7-3454-4bfe-9f30-4f368eb9db58",
"userPrincipalName": "thomas.anderson@netaxisdev.onmicrosoft.com",
"displayName": "Thomas Anderson",
"location": "NL",
"licenses": [
{ "skuId": "295a8eb0-f78d-45c7-8b5b-1eed5ed02dff", "skuPartNumber": "MCOCAP" },
{ "skuId": "18181a46-0d4e-45cd-891e-60aabd171b4e", "skuPartNumber": "STANDARDPACK" }
],
"roles": [
{ "id": "62e90394-69f5-4237-9190-012177145e10", "displayName": "Global Administrator" }
],
"voiceEnabled": "yes"
},
"draas": {
"id": 11, "connectionId": 8, "customerLicenses": ["test-sku"], "numberId": 441,
"phoneNumber": "+31302861233", "status": "active"
}
},
{
"msTeams": {
"id": "47502fc5-d254-4e9b-a715-6619706da506",
"userPrincipalName": "john.doe@netaxisdev.onmicrosoft.com",
"displayName": "John Doe",
"location": "BE",
"voiceEnabled": "no"
}
}
]
}"#;

    pub(crate) const SINGLE_EXAMPLE: &str = r#"{
"msTeams": {
"id": "2da785f7-3454-4bfe-9f30-4f368eb9db58",
"userPrincipalName": "thomas.anderson@netaxisdev.onmicrosoft.com",
"displayName": "Thomas Anderson",
"groups": [ { "displayName": "vm-bc-jp-tky-0042-adi", "id": "e54f3c3f-d705-451d-96ff-7fbe7ff15e1e" } ],
"location": "NL",
"licenses": [
{ "skuId": "295a8eb0-f78d-45c7-8b5b-1eed5ed02dff", "skuPartNumber": "MCOCAP" },
{ "skuId": "18181a46-0d4e-45cd-891e-60aabd171b4e", "skuPartNumber": "STANDARDPACK" }
],
"voiceEnabled": "yes",
"vrp": "World-DRaaS"
},
"draas": {
"id": 11, "connectionId": 8, "customerLicenses": ["test-sku"], "numberId": 441,
"phoneNumber": "+31302861233", "status": "active"
}
}"#;

    #[test]
    fn list_example_parses() {
        let page: UsersPage = serde_json::from_str(LIST_EXAMPLE).unwrap();
        assert!(page.next.is_some());
        assert_eq!(page.users.len(), 2);
        let u: WireUser = serde_json::from_value(page.users[0].clone()).unwrap();
        assert_eq!(u.ms_teams.licenses.as_ref().unwrap().len(), 2);
        assert_eq!(
            u.draas.unwrap().phone_number.as_deref(),
            Some("+31302861233")
        );
        let u: WireUser = serde_json::from_value(page.users[1].clone()).unwrap();
        assert!(u.draas.is_none());
        assert!(u.ms_teams.groups.is_none());
    }

    #[test]
    fn single_example_parses_with_groups_and_vrp() {
        let u: WireUser = serde_json::from_str(SINGLE_EXAMPLE).unwrap();
        let g = u.ms_teams.groups.unwrap();
        assert_eq!(g[0].id(), "e54f3c3f-d705-451d-96ff-7fbe7ff15e1e");
        assert_eq!(u.ms_teams.vrp.as_deref(), Some("World-DRaaS"));
    }

    #[test]
    fn catalog_examples_parse() {
        let groups: GroupsAnswer = serde_json::from_str(
            r#"{"groups":[{"description":"All Company","displayName":"All Company","filter":true,
            "id":"00192dff-7c1a-4147-9fc1-c2d26422cbd0","teamsEnabled":false},
            {"displayName":"This filter is orphan","id":"499ce848-8b9b-4d14-8e99-90ee50ea150b","orphan":true}]}"#,
        )
        .unwrap();
        assert!(!groups.groups[0].orphan);
        assert!(groups.groups[1].orphan);
        let lic: LicensesAnswer = serde_json::from_str(
            r#"{"licenses":[{"free":1,"skuDescription":"Office 365 E1",
            "skuId":"18181a46-0d4e-45cd-891e-60aabd171b4e","skuPartNumber":"STANDARDPACK","total":5}]}"#,
        )
        .unwrap();
        assert_eq!(lic.licenses[0].free, 1);
        let v: VrpsAnswer =
            serde_json::from_str(r#"{"results":[{"description":"Global","identity":"Global"}]}"#)
                .unwrap();
        assert_eq!(v.into_items()[0].identity, "Global");
        let v: VrpsAnswer = serde_json::from_str(r#"[{"identity":"Italy"}]"#).unwrap();
        assert_eq!(v.into_items()[0].identity, "Italy");
    }

    #[test]
    fn create_body_matches_the_document() {
        let cl = vec!["test-sku".to_string()];
        let b = CreateUserBody {
            display_name: "Thomas Anderson",
            domain: "netaxissolutions.onmicrosoft.com",
            location: "NL",
            username: "thomasa",
            customer_licenses: &cl,
        };
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"displayName":"Thomas Anderson","domain":"netaxissolutions.onmicrosoft.com",
                "username":"thomasa","location":"NL","customerLicenses":["test-sku"]})
        );
        let a: CreateUserAnswer =
            serde_json::from_str(r#"{"msTeamsId": "645474c6-57f2-47b0-b824-1b591cc6873a"}"#)
                .unwrap();
        assert_eq!(a.ms_teams_id, "645474c6-57f2-47b0-b824-1b591cc6873a");
    }

    #[test]
    fn resource_accounts_example_parses() {
        let a: ResourceAccountsAnswer = serde_json::from_str(
            r#"{"resourceAccounts": [
{"msTeams": {"id": "a43939f1-a4c6-4412-b6e3-23365d720129",
"userPrincipalName": "my_call_queue@netaxisdev.onmicrosoft.com", "displayName": "My First Call Queue",
"location": "BE", "phoneNumber": "+3225405239", "accountType": "call-queue",
"licenses": [{"skuId": "440eaaa8-b3e0-484b-a8be-62870b9ba70a", "skuPartNumber": "PHONESYSTEM_VIRTUALUSER"}]},
"draas": {"id": 117, "connectionId": 189, "customerLicenses": ["test-sku"], "numberId": 44,
"phoneNumber": "+3225405239", "status": "active"}},
{"msTeams": {"id": "260658ad-b6f9-4fb8-a365-69d862fd450d",
"userPrincipalName": "my_auto_attendant@netaxisdev.onmicrosoft.com", "displayName": "My First Auto Attendant",
"location": "NL", "accountType": "auto-attendant", "vrp": null,
"licenses": [{"skuId": "440eaaa8-b3e0-484b-a8be-62870b9ba70a", "skuPartNumber": "PHONESYSTEM_VIRTUALUSER"}]}}
]}"#,
        )
        .unwrap();
        let r: WireResourceAccount =
            serde_json::from_value(a.resource_accounts[0].clone()).unwrap();
        assert_eq!(r.ms_teams.account_type.as_deref(), Some("call-queue"));
        assert_eq!(r.ms_teams.vrp, None);
        let r: WireResourceAccount =
            serde_json::from_value(a.resource_accounts[1].clone()).unwrap();
        assert_eq!(r.ms_teams.vrp, Some(None));
        let body = CreateResourceAccountBody {
            account_type: "call-queue",
            user_principal_name: "my_call_queue@netaxisdev.onmicrosoft.com",
            display_name: "My First Call Queue",
            location: "BE",
            phone_number: Some("+3225405239".into()),
            customer_licenses: &[],
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"accountType": "call-queue", "userPrincipalName": "my_call_queue@netaxisdev.onmicrosoft.com",
                "displayName": "My First Call Queue", "location": "BE", "phoneNumber": "+3225405239"})
        );
    }

    /// Every answer example of the document (tests/fixtures/fusion) parses into our types.
    #[test]
    fn the_documents_answer_fixtures_parse() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fusion");
        let read = |n: &str| std::fs::read_to_string(dir.join(format!("{n}.json"))).unwrap();
        let page: UsersPage = serde_json::from_str(&read("users_list")).unwrap();
        assert!(page.next.is_some());
        for u in &page.users {
            serde_json::from_value::<WireUser>(u.clone()).unwrap();
        }
        let u: WireUser = serde_json::from_str(&read("user_single")).unwrap();
        assert!(u.ms_teams.groups.is_some() && u.ms_teams.vrp.is_some());
        let g: GroupsAnswer = serde_json::from_str(&read("groups")).unwrap();
        assert!(g.groups.iter().any(|g| g.orphan));
        let l: LicensesAnswer = serde_json::from_str(&read("licenses")).unwrap();
        assert!(!l.licenses.is_empty());
        let v: VrpsAnswer = serde_json::from_str(&read("vrps")).unwrap();
        assert_eq!(v.into_items().len(), 5);
        let st: StatusAnswer = serde_json::from_str(&read("status")).unwrap();
        assert_eq!(st.status, "onboarded");
        let c: CreateUserAnswer = serde_json::from_str(&read("user_create_response")).unwrap();
        assert!(!c.ms_teams_id.is_empty());
        let ra: ResourceAccountsAnswer =
            serde_json::from_str(&read("resource_accounts_list")).unwrap();
        for r in &ra.resource_accounts {
            serde_json::from_value::<WireResourceAccount>(r.clone()).unwrap();
        }
    }

    #[test]
    fn error_body_code_may_be_number_or_string() {
        let e: ErrorBody = serde_json::from_str(
            r#"{"error":{"code":2095,"reason":"The template does not exist"}}"#,
        )
        .unwrap();
        assert_eq!(e.error.code, Some(serde_json::json!(2095)));
        let e: ErrorBody = serde_json::from_str(r#"{"error":{"code":"E1"}}"#).unwrap();
        assert!(e.error.reason.is_none());
    }
}
