//! The simulated UMP server in memory, and its rules: what a seed must hold, what a
//! `PUT …/script` may change, and the numbers each range has free.
//!
//! Rules (as strict as the document, plus what the PowerShell behind it enforces):
//! - users are keyed by SIP address, case-insensitively; `sip:` is part of the key;
//! - a script body is a non-empty object of the attribute table's keys (unknown keys, wrong
//!   types and bad values are 400s; nothing changes unless the whole body is valid);
//! - `LineURI` / `PrivateLine` are `tel:+E164` (any case of `tel:`), or `null`/`""` to clear;
//!   a LineURI held by another user is refused; a user left with a LineURI must have
//!   `EnterpriseVoiceEnabled: true` (Teams refuses a number otherwise);
//! - `VoicePolicy` must be one of the seed's `voicePolicies` (when it lists any);
//! - `NumbersAvailable` of a range with bounds is its span minus assigned LineURIs.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::wire::{Kind, SeedDoc, SCRIPT_ATTRIBUTES};
use crate::common::{is_country, is_e164};

pub type User = Map<String, Value>;

#[derive(Debug, Clone)]
pub struct Tenant {
    pub doc: SeedDoc,
    /// Lowercase SIP address → user.
    pub users: BTreeMap<String, User>,
}

pub fn key(sip: &str) -> String {
    sip.trim().to_lowercase()
}

fn text<'a>(u: &'a User, k: &str) -> Option<&'a str> {
    u.get(k).and_then(Value::as_str)
}

/// `tel:+31365461212` (any case, surrounding spaces) → `+31365461212`; `None` when not one.
pub fn tel_number(s: &str) -> Option<String> {
    let t = s.trim();
    let rest = t.get(..4).filter(|p| p.eq_ignore_ascii_case("tel:"))?;
    let n = &t[rest.len()..];
    let main = n.split(';').next().unwrap_or(n);
    is_e164(main).then(|| n.to_string())
}

/// The number a user's LineURI holds, if any.
pub fn line_number(u: &User) -> Option<String> {
    text(u, "LineURI").and_then(tel_number)
}

impl Tenant {
    pub fn from_doc(doc: SeedDoc) -> Result<Tenant, String> {
        let mut users = BTreeMap::new();
        let mut lines: HashMap<String, String> = HashMap::new();
        for (i, u) in doc.users.iter().enumerate() {
            let sip = text(u, "SipAddress")
                .filter(|s| s.to_lowercase().starts_with("sip:") && s.contains('@'))
                .ok_or(format!("users[{i}]: SipAddress must be sip:local@domain"))?;
            if text(u, "DisplayName").is_none() {
                return Err(format!("users[{i}] ({sip}): DisplayName is required"));
            }
            if let Some(raw) = text(u, "LineURI").filter(|s| !s.trim().is_empty()) {
                let n = tel_number(raw).ok_or(format!(
                    "users[{i}] ({sip}): LineURI {raw:?} is not tel:+E164"
                ))?;
                if let Some(other) = lines.insert(n.clone(), sip.to_string()) {
                    return Err(format!("LineURI {n} is given to both {other} and {sip}"));
                }
            }
            if let Some(c) = text(u, "UsageLocation").filter(|c| !c.is_empty()) {
                if !is_country(c) {
                    return Err(format!(
                        "users[{i}] ({sip}): UsageLocation {c:?} is not ISO 3166 alpha-2"
                    ));
                }
            }
            if users.insert(key(sip), u.clone()).is_some() {
                return Err(format!("SipAddress {sip} appears twice"));
            }
        }
        for r in &doc.numberrange {
            if !r.get("Identity").is_some_and(Value::is_string) {
                return Err("numberrange: every row needs an Identity".into());
            }
        }
        Ok(Tenant { doc, users })
    }

    /// The seed's shape, with the users as they are now.
    pub fn to_doc(&self) -> SeedDoc {
        let mut d = self.doc.clone();
        d.users = self.users.values().cloned().collect();
        d
    }

    pub fn user(&self, sip: &str) -> Option<&User> {
        self.users.get(&key(sip))
    }

    fn holder_of(&self, number: &str) -> Option<&str> {
        self.users
            .values()
            .find(|u| line_number(u).as_deref() == Some(number))
            .and_then(|u| text(u, "SipAddress"))
    }

    /// `numberrange` rows with `NumbersAvailable` as it is now.
    pub fn number_ranges(&self) -> Vec<Map<String, Value>> {
        let held: Vec<u64> = self
            .users
            .values()
            .filter_map(line_number)
            .filter(|n| !n.contains(';'))
            .filter_map(|n| n[1..].parse().ok())
            .collect();
        self.doc
            .numberrange
            .iter()
            .map(|r| {
                let bound = |k: &str| {
                    r.get(k)
                        .and_then(Value::as_str)
                        .and_then(tel_number)
                        .and_then(|n| Some((n.len(), n[1..].parse::<u64>().ok()?)))
                };
                let mut row = r.clone();
                if let (Some((la, a)), Some((lb, b))) =
                    (bound("NumberRangeStart"), bound("NumberRangeEnd"))
                {
                    let free = if la == lb && a <= b {
                        (b - a + 1) - held.iter().filter(|&&n| (a..=b).contains(&n)).count() as u64
                    } else {
                        0
                    };
                    row.insert("NumbersAvailable".into(), Value::from(free));
                }
                row
            })
            .collect()
    }

    /// Checks a script body against `sip`'s user and returns the user as it would be
    /// after it; `Err((status, detail))` otherwise. Nothing changes here.
    pub fn script(&self, sip: &str, body: &Value) -> Result<User, (u16, String)> {
        let bad = |m: String| Err((400, m));
        let Some(current) = self.user(sip) else {
            return Err((404, format!("User {sip} was not found")));
        };
        let Some(obj) = body.as_object() else {
            return bad("the body must be a JSON object of attributes".into());
        };
        if obj.is_empty() {
            return bad("the body names no attribute to update".into());
        }
        let mut next = current.clone();
        for (k, v) in obj {
            let Some((_, kind)) = SCRIPT_ATTRIBUTES.iter().find(|(a, _)| a == k) else {
                return bad(format!("{k} is not an attribute that can be updated"));
            };
            let v = match (kind, v) {
                (Kind::Bool, Value::Bool(_)) => v.clone(),
                (Kind::Bool, _) => return bad(format!("{k} must be true or false")),
                (_, Value::Null) => Value::Null,
                (_, Value::String(s)) => match self.check_value(k, *kind, s) {
                    Ok(v) => v,
                    Err(m) => return bad(m),
                },
                _ => return bad(format!("{k} must be a string or null")),
            };
            next.insert(k.clone(), v);
        }
        if let Some(n) = line_number(&next) {
            if let Some(other) = self.holder_of(&n).filter(|o| key(o) != key(sip)) {
                return Err((
                    409,
                    format!("LineURI tel:{n} is already assigned to {other}"),
                ));
            }
            if next.get("EnterpriseVoiceEnabled") != Some(&Value::Bool(true)) {
                return bad("a user with a LineURI must have EnterpriseVoiceEnabled true".into());
            }
        }
        Ok(next)
    }

    fn check_value(&self, k: &str, kind: Kind, s: &str) -> Result<Value, String> {
        let ok = match kind {
            Kind::Text => true,
            Kind::Country => is_country(s),
            Kind::Policy => {
                k != "VoicePolicy"
                    || self.doc.voice_policies.is_empty()
                    || self
                        .doc
                        .voice_policies
                        .iter()
                        .any(|p| p.eq_ignore_ascii_case(s))
            }
            Kind::Bool => false,
            Kind::Tel => s.trim().is_empty() || tel_number(s).is_some(),
            Kind::PickupGroup => s
                .strip_prefix('#')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())),
            Kind::Guid => uuid::Uuid::parse_str(s).is_ok(),
        };
        if !ok {
            let what = match kind {
                Kind::Text => "must not be empty",
                Kind::Country => "must be an ISO 3166-1 alpha-2 country code",
                Kind::Policy => "names no policy of this server",
                Kind::Bool => "must be true or false",
                Kind::Tel => "must be tel:+ and an E.164 number",
                Kind::PickupGroup => "must look like #409",
                Kind::Guid => "must be a GUID",
            };
            return Err(format!("{k} {s:?} {what}"));
        }
        Ok(match kind {
            Kind::Tel if s.trim().is_empty() => Value::Null,
            Kind::Tel => Value::String(format!("tel:{}", tel_number(s).unwrap_or_default())),
            _ => Value::String(s.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tenant() -> Tenant {
        let doc: SeedDoc = serde_json::from_value(json!({
            "license": {}, "sysinfo": {},
            "numberrange": [{"Identity": "R", "NumberRangeStart": "tel:+31100000", "NumberRangeEnd": "tel:+31100009"}],
            "voicePolicies": ["International"],
            "users": [
                {"SipAddress": "sip:a@x.com", "DisplayName": "A", "LineURI": "tel:+31100001", "EnterpriseVoiceEnabled": true},
                {"SipAddress": "sip:b@x.com", "DisplayName": "B", "LineURI": null, "EnterpriseVoiceEnabled": false}
            ]
        }))
        .unwrap();
        Tenant::from_doc(doc).unwrap()
    }

    #[test]
    fn script_rules() {
        let t = tenant();
        let ok = t
            .script("SIP:B@x.com", &json!({"LineURI": "Tel:+31100002", "EnterpriseVoiceEnabled": true, "VoicePolicy": "international"}))
            .unwrap();
        assert_eq!(ok["LineURI"], "tel:+31100002");
        let code = |b: Value| t.script("sip:b@x.com", &b).unwrap_err().0;
        assert_eq!(
            code(json!({"LineURI": "tel:+31100001", "EnterpriseVoiceEnabled": true})),
            409
        );
        assert_eq!(code(json!({"LineURI": "tel:+31100002"})), 400);
        assert_eq!(code(json!({"VoicePolicy": "Mars"})), 400);
        assert_eq!(code(json!({"Groups": []})), 400);
        assert_eq!(code(json!({})), 400);
        assert_eq!(code(json!({"UsageLocation": "UK"})), 400);
        assert_eq!(
            t.script("sip:nobody@x.com", &json!({"City": "X"}))
                .unwrap_err()
                .0,
            404
        );
        let cleared = t
            .script(
                "sip:a@x.com",
                &json!({"LineURI": null, "EnterpriseVoiceEnabled": false}),
            )
            .unwrap();
        assert_eq!(cleared["LineURI"], Value::Null);
    }

    #[test]
    fn numbers_available_is_span_minus_assigned() {
        let t = tenant();
        assert_eq!(t.number_ranges()[0]["NumbersAvailable"], 9);
    }
}
