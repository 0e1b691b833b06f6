//! The run pipeline as a library: history → sheet → tenant lock → tenant → snapshot →
//! plan → review → apply → outcome. Commands only parse arguments and render what comes
//! back (`commands::run`, `commands::plan`, `commands::jobs`).
//!
//! Why here and not in the commands: every write run (`sync`, `apply`, `resume`, applying
//! a revert) must follow the same order, and the order is what keeps the history true:
//!
//! 1. The history is opened and proven writable before anything else; a history that
//!    cannot be written is refused, naming the file and the reason, before any request.
//! 2. The tenant's lock ([`crate::history::TenantLock`]) is taken before the tenant is
//!    opened, so a second run exits at once with no request at all, whichever `--db` it
//!    uses. The snapshot, the plan and a saved plan's drift check all happen under it.
//! 3. Every run leaves a job row. One that stops before its first write (sheet or plan
//!    errors, drift, authentication, a failed read, a busy lock, a signal) is recorded as
//!    a `failed` job with its [`FailKind`] and diagnostics ([`Failure`]); one that ran
//!    ends `success`/`partial`/`error`/`aborted`/`interrupted`.
//! 4. A [`Stop`] (first SIGTERM/SIGINT, see [`signals`]) ends the run: before the job
//!    exists, as a `failed` job of kind `interrupted`; while it runs, as an `interrupted`
//!    job once requests under way are recorded.
//!
//! Not recorded: config and usage errors that come before a tenant is chosen (there is no
//! tenant to file them under), a resume with nothing left to do, and an interactive
//! `apply` whose confirmation is declined (the operator chose not to run it).

pub mod many;
pub mod signals;
mod tenant;

pub use tenant::{
    connector_failure, load_templates, lock_dir, make_plan, open_tenant, plan_sheet, read_sheet,
    snapshot, sources_sha256, tenant_identity, Reads, SheetInput,
};

use crate::apply::{self, ApplyError, ApplyOptions, JobOutcome, JobTarget, Stop};
use crate::config::{Config, ConfigError};
use crate::connect::Tenant;
use crate::history::{FailKind, History, HistoryError, LockError, NewJob, TenantLock};
use crate::model::{Diagnostic, JobKind, Upn, UserSpec};
use crate::plan::{self, Plan, PlanInput};
use crate::validate::Validated;
use std::path::{Path, PathBuf};

/// What a run works with: the loaded config, the history file, and the stop token its
/// signal handler triggers.
#[derive(Debug, Clone)]
pub struct Session<'a> {
    pub config: &'a Config,
    pub db: PathBuf,
    pub stop: Stop,
}

/// Which write command runs (default titles, messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Sync,
    Apply,
    Resume,
}

impl Command {
    pub fn as_str(&self) -> &'static str {
        match self {
            Command::Sync => "sync",
            Command::Apply => "apply",
            Command::Resume => "resume",
        }
    }
}

/// Where the plan of a write run comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Plan a sheet against the tenant as it is now.
    Sheet(SheetInput),
    /// A plan saved by `plan --out` or `jobs revert --out`; refused if the tenant drifted.
    SavedPlan(PathBuf),
    /// The unfinished items of a job (its id or job id), from the rows it stored.
    Resume(String),
}

/// How the job runs: the CLI's run flags, already parsed.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    pub title: Option<String>,
    pub rate: Option<f64>,
    pub concurrency: Option<usize>,
    /// Users per bulk request (`--bulk-size`); `None`: the tenant's.
    pub bulk_size: Option<usize>,
    pub limit: Option<usize>,
    pub only: Vec<Upn>,
    pub verify: bool,
    pub progress: bool,
}

#[derive(Debug, Clone)]
pub struct RunRequest {
    pub command: Command,
    /// The tenant named on the command line; a saved plan or a resumed job names its own.
    pub tenant: Option<String>,
    pub source: Source,
    pub settings: RunSettings,
}

/// The commands' side of a run: shown the plan under the lock before anything is
/// written, it decides whether the job runs (a terminal's confirmation).
#[async_trait::async_trait]
pub trait Review: Send {
    async fn review(&mut self, plan: &Plan, tenant: &Tenant) -> bool;
}

/// A review that shows nothing and always goes ahead (library callers).
pub struct Proceed;

#[async_trait::async_trait]
impl Review for Proceed {
    async fn review(&mut self, _: &Plan, _: &Tenant) -> bool {
        true
    }
}

/// The diagnostics of a run that stopped before its first write, for the commands to
/// render (human or JSON) and the history to keep.
#[derive(Debug, Clone)]
pub enum Report {
    Sheet(Box<Validated>),
    Plan(Vec<Diagnostic>),
    Drift(Vec<String>),
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Report::Sheet(v) => v.to_json()["errors"].clone(),
            Report::Plan(d) => serde_json::to_value(d).unwrap_or_default(),
            Report::Drift(lines) => serde_json::json!(lines),
        }
    }
}

/// A run that stopped before its first write: why, the message, the diagnostics, and the
/// `failed` job that records it (`None` when nothing could be recorded: a read-only
/// command, or a history failure).
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: FailKind,
    pub tenant: String,
    pub message: String,
    pub report: Option<Report>,
    /// (bulk id, job id) of the recorded `failed` job.
    pub job: Option<(i64, String)>,
    /// What caused it (a connector's error), kept for the chain `main` renders.
    pub source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl Failure {
    pub fn new(kind: FailKind, tenant: &str, message: String) -> Failure {
        Failure {
            kind,
            tenant: tenant.to_string(),
            message,
            report: None,
            job: None,
            source: None,
        }
    }
    pub fn with_report(mut self, r: Report) -> Failure {
        self.report = Some(r);
        self
    }
    pub fn with_source(mut self, e: impl std::error::Error + Send + Sync + 'static) -> Failure {
        self.source = Some(std::sync::Arc::new(e));
        self
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<Failure> for RunError {
    fn from(f: Failure) -> RunError {
        RunError::Failed(Box::new(f))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The config (no tenant chosen yet): nothing was sent, nothing recorded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Wrong usage or input found before a tenant was chosen (an unreadable saved plan, a
    /// job that does not exist): nothing was sent, nothing recorded.
    #[error("{0}")]
    Usage(String),
    /// The history cannot be written (or read): nothing was sent.
    #[error("{0}; nothing was sent")]
    History(#[source] HistoryError),
    /// The run stopped before its first write; recorded as a `failed` job.
    #[error("{}", .0.message)]
    Failed(#[source] Box<Failure>),
    /// The job ran and could not be completed.
    #[error(transparent)]
    Apply(ApplyError),
    /// The history stopped taking writes while the job ran (a full disk): sending
    /// stopped at once; what went out is recorded up to the failed write.
    #[error(
        "the job history {path} could not be written ({reason}); the job stopped sending at once. \
         Make room, then `teamsync resume` finishes it"
    )]
    HistoryFailed {
        path: String,
        reason: String,
        #[source]
        source: HistoryError,
    },
    /// `resume` of a job with no unfinished item: nothing to do (exit 0).
    #[error("job {0} has no pending items; nothing to resume")]
    NothingToResume(i64),
}

impl RunError {
    /// The exit code this error ends a command with ([`crate::exit::Exit::run_error`]).
    pub fn exit(&self) -> crate::exit::Exit {
        crate::exit::Exit::run_error(self)
    }
}

/// A write run that went through: the job's outcome, or `None` when the review declined.
pub struct RunOutput {
    pub history: History,
    pub plan: Option<Plan>,
    pub outcome: Option<JobOutcome>,
    /// The tenant that ran it (closed).
    pub tenant: String,
}

/// What a new job records about where it came from; known before the run can fail.
struct JobInfo {
    kind: JobKind,
    title: String,
    tenant: String,
    source: String,
    source_sha256: String,
}

impl JobInfo {
    fn new_job(&self) -> NewJob {
        NewJob {
            kind: self.kind,
            title: self.title.clone(),
            tenant: self.tenant.clone(),
            source: self.source.clone(),
            source_sha256: self.source_sha256.clone(),
        }
    }
}

/// A job's title when `--title` gives none: what ran, on what. `sync users.xlsx`,
/// `apply users.xlsx`, `apply plan.json (plan of users.xlsx)`, `revert of job 12 (plan
/// undo.json)`; a resumed job keeps its own title.
fn default_title(command: Command, source: &str, plan_file: Option<&Path>) -> String {
    let name = |s: &str| {
        Path::new(s)
            .file_name()
            .map_or_else(|| s.to_string(), |n| n.to_string_lossy().into_owned())
    };
    match plan_file.map(|f| name(&f.display().to_string())) {
        Some(plan) if source.starts_with("revert of job ") => format!("{source} (plan {plan})"),
        Some(plan) => format!("apply {plan} (plan of {})", name(source)),
        None => format!("{} {}", command.as_str(), name(source)),
    }
}

/// The saved plan a request applies, if any.
fn plan_file(source: &Source) -> Option<&Path> {
    match source {
        Source::SavedPlan(f) => Some(f),
        _ => None,
    }
}

/// A job row's kind (the history only stores the two kinds the schema allows).
fn stored_kind(kind: &str) -> JobKind {
    if kind == JobKind::MsResourceAccounts.as_str() {
        JobKind::MsResourceAccounts
    } else {
        JobKind::MsUsers
    }
}

/// Opens the history for a write run and proves it takes a write.
async fn writable_history(db: &Path) -> Result<History, RunError> {
    let h = History::open(db).map_err(RunError::History)?;
    h.check_writable().await.map_err(RunError::History)?;
    Ok(h)
}

/// Runs `req`: see the module doc for the order. Every failure after the tenant is known
/// is recorded as a `failed` job (the returned [`Failure`] names it).
pub async fn execute(
    session: &Session<'_>,
    req: RunRequest,
    review: &mut dyn Review,
) -> Result<RunOutput, RunError> {
    execute_in(session, None, req, review).await
}

/// [`execute`] into a history that several runs share (`sync --all`): the caller opened
/// it and proved it writable once, and every tenant's job goes through its one writer
/// thread, instead of a writer, two connections and their files per tenant contending
/// for the same database.
pub async fn execute_shared(
    session: &Session<'_>,
    history: &History,
    req: RunRequest,
    review: &mut dyn Review,
) -> Result<RunOutput, RunError> {
    execute_in(session, Some(history), req, review).await
}

/// Opens the history for a run, and proves it takes a write ([`execute`]'s first step),
/// for callers that share one between runs ([`execute_shared`]).
pub async fn open_history(db: &Path) -> Result<History, RunError> {
    writable_history(db).await
}

async fn execute_in(
    session: &Session<'_>,
    shared: Option<&History>,
    req: RunRequest,
    review: &mut dyn Review,
) -> Result<RunOutput, RunError> {
    // What is known before the tenant: which tenant, the saved plan or the resumed job.
    let mut resumed = None;
    let mut saved = None;
    let tenant_name = match &req.source {
        Source::SavedPlan(f) => {
            let p = plan::load(f).map_err(|e| RunError::Usage(format!("{}: {e}", f.display())))?;
            if let Some(t) = req.tenant.as_deref().filter(|t| *t != p.tenant) {
                return Err(RunError::Usage(format!(
                    "{} was made for tenant {:?}, not {t:?}",
                    f.display(),
                    p.tenant
                )));
            }
            let name = p.tenant.clone();
            saved = Some(p);
            Some(name)
        }
        Source::Resume(job) => {
            let h = History::open_for_reading(&session.db).map_err(RunError::History)?;
            let row = h.get_job(job).map_err(RunError::History)?.ok_or_else(|| {
                RunError::Usage(format!("no job {job:?} in {}", session.db.display()))
            })?;
            let specs = h.pending_specs(row.id).map_err(RunError::History)?;
            let name = row.tenant.clone();
            resumed = Some((row, specs));
            Some(name)
        }
        Source::Sheet(_) => req.tenant.clone(),
    };
    let (tenant_name, tenant_cfg) = session.config.tenant(tenant_name.as_deref())?;
    if let Some((row, specs)) = &resumed {
        if specs.is_empty() {
            // Killed after its last item was recorded but before it was closed (a bulk
            // request finishes many items at once, so this happens): close it from its
            // items, so it does not stay `running`.
            if row.finished_on.is_none() {
                let history = writable_history(&session.db).await?;
                history
                    .finish_job(row.id, crate::history::JobEnd::Completed)
                    .await
                    .map_err(RunError::History)?;
            }
            return Err(RunError::NothingToResume(row.id));
        }
    }
    let history = match shared {
        Some(h) => h.clone(),
        None => writable_history(&session.db).await?,
    };

    let mut info = match (&req.source, &saved, &resumed) {
        (Source::Sheet(s), _, _) => {
            let source = s.path.display().to_string();
            JobInfo {
                kind: JobKind::MsUsers,
                title: req
                    .settings
                    .title
                    .clone()
                    .unwrap_or_else(|| default_title(req.command, &source, None)),
                tenant: tenant_name.clone(),
                source_sha256: sources_sha256(std::slice::from_ref(&s.path)).unwrap_or_default(),
                source,
            }
        }
        (_, Some(p), _) => JobInfo {
            kind: p.kind,
            title: req.settings.title.clone().unwrap_or_else(|| {
                default_title(
                    req.command,
                    p.sources.first().map_or("plan", String::as_str),
                    plan_file(&req.source),
                )
            }),
            tenant: tenant_name.clone(),
            source: p.sources.join(", "),
            source_sha256: p.source_sha256.clone(),
        },
        (_, _, Some((row, _))) => JobInfo {
            kind: stored_kind(&row.kind),
            title: format!("resume of job {} ({})", row.job_id, row.title),
            tenant: tenant_name.clone(),
            source: row.source.clone(),
            source_sha256: row.source_sha256.clone(),
        },
        _ => return Err(RunError::Usage("nothing to run".into())),
    };

    let result = run_recorded(
        session,
        &req,
        review,
        &history,
        &tenant_name,
        tenant_cfg,
        &mut info,
        saved,
        resumed.map(|(row, specs)| (row.id, specs)),
    )
    .await;
    match result {
        Ok((plan, outcome)) => Ok(RunOutput {
            history,
            plan,
            outcome,
            tenant: tenant_name,
        }),
        Err(RunError::Failed(mut f)) => {
            let errors = f.report.as_ref().map(Report::to_json);
            match history
                .record_failed_job(info.new_job(), f.kind, f.message.clone(), errors)
                .await
            {
                Ok(job) => f.job = Some(job),
                Err(e) => tracing::error!("cannot record the failed run in the history: {e}"),
            }
            Err(RunError::Failed(f))
        }
        Err(e) => Err(e),
    }
}

/// Waits for `fut` unless the run is stopped first (a signal during a long read).
async fn unless_stopped<T>(
    stop: &Stop,
    tenant: &str,
    fut: impl std::future::Future<Output = Result<T, RunError>>,
) -> Result<T, RunError> {
    tokio::select! {
        r = fut => r,
        () = stop.wait() => Err(stopped(stop, tenant)),
    }
}

fn stopped(stop: &Stop, tenant: &str) -> RunError {
    let reason = stop.reason().unwrap_or_else(|| "stopped".into());
    Failure::new(
        FailKind::Interrupted,
        tenant,
        format!("{reason} before anything was sent"),
    )
    .into()
}

fn check_stop(stop: &Stop, tenant: &str) -> Result<(), RunError> {
    if stop.is_stopped() {
        Err(stopped(stop, tenant))
    } else {
        Ok(())
    }
}

/// The part of [`execute`] whose failures are recorded.
#[allow(clippy::too_many_arguments)]
async fn run_recorded(
    session: &Session<'_>,
    req: &RunRequest,
    review: &mut dyn Review,
    history: &History,
    tenant_name: &str,
    tenant_cfg: &crate::config::TenantConfig,
    info: &mut JobInfo,
    saved: Option<Plan>,
    resumed: Option<(i64, Vec<UserSpec>)>,
) -> Result<(Option<Plan>, Option<JobOutcome>), RunError> {
    let stop = &session.stop;
    // The sheet needs no tenant: its errors cost no lock and no request.
    let sheet = match &req.source {
        Source::Sheet(s) => {
            let v = read_sheet(session.config, tenant_name, &s.path, &s.options)?;
            info.kind = v.kind;
            Some((s, v))
        }
        _ => None,
    };
    check_stop(stop, tenant_name)?;

    // The lock, before the tenant is even opened.
    let mut lock = TenantLock::acquire(
        &lock_dir(session.config),
        &tenant_identity(tenant_cfg),
        tenant_name,
        history.path(),
    )
    .map_err(|e| lock_failure(tenant_name, e))?;
    let result = async {
        lock.record_lease(history)
            .await
            .map_err(|e| lock_failure(tenant_name, e))?;
        let tenant = open_tenant(session.config, Some(tenant_name), req.settings.rate).await?;
        let r = run_tenant(
            session, req, review, history, &tenant, &mut lock, sheet, saved, resumed,
        )
        .await;
        tenant.close().await;
        r
    }
    .await;
    if let Err(e) = lock.release().await {
        tracing::warn!("cannot release the tenant lock: {e}");
    }
    result
}

fn lock_failure(tenant: &str, e: LockError) -> RunError {
    match e {
        LockError::History(h) => RunError::History(h),
        e @ LockError::Busy { .. } => {
            Failure::new(FailKind::Lock, tenant, format!("{e}; nothing was sent")).into()
        }
        e @ LockError::Io { .. } => Failure::new(FailKind::Lock, tenant, e.to_string()).into(),
    }
}

/// Under the lock, with the tenant open: plan, review, apply.
#[allow(clippy::too_many_arguments)]
async fn run_tenant(
    session: &Session<'_>,
    req: &RunRequest,
    review: &mut dyn Review,
    history: &History,
    tenant: &Tenant,
    lock: &mut TenantLock,
    sheet: Option<(&SheetInput, Validated)>,
    saved: Option<Plan>,
    resumed: Option<(i64, Vec<UserSpec>)>,
) -> Result<(Option<Plan>, Option<JobOutcome>), RunError> {
    let stop = &session.stop;
    let name = tenant.name.as_str();
    if !tenant.connector.profile().write {
        return Err(Failure::new(
            FailKind::Unsupported,
            name,
            format!(
                "tenant {name}: the {b} backend is read-only, so `{c}` cannot change it; nothing was sent. \
                 Audit it with `teamsync plan SHEET --tenant {name} --detailed-exitcode` (exit 4 when the sheet and the tenant differ)",
                b = tenant.connector.backend(),
                c = req.command.as_str(),
            ),
        )
        .into());
    }
    let (plan, target) = match (sheet, saved, resumed) {
        (Some((s, v)), _, _) => (
            unless_stopped(
                stop,
                name,
                tenant::plan_validated(
                    tenant,
                    s,
                    &v,
                    Some(tenant::Reads {
                        history,
                        record: true,
                    }),
                ),
            )
            .await?,
            JobTarget::New,
        ),
        (_, Some(p), _) => {
            let specs: Vec<UserSpec> = p.users.iter().map(|u| u.desired.clone()).collect();
            let fresh = unless_stopped(stop, name, snapshot(tenant, &specs, p.kind)).await?;
            if let Err(drift) = plan::check_drift(&p, &fresh) {
                let file = match &req.source {
                    Source::SavedPlan(f) => f.display().to_string(),
                    _ => "the saved plan".into(),
                };
                return Err(Failure::new(
                    FailKind::Drift,
                    name,
                    format!(
                        "the tenant changed since {file} was made; nothing was sent. Plan again.\n  {}",
                        drift.join("\n  ")
                    ),
                )
                .with_report(Report::Drift(drift))
                .into());
            }
            (p, JobTarget::New)
        }
        (_, _, Some((bulk_id, _))) => {
            // Read again under the lock: another resume may have finished items since.
            let specs = history.pending_specs(bulk_id).map_err(RunError::History)?;
            if specs.is_empty() {
                return Err(RunError::NothingToResume(bulk_id));
            }
            let row = history
                .get_job(&bulk_id.to_string())
                .map_err(RunError::History)?
                .ok_or_else(|| RunError::Usage(format!("job {bulk_id} disappeared")))?;
            let kind = stored_kind(&row.kind);
            let snap = unless_stopped(stop, name, snapshot(tenant, &specs, kind)).await?;
            let p = make_plan(PlanInput {
                tenant: name,
                mode: plan::Mode::Upsert,
                kind,
                sources: vec![row.source.clone()],
                source_sha256: row.source_sha256.clone(),
                specs: &specs,
                snapshot: &snap,
                profile: tenant.connector.profile(),
                allow_removals: None,
            })?;
            (p, JobTarget::Resume(bulk_id))
        }
        _ => return Err(RunError::Usage("nothing to run".into())),
    };
    check_stop(stop, name)?;
    let go = tokio::select! {
        go = review.review(&plan, tenant) => go,
        () = stop.wait() => return Err(stopped(stop, name)),
    };
    if !go {
        return Ok((Some(plan), None));
    }
    check_stop(stop, name)?;
    let title = match target {
        JobTarget::New => req.settings.title.clone().unwrap_or_else(|| {
            default_title(
                req.command,
                plan.sources.first().map_or("plan", String::as_str),
                plan_file(&req.source),
            )
        }),
        JobTarget::Resume(_) => String::new(),
    };
    let base = ApplyOptions::from_tenant(&tenant.config);
    let opts = ApplyOptions {
        concurrency: req
            .settings
            .concurrency
            .map_or(base.concurrency, |c| c.max(1)),
        verify: req.settings.verify,
        bulk_size: req.settings.bulk_size,
        limit: req.settings.limit,
        only: req.settings.only.clone(),
        title,
        progress: req.settings.progress,
        ..base
    };
    let outcome = apply::execute_locked(
        &plan,
        tenant.connector.clone(),
        history,
        target,
        &opts,
        lock,
        stop,
    )
    .await
    .map_err(|e| match e {
        ApplyError::Check(c) => connector_failure(name, c),
        ApplyError::Stopped(_) => stopped(stop, name),
        ApplyError::Locked(l) => lock_failure(name, l),
        ApplyError::History(e) => RunError::HistoryFailed {
            path: history.path().display().to_string(),
            reason: crate::history::explain(&e.to_string()),
            source: e,
        },
        e => RunError::Apply(e),
    })?;
    Ok((Some(plan), Some(outcome)))
}

#[cfg(test)]
mod tests;
