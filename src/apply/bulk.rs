//! The bulk phase of a run, for a backend with a bulk request ([`Bulk`], Fusion's
//! `PUT users/bulk`): users' steps go many to a request, before the per-user phase sends
//! whatever a bulk item cannot carry.
//!
//! How, and why so:
//! - **Waves in dependency order.** A wave takes, for every user, its next steps whose
//!   dependencies are done (and as many of them as one item carries); the wave's items
//!   go in batches of [`Bulk::batch_size`]. A number moving between users is released in
//!   one wave and claimed in the next. A user whose release failed is marked failed on the
//!   board, so the user waiting for it never becomes ready; the per-user phase then
//!   records that user's "dependency failed" like any other.
//! - **Intent first.** Before a batch goes out, every one of its users' intents (the
//!   request's title, the operations, what the user had applied) is committed, so a
//!   `kill -9` mid-bulk leaves each item `sending` and `resume` judges it against its
//!   stored before, as it does a per-user request.
//! - **Throttling** goes through the tenant's gate like every request: a 429 pauses the
//!   tenant and the batch is sent again once the pause is over.
//! - **A lost answer** (timeout, dropped connection, 5xx) may or may not have been
//!   applied: the backend's history is asked for the request by its unique title. Found,
//!   its per-user statuses are the outcome; not found, it was not applied and is sent
//!   again (new title, from the item's attempts and the job's retry budget); the history
//!   unreadable, the batch's users go to the per-user phase, whose requests hold whatever
//!   the bulk did (absolute values; a create answered "already exists" is found again).
//! - **Refusal** of the bulk request itself ([`Bulk::refused`]: a missing role, no such
//!   endpoint) ends the bulk phase with one warning: the rest of the job goes per user.
//! - **Read-back** (`--verify`) of users whose every step went through bulk reads the
//!   list once for all of them and the single-user read only for users whose changed
//!   fields only it shows; a user this job created that the list does not show yet is
//!   looked for again until the replication window closes.

use super::executor::{
    after_applied, count_failure, read_with_retry, record_progress_of_interrupted, stops_the_job,
    undone, Carry, RunCtx, UserState,
};
use super::verify::Expect;
use crate::connector::{Bulk, BulkOutcome, ConnectorError, Step};
use crate::history::{BackendBulkRow, Intent, ItemResult, ItemStatus};
use crate::model::Upn;
use crate::plan::model::{OpRef, Operation};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Where the bulk phase leaves a user.
enum Phase {
    /// Still sending in bulk.
    Bulk,
    /// The per-user phase carries on from its next step.
    PerUser,
    /// Recorded (failed or interrupted): nothing more to do.
    Ended,
}

struct UserRun {
    ui: usize,
    next: usize,
    st: UserState,
    phase: Phase,
}

/// One user's part of a batch: its steps `from..to` as one item.
struct Part {
    ui: usize,
    from: usize,
    to: usize,
    item: serde_json::Value,
}

/// What became of a batch.
enum Sent {
    Answered(Vec<BulkOutcome>),
    /// Nothing is known: its users carry on one by one.
    PerUser,
    /// The job stops (abort, interruption, a history failure): users keep their intent.
    Stopped,
}

/// The bulk phase's shared state across batches of one run.
struct Shared<'a> {
    ctx: &'a Arc<RunCtx>,
    bulk: &'a dyn Bulk,
    size: usize,
    prefix: String,
    seq: AtomicUsize,
    refused: AtomicBool,
    sent: Mutex<Vec<BackendBulkRow>>,
}

/// Runs the bulk phase over `to_run` (indices of users with operations). Returns the
/// users the per-user phase must carry on (with where they stand); every other user of
/// `to_run` is recorded.
pub(super) async fn run(
    ctx: &Arc<RunCtx>,
    bulk: &dyn Bulk,
    size: usize,
    to_run: &[usize],
    bulk_id: i64,
    job_id: &str,
) -> HashMap<usize, Carry> {
    let run_nonce = chrono::Utc::now().timestamp();
    let sh = Shared {
        ctx,
        bulk,
        size,
        prefix: format!("teamsync {job_id} {run_nonce}."),
        seq: AtomicUsize::new(0),
        refused: AtomicBool::new(false),
        sent: Mutex::new(Vec::new()),
    };
    let mut runs: Vec<UserRun> = to_run
        .iter()
        .map(|&ui| UserRun {
            ui,
            next: 0,
            st: UserState::new(&ctx.users[ui]),
            phase: Phase::Bulk,
        })
        .collect();
    let mut wave = 0u32;
    while ctx.abort.reason().is_none() && !sh.refused.load(Ordering::SeqCst) {
        let parts = ready_parts(ctx, bulk, &mut runs);
        if parts.is_empty() {
            break;
        }
        wave += 1;
        tracing::info!(
            "bulk wave {wave}: {} to send in {} request(s)",
            crate::human::count(parts.len(), "user"),
            parts.len().div_ceil(size)
        );
        send_wave(&sh, parts, &mut runs).await;
    }
    let complete: Vec<usize> = runs
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            matches!(r.phase, Phase::Bulk) && r.next == ctx.steps[r.ui].len() && r.next > 0
        })
        .map(|(i, _)| i)
        .collect();
    if ctx.abort.reason().is_none() {
        finish_complete(ctx, bulk, &mut runs, &complete).await;
    }
    link_histories(&sh, bulk_id).await;
    let mut carry = HashMap::new();
    for r in runs {
        match r.phase {
            Phase::Ended => {}
            // Everything sent, but the job stopped before its read-back.
            Phase::Bulk if r.next == ctx.steps[r.ui].len() && r.next > 0 => {
                if ctx.abort.reason().is_some() {
                    record_progress_of_interrupted(ctx, ctx.item_ids[r.ui], &r.st).await;
                }
            }
            Phase::Bulk | Phase::PerUser => {
                carry.insert(
                    r.ui,
                    Carry {
                        first_step: r.next,
                        st: r.st,
                    },
                );
            }
        }
    }
    carry
}

/// This wave's items: for each user still in bulk, its next steps whose dependencies are
/// done, as many as one item carries. A user whose next step no item carries leaves the
/// bulk phase for good (its steps stay in order).
fn ready_parts(ctx: &RunCtx, bulk: &dyn Bulk, runs: &mut [UserRun]) -> Vec<Part> {
    let mut parts = Vec::new();
    for r in runs.iter_mut() {
        if !matches!(r.phase, Phase::Bulk) {
            continue;
        }
        let user = &ctx.users[r.ui];
        let steps = &ctx.steps[r.ui];
        let mut end = r.next;
        while end < steps.len() {
            let deps: Vec<OpRef> = steps[end]
                .ops
                .iter()
                .flat_map(|&i| user.ops[i].after.iter().cloned())
                .collect();
            match ctx.board.check(&deps) {
                super::scheduler::Deps::Ready => end += 1,
                super::scheduler::Deps::Waiting => break,
                // A failed dependency or one outside the run: the per-user phase says so.
                _ => {
                    if end == r.next {
                        r.phase = Phase::PerUser;
                    }
                    break;
                }
            }
        }
        if end == r.next || !matches!(r.phase, Phase::Bulk) {
            continue;
        }
        let refs: Vec<&Step> = steps[r.next..end].iter().collect();
        let found = (1..=refs.len()).rev().find_map(|k| {
            bulk.item(user, r.st.user_id.as_deref(), &refs[..k])
                .map(|v| (k, v))
        });
        match found {
            Some((k, item)) => parts.push(Part {
                ui: r.ui,
                from: r.next,
                to: r.next + k,
                item,
            }),
            None => r.phase = Phase::PerUser,
        }
    }
    parts
}

async fn send_wave(sh: &Shared<'_>, parts: Vec<Part>, runs: &mut [UserRun]) {
    let size = sh.size.max(1);
    let mut batches: Vec<Vec<Part>> = Vec::new();
    let mut parts = parts.into_iter().peekable();
    while parts.peek().is_some() {
        batches.push(parts.by_ref().take(size).collect());
    }
    let pos: HashMap<usize, usize> = runs.iter().enumerate().map(|(i, r)| (r.ui, i)).collect();
    // Each batch carries its users' states while it is under way.
    let mut jobs = Vec::new();
    for batch in batches {
        let states: Vec<UserState> = batch
            .iter()
            .map(|p| {
                let r = &mut runs[pos[&p.ui]];
                std::mem::replace(&mut r.st, UserState::new(&sh.ctx.users[p.ui]))
            })
            .collect();
        jobs.push((batch, states));
    }
    let concurrency = sh.ctx.opts.concurrency.max(1);
    let done: Vec<(Vec<Part>, Vec<UserState>, Vec<Phase>)> = futures::stream::iter(jobs)
        .map(|(batch, states)| send_batch(sh, batch, states))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for (batch, states, phases) in done {
        for ((p, st), phase) in batch.into_iter().zip(states).zip(phases) {
            let r = &mut runs[pos[&p.ui]];
            r.st = st;
            r.phase = phase;
            if matches!(r.phase, Phase::Bulk) {
                r.next = p.to;
            }
        }
    }
}

/// The operation kinds of a part, in order.
fn kinds(ctx: &RunCtx, p: &Part) -> Vec<String> {
    let user = &ctx.users[p.ui];
    ctx.steps[p.ui][p.from..p.to]
        .iter()
        .flat_map(|s| s.ops.iter().map(|&i| user.ops[i].op.kind().to_string()))
        .collect()
}

/// Records intents, sends, and settles every user of the batch. Returns each user's
/// state and phase (`Bulk` with its steps applied when its item succeeded).
async fn send_batch(
    sh: &Shared<'_>,
    batch: Vec<Part>,
    mut states: Vec<UserState>,
) -> (Vec<Part>, Vec<UserState>, Vec<Phase>) {
    let ctx = sh.ctx;
    let items: Vec<serde_json::Value> = batch.iter().map(|p| p.item.clone()).collect();
    let mut attempt = 0u32;
    let outcome = loop {
        attempt += 1;
        let n = sh.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let title = format!("{}{n}", sh.prefix);
        if !record_intents(ctx, &batch, &states, &title).await {
            break Sent::Stopped;
        }
        if ctx.abort.reason().is_some() || sh.refused.load(Ordering::SeqCst) {
            break if ctx.abort.reason().is_some() {
                Sent::Stopped
            } else {
                Sent::PerUser
            };
        }
        for st in &mut states {
            st.attempts += 1;
        }
        match send_until_answered(sh, &title, &items).await {
            Ok(outcomes) => {
                remember(sh, &title, &outcomes);
                break Sent::Answered(outcomes);
            }
            Err(Lost::Stop) => break Sent::Stopped,
            Err(Lost::Refused(e)) => {
                if !sh.refused.swap(true, Ordering::SeqCst) {
                    tracing::warn!(
                        "the tenant refuses bulk requests ({e}); the rest of this job sends one request per user and change"
                    );
                }
                break Sent::PerUser;
            }
            Err(Lost::Rejected(e)) => {
                let o = BulkOutcome::Failed {
                    code: e.code(),
                    reason: e.to_string(),
                };
                break Sent::Answered(vec![o; items.len()]);
            }
            Err(Lost::Unknown(e)) => {
                match read_with_retry(ctx, "bulk history", || sh.bulk.recover(&title, &items)).await
                {
                    Ok(Some(outcomes)) => {
                        tracing::info!("{title}: answer lost ({e}); outcome read from the tenant's bulk history");
                        remember(sh, &title, &outcomes);
                        break Sent::Answered(outcomes);
                    }
                    Ok(None) => {
                        let gave_up = attempt >= ctx.opts.max_attempts.max(1);
                        if gave_up || !ctx.budget.take() {
                            let why = if gave_up {
                                format!("gave up after {attempt} attempts")
                            } else {
                                "the job's retry budget is spent".into()
                            };
                            let o = BulkOutcome::Failed {
                                code: e.code(),
                                reason: format!("{e} ({why}; the tenant's bulk history shows it was not applied)"),
                            };
                            break Sent::Answered(vec![o; items.len()]);
                        }
                        ctx.retries.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!("{title}: {e}; not in the bulk history, sending again");
                        if !ctx.abort.sleep(ctx.policy.backoff(attempt)).await {
                            break Sent::Stopped;
                        }
                    }
                    Err(h) if stops_the_job(&h) => {
                        ctx.abort.trigger(h.to_string());
                        break Sent::Stopped;
                    }
                    Err(h) => {
                        tracing::warn!(
                            "{title}: answer lost ({e}) and the tenant's bulk history cannot tell what it did ({h}); its {} go one by one",
                            crate::human::count(items.len(), "user")
                        );
                        break Sent::PerUser;
                    }
                }
            }
        }
    };
    let phases = settle(ctx, &batch, &mut states, outcome).await;
    (batch, states, phases)
}

enum Lost {
    /// The job stops (abort or interruption).
    Stop,
    /// The backend takes no bulk requests.
    Refused(ConnectorError),
    /// Refused as a whole, for a reason that is each user's.
    Rejected(ConnectorError),
    /// Maybe applied.
    Unknown(ConnectorError),
}

/// One bulk request until it is answered: throttling waits for the tenant's pause (no
/// attempt used), as every request does.
async fn send_until_answered(
    sh: &Shared<'_>,
    title: &str,
    items: &[serde_json::Value],
) -> Result<Vec<BulkOutcome>, Lost> {
    let ctx = sh.ctx;
    loop {
        if ctx.abort.reason().is_some() {
            return Err(Lost::Stop);
        }
        match ctx
            .timed("PUT users/bulk", sh.bulk.send_bulk(title, items))
            .await
        {
            Ok(o) => return Ok(o),
            Err(e) if e.is_throttle() => {
                if !ctx.after_throttle(&e, 0).await {
                    return Err(Lost::Stop);
                }
            }
            Err(e) if sh.bulk.refused(&e) => return Err(Lost::Refused(e)),
            Err(
                e @ (ConnectorError::Auth { .. }
                | ConnectorError::Config(_)
                | ConnectorError::Throttled { .. }),
            ) => {
                ctx.abort.trigger(e.to_string());
                return Err(Lost::Stop);
            }
            Err(e @ (ConnectorError::Rejected { .. } | ConnectorError::Unsupported(_))) => {
                return Err(Lost::Rejected(e))
            }
            Err(e @ ConnectorError::Retryable { .. }) => return Err(Lost::Unknown(e)),
        }
    }
}

/// Commits every user's intent for the request `title`; false (and the job stops) when
/// the history refused one: then nothing is sent.
async fn record_intents(ctx: &RunCtx, batch: &[Part], states: &[UserState], title: &str) -> bool {
    let writes = batch.iter().zip(states).map(|(p, st)| {
        let ops = kinds(ctx, p);
        let keys: Vec<&str> = p
            .item
            .as_object()
            .map(|m| {
                m.keys()
                    .map(String::as_str)
                    .filter(|k| *k != "upn")
                    .collect()
            })
            .unwrap_or_default();
        let intent = Intent {
            step: format!("PUT users/bulk \"{title}\" [{}]", keys.join(", ")),
            ops,
            applied: st.applied.clone(),
        };
        ctx.history.item_sending(ctx.item_ids[p.ui], intent)
    });
    let results = futures::future::join_all(writes).await;
    for r in results {
        if let Err(e) = r {
            ctx.history_failed(e);
            return false;
        }
    }
    true
}

fn remember(sh: &Shared<'_>, title: &str, outcomes: &[BulkOutcome]) {
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, BulkOutcome::Failed { .. }))
        .count();
    let mut sent = sh
        .sent
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sent.push(BackendBulkRow {
        title: title.to_string(),
        backend_id: None,
        backend_job_id: None,
        items: outcomes.len() as u64,
        failed: failed as u64,
    });
}

/// Applies a batch's outcome to its users: a success moves the user on; a failure ends
/// its item (recorded now, its dependants then fail on the board).
async fn settle(
    ctx: &RunCtx,
    batch: &[Part],
    states: &mut [UserState],
    outcome: Sent,
) -> Vec<Phase> {
    let outcomes = match outcome {
        Sent::Answered(o) => o,
        Sent::PerUser => return batch.iter().map(|_| Phase::PerUser).collect(),
        Sent::Stopped => {
            for (p, st) in batch.iter().zip(states.iter()) {
                record_progress_of_interrupted(ctx, ctx.item_ids[p.ui], st).await;
            }
            return batch.iter().map(|_| Phase::Ended).collect();
        }
    };
    let mut phases = Vec::with_capacity(batch.len());
    for ((p, st), o) in batch.iter().zip(states.iter_mut()).zip(outcomes) {
        let user = &ctx.users[p.ui];
        let steps = &ctx.steps[p.ui][p.from..p.to];
        match o {
            BulkOutcome::Done => {
                if steps
                    .iter()
                    .flat_map(|s| &s.ops)
                    .any(|&i| matches!(user.ops[i].op, Operation::Create { .. }))
                {
                    st.created_at = Some(Instant::now());
                }
                st.applied.extend(kinds(ctx, p));
                for s in steps {
                    ctx.board.mark_done(&user.upn, &s.ops);
                }
                count_failure(ctx, false);
                phases.push(Phase::Bulk);
            }
            BulkOutcome::Failed { code, reason } => {
                let all = Step {
                    ops: steps.iter().flat_map(|s| s.ops.iter().copied()).collect(),
                    label: String::new(),
                };
                let reason = if st.applied.is_empty() {
                    reason
                } else {
                    format!("{}: {reason}", undone(user, &all))
                };
                let reason = after_applied(st, reason);
                ctx.board.mark_failed(&user.upn, user.ops.len());
                tracing::warn!("{}: {reason}", user.upn);
                count_failure(ctx, true);
                finish(ctx, p.ui, st, Err((code, reason)), None).await;
                phases.push(Phase::Ended);
            }
        }
    }
    phases
}

/// Records an item's end.
async fn finish(
    ctx: &RunCtx,
    ui: usize,
    st: &UserState,
    r: Result<(), (String, String)>,
    note: Option<String>,
) {
    let ok = r.is_ok();
    let (error_code, error_reason) = match r {
        Ok(()) => (None, None),
        Err((c, m)) => (Some(c), Some(m)),
    };
    let result = ItemResult {
        status: if ok {
            ItemStatus::Success
        } else {
            ItemStatus::Error
        },
        error_code,
        error_reason,
        attempts: st.attempts,
        user_id: st.user_id.clone(),
        applied: st.applied.clone(),
        note,
    };
    match ctx.history.item_finished(ctx.item_ids[ui], result).await {
        Ok(()) => ctx.progress.item_done(ok),
        Err(e) => ctx.history_failed(e),
    }
}

/// Users whose every step went through bulk: read back (with `--verify`) and recorded.
async fn finish_complete(ctx: &RunCtx, bulk: &dyn Bulk, runs: &mut [UserRun], complete: &[usize]) {
    if complete.is_empty() {
        return;
    }
    if !ctx.opts.verify {
        for &i in complete {
            let r = &mut runs[i];
            finish(ctx, r.ui, &r.st, Ok(()), None).await;
            r.phase = Phase::Ended;
        }
        return;
    }
    let detail_attrs = ctx.connector.profile().detail_reads;
    let expects: HashMap<usize, Expect> = complete
        .iter()
        .map(|&i| {
            let ui = runs[i].ui;
            (i, Expect::from_ops(ctx.users[ui].ops.iter().map(|o| &o.op)))
        })
        .collect();
    let mut pending: Vec<usize> = complete.to_vec();
    let mut deferred: Option<(Instant, u32)> = None;
    while !pending.is_empty() {
        if ctx.abort.reason().is_some() {
            return;
        }
        let detail: Vec<Upn> = pending
            .iter()
            .filter(|i| expects[*i].values.keys().any(|a| detail_attrs.contains(*a)))
            .map(|&i| ctx.users[runs[i].ui].upn.clone())
            .collect();
        let read = read_with_retry(ctx, "read back", || bulk.read_back(&detail)).await;
        let listed = match read {
            Ok(users) => users,
            Err(e) if stops_the_job(&e) => {
                ctx.abort.trigger(e.to_string());
                return;
            }
            Err(_) if ctx.abort.reason().is_some() => return,
            Err(e) => {
                for &i in &pending {
                    let r = &mut runs[i];
                    let m = format!("verify: read-back failed: {e}");
                    finish(ctx, r.ui, &r.st, Err(("verify".into(), m)), None).await;
                    r.phase = Phase::Ended;
                }
                return;
            }
        };
        let by_upn: HashMap<&Upn, &crate::model::TenantUser> =
            listed.iter().map(|u| (&u.upn, u)).collect();
        let mut missing = Vec::new();
        for &i in &pending {
            let r = &mut runs[i];
            let upn = &ctx.users[r.ui].upn;
            let Some(found) = by_upn.get(upn) else {
                missing.push(i);
                continue;
            };
            r.st.user_id = Some(found.id.clone());
            let e = &expects[&i];
            let diff = e.mismatches(found, true);
            let result = if diff.is_empty() {
                Ok(())
            } else {
                Err(("verify".to_string(), format!("verify: {}", diff.join("; "))))
            };
            if result.is_ok() {
                ctx.verified_read(&ctx.users[r.ui], found).await;
            }
            let note = if result.is_ok() {
                e.unverified(found)
            } else {
                None
            };
            count_failure(ctx, result.is_err());
            finish(ctx, r.ui, &r.st, result, note).await;
            r.phase = Phase::Ended;
        }
        // Users this job created may not be listed yet (replication).
        let created = missing.iter().all(|&i| runs[i].st.created_at.is_some());
        if !missing.is_empty() && created {
            let (since, n) = deferred.get_or_insert((Instant::now(), 0));
            *n += 1;
            let deadline = *since + ctx.opts.replication_window;
            if Instant::now() < deadline {
                if !ctx.replication_wait(*n, deadline).await {
                    return;
                }
                pending = missing;
                continue;
            }
        }
        for &i in &missing {
            let r = &mut runs[i];
            let m = if r.st.created_at.is_some() {
                format!(
                    "verify: the user is not found ({:?} after its creation)",
                    ctx.opts.replication_window
                )
            } else {
                "verify: the user is not found".to_string()
            };
            count_failure(ctx, true);
            finish(ctx, r.ui, &r.st, Err(("verify".into(), m)), None).await;
            r.phase = Phase::Ended;
        }
        pending.clear();
    }
}

/// Records the run's bulk requests on the job, with the backend's ids for them from its
/// own history (one search by the run's title prefix), so `jobs show` and the report link
/// both histories. Without the backend's history (a missing role, say) the titles are kept.
async fn link_histories(sh: &Shared<'_>, bulk_id: i64) {
    let mut rows = std::mem::take(
        &mut *sh
            .sent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if rows.is_empty() {
        return;
    }
    match read_with_retry(sh.ctx, "bulk history", || sh.bulk.jobs(&sh.prefix)).await {
        Ok(jobs) => {
            let by_title: HashMap<&str, _> = jobs.iter().map(|j| (j.title.as_str(), j)).collect();
            for r in &mut rows {
                if let Some(j) = by_title.get(r.title.as_str()) {
                    r.backend_id = Some(j.id);
                    r.backend_job_id = Some(j.job_id.clone());
                }
            }
        }
        Err(e) => tracing::warn!(
            "cannot read the tenant's bulk history to link its jobs to this one ({e}); their titles are kept"
        ),
    }
    if let Err(e) = sh.ctx.history.add_backend_bulks(bulk_id, rows).await {
        sh.ctx.history_failed(e);
    }
}
