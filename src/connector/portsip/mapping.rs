//! PortSIP wire → teamsync model.
//!
//! | PortSIP | model | note |
//! | --- | --- | --- |
//! | `id` | user id | |
//! | `email` | `upn` | a user without a UPN-shaped email cannot be addressed by a sheet: left out of the users, but a number it holds is kept as held ([`unaddressable_holder`]) so no one else is given it |
//! | `display_name` | `displayName` | |
//! | `office_phone_number` | `number` | separators dropped; not E.164 (a short internal number) is none |
//! | `extension_number` | `extension` | |
//! | `enabled` | voice enabled | shown, not planned |

use super::wire;
use crate::model::{HeldNumber, TenantUser, Upn, E164};

/// A PortSIP phone field as a number: separators dropped; `None` when empty or not an
/// E.164 number (a short internal number, say), which the planner then treats as no
/// number.
pub fn phone_to_e164(raw: &str) -> Option<E164> {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    if compact.is_empty() {
        return None;
    }
    E164::parse_canonical(&compact).ok()
}

pub fn user_from_wire(w: &wire::WireUser) -> Option<TenantUser> {
    let email = w.email.as_deref().unwrap_or("").trim();
    let Ok(upn) = Upn::parse(email) else {
        tracing::debug!(id = %w.id.0, "PortSIP user without a UPN-shaped email; left out");
        return None;
    };
    let office = w.office_phone_number.as_deref().unwrap_or("");
    let number = phone_to_e164(office);
    if number.is_none() && !office.trim().is_empty() {
        tracing::warn!(upn = %upn, "office phone number is not an E.164 number; read as none");
    }
    Some(TenantUser {
        display_name: w.display_name.clone().unwrap_or_default(),
        voice_enabled: w.enabled.unwrap_or(true),
        number,
        extension: w
            .extension_number
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string),
        ..TenantUser::new(w.id.0.clone(), upn)
    })
}

/// The number of a user no sheet can address (no UPN-shaped email), if it holds one: the
/// planner must not give that number to anyone else.
pub fn unaddressable_holder(w: &wire::WireUser) -> Option<HeldNumber> {
    let email = w.email.as_deref().unwrap_or("").trim();
    if Upn::parse(email).is_ok() {
        return None;
    }
    let number = phone_to_e164(w.office_phone_number.as_deref().unwrap_or(""))?;
    let name = w.name.as_deref().unwrap_or("").trim();
    Some(HeldNumber {
        number,
        holder: format!("PortSIP user {} ({name:?}, no email)", w.id.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_users_map_to_tenant_users() {
        let w: wire::WireUser = serde_json::from_value(serde_json::json!({
            "id": 100000000001u64, "name": "jane", "email": "Jane@Example.com",
            "display_name": "Jane", "enabled": true, "extension_number": "101",
            "office_phone_number": "+32 2 540 52 00", "unknown_future_field": 1
        }))
        .unwrap();
        let u = user_from_wire(&w).unwrap();
        assert_eq!(u.id, "100000000001");
        assert_eq!(u.upn.as_str(), "jane@example.com");
        assert_eq!(u.number.unwrap().to_string(), "+3225405200");
        assert_eq!(u.country, None);
        assert_eq!(u.extension.as_deref(), Some("101"));
        let w: wire::WireUser =
            serde_json::from_value(serde_json::json!({"id": "7", "email": ""})).unwrap();
        assert!(user_from_wire(&w).is_none());
        let w: wire::WireUser = serde_json::from_value(
            serde_json::json!({"id": "7", "email": "a@b.com", "office_phone_number": "1234"}),
        )
        .unwrap();
        assert_eq!(user_from_wire(&w).unwrap().number, None);
        assert!(serde_json::from_value::<wire::WireUser>(serde_json::json!({"id": ""})).is_err());
        // No email: left out, but its number stays taken.
        let w: wire::WireUser = serde_json::from_value(serde_json::json!({
            "id": "100000000003", "name": "frontdesk", "office_phone_number": "+3225405200"
        }))
        .unwrap();
        assert!(user_from_wire(&w).is_none());
        let h = unaddressable_holder(&w).unwrap();
        assert_eq!(h.number.to_string(), "+3225405200");
        assert_eq!(
            h.holder,
            "PortSIP user 100000000003 (\"frontdesk\", no email)"
        );
    }
}
