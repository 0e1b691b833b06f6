//! The subscription's MS Teams administrator: `GET`, `POST` (create or update) and `DELETE
//! admins`.
//!
//! The password is a secret the simulator must not leak: it is hashed (SHA-256 over a fresh
//! random salt) before anything is stored, never answered, and a body the API refuses is
//! refused with a reason that does not quote it (serde's messages can quote a value). The
//! request log keeps no bodies.
//!
//! Our readings: `msUsername` must look like `local@domain` (the document's example is in a
//! domain the tenant need not have verified, so the domain is not checked); the password must
//! be 1 to 256 characters. An update keeps the administrator's id; a create after a delete gets
//! a new one. `GET` without an administrator is the document's 404; `DELETE` without one is
//! its 204 with no body.

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};

use super::error::{ApiError, Code};
use super::extract::{query_params, Body};
use super::state::Admin;
use super::wire::{AdminObj, InternalId, PostAdmin};
use super::Shared;

fn no_admin() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::UnknownAdmin,
        "No MS Teams administrator found",
    )
}

/// Hex of SHA-256(salt ‖ password).
pub fn hash_password(salt: &[u8], password: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

impl Admin {
    /// Whether `password` is this administrator's (false for a seeded one, which has none).
    pub fn password_matches(&self, password: &str) -> bool {
        if self.password_hash.is_empty() {
            return false;
        }
        let Ok(salt) = hex::decode(&self.salt) else {
            return false;
        };
        let got = hash_password(&salt, password);
        got.len() == self.password_hash.len()
            && got
                .bytes()
                .zip(self.password_hash.bytes())
                .fold(0u8, |a, (x, y)| a | (x ^ y))
                == 0
    }

    fn obj(&self) -> AdminObj {
        AdminObj {
            id: self.id,
            ms_username: self.ms_username.clone(),
        }
    }
}

/// `GET admins`.
pub async fn get_admin(
    State(sh): State<Arc<Shared>>,
    uri: Uri,
) -> Result<Json<AdminObj>, ApiError> {
    query_params(uri.query(), &[])?;
    sh.read(|t| t.admin.as_ref().map(Admin::obj))
        .map(Json)
        .ok_or_else(no_admin)
}

fn check_username(s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    let ok = s.len() <= 256
        && !s.chars().any(char::is_whitespace)
        && s.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.contains('@'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(ApiError::bad(
            Code::BadValue,
            "msUsername must be a user principal name (local@domain)",
        ))
    }
}

/// `POST admins`: 200 `{"id"}`, whether created or updated.
pub async fn post_admin(
    State(sh): State<Arc<Shared>>,
    req: Request,
) -> Result<Json<InternalId>, ApiError> {
    query_params(req.uri().query(), &[])?;
    // The generic body rejection quotes serde's message, which may quote the password.
    let Body(b) = Body::<PostAdmin>::from_request(req, &sh)
        .await
        .map_err(|e| {
            let reason = if e.reason.contains("Content-Type") {
                e.reason
            } else {
                "Invalid body: msUsername and msPassword (strings) are required, nothing else"
                    .to_string()
            };
            ApiError::bad(Code::BadBody, reason)
        })?;
    let username = check_username(&b.ms_username)?;
    if b.ms_password.is_empty() || b.ms_password.chars().count() > 256 {
        return Err(ApiError::bad(
            Code::BadValue,
            "msPassword must be 1 to 256 characters",
        ));
    }
    let salt: [u8; 16] = rand::random();
    let password_hash = hash_password(&salt, &b.ms_password);
    drop(b);
    let id = sh.write(|t, change| {
        let id = if let Some(a) = &t.admin {
            a.id
        } else {
            let id = change.next_admin_id;
            change.next_admin_id += 1;
            id
        };
        change.admin = Some(Some(Admin {
            id,
            ms_username: username,
            salt: hex::encode(salt),
            password_hash,
        }));
        Ok(id)
    })?;
    Ok(Json(InternalId { id }))
}

/// `DELETE admins`: 200 with the deleted administrator, 204 when there was none.
pub async fn delete_admin(State(sh): State<Arc<Shared>>, uri: Uri) -> Result<Response, ApiError> {
    query_params(uri.query(), &[])?;
    let gone = sh.write(|t, change| {
        let gone = t.admin.as_ref().map(Admin::obj);
        if gone.is_some() {
            change.admin = Some(None);
        }
        Ok(gone)
    })?;
    Ok(match gone {
        Some(a) => Json(a).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_salted_and_never_in_debug() {
        let a = Admin {
            id: 1,
            ms_username: "a@b.com".into(),
            salt: hex::encode([7u8; 16]),
            password_hash: hash_password(&[7u8; 16], "VerySecretPassword"),
        };
        assert!(a.password_matches("VerySecretPassword"));
        assert!(!a.password_matches("verysecretpassword"));
        assert_ne!(
            hash_password(&[1u8; 16], "x"),
            hash_password(&[2u8; 16], "x")
        );
        let dbg = format!("{a:?}");
        assert!(
            !dbg.contains(&a.password_hash) && !dbg.contains(&a.salt),
            "{dbg}"
        );
        let body: PostAdmin =
            serde_json::from_str(r#"{"msUsername":"a@b.com","msPassword":"VerySecretPassword"}"#)
                .unwrap();
        assert!(!format!("{body:?}").contains("VerySecret"));
        let seeded = Admin {
            salt: String::new(),
            password_hash: String::new(),
            ..a
        };
        assert!(!seeded.password_matches(""));
    }

    #[test]
    fn usernames_are_upns() {
        assert!(check_username("john.doe@netaxis.onmicrosoft.com").is_ok());
        assert!(check_username("john").is_err());
        assert!(check_username("@x.com").is_err());
        assert!(check_username("a b@x.com").is_err());
        assert!(check_username("a@localhost").is_err());
    }
}
