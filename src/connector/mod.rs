//! Backends behind one trait. The planner and the executor only ever see this trait, so
//! adding a vendor never touches them.
//!
//! Contract for implementors:
//! - every HTTP request goes through [`Gate::admit`] first (one adaptive rate limiter per
//!   tenant, reads included) and reports its answer with [`Gate::answered`], so a 429's
//!   Retry-After pauses the whole tenant, not only the caller, and the gate learns the
//!   tenant's limit (the shared [`http::Client`] does both);
//! - `send` makes exactly one HTTP request (one attempt, no retry: the executor owns
//!   retries and the job's retry budget);
//! - `snapshot` and `read_user` are idempotent reads and retry on their own with
//!   [`retry::RetryPolicy`].

pub mod fusion;
pub mod gate;
pub mod http;
pub mod liveplatform;
pub mod portsip;
pub mod retry;
pub mod ump;

use crate::model::{Snapshot, TenantUser, Upn, UserSpec};
use crate::plan::model::UserPlan;
use async_trait::async_trait;
use serde::Serialize;
use std::time::Duration;

pub use gate::Gate;

/// What a backend can do; shown by `teamsync backends`, checked before anything is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub read: bool,
    pub write: bool,
    pub create: bool,
    pub delete: bool,
    pub groups: bool,
    pub licenses: bool,
    pub vrp: bool,
    pub customer_licenses: bool,
    pub resource_accounts: bool,
    pub number_ranges: bool,
    /// The user record has a country (usage location): a backend without one cannot
    /// take the `country` column, nor need it to create a user.
    pub country: bool,
    /// Users carry an extension number (the `extension` column), required to create one.
    pub extension: bool,
}

/// Why a request failed, in the terms the executor decides on.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConnectorError {
    /// Worth another try later: 429, 500/502/503/504, connection errors, timeouts,
    /// malformed answers to reads.
    #[error("temporary failure{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Retryable {
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The server refused this item (other 4xx): kept as the item's error.
    #[error("HTTP {status}{}: {reason}", code.as_ref().map(|c| format!(" code {c}")).unwrap_or_default())]
    Rejected {
        status: u16,
        code: Option<String>,
        reason: String,
    },
    /// 401/403 (after a token refresh where one is configured): the job aborts.
    #[error("authentication failed (HTTP {status}): {message}")]
    Auth { status: u16, message: String },
    /// The backend cannot do this at all (read-only backend, unsupported field).
    #[error("not supported by this backend: {0}")]
    Unsupported(String),
    /// Local problem: bad configuration, token command failed, invalid URL.
    #[error("{0}")]
    Config(String),
    /// The tenant throttled without a break for longer than the tenant's
    /// `max_throttle_minutes` (the Retry-After just asked for included): the job stops,
    /// resumable, rather than wait on.
    #[error(
        "{request}: the tenant has been throttling for {} without a break, longer than max_throttle_minutes allows ({}); stopping (resume the job later)",
        human(*throttled_for),
        human(*limit)
    )]
    Throttled {
        request: String,
        throttled_for: Duration,
        limit: Duration,
    },
}

/// "3.2s", "31m 5s": a duration in an error message.
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let m = d.as_secs() / 60;
        format!("{m}m {}s", d.as_secs() % 60)
    }
}

impl ConnectorError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ConnectorError::Rejected { status: 404, .. })
    }
    /// The tenant throttled this request (429, or 503 with Retry-After): not a failure,
    /// it costs no attempt and no retry budget; the gate holds every request until the
    /// Retry-After has passed.
    pub fn is_throttle(&self) -> bool {
        matches!(
            self,
            ConnectorError::Retryable {
                status: Some(429),
                ..
            } | ConnectorError::Retryable {
                status: Some(503),
                retry_after: Some(_),
                ..
            }
        )
    }
    /// Stable code kept in the history's `error_code`.
    pub fn code(&self) -> String {
        match self {
            ConnectorError::Retryable { status, .. } => status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "network".into()),
            ConnectorError::Rejected { status, code, .. } => match code {
                Some(c) => c.clone(),
                None => status.to_string(),
            },
            ConnectorError::Auth { status, .. } => status.to_string(),
            ConnectorError::Unsupported(_) => "unsupported".into(),
            ConnectorError::Config(_) => "config".into(),
            ConnectorError::Throttled { .. } => "throttled".into(),
        }
    }
}

/// A connector's unit of sending: one HTTP request carrying one or more of a user's
/// planned operations (indices into `UserPlan::ops`, consecutive and in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub ops: Vec<usize>,
    /// e.g. `PUT users/{id}`, for logs and the history.
    pub label: String,
}

/// A sheet row breaking one of the backend's own rules (PortSIP's user-name rules, say),
/// found before anything is sent; the CLI reports it as a plan error on that row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecProblem {
    /// Sheet column name, as in diagnostics (`upn`, `extension`…).
    pub column: &'static str,
    pub message: String,
}

/// What the tenant answered to the status check made at job start.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    pub ok: bool,
    /// Backend-specific details, shown by `tenant status`.
    pub details: serde_json::Value,
}

#[async_trait]
pub trait Connector: Send + Sync {
    /// Backend name: fusion, liveplatform, ump, portsip.
    fn backend(&self) -> &'static str;
    fn capabilities(&self) -> Capabilities;
    /// Backend-specific rules on a desired row that need no tenant data (names the
    /// vendor reserves, characters it refuses). Called for every row before the snapshot,
    /// so a row that breaks them is a plan error and nothing at all is sent. Rules the
    /// capability flags express (unsupported fields) stay the planner's.
    fn check_spec(&self, spec: &UserSpec) -> Vec<SpecProblem> {
        let _ = spec;
        Vec::new()
    }
    /// Backend-specific rules on a row for a user the last snapshot found (`current`),
    /// for values the shared model does not carry (PortSIP's extension number, which
    /// cannot change). Called after the snapshot, before planning; problems are plan
    /// errors.
    fn check_existing(&self, spec: &UserSpec, current: &TenantUser) -> Vec<SpecProblem> {
        let _ = (spec, current);
        Vec::new()
    }
    /// Checks the tenant path exists and credentials work (Fusion: `msteams/status`).
    async fn check(&self) -> Result<TenantStatus, ConnectorError>;
    /// Every user plus catalogs; details (groups, VRP) only for `detail_upns`
    /// (or all users when `all_details`).
    async fn snapshot(
        &self,
        detail_upns: &[Upn],
        all_details: bool,
    ) -> Result<Snapshot, ConnectorError>;
    /// One user with details, by backend id. `Ok(None)` when the tenant says 404.
    async fn read_user(&self, id: &str) -> Result<Option<TenantUser>, ConnectorError>;
    /// Finds a user by UPN (used when a create is answered "already exists").
    async fn find_user(
        &self,
        upn: &Upn,
        display_name_hint: Option<&str>,
    ) -> Result<Option<TenantUser>, ConnectorError>;
    /// Groups a user's planned operations into the fewest requests the API allows.
    /// Never merges across an op with `after` dependencies or past an `awaited` op.
    fn steps(&self, user: &UserPlan) -> Vec<Step>;
    /// Sends one step (exactly one HTTP request, one attempt). `user_id` is the target's
    /// backend id; a create step fills it in.
    async fn send(
        &self,
        user: &UserPlan,
        user_id: &mut Option<String>,
        step: &Step,
    ) -> Result<(), ConnectorError>;
    /// The tenant's gate, when every request of this connector passes it and the connector
    /// times each HTTP request itself once the gate admits it (the executor then leaves
    /// timing to the connector, so pacing and Retry-After pauses never count as slowness).
    /// `None`: the executor bounds each call with the request timeout.
    fn gate(&self) -> Option<&Gate> {
        None
    }
}

/// A snapshot's second pass, shared by connectors whose list lacks what the single-user read
/// has: reads the details of the users `wanted` selects, `concurrency` at a time (the gate,
/// not this, sets the pace), and keeps `merge(listed, detail)` for each. A user whose read
/// finds nothing vanished between the list and the read: it is left out, with a warning.
pub(crate) async fn read_details<F, Fut>(
    users: Vec<TenantUser>,
    wanted: impl Fn(&TenantUser) -> bool,
    concurrency: usize,
    read: F,
    merge: impl Fn(TenantUser, TenantUser) -> TenantUser,
) -> Result<Vec<TenantUser>, ConnectorError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<TenantUser>, ConnectorError>>,
{
    use futures::{StreamExt, TryStreamExt};
    let todo: Vec<(usize, String)> = users
        .iter()
        .enumerate()
        .filter(|(_, u)| wanted(u))
        .map(|(i, u)| (i, u.id.clone()))
        .collect();
    let read = &read;
    let mut found: std::collections::HashMap<usize, Option<TenantUser>> =
        futures::stream::iter(todo)
            .map(|(i, id)| async move { read(id).await.map(|d| (i, d)) })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
    Ok(users
        .into_iter()
        .enumerate()
        .filter_map(|(i, u)| match found.remove(&i) {
            None => Some(u),
            Some(Some(d)) => Some(merge(u, d)),
            Some(None) => {
                tracing::warn!(upn = %u.upn, "user disappeared between list and detail read; left out");
                None
            }
        })
        .collect())
}
