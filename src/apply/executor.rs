//! One user's run: its steps in order, each through the connector with a per-request
//! timeout, retries with full-jitter backoff from the job's budget, deferral of 404s on
//! users this job just created (replication), resolution of "already exists" on creates,
//! and the read-back check.
//!
//! Decisions are made on [`ConnectorError`]'s kind only, so every backend behaves alike:
//! throttling (429, 503 with Retry-After) → send again once the tenant's pause is over,
//! using no attempt and no retry budget (the gate bounds it by time); other Retryable →
//! retry with backoff from the item's attempts and the job's budget; Rejected → the
//! item's error; Auth/Config, or throttling past `max_throttle_minutes` → the whole job
//! stops (resumable).
//!
//! Recording: before each step goes out, the item's intent (the step and what the user's
//! earlier steps applied) is committed to the history; if that write fails, the step is
//! not sent and the job stops. A step the tenant acknowledged is kept as applied even
//! when a later step of the same user fails, and the item's error then says what exists
//! ("created; number not assigned: …") so revert can undo it.

use super::scheduler::{Abort, Board, Deps};
use super::verify::Expect;
use super::ApplyOptions;
use crate::connector::retry::{RetryBudget, RetryPolicy};
use crate::connector::{Connector, ConnectorError, Step};
use crate::history::{History, HistoryError, Intent, ItemResult, ItemStatus};
use crate::model::attr::OpGroup;
use crate::plan::model::{OpRef, Operation, UserPlan};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Everything the workers of one run share.
pub(crate) struct RunCtx {
    /// The tenant's name, under which verified reads are kept for an incremental refresh.
    pub tenant: String,
    pub users: Vec<UserPlan>,
    pub steps: Vec<Vec<Step>>,
    pub item_ids: Vec<i64>,
    pub connector: Arc<dyn Connector>,
    pub history: History,
    pub opts: ApplyOptions,
    pub policy: RetryPolicy,
    pub budget: RetryBudget,
    pub board: Board,
    pub abort: Abort,
    pub slots: Arc<Semaphore>,
    pub progress: super::progress::Progress,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    /// Throttling answers the workers saw (a connector without a gate has no other count).
    pub throttled: AtomicU64,
    pub consecutive_failures: AtomicU32,
    /// The first history write that failed: the job stops and the caller gets it.
    pub history_error: Mutex<Option<HistoryError>>,
}

/// Why a step did not succeed.
pub(super) enum Fail {
    /// The item's error (kept in the history); `sent` = the tenant answered with an error
    /// (counts towards fail-fast), as opposed to a dependency that failed.
    Item {
        code: String,
        reason: String,
        sent: bool,
    },
    /// The job must stop (auth, local configuration); this item stays pending.
    Abort(String),
    /// The job is stopping; this item stays pending.
    Interrupted,
    /// The history refused the item's intent: nothing was sent, nothing more can be
    /// recorded for it, and the job stops.
    HistoryDown,
}

pub(super) fn item_err(code: impl Into<String>, reason: impl Into<String>) -> Fail {
    Fail::Item {
        code: code.into(),
        reason: reason.into(),
        sent: true,
    }
}

/// What becomes of a user's item at the end of [`run_user`].
pub(super) struct UserState {
    pub user_id: Option<String>,
    /// When this job created the user (a 404 on it is then replication delay).
    pub created_at: Option<Instant>,
    pub attempts: u32,
    /// Kinds of the operations the tenant acknowledged, in order.
    pub applied: Vec<String>,
}

impl UserState {
    pub(super) fn new(user: &UserPlan) -> UserState {
        UserState {
            user_id: user.user_id.clone(),
            created_at: None,
            attempts: 0,
            applied: Vec::new(),
        }
    }
}

/// Where a user's run starts when bulk requests already sent its first steps.
pub(super) struct Carry {
    pub first_step: usize,
    pub st: UserState,
}

impl RunCtx {
    /// Keeps a read-back that proved `user` matches its row (with its details, when the
    /// read returned them) as the user's last verified read, so the next incremental
    /// refresh need not read the user again (`crate::refresh`). A failed write only costs
    /// that read tomorrow: it is logged, and the job goes on.
    pub(super) async fn verified_read(&self, user: &UserPlan, read: &crate::model::TenantUser) {
        let Some(rec) = crate::refresh::record(read, Some(&user.desired), chrono::Utc::now())
        else {
            return;
        };
        if let Err(e) = self
            .history
            .put_user_reads(self.tenant.clone(), vec![rec])
            .await
        {
            tracing::warn!(upn = %user.upn, "cannot keep the verified read: {e}");
        }
    }

    pub(super) fn history_failed(&self, e: HistoryError) {
        self.abort.trigger(format!("history write failed: {e}"));
        let mut slot = self
            .history_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.get_or_insert(e);
    }

    /// Runs a connector call under the per-request timeout; a timeout is retryable
    /// (the request may or may not have been applied).
    pub(super) async fn timed<T>(
        &self,
        what: &str,
        fut: impl std::future::Future<Output = Result<T, ConnectorError>>,
    ) -> Result<T, ConnectorError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        // A connector with a gate times each HTTP request itself, once the gate admits
        // it. Timing the whole call here would count the tenant's pacing and Retry-After
        // pauses as a slow answer: with a pause longer than the timeout, every queued
        // request "timed out" unsent and items failed once their attempts were spent.
        // (A stopping job does not wait for a long pause either: it cancels what is still
        // under way after its grace.)
        if self.connector.gate().is_some() {
            return fut.await;
        }
        match tokio::time::timeout(self.opts.request_timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(ConnectorError::Retryable {
                status: None,
                retry_after: None,
                message: format!("{what}: no answer within {:?}", self.opts.request_timeout),
            }),
        }
    }

    /// Before sending again after a throttle: the gate holds the next request until the
    /// Retry-After has passed; a connector without a gate is waited for here.
    pub(super) async fn after_throttle(&self, e: &ConnectorError, tries: u32) -> bool {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        if self.connector.gate().is_some() {
            return self.abort.reason().is_none();
        }
        let wait = match e {
            ConnectorError::Retryable {
                retry_after: Some(d),
                ..
            } => *d,
            _ => self.policy.backoff(tries.max(1)),
        };
        self.abort.sleep(wait).await
    }

    /// Waits a backoff before a replication retry, never past `deadline`.
    pub(super) async fn replication_wait(&self, n: u32, deadline: Instant) -> bool {
        let d = self
            .policy
            .backoff(n)
            .max(std::time::Duration::from_millis(10));
        let left = deadline.saturating_duration_since(Instant::now());
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.abort.sleep(d.min(left)).await
    }
}

/// Runs one user to its end and records it. `slot` is the concurrency permit the user
/// was started with; it is given back while the user waits for another user's operation.
pub(crate) async fn run_user(
    ctx: Arc<RunCtx>,
    ui: usize,
    slot: OwnedSemaphorePermit,
    carry: Option<Carry>,
) {
    let user = &ctx.users[ui];
    let item = ctx.item_ids[ui];
    let (first_step, mut st) = match carry {
        Some(c) => (c.first_step, c.st),
        None => (0, UserState::new(user)),
    };
    // The slot is held through the read-back too, so `concurrency` bounds every request.
    let mut slot = Some(slot);
    let outcome = run_steps(&ctx, user, ui, item, &mut slot, &mut st, first_step).await;
    let mut note = None;
    let outcome = match outcome {
        Ok(()) if ctx.opts.verify => verify_user(&ctx, user, &st).await.map(|n| note = n),
        other => other,
    };
    // The backend's own record of what it did (an operation id and its final status) goes
    // on the item whatever the outcome, before the read-back's note.
    let backend_notes = ctx.connector.take_notes(&user.upn);
    let with_backend_notes = |note: Option<String>| -> Option<String> {
        let all: Vec<String> = backend_notes.iter().cloned().chain(note).collect();
        (!all.is_empty()).then(|| all.join("; "))
    };
    let result = match outcome {
        Ok(()) => {
            ctx.consecutive_failures.store(0, Ordering::SeqCst);
            ItemResult {
                status: ItemStatus::Success,
                error_code: None,
                error_reason: None,
                attempts: st.attempts,
                user_id: st.user_id.clone(),
                applied: st.applied.clone(),
                note: with_backend_notes(note),
            }
        }
        Err(Fail::Item { code, reason, sent }) => {
            ctx.board.mark_failed(&user.upn, user.ops.len());
            tracing::warn!("{}: {reason}", user.upn);
            if sent {
                count_failure(&ctx, true);
            }
            ItemResult {
                status: ItemStatus::Error,
                error_code: Some(code),
                error_reason: Some(reason),
                attempts: st.attempts,
                user_id: st.user_id.clone(),
                applied: st.applied.clone(),
                note: with_backend_notes(None),
            }
        }
        Err(Fail::Abort(reason)) => {
            ctx.abort.trigger(reason);
            record_progress_of_interrupted(&ctx, item, &st).await;
            return;
        }
        Err(Fail::Interrupted) => {
            record_progress_of_interrupted(&ctx, item, &st).await;
            return;
        }
        Err(Fail::HistoryDown) => return,
    };
    let ok = result.status == ItemStatus::Success;
    match ctx.history.item_finished(item, result).await {
        Ok(()) => ctx.progress.item_done(ok),
        Err(e) => ctx.history_failed(e),
    }
}

/// Counts an item the tenant refused towards `max_consecutive_failures` (a success resets
/// the run of failures).
pub(super) fn count_failure(ctx: &RunCtx, failed: bool) {
    if !failed {
        ctx.consecutive_failures.store(0, Ordering::SeqCst);
        return;
    }
    let n = ctx.consecutive_failures.fetch_add(1, Ordering::SeqCst) + 1;
    let max = ctx.opts.max_consecutive_failures;
    if max > 0 && n >= max {
        ctx.abort.trigger(format!(
            "{n} consecutive items failed (max_consecutive_failures = {max})"
        ));
    }
}

/// An interrupted item stays unfinished (back to pending when the job closes), but what
/// it learned is kept: the attempts made, what the tenant acknowledged and the id of a
/// user it created, so resume and revert see them.
pub(super) async fn record_progress_of_interrupted(ctx: &RunCtx, item: i64, st: &UserState) {
    if st.attempts == 0 {
        return; // it never sent: nothing to add to its pending row
    }
    let r = ItemResult {
        status: ItemStatus::Running,
        error_code: None,
        error_reason: None,
        attempts: st.attempts,
        user_id: st.user_id.clone(),
        applied: st.applied.clone(),
        note: None,
    };
    if let Err(e) = ctx.history.item_finished(item, r).await {
        ctx.history_failed(e);
    }
}

/// What a step that failed left undone, in the user's words ("number not assigned").
pub(super) fn undone(user: &UserPlan, step: &Step) -> String {
    let parts: Vec<&str> = step
        .ops
        .iter()
        .map(|&i| {
            let op = &user.ops[i].op;
            match (op, op.group()) {
                (Operation::Create { .. }, _) => "not created",
                (Operation::Delete, _) => "not deleted",
                _ if op.releases_number() => "number not released",
                (_, Some(OpGroup::Properties)) => "properties not set",
                (_, Some(OpGroup::Licenses)) => "licenses not assigned",
                (_, Some(OpGroup::Number)) => "number not assigned",
                (_, Some(OpGroup::Vrp)) => "voice routing policy not set",
                (_, Some(OpGroup::Groups)) => "groups not set",
                (_, Some(OpGroup::CustomerLicenses)) => "customer licenses not assigned",
                (_, None) => "nothing set",
            }
        })
        .collect();
    parts.join(", ")
}

/// What the acknowledged steps did, in the user's words ("created", "number set").
fn done(applied: &[String]) -> String {
    let parts: Vec<&str> = applied
        .iter()
        .map(|k| match k.as_str() {
            "create" => "created",
            "set_properties" => "properties set",
            "set_licenses" => "licenses assigned",
            "set_number" => "number set",
            "set_vrp" => "voice routing policy set",
            "set_groups" => "groups set",
            "set_customer_licenses" => "customer licenses assigned",
            "delete" => "deleted",
            other => other,
        })
        .collect();
    parts.join(", ")
}

async fn run_steps(
    ctx: &Arc<RunCtx>,
    user: &UserPlan,
    ui: usize,
    item: i64,
    slot: &mut Option<OwnedSemaphorePermit>,
    st: &mut UserState,
    first_step: usize,
) -> Result<(), Fail> {
    for step in ctx.steps[ui].iter().skip(first_step) {
        let deps: Vec<OpRef> = step
            .ops
            .iter()
            .flat_map(|&i| user.ops[i].after.iter().cloned())
            .collect();
        if !deps.is_empty() {
            let mut state = ctx.board.check(&deps);
            if state == Deps::Waiting {
                // Give the slot to another user while we wait.
                *slot = None;
                state = ctx.board.wait(&deps, &ctx.abort).await;
            }
            match state {
                Deps::Ready | Deps::Waiting => {}
                Deps::Failed(reason) => {
                    return Err(Fail::Item {
                        code: "dependency".into(),
                        reason: after_applied(st, reason),
                        sent: false,
                    })
                }
                Deps::Aborted => return Err(Fail::Interrupted),
            }
            if slot.is_none() {
                tokio::select! {
                    p = ctx.slots.clone().acquire_owned() => match p {
                        Ok(p) => *slot = Some(p),
                        Err(_) => return Err(Fail::Interrupted),
                    },
                    () = ctx.abort.wait() => return Err(Fail::Interrupted),
                }
            }
        }
        if ctx.abort.reason().is_some() {
            return Err(Fail::Interrupted);
        }
        let kinds: Vec<String> = step
            .ops
            .iter()
            .map(|&i| user.ops[i].op.kind().to_string())
            .collect();
        let intent = Intent {
            step: step.label.clone(),
            ops: kinds.clone(),
            applied: st.applied.clone(),
        };
        if let Err(e) = ctx.history.item_sending(item, intent).await {
            ctx.history_failed(e);
            return Err(Fail::HistoryDown);
        }
        // The history may have failed for another worker while this intent was queued.
        if ctx.abort.reason().is_some() {
            return Err(Fail::Interrupted);
        }
        match send_step(ctx, user, step, st).await {
            Ok(()) => st.applied.extend(kinds),
            Err(Fail::Item { code, reason, sent }) => {
                let reason = if st.applied.is_empty() {
                    reason
                } else {
                    format!("{}: {reason}", undone(user, step))
                };
                return Err(Fail::Item {
                    code,
                    reason: after_applied(st, reason),
                    sent,
                });
            }
            Err(other) => return Err(other),
        }
        ctx.board.mark_done(&user.upn, &step.ops);
    }
    Ok(())
}

/// An item error prefixed with what the user's earlier steps did, so the item says what
/// exists now ("created; number not assigned: …").
pub(super) fn after_applied(st: &UserState, reason: String) -> String {
    if st.applied.is_empty() {
        reason
    } else {
        format!("{}; {reason}", done(&st.applied))
    }
}

async fn send_step(
    ctx: &RunCtx,
    user: &UserPlan,
    step: &Step,
    st: &mut UserState,
) -> Result<(), Fail> {
    let create = step.ops.iter().find_map(|&i| match &user.ops[i].op {
        op @ Operation::Create { .. } => Some(
            op.sets_text(crate::model::Attr::DisplayName)
                .unwrap_or_default()
                .to_string(),
        ),
        _ => None,
    });
    let is_delete = step
        .ops
        .iter()
        .any(|&i| matches!(user.ops[i].op, Operation::Delete));
    let mut tries: u32 = 0;
    let mut deferred: Option<(Instant, u32)> = None;
    loop {
        if ctx.abort.reason().is_some() {
            return Err(Fail::Interrupted);
        }
        let r = ctx
            .timed(&step.label, ctx.connector.send(user, &mut st.user_id, step))
            .await;
        if let Err(e) = &r {
            if e.is_throttle() {
                tracing::debug!(
                    "{}: {}: {e}; sending again after the pause",
                    user.upn,
                    step.label
                );
                if !ctx.after_throttle(e, tries).await {
                    return Err(Fail::Interrupted);
                }
                continue;
            }
        }
        tries += 1;
        st.attempts += 1;
        let e = match r {
            Ok(()) => {
                if create.is_some() {
                    st.created_at = Some(Instant::now());
                }
                return Ok(());
            }
            Err(e) => e,
        };
        match &e {
            ConnectorError::Auth { .. } => return Err(Fail::Abort(e.to_string())),
            ConnectorError::Config(_) => return Err(Fail::Abort(e.to_string())),
            ConnectorError::Throttled { .. } => return Err(Fail::Abort(e.to_string())),
            ConnectorError::Unsupported(_) => return Err(item_err(e.code(), e.to_string())),
            ConnectorError::Retryable { .. } => {
                if tries >= ctx.opts.max_attempts.max(1) {
                    return Err(item_err(
                        e.code(),
                        format!("{e} (gave up after {tries} attempts)"),
                    ));
                }
                if !ctx.budget.take() {
                    return Err(item_err(
                        e.code(),
                        format!("{e} (the job's retry budget is spent)"),
                    ));
                }
                ctx.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("{}: {}: {e}; retrying", user.upn, step.label);
                if !ctx.abort.sleep(ctx.policy.backoff(tries)).await {
                    return Err(Fail::Interrupted);
                }
            }
            ConnectorError::Rejected { .. }
                if e.is_not_found() && create.is_none() && st.created_at.is_some() =>
            {
                let (since, n) = deferred.get_or_insert((Instant::now(), 0));
                *n += 1;
                let deadline = *since + ctx.opts.replication_window;
                if Instant::now() >= deadline {
                    return Err(item_err(
                        e.code(),
                        format!(
                            "{e} (the user this job created was still not found after {:?})",
                            ctx.opts.replication_window
                        ),
                    ));
                }
                tracing::debug!(
                    "{}: {}: not replicated yet; deferring",
                    user.upn,
                    step.label
                );
                if !ctx.replication_wait(*n, deadline).await {
                    return Err(Fail::Interrupted);
                }
            }
            ConnectorError::Rejected { .. } if create.is_some() => {
                return resolve_existing(ctx, user, step, st, &e, create.as_deref()).await;
            }
            ConnectorError::Rejected { .. } if is_delete && e.is_not_found() && tries > 1 => {
                // An earlier attempt whose answer was lost did delete it.
                return Ok(());
            }
            ConnectorError::Rejected { .. } => return Err(item_err(e.code(), e.to_string())),
        }
    }
}

/// A create was refused — most likely "already exists" after an attempt whose answer was
/// lost, or a run killed after its create. If the user is there, carry on with its id;
/// the create step's other fields must already hold (checked), or the item fails.
async fn resolve_existing(
    ctx: &RunCtx,
    user: &UserPlan,
    step: &Step,
    st: &mut UserState,
    refused: &ConnectorError,
    display_name: Option<&str>,
) -> Result<(), Fail> {
    let found = read_with_retry(ctx, "find user", || {
        ctx.connector.find_user(&user.upn, display_name)
    })
    .await;
    match found {
        Ok(Some(u)) => {
            let expect = Expect::from_ops(step.ops.iter().map(|&i| &user.ops[i].op));
            let diff = expect.mismatches(&u, false);
            if !diff.is_empty() {
                return Err(item_err(
                    refused.code(),
                    format!("{refused}; the existing user differs: {}", diff.join("; ")),
                ));
            }
            tracing::info!(
                "{}: create refused ({refused}); the user exists, continuing with it",
                user.upn
            );
            st.user_id = Some(u.id);
            st.created_at = Some(Instant::now());
            Ok(())
        }
        Ok(None) => Err(item_err(refused.code(), refused.to_string())),
        Err(e) if stops_the_job(&e) => Err(Fail::Abort(e.to_string())),
        Err(_) if ctx.abort.reason().is_some() => Err(Fail::Interrupted),
        Err(e) => Err(item_err(
            refused.code(),
            format!("{refused}; looking the user up failed: {e}"),
        )),
    }
}

/// Whether an error ends the whole job rather than the item.
pub(super) fn stops_the_job(e: &ConnectorError) -> bool {
    matches!(
        e,
        ConnectorError::Auth { .. } | ConnectorError::Throttled { .. }
    )
}

/// Runs an idempotent read (read-back, find) under the request timeout, retrying what is
/// retryable — a timeout included — from the item's attempts and the job's budget, as a
/// send is (throttling uses neither). The timeout covers the whole connector call (gate
/// waits and the connector's own retries too), so without this one slow answer or one
/// Retry-After pause failed an item whose changes had all been applied.
pub(super) async fn read_with_retry<T, F, Fut>(
    ctx: &RunCtx,
    what: &str,
    mut call: F,
) -> Result<T, ConnectorError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectorError>>,
{
    let mut tries: u32 = 0;
    loop {
        match ctx.timed(what, call()).await {
            Err(e) if e.is_throttle() => {
                tracing::debug!("{what}: {e}; reading again after the pause");
                if !ctx.after_throttle(&e, tries).await {
                    return Err(e);
                }
            }
            Err(e @ ConnectorError::Retryable { .. })
                if tries + 1 < ctx.opts.max_attempts.max(1) && ctx.budget.take() =>
            {
                tries += 1;
                ctx.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("{what}: {e}; retrying");
                if !ctx.abort.sleep(ctx.policy.backoff(tries)).await {
                    return Err(e);
                }
            }
            r => return r,
        }
    }
}

/// Reads the user back and compares; `Ok(Some(note))` names what could not be compared.
async fn verify_user(
    ctx: &RunCtx,
    user: &UserPlan,
    st: &UserState,
) -> Result<Option<String>, Fail> {
    let expect = Expect::from_ops(user.ops.iter().map(|o| &o.op));
    let verr = |reason: String| item_err("verify", format!("verify: {reason}"));
    let Some(id) = st.user_id.clone() else {
        return if expect.deleted {
            Ok(None)
        } else {
            Err(verr("no user id to read back".into()))
        };
    };
    let mut deferred: Option<(Instant, u32)> = None;
    loop {
        if ctx.abort.reason().is_some() {
            return Err(Fail::Interrupted);
        }
        match read_with_retry(ctx, "read back", || ctx.connector.read_user(&id)).await {
            Ok(Some(u)) => {
                if expect.deleted {
                    return Err(verr("the user still exists after its deletion".into()));
                }
                let diff = expect.mismatches(&u, true);
                return if diff.is_empty() {
                    ctx.verified_read(user, &u).await;
                    Ok(expect.unverified(&u))
                } else {
                    Err(verr(diff.join("; ")))
                };
            }
            Ok(None) if expect.deleted => return Ok(None),
            Ok(None) if st.created_at.is_some() => {
                let (since, n) = deferred.get_or_insert((Instant::now(), 0));
                *n += 1;
                let deadline = *since + ctx.opts.replication_window;
                if Instant::now() >= deadline {
                    return Err(verr(format!(
                        "the user is not found ({:?} after its creation)",
                        ctx.opts.replication_window
                    )));
                }
                if !ctx.replication_wait(*n, deadline).await {
                    return Err(Fail::Interrupted);
                }
            }
            Ok(None) => return Err(verr("the user is not found".into())),
            Err(e) if stops_the_job(&e) => return Err(Fail::Abort(e.to_string())),
            Err(_) if ctx.abort.reason().is_some() => return Err(Fail::Interrupted),
            Err(e) => return Err(verr(format!("read-back failed: {e}"))),
        }
    }
}
