//! The PortSIP users API's JSON as this connector reads and writes it. Reads are lenient
//! (unknown fields ignored, absent ones defaulted) so a newer PBX still parses; writes
//! carry only the fields teamsync manages. Separate from the simulator's types on purpose.

use serde::{Deserialize, Deserializer, Serialize};

/// An id the PBX may send as a string or a number; kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if !s.trim().is_empty() => Ok(Id(s)),
            serde_json::Value::Number(n) => Ok(Id(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "a user id must be a non-empty string or a number, got {other}"
            ))),
        }
    }
}

/// `GET /api/users` answer.
#[derive(Debug, Deserialize)]
pub struct UsersPage {
    pub count: u64,
    #[serde(default)]
    pub items: Vec<WireUser>,
}

/// A user as listed or read.
#[derive(Debug, Clone, Deserialize)]
pub struct WireUser {
    pub id: Id,
    /// The account name (shown for a user a sheet cannot address).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub office_phone_number: Option<String>,
    #[serde(default)]
    pub extension_number: Option<String>,
}

/// `POST /api/users` body. `password` and `extension_password` are random, sent once and
/// never kept (see the module doc of `steps`).
#[derive(Serialize)]
pub struct CreateBody<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub extension_number: &'a str,
    pub extension_password: &'a str,
    pub email: &'a str,
    pub display_name: &'a str,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub office_phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_caller_ids: Option<Vec<String>>,
}

/// `POST /api/users/{id}` body: only what the step changes.
#[derive(Debug, Default, Serialize)]
pub struct ModifyBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `""` clears it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub office_phone_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outbound_caller_ids: Option<Vec<String>>,
}

/// `POST /api/users` → 201.
#[derive(Debug, Deserialize)]
pub struct Created {
    pub id: Id,
}
