//! The document's field rules, enforced by the simulator whatever the client checked: a
//! client that skips validation must meet the server's error, as it would in production.
//!
//! From the document: account names of letters, digits and `_ - ' .`, not starting or
//! ending with a period, and never `admin`, `system`, `administrator` or `root` (case
//! ignored); extension numbers `[0-9]{3,64}`; the built-in roles. Where it is silent we
//! chose (and say so in the error): names of 1–64 characters, passwords of 8–128
//! characters, phone numbers of digits with an optional leading `+` and the separators
//! ` -()` (at most 64), emails `local@domain` of at most 254 characters, display names of
//! at most 128 characters.

use super::error::{ApiError, Code};
use super::wire::Settings;

/// Names reserved for the system administrator, compared case-insensitively.
pub const RESERVED_NAMES: [&str; 4] = ["admin", "system", "administrator", "root"];

/// The document's built-in roles; custom roles may not reuse these names.
pub const BUILTIN_ROLES: [&str; 7] = [
    "SystemAdmin",
    "Replicator",
    "Dealer",
    "Admin",
    "StandardUser",
    "StandardInternationalUser",
    "QueueManager",
];

/// The role of a user created without one.
pub const DEFAULT_ROLE: &str = "StandardUser";

pub fn user_name(name: &str) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::bad(Code::InvalidUserName, m);
    if name.is_empty() || name.chars().count() > 64 {
        return Err(bad("name must be 1 to 64 characters".into()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-'.".contains(*c)))
    {
        return Err(bad(format!(
            "name {name:?} contains {c:?}: only letters, numbers, and the following special characters can be added: underscore, dash, single quote, and period (_, -, ', and .)"
        )));
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Err(bad(format!(
            "name {name:?}: username cannot start or end with period (.)"
        )));
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(ApiError::bad(
            Code::ReservedUserName,
            format!("name {name:?}: admin, system, administrator, and root are reserved names for system admin only with case ignored"),
        ));
    }
    Ok(())
}

pub fn extension_number(ext: &str) -> Result<(), ApiError> {
    if (3..=64).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(ApiError::bad(
            Code::InvalidExtensionNumber,
            format!("extension_number {ext:?} does not match [0-9]{{3,64}}"),
        ))
    }
}

pub fn password(field: &str, p: &str) -> Result<(), ApiError> {
    let n = p.chars().count();
    if (8..=128).contains(&n) {
        Ok(())
    } else {
        // Never echoes the value.
        Err(ApiError::bad(
            Code::InvalidValue,
            format!("{field} must be 8 to 128 characters"),
        ))
    }
}

pub fn role(r: &str, custom: &[String]) -> Result<(), ApiError> {
    if BUILTIN_ROLES.contains(&r) || custom.iter().any(|c| c == r) {
        Ok(())
    } else {
        Err(ApiError::bad(
            Code::UnknownRole,
            format!("role {r:?} is neither a built-in role nor a custom role of this tenant"),
        ))
    }
}

fn invalid(m: String) -> ApiError {
    ApiError::bad(Code::InvalidValue, m)
}

fn phone(field: &str, v: &str) -> Result<(), ApiError> {
    let body = v.strip_prefix('+').unwrap_or(v);
    let ok = !body.is_empty()
        && v.len() <= 64
        && body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || b" -()".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} {v:?} is not a phone number (digits, an optional leading +, spaces, - and parentheses; at most 64)"
        )))
    }
}

fn email(v: &str) -> Result<(), ApiError> {
    let ok = v.len() <= 254
        && !v.chars().any(char::is_whitespace)
        && matches!(v.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !d.contains('@') && !d.starts_with('.') && !d.ends_with('.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("email {v:?} is not an email address")))
    }
}

/// Checks every field a body sets (a `null` or absent field is left alone).
pub fn settings(s: &Settings) -> Result<(), ApiError> {
    if let Some(e) = &s.email {
        email(e)?;
    }
    if let Some(d) = &s.display_name {
        if d.trim().is_empty() || d.chars().count() > 128 {
            return Err(invalid("display_name must be 1 to 128 characters".into()));
        }
    }
    for (field, v) in [
        ("mobile_phone_number", &s.mobile_phone_number),
        ("office_phone_number", &s.office_phone_number),
        ("home_phone_number", &s.home_phone_number),
    ] {
        // An empty string clears the number.
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            phone(field, v)?;
        }
    }
    if let Some(ids) = &s.outbound_caller_ids {
        for id in ids {
            phone("outbound_caller_ids", id)?;
        }
    }
    if let Some(m) = &s.sms_mode {
        if !["DISABLE", "ALLOW_WITH_CALLER_ID", "ALLOW_WITH_SENDER_ID"].contains(&m.as_str()) {
            return Err(invalid(format!(
                "sms_mode {m:?}: expected DISABLE, ALLOW_WITH_CALLER_ID or ALLOW_WITH_SENDER_ID"
            )));
        }
    }
    if let Some(l) = &s.language {
        let ok = (2..=35).contains(&l.len())
            && l.split('-').all(|p| {
                !p.is_empty() && p.len() <= 8 && p.bytes().all(|b| b.is_ascii_alphanumeric())
            });
        if !ok {
            return Err(invalid(format!(
                "language {l:?} is not a BCP 47 language tag such as en-US"
            )));
        }
    }
    if let Some(c) = &s.custom_options {
        if serde_json::from_str::<serde_json::Value>(c).is_err() {
            return Err(invalid(
                "custom_options must be a JSON value serialized as a string".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_follow_the_document() {
        for ok in [
            "alice",
            "o'brien",
            "jean-luc.picard",
            "a_b",
            "x",
            "Admin2",
            "r.oot",
        ] {
            assert!(user_name(ok).is_ok(), "{ok}");
        }
        for (bad, code) in [
            ("", Code::InvalidUserName),
            (".alice", Code::InvalidUserName),
            ("alice.", Code::InvalidUserName),
            ("al ice", Code::InvalidUserName),
            ("a+b", Code::InvalidUserName),
            ("émile", Code::InvalidUserName),
            ("admin", Code::ReservedUserName),
            ("ROOT", Code::ReservedUserName),
            ("System", Code::ReservedUserName),
            ("AdministratoR", Code::ReservedUserName),
        ] {
            assert_eq!(user_name(bad).unwrap_err().code, code, "{bad:?}");
        }
        assert!(user_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn extension_numbers_are_3_to_64_digits() {
        assert!(extension_number("101").is_ok());
        assert!(extension_number(&"9".repeat(64)).is_ok());
        for bad in ["", "12", "10a", "+101", " 101", &"9".repeat(65)] {
            assert_eq!(
                extension_number(bad).unwrap_err().code,
                Code::InvalidExtensionNumber,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn settings_values_are_checked() {
        let mut s = Settings {
            email: Some("a@example.com".into()),
            office_phone_number: Some("+32 2 540 52 00".into()),
            outbound_caller_ids: Some(vec!["+3225405200".into()]),
            language: Some("en-US".into()),
            sms_mode: Some("DISABLE".into()),
            ..Settings::default()
        };
        assert!(settings(&s).is_ok());
        s.email = Some("nope".into());
        assert!(settings(&s).is_err());
        s.email = None;
        s.office_phone_number = Some("call me".into());
        assert!(settings(&s).is_err());
        s.office_phone_number = Some(String::new());
        assert!(settings(&s).is_ok());
        s.language = Some("en_US".into());
        assert!(settings(&s).is_err());
    }

    #[test]
    fn passwords_are_never_echoed() {
        let e = password("password", "short").unwrap_err();
        assert!(!e.message.contains("short"));
    }
}
