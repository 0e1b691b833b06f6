//! The test surface, outside the API prefix and without auth, rate limit or faults:
//! `GET /_sim/requests` (the request log), `DELETE /_sim/requests` (clear it) and
//! `GET /_sim/state` (the tenant now, in the seed's JSON shape).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::middleware::Front;
use super::reqlog::Entry;
use super::wire::TenantDoc;
use super::Shared;

#[derive(Serialize)]
pub(crate) struct Requests {
    requests: Vec<Entry>,
}

/// `GET /_sim/requests` of any simulator behind the [`Front`] door.
pub(crate) async fn requests<S: Front>(State(sh): State<Arc<S>>) -> Json<Requests> {
    let requests = match sh.front().log.lock() {
        Ok(l) => l.snapshot(),
        Err(p) => p.into_inner().snapshot(),
    };
    Json(Requests { requests })
}

/// `DELETE /_sim/requests` of any simulator behind the [`Front`] door.
pub(crate) async fn clear<S: Front>(State(sh): State<Arc<S>>) -> StatusCode {
    match sh.front().log.lock() {
        Ok(mut l) => l.clear(),
        Err(p) => p.into_inner().clear(),
    }
    StatusCode::NO_CONTENT
}

async fn state(State(sh): State<Arc<Shared>>) -> Json<TenantDoc> {
    Json(sh.read(|t| t.to_doc()))
}

pub fn router(sh: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/_sim/requests",
            get(requests::<Shared>).delete(clear::<Shared>),
        )
        .route("/_sim/state", get(state))
        .with_state(sh)
}
