//! A simulator of the Microsoft Graph calls teamsync's `graph` backend makes, as strict as
//! Graph's documents: the embedded tenant of `sim_backend = "graph"` and the server of the
//! Graph end-to-end tests.
//!
//! Served (under `/v1.0`): `GET /users` and `/groups` (paged with `$top` 1..=999 and an
//! absolute `@odata.nextLink` carrying `$skiptoken`), `GET /users/{id}`, `PATCH /users/{id}`
//! (`displayName`, `usageLocation`), `POST /users/{id}/assignLicense`, `GET
//! /users/{id}/memberOf`, `POST /groups/{id}/members/$ref`, `DELETE
//! /groups/{id}/members/{member}/$ref`, `GET /subscribedSkus`, `GET
//! /admin/teams/userConfigurations` (paged like `/users`) and `/{id}`, `GET
//! /admin/teams/telephoneNumberManagement/numberAssignments` (`$top` 1..=1000, default 500,
//! and `$skip`, as its page documents: no next link), `POST …/assignNumber` and
//! `…/unassignNumber` (202 with a `Location` to poll), `GET …/operations('{id}')` (also
//! `operations/{id}`), `POST /admin/teams/policy/userAssignments/assign` and `/unassign`,
//! `GET /admin/teams/policy/getPolicyId(type='…',name='…')`, and `POST /$batch`. The
//! Microsoft identity token endpoint is `POST /{tenant}/oauth2/v2.0/token` (client
//! credentials), outside the API's edge like the real one, which lives on another host.
//!
//! Readings where the documents are vague (the connector's module doc has the same list):
//! - every error is `{"error": {"code", "message", "innerError": {"date", "request-id",
//!   "client-request-id"}}}`, the shape of the throttling and batching examples;
//! - `$batch`: at most 20 requests (more is a 400 for the whole batch, as is a missing
//!   `id`/`method`/`url`, a repeated `id`, an absolute `url`, a body without a
//!   `Content-Type` header, or a `dependsOn` naming no earlier request); each part passes
//!   the tenant's rate limit on its own (a part over it is a 429 inside a 200, with its own
//!   `Retry-After`); a part whose dependency failed is a 424; parts without `dependsOn` may
//!   be answered in any order, so the answers come in reverse order (a client must match by
//!   `id`);
//! - an asynchronous number operation is decided when it completes (about
//!   [`OPERATION_MS`] after the request): the number must be in the tenant's inventory, of the
//!   `numberType` sent, free (or already the target's), with the `userAssignment` capability,
//!   and the user must hold Teams Phone (a license with the `MCOEV` plan); otherwise it ends
//!   `failed` with the reason in `numbers[0].statusDetail`. A primary number replaces the
//!   user's previous one, as `Set-CsPhoneNumberAssignment` does. The operation's GET
//!   answers `{"value": {…}}`, the shape of its page's example;
//! - `policy/userAssignments/assign` takes only the policy types of the seed's
//!   `assignablePolicyTypes` (Graph's documents list none, only examples); another type is
//!   a 400 naming it;
//! - `assignLicense` refuses a user without `usageLocation`, an unknown SKU, a SKU with no
//!   unit left and the removal of a license the user does not have (400s with Graph's
//!   messages).
//!
//! The edge (latency, auth, rate limit, faults, request log) is the shared one
//! ([`middleware::Edge`]); the bearer token it checks is the one the token endpoint issues
//! for the configured client secret (`SimOptions::token`; without one, any secret is taken
//! and the API asks no token).

pub mod api;
pub mod batch;
pub mod model;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use rusqlite::{Connection, OptionalExtension};
use serde_json::{json, Value};

use crate::common::error::json_error;
use crate::common::middleware::{self, Edge, EdgeState, Refusal};
use crate::common::store::{open_db, Schema, StoreError};
pub use crate::common::SimError;
use crate::common::{admin, read_seed, Sample, SimOptions};
use model::TenantDoc;

/// How long an asynchronous number operation runs before it completes.
pub const OPERATION_MS: i64 = 200;

/// The sample tenant, served when a new state gets no seed file.
pub const SAMPLE: Sample = Sample {
    name: "samples/graph-tenant.json",
    json: include_str!("../../../../samples/graph-tenant.json"),
};

const STATE: Schema = Schema {
    version: 1,
    sql: "CREATE TABLE IF NOT EXISTS graph_tenant (id INTEGER PRIMARY KEY CHECK (id = 1), doc TEXT NOT NULL);",
    own_table: "graph_tenant",
};

/// A Graph error answer.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> GraphError {
        GraphError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
    }
    pub fn not_found(message: impl Into<String>) -> GraphError {
        GraphError::new(StatusCode::NOT_FOUND, "Request_ResourceNotFound", message)
    }
    pub fn throttled(secs: u64) -> GraphError {
        GraphError {
            retry_after: Some(secs),
            ..GraphError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Please retry again later.",
            )
        }
    }
    pub fn internal(message: impl Into<String>) -> GraphError {
        GraphError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            message,
        )
    }
    /// The documented body.
    pub fn body(&self) -> Value {
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string();
        let mut inner = json!({
            "date": now,
            "request-id": uuid::Uuid::new_v4().to_string(),
            "client-request-id": uuid::Uuid::new_v4().to_string(),
        });
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            // The throttling example's innerError, key for key.
            inner = json!({"date": now, "request-id": uuid::Uuid::new_v4().to_string()});
            inner["code"] = json!("429");
            inner["status"] = json!("429");
            inner["message"] = json!("Please retry after");
        }
        json!({"error": {"code": self.code, "message": self.message, "innerError": inner}})
    }
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        json_error(
            self.status,
            "application/json",
            &self.body(),
            self.retry_after,
        )
    }
}

struct Db {
    doc: TenantDoc,
    conn: Connection,
}

/// State shared by every request.
pub struct Shared {
    db: Mutex<Db>,
    edge: EdgeState,
    /// The client secret the token endpoint takes (None: any).
    secret: Option<String>,
    /// The access token it issues (and the edge asks for, when there is a secret).
    access_token: String,
    /// The API without the edge, which `$batch` sends its parts through.
    inner: OnceLock<Router>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Reads the tenant, after completing the operations that are due.
    pub fn read<R>(&self, f: impl FnOnce(&TenantDoc) -> R) -> Result<R, GraphError> {
        let mut db = lock(&self.db);
        if api::settle(&mut db.doc) {
            save(&db.conn, &db.doc).map_err(store_failure)?;
        }
        Ok(f(&db.doc))
    }

    /// Changes the tenant with `f` (on a copy, kept only when `f` succeeds), then saves it
    /// before answering.
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut TenantDoc) -> Result<R, GraphError>,
    ) -> Result<R, GraphError> {
        let mut db = lock(&self.db);
        api::settle(&mut db.doc);
        let mut doc = db.doc.clone();
        let out = f(&mut doc)?;
        save(&db.conn, &doc).map_err(store_failure)?;
        db.doc = doc;
        Ok(out)
    }
}

fn store_failure(e: StoreError) -> GraphError {
    GraphError::internal(format!("state store failure: {e}"))
}

fn save(conn: &Connection, doc: &TenantDoc) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO graph_tenant(id, doc) VALUES (1, ?1)",
        [serde_json::to_string(doc)?],
    )?;
    Ok(())
}

impl Edge for Shared {
    fn edge(&self) -> &EdgeState {
        &self.edge
    }
    fn refuse(&self, r: Refusal) -> Response {
        let e = match r {
            Refusal::Unauthenticated => GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token is empty.",
            ),
            Refusal::Forbidden => GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
            ),
            Refusal::RateLimited { secs } => GraphError::throttled(secs),
            Refusal::Internal => GraphError::internal("Internal server error (injected)"),
            Refusal::Unavailable => GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "Service unavailable (injected)",
            ),
        };
        e.into_response()
    }
}

fn tenant_from_doc(doc: TenantDoc) -> Result<TenantDoc, String> {
    doc.check()?;
    if !doc.operations.is_empty() {
        return Err("a seed holds no operations".into());
    }
    Ok(doc)
}

/// A simulator ready to serve.
pub struct GraphSim {
    shared: Arc<Shared>,
}

impl GraphSim {
    /// Opens the state (`None` = in memory) and seeds it from `seed` (else [`SAMPLE`]) when
    /// it is new. `opts.token` is the client secret the token endpoint takes.
    pub fn open(
        state: Option<&Path>,
        seed: Option<&Path>,
        opts: SimOptions,
    ) -> Result<GraphSim, SimError> {
        let conn = open_db(state, &STATE)?;
        let stored: Option<String> = conn
            .query_row("SELECT doc FROM graph_tenant WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(StoreError::from)?;
        let doc = match stored {
            Some(text) => serde_json::from_str(&text).map_err(StoreError::from)?,
            None => {
                let doc = read_seed(seed, SAMPLE, tenant_from_doc)?;
                save(&conn, &doc)?;
                doc
            }
        };
        let secret = opts.token.clone();
        let access_token = random_token();
        let edge_opts = SimOptions {
            token: secret.as_ref().map(|_| access_token.clone()),
            ..opts
        };
        Ok(GraphSim {
            shared: Arc::new(Shared {
                db: Mutex::new(Db { doc, conn }),
                edge: EdgeState::new(edge_opts),
                secret,
                access_token,
                inner: OnceLock::new(),
            }),
        })
    }

    /// The application (client) id and tenant id a connector needs.
    pub fn app(&self) -> (String, String) {
        let db = lock(&self.shared.db);
        (db.doc.tenant_id.clone(), db.doc.client_id.clone())
    }

    /// The names of its voice routing policies: an embedded tenant has no
    /// `voice_routing_policies` key to repeat them in.
    pub fn voice_routing_policies(&self) -> Vec<String> {
        let db = lock(&self.shared.db);
        db.doc
            .policies
            .iter()
            .filter(|p| {
                p.policy_type
                    .eq_ignore_ascii_case("OnlineVoiceRoutingPolicy")
            })
            .map(|p| p.name.clone())
            .collect()
    }

    /// The API (behind the edge), the token endpoint and `/_sim/*`.
    pub fn router(self) -> Router {
        let sh = self.shared;
        let api = api_routes();
        let _ = sh.inner.set(api.clone().with_state(sh.clone()));
        let edged = api
            .route("/v1.0/$batch", post(batch::batch))
            .layer(from_fn_with_state(sh.clone(), middleware::gate::<Shared>))
            .with_state(sh.clone());
        let token = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .with_state(sh.clone());
        edged.merge(token).merge(admin::sim_routes(sh, sim_state))
    }
}

/// Every API route but `$batch` (a batch holds no batch).
fn api_routes() -> Router<Arc<Shared>> {
    const TNM: &str = "/v1.0/admin/teams/telephoneNumberManagement";
    Router::new()
        .route("/v1.0/users", get(api::list_users))
        .route(
            "/v1.0/users/{id}",
            get(api::get_user).patch(api::patch_user),
        )
        .route("/v1.0/users/{id}/assignLicense", post(api::assign_license))
        .route("/v1.0/users/{id}/memberOf", get(api::member_of))
        .route("/v1.0/groups", get(api::list_groups))
        .route("/v1.0/groups/{id}/members/$ref", post(api::add_member))
        .route(
            "/v1.0/groups/{id}/members/{member}/$ref",
            delete(api::remove_member),
        )
        .route("/v1.0/subscribedSkus", get(api::subscribed_skus))
        .route(
            "/v1.0/admin/teams/userConfigurations",
            get(api::list_user_configurations),
        )
        .route(
            "/v1.0/admin/teams/userConfigurations/{id}",
            get(api::get_user_configuration),
        )
        .route(&format!("{TNM}/numberAssignments"), get(api::list_numbers))
        .route(
            &format!("{TNM}/numberAssignments/assignNumber"),
            post(api::assign_number),
        )
        .route(
            &format!("{TNM}/numberAssignments/unassignNumber"),
            post(api::unassign_number),
        )
        .route(&format!("{TNM}/operations/{{id}}"), get(api::operation))
        .route(&format!("{TNM}/{{segment}}"), get(api::operation_segment))
        .route(
            "/v1.0/admin/teams/policy/userAssignments/assign",
            post(api::assign_policy),
        )
        .route(
            "/v1.0/admin/teams/policy/userAssignments/unassign",
            post(api::unassign_policy),
        )
        .route("/v1.0/admin/teams/policy/{call}", get(api::policy_function))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(unknown_route)
}

async fn sim_state(State(sh): State<Arc<Shared>>) -> Response {
    match sh.read(std::clone::Clone::clone) {
        Ok(d) => Json(d).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn unknown_route() -> GraphError {
    GraphError::bad("Resource not found for the segment.")
}

async fn method_not_allowed() -> GraphError {
    GraphError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
}

fn oauth_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code],
        "timestamp": chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string(),
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    json_error(status, "application/json; charset=utf-8", &body, None)
}

/// `POST /{tenant}/oauth2/v2.0/token`: the client-credentials grant, with the identity
/// platform's error shape (`error`, `error_description`, `error_codes`).
async fn token(
    State(sh): State<Arc<Shared>>,
    UrlPath(tenant): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        );
    }
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    let (tenant_id, client_id) = {
        let db = lock(&sh.db);
        (db.doc.tenant_id.clone(), db.doc.client_id.clone())
    };
    if !tenant.eq_ignore_ascii_case(&tenant_id) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    let get = |k: &str| form.get(k).map_or("", String::as_str);
    if get("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    if get("scope") != "https://graph.microsoft.com/.default" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
        );
    }
    if !get("client_id").eq_ignore_ascii_case(&client_id) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{}' was not found in the directory.",
                get("client_id")
            ),
        );
    }
    if get("client_assertion_type").is_empty() && get("client_secret").is_empty() {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    if let Some(secret) = &sh.secret {
        if get("client_secret") != secret {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            );
        }
    }
    Json(json!({
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": sh.access_token,
    }))
    .into_response()
}

fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 24] = rand::rng().random();
    format!("eyJ0eXAiOiJKV1Qi.{}", hex::encode(bytes))
}

/// Binds `127.0.0.1:0` and serves `sim` in a spawned task.
pub async fn start(sim: GraphSim) -> Result<crate::common::conn::Background, SimError> {
    Ok(crate::common::conn::Background::spawn(sim.router()).await?)
}

#[cfg(test)]
mod tests;
