//! Backends behind one trait. The planner and the executor only ever see this trait, so
//! adding a vendor never touches them.
//!
//! Contract for implementors:
//! - every HTTP request goes through [`Gate::ready`] first (one rate limiter per tenant,
//!   reads included), and a 429 calls [`Gate::pause`] with its Retry-After before the error
//!   is returned, so the whole tenant waits, not only the caller;
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

use crate::model::{Profile, Snapshot, TenantUser, Upn};
use crate::plan::model::UserPlan;
use async_trait::async_trait;
use serde::Serialize;
use std::time::Duration;

pub use gate::Gate;

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
}

impl ConnectorError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ConnectorError::Rejected { status: 404, .. })
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

/// What the tenant answered to the status check made at job start.
#[derive(Debug, Clone, Serialize)]
pub struct TenantStatus {
    pub ok: bool,
    /// Backend-specific details, shown by `tenant status`.
    pub details: serde_json::Value,
}

#[async_trait]
pub trait Connector: Send + Sync {
    /// What the backend can do, which attributes it carries and its rules on rows: all
    /// the planner knows about it.
    fn profile(&self) -> Profile;
    /// Backend name: fusion, liveplatform, ump, portsip.
    fn backend(&self) -> &'static str {
        self.profile().backend
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
