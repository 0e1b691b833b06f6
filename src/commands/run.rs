//! `teamsync apply`, `sync` and `resume`: turn the flags into a [`run::RunRequest`], show
//! the plan (and ask on a terminal), then render the job or the failure. The pipeline
//! itself — lock, snapshot, plan, apply, record — is `crate::run`.

use super::{print_json, CliError, CmdResult, Ctx, Exit};
use crate::apply::{JobOutcome, Stop};
use crate::cli::{PlanArgs, RunArgs, SheetArgs};
use crate::connect::Tenant;
use crate::history::{History, JobStatus};
use crate::human::{count, Workload};
use crate::model::Upn;
use crate::notify::{RunFigures, RunSummary};
use crate::plan::{self, Plan};
use crate::run::{self, Command, Report, RunError, RunRequest, RunSettings, SheetInput, Source};
use is_terminal::IsTerminal;
use std::path::Path;

pub(crate) fn settings(run: &RunArgs) -> Result<RunSettings, CliError> {
    let only = run
        .only
        .iter()
        .map(|u| Upn::parse(u).map_err(|e| CliError::Invalid(format!("--only: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RunSettings {
        title: run.title.clone(),
        rate: run.rate,
        concurrency: run.concurrency,
        bulk_size: run.bulk_size,
        limit: run.limit,
        only,
        verify: !run.no_verify,
        progress: std::io::stderr().is_terminal(),
    })
}

pub(crate) fn sheet_input(
    ctx: &Ctx,
    sheet: &Path,
    args: &PlanArgs,
    sheet_args: &SheetArgs,
) -> SheetInput {
    SheetInput {
        path: sheet.to_path_buf(),
        options: super::validate::sheet_options(ctx, sheet_args),
        mode: super::plan::mode(args.mode),
        allow_removals: args.allow_removals,
        allow_license_removals: args.allow_license_removals,
        refresh: args.refresh,
    }
}

/// Prints what a failed run found (sheet errors, plan errors) the way `validate` and
/// `plan` print them, then hands the error on for `main` to render. A run recorded as a
/// failed job says which.
pub(crate) fn render_run_error(ctx: &Ctx, e: RunError) -> CliError {
    if let RunError::Failed(f) = &e {
        let shown = match &f.report {
            Some(Report::Sheet(v)) if ctx.json() => print_json("validate", v.to_json()),
            Some(Report::Sheet(v)) => {
                err!("{}", v.render_human());
                Ok(())
            }
            Some(Report::Plan(errors)) if ctx.json() => {
                print_json("plan-errors", serde_json::json!({ "errors": errors }))
            }
            Some(Report::Plan(errors)) => {
                for d in errors {
                    errln!("{d}");
                }
                Ok(())
            }
            Some(Report::Drift(_)) | None => Ok(()),
        };
        // A reader that left while the findings were shown changes nothing: the run's
        // own error decides the exit code.
        drop(shown);
        if let Some((id, job_id)) = &f.job {
            errln!(
                "recorded as job {id} ({job_id}), status failed ({}): teamsync jobs show {id}",
                f.kind
            );
        }
    }
    CliError::Run(e)
}

/// What the job will send, for the estimate: each changed user's writes as the connector
/// groups them (plus its read-back unless `--no-verify`), and the status check first.
fn workload(ui: &Ui<'_>, tenant: &Tenant, p: &Plan, latency: std::time::Duration) -> Workload {
    let verify = usize::from(ui.verify);
    Workload {
        user_requests: p
            .users
            .iter()
            .filter(|u| !u.ops.is_empty())
            .map(|u| tenant.connector.steps(u).len() + verify)
            .collect(),
        extra_requests: 1,
        rate: ui.rate.unwrap_or(tenant.config.pacing().rate_per_second),
        burst: tenant.config.pacing().burst,
        concurrency: ui.concurrency.unwrap_or(tenant.config.pacing().concurrency),
        latency,
    }
}

/// One round trip to the tenant (its status check), timed: what a request costs now.
async fn measure_latency(tenant: &Tenant) -> std::time::Duration {
    let t0 = std::time::Instant::now();
    let _ = tenant.connector.check().await;
    t0.elapsed()
}

/// Shows the plan; for `apply` on a terminal without `--yes`, asks.
struct Ui<'a> {
    ctx: &'a Ctx,
    show_plan: bool,
    ask: bool,
    verify: bool,
    rate: Option<f64>,
    concurrency: Option<usize>,
    /// The first failed write to stdout while the run went on (a closed pipe): the run is
    /// not stopped by it, its job decides the exit code.
    output_error: Option<CliError>,
}

#[async_trait::async_trait]
impl run::Review for Ui<'_> {
    async fn review(&mut self, p: &Plan, tenant: &Tenant) -> bool {
        if self.show_plan {
            if let Err(e) = super::plan::show_plan(self.ctx, p) {
                // Nobody can read the plan (stdout closed): do not ask about it.
                let ask = self.ask;
                self.output_error = Some(e);
                if ask {
                    errln!("the plan could not be shown; nothing was applied");
                    return false;
                }
            }
        } else if self.ask {
            // Asked about a plan, the operator sees it (on stderr: stdout holds JSON).
            err!("{}", plan::render_human(p, false));
        }
        if !self.ask || plan::summary(p).operations == 0 {
            return true;
        }
        let work = workload(self, tenant, p, measure_latency(tenant).await);
        let s = plan::summary(p);
        let removes = plan::removals::removals(p)
            .describe()
            .map(|r| format!("It {r}.\n"))
            .unwrap_or_default();
        err!(
            "\nThis will change {} with {} on tenant {}, {}.\n{removes}Apply? [y/N] ",
            count(s.users - s.unchanged, "user"),
            count(s.operations, "operation"),
            tenant.name,
            work.describe(),
        );
        // A blocking read, off the runtime's threads; a signal ends the wait (the
        // pipeline watches its stop).
        let answer = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).map(|_| line)
        })
        .await;
        let yes = matches!(
            answer.as_ref().map(|r| r.as_deref().map(str::trim)),
            Ok(Ok("y" | "Y" | "yes" | "YES" | "Yes"))
        );
        if !yes {
            errln!("nothing was applied");
        }
        yes
    }
}

/// The `teamsync resume` line for this job, with the `--config`/`--db` this run used.
pub(crate) fn resume_command(ctx: &Ctx, job_id: &str) -> String {
    let mut cmd = String::from("teamsync");
    if let Some(c) = &ctx.config.path {
        if c != Path::new("config/teamsync.toml") {
            cmd.push_str(&format!(" --config {}", c.display()));
        }
    }
    if ctx.db != ctx.config.db {
        cmd.push_str(&format!(" --db {}", ctx.db.display()));
    }
    format!("{cmd} resume {job_id}")
}

/// Shows the finished job. Only output can fail here: the caller keeps the job's exit
/// code whatever happens to stdout.
fn report(
    ctx: &Ctx,
    o: &JobOutcome,
    history: &History,
    summary: &RunSummary,
) -> Result<(), CliError> {
    if matches!(o.status, JobStatus::Interrupted | JobStatus::Aborted) {
        errln!(
            "the job is not finished; to finish it: {}",
            resume_command(ctx, &o.job_id)
        );
    }
    if ctx.json() {
        let mut job = o
            .to_json(history)
            .map_err(CliError::history(history.path()))?;
        if let Some(m) = job.as_object_mut() {
            m.insert(
                "outcomes".into(),
                serde_json::to_value(summary.counts).unwrap_or_default(),
            );
        }
        print_json("job", job)?;
    } else {
        outln!(
            "\njob {} ({}): {} — {}: {}; {}, {}, {}, {}",
            o.bulk_id,
            o.job_id,
            o.status.as_str(),
            count(o.total, "user"),
            summary.counts.describe(true),
            count(o.requests, "request"),
            count(o.retries, "retry"),
            o.throttling(),
            crate::human::duration(o.elapsed)
        )?;
        if let Some(r) = &o.abort_reason {
            outln!("stopped: {r}")?;
        }
        if o.errors > 0 {
            outln!(
                "failed items: teamsync jobs show {} --status error   retry sheet: teamsync jobs export {} --format csv --failed-only",
                o.bulk_id, o.bulk_id
            )?;
        }
    }
    Ok(())
}

fn write_html_report(history: &History, bulk_id: i64, path: &Path) -> Result<(), CliError> {
    let hist = CliError::history(history.path());
    let job = history
        .get_job(&bulk_id.to_string())
        .map_err(&hist)?
        .ok_or_else(|| hist(crate::history::HistoryError::NoSuchJob(bulk_id.to_string())))?;
    let items: Vec<_> = history
        .job_items(bulk_id, &[])
        .map_err(&hist)?
        .iter()
        .map(super::jobs::report_item)
        .collect();
    let html = crate::report::html_report(&super::jobs::report_job(history, &job)?, &items)?;
    crate::files::write_private(path, html.as_bytes()).map_err(CliError::output(path))
}

/// Throttling answers (429, or 503 with Retry-After) the tenant gave this run, for the
/// summary, the webhook and `teamsync_last_run_throttled_responses`.
fn throttled_responses(outcome: &JobOutcome) -> u64 {
    outcome.throttled
}

/// Runs the pipeline with signal handling, then renders the job (or the failure), and
/// tells the outside world: the `-q` line, the metrics file, the webhook. A `--report` is
/// written for a failed run too, when it was recorded.
async fn execute(ctx: &Ctx, req: RunRequest, ui: &mut Ui<'_>, run: &RunArgs) -> CmdResult {
    let started = std::time::Instant::now();
    let stop = Stop::new();
    run::signals::install(stop.clone());
    let session = run::Session {
        config: &ctx.config,
        db: ctx.db.clone(),
        stop,
    };
    if let Some(path) = &run.report {
        super::plan::check_output(path)?;
    }
    let command = req.command.as_str();
    let tenant_hint = req
        .tenant
        .clone()
        .or_else(|| ctx.config.default_tenant.clone())
        .unwrap_or_default();
    match run::execute(&session, req, ui).await {
        Ok(out) => {
            let Some(outcome) = out.outcome else {
                // The review declined: the operator said no (terraform exits 1 too).
                return match ui.output_error.take() {
                    Some(e) => Err(e),
                    None => Ok(Exit::Incomplete),
                };
            };
            let exit = Exit::job(outcome.status, None);
            let mut report_written = None;
            if let Some(path) = &run.report {
                // The job ran: a report that cannot be written is told, not its exit code.
                match write_html_report(&out.history, outcome.bulk_id, path) {
                    Ok(()) => report_written = Some(path.as_path()),
                    Err(e) => errln!("warning: {}", super::render_error(&e)),
                }
            }
            let figures = RunFigures {
                requests: outcome.requests,
                retries: outcome.retries,
                throttled: throttled_responses(&outcome),
                elapsed: outcome.elapsed,
            };
            let summary = RunSummary::from_job(
                &out.history,
                outcome.bulk_id,
                command,
                figures,
                report_written,
            )
            .unwrap_or_else(|e| {
                RunSummary::unrecorded(command, &out.tenant, exit, e.to_string(), outcome.elapsed)
            });
            // Whatever happens to stdout now, the job's outcome is the exit code.
            if ctx.quiet && !ctx.json() {
                let mut line = summary.one_line();
                if matches!(outcome.status, JobStatus::Interrupted | JobStatus::Aborted) {
                    line.push_str(&format!(
                        "; to finish it: {}",
                        resume_command(ctx, &outcome.job_id)
                    ));
                }
                let _ = outln!("{}", stamped(&line));
            } else {
                if let (Some(path), false) = (report_written, ctx.json()) {
                    let _ = outln!("job report: {}", path.display());
                }
                let _ = report(ctx, &outcome, &out.history, &summary);
            }
            tell(ctx, &summary, Some(&out.history)).await;
            Ok(exit)
        }
        // Nothing pending is not a failure of `resume`.
        Err(e @ RunError::NothingToResume(_)) => {
            errln!("{e}");
            Ok(Exit::run_error(&e))
        }
        Err(e) => {
            let exit = Exit::run_error(&e);
            let recorded = match &e {
                RunError::Failed(f) => f.job.as_ref().map(|(id, _)| *id),
                _ => None,
            };
            let history = recorded.and_then(|_| History::open_for_reading(&ctx.db).ok());
            let mut report_written = None;
            if let (Some(path), Some(id), Some(h)) = (&run.report, recorded, &history) {
                match write_html_report(h, id, path) {
                    Ok(()) => report_written = Some(path.as_path()),
                    Err(w) => errln!("warning: {}", super::render_error(&w)),
                }
            }
            let figures = RunFigures {
                elapsed: started.elapsed(),
                ..RunFigures::default()
            };
            let tenant = match &e {
                RunError::Failed(f) => f.tenant.clone(),
                _ => tenant_hint,
            };
            let summary = match (recorded, &history) {
                (Some(id), Some(h)) => {
                    RunSummary::from_job(h, id, command, figures, report_written).ok()
                }
                _ => None,
            }
            .unwrap_or_else(|| {
                RunSummary::unrecorded(
                    command,
                    &tenant,
                    exit,
                    super::render_error(&e),
                    started.elapsed(),
                )
            });
            tell(ctx, &summary, history.as_ref()).await;
            if ctx.quiet && !ctx.json() {
                // The one line is the error's rendering: `main` is not to repeat it.
                errln!("{}", stamped(&format!("error: {}", summary.one_line())));
                return Ok(exit);
            }
            Err(render_run_error(ctx, e))
        }
    }
}

/// A line for a log file: with the time in front when nobody watches a terminal (cron,
/// systemd), as the log lines are.
pub(crate) fn stamped(line: &str) -> String {
    if std::io::stdout().is_terminal() {
        line.to_string()
    } else {
        format!(
            "{} {line}",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )
    }
}

/// The metrics file and the webhook, after a run. Neither changes the run's outcome: a
/// failure is a warning.
async fn tell(ctx: &Ctx, summary: &RunSummary, history: Option<&History>) {
    tell_config(&ctx.config, summary, history).await;
}

/// [`tell`] with only the config at hand (a tenant of an `--all` run, in its own task).
pub(crate) async fn tell_config(
    config: &crate::config::Config,
    summary: &RunSummary,
    history: Option<&History>,
) {
    if let Some(path) = &config.metrics_file {
        if let Err(e) = crate::notify::metrics::write(path, summary, history) {
            errln!(
                "warning: cannot write the metrics file {}: {e}",
                path.display()
            );
        }
    }
    let exit = Exit::from_code(summary.exit_code).unwrap_or(Exit::Aborted);
    if let Some(cfg) = config.notify.as_ref().filter(|n| n.wants(exit)) {
        if let Err(e) = crate::notify::webhook::send(cfg, summary).await {
            errln!(
                "warning: the run's notification was not delivered: {}",
                super::render_error(&e)
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn apply(
    ctx: &Ctx,
    sheet: Option<&Path>,
    plan_file: Option<&Path>,
    args: &PlanArgs,
    sheet_args: &SheetArgs,
    run: &RunArgs,
    yes: bool,
) -> CmdResult {
    let interactive = std::io::stdin().is_terminal();
    if !yes && !interactive {
        return Err(CliError::Invalid(
            "apply needs --yes when not run from a terminal (for schedulers use `teamsync sync`)"
                .into(),
        ));
    }
    let source = match (sheet, plan_file) {
        (_, Some(f)) => Source::SavedPlan(f.to_path_buf()),
        (Some(s), None) => Source::Sheet(sheet_input(ctx, s, args, sheet_args)),
        (None, None) => return Err(CliError::Invalid("give a sheet or --plan FILE".into())),
    };
    let req = RunRequest {
        command: Command::Apply,
        tenant: args.tenant.clone(),
        source,
        settings: settings(run)?,
    };
    let mut ui = Ui {
        ctx,
        show_plan: !ctx.json() && !ctx.quiet,
        ask: !yes,
        verify: !run.no_verify,
        rate: run.rate,
        concurrency: run.concurrency,
        output_error: None,
    };
    execute(ctx, req, &mut ui, run).await
}

pub(super) async fn sync(
    ctx: &Ctx,
    sheet: &Path,
    args: &PlanArgs,
    sheet_args: &SheetArgs,
    run: &RunArgs,
) -> CmdResult {
    let req = RunRequest {
        command: Command::Sync,
        tenant: args.tenant.clone(),
        source: Source::Sheet(sheet_input(ctx, sheet, args, sheet_args)),
        settings: settings(run)?,
    };
    let mut ui = Ui {
        ctx,
        show_plan: !ctx.json() && !ctx.quiet,
        ask: false,
        verify: !run.no_verify,
        rate: run.rate,
        concurrency: run.concurrency,
        output_error: None,
    };
    execute(ctx, req, &mut ui, run).await
}

pub(super) async fn resume(ctx: &Ctx, job: &str, run: &RunArgs) -> CmdResult {
    let req = RunRequest {
        command: Command::Resume,
        tenant: None,
        source: Source::Resume(job.to_string()),
        settings: settings(run)?,
    };
    let mut ui = Ui {
        ctx,
        show_plan: !ctx.json() && !ctx.quiet,
        ask: false,
        verify: !run.no_verify,
        rate: run.rate,
        concurrency: run.concurrency,
        output_error: None,
    };
    execute(ctx, req, &mut ui, run).await
}
