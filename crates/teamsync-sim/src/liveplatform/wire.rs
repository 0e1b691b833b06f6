//! The simulator's serde types, field for field as the two Live Platform documents show
//! them. Separate from the connector's on purpose (see the crate root): the contract tests
//! compare what these serialise to with the documents' examples.

use serde::{Deserialize, Serialize};

/// The seed and `/_sim/state` document: the customer and its users in the API's own shapes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantDoc {
    /// The `{umpCustomerGuid}` of the paths: the one customer served.
    pub ump_customer_guid: String,
    /// Users in the v3 list shape.
    pub users: Vec<TeamsUser>,
    /// Entries of the v2 licensed-users answer.
    #[serde(default)]
    pub licensed_users: Vec<LicensedUser>,
}

/// One user of `GET /api/v3/customer/{umpCustomerGuid}/user`, every key of the example in
/// its order and spelling. Nullable where the example shows `null` for some user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsUser {
    #[serde(rename = "Identity")]
    pub identity: String,
    #[serde(rename = "Status")]
    pub status: Option<String>,
    #[serde(rename = "SipAddress")]
    pub sip_address: Option<String>,
    #[serde(rename = "LineURI")]
    pub line_uri: Option<String>,
    #[serde(rename = "HostingProvider")]
    pub hosting_provider: Option<String>,
    #[serde(rename = "HybridPstnSiteName")]
    pub hybrid_pstn_site_name: Option<String>,
    #[serde(rename = "UsageLocation")]
    pub usage_location: Option<String>,
    #[serde(rename = "RegistrarPool")]
    pub registrar_pool: Option<String>,
    #[serde(rename = "CallForward")]
    pub call_forward: Option<String>,
    #[serde(rename = "ObjectId")]
    pub object_id: Option<String>,
    #[serde(rename = "WebName")]
    pub web_name: Option<String>,
    #[serde(rename = "UserType")]
    pub user_type: Option<String>,
    #[serde(rename = "PsCount")]
    pub ps_count: i64,
    #[serde(rename = "IsManaged")]
    pub is_managed: Option<bool>,
    #[serde(rename = "Department")]
    pub department: Option<String>,
    #[serde(rename = "TenantId")]
    pub tenant_id: Option<String>,
    #[serde(rename = "UserPrincipalName")]
    pub user_principal_name: String,
    #[serde(rename = "MsInterpretedUserType")]
    pub ms_interpreted_user_type: Option<String>,
    #[serde(rename = "EnterpriseVoiceEnabled")]
    pub enterprise_voice_enabled: bool,
    #[serde(rename = "OnlineVoiceRoutingPolicy")]
    pub online_voice_routing_policy: Option<String>,
    #[serde(rename = "OnlinePstnGateway")]
    pub online_pstn_gateway: Option<String>,
}

/// The page envelope of the v3 users list.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<'a> {
    pub current_page: u64,
    pub page_size: u64,
    pub total_pages: u64,
    pub total_records: u64,
    pub data: &'a [TeamsUser],
}

/// One entry of `GET /api/v2/customer/{umpCustomerGuid}/licensedUsers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LicensedUser {
    pub sip_address: String,
    pub license_criteria: String,
}

/// The 400/500 body: RFC 7807 problem details with the extras the document lists.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The request path; absent when the refusal came before routing.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub instance: String,
    pub error_code: &'static str,
    pub trace_id: String,
}
