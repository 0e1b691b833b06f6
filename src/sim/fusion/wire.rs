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
pub struct Groups {
    pub groups: Vec<GroupObj>,
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
