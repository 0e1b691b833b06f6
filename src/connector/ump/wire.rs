//! UMP 365's JSON as the connector reads it: only the fields teamsync uses, each tolerant
//! of `null` (the document's examples show `null` for most unset attributes). Kept apart
//! from the simulator's types on purpose (see the `teamsync-sim` crate).

use serde::Deserialize;

/// `GET license`: kept whole for `tenant status`; `Expired` is read to judge it.
#[derive(Debug, Deserialize)]
pub struct License {
    #[serde(rename = "Expired", default)]
    pub expired: Option<String>,
}

/// `POST proxy/endpoint/list` answer: one page.
#[derive(Debug, Deserialize)]
pub struct ListPage {
    #[serde(rename = "Total", default)]
    pub total: Option<u64>,
    #[serde(rename = "Data", default)]
    pub data: Option<Vec<ListUser>>,
}

/// A user of the list (the document's "subset of the data").
#[derive(Debug, Deserialize)]
pub struct ListUser {
    #[serde(rename = "SipAddress", default)]
    pub sip_address: Option<String>,
    #[serde(rename = "WebName", default)]
    pub web_name: Option<String>,
    #[serde(rename = "LineURI", default)]
    pub line_uri: Option<String>,
    #[serde(rename = "UsageLocation", default)]
    pub usage_location: Option<String>,
}

/// `GET proxy/endpoint/{sip}`: the detailed user.
#[derive(Debug, Deserialize)]
pub struct DetailUser {
    #[serde(rename = "SipAddress", default)]
    pub sip_address: Option<String>,
    #[serde(rename = "DisplayName", default)]
    pub display_name: Option<String>,
    #[serde(rename = "LineURI", default)]
    pub line_uri: Option<String>,
    #[serde(rename = "EnterpriseVoiceEnabled", default)]
    pub enterprise_voice_enabled: Option<bool>,
    #[serde(rename = "VoicePolicy", default)]
    pub voice_policy: Option<String>,
    /// Not in the document's detail example; read when a server adds it.
    #[serde(rename = "UsageLocation", default)]
    pub usage_location: Option<String>,
}

/// `GET numberrange`.
#[derive(Debug, Deserialize)]
pub struct NumberRanges {
    #[serde(default)]
    pub rows: Vec<NumberRangeRow>,
}

#[derive(Debug, Deserialize)]
pub struct NumberRangeRow {
    #[serde(rename = "Identity")]
    pub identity: String,
    #[serde(rename = "NumbersAvailable", default)]
    pub numbers_available: Option<i64>,
    #[serde(rename = "NumberRangeStart", default)]
    pub start: Option<String>,
    #[serde(rename = "NumberRangeEnd", default)]
    pub end: Option<String>,
}

/// One entry of `GET signindomain`.
#[derive(Debug, Deserialize)]
pub struct SignInDomain {
    #[serde(rename = "Value")]
    pub value: String,
}
