//! A simulator of AudioCodes UMP 365's REST API (its "REST API" document),
//! served under `/sysadmin/api/` like the real server, as strict as the document (and the
//! PowerShell behind it, see `state`). It is `teamsync sim --backend ump` and the embedded
//! tenant of a `sim` tenant with `sim_backend = "ump"`.
//!
//! It reuses the Fusion simulator's machinery: the edge middleware (latency, optional
//! bearer auth for a proxy in front, rate limit with `Retry-After`, injected faults,
//! request log), droppable connections, `/_sim/requests`; `GET /_sim/state` gives the
//! server now in the seed's shape (`samples/ump-tenant.json`).
//!
//! Our readings where the document is silent (the connector's module doc lists the same):
//! - list body `{"skip": N, "take": M}` (both optional; `take` 1..=1000; unknown keys
//!   400); users in SIP-address order; `Total` counts all users;
//! - errors are RFC 7807 problem details (the document's `ProblemDetails` schema):
//!   `{"type", "title", "status", "detail"}`;
//! - no authentication unless `--token` is given (a proxy in front), then bearer as Fusion;
//! - `WebName` in the list is the user's `DisplayName`.

pub mod state;
pub mod store;
pub mod wire;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::common::conn::Background;
use crate::common::error::json_error;
use crate::common::middleware::{self, Edge, EdgeState, Refusal};
use crate::common::{admin, Sample, SimError, SimOptions};
use state::Tenant;
use store::Store;
use wire::{ListBody, Problem, SeedDoc, DETAIL_FIELDS, LIST_FIELDS};

/// Most users one list page may ask for.
pub const MAX_TAKE: u64 = 1000;

struct Db {
    tenant: Tenant,
    store: Store,
}

pub struct UmpShared {
    db: Mutex<Db>,
    edge: EdgeState,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An error answer in problem-details form.
pub fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    problem_with(status, detail, None)
}

/// The problem-details answer, with `Retry-After` when throttled (and the bearer
/// challenge on a 401, from the shared renderer).
fn problem_with(
    status: StatusCode,
    detail: impl Into<String>,
    retry_after: Option<u64>,
) -> Response {
    let p = Problem {
        kind: format!("https://httpstatuses.io/{}", status.as_u16()),
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail: detail.into(),
    };
    json_error(status, "application/problem+json", &p, retry_after)
}

impl Edge for UmpShared {
    fn edge(&self) -> &EdgeState {
        &self.edge
    }
    fn refuse(&self, r: Refusal) -> Response {
        problem_with(r.status(), r.message(), r.retry_after())
    }
}

/// The sample UMP server, served when a new state gets no seed file.
pub const SAMPLE: Sample = Sample {
    name: "samples/ump-tenant.json",
    json: include_str!("../../../../samples/ump-tenant.json"),
};

/// A simulator ready to serve.
pub struct UmpSim {
    shared: Arc<UmpShared>,
}

impl UmpSim {
    /// Opens the state (`None`: in memory) and seeds it from `seed` (else [`SAMPLE`]) when
    /// new; an existing state file ignores the seed, so a second run sees the first's writes.
    pub fn open(
        state: Option<&Path>,
        seed: Option<&Path>,
        opts: SimOptions,
    ) -> Result<UmpSim, SimError> {
        let mut store = Store::open(state)?;
        let tenant = if store.is_empty()? {
            let tenant = crate::common::read_seed(seed, SAMPLE, Tenant::from_doc)?;
            store.seed(&tenant)?;
            tenant
        } else {
            store.load()?
        };
        Ok(UmpSim {
            shared: Arc::new(UmpShared {
                db: Mutex::new(Db { tenant, store }),
                edge: EdgeState::new(opts),
            }),
        })
    }

    /// The names `VoicePolicy` may take, from the seed (UMP's API cannot list them, so an
    /// embedded tenant hands them to its connector this way).
    pub fn voice_policies(&self) -> Vec<String> {
        lock(&self.shared.db).tenant.doc.voice_policies.clone()
    }

    pub fn router(self) -> Router {
        let sh = self.shared;
        let api = Router::new()
            .route("/license", get(license))
            .route("/sysinfo", get(sysinfo))
            .route("/proxy/registrarpools", get(registrar_pools))
            .route("/proxy/callpickupgroup/number/", get(pickup_groups))
            .route("/numberrange", get(number_ranges))
            .route("/signindomain", get(sign_in_domains))
            .route("/proxy/endpoint/list", post(list))
            .route("/proxy/endpoint/{sip}", get(detail))
            .route("/proxy/endpoint/{sip}/script", put(script))
            .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such endpoint") })
            .method_not_allowed_fallback(|| async {
                problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
            })
            .with_state(sh.clone());
        Router::new()
            .nest("/sysadmin/api", api)
            .fallback(|| async { problem(StatusCode::NOT_FOUND, "no such endpoint") })
            .layer(from_fn_with_state(
                sh.clone(),
                middleware::gate::<UmpShared>,
            ))
            .merge(admin::sim_routes(sh, sim_state))
    }
}

type Sh = State<Arc<UmpShared>>;

fn read<R>(sh: &UmpShared, f: impl FnOnce(&Tenant) -> R) -> R {
    f(&lock(&sh.db).tenant)
}

async fn license(State(sh): Sh) -> Json<Value> {
    Json(read(&sh, |t| Value::Object(t.doc.license.clone())))
}
async fn sysinfo(State(sh): Sh) -> Json<Value> {
    Json(read(&sh, |t| Value::Object(t.doc.sysinfo.clone())))
}
async fn registrar_pools(State(sh): Sh) -> Json<Value> {
    Json(read(&sh, |t| Value::from(t.doc.registrarpools.clone())))
}
async fn pickup_groups(State(sh): Sh) -> Json<Value> {
    Json(read(&sh, |t| json!({ "rows": t.doc.callpickupgroups })))
}
async fn number_ranges(State(sh): Sh) -> Json<Value> {
    Json(read(&sh, |t| json!({ "rows": t.number_ranges() })))
}
async fn sign_in_domains(State(sh): Sh) -> Json<Value> {
    Json(read(&sh, |t| Value::from(t.doc.signindomain.clone())))
}
async fn sim_state(State(sh): Sh) -> Json<SeedDoc> {
    Json(read(&sh, Tenant::to_doc))
}

/// The attributes `fields` of `u`, `null` where it has none.
fn project(u: &state::User, fields: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for f in fields {
        let v = match *f {
            "WebName" => u.get("DisplayName"),
            _ => u.get(*f),
        };
        m.insert((*f).to_string(), v.cloned().unwrap_or(Value::Null));
    }
    Value::Object(m)
}

async fn list(State(sh): Sh, body: Bytes) -> Response {
    let req: ListBody = if body.iter().all(u8::is_ascii_whitespace) {
        ListBody {
            skip: None,
            take: None,
        }
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    format!("list body: {e} (expected {{\"skip\": N, \"take\": M}})"),
                )
            }
        }
    };
    if req.take.is_some_and(|t| t == 0 || t > MAX_TAKE) {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("take must be between 1 and {MAX_TAKE}"),
        );
    }
    let skip = req.skip.unwrap_or(0) as usize;
    let answer = read(&sh, |t| {
        let take = req.take.map_or(t.users.len(), |n| n as usize);
        let data: Vec<Value> = t
            .users
            .values()
            .skip(skip)
            .take(take)
            .map(|u| project(u, LIST_FIELDS))
            .collect();
        json!({"Total": t.users.len(), "Data": data})
    });
    Json(answer).into_response()
}

async fn detail(State(sh): Sh, UrlPath(sip): UrlPath<String>) -> Response {
    match read(&sh, |t| t.user(&sip).map(|u| project(u, DETAIL_FIELDS))) {
        Some(v) => Json(v).into_response(),
        None => problem(StatusCode::NOT_FOUND, format!("User {sip} was not found")),
    }
}

async fn script(State(sh): Sh, UrlPath(sip): UrlPath<String>, body: Bytes) -> Response {
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let mut db = lock(&sh.db);
    let next = match db.tenant.script(&sip, &body) {
        Ok(u) => u,
        Err((code, detail)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
            return problem(status, detail);
        }
    };
    if let Err(e) = db.store.save_user(&next) {
        return problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("state store failure: {e}"),
        );
    }
    db.tenant.users.insert(state::key(&sip), next);
    StatusCode::OK.into_response()
}

/// Binds `127.0.0.1:0` and serves `sim` in a spawned task.
pub async fn start(sim: UmpSim) -> Result<Background, SimError> {
    Ok(Background::spawn(sim.router()).await?)
}
