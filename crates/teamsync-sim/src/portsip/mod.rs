//! A simulator of the PortSIP PBX users API (its "users" document),
//! as strict as that document: the embedded tenant of `sim_backend = "portsip"`, and the
//! server the PortSIP connector's end-to-end tests talk to over real HTTP.
//!
//! The document lists fields and rules but no paths; like the connector (`src/connector/portsip/`) we serve
//! `GET /api/users` (paged: `pagination` = 1-based page, `pagesize` 1..=100, default 20;
//! answer `{"count", "items"}`), `POST /api/users` (201 `{"id"}`), `GET /api/users/{id}`
//! and `POST /api/users/{id}` (modify, 200). Our other readings: `error` (error body and
//! codes), `wire` (field names, what is not modelled), `rules` (limits the document does
//! not give). Auth is `Authorization: Bearer <token>` (the document is silent).
//!
//! The edge (latency, auth, rate limit, faults, request log), the killable connections
//! and `/_sim/requests` are the Fusion simulator's, through [`middleware::Edge`];
//! `GET /_sim/state` shows the users (never a password: the simulator keeps only salted
//! hashes).

pub mod error;
pub mod rules;
pub mod store;
pub mod users;
pub mod wire;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::common::conn::{self, Background};
use crate::common::middleware::{self, Edge, EdgeState, Refusal};
pub use crate::common::SimError;
use crate::common::{admin, read_seed, Sample, SimOptions};
use error::{ApiError, Code};
use store::{Record, Store, Tenant};
use wire::TenantDoc;

struct Db {
    tenant: Tenant,
    store: Store,
}

/// State shared by every request.
pub struct Shared {
    db: Mutex<Db>,
    edge: EdgeState,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn read<R>(&self, f: impl FnOnce(&Tenant) -> R) -> R {
        f(&lock(&self.db).tenant)
    }

    /// Creates the user `f` builds (validated against the tenant under the lock),
    /// persisting it before memory changes. Returns its id.
    pub fn write(
        &self,
        f: impl FnOnce(&Tenant) -> Result<(u64, Record), ApiError>,
    ) -> Result<String, ApiError> {
        let mut db = lock(&self.db);
        let (n, rec) = f(&db.tenant)?;
        db.store
            .put(&rec)
            .map_err(|e| ApiError::internal(format!("state store failure: {e}")))?;
        db.tenant.next_id = n + 1;
        let id = rec.user.id.clone();
        db.tenant.users.insert(n, rec);
        Ok(id)
    }

    /// Changes one user with `f`, persisting the result before memory changes.
    pub fn modify(&self, id: &str, f: impl FnOnce(&mut Record)) -> Result<(), ApiError> {
        let mut db = lock(&self.db);
        let Some(n) = id
            .parse::<u64>()
            .ok()
            .filter(|n| db.tenant.users.contains_key(n))
        else {
            return Err(ApiError::not_found(id));
        };
        let Some(mut rec) = db.tenant.users.get(&n).cloned() else {
            return Err(ApiError::not_found(id));
        };
        f(&mut rec);
        db.store
            .put(&rec)
            .map_err(|e| ApiError::internal(format!("state store failure: {e}")))?;
        db.tenant.users.insert(n, rec);
        Ok(())
    }
}

impl Edge for Shared {
    fn edge(&self) -> &EdgeState {
        &self.edge
    }
    fn refuse(&self, r: Refusal) -> Response {
        let (code, message) = match r {
            Refusal::Unauthenticated => (Code::Unauthorized, "Send Authorization: Bearer <token>"),
            Refusal::Forbidden => (Code::Forbidden, "The token is not accepted"),
            Refusal::RateLimited { .. } => (Code::TooManyRequests, "Too many requests"),
            Refusal::Internal => (Code::InternalError, "Internal error (injected)"),
            Refusal::Unavailable => (Code::ServiceUnavailable, "Service unavailable (injected)"),
        };
        let mut e = ApiError::new(r.status(), code, message);
        e.retry_after = r.retry_after();
        e.into_response()
    }
}

/// A seed document checked against the same rules as the API, so a seeded tenant could
/// have been built through it.
fn tenant_from_doc(doc: TenantDoc) -> Result<Tenant, String> {
    let mut t = Tenant {
        custom_roles: doc.custom_roles,
        ..Tenant::default()
    };
    for r in &t.custom_roles {
        if rules::BUILTIN_ROLES.contains(&r.as_str()) {
            return Err(format!("custom role {r:?} reuses a built-in role's name"));
        }
    }
    for mut u in doc.users {
        let at = |e: ApiError| format!("user {:?} ({}): {}", u.id, u.name, e.message);
        let n: u64 =
            u.id.parse()
                .map_err(|_| format!("user id {:?} is not a decimal number", u.id))?;
        rules::user_name(&u.name).map_err(at)?;
        rules::extension_number(&u.extension_number).map_err(at)?;
        rules::role(&u.role, &t.custom_roles).map_err(at)?;
        rules::settings(&u.settings).map_err(at)?;
        users::check_unique(&t.users, &u.name, &u.extension_number, None).map_err(at)?;
        if t.users.contains_key(&n) {
            return Err(format!("user id {n} appears twice"));
        }
        users::fill_defaults(&mut u.settings);
        t.users.insert(
            n,
            Record {
                user: u,
                password_hash: None,
                extension_password_hash: None,
            },
        );
    }
    Ok(t)
}

/// The sample PBX, served when a new state gets no seed file.
pub const SAMPLE: Sample = Sample {
    name: "samples/portsip-tenant.json",
    json: include_str!("../../../../samples/portsip-tenant.json"),
};

/// A simulator ready to serve.
pub struct PortsipSim {
    shared: Arc<Shared>,
}

impl PortsipSim {
    /// Opens the state (`None` = in memory) and seeds it from `seed` (else [`SAMPLE`]) when
    /// it is new; an existing state file ignores the seed, so a second run sees the first's
    /// writes.
    pub fn open(
        state: Option<&Path>,
        seed: Option<&Path>,
        opts: SimOptions,
    ) -> Result<PortsipSim, SimError> {
        let mut store = Store::open(state)?;
        if store.is_empty()? {
            store.seed(&read_seed(seed, SAMPLE, tenant_from_doc)?)?;
        }
        // Loaded back even when just seeded: the next id comes from what is stored.
        let tenant = store.load()?;
        let shared = Shared {
            db: Mutex::new(Db { tenant, store }),
            edge: EdgeState::new(opts),
        };
        Ok(PortsipSim {
            shared: Arc::new(shared),
        })
    }

    /// The API (behind the edge) and `/_sim/*`.
    pub fn router(self) -> Router {
        let sh = self.shared;
        let api = Router::new()
            .route("/api/users", get(users::list).post(users::create))
            .route("/api/users/{id}", get(users::get_one).post(users::modify))
            .method_not_allowed_fallback(method_not_allowed)
            .fallback(unknown_route)
            .layer(from_fn_with_state(sh.clone(), middleware::gate::<Shared>))
            .with_state(sh.clone());
        api.merge(admin::sim_routes(sh, state))
    }
}

async fn state(State(sh): State<Arc<Shared>>) -> Json<TenantDoc> {
    Json(sh.read(store::Tenant::to_doc))
}

async fn unknown_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::UnknownRoute,
        "No such endpoint",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowed,
        "Method not allowed on this endpoint",
    )
}

/// Serves `sim` on `listener` until `shutdown` completes.
pub async fn run(
    listener: tokio::net::TcpListener,
    sim: PortsipSim,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    conn::serve(listener, sim.router(), shutdown).await
}

/// A PortSIP simulator serving on loopback in a background task.
pub type RunningPortsipSim = Background;

/// Binds `127.0.0.1:0` and serves `sim` in a spawned task.
pub async fn start(sim: PortsipSim) -> Result<RunningPortsipSim, SimError> {
    Ok(Background::spawn(sim.router()).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_checked_by_the_api_rules() {
        let doc: TenantDoc = serde_json::from_value(serde_json::json!({
            "users": [{"id": "7", "name": "root", "role": "StandardUser", "extension_number": "101"}]
        }))
        .unwrap();
        assert!(tenant_from_doc(doc).unwrap_err().contains("reserved"));
        let doc: TenantDoc = serde_json::from_value(serde_json::json!({
            "users": [
                {"id": "7", "name": "a", "role": "StandardUser", "extension_number": "101"},
                {"id": "8", "name": "A", "role": "StandardUser", "extension_number": "102"}
            ]
        }))
        .unwrap();
        assert!(tenant_from_doc(doc).unwrap_err().contains("already exists"));
        let bad = serde_json::from_value::<TenantDoc>(serde_json::json!({
            "users": [{"id": "7", "name": "a", "role": "StandardUser", "extension_number": "101", "pasword": "x"}]
        }));
        assert!(bad.is_err(), "unknown user fields in a seed are refused");
    }
}
