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
pub struct Requests {
    requests: Vec<Entry>,
}

/// `GET /_sim/requests`, for any simulator.
pub async fn requests<S: Edge>(State(sh): State<Arc<S>>) -> Json<Requests> {
    Json(Requests {
        requests: sh.edge().log().snapshot(),
    })
}

/// `DELETE /_sim/requests`, for any simulator.
pub async fn clear<S: Edge>(State(sh): State<Arc<S>>) -> StatusCode {
    sh.edge().log().clear();
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
