//! The simulated API's JSON, field for field as our reading of the PortSIP users document
//! (which gives descriptions but no field names: the names are PortSIP's snake_case
//! spelling of those descriptions). Kept apart from the connector's wire types on purpose.
//!
//! Not modelled (a body carrying them is a 400 "unknown field"): voicemail PIN and PIN
//! policies, voicemail-to-email, date/time announcement, QR/provisioning interface,
//! transport, BLFs and user profile files.

use serde::{Deserialize, Serialize};

/// The settings the document lets both "Create a new user" and "Modify the settings of a
/// user" write. Every field is optional in a body; a stored user has each one filled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// "Allows temporarily disabling the extension."
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mobile_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub office_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_phone_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_audio_recording_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_video_recording_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_dnd: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_acb: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_hot_desking: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_anonymous: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always_deliver_outbound_caller_id: Option<bool>,
    /// `DISABLE`, `ALLOW_WITH_CALLER_ID` or `ALLOW_WITH_SENDER_ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_caller_ids: Option<Vec<String>>,
    /// "Some custom configuration options serialized as json string".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_options: Option<String>,
    /// BCP 47 language tag, `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Keys only "Create a new user" takes; the modify endpoint refuses them.
pub const CREATE_ONLY: [&str; 5] = [
    "name",
    "password",
    "extension_number",
    "extension_password",
    "role",
];

/// A user as `GET /api/users/{id}` and the list's `items` show it. Never a password.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserObj {
    pub id: String,
    pub name: String,
    pub role: String,
    pub extension_number: String,
    #[serde(flatten)]
    pub settings: Settings,
}

/// By hand because serde's `flatten` would let unknown keys through: a seed with a
/// misspelt field must fail, not lose the value.
impl<'de> Deserialize<'de> for UserObj {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut m = serde_json::Map::<String, serde_json::Value>::deserialize(d)?;
        let mut take = |k: &str| match m.remove(k) {
            Some(serde_json::Value::String(s)) => Ok(s),
            Some(_) => Err(D::Error::custom(format!("{k} must be a string"))),
            None => Err(D::Error::custom(format!("missing field `{k}`"))),
        };
        let id = take("id")?;
        let name = take("name")?;
        let role = take("role")?;
        let extension_number = take("extension_number")?;
        let settings =
            serde_json::from_value(serde_json::Value::Object(m)).map_err(D::Error::custom)?;
        Ok(UserObj {
            id,
            name,
            role,
            extension_number,
            settings,
        })
    }
}

/// `GET /api/users`: one page and the total.
#[derive(Debug, Serialize)]
pub struct ListAnswer {
    pub count: u64,
    pub items: Vec<UserObj>,
}

/// `POST /api/users` → 201.
#[derive(Debug, Serialize)]
pub struct Created {
    pub id: String,
}

/// Seed file and `GET /_sim/state`: the tenant's users (without secrets) and custom roles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantDoc {
    #[serde(default)]
    pub custom_roles: Vec<String>,
    #[serde(default)]
    pub users: Vec<UserObj>,
}
