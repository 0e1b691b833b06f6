//! Two small per-subscription services: a user's SIP address, and the phone-number
//! synchronization with MS Teams.
//!
//! Our readings:
//! - `GET …/subscriptions/{id}/users/{ms_user_id}/sip_address` has no `msteams` segment in the
//!   document and is served at exactly that path (and not under `msteams/`). Every Teams user
//!   has a SIP address; Teams derives it from the UPN, so it is `sip:` + the UPN in lower
//!   case. An unknown (or not yet replicated) user is a 404.
//! - `POST sync`: the document's list of `type` values is lost; we take `normal` (the example:
//!   users) and `resource_account` (resource accounts); anything else is a 400. It answers the
//!   ones whose phone number is synchronized — those holding a number — each with status
//!   `syncing`, in id order. The simulated tenant is always in sync, so nothing changes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::Uri;
use axum::Json;

use super::error::{ApiError, Code};
use super::extract::{query_params, Body};
use super::users::UserId;
use super::wire::{PostSync, SipAddress, SyncAnswer, SyncUser};
use super::{now_ms, Shared};

/// Status of every user a sync answers.
pub const SYNCING: &str = "syncing";

/// `GET users/{ms_user_id}/sip_address` (outside the msteams prefix).
pub async fn sip_address(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Json<SipAddress>, ApiError> {
    query_params(uri.query(), &[])?;
    let now = now_ms();
    let upn = sh.read(|t| t.visible_user(&id, now).map(|u| u.upn.to_lowercase()))?;
    Ok(Json(SipAddress {
        sip_address: format!("sip:{upn}"),
    }))
}

/// `POST sync`.
pub async fn sync(
    State(sh): State<Arc<Shared>>,
    uri: Uri,
    Body(b): Body<PostSync>,
) -> Result<Json<SyncAnswer>, ApiError> {
    query_params(uri.query(), &[])?;
    let now = now_ms();
    let ids: Vec<String> = match b.kind.as_str() {
        "normal" => sh.read(|t| {
            t.users
                .values()
                .filter(|u| u.visible_at_ms <= now && u.phone_number.is_some())
                .map(|u| u.id.clone())
                .collect()
        }),
        "resource_account" => sh.read(|t| {
            t.accounts
                .values()
                .filter(|a| a.phone_number.is_some())
                .map(|a| a.id.clone())
                .collect()
        }),
        other => {
            return Err(ApiError::bad(
                Code::BadValue,
                format!("type {other:?} must be normal or resource_account"),
            ))
        }
    };
    Ok(Json(SyncAnswer {
        msteams_user_ids: ids
            .into_iter()
            .map(|id| SyncUser {
                id,
                status: SYNCING.to_string(),
            })
            .collect(),
    }))
}
