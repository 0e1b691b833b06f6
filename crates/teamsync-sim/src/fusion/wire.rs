//! The simulator's own serde types for the Fusion MS Teams API, field for field as the
//! document's objects and examples (camelCase where the document uses it).
//!
//! They are deliberately not shared with `connector::fusion`: two sides reading the document
//! independently is what lets the contract tests catch a misreading.

use serde::{Deserialize, Deserializer, Serialize};

/// `{"skuId", "skuPartNumber"}`: the "Microsoft licensing Object" inside a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LicenseRef {
    #[serde(rename = "skuId")]
    pub sku_id: String,
    #[serde(rename = "skuPartNumber")]
    pub sku_part_number: String,
}

/// `{"displayName", "id"}`: the "Microsoft group Object" inside a single user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupRef {
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub id: String,
}

/// `{"id", "displayName"}`: the "Microsoft role Object" of the list user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleRef {
    pub id: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
}

/// The "Fusion User Object" (`draas`), present only for users holding a number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Draas {
    pub id: i64,
    #[serde(
        rename = "connectionId",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub connection_id: Option<i64>,
    #[serde(rename = "customerLicenses", default)]
    pub customer_licenses: Vec<String>,
    #[serde(rename = "numberId", skip_serializing_if = "Option::is_none", default)]
    pub number_id: Option<i64>,
    #[serde(
        rename = "phoneNumber",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub phone_number: Option<String>,
    pub status: String,
}

/// The list's "MS Teams User Object": no groups, no vrp; location, licenses and roles only
/// when the user has them.
#[derive(Debug, Clone, Serialize)]
pub struct ListMsTeams {
    pub id: String,
    #[serde(rename = "userPrincipalName")]
    pub user_principal_name: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licenses: Option<Vec<LicenseRef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<RoleRef>>,
    #[serde(rename = "voiceEnabled")]
    pub voice_enabled: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListUser {
    #[serde(rename = "msTeams")]
    pub ms_teams: ListMsTeams,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub draas: Option<Draas>,
}

#[derive(Debug, Clone, Serialize)]
pub struct UsersPage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub users: Vec<ListUser>,
}

/// The single-user GET's "MS Teams User Object": with groups and vrp (null when none).
/// `roles` is accepted in a seed (the list shows roles) but never serialized here.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SingleMsTeams {
    pub id: String,
    #[serde(rename = "userPrincipalName")]
    pub user_principal_name: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(default)]
    pub groups: Vec<GroupRef>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub licenses: Vec<LicenseRef>,
    #[serde(rename = "voiceEnabled", default)]
    pub voice_enabled: String,
    #[serde(default)]
    pub vrp: Option<String>,
    /// Seed/state only (the single-user GET of the document has no roles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<RoleRef>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SingleUser {
    #[serde(rename = "msTeams")]
    pub ms_teams: SingleMsTeams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draas: Option<Draas>,
}

/// An entry of `GET groups`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GroupObj {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(default)]
    pub filter: bool,
    pub id: String,
    #[serde(rename = "teamsEnabled", default)]
    pub teams_enabled: bool,
}

/// An entry of `GET licenses` (the "License Object").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LicenseObj {
    /// Ignored in a seed: free counts are always derived from assignments.
    #[serde(default)]
    pub free: i64,
    #[serde(rename = "skuDescription")]
    pub sku_description: String,
    #[serde(rename = "skuId")]
    pub sku_id: String,
    #[serde(rename = "skuPartNumber")]
    pub sku_part_number: String,
    pub total: i64,
}

/// An entry of `GET vrps`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VrpObj {
    pub description: String,
    pub identity: String,
}

/// The "MS Teams Resource Account Object" (list and seed shape).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RaMsTeams {
    pub id: String,
    #[serde(rename = "userPrincipalName")]
    pub user_principal_name: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub location: String,
    #[serde(
        rename = "phoneNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub phone_number: Option<String>,
    #[serde(rename = "accountType")]
    pub account_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licenses: Option<Vec<LicenseRef>>,
    /// Seed/state only: the list object of the document has no vrp.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrp: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ResourceAccount {
    #[serde(rename = "msTeams")]
    pub ms_teams: RaMsTeams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draas: Option<Draas>,
}

/// The seed file, and `GET /_sim/state`: the whole tenant in the API's own shapes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDoc {
    pub draas_instance: String,
    pub tenant_uuid: String,
    pub subscription_id: i64,
    #[serde(rename = "msTenantId")]
    pub ms_tenant_id: String,
    /// The body of `GET status` minus `msTenantId`; a default "onboarded" one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub users: Vec<SingleUser>,
    #[serde(default)]
    pub groups: Vec<GroupObj>,
    #[serde(default)]
    pub licenses: Vec<LicenseObj>,
    #[serde(default)]
    pub vrps: Vec<VrpObj>,
    #[serde(rename = "resourceAccounts", default)]
    pub resource_accounts: Vec<ResourceAccount>,
    #[serde(default)]
    pub numbers: Vec<String>,
    /// The MS Teams administrator (`GET admins` shape; no password, see [`AdminObj`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminObj>,
    /// The SRE group filter, in the `POST groups` entry shape. `groups[].filter` is derived
    /// from it (a seed's `filter` flags are ignored, like license `free` counts).
    #[serde(rename = "groupFilter", default, skip_serializing_if = "Vec::is_empty")]
    pub group_filter: Vec<GroupRef>,
    /// Server-side templates; id 0 is the default template (see `templates`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateObj>,
    /// Bulk job history, in the `GET users/bulk/{bulk_id}` shape.
    #[serde(rename = "bulkJobs", default, skip_serializing_if = "Vec::is_empty")]
    pub bulk_jobs: Vec<BulkJob>,
}

/// Deserializes a field that may be absent (outer None), null (Some(None)) or a value.
pub fn tri<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Deserializes a field that may be absent but must not be null.
pub fn non_null<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom("null is not allowed here")),
    }
}

/// Body of `POST users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub domain: String,
    pub location: String,
    pub username: String,
    #[serde(rename = "customerLicenses", default, deserialize_with = "non_null")]
    pub customer_licenses: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
pub struct Created {
    #[serde(rename = "msTeamsId")]
    pub ms_teams_id: String,
}

/// Body of the full `PUT users/{id}`: every field optional; the ones documented as
/// nullable distinguish null (clear) from absent (keep).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    #[serde(rename = "displayName", default, deserialize_with = "non_null")]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    pub location: Option<String>,
    #[serde(rename = "phoneNumber", default, deserialize_with = "tri")]
    pub phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "tri")]
    pub groups: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "tri")]
    pub vrp: Option<Option<String>>,
    #[serde(default, deserialize_with = "tri")]
    pub licenses: Option<Option<Vec<String>>>,
    #[serde(rename = "customerLicenses", default, deserialize_with = "non_null")]
    pub customer_licenses: Option<Vec<String>>,
}

/// Body of `PUT users/{id}/properties`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateProperties {
    #[serde(rename = "displayName", default, deserialize_with = "non_null")]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    pub location: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutGroups {
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutLicenses {
    pub licenses: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSkuIds {
    #[serde(rename = "skuIds")]
    pub sku_ids: Vec<String>,
}

/// `phoneNumber` is required but may be null.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutPhoneNumber {
    #[serde(rename = "phoneNumber", deserialize_with = "tri")]
    pub phone_number: Option<Option<String>>,
}

/// `vrp` is required but may be null.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutVrp {
    #[serde(deserialize_with = "tri")]
    pub vrp: Option<Option<String>>,
}

#[derive(Debug, Serialize)]
pub struct Domains {
    #[serde(rename = "verifiedDomains")]
    pub verified_domains: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Licenses {
    pub licenses: Vec<LicenseObj>,
}

#[derive(Debug, Serialize)]
pub struct Vrps {
    pub results: Vec<VrpObj>,
}

#[derive(Debug, Serialize)]
pub struct Check {
    #[serde(rename = "voiceEnabled")]
    pub voice_enabled: bool,
}

#[derive(Debug, Serialize)]
pub struct ResourceAccounts {
    #[serde(rename = "resourceAccounts")]
    pub resource_accounts: Vec<ResourceAccount>,
}

/// Body of `POST resource_accounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateResourceAccount {
    #[serde(rename = "accountType")]
    pub account_type: String,
    #[serde(rename = "userPrincipalName")]
    pub user_principal_name: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub location: String,
    #[serde(rename = "phoneNumber", default, deserialize_with = "non_null")]
    pub phone_number: Option<String>,
    #[serde(rename = "customerLicenses", default, deserialize_with = "non_null")]
    pub customer_licenses: Option<Vec<String>>,
}

/// Body of `PUT resource_accounts/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModifyResourceAccount {
    #[serde(rename = "accountType", default, deserialize_with = "non_null")]
    pub account_type: Option<String>,
    #[serde(rename = "displayName", default, deserialize_with = "non_null")]
    pub display_name: Option<String>,
    #[serde(default, deserialize_with = "non_null")]
    pub location: Option<String>,
    #[serde(rename = "phoneNumber", default, deserialize_with = "tri")]
    pub phone_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "tri")]
    pub vrp: Option<Option<String>>,
    #[serde(rename = "customerLicenses", default, deserialize_with = "non_null")]
    pub customer_licenses: Option<Vec<String>>,
}

/// `{"id": <internal id>}`, the answer of resource-account create and modify.
#[derive(Debug, Serialize)]
pub struct InternalId {
    pub id: i64,
}

// ------------------------------------------------------------------ admins

/// Body of `POST admins`. The password lives here only until it is hashed; Debug hides it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostAdmin {
    #[serde(rename = "msUsername")]
    pub ms_username: String,
    #[serde(rename = "msPassword")]
    pub ms_password: String,
}

impl std::fmt::Debug for PostAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostAdmin")
            .field("ms_username", &self.ms_username)
            .field("ms_password", &"<redacted>")
            .finish()
    }
}

/// `{"id", "msUsername"}`: the answer of `GET admins` and `DELETE admins`, and the seed's
/// `admin` (which carries no password: a seeded administrator has none that can be checked).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AdminObj {
    pub id: i64,
    #[serde(rename = "msUsername")]
    pub ms_username: String,
}

// ------------------------------------------------------------------ group filter

/// One entry of `GET groups`: a tenant group (`filter` says whether it is in the SRE filter),
/// or a filter entry whose group no longer exists (only displayName, id and `orphan: true`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum GroupEntry {
    Group(GroupObj),
    Orphan {
        #[serde(rename = "displayName")]
        display_name: String,
        id: String,
        orphan: bool,
    },
}

#[derive(Debug, Serialize)]
pub struct GroupsAnswer {
    pub groups: Vec<GroupEntry>,
}

/// Body of `POST groups`: the whole SRE group filter ("delete and recreate").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostGroupFilter {
    pub groups: Vec<GroupRef>,
}

// ------------------------------------------------------------------ sip address, sync

#[derive(Debug, Serialize)]
pub struct SipAddress {
    #[serde(rename = "sipAddress")]
    pub sip_address: String,
}

/// Body of `POST sync`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostSync {
    #[serde(rename = "type")]
    pub kind: String,
}

/// The "MSTeams Sync Users Object".
#[derive(Debug, Serialize)]
pub struct SyncUser {
    pub id: String,
    pub status: String,
}

#[derive(Debug, Serialize)]
pub struct SyncAnswer {
    pub msteams_user_ids: Vec<SyncUser>,
}

// ------------------------------------------------------------------ templates

/// A server-side template (seed `templates` and `/_sim/state`). The document shows no
/// template object; these are the four properties its apply answer snapshots, by id:
/// groups by group id, licenses by skuId. A property left out is not touched by the template.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TemplateObj {
    pub id: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub licenses: Option<Vec<String>>,
}

/// Body of `PUT users/{id}/templates/{template_id}` (the body itself is optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyTemplate {
    #[serde(rename = "override", default, deserialize_with = "non_null")]
    pub override_: Option<bool>,
}

/// The user's properties managed by templating, as the apply answer shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TemplateSnapshot {
    pub groups: Vec<String>,
    pub licenses: Vec<String>,
    pub location: Option<String>,
    pub vrp: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TemplateApplied {
    pub after: TemplateSnapshot,
    pub before: TemplateSnapshot,
}

// ------------------------------------------------------------------ bulk

/// The "MS Teams User Bulk Object": names, not ids; nullable fields distinguish null (clear)
/// from absent (keep).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkItem {
    pub upn: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(default, deserialize_with = "tri")]
    pub number: Option<Option<String>>,
    #[serde(default, deserialize_with = "non_null")]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "tri")]
    pub vrp: Option<Option<String>>,
    #[serde(default, deserialize_with = "tri")]
    pub groups: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "tri")]
    pub licenses: Option<Option<Vec<String>>>,
    #[serde(rename = "customerLicenses", default, deserialize_with = "tri")]
    pub customer_licenses: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "non_null")]
    pub template: Option<String>,
}

/// Body of `PUT users/bulk`. Items stay raw JSON here: each is checked on its own (a bad
/// item is that item's error, not the whole request's) and kept as sent in the job details.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutBulk {
    pub name: String,
    pub data: Vec<serde_json::Value>,
}

/// `{"code", "reason"}` inside a bulk answer.
#[derive(Debug, Clone, Serialize)]
pub struct BulkErrorInner {
    pub code: i64,
    pub reason: String,
}

/// One entry of a bulk answer's `details` / `errors`: the "MS Teams user update response"
/// (`details`, an empty object) or the "MS Teams user update error" (`error`).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum BulkOutcome {
    Ok {
        details: serde_json::Map<String, serde_json::Value>,
        upn: String,
    },
    Err {
        error: BulkErrorInner,
        upn: String,
    },
}

#[derive(Debug, Serialize)]
pub struct BulkAnswer {
    pub details: Vec<BulkOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<BulkOutcome>>,
    pub message: String,
}

/// An entry of `GET users/bulk` (the "Bulk jobs" object). `job_id` is a string, as the
/// document's table and history example have it (one details example has a number).
#[derive(Debug, Clone, Serialize)]
pub struct BulkSummary {
    pub id: i64,
    pub job_id: String,
    pub kind: String,
    pub title: String,
    pub created_on: String,
    pub updated_on: String,
}

#[derive(Debug, Serialize)]
pub struct BulkPage {
    pub bulks: Vec<BulkSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    pub page: u64,
    pub pages: u64,
    pub results: u64,
}

/// A "Job details" entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BulkJobItem {
    pub id: i64,
    pub upn: String,
    pub data: serde_json::Value,
    pub status: String,
    pub created_on: String,
    pub updated_on: String,
}

/// `GET users/bulk/{bulk_id}`, and the seed's `bulkJobs` entries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BulkJob {
    pub id: i64,
    pub job_id: String,
    pub title: String,
    pub kind: String,
    pub status: String,
    pub total_count: i64,
    pub success_count: i64,
    pub job_items: Vec<BulkJobItem>,
    pub updated_on: String,
    pub created_on: String,
}
