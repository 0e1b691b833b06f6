//! `teamsync jobs …`: review, export, revert and prune the job history.

use super::plan::show_plan;
use super::run::render_run_error;
use super::{print_json, CliError, CmdResult, Ctx, Exit};
use crate::cli::{ExportFormat, JobsCommand};
use crate::history::queries::jobs_page_json;
use crate::history::{History, ItemRow, JobFilter, JobRow, JobStatus};
use crate::model::JobKind;
use crate::plan::model::{Mode, UserPlan};
use crate::plan::{self, revert, PlanInput};
use crate::report::{self, sheet_out, Outcomes, ReportItem, ReportJob};
use crate::run;

fn no_history(ctx: &Ctx) -> CliError {
    CliError::Invalid(format!(
        "no job history at {} (run a sync first, or pass --db)",
        ctx.db.display()
    ))
}

/// Opens the history to read it: read-only when it cannot be written (a read-only file
/// or file system), so a history someone may only review still answers.
fn open(ctx: &Ctx) -> Result<History, CliError> {
    if !ctx.db.exists() {
        return Err(no_history(ctx));
    }
    History::open_for_reading(&ctx.db).map_err(CliError::history(&ctx.db))
}

/// Opens the history to change it (`jobs prune`).
fn open_writable(ctx: &Ctx) -> Result<History, CliError> {
    if !ctx.db.exists() {
        return Err(no_history(ctx));
    }
    History::open(&ctx.db).map_err(CliError::history(&ctx.db))
}

fn find_job(h: &History, job: &str) -> Result<JobRow, CliError> {
    h.get_job(job)
        .map_err(CliError::history(h.path()))?
        .ok_or_else(|| CliError::Invalid(format!("no job {job:?} in the history")))
}

fn parse_date(s: &str, what: &str) -> Result<chrono::DateTime<chrono::Utc>, CliError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| CliError::Invalid(format!("{what} {s:?}: expected YYYY-MM-DD or RFC 3339")))
}

/// The words `jobs show --status` takes (comma-separated), each the outcomes it keeps.
/// `failed` and `error` are one (reports say Failed, Fusion's items say error); `success`
/// is every change that went through; the outcome words of the reports pick one kind.
const ITEM_STATUS_WORDS: [(&str, &[&str]); 11] = [
    ("failed", &["failed"]),
    ("error", &["failed"]),
    ("success", &["created", "updated", "disabled", "deleted"]),
    ("created", &["created"]),
    ("updated", &["updated"]),
    ("disabled", &["disabled"]),
    ("deleted", &["deleted"]),
    ("unchanged", &["unchanged"]),
    ("pending", &["pending"]),
    ("running", &["pending"]),
    ("unfinished", &["pending"]),
];

/// The item outcomes (`ReportItem::outcome`) `--status` keeps; empty: all.
fn parse_statuses(s: Option<&str>) -> Result<Vec<&'static str>, CliError> {
    let Some(s) = s else { return Ok(vec![]) };
    let mut keep = Vec::new();
    for word in s.split(',').map(|w| w.trim().to_ascii_lowercase()) {
        let (_, outcomes) = ITEM_STATUS_WORDS
            .iter()
            .find(|(w, _)| *w == word)
            .ok_or_else(|| {
                CliError::Invalid(format!(
                    "--status {word:?}: expected one of {}",
                    ITEM_STATUS_WORDS.map(|(w, _)| w).join(", ")
                ))
            })?;
        keep.extend_from_slice(outcomes);
    }
    Ok(keep)
}

/// `jobs list --status`: a job status; `failed` is the job status of that name.
fn parse_job_status(s: &str) -> Result<JobStatus, CliError> {
    JobStatus::parse(&s.trim().to_ascii_lowercase()).ok_or_else(|| {
        CliError::Invalid(format!(
            "--status {s:?}: expected one of {}",
            JobStatus::ALL.map(|s| s.as_str()).join(", ")
        ))
    })
}

/// A job's items as the reports see them, kept to the outcomes `keep` names (all when
/// empty).
fn items_of(h: &History, j: &JobRow, keep: &[&str]) -> Result<Vec<ReportItem>, CliError> {
    Ok(h.job_items(j.id, &[])
        .map_err(CliError::history(h.path()))?
        .iter()
        .map(report_item)
        .filter(|i| keep.is_empty() || keep.contains(&i.outcome()))
        .collect())
}

/// A job for the report renderers, with its items counted by outcome from the history.
pub(crate) fn report_job(h: &History, j: &JobRow) -> Result<ReportJob, CliError> {
    let mut outcomes = Outcomes::default();
    for (status, action, n) in h.item_outcomes(j.id).map_err(CliError::history(h.path()))? {
        outcomes.add(&status, action.as_deref(), n);
    }
    Ok(ReportJob {
        id: j.id,
        job_id: j.job_id.clone(),
        title: j.title.clone(),
        kind: j.kind.clone(),
        tenant: j.tenant.clone(),
        source: j.source.clone(),
        status: j.status.as_str().to_string(),
        total_count: j.total_count,
        success_count: j.success_count,
        error_count: j.error_count,
        unchanged_count: j.unchanged_count,
        created_on: j.created_on.clone(),
        updated_on: j.updated_on.clone(),
        finished_on: j.finished_on.clone(),
        host: j.host.clone(),
        os_user: j.os_user.clone(),
        teamsync_version: j.teamsync_version.clone(),
        reason: j.reason.clone(),
        problems: problems(j),
        outcomes,
        backend_bulks: h
            .backend_bulks(j.id)
            .map_err(CliError::history(h.path()))?
            .into_iter()
            .map(|b| crate::report::model::BackendJob {
                title: b.title,
                id: b.backend_id,
                job_id: b.backend_job_id,
                items: b.items,
                failed: b.failed,
            })
            .collect(),
    })
}

/// A failed job's stored diagnostics, one line each (`file:row [column]: message`).
fn problems(j: &JobRow) -> Vec<String> {
    let Some(errors) = j.errors.as_ref().and_then(|e| e.as_array()) else {
        return Vec::new();
    };
    errors
        .iter()
        .map(
            |e| match serde_json::from_value::<crate::model::Diagnostic>(e.clone()) {
                Ok(d) => d.to_string(),
                Err(_) => e.as_str().map_or_else(|| e.to_string(), str::to_string),
            },
        )
        .collect()
}

pub(crate) fn report_item(i: &ItemRow) -> ReportItem {
    ReportItem {
        id: i.id,
        upn: i.upn.clone(),
        status: i.status.as_str().to_string(),
        data: i.data.clone(),
        changes: i.changes.clone(),
        before: i.before.clone(),
        error_code: i.error_code.clone(),
        error_reason: i.error_reason.clone(),
        attempts: i.attempts,
        created_on: i.created_on.clone(),
        updated_on: i.updated_on.clone(),
        note: i.note.clone(),
        action: i
            .plan
            .as_ref()
            .and_then(|p| p.get("action"))
            .and_then(|a| a.as_str())
            .map(str::to_string),
    }
}

pub(super) async fn run(ctx: &Ctx, cmd: JobsCommand) -> CmdResult {
    match cmd {
        JobsCommand::List {
            tenant,
            status,
            since,
            until,
            page,
            page_size,
        } => {
            let h = open(ctx)?;
            let filter = JobFilter {
                tenant,
                status: status.as_deref().map(parse_job_status).transpose()?,
                since: since
                    .as_deref()
                    .map(|s| parse_date(s, "--since"))
                    .transpose()?,
                until: until
                    .as_deref()
                    .map(|s| parse_date(s, "--until"))
                    .transpose()?,
            };
            let page = u32::try_from(page).unwrap_or(u32::MAX).max(1);
            let page_size = u32::try_from(page_size)
                .unwrap_or(u32::MAX)
                .clamp(1, 10_000);
            let (rows, total) = h
                .list_jobs(&filter, page, page_size)
                .map_err(CliError::history(h.path()))?;
            if ctx.json() {
                print_json("jobs-page", jobs_page_json(&rows, page, page_size, total))?;
            } else {
                outln!(
                    "{:>5}  {:<26} {:<20} {:<8} {:<11} {:>6} {:>6} {:>6}  TITLE",
                    "ID",
                    "JOB ID",
                    "CREATED (UTC)",
                    "TENANT",
                    "STATUS",
                    "TOTAL",
                    "OK",
                    "FAILED"
                )?;
                for j in &rows {
                    let why = match (j.status, j.reason_code.as_deref()) {
                        (
                            JobStatus::Failed | JobStatus::Interrupted | JobStatus::Aborted,
                            Some(c),
                        ) => {
                            format!(" [{c}]")
                        }
                        _ => String::new(),
                    };
                    outln!(
                        "{:>5}  {:<26} {:<20} {:<8} {:<11} {:>6} {:>6} {:>6}  {}{}",
                        j.id,
                        j.job_id,
                        j.created_on
                            .get(..19)
                            .unwrap_or(&j.created_on)
                            .replace('T', " "),
                        j.tenant,
                        j.status.as_str(),
                        j.total_count,
                        j.success_count,
                        j.error_count,
                        j.title,
                        why
                    )?;
                }
                let pages = total.div_ceil(u64::from(page_size));
                errln!("page {page} of {pages} ({total} jobs)");
            }
            Ok(Exit::Done)
        }
        JobsCommand::Show { job, status } => {
            let h = open(ctx)?;
            let j = find_job(&h, &job)?;
            let keep = parse_statuses(status.as_deref())?;
            let items = items_of(&h, &j, &keep)?;
            let rj = report_job(&h, &j)?;
            if ctx.json() {
                let mut v = report::job_json(&rj, &items);
                if let Some(o) = v.as_object_mut() {
                    o.insert("throttled_count".into(), j.throttled_count.into());
                    let rate = j.settled_rate.map(|r| (r * 10.0).round() / 10.0);
                    o.insert("settled_rate".into(), serde_json::json!(rate));
                }
                print_json("job-details", v)?;
            } else {
                out!("{}", render_job(&j, &rj, &items))?;
            }
            Ok(Exit::Done)
        }
        JobsCommand::Export {
            job,
            format,
            out,
            failed_only,
        } => {
            let h = open(ctx)?;
            let j = find_job(&h, &job)?;
            let keep: &[&str] = if failed_only { &["failed"] } else { &[] };
            let items = items_of(&h, &j, keep)?;
            let rj = report_job(&h, &j)?;
            let bytes = match format {
                ExportFormat::Csv => report::items_csv(&rj, &items, failed_only),
                ExportFormat::Xlsx => {
                    if out.is_none() {
                        return Err(CliError::Invalid("--format xlsx needs --out FILE".into()));
                    }
                    report::items_xlsx(&rj, &items, failed_only)?
                }
                ExportFormat::Json => {
                    let doc = super::schema::tag("job-details", report::job_json(&rj, &items));
                    let mut s = serde_json::to_vec_pretty(&doc).unwrap_or_default();
                    s.push(b'\n');
                    s
                }
                ExportFormat::Html => report::html_report(&rj, &items)?.into_bytes(),
            };
            sheet_out::write_out(out.as_deref(), &bytes)?;
            if let Some(o) = &out {
                errln!(
                    "job {} ({} items) written to {}",
                    j.id,
                    items.len(),
                    o.display()
                );
            }
            Ok(Exit::Done)
        }
        JobsCommand::Revert { job, out } => revert_job(ctx, &job, out.as_deref()).await,
        JobsCommand::Prune {
            older_than,
            dry_run,
            yes,
        } => prune(ctx, older_than, dry_run, yes).await,
        JobsCommand::Merge { sources } => merge(ctx, &sources),
    }
}

/// `jobs merge`: each source into the configured history (`--db`), one transaction each,
/// saying what each brought. A refused source stops the command; the sources before it
/// stay merged, and merging them again adds nothing.
fn merge(ctx: &Ctx, sources: &[std::path::PathBuf]) -> CmdResult {
    use crate::history::merge::Target;
    use crate::human::count;
    let mut target = Target::open(&ctx.db)?;
    let mut merged = Vec::new();
    for source in sources {
        let m = target.merge(source)?;
        if !ctx.json() {
            errln!(
                "{}: {} added ({}), {} brought up to date, {} already here",
                source.display(),
                count(m.added, "job"),
                count(m.items, "item"),
                m.updated,
                m.unchanged
            );
            for (taken, new) in &m.renamed {
                errln!("  job_id {taken} was another job's here: merged as {new}");
            }
        }
        merged.push(m);
    }
    let jobs = target.job_count()?;
    if ctx.json() {
        print_json(
            "jobs-merge",
            serde_json::json!({
                "history": ctx.db.display().to_string(),
                "jobs": jobs,
                "sources": merged,
            }),
        )?;
    } else {
        outln!(
            "{} now holds {}: teamsync jobs list",
            ctx.db.display(),
            count(jobs, "job")
        )?;
    }
    Ok(Exit::Done)
}

/// `jobs prune`: lists what goes, asks on a terminal (or takes `--yes`), deletes exactly
/// the jobs it listed. Ids of deleted jobs are never handed out again.
async fn prune(ctx: &Ctx, older_than: u64, dry_run: bool, yes: bool) -> CmdResult {
    use crate::human::count;
    use is_terminal::IsTerminal;
    let days = u32::try_from(older_than).unwrap_or(u32::MAX);
    let interactive = std::io::stdin().is_terminal();
    if !dry_run && !yes && !interactive {
        return Err(CliError::Invalid(
            "jobs prune needs --yes when not run from a terminal (or --dry-run to list what it would delete)"
                .into(),
        ));
    }
    let h = if dry_run {
        open(ctx)?
    } else {
        open_writable(ctx)?
    };
    let jobs = h.prunable(days).map_err(CliError::history(h.path()))?;
    let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    let older = format!("older than {}", count(days, "day"));
    let report = |deleted: Option<usize>| -> Result<(), CliError> {
        if ctx.json() {
            return print_json(
                "jobs-prune",
                serde_json::json!({
                    "dry_run": dry_run,
                    "older_than_days": days,
                    "jobs": jobs.iter().map(|j| serde_json::json!({
                        "id": j.id, "job_id": j.job_id, "title": j.title, "tenant": j.tenant,
                        "status": j.status.as_str(), "updated_on": j.updated_on,
                    })).collect::<Vec<_>>(),
                    "pruned": deleted.unwrap_or(0),
                }),
            );
        }
        match deleted {
            None => outln!(
                "{} {older} would be deleted (dry run)",
                count(jobs.len(), "job")
            ),
            Some(n) => outln!("{} {older} deleted", count(n, "job")),
        }
    };
    if jobs.is_empty() {
        if !ctx.json() {
            errln!("no job {older}");
        }
        report(if dry_run { None } else { Some(0) })?;
        return Ok(Exit::Done);
    }
    if !ctx.json() {
        for j in &jobs {
            let line = format!(
                "{:>5}  {:<26} {:<20} {:<8} {:<11}  {}",
                j.id,
                j.job_id,
                j.updated_on
                    .get(..19)
                    .unwrap_or(&j.updated_on)
                    .replace('T', " "),
                j.tenant,
                j.status.as_str(),
                j.title
            );
            outln!("{line}")?;
        }
    }
    if dry_run {
        report(None)?;
        return Ok(Exit::Done);
    }
    if !yes {
        err!(
            "Delete these {} and their items? Their ids are never reused. [y/N] ",
            count(jobs.len(), "job")
        );
        let mut line = String::new();
        let said_yes = std::io::stdin().read_line(&mut line).is_ok()
            && matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes");
        if !said_yes {
            errln!("nothing was deleted");
            return Ok(Exit::Incomplete);
        }
    }
    let n = h
        .delete_jobs(ids)
        .await
        .map_err(CliError::history(h.path()))?;
    report(Some(n))?;
    Ok(Exit::Done)
}

fn render_job(j: &JobRow, rj: &ReportJob, items: &[ReportItem]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "job {} ({}) — {}", j.id, j.job_id, j.title);
    let _ = writeln!(
        s,
        "tenant {}  kind {}  status {}  source {}",
        j.tenant,
        j.kind,
        j.status.as_str(),
        j.source
    );
    let _ = writeln!(
        s,
        "created {}  finished {}  by {}@{} (teamsync {})",
        j.created_on,
        j.finished_on.as_deref().unwrap_or("-"),
        j.os_user,
        j.host,
        j.teamsync_version
    );
    if let Some(r) = &j.reason {
        let code = j.reason_code.as_deref().unwrap_or("-");
        let _ = writeln!(s, "{} ({code}): {r}", j.status.as_str());
    }
    for p in problems(j) {
        let _ = writeln!(s, "  {p}");
    }
    let _ = writeln!(
        s,
        "{}: {}",
        crate::human::count(j.total_count, "item"),
        rj.outcomes.describe(false)
    );
    if !rj.backend_bulks.is_empty() {
        let _ = writeln!(
            s,
            "sent as {} (the tenant's own bulk history):",
            crate::human::count(rj.backend_bulks.len(), "bulk request")
        );
        for b in &rj.backend_bulks {
            let _ = writeln!(s, "  {}", b.describe());
        }
    }
    if j.throttled_count > 0 || j.settled_rate.is_some() {
        let settled = j
            .settled_rate
            .map(|r| format!(", settled at {r:.1} req/s"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "throttled: {} answers 429 (or 503 with Retry-After){settled}",
            j.throttled_count
        );
    }
    s.push('\n');
    for i in items {
        let _ = write!(s, "{:<10} {}", i.outcome(), i.upn);
        if let Some(changes) = i.changes.as_array().filter(|c| !c.is_empty()) {
            let parts: Vec<String> = changes
                .iter()
                .map(|c| {
                    let field = c.get("field").and_then(|f| f.as_str()).unwrap_or("?");
                    format!("{field}: {} → {}", short(c.get("old")), short(c.get("new")))
                })
                .collect();
            let _ = write!(s, "  [{}]", parts.join("; "));
        }
        if let Some(n) = &i.note {
            let _ = write!(s, "\n           note: {n}");
        }
        if let Some(r) = &i.error_reason {
            let _ = write!(
                s,
                "\n           error {}: {r}",
                i.error_code.as_deref().unwrap_or("-")
            );
        }
        s.push('\n');
    }
    s
}

fn short(v: Option<&serde_json::Value>) -> String {
    match v {
        None | Some(serde_json::Value::Null) => "(none)".into(),
        Some(serde_json::Value::String(s)) if s.is_empty() => "(none)".into(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    }
}

/// Builds a plan that puts back what `job` may have changed, against the tenant as it is
/// now, and shows (and optionally saves) it for `apply --plan`. "May have changed": the
/// items that succeeded, those the tenant acknowledged part of (a user created before a
/// later step failed), and those whose request went out without a recorded answer (a
/// killed run). Each goes back to the `before` the job stored at plan time; planned
/// against the tenant as it is now, a field that was never changed costs nothing.
async fn revert_job(ctx: &Ctx, job: &str, out: Option<&std::path::Path>) -> CmdResult {
    if let Some(out) = out {
        super::plan::check_output(out)?;
    }
    let h = open(ctx)?;
    let j = find_job(&h, job)?;
    let items = h
        .job_items(j.id, &[])
        .map_err(CliError::history(h.path()))?;
    let applied: Vec<UserPlan> = items
        .iter()
        .filter(|i| i.may_have_changed_tenant())
        .filter_map(|i| i.plan.clone())
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::History {
            path: h.path().to_path_buf(),
            source: crate::history::HistoryError::Corrupt(format!(
                "job {}: stored plan unreadable: {e}",
                j.id
            )),
        })?;
    let (specs, warnings) =
        revert::revert_specs(&applied).map_err(|e| CliError::Invalid(e.to_string()))?;
    for w in &warnings {
        errln!("warning: {w}");
    }
    drop(h);
    if specs.is_empty() {
        errln!("job {} changed nothing that could be reverted", j.id);
        return Ok(Exit::Done);
    }
    let tenant = run::open_tenant(&ctx.config, Some(&j.tenant), None)
        .await
        .map_err(|e| render_run_error(ctx, e))?;
    let result = async {
        let kind = if j.kind == JobKind::MsResourceAccounts.as_str() {
            JobKind::MsResourceAccounts
        } else {
            JobKind::MsUsers
        };
        let snap = run::snapshot(&tenant, &specs, kind)
            .await
            .map_err(|e| render_run_error(ctx, e))?;
        let input = PlanInput {
            tenant: &tenant.name,
            mode: Mode::Upsert,
            kind,
            sources: vec![format!("revert of job {}", j.id)],
            source_sha256: j.source_sha256.clone(),
            specs: &specs,
            snapshot: &snap,
            profile: tenant.connector.profile(),
            allow_removals: None,
        };
        let p = run::make_plan(input).map_err(|e| render_run_error(ctx, e))?;
        show_plan(ctx, &p)?;
        if let Some(out) = out {
            plan::save(&p, out).map_err(CliError::output(out))?;
            if !ctx.json() {
                errln!(
                    "revert plan saved to {} (apply it with: teamsync apply --plan {})",
                    out.display(),
                    out.display()
                );
            }
        }
        Ok(Exit::Done)
    }
    .await;
    tenant.close().await;
    result
}
