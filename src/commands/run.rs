//! `teamsync apply`, `sync` and `resume`: turn the flags into a [`run::RunRequest`], show
//! the plan (and ask on a terminal), then render the job or the failure. The pipeline
//! itself — lock, snapshot, plan, apply, record — is `crate::run`.

use super::{print_json, CliError, CmdResult, Ctx};
use crate::apply::{JobOutcome, Stop};
use crate::cli::{PlanArgs, RunArgs, SheetArgs};
use crate::connect::Tenant;
use crate::history::{History, JobStatus};
use crate::model::Upn;
use crate::plan::{self, Plan};
use crate::run::{self, Command, Report, RunError, RunRequest, RunSettings, SheetInput, Source};
use is_terminal::IsTerminal;
use std::io::Write;
use std::path::Path;

fn settings(run: &RunArgs) -> Result<RunSettings, CliError> {
    let only = run
        .only
        .iter()
        .map(|u| Upn::parse(u).map_err(|e| CliError::Invalid(format!("--only: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RunSettings {
        title: run.title.clone(),
        rate: run.rate,
        concurrency: run.concurrency,
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
    }
}

/// Prints what a failed run found (sheet errors, plan errors) the way `validate` and
/// `plan` print them, then turns the error into the CLI's, keeping its exit code. A run
/// recorded as a failed job says which.
pub(crate) fn render_run_error(ctx: &Ctx, e: RunError) -> CliError {
    if let RunError::Failed(f) = &e {
        match &f.report {
            Some(Report::Sheet(v)) if ctx.json() => print_json(&v.to_json()),
            Some(Report::Sheet(v)) => eprint!("{}", v.render_human()),
            Some(Report::Plan(errors)) if ctx.json() => {
                print_json(&serde_json::json!({ "errors": errors }))
            }
            Some(Report::Plan(errors)) => {
                for d in errors {
                    eprintln!("{d}");
                }
            }
            Some(Report::Drift(_)) | None => {}
        }
        if let Some((id, job_id)) = &f.job {
            eprintln!(
                "recorded as job {id} ({job_id}), status failed ({}): teamsync jobs show {id}",
                f.kind
            );
        }
    }
    cli_error(e)
}

/// A run error as the CLI's, keeping its exit code (nothing printed).
pub(crate) fn cli_error(e: RunError) -> CliError {
    let code = e.exit_code();
    match e {
        RunError::Config(c) => CliError::Config(c),
        e if code == super::exit::INVALID => CliError::Invalid(e.to_string()),
        e if code == super::exit::ABORTED => CliError::Aborted(e.to_string()),
        e => CliError::Other(anyhow::Error::new(e)),
    }
}

/// Requests the job will send: the status check, the writes as the connector groups
/// them, and one read-back per changed user unless `--no-verify`.
fn request_count(tenant: &Tenant, p: &Plan, verify: bool) -> usize {
    let writes: usize = p
        .users
        .iter()
        .map(|u| tenant.connector.steps(u).len())
        .sum();
    let changed = p.users.iter().filter(|u| !u.ops.is_empty()).count();
    1 + writes + if verify { changed } else { 0 }
}

/// Shows the plan; for `apply` on a terminal without `--yes`, asks.
struct Ui<'a> {
    ctx: &'a Ctx,
    show_plan: bool,
    ask: bool,
    verify: bool,
    rate: Option<f64>,
}

#[async_trait::async_trait]
impl run::Review for Ui<'_> {
    async fn review(&mut self, p: &Plan, tenant: &Tenant) -> bool {
        if self.show_plan {
            super::plan::show_plan(self.ctx, p);
        }
        if !self.ask || plan::summary(p).operations == 0 {
            return true;
        }
        let requests = request_count(tenant, p, self.verify);
        let rate = self.rate.unwrap_or(tenant.config.rate_per_second);
        let secs = if rate > 0.0 {
            requests as f64 / rate
        } else {
            0.0
        };
        let s = plan::summary(p);
        eprint!(
            "\nThis will change {} user(s) with {} operation(s) in {} request(s) on tenant {} \
             (about {:.0}s at {} req/s).\nApply? [y/N] ",
            s.users - s.unchanged,
            s.operations,
            requests,
            tenant.name,
            secs.ceil(),
            rate
        );
        std::io::stderr().flush().ok();
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
            eprintln!("nothing was applied");
        }
        yes
    }
}

/// The `teamsync resume` line for this job, with the `--config`/`--db` this run used.
fn resume_command(ctx: &Ctx, job_id: &str) -> String {
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

fn report(ctx: &Ctx, o: &JobOutcome, history: &History) -> CmdResult {
    if ctx.json() {
        let job = o
            .to_json(history)
            .map_err(|e| CliError::Other(anyhow::Error::new(e)))?;
        print_json(&job);
    } else {
        outln!(
            "\njob {} ({}): {} — {} users: {} succeeded ({} unchanged), {} failed; {} requests, {} retries, {:.1}s",
            o.bulk_id,
            o.job_id,
            o.status.as_str(),
            o.total,
            o.success,
            o.unchanged,
            o.errors,
            o.requests,
            o.retries,
            o.elapsed.as_secs_f64()
        );
        if let Some(r) = &o.abort_reason {
            outln!("stopped: {r}");
        }
        if o.errors > 0 {
            outln!(
                "failed items: teamsync jobs show {} --status error   retry sheet: teamsync jobs export {} --format csv --failed-only",
                o.bulk_id, o.bulk_id
            );
        }
    }
    if matches!(o.status, JobStatus::Interrupted | JobStatus::Aborted) {
        eprintln!(
            "the job is not finished; to finish it: {}",
            resume_command(ctx, &o.job_id)
        );
    }
    Ok(o.exit_code)
}

fn write_html_report(history: &History, bulk_id: i64, path: &Path) -> Result<(), CliError> {
    let fail = |e: String| CliError::Other(anyhow::anyhow!("job report {}: {e}", path.display()));
    let job = history
        .get_job(&bulk_id.to_string())
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("job not found".into()))?;
    let items: Vec<_> = history
        .job_items(bulk_id, &[])
        .map_err(|e| fail(e.to_string()))?
        .iter()
        .map(super::jobs::report_item)
        .collect();
    let html = crate::report::html_report(&super::jobs::report_job(&job), &items)
        .map_err(|e| fail(e.to_string()))?;
    std::fs::write(path, html).map_err(|e| fail(e.to_string()))
}

/// Runs the pipeline with signal handling, then renders the job (or the failure). A
/// `--report` is written for a failed run too, when it was recorded.
async fn execute(ctx: &Ctx, req: RunRequest, ui: &mut Ui<'_>, run: &RunArgs) -> CmdResult {
    let stop = Stop::new();
    run::signals::install(stop.clone());
    let session = run::Session {
        config: &ctx.config,
        db: ctx.db.clone(),
        stop,
    };
    match run::execute(&session, req, ui).await {
        Ok(out) => {
            let Some(outcome) = out.outcome else {
                return Ok(super::exit::OK);
            };
            if let Some(path) = &run.report {
                write_html_report(&out.history, outcome.bulk_id, path)?;
                if !ctx.json() {
                    outln!("job report: {}", path.display());
                }
            }
            report(ctx, &outcome, &out.history)
        }
        // Nothing pending is not a failure of `resume`.
        Err(e @ RunError::NothingToResume(_)) => {
            eprintln!("{e}");
            Ok(super::exit::OK)
        }
        Err(e) => {
            if let (Some(path), RunError::Failed(f)) = (&run.report, &e) {
                if let (Some((id, _)), Ok(h)) = (&f.job, History::open_for_reading(&ctx.db)) {
                    if let Err(w) = write_html_report(&h, *id, path) {
                        eprintln!("warning: {w}");
                    }
                }
            }
            Err(render_run_error(ctx, e))
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn apply(
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
        show_plan: true,
        ask: !yes,
        verify: !run.no_verify,
        rate: run.rate,
    };
    execute(ctx, req, &mut ui, run).await
}

pub async fn sync(
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
        show_plan: !ctx.json(),
        ask: false,
        verify: !run.no_verify,
        rate: run.rate,
    };
    execute(ctx, req, &mut ui, run).await
}

pub async fn resume(ctx: &Ctx, job: &str, run: &RunArgs) -> CmdResult {
    let req = RunRequest {
        command: Command::Resume,
        tenant: None,
        source: Source::Resume(job.to_string()),
        settings: settings(run)?,
    };
    let mut ui = Ui {
        ctx,
        show_plan: !ctx.json(),
        ask: false,
        verify: !run.no_verify,
        rate: run.rate,
    };
    execute(ctx, req, &mut ui, run).await
}
