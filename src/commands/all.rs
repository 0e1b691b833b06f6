//! `sync --all`, `plan --all` and `validate --all`: every tenant that names its sheet
//! (or one shard of them, `--shard I/N`), up to `--parallel-tenants` at once, then one
//! summary table (or one `teamsync.tenants/v1` document) and the worst tenant's exit
//! code ([`Exit::fold`]).
//!
//! Each tenant is a run of its own through the same pipeline as a single one
//! (`crate::run`): its lock, its adaptive limiter, its job, its notification and metrics
//! samples. What fails for one tenant is that tenant's row; the others go on. Which
//! tenants take part, and the shard rule, is `crate::run::many`.

use super::{print_json, CliError, CmdResult, Ctx, Exit};
use crate::apply::Stop;
use crate::cli::{ManyArgs, PlanArgs, RunArgs, SheetArgs};
use crate::history::History;
use crate::notify::{RunFigures, RunSummary};
use crate::plan;
use crate::run::many::{self, Ran, Selected, Selection};
use crate::run::{self, Command, Report, RunError, RunOutput, RunRequest, RunSettings, Source};
use crate::template::TemplateSet;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// One tenant's line of the summary table and its entry of the JSON document.
struct Row {
    tenant: String,
    sheet: String,
    /// A job status (`success`, `failed`, …), `changes`/`no changes` for a plan,
    /// `valid`/`invalid` for a sheet, or `not started`.
    status: String,
    exit: Exit,
    /// The command's own columns ([`Kind::columns`]).
    cells: Vec<String>,
    /// Why it did not end done, on one line.
    note: Option<String>,
    /// The command's own keys of the tenant's JSON entry.
    json: Value,
}

/// Which command runs over the tenants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sync,
    Plan,
    Validate,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Sync => "sync",
            Kind::Plan => "plan",
            Kind::Validate => "validate",
        }
    }

    /// The table's columns between the status and the exit code.
    fn columns(self) -> &'static [&'static str] {
        match self {
            Kind::Sync => &[
                "job",
                "created",
                "updated",
                "disabled",
                "deleted",
                "unchanged",
                "failed",
                "requests",
                "time",
            ],
            Kind::Plan => &[
                "users",
                "create",
                "update",
                "disable",
                "delete",
                "unchanged",
                "operations",
            ],
            Kind::Validate => &["rows", "valid", "errors", "warnings"],
        }
    }
}

/// `--tenant` names one tenant, `--all` every one: not both.
fn refuse_tenant(args: &PlanArgs) -> Result<(), CliError> {
    match &args.tenant {
        Some(t) => Err(CliError::Invalid(format!(
            "--all runs every tenant that names a sheet; --tenant {t} names one: give one or the other"
        ))),
        None => Ok(()),
    }
}

fn select(ctx: &Ctx, many: &ManyArgs) -> Result<Selection, CliError> {
    let sel =
        many::select(&ctx.config, many.shard).map_err(|e| CliError::Invalid(e.to_string()))?;
    if sel.tenants.is_empty() && !ctx.json() {
        if let Some(shard) = sel.shard {
            errln!(
                "shard {shard} takes none of the {} that name a sheet; nothing to do",
                crate::human::count(sel.with_sheet as u64, "tenant")
            );
        }
    }
    Ok(sel)
}

fn parallel(ctx: &Ctx, many: &ManyArgs) -> usize {
    many.parallel_tenants
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(ctx.config.parallel_tenants)
        .max(1)
}

/// A tenant that never got its turn (a stop came first) or whose task was lost.
fn not_run<T>(kind: Kind, t: &Selected, ran: &Ran<T>) -> Row {
    let (status, note) = match ran {
        Ran::NotStarted => (
            "not started",
            "stopped before its turn; nothing was sent (run it again)".to_string(),
        ),
        Ran::Lost(m) => ("failed", m.clone()),
        Ran::Done(_) => ("failed", String::new()),
    };
    Row {
        tenant: t.name.clone(),
        sheet: t.sheet.display().to_string(),
        status: status.into(),
        exit: Exit::Aborted,
        cells: kind.columns().iter().map(|_| "-".to_string()).collect(),
        note: Some(note.clone()),
        json: json!({ "reason": note }),
    }
}

// ---- sync --all -------------------------------------------------------------------

/// What one tenant's sync came to.
struct Synced {
    summary: RunSummary,
    /// Why it did not end done.
    note: Option<String>,
    /// The job to `resume`, when it was interrupted or aborted.
    resume: Option<String>,
    /// A run stopped by its sheet or plan: the findings, as `validate`/`plan` print them.
    findings: Option<(String, Value)>,
}

/// One tenant's run as everyone is told about it (the same [`RunSummary`] as a single
/// run's: the `-q` line, the webhook, the metrics).
fn synced(
    history: &History,
    tenant: &str,
    result: Result<RunOutput, RunError>,
    started: Instant,
) -> Synced {
    use crate::history::JobStatus;
    let command = Command::Sync.as_str();
    match result {
        Ok(RunOutput {
            outcome: Some(o), ..
        }) => {
            let exit = Exit::job(o.status, None);
            let figures = RunFigures {
                requests: o.requests,
                retries: o.retries,
                throttled: o.throttled,
                elapsed: o.elapsed,
            };
            let summary = RunSummary::from_job(history, o.bulk_id, command, figures, None)
                .unwrap_or_else(|e| {
                    RunSummary::unrecorded(command, tenant, exit, e.to_string(), o.elapsed)
                });
            let note = match (&o.abort_reason, o.errors) {
                (Some(r), _) => Some(format!("stopped: {r}")),
                (None, 0) => None,
                (None, n) => Some(format!(
                    "{} failed: teamsync jobs show {} --status failed",
                    crate::human::count(n, "user"),
                    o.bulk_id
                )),
            };
            Synced {
                summary,
                note,
                resume: matches!(o.status, JobStatus::Interrupted | JobStatus::Aborted)
                    .then(|| o.job_id.clone()),
                findings: None,
            }
        }
        // `Proceed` never declines; were it to, nothing ran.
        Ok(RunOutput { outcome: None, .. }) => Synced {
            summary: RunSummary::unrecorded(
                command,
                tenant,
                Exit::Incomplete,
                "the plan was declined".into(),
                started.elapsed(),
            ),
            note: Some("the plan was declined".into()),
            resume: None,
            findings: None,
        },
        Err(e) => {
            let exit = Exit::run_error(&e);
            let mut message = super::render_error(&e);
            let recorded = match &e {
                RunError::Failed(f) => f.job.clone(),
                _ => None,
            };
            let figures = RunFigures {
                elapsed: started.elapsed(),
                ..RunFigures::default()
            };
            let summary = recorded
                .as_ref()
                .and_then(|(id, _)| RunSummary::from_job(history, *id, command, figures, None).ok())
                .unwrap_or_else(|| {
                    RunSummary::unrecorded(
                        command,
                        tenant,
                        exit,
                        message.clone(),
                        started.elapsed(),
                    )
                });
            if let Some((id, _)) = recorded {
                message.push_str(&format!(" (teamsync jobs show {id})"));
            }
            Synced {
                summary,
                note: Some(message),
                resume: None,
                findings: findings(tenant, &e),
            }
        }
    }
}

fn sync_row(t: &Selected, s: &Synced) -> Row {
    let m = &s.summary;
    let job = m.id.map_or("-".to_string(), |id| id.to_string());
    let c = &m.counts;
    let mut cells = vec![job];
    cells.extend(
        [
            c.created,
            c.updated,
            c.disabled,
            c.deleted,
            c.unchanged,
            c.failed,
            m.requests,
        ]
        .iter()
        .map(u64::to_string),
    );
    cells.push(crate::human::duration(Duration::from_secs_f64(
        m.duration_s,
    )));
    let mut entry = serde_json::to_value(m).unwrap_or_else(|_| json!({}));
    if let Some(o) = entry.as_object_mut() {
        // `tenant`, `status` and the exit code are the entry's own keys.
        for k in ["tenant", "status", "exit_code", "exit_meaning"] {
            o.remove(k);
        }
        if let Some((_, errors)) = &s.findings {
            o.insert("errors".into(), errors.clone());
        }
    }
    Row {
        tenant: t.name.clone(),
        sheet: t.sheet.display().to_string(),
        status: m.status.clone(),
        exit: Exit::from_code(m.exit_code).unwrap_or(Exit::Aborted),
        cells,
        note: s.note.clone(),
        json: entry,
    }
}

pub(super) async fn sync(
    ctx: &Ctx,
    args: &PlanArgs,
    sheet_args: &SheetArgs,
    run_args: &RunArgs,
    many: &ManyArgs,
) -> CmdResult {
    refuse_tenant(args)?;
    if run_args.report.is_some() {
        return Err(CliError::Invalid(
            "--report writes one job's report; with --all, export each tenant's job from the history \
             (teamsync jobs list, then jobs export JOB --format html)"
                .into(),
        ));
    }
    let sel = select(ctx, many)?;
    let started = Instant::now();
    let stop = Stop::new();
    run::signals::install(stop.clone());
    // One history for every tenant: proven writable once, one writer thread.
    let history = match run::open_history(&ctx.db).await {
        Ok(h) => h,
        Err(e) => {
            // Nobody's job can be recorded: every tenant is told so, as a single run is.
            for t in &sel.tenants {
                let s = RunSummary::unrecorded(
                    Command::Sync.as_str(),
                    &t.name,
                    Exit::run_error(&e),
                    super::render_error(&e),
                    started.elapsed(),
                );
                super::run::tell_config(&ctx.config, &s, None).await;
            }
            return Err(CliError::Run(e));
        }
    };
    let settings = RunSettings {
        // Bars of many tenants at once would overwrite each other.
        progress: false,
        ..super::run::settings(run_args)?
    };
    let config = Arc::new(ctx.config.clone());
    let input = super::run::sheet_input(ctx, Path::new(""), args, sheet_args);
    let progress = !ctx.json() && !ctx.quiet;
    let results = many::run_each(&sel.tenants, parallel(ctx, many), &stop, |t| {
        let (config, history, stop, settings) = (
            config.clone(),
            history.clone(),
            stop.clone(),
            settings.clone(),
        );
        let mut input = input.clone();
        input.path.clone_from(&t.sheet);
        let db = ctx.db.clone();
        // Log lines of the tenant's run (sheet warnings, retries) say which tenant. An
        // error-level span, so that its name shows at every log level, `-q` included.
        let span = tracing::error_span!("tenant", name = %t.name);
        async move {
            let t0 = Instant::now();
            let session = run::Session {
                config: &config,
                db,
                stop,
            };
            let req = RunRequest {
                command: Command::Sync,
                tenant: Some(t.name.clone()),
                source: Source::Sheet(input),
                settings,
            };
            let result = run::execute_shared(&session, &history, req, &mut run::Proceed).await;
            let done = synced(&history, &t.name, result, t0);
            super::run::tell_config(&config, &done.summary, Some(&history)).await;
            if progress {
                if let Some((text, _)) = &done.findings {
                    err!("{text}");
                }
                errln!("{}: {}", t.name, done.summary.one_line());
            }
            done
        }
        .instrument(span)
    })
    .await;

    let mut rows = Vec::new();
    let mut lines = Vec::new();
    for (t, ran) in &results {
        match ran {
            Ran::Done(s) => {
                if let Some(job) = &s.resume {
                    let cmd = super::run::resume_command(ctx, job);
                    if !ctx.json() {
                        errln!(
                            "tenant {}: the job is not finished; to finish it: {cmd}",
                            t.name
                        );
                    }
                }
                lines.push(s.summary.one_line());
                rows.push(sync_row(t, s));
            }
            other => {
                let row = not_run(Kind::Sync, t, other);
                lines.push(format!(
                    "sync on {}: {} — {}",
                    t.name,
                    row.status,
                    row.note.clone().unwrap_or_default()
                ));
                rows.push(row);
            }
        }
    }
    if ctx.quiet && !ctx.json() {
        let exit = Exit::fold(rows.iter().map(|r| r.exit));
        for l in &lines {
            let _ = outln!("{}", super::run::stamped(l));
        }
        let _ = outln!(
            "{}",
            super::run::stamped(&total_line(Kind::Sync, &sel, &rows, started.elapsed()))
        );
        return Ok(exit);
    }
    finish(
        ctx,
        Kind::Sync,
        &sel,
        rows,
        started.elapsed(),
        parallel(ctx, many),
    )
}

// ---- plan --all -------------------------------------------------------------------

pub(super) async fn plan(
    ctx: &Ctx,
    args: &PlanArgs,
    sheet_args: &SheetArgs,
    many: &ManyArgs,
    detailed_exitcode: bool,
) -> CmdResult {
    refuse_tenant(args)?;
    let sel = select(ctx, many)?;
    let started = Instant::now();
    let config = Arc::new(ctx.config.clone());
    let input = super::run::sheet_input(ctx, Path::new(""), args, sheet_args);
    // Reads only: nothing to stop gracefully, so a signal ends it as it ends `plan`.
    let stop = Stop::new();
    let results = many::run_each(&sel.tenants, parallel(ctx, many), &stop, |t| {
        let config = config.clone();
        let db = ctx.db.clone();
        let mut input = input.clone();
        input.path.clone_from(&t.sheet);
        let span = tracing::error_span!("tenant", name = %t.name);
        async move {
            let tenant = run::open_tenant(&config, Some(&t.name), None).await?;
            // As `plan`: an incremental refresh trusts the history's reads, records none.
            let history = db
                .exists()
                .then(|| crate::history::History::open_for_reading(&db))
                .and_then(|h| {
                    h.map_err(|e| tracing::warn!("{e}: every user's details are read"))
                        .ok()
                });
            let reads = history.as_ref().map(|history| run::Reads {
                history,
                record: false,
            });
            let r = run::plan_sheet(&config, &tenant, &input, reads).await;
            tenant.close().await;
            r
        }
        .instrument(span)
    })
    .await;
    let mut rows = Vec::new();
    for (t, ran) in &results {
        let row = match ran {
            Ran::Done(Ok(p)) => {
                let s = plan::summary(p);
                let changes = s.operations > 0;
                let cells = [
                    s.users,
                    s.creates,
                    s.updates,
                    s.disables,
                    s.deletes,
                    s.unchanged,
                    s.operations,
                ]
                .iter()
                .map(usize::to_string)
                .collect();
                Row {
                    tenant: t.name.clone(),
                    sheet: t.sheet.display().to_string(),
                    status: if changes { "changes" } else { "no changes" }.into(),
                    exit: if detailed_exitcode && changes {
                        Exit::ChangesPending
                    } else {
                        Exit::Done
                    },
                    cells,
                    note: plan::removals::removals(p)
                        .describe()
                        .map(|r| format!("the plan {r}")),
                    json: json!({
                        "summary": s,
                        "removals": plan::removals::removals(p),
                        "warnings": p.warnings,
                        "backend": p.backend,
                    }),
                }
            }
            Ran::Done(Err(e)) => failed_row(ctx, Kind::Plan, t, e),
            other => not_run(Kind::Plan, t, other),
        };
        rows.push(row);
    }
    finish(
        ctx,
        Kind::Plan,
        &sel,
        rows,
        started.elapsed(),
        parallel(ctx, many),
    )
}

/// What stopped a tenant's run at its sheet or plan, as text under the tenant's name (as
/// `validate` and `plan` print it) and as JSON.
fn findings(tenant: &str, e: &RunError) -> Option<(String, Value)> {
    let RunError::Failed(f) = e else { return None };
    let report = f.report.as_ref()?;
    let text = match report {
        Report::Sheet(v) => v.render_human(),
        Report::Plan(errors) => errors.iter().map(|d| format!("{d}\n")).collect(),
        Report::Drift(lines) => lines.iter().map(|l| format!("{l}\n")).collect(),
    };
    let tenant = crate::sheet::terminal_safe(tenant);
    Some((format!("tenant {tenant}:\n{text}"), report.to_json()))
}

/// A tenant whose plan could not be made: its findings go to stderr under its name (the
/// JSON entry holds them), its row says why.
fn failed_row(ctx: &Ctx, kind: Kind, t: &Selected, e: &RunError) -> Row {
    let found = findings(&t.name, e);
    if let (false, Some((text, _))) = (ctx.json(), &found) {
        err!("{text}");
    }
    let note = super::render_error(e);
    Row {
        tenant: t.name.clone(),
        sheet: t.sheet.display().to_string(),
        status: "failed".into(),
        exit: Exit::run_error(e),
        cells: kind.columns().iter().map(|_| "-".to_string()).collect(),
        json: json!({
            "reason_code": match e { RunError::Failed(f) => Some(f.kind.to_string()), _ => None },
            "reason": note,
            "errors": found.map(|(_, json)| json),
        }),
        note: Some(note),
    }
}

// ---- validate --all ---------------------------------------------------------------

pub(super) async fn validate(ctx: &Ctx, sheet_args: &SheetArgs, many: &ManyArgs) -> CmdResult {
    let sel = select(ctx, many)?;
    let started = Instant::now();
    let templates: Arc<TemplateSet> = Arc::new(super::validate::load_templates(ctx)?);
    let options = super::validate::sheet_options(ctx, sheet_args);
    let stop = Stop::new();
    let results = many::run_each(&sel.tenants, parallel(ctx, many), &stop, |t| {
        let (templates, options) = (templates.clone(), options.clone());
        async move {
            // Reading a sheet is CPU and disk work: off the runtime's threads.
            tokio::task::spawn_blocking(move || {
                crate::validate::check_files(&[t.sheet], &options, &templates)
            })
            .await
        }
    })
    .await;
    let mut rows = Vec::new();
    for (t, ran) in results {
        let row = match &ran {
            Ran::Done(Ok(v)) => {
                let ok = v.errors.is_empty();
                if !ctx.json() && (!ok || !v.warnings.is_empty()) {
                    let _ = out!("tenant {}:\n{}", t.name, v.render_human());
                }
                Row {
                    tenant: t.name.clone(),
                    sheet: t.sheet.display().to_string(),
                    status: if ok { "valid" } else { "invalid" }.into(),
                    exit: if ok { Exit::Done } else { Exit::Invalid },
                    cells: vec![
                        v.rows.to_string(),
                        v.valid.to_string(),
                        v.error_count().to_string(),
                        (v.warnings.len() as u64 + v.warnings_not_listed).to_string(),
                    ],
                    note: (!ok).then(|| {
                        format!(
                            "{} in the sheet",
                            crate::human::count(v.error_count(), "error")
                        )
                    }),
                    json: v.to_json(),
                }
            }
            Ran::Done(Err(e)) => not_run(
                Kind::Validate,
                &t,
                &Ran::<()>::Lost(format!("reading the sheet of {} failed: {e}", t.name)),
            ),
            Ran::NotStarted => not_run(Kind::Validate, &t, &Ran::<()>::NotStarted),
            Ran::Lost(m) => not_run(Kind::Validate, &t, &Ran::<()>::Lost(m.clone())),
        };
        rows.push(row);
    }
    finish(
        ctx,
        Kind::Validate,
        &sel,
        rows,
        started.elapsed(),
        parallel(ctx, many),
    )
}

// ---- output -----------------------------------------------------------------------

/// "4 tenants (shard 0/2 of 8 that name a sheet): 3 success, 1 failed; exit 2 (invalid
/// input, nothing sent)".
fn total_line(kind: Kind, sel: &Selection, rows: &[Row], elapsed: Duration) -> String {
    let exit = Exit::fold(rows.iter().map(|r| r.exit));
    let scope = match sel.shard {
        Some(s) => format!(" (shard {s} of {} that name a sheet)", sel.with_sheet),
        None => String::new(),
    };
    let statuses: Vec<String> = status_counts(rows)
        .into_iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    format!(
        "{} {}{scope}: {}; {} in {}; exit {exit}",
        kind.as_str(),
        crate::human::count(rows.len() as u64, "tenant"),
        if statuses.is_empty() {
            "none".to_string()
        } else {
            statuses.join(", ")
        },
        kind.as_str(),
        crate::human::duration(elapsed),
    )
}

/// Each status with how many tenants ended with it, in the order first seen.
fn status_counts(rows: &[Row]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for r in rows {
        match out.iter_mut().find(|(s, _)| *s == r.status) {
            Some((_, n)) => *n += 1,
            None => out.push((r.status.clone(), 1)),
        }
    }
    out
}

/// The summary table: tenant and status left-aligned, figures right-aligned.
fn table(kind: Kind, rows: &[Row]) -> String {
    let mut header: Vec<&str> = vec!["tenant", "status"];
    header.extend(kind.columns());
    header.push("exit");
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut l = vec![
                crate::sheet::terminal_safe(&r.tenant).into_owned(),
                r.status.clone(),
            ];
            l.extend(r.cells.iter().cloned());
            l.push(r.exit.code().to_string());
            l
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let render = |cells: Vec<&str>| {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            let w = widths[c];
            if c > 0 {
                s.push_str("  ");
            }
            if c < 2 {
                s.push_str(&format!("{cell:<w$}"));
            } else {
                s.push_str(&format!("{cell:>w$}"));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = render(header.clone()) + "\n";
    for l in &lines {
        out.push_str(&render(l.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Prints the table (or the document) and returns the folded exit code. Output that
/// cannot be written does not change it: the tenants' runs decide.
fn finish(
    ctx: &Ctx,
    kind: Kind,
    sel: &Selection,
    rows: Vec<Row>,
    elapsed: Duration,
    parallel: usize,
) -> CmdResult {
    let exit = Exit::fold(rows.iter().map(|r| r.exit));
    if ctx.json() {
        let tenants: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut o = serde_json::Map::new();
                o.insert("tenant".into(), json!(r.tenant));
                o.insert("sheet".into(), json!(r.sheet));
                o.insert("status".into(), json!(r.status));
                o.insert("exit_code".into(), json!(r.exit.code()));
                o.insert("exit_meaning".into(), json!(r.exit.meaning()));
                if let Value::Object(more) = &r.json {
                    for (k, v) in more {
                        o.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                Value::Object(o)
            })
            .collect();
        let statuses: serde_json::Map<String, Value> = status_counts(&rows)
            .into_iter()
            .map(|(s, n)| (s, json!(n)))
            .collect();
        let doc = json!({
            "command": kind.as_str(),
            "shard": sel.shard.map(|s| s.to_string()),
            "tenants_with_sheet": sel.with_sheet,
            "tenants_without_sheet": sel.without_sheet,
            "parallel_tenants": parallel,
            "exit_code": exit.code(),
            "exit_meaning": exit.meaning(),
            "duration_s": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
            "statuses": statuses,
            "tenants": tenants,
        });
        let _ = print_json("tenants", doc);
        return Ok(exit);
    }
    let mut text = String::new();
    if kind == Kind::Sync || kind == Kind::Plan || !rows.is_empty() {
        text.push('\n');
    }
    text.push_str(&table(kind, &rows));
    let notes: Vec<String> = rows
        .iter()
        .filter_map(|r| {
            r.note.as_ref().map(|n| {
                format!(
                    "  {}: {}",
                    crate::sheet::terminal_safe(&r.tenant),
                    n.lines().next().unwrap_or("")
                )
            })
        })
        .collect();
    if !notes.is_empty() {
        text.push('\n');
        text.push_str(&notes.join("\n"));
        text.push('\n');
    }
    text.push_str(&total_line(kind, sel, &rows, elapsed));
    let _ = outln!("{text}");
    Ok(exit)
}
