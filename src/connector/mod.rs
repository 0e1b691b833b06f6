//! Backends behind one trait. The executor only ever sees this trait and the planner only
//! the [`Profile`] a connector hands out, so adding a vendor never touches them.
//!
//! Contract for implementors:
//! - [`Connector::profile`] says everything the planner must know: what the backend can
//!   do, the attributes it carries, what a create needs, what cannot change, what only the
//!   single-user read returns, its own row rules;
//! - `steps` groups a user's operations with the shared [`group_steps`], from a
//!   [`Batching`] that says what one request can carry;
//! - every HTTP request goes through [`Gate::admit`] first (one adaptive rate limiter per
//!   tenant, reads included) and reports its answer with [`Gate::answered`], so a 429's
//!   Retry-After pauses the whole tenant, not only the caller, and the gate learns the
//!   tenant's limit (the shared [`http::Client`] does both);
//! - `send` makes exactly one HTTP request (one attempt, no retry: the executor owns
//!   retries and the job's retry budget);
//! - `snapshot` and `read_user` are idempotent reads and retry on their own with
//!   [`retry::RetryPolicy`].

pub mod embedded;
pub mod fusion;
pub mod gate;
pub mod graph;
pub mod http;
pub mod liveplatform;
pub mod portsip;
pub mod registry;
pub mod retry;
pub mod ump;

use crate::model::{AttrSet, Profile, Snapshot, TenantUser, Upn};
use crate::plan::model::{AttrChange, Operation, UserPlan};
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
    /// The tenant throttled without a break for longer than the tenant's
    /// `max_throttle_minutes` (the Retry-After just asked for included): the job stops,
    /// resumable, rather than wait on.
    #[error(
        "{request}: the tenant has been throttling for {} without a break, longer than max_throttle_minutes allows ({}); stopping: run again (or `teamsync resume` the job) once the tenant is less busy",
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
            ConnectorError::Retryable { status, .. } => {
                status.map_or_else(|| "network".into(), |s| s.to_string())
            }
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

/// How a backend's requests may bundle a user's operations: all that the one grouping
/// algorithm, [`group_steps`], needs to know about the backend.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    /// Attributes one update request can carry together. An operation changing any other
    /// is a request of its own (which the connector then refuses to build, if it cannot
    /// carry it at all).
    pub together: AttrSet,
    /// Attributes a create request can carry besides the create's own values: operations
    /// right after the create join it.
    pub with_create: AttrSet,
    /// Two changes that never share a request although their attributes may (Fusion:
    /// customer licenses next to a number release, as they live in the `draas` object the
    /// release deletes). Asked both ways round.
    pub apart: fn(&AttrChange, &AttrChange) -> bool,
}

fn never_apart(_: &AttrChange, _: &AttrChange) -> bool {
    false
}

impl Batching {
    /// Every operation a request of its own.
    pub const ONE_BY_ONE: Batching = Batching {
        together: AttrSet::EMPTY,
        with_create: AttrSet::EMPTY,
        apart: never_apart,
    };
}

/// The fewest requests `batching` allows for a user's operations, as runs of operation
/// indices in plan order. Rules every backend shares:
/// - a delete is a request of its own; a create starts one that only operations of
///   `with_create` attributes may join;
/// - an operation with a non-empty `after` starts a new request (it waits for another
///   user's operation, and what comes before it must not wait with it);
/// - an `awaited` operation ends its request (another user waits for exactly that one, so
///   nothing later may delay it);
/// - an attribute appears once per request: an operation changing one the request already
///   changes starts a new one (a release, then a claim of a number);
/// - changes `apart` says cannot meet start a new request.
pub fn group_steps(user: &UserPlan, batching: &Batching) -> Vec<Vec<usize>> {
    let mut steps: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    // The attributes the open request may still take; `None`: it takes nothing more.
    let mut open: Option<AttrSet> = None;
    for (i, p) in user.ops.iter().enumerate() {
        let attrs = p.op.attrs();
        let meets = |j: &usize| {
            let there = &user.ops[*j].op;
            there.attrs().intersects(attrs)
                || there.changes().iter().any(|a| {
                    p.op.changes()
                        .iter()
                        .any(|c| (batching.apart)(a, c) || (batching.apart)(c, a))
                })
        };
        let joins = match (&p.op, open) {
            (Operation::Set { .. }, Some(can)) => {
                !attrs.is_empty()
                    && attrs.is_subset(can)
                    && p.after.is_empty()
                    && !cur.iter().any(meets)
            }
            _ => false,
        };
        if !joins && !cur.is_empty() {
            steps.push(std::mem::take(&mut cur));
        }
        cur.push(i);
        open = match &p.op {
            _ if p.awaited => None,
            _ if joins => open,
            Operation::Delete => None,
            Operation::Create { .. } => Some(batching.with_create),
            Operation::Set { .. } if attrs.is_subset(batching.together) => Some(batching.together),
            Operation::Set { .. } => None,
        };
    }
    if !cur.is_empty() {
        steps.push(cur);
    }
    steps
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
    /// Whether the snapshot's details come from one [`Connector::read_user`] per user whose
    /// answer is the whole user (the list's fields and the details), so a snapshot listed
    /// with no details and completed by `read_user` is the same snapshot: an incremental
    /// refresh (`crate::refresh`) can then choose whom to read after the list, and take the
    /// others' details from the history. Other backends read details their own way and
    /// are always read in full.
    fn details_per_user(&self) -> bool {
        false
    }
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
    /// The backend's request for many users at once, when it has one and the tenant uses
    /// it (Fusion's `PUT users/bulk`); `None`: every step is a request of its own.
    fn bulk(&self) -> Option<&dyn Bulk> {
        None
    }
    /// What the backend did for `upn` that the job's item should keep beyond its outcome
    /// (Graph: each asynchronous number operation's id and final status), taken once when
    /// the user's last step is done. Most backends answer at once and have none.
    fn take_notes(&self, _upn: &Upn) -> Vec<String> {
        Vec::new()
    }
}

/// One user's result in the answer to a bulk request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkOutcome {
    Done,
    /// The backend's code and reason for this user.
    Failed {
        code: String,
        reason: String,
    },
}

/// A bulk job in the backend's own history (Fusion's `GET users/bulk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendBulk {
    /// The backend's database id (`GET users/bulk/{id}`).
    pub id: i64,
    /// The backend's job id.
    pub job_id: String,
    pub title: String,
}

/// Many users' changes in one request, for a backend that has such a request. The
/// executor decides what goes out together (waves in the plan's dependency order,
/// batches of [`Bulk::batch_size`]) and records every user's intent first; the backend
/// says what one item can carry and how to send, recover and read back.
///
/// Contract: [`Bulk::send_bulk`] makes one request through the tenant's gate (one
/// attempt, like [`Connector::send`]) and answers one outcome per item, in order; an
/// answer it cannot map to every item is `Retryable` (it was maybe applied), and the
/// executor then asks [`Bulk::recover`].
#[async_trait]
pub trait Bulk: Send + Sync {
    /// Items per request unless the run says otherwise (the tenant's setting).
    fn batch_size(&self) -> usize;
    /// The most items one request may carry.
    fn max_batch_size(&self) -> usize;
    /// The item carrying `steps` (consecutive steps of `user`, the first one not sent
    /// yet), or `None` when one item cannot carry them all: those go one by one.
    fn item(
        &self,
        user: &UserPlan,
        user_id: Option<&str>,
        steps: &[&Step],
    ) -> Option<serde_json::Value>;
    /// Sends one bulk request named `title` (unique: it finds the request again in the
    /// backend's history).
    async fn send_bulk(
        &self,
        title: &str,
        items: &[serde_json::Value],
    ) -> Result<Vec<BulkOutcome>, ConnectorError>;
    /// The outcome of a bulk request whose answer was lost, from the backend's history:
    /// `Ok(None)` when it has no job of that title (the request was not applied).
    async fn recover(
        &self,
        title: &str,
        items: &[serde_json::Value],
    ) -> Result<Option<Vec<BulkOutcome>>, ConnectorError>;
    /// The backend's jobs whose title starts with `prefix`.
    async fn jobs(&self, prefix: &str) -> Result<Vec<BackendBulk>, ConnectorError>;
    /// Reads users back after bulk requests with the fewest requests: what the backend's
    /// list carries for everyone, details only for `detail`.
    async fn read_back(&self, detail: &[Upn]) -> Result<Vec<TenantUser>, ConnectorError>;
    /// Whether an error to a bulk request means the backend takes no bulk requests from
    /// us at all (a missing role, no such endpoint): the job falls back to one request
    /// per step.
    fn refused(&self, e: &ConnectorError) -> bool;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Attr, UserSpec, E164};
    use crate::plan::model::{OpRef, PlannedOp, UserAction};

    fn plan(ops: Vec<PlannedOp>) -> UserPlan {
        let upn = Upn::parse("a@x.com").unwrap();
        UserPlan {
            upn: upn.clone(),
            user_id: Some("1".into()),
            action: UserAction::Update,
            desired: UserSpec::new(upn),
            origin: None,
            changes: vec![],
            ops,
            before: Default::default(),
        }
    }
    fn op(op: Operation) -> PlannedOp {
        PlannedOp {
            op,
            after: vec![],
            awaited: false,
        }
    }
    fn num(n: Option<&str>) -> Operation {
        Operation::set_number(n.map(|n| E164::parse_canonical(n).unwrap()))
    }
    fn waits(mut p: PlannedOp) -> PlannedOp {
        p.after = vec![OpRef {
            upn: Upn::parse("b@x.com").unwrap(),
            index: 0,
        }];
        p
    }
    fn awaited(mut p: PlannedOp) -> PlannedOp {
        p.awaited = true;
        p
    }
    fn cl_vs_release(a: &AttrChange, b: &AttrChange) -> bool {
        a.attr == Attr::CustomerLicenses && b.attr == Attr::Number && b.after.is_none()
    }

    /// The rules every backend shares, on a backend that carries everything together.
    #[test]
    fn the_shared_grouping_rules() {
        let all = Batching {
            together: AttrSet::ALL,
            with_create: AttrSet::of(&[Attr::Number]),
            apart: cl_vs_release,
        };
        let vrp = || op(Operation::set_vrp(None));
        let cl = || op(Operation::set_customer_licenses(vec!["c".into()]));
        let u = plan(vec![vrp(), op(num(Some("+3225405200"))), cl()]);
        assert_eq!(group_steps(&u, &all), vec![vec![0, 1, 2]]);
        // A waiting op starts a step; an awaited one ends its step.
        let u = plan(vec![vrp(), waits(op(num(Some("+3225405200")))), cl()]);
        assert_eq!(group_steps(&u, &all), vec![vec![0], vec![1, 2]]);
        let u = plan(vec![awaited(op(num(None))), vrp()]);
        assert_eq!(group_steps(&u, &all), vec![vec![0], vec![1]]);
        // An attribute once per request; changes kept apart both ways round.
        let u = plan(vec![op(num(None)), vrp(), op(num(Some("+3225405200")))]);
        assert_eq!(group_steps(&u, &all), vec![vec![0, 1], vec![2]]);
        let u = plan(vec![cl(), op(num(None))]);
        assert_eq!(group_steps(&u, &all), vec![vec![0], vec![1]]);
        // A create takes only `with_create`; a delete stands alone.
        let create = || op(Operation::create_user("A".into(), None));
        let u = plan(vec![create(), op(num(Some("+3225405200"))), vrp()]);
        assert_eq!(group_steps(&u, &all), vec![vec![0, 1], vec![2]]);
        let u = plan(vec![vrp(), op(Operation::Delete), vrp()]);
        assert_eq!(group_steps(&u, &all), vec![vec![0], vec![1], vec![2]]);
        // What a request cannot carry stands alone (and is refused when built).
        let some = Batching {
            together: AttrSet::of(&[Attr::Vrp, Attr::Number]),
            ..all
        };
        let u = plan(vec![vrp(), cl(), op(num(None))]);
        assert_eq!(group_steps(&u, &some), vec![vec![0], vec![1], vec![2]]);
        assert_eq!(
            group_steps(&plan(vec![vrp(), cl()]), &Batching::ONE_BY_ONE),
            vec![vec![0], vec![1]]
        );
    }
}
