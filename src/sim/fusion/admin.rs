//! The test surface, outside the API prefix and without auth, rate limit or faults:
//! `GET /_sim/requests` (the request log), `DELETE /_sim/requests` (clear it) and
//! `GET /_sim/state` (the tenant now, in the seed's JSON shape).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::reqlog::Entry;
use super::wire::TenantDoc;
use super::Shared;

#[derive(Serialize)]
struct Requests {
    requests: Vec<Entry>,
}

async fn requests(State(sh): State<Arc<Shared>>) -> Json<Requests> {
    Json(Requests {
        requests: sh.log_snapshot(),
    })
}

async fn clear(State(sh): State<Arc<Shared>>) -> StatusCode {
    sh.log_clear();
    StatusCode::NO_CONTENT
}

async fn state(State(sh): State<Arc<Shared>>) -> Json<TenantDoc> {
    Json(sh.read(|t| t.to_doc()))
}

pub fn router(sh: Arc<Shared>) -> Router {
    Router::new()
        .route("/_sim/requests", get(requests).delete(clear))
        .route("/_sim/state", get(state))
        .with_state(sh)
}
