//! The test surface, outside the API prefix and without auth, rate limit or faults:
//! `GET /_sim/requests` (the request log), `DELETE /_sim/requests` (clear it) and
//! `GET /_sim/state` (the tenant now, in the seed's JSON shape).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::middleware::Edge;
use super::reqlog::Entry;
use super::wire::TenantDoc;
use super::Shared;

#[derive(Serialize)]
struct Requests {
    requests: Vec<Entry>,
}

async fn requests<S: Edge>(State(sh): State<Arc<S>>) -> Json<Requests> {
    let requests = match sh.edge().log.lock() {
        Ok(l) => l.snapshot(),
        Err(p) => p.into_inner().snapshot(),
    };
    Json(Requests { requests })
}

async fn clear<S: Edge>(State(sh): State<Arc<S>>) -> StatusCode {
    match sh.edge().log.lock() {
        Ok(mut l) => l.clear(),
        Err(p) => p.into_inner().clear(),
    }
    StatusCode::NO_CONTENT
}

/// `/_sim/requests` (GET the log, DELETE to clear it) for any simulator.
pub fn log_router<S: Edge>(sh: Arc<S>) -> Router {
    Router::new()
        .route("/_sim/requests", get(requests::<S>).delete(clear::<S>))
        .with_state(sh)
}

async fn state(State(sh): State<Arc<Shared>>) -> Json<TenantDoc> {
    Json(sh.read(|t| t.to_doc()))
}

pub fn router(sh: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/state", get(state))
        .with_state(sh.clone())
        .merge(log_router(sh))
}
