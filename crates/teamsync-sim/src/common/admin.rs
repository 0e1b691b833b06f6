//! The test surface, outside the API prefix and without auth, rate limit or faults:
//! `GET /_sim/requests` (the request log), `DELETE /_sim/requests` (clear it) and
//! `GET /_sim/state` (the tenant now, in the seed's JSON shape).

use std::sync::Arc;

use axum::extract::State;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::middleware::Edge;
use super::reqlog::Entry;

#[derive(Serialize)]
struct Requests {
    requests: Vec<Entry>,
}

/// `GET /_sim/requests`, for any simulator.
async fn requests<S: Edge>(State(sh): State<Arc<S>>) -> Json<Requests> {
    Json(Requests {
        requests: sh.edge().log().snapshot(),
    })
}

/// `DELETE /_sim/requests`, for any simulator.
async fn clear<S: Edge>(State(sh): State<Arc<S>>) -> StatusCode {
    sh.edge().log().clear();
    StatusCode::NO_CONTENT
}

/// Any simulator's `/_sim/*` surface: its request log, and its own `state` dump.
pub fn sim_routes<S, H, T>(sh: Arc<S>, state: H) -> Router
where
    S: Edge,
    H: Handler<T, Arc<S>>,
    T: 'static,
{
    Router::new()
        .route("/_sim/requests", get(requests::<S>).delete(clear::<S>))
        .route("/_sim/state", get(state))
        .with_state(sh)
}
