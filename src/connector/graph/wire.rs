//! Graph's JSON as the connector reads it (only the properties it uses; the rest is
//! ignored, as Graph adds properties over time).

use serde::Deserialize;

/// A page of a collection: `value` and, when more remain, an absolute `@odata.nextLink`.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub usage_location: Option<String>,
    #[serde(default)]
    pub assigned_licenses: Vec<AssignedLicense>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedLicense {
    pub sku_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserConfiguration {
    pub id: String,
    #[serde(default)]
    pub account_type: Option<String>,
    #[serde(default)]
    pub is_enterprise_voice_enabled: Option<bool>,
    #[serde(default)]
    pub telephone_numbers: Vec<AssignedNumber>,
    #[serde(default)]
    pub effective_policy_assignments: Vec<EffectivePolicy>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedNumber {
    pub telephone_number: String,
    #[serde(default)]
    pub assignment_category: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectivePolicy {
    pub policy_type: String,
    #[serde(default)]
    pub policy_assignment: Option<PolicyAssignment>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyAssignment {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub assignment_type: Option<String>,
    #[serde(default)]
    pub policy_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Group {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct DirectoryObject {
    pub id: String,
    #[serde(rename = "@odata.type", default)]
    pub odata_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscribedSku {
    pub sku_id: String,
    pub sku_part_number: String,
    #[serde(default)]
    pub consumed_units: i64,
    #[serde(default)]
    pub prepaid_units: Option<PrepaidUnits>,
}

#[derive(Debug, Deserialize)]
pub struct PrepaidUnits {
    #[serde(default)]
    pub enabled: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberAssignment {
    pub telephone_number: String,
    #[serde(default)]
    pub number_type: Option<String>,
    #[serde(default)]
    pub assignment_target_id: Option<String>,
    #[serde(default)]
    pub assignment_status: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyIdentifier {
    pub policy_id: String,
}
