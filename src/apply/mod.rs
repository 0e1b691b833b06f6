//! Apply a plan to a tenant and record every user's outcome in the job history.
//!
//! Why a module of its own: sending is where a sync can hurt a tenant. Everything that
//! protects it lives here — a status check before any write, bounded concurrency, retries
//! from a job-wide budget, fail-fast on auth errors or a run of failures, a graceful stop
//! on a signal — together with what makes a run auditable and resumable: every request is
//! in the history (committed) before it is sent, and every item's end is recorded. The
//! tenant lock is the caller's ([`execute_locked`], taken by `run::` before its first
//! request); [`execute`] takes a lock of its own for library callers.
//!
//! Choices where the README is silent:
//! - `only` keeps the named users; `limit` then keeps the first N users *with changes*
//!   (a canary applies changes). A job holds exactly the users of its run, so a limited
//!   job ends `success` when its users do. A selected user waiting for an operation of a
//!   user outside the run fails with "dependency not in this run".
//! - The replication window is measured from the first 404 of a step (or read-back), not
//!   from the create, so a long tenant-wide 429 pause does not eat it.
//! - A create refused by the tenant is resolved by `find_user`; if the user exists but the
//!   fields sent with the create differ, the item fails rather than guessing.
//! - Only items whose request the tenant answered with an error count towards
//!   `max_consecutive_failures` (0 disables it); a failed dependency sends nothing.
//! - An interrupted item (abort, kill) goes back to `pending` and keeps its attempts and
//!   any user id it created, so `resume` and revert know about it.
//! - After a stop or an abort, requests already under way get [`STOP_GRACE`] to finish
//!   and be recorded; then they are cancelled. A cancelled request's item keeps the
//!   intent it recorded (`sending`), so resume and revert treat it as maybe applied.
//! - A history write that fails stops the job: no request goes out whose intent was not
//!   committed, and nothing new starts.

mod bulk;
mod executor;
pub mod progress;
mod scheduler;
mod stop;
pub mod verify;

pub use stop::Stop;

use crate::config::TenantConfig;
use crate::connector::retry::{RetryBudget, RetryPolicy};
use crate::connector::{Connector, ConnectorError};
use crate::history::{
    History, HistoryError, ItemStatus, JobEnd, JobStatus, LockError, NewItem, NewJob, TenantLock,
};
use crate::model::Upn;
use crate::plan::model::{Plan, UserPlan};
use executor::RunCtx;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Users in flight at once.
    pub concurrency: usize,
    /// Attempts per request (1 = no retry).
    pub max_attempts: u32,
    /// Retries the whole job may spend.
    pub retry_budget: u64,
    /// Failed items in a row that abort the job; 0 = never.
    pub max_consecutive_failures: u32,
    pub request_timeout: Duration,
    /// How long a 404 on a user this job created is taken for replication delay.
    pub replication_window: Duration,
    /// Read every changed user back and compare.
    pub verify: bool,
    /// Users per bulk request on a backend that has one; `None`: the backend's (its
    /// tenant's `bulk_size`), 0: no bulk requests.
    pub bulk_size: Option<usize>,
    pub limit: Option<usize>,
    pub only: Vec<Upn>,
    pub title: String,
    /// A progress bar when stderr is a terminal (log lines otherwise).
    pub progress: bool,
}

impl ApplyOptions {
    /// The tenant's pacing settings; no limit, no verify, no bar, empty title.
    pub fn from_tenant(t: &TenantConfig) -> ApplyOptions {
        let t = t.pacing();
        ApplyOptions {
            concurrency: t.concurrency.max(1),
            max_attempts: t.max_attempts.max(1),
            retry_budget: t.retry_budget,
            max_consecutive_failures: t.max_consecutive_failures,
            request_timeout: Duration::from_secs(t.request_timeout_s.max(1)),
            replication_window: Duration::from_secs(t.replication_window_s),
            verify: false,
            bulk_size: None,
            limit: None,
            only: Vec::new(),
            title: String::new(),
            progress: false,
        }
    }
}

/// Start a new job, or continue an existing one (`resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobTarget {
    New,
    /// The bulk id of a job whose pending/interrupted items the plan re-planned.
    Resume(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobOutcome {
    pub bulk_id: i64,
    pub job_id: String,
    pub status: JobStatus,
    /// Counts over the whole job (a resumed job's earlier items included).
    pub total: u64,
    pub success: u64,
    pub errors: u64,
    pub unchanged: u64,
    /// Requests and retries of this run (throttled sends are not retries).
    pub requests: u64,
    pub retries: u64,
    /// Throttling answers (429, 503 with Retry-After) the tenant's gate received: for the
    /// CLI, which opens one gate per command, this run's (the snapshot's reads included).
    pub throttled: u64,
    /// The rate the gate learned, req/s; None when the tenant never throttled.
    pub settled_rate: Option<f64>,
    pub elapsed: Duration,
    /// The process exit code of this outcome ([`crate::exit::Exit::job`]), for JSON.
    pub exit_code: u8,
    /// Why the job aborted or was interrupted, when it was.
    pub abort_reason: Option<String>,
}

/// How long requests under way may take to finish (and be recorded) once the job stops.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

impl JobOutcome {
    /// "not throttled", or "N throttled (429), settled at R req/s", for summary lines.
    pub fn throttling(&self) -> String {
        match (self.throttled, self.settled_rate) {
            (0, None) => "not throttled".into(),
            (n, Some(r)) => format!("{n} throttled (429), settled at {r:.1} req/s"),
            (n, None) => format!("{n} throttled (429)"),
        }
    }

    /// What `apply`/`sync`/`resume --output json` print (the only place it is built):
    /// the job object as the history shows it (Fusion's bulk job plus our counts and
    /// reason), without items, plus this run's figures and the exit code.
    pub fn to_json(&self, history: &History) -> Result<serde_json::Value, HistoryError> {
        let job = history
            .get_job(&self.bulk_id.to_string())?
            .ok_or_else(|| HistoryError::NoSuchJob(self.bulk_id.to_string()))?;
        let mut v = job.to_fusion_json();
        if let Some(o) = v.as_object_mut() {
            o.insert("exit_code".into(), self.exit_code.into());
            o.insert("requests".into(), self.requests.into());
            o.insert("retries".into(), self.retries.into());
            o.insert("throttled".into(), self.throttled.into());
            o.insert(
                "elapsed_s".into(),
                serde_json::json!((self.elapsed.as_secs_f64() * 1000.0).round() / 1000.0),
            );
            o.insert(
                "abort_reason".into(),
                serde_json::json!(self.abort_reason.clone()),
            );
        }
        Ok(v)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Another live job holds the tenant (nothing was sent).
    #[error(transparent)]
    Locked(LockError),
    /// The status check failed (nothing was written or sent).
    #[error("tenant check failed: {0}")]
    Check(ConnectorError),
    #[error("invalid plan: {0}")]
    InvalidPlan(String),
    #[error("backend {backend} cannot apply changes: {reason}")]
    Unsupported { backend: String, reason: String },
    #[error("cannot resume job {bulk_id}: {reason}")]
    Resume { bulk_id: i64, reason: String },
    /// The history could not be written; the job stopped.
    #[error("{0}")]
    History(HistoryError),
    /// A stop arrived before the job was created: nothing was written or sent.
    #[error("{0} before anything was sent")]
    Stopped(String),
}

fn new_item(u: &UserPlan) -> Result<NewItem, ApplyError> {
    let json = |v: Result<serde_json::Value, serde_json::Error>| {
        v.map_err(|e| ApplyError::InvalidPlan(format!("{}: cannot record the user: {e}", u.upn)))
    };
    Ok(NewItem {
        upn: u.upn.to_string(),
        data: json(serde_json::to_value(&u.desired))?,
        changes: json(serde_json::to_value(&u.changes))?,
        before: serde_json::Value::Object(u.before.clone()),
        plan: Some(json(serde_json::to_value(u))?),
        user_id: u.user_id.clone(),
        status: if u.ops.is_empty() {
            ItemStatus::Unchanged
        } else {
            ItemStatus::Pending
        },
    })
}

/// The lock [`execute`] takes for a library caller that holds none: one per history and
/// tenant name, in the default lock folder. The CLI locks the tenant's identity instead
/// (see `run::`), which also excludes runs writing to other histories.
pub fn history_lock(history: &History, tenant: &str) -> Result<TenantLock, LockError> {
    let db = std::path::absolute(history.path()).unwrap_or_else(|_| history.path().into());
    let identity = format!("history {} tenant {tenant}", db.display());
    TenantLock::acquire(
        &crate::history::lock::default_lock_dir(),
        &identity,
        tenant,
        history.path(),
    )
}

/// Applies `plan` under a lock of its own ([`history_lock`]); see [`execute_locked`].
pub async fn execute(
    plan: &Plan,
    connector: Arc<dyn Connector>,
    history: &History,
    target: JobTarget,
    opts: &ApplyOptions,
) -> Result<JobOutcome, ApplyError> {
    let mut lock = history_lock(history, &plan.tenant).map_err(ApplyError::Locked)?;
    lock.record_lease(history)
        .await
        .map_err(ApplyError::Locked)?;
    let r = execute_locked(
        plan,
        connector,
        history,
        target,
        opts,
        &mut lock,
        &Stop::new(),
    )
    .await;
    if let Err(e) = lock.release().await {
        tracing::warn!("cannot release the tenant lock: {e}");
    }
    r
}

/// Applies `plan` (or the part `opts.only`/`opts.limit` select) and records it as a job,
/// under `lock`, which the caller took before its first request and releases after.
///
/// Order of business: refuse a read-only backend or a malformed plan; check the tenant
/// (an auth failure stops here, nothing written); write the job and all its items; run
/// the users; close the job with counts and status from its items. `stop` ends the job
/// early: no new user starts, requests under way get [`STOP_GRACE`], and the job ends
/// `interrupted` for `resume` to finish.
pub async fn execute_locked(
    plan: &Plan,
    connector: Arc<dyn Connector>,
    history: &History,
    target: JobTarget,
    opts: &ApplyOptions,
    lock: &mut TenantLock,
    stop: &Stop,
) -> Result<JobOutcome, ApplyError> {
    let started = Instant::now();
    let selected =
        scheduler::select(plan, &opts.only, opts.limit).map_err(ApplyError::InvalidPlan)?;
    let users: Vec<UserPlan> = selected.iter().map(|&i| plan.users[i].clone()).collect();
    let has_ops = users.iter().any(|u| !u.ops.is_empty());
    if has_ops && !connector.profile().write {
        return Err(ApplyError::Unsupported {
            backend: connector.backend().into(),
            reason: "the backend is read-only".into(),
        });
    }
    let steps: Vec<_> = users.iter().map(|u| connector.steps(u)).collect();
    scheduler::validate(plan, &users, &steps).map_err(ApplyError::InvalidPlan)?;
    let items = users.iter().map(new_item).collect::<Result<Vec<_>, _>>()?;

    let requests = AtomicU64::new(1);
    match connector.check().await {
        Ok(s) if s.ok => {}
        Ok(s) => {
            return Err(ApplyError::Check(ConnectorError::Rejected {
                status: 200,
                code: None,
                reason: format!("the tenant reports a problem: {}", s.details),
            }))
        }
        Err(e) => return Err(ApplyError::Check(e)),
    }
    if let Some(reason) = stop.reason() {
        return Err(ApplyError::Stopped(reason));
    }

    let (bulk_id, job_id, item_ids) = match target {
        JobTarget::New => {
            let job = NewJob {
                kind: plan.kind,
                title: opts.title.clone(),
                tenant: plan.tenant.clone(),
                source: plan.sources.join(", "),
                source_sha256: plan.source_sha256.clone(),
            };
            history
                .create_job(job, items)
                .await
                .map_err(ApplyError::History)?
        }
        JobTarget::Resume(bulk_id) => {
            let resume_err = |reason: String| ApplyError::Resume { bulk_id, reason };
            let job = history
                .get_job(&bulk_id.to_string())
                .map_err(ApplyError::History)?
                .ok_or_else(|| resume_err("no such job".into()))?;
            if job.kind != plan.kind.as_str() {
                return Err(resume_err(format!(
                    "the job is of kind {}, the plan of kind {}",
                    job.kind,
                    plan.kind.as_str()
                )));
            }
            if job.tenant != plan.tenant {
                return Err(resume_err(format!(
                    "the job ran against tenant {}, the plan is for {}",
                    job.tenant, plan.tenant
                )));
            }
            let ids = history
                .replan_items(bulk_id, items)
                .await
                .map_err(|e| match e {
                    HistoryError::Resume(r) => resume_err(r),
                    e => ApplyError::History(e),
                })?;
            (bulk_id, job.job_id, ids)
        }
    };
    if let Err(e) = lock.set_job(bulk_id, &job_id).await {
        tracing::warn!("cannot record the job on the tenant lock: {e}");
    }
    let to_run: Vec<usize> = (0..users.len())
        .filter(|&i| !users[i].ops.is_empty())
        .collect();
    tracing::info!(
        "job {job_id} (#{bulk_id}) on tenant {}: {} users, {} with changes",
        plan.tenant,
        users.len(),
        to_run.len()
    );

    let concurrency = opts.concurrency.max(1);
    let pace = connector.gate().is_some().then(|| -> progress::PaceSource {
        let c = connector.clone();
        Arc::new(move || c.gate().map(super::connector::gate::Gate::stats))
    });
    let ctx = Arc::new(RunCtx {
        tenant: plan.tenant.clone(),
        board: scheduler::Board::new(plan, &users),
        users,
        steps,
        item_ids,
        connector,
        history: history.clone(),
        opts: opts.clone(),
        policy: RetryPolicy {
            max_attempts: opts.max_attempts.max(1),
            ..RetryPolicy::default()
        },
        budget: RetryBudget::new(opts.retry_budget),
        abort: scheduler::Abort::new(),
        slots: Arc::new(Semaphore::new(concurrency)),
        progress: progress::Progress::start(to_run.len() as u64, opts.progress, pace),
        requests,
        retries: AtomicU64::new(0),
        throttled: AtomicU64::new(0),
        consecutive_failures: AtomicU32::new(0),
        history_error: Mutex::new(None),
    });

    // A stop from outside (a signal) becomes the job's abort, remembered as such.
    let interrupted = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (ctx, stop, interrupted) = (ctx.clone(), stop.clone(), interrupted.clone());
        tokio::spawn(async move {
            stop.wait().await;
            let reason = stop.reason().unwrap_or_else(|| "stopped".into());
            if ctx.abort.reason().is_none() {
                interrupted.store(true, Ordering::SeqCst);
            }
            ctx.abort.trigger(reason);
        })
    };

    // Backends with a bulk request send what it carries first, in waves; the users it
    // cannot finish carry on one by one from where it left them.
    let mut carried = match ctx.connector.clone().bulk() {
        Some(b) if !to_run.is_empty() && opts.bulk_size != Some(0) => {
            let size = opts
                .bulk_size
                .unwrap_or_else(|| b.batch_size())
                .clamp(1, b.max_batch_size());
            Some(bulk::run(&ctx, b, size, &to_run, bulk_id, &job_id).await)
        }
        _ => None,
    };
    let to_run: Vec<usize> = match &carried {
        Some(c) => to_run.into_iter().filter(|ui| c.contains_key(ui)).collect(),
        None => to_run,
    };

    let mut set = JoinSet::new();
    for ui in to_run {
        let slot = tokio::select! {
            p = ctx.slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = ctx.abort.wait() => break,
        };
        if ctx.abort.reason().is_some() {
            break;
        }
        let carry = carried.as_mut().and_then(|c| c.remove(&ui));
        set.spawn(executor::run_user(ctx.clone(), ui, slot, carry));
        while let Some(r) = set.try_join_next() {
            joined(&ctx, r);
        }
    }
    drain(&ctx, &mut set, stop.grace()).await;
    watcher.abort();

    let abort_reason = ctx.abort.reason();
    let (throttled, settled_rate) = match ctx
        .connector
        .gate()
        .map(super::connector::gate::Gate::stats)
    {
        Some(g) => (g.throttles, g.learned),
        None => (ctx.throttled.load(Ordering::Relaxed), None),
    };
    let recorded = history
        .add_throttling(bulk_id, throttled, settled_rate)
        .await;
    let end = match &abort_reason {
        None => JobEnd::Completed,
        Some(r) if interrupted.load(Ordering::SeqCst) => JobEnd::Interrupted(r.clone()),
        Some(r) => JobEnd::Aborted(r.clone()),
    };
    let finished = history.finish_job(bulk_id, end).await;
    let failed_write = ctx
        .history_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    ctx.progress.finish();
    if let Some(e) = failed_write {
        return Err(ApplyError::History(e));
    }
    recorded.map_err(ApplyError::History)?;
    let job = finished.map_err(ApplyError::History)?;
    let outcome = JobOutcome {
        bulk_id,
        job_id,
        status: job.status,
        total: job.total_count,
        success: job.success_count,
        errors: job.error_count,
        unchanged: job.unchanged_count,
        requests: ctx.requests.load(Ordering::Relaxed),
        retries: ctx.retries.load(Ordering::Relaxed),
        throttled,
        settled_rate,
        elapsed: started.elapsed(),
        exit_code: crate::exit::Exit::job(job.status, None).code(),
        abort_reason,
    };
    tracing::info!(
        "job {} finished {}: {} users, {} ok ({} unchanged), {} failed, {} requests, {} retries, {}, {:.1?}",
        outcome.job_id,
        outcome.status,
        outcome.total,
        outcome.success,
        outcome.unchanged,
        outcome.errors,
        outcome.requests,
        outcome.retries,
        outcome.throttling(),
        outcome.elapsed
    );
    Ok(outcome)
}

/// Waits for the users under way. Once the job aborts (or is stopped), they get `grace`
/// ([`STOP_GRACE`] unless the caller's [`Stop`] says otherwise) to finish their request
/// and record it; what is left is cancelled.
async fn drain(ctx: &Arc<RunCtx>, set: &mut JoinSet<()>, grace: Duration) {
    loop {
        tokio::select! {
            r = set.join_next() => match r {
                Some(r) => joined(ctx, r),
                None => return,
            },
            () = ctx.abort.wait() => break,
        }
    }
    let deadline = Instant::now() + grace;
    loop {
        tokio::select! {
            r = set.join_next() => match r {
                Some(r) => joined(ctx, r),
                None => return,
            },
            () = tokio::time::sleep_until(deadline) => {
                tracing::warn!(
                    "{} user(s) still had a request under way {grace:?} after the stop; cancelling (their items stay pending, their last request recorded as sent)",
                    set.len()
                );
                set.abort_all();
                while let Some(r) = set.join_next().await {
                    joined(ctx, r);
                }
                return;
            }
        }
    }
}

fn joined(ctx: &RunCtx, r: Result<(), tokio::task::JoinError>) {
    match r {
        // Cancelled after the stop grace: its item keeps what it recorded.
        Err(e) if !e.is_cancelled() => ctx
            .abort
            .trigger(format!("internal error in a worker: {e}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
