//! A simulator of Netaxis Fusion's MS Teams API (the "MS Teams" section of the Fusion
//! DRaaS API document; its examples are in `tests/fixtures/fusion/`), exactly as strict as
//! that document: it is the product's embedded default tenant and the server every
//! end-to-end test talks to over real HTTP, so a simulator kinder than the real server
//! would make every test above it lie.
//!
//! Start it like tokio's mini-redis: [`FusionSim::open`] then [`run`] (the CLI, with ctrl-c as
//! shutdown) or [`start`] (tests: binds `127.0.0.1:0` and hands back a [`RunningSim`]).
//!
//! Layout: `wire` (serde types, field for field as the document), `state` (the tenant in
//! memory and its rules), `seed` (seed checks and state dumps), `store` (SQLite persistence),
//! `users`, `catalog`, `resource_accounts`, `admins` (the MS Teams administrator),
//! `group_filter` (groups and the SRE filter), `templates`, `bulk` (bulk update and job
//! history) and `sip_sync` (sip address, sync) — the handlers; `middleware` (latency, auth,
//! rate limit, faults, request log), `token` (continuation tokens), `conn` (connections a
//! fault can cut), `admin` (`/_sim/*`). Every endpoint of the document is served; a new one
//! goes in a handler module and one `.route` line in [`FusionSim::router`].
//!
//! Our readings where the document is silent or vague (kept here, in one place):
//! - Every 4xx/5xx body is `{"error": {"code": <int>, "reason": "<text>"}}`, the shape of
//!   the bulk example; codes are listed in [`error::Code`].
//! - Auth: `Authorization: Bearer <token>`; none (or another scheme) → 401, wrong → 403.
//! - Rate limit: one token bucket per tenant (N/s, burst N) that goes into debt — refused
//!   requests count too, so clients that keep sending while throttled stay throttled longer —
//!   answering 429 with `Retry-After: <whole seconds>`. Auth is checked first.
//! - List objects carry only the list object's fields: no `groups`, no `vrp`; `location`,
//!   `licenses` and `roles` only when the user has them; `draas` only for users with a number.
//!   The single-user GET always has `groups`, `location`, `licenses`, `voiceEnabled` and
//!   `vrp` (`null` when none), never `roles`; `draas` only with a number.
//! - `voiceEnabled` is `"yes"` when the user holds a Phone System SKU ([`state::VOICE_SKUS`]),
//!   `"no"` otherwise; a number can only be linked to a `"yes"` user (400 otherwise). Removing
//!   the license later leaves the number in place.
//! - `next` tokens are HMAC-signed and bound to `page_size`, `search`, `group` and `filters`;
//!   any change is a 400. Users are listed in id order, so renames do not reshuffle pages.
//!   `page_size` is 1..=999 (Graph's limit); an empty result is `200 {"users": []}`; an unknown
//!   `group` is a 400.
//! - `filters` is a URL-encoded JSON object:
//!   `filters={"country":["BE","NL"],"is_voice_enabled":"yes","have_number":"no"}`.
//! - Unknown query parameters and unknown body fields are 400s (so a misspelt field cannot
//!   pass silently); bodies need `Content-Type: application/json`.
//! - Writes are validated completely before anything changes (no partial updates).
//! - `customerLicenses` are kept on the user whether or not it has a number, and shown only in
//!   `draas`. Unknown users are 404 on every per-user endpoint.
//! - Replication delay: a created user answers 404 on every per-user endpoint and is absent
//!   from the list for D ms (its UPN is taken at once: a second create is "already exists").
//! - The request log (`GET /_sim/requests`) keeps the last 200,000 requests.
//! - Resource accounts: see `resource_accounts` (one PHONESYSTEM_VIRTUALUSER license each;
//!   unknown id → 404 on modify, 204 on delete as documented).
//! - Faults: with probability `fault_rate` a request gets a 500, a 503 or a dropped connection
//!   (one third each) before any handler runs; with probability `lost_answer_rate` a write is
//!   applied and its connection dropped before the answer. Seeded by `seed_rng`.
//! - Paths: served exactly where the document writes them, including its two odd ones: the
//!   sip address has no `msteams` segment (`…/subscriptions/{id}/users/{ms_user_id}/
//!   sip_address`), and the bulk history and details are written without `/api/v01/draas`
//!   (`/{draas_instance}/tenants/…/msteams/users/bulk[/{bulk_id}]`): they answer both there
//!   and under the prefix.
//! - Administrator (`admins`): the password is stored only as a salted SHA-256, never
//!   answered, logged or shown by Debug; `DELETE` is 200 with the object or 204 without one.
//! - Group filter (`group_filter`): `POST groups` replaces it; once it holds anything the
//!   users list shows only members of its groups; `GET groups` marks `filter` and lists
//!   entries whose group is gone as orphans (displayName, id, `orphan: true`). A seed's
//!   `groups[].filter` flags are ignored (derived, like license `free`); the filter is seeded
//!   with `groupFilter`.
//! - Templates (`templates`): server-side, seeded; `override` defaults to true (replace);
//!   false only adds. A bulk item's template overrides its country, vrp, groups and licenses
//!   (Fusion's rule, unlike teamsync's sheet templates). Template 0 is the default a user
//!   created by the bulk update starts from. Unknown template: 400, code 2095.
//! - Roles: a token holds every role unless the simulator is started with some denied
//!   ([`FusionSim::deny_roles`]); the bulk update, its history and its details check
//!   theirs (the document's names) and answer 403 without one.
//! - Bulk (`bulk`): items carry names (groups by displayName, licenses by skuPartNumber or
//!   skuDescription, template by name), missing users are created, each item applies on its
//!   own; 200 / 207 / 400 all carry `details` (+ `errors`, + `message`). `job_id` is a string
//!   (the table's and the history example's type; one details example has a number).
//! - `POST sync` types are `normal` (users) and `resource_account` (the document's list is
//!   lost); the answer lists those holding a number as `syncing`; nothing changes. The sip
//!   address is `sip:` + the UPN in lower case.
//!
//! Seed format (`wire::TenantDoc`), additions beyond the document's objects, all optional:
//! `admin` (`{"id", "msUsername"}`, no password), `groupFilter` (`[{"id", "displayName"}]`),
//! `templates` (`[{"id", "name", "location"?, "vrp"?, "groups"?: [group ids], "licenses"?:
//! [skuIds]}]`), `bulkJobs` (job details objects). `GET /_sim/state` dumps them the same way.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

pub mod admins;
pub mod bulk;
pub mod catalog;
pub mod error;
pub mod extract;
pub mod group_filter;
pub mod resource_accounts;
pub mod seed;
pub mod sip_sync;
pub mod state;
pub mod store;
pub mod templates;
pub mod token;
pub mod users;
pub mod wire;

use crate::common::conn;
use crate::common::middleware::{self, EdgeState, Refusal};
use crate::common::{admin, read_seed, Sample, SimError, SimOptions};
use error::{ApiError, Code};
use state::{Change, Tenant};
use store::Store;

/// The one tenant a simulator serves: the parts of the API path that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantPath {
    pub draas_instance: String,
    pub tenant_uuid: String,
    pub subscription_id: i64,
}

impl TenantPath {
    /// `/api/v01/draas/{..}/tenants/{..}/subscriptions/{..}/msteams`
    pub fn api_prefix(&self) -> String {
        format!(
            "/api/v01/draas/{}/tenants/{}/subscriptions/{}/msteams",
            self.draas_instance, self.tenant_uuid, self.subscription_id
        )
    }
}

struct Db {
    tenant: Tenant,
    store: Store,
}

/// State shared by every request.
pub struct Shared {
    db: Mutex<Db>,
    pub(crate) edge: EdgeState,
    pub(crate) token_key: Vec<u8>,
    /// Roles the API consumer lacks ([`FusionSim::deny_roles`]): an endpoint needing one
    /// answers the document's 403.
    denied_roles: std::sync::RwLock<std::collections::HashSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    /// Runs a read against the tenant.
    pub fn read<R>(&self, f: impl FnOnce(&Tenant) -> R) -> R {
        f(&lock(&self.db).tenant)
    }

    /// The document's 403 when the consumer lacks `role` (see [`FusionSim::deny_roles`]).
    pub(crate) fn require_role(&self, role: &str) -> Result<(), ApiError> {
        let denied = self
            .denied_roles
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if denied.contains(role) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                Code::Forbidden,
                format!(
                    "The API consumer doesn't have sufficient rights to perform this action (role {role})"
                ),
            ));
        }
        Ok(())
    }

    /// Validates a write with `f`, persists it, then applies it in memory; all under one lock
    /// so writes are serialized and memory never runs ahead of the store.
    pub fn write<R>(
        &self,
        f: impl FnOnce(&Tenant, &mut Change) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let mut db = lock(&self.db);
        let mut change = db.tenant.start_change();
        let r = f(&db.tenant, &mut change)?;
        db.store
            .commit(&change)
            .map_err(|e| ApiError::internal(format!("state store failure: {e}")))?;
        db.tenant.apply(change);
        Ok(r)
    }
}

impl middleware::Edge for Shared {
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
        let mut e = ApiError::new(r.status(), code, r.message());
        e.retry_after = r.retry_after();
        e.into_response()
    }
}

/// Reads a seed file (`None`: the state is empty and nothing can fill it) and builds the
/// simulator's tenant from it with `build`, which checks what serde cannot. Shared by every
/// simulator so seed errors read alike.
/// `GET /_sim/state`: the tenant now, in the seed's shape.
async fn sim_state(State(sh): State<Arc<Shared>>) -> axum::Json<wire::TenantDoc> {
    axum::Json(sh.read(state::Tenant::to_doc))
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The sample tenant (the embedded `demo` tenant of the shipped config), served when a new state gets no seed file.
pub const SAMPLE: Sample = Sample {
    name: "samples/tenant.json",
    json: include_str!("../../../../samples/tenant.json"),
};

/// A simulator ready to serve: its tenant (loaded or seeded) and options.
pub struct FusionSim {
    shared: Arc<Shared>,
    path: TenantPath,
}

impl FusionSim {
    /// Opens the state (`state` None = in memory) and seeds it from `seed` (else [`SAMPLE`])
    /// when it is new or empty; an existing state file ignores the seed, so a second run sees
    /// the first's writes.
    pub fn open(
        state: Option<&Path>,
        seed: Option<&Path>,
        opts: SimOptions,
    ) -> Result<FusionSim, SimError> {
        let mut store = Store::open(state)?;
        let tenant = if store.is_empty()? {
            let tenant = read_seed(seed, SAMPLE, Tenant::from_doc)?;
            store.seed(&tenant)?;
            tenant
        } else {
            store.load()?
        };
        let token_key = store.token_key()?;
        let path = TenantPath {
            draas_instance: tenant.draas_instance.clone(),
            tenant_uuid: tenant.tenant_uuid.clone(),
            subscription_id: tenant.subscription_id,
        };
        let shared = Shared {
            db: Mutex::new(Db { tenant, store }),
            edge: EdgeState::new(opts),
            token_key,
            denied_roles: Default::default(),
        };
        Ok(FusionSim {
            shared: Arc::new(shared),
            path,
        })
    }

    pub fn tenant_path(&self) -> TenantPath {
        self.path.clone()
    }

    /// Takes `roles` (the document's "Required role" names, e.g.
    /// `tenants.instance.subscriptions.instance.msteams.users.bulk`) away from the API
    /// consumer: a token Fusion's administrator gave fewer roles. The endpoints that check
    /// theirs (the bulk update and its history) then answer 403.
    pub fn deny_roles(self, roles: &[&str]) -> FusionSim {
        {
            let mut d = self
                .shared
                .denied_roles
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            d.extend(roles.iter().map(std::string::ToString::to_string));
        }
        self
    }

    /// The whole HTTP surface: the API under its prefix (behind the middleware) and `/_sim/*`.
    pub fn router(self) -> Router {
        let sh = self.shared;
        let msteams = Router::new()
            .route("/status", get(catalog::status))
            .route("/users", get(users::list).post(users::create))
            .route("/user/{ms_user_id}", get(users::get_one))
            .route(
                "/users/{ms_user_id}",
                put(users::update).delete(users::delete),
            )
            .route("/users/{ms_user_id}/properties", put(users::properties))
            .route("/users/{ms_user_id}/groups", put(users::groups))
            .route("/users/{ms_user_id}/licenses", put(users::licenses))
            .route("/users/{ms_user_id}/phone_number", put(users::phone_number))
            .route("/users/{ms_user_id}/vrp", put(users::vrp))
            .route("/users/{ms_user_id}/check", get(users::check))
            .route("/{ms_user_id}/licenses", put(users::sku_ids))
            .route("/domains", get(catalog::domains))
            .route("/licenses", get(catalog::licenses))
            .route("/vrps", get(catalog::vrps))
            .route("/groups", get(group_filter::list).post(group_filter::post))
            .route(
                "/admins",
                get(admins::get_admin)
                    .post(admins::post_admin)
                    .delete(admins::delete_admin),
            )
            .route("/sync", post(sip_sync::sync))
            .route("/users/bulk", get(bulk::history).put(bulk::put))
            .route("/users/bulk/{bulk_id}", get(bulk::details))
            .route(
                "/users/{ms_user_id}/templates/{template_id}",
                put(templates::apply_to_user),
            )
            .route(
                "/resource_accounts",
                get(resource_accounts::list).post(resource_accounts::create),
            )
            .route(
                "/resource_accounts/{resource_account_id}",
                put(resource_accounts::modify).delete(resource_accounts::delete),
            )
            .route_layer(from_fn_with_state(sh.clone(), tenant_guard))
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(sh.clone());
        // The document writes the sip address without the msteams segment, and the bulk
        // history without the /api/v01/draas prefix: both are served where it says.
        let subscription = Router::new()
            .route(
                "/users/{ms_user_id}/sip_address",
                get(sip_sync::sip_address),
            )
            .route_layer(from_fn_with_state(sh.clone(), tenant_guard))
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(sh.clone());
        let bare_bulk = Router::new()
            .route("/users/bulk", get(bulk::history))
            .route("/users/bulk/{bulk_id}", get(bulk::details))
            .route_layer(from_fn_with_state(sh.clone(), tenant_guard))
            .method_not_allowed_fallback(method_not_allowed)
            .with_state(sh.clone());
        let api = Router::new()
            .nest(
                "/api/v01/draas/{draas_instance}/tenants/{uuid}/subscriptions/{subscription_id}/msteams",
                msteams,
            )
            .nest(
                "/api/v01/draas/{draas_instance}/tenants/{uuid}/subscriptions/{subscription_id}",
                subscription,
            )
            .nest(
                "/{draas_instance}/tenants/{uuid}/subscriptions/{subscription_id}/msteams",
                bare_bulk,
            )
            .fallback(unknown_route)
            .layer(from_fn_with_state(sh.clone(), middleware::gate::<Shared>));
        api.merge(admin::sim_routes(sh, sim_state))
    }
}

/// 404 for a path naming another draas instance, tenant or subscription.
async fn tenant_guard(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let params =
        axum::extract::Path::<std::collections::HashMap<String, String>>::from_request_parts(
            &mut parts, &sh,
        )
        .await;
    let ok = match params {
        Ok(p) => sh.read(|t| {
            p.get("draas_instance") == Some(&t.draas_instance)
                && p.get("uuid") == Some(&t.tenant_uuid)
                && p.get("subscription_id") == Some(&t.subscription_id.to_string())
        }),
        Err(_) => false,
    };
    if !ok {
        return ApiError::unknown_tenant().into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

async fn unknown_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::UnknownRoute,
        "No such endpoint (or the path tenant / subscription doesn't exist)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowed,
        "Method not allowed on this endpoint",
    )
}

/// Serves `sim` on `listener` until `shutdown` completes (the CLI passes ctrl-c).
pub async fn run(
    listener: tokio::net::TcpListener,
    sim: FusionSim,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    conn::serve(listener, sim.router(), shutdown).await
}

/// A simulator serving on loopback in a background task.
pub struct RunningSim {
    pub addr: SocketAddr,
    pub tenant: TenantPath,
    server: conn::Background,
}

impl RunningSim {
    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }
    pub fn api_prefix(&self) -> String {
        self.tenant.api_prefix()
    }
    /// Stops accepting, lets in-flight requests finish, and waits for the server task.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
    /// The server handle alone, for holders that do not care which simulator it is.
    pub fn into_background(self) -> conn::Background {
        self.server
    }
}

/// Binds `127.0.0.1:0` and serves `sim` in a spawned task.
pub async fn start(sim: FusionSim) -> Result<RunningSim, SimError> {
    let tenant = sim.tenant_path();
    let server = conn::Background::spawn(sim.router()).await?;
    Ok(RunningSim {
        addr: server.addr,
        tenant,
        server,
    })
}
