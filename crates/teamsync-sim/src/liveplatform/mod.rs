//! A simulator of AudioCodes Live Platform's two documented user reads (the "v3 Teams
//! users" and "v2 licensed users" documents; examples in `tests/fixtures/liveplatform/`),
//! as strict as those documents: the read-only backend's tests (and `teamsync sim --backend
//! liveplatform`, and `sim_backend = "liveplatform"` tenants) talk to it over real HTTP.
//!
//! It reuses the Fusion simulator's machinery (`crate::fusion::{middleware, conn,
//! reqlog, admin, store}`): latency, bearer auth, rate limit with `Retry-After`, injected
//! faults, dropped connections, the request log and the SQLite state file. Only the API,
//! its error shape and the seed are its own.
//!
//! Our readings where the documents are vague or silent (kept here, in one place):
//! - Paths: `GET /api/v3/customer/{umpCustomerGuid}/user` and
//!   `GET /api/v2/customer/{umpCustomerGuid}/licensedUsers`; nothing else exists (404), and
//!   no other method does (405): the documents describe no write.
//! - Paging: `pageNumber` (default 1, at least 1) and `pageSize` (default 10, the example's,
//!   2..=10000) — the document's "Page Number"/"Page Size" (see the connector's doc). Users
//!   are listed in `Identity` order, as in the example; `totalPages` is
//!   `ceil(totalRecords / pageSize)`; a page past the end answers `data: []`.
//! - Errors are 400/500 RFC 7807 problem details (`application/problem+json`) with
//!   `errorCode` and `traceId`; the codes are ours, in [`Code`]. A malformed or unknown
//!   customer GUID, an unknown, repeated or malformed query parameter are 400s.
//! - Auth (401 without a bearer token, 403 with a wrong one), rate limit (429 +
//!   `Retry-After`) and faults (500, 503, dropped connection) as the Fusion simulator;
//!   their bodies are problem details too.
//! - The seed (`samples/liveplatform-tenant.json`) is `{umpCustomerGuid, users: [<v3 user>],
//!   licensedUsers: [<v2 entry>]}`; `GET /_sim/state` answers the same shape. The API cannot
//!   change it, so the state file only spares re-seeding.

pub mod wire;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rusqlite::OptionalExtension;

use crate::common::conn::{self, Background};
use crate::common::error::json_error;
use crate::common::middleware::{self, Edge, EdgeState, Refusal};
use crate::common::store::{open_db, Schema, StoreError};
use crate::common::{admin, Sample, SimError, SimOptions};
use wire::{LicensedUser, Page, Problem, TeamsUser, TenantDoc};

/// Page size when the request names none (the document's example answers with 10).
pub const DEFAULT_PAGE_SIZE: u64 = 10;
pub const MIN_PAGE_SIZE: u64 = 2;
pub const MAX_PAGE_SIZE: u64 = 10_000;

/// `errorCode` values of the simulated API (the documents name none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidPageNumber,
    InvalidPageSize,
    InvalidQuery,
    InvalidCustomerGuid,
    UnknownCustomer,
    NotFound,
    MethodNotAllowed,
    Unauthenticated,
    Forbidden,
    RateLimited,
    Internal,
    Unavailable,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidPageNumber => "LP-InvalidPageNumber",
            Code::InvalidPageSize => "LP-InvalidPageSize",
            Code::InvalidQuery => "LP-InvalidQuery",
            Code::InvalidCustomerGuid => "LP-InvalidCustomerGuid",
            Code::UnknownCustomer => "LP-UnknownCustomer",
            Code::NotFound => "LP-NotFound",
            Code::MethodNotAllowed => "LP-MethodNotAllowed",
            Code::Unauthenticated => "LP-Unauthenticated",
            Code::Forbidden => "LP-Forbidden",
            Code::RateLimited => "LP-RateLimited",
            Code::Internal => "LP-InternalError",
            Code::Unavailable => "LP-ServiceUnavailable",
        }
    }
}

/// An error answer in problem-details shape.
#[derive(Debug)]
pub struct ApiProblem {
    pub status: StatusCode,
    pub code: Code,
    pub detail: String,
    pub instance: String,
    pub retry_after: Option<u64>,
}

impl ApiProblem {
    fn new(status: StatusCode, code: Code, detail: impl Into<String>, instance: &str) -> Self {
        ApiProblem {
            status,
            code,
            detail: detail.into(),
            instance: instance.to_string(),
            retry_after: None,
        }
    }
    fn bad(code: Code, detail: impl Into<String>, instance: &str) -> Self {
        ApiProblem::new(StatusCode::BAD_REQUEST, code, detail, instance)
    }
}

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        let (kind, title) = match self.status.as_u16() {
            400 => (
                "https://tools.ietf.org/html/rfc7231#section-6.5.1",
                "One or more validation errors occurred.",
            ),
            401 => (
                "https://tools.ietf.org/html/rfc7235#section-3.1",
                "Unauthorized",
            ),
            403 => (
                "https://tools.ietf.org/html/rfc7231#section-6.5.3",
                "Forbidden",
            ),
            404 => (
                "https://tools.ietf.org/html/rfc7231#section-6.5.4",
                "Not Found",
            ),
            405 => (
                "https://tools.ietf.org/html/rfc7231#section-6.5.5",
                "Method Not Allowed",
            ),
            429 => (
                "https://tools.ietf.org/html/rfc6585#section-4",
                "Too Many Requests",
            ),
            503 => (
                "https://tools.ietf.org/html/rfc7231#section-6.6.4",
                "Service Unavailable",
            ),
            _ => (
                "https://tools.ietf.org/html/rfc7231#section-6.6.1",
                "An error occurred while processing your request.",
            ),
        };
        let body = Problem {
            kind,
            title,
            status: self.status.as_u16(),
            detail: self.detail,
            instance: self.instance,
            error_code: self.code.as_str(),
            trace_id: format!(
                "00-{}-{}-00",
                uuid::Uuid::new_v4().simple(),
                &uuid::Uuid::new_v4().simple().to_string()[..16]
            ),
        };
        json_error(
            self.status,
            "application/problem+json",
            &body,
            self.retry_after,
        )
    }
}

/// State shared by every request. The tenant never changes: the API has no write.
pub struct Shared {
    doc: TenantDoc,
    edge: EdgeState,
}

impl Edge for Shared {
    fn edge(&self) -> &EdgeState {
        &self.edge
    }
    fn refuse(&self, r: Refusal) -> Response {
        let code = match r {
            Refusal::Unauthenticated => Code::Unauthenticated,
            Refusal::Forbidden => Code::Forbidden,
            Refusal::RateLimited { .. } => Code::RateLimited,
            Refusal::Internal => Code::Internal,
            Refusal::Unavailable => Code::Unavailable,
        };
        let mut p = ApiProblem::new(r.status(), code, r.message(), "");
        p.retry_after = r.retry_after();
        p.into_response()
    }
}

/// The sample customer, served when a new state gets no seed file.
pub const SAMPLE: Sample = Sample {
    name: "samples/liveplatform-tenant.json",
    json: include_str!("../../../../samples/liveplatform-tenant.json"),
};

/// A Live Platform simulator ready to serve.
pub struct LivePlatformSim {
    shared: Arc<Shared>,
}

const SCHEMA_VERSION: i64 = 1;

/// Checks a seed and puts it in the order the API lists (by `Identity`); GUIDs lowercased.
pub fn normalise(mut doc: TenantDoc) -> Result<TenantDoc, String> {
    let guid = uuid::Uuid::parse_str(doc.ump_customer_guid.trim())
        .map_err(|_| format!("umpCustomerGuid {:?} is not a GUID", doc.ump_customer_guid))?;
    doc.ump_customer_guid = guid.hyphenated().to_string();
    let mut ids = std::collections::HashSet::new();
    let mut upns = std::collections::HashSet::new();
    for u in &mut doc.users {
        let id = uuid::Uuid::parse_str(u.identity.trim())
            .map_err(|_| format!("user {:?}: Identity is not a GUID", u.user_principal_name))?;
        u.identity = id.hyphenated().to_string();
        if !ids.insert(u.identity.clone()) {
            return Err(format!("Identity {} appears twice", u.identity));
        }
        let upn = u.user_principal_name.trim().to_lowercase();
        if !upn.contains('@') || !upns.insert(upn) {
            return Err(format!(
                "UserPrincipalName {:?} is not a UPN or appears twice",
                u.user_principal_name
            ));
        }
    }
    for l in &doc.licensed_users {
        if l.sip_address.trim().is_empty() {
            return Err("a licensed user has an empty sipAddress".into());
        }
    }
    doc.users.sort_by(|a, b| a.identity.cmp(&b.identity));
    Ok(doc)
}

fn load_or_seed(state: Option<&Path>, seed: Option<&Path>) -> Result<TenantDoc, SimError> {
    let conn = open_db(
        state,
        &Schema {
            version: SCHEMA_VERSION,
            sql: "CREATE TABLE IF NOT EXISTS liveplatform_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
            own_table: "liveplatform_state",
        },
    )?;
    let stored: Option<String> = conn
        .query_row(
            "SELECT value FROM liveplatform_state WHERE key = 'doc'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::from)?;
    if let Some(json) = stored {
        let doc: TenantDoc = serde_json::from_str(&json).map_err(StoreError::from)?;
        return normalise(doc).map_err(|e| StoreError::Invalid(e).into());
    }
    let doc = crate::common::read_seed(seed, SAMPLE, normalise)?;
    conn.execute(
        "INSERT INTO liveplatform_state(key, value) VALUES ('doc', ?1)",
        [serde_json::to_string(&doc).map_err(StoreError::from)?],
    )
    .map_err(StoreError::from)?;
    Ok(doc)
}

impl LivePlatformSim {
    /// Opens the state (`state` None = in memory), seeding it from `seed` when it is new.
    pub fn open(
        state: Option<&Path>,
        seed: Option<&Path>,
        opts: SimOptions,
    ) -> Result<LivePlatformSim, SimError> {
        let doc = load_or_seed(state, seed)?;
        Ok(LivePlatformSim::from_doc(doc, opts))
    }

    /// A simulator over an already normalised document (tests).
    pub fn from_doc(doc: TenantDoc, opts: SimOptions) -> LivePlatformSim {
        LivePlatformSim {
            shared: Arc::new(Shared {
                doc,
                edge: EdgeState::new(opts),
            }),
        }
    }

    /// The `umpCustomerGuid` served, lowercase.
    pub fn customer_guid(&self) -> String {
        self.shared.doc.ump_customer_guid.clone()
    }

    /// The API behind the shared middleware, plus `/_sim/requests` and `/_sim/state`.
    pub fn router(self) -> Router {
        let sh = self.shared;
        let api = Router::new()
            .route("/api/v3/customer/{customer_guid}/user", get(users))
            .route(
                "/api/v2/customer/{customer_guid}/licensedUsers",
                get(licensed_users),
            )
            .fallback(unknown_route)
            .method_not_allowed_fallback(method_not_allowed)
            .layer(from_fn_with_state(sh.clone(), middleware::gate::<Shared>))
            .with_state(sh.clone());
        api.merge(admin::sim_routes(sh, state))
    }
}

async fn state(State(sh): State<Arc<Shared>>) -> Json<TenantDoc> {
    Json(sh.doc.clone())
}

async fn unknown_route(uri: Uri) -> ApiProblem {
    ApiProblem::new(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        "No such endpoint",
        uri.path(),
    )
}

async fn method_not_allowed(uri: Uri) -> ApiProblem {
    ApiProblem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowed,
        "Only GET is available on this endpoint",
        uri.path(),
    )
}

fn check_customer(sh: &Shared, guid: &str, path: &str) -> Result<(), ApiProblem> {
    let g = uuid::Uuid::parse_str(guid).map_err(|_| {
        ApiProblem::bad(
            Code::InvalidCustomerGuid,
            format!("The value '{guid}' is not a valid umpCustomerGuid."),
            path,
        )
    })?;
    if g.hyphenated().to_string() != sh.doc.ump_customer_guid {
        return Err(ApiProblem::bad(
            Code::UnknownCustomer,
            format!("No customer with umpCustomerGuid {guid}."),
            path,
        ));
    }
    Ok(())
}

/// The query's parameters, refusing names outside `allowed` and repeats.
fn query_params(
    raw: Option<&str>,
    allowed: &[&str],
    path: &str,
) -> Result<Vec<(String, String)>, ApiProblem> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiProblem::bad(
                Code::InvalidQuery,
                format!(
                    "Unknown query parameter '{k}' (accepted: {})",
                    if allowed.is_empty() {
                        "none".to_string()
                    } else {
                        allowed.join(", ")
                    }
                ),
                path,
            ));
        }
        if out.iter().any(|(o, _)| o == k.as_ref()) {
            return Err(ApiProblem::bad(
                Code::InvalidQuery,
                format!("Query parameter '{k}' is given twice"),
                path,
            ));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

fn int_param(
    params: &[(String, String)],
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
    code: Code,
    path: &str,
) -> Result<u64, ApiProblem> {
    let Some((_, v)) = params.iter().find(|(k, _)| k == name) else {
        return Ok(default);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ApiProblem::bad(
            code,
            format!(
                "'{name}' must be an integer between {} and {}; got '{v}'",
                range.start(),
                range.end()
            ),
            path,
        )),
    }
}

async fn users(
    State(sh): State<Arc<Shared>>,
    UrlPath(guid): UrlPath<String>,
    RawQuery(q): RawQuery,
    uri: Uri,
) -> Result<Response, ApiProblem> {
    let path = uri.path();
    check_customer(&sh, &guid, path)?;
    let params = query_params(q.as_deref(), &["pageNumber", "pageSize"], path)?;
    let number = int_param(
        &params,
        "pageNumber",
        1,
        1..=u64::from(u32::MAX),
        Code::InvalidPageNumber,
        path,
    )?;
    let size = int_param(
        &params,
        "pageSize",
        DEFAULT_PAGE_SIZE,
        MIN_PAGE_SIZE..=MAX_PAGE_SIZE,
        Code::InvalidPageSize,
        path,
    )?;
    let all: &[TeamsUser] = &sh.doc.users;
    let total = all.len() as u64;
    let start = ((number - 1).saturating_mul(size)).min(total) as usize;
    let end = (start as u64 + size).min(total) as usize;
    let page = Page {
        current_page: number,
        page_size: size,
        total_pages: total.div_ceil(size),
        total_records: total,
        data: &all[start..end],
    };
    Ok(Json(page).into_response())
}

async fn licensed_users(
    State(sh): State<Arc<Shared>>,
    UrlPath(guid): UrlPath<String>,
    RawQuery(q): RawQuery,
    uri: Uri,
) -> Result<Json<Vec<LicensedUser>>, ApiProblem> {
    let path = uri.path();
    check_customer(&sh, &guid, path)?;
    query_params(q.as_deref(), &[], path)?;
    Ok(Json(sh.doc.licensed_users.clone()))
}

/// Serves `sim` on `listener` until `shutdown` completes (the CLI passes ctrl-c).
pub async fn run(
    listener: tokio::net::TcpListener,
    sim: LivePlatformSim,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    conn::serve(listener, sim.router(), shutdown).await
}

/// Binds `127.0.0.1:0` and serves `sim` in a spawned task.
pub async fn start(sim: LivePlatformSim) -> Result<Background, SimError> {
    Ok(Background::spawn(sim.router()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> TenantDoc {
        normalise(serde_json::from_str(SAMPLE.json).unwrap()).unwrap()
    }

    #[test]
    fn the_sample_seed_is_valid_and_sorted() {
        let d = sample();
        assert_eq!(d.users.len(), 37);
        assert!(d.users.windows(2).all(|w| w[0].identity < w[1].identity));
        assert!(!d.licensed_users.is_empty());
    }

    #[test]
    fn bad_seeds_are_refused() {
        let mut d = sample();
        d.users[1].user_principal_name = d.users[0].user_principal_name.to_uppercase();
        assert!(normalise(d).unwrap_err().contains("twice"));
        let mut d = sample();
        d.ump_customer_guid = "acme".into();
        assert!(normalise(d).is_err());
        let mut d = sample();
        d.users[0].identity = "x".into();
        assert!(normalise(d).is_err());
    }

    #[test]
    fn state_file_keeps_the_seed_and_refuses_a_foreign_one() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("lp.db");
        let seed = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../samples/liveplatform-tenant.json");
        let a = load_or_seed(Some(&state), Some(&seed)).unwrap();
        let b = load_or_seed(Some(&state), None).unwrap();
        assert_eq!(a.users, b.users);
        // No seed file: the built-in sample.
        assert_eq!(load_or_seed(None, None).unwrap().users, a.users);
        let fusion = dir.path().join("fusion.db");
        crate::fusion::store::Store::open(Some(&fusion)).unwrap();
        assert!(load_or_seed(Some(&fusion), Some(&seed)).is_err());
    }
}
