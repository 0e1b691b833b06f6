//! `teamsync apply`, `sync` and `resume`: plan (or load a saved plan), confirm, execute,
//! and report the job.

use super::plan::{build_plan, open_tenant, plan_or_report, show_plan, snapshot};
use super::{print_json, CliError, CmdResult, Ctx};
use crate::apply::{self, ApplyOptions, JobOutcome, JobTarget};
use crate::cli::{PlanArgs, RunArgs, SheetArgs};
use crate::connect::Tenant;
use crate::history::History;
use crate::model::{JobKind, Upn};
use crate::plan::model::Plan;
use crate::plan::{self, PlanInput};
use is_terminal::IsTerminal;
use std::io::Write;
use std::path::Path;

fn apply_options(tenant: &Tenant, run: &RunArgs, title: String) -> Result<ApplyOptions, CliError> {
    let cfg = &tenant.config;
    let only = run
        .only
        .iter()
        .map(|u| Upn::parse(u).map_err(|e| CliError::Invalid(format!("--only: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let base = ApplyOptions::from_tenant(cfg);
    Ok(ApplyOptions {
        concurrency: run.concurrency.map_or(base.concurrency, |c| c.max(1)),
        verify: !run.no_verify,
        limit: run.limit,
        only,
        title,
        progress: std::io::stderr().is_terminal(),
        ..base
    })
}

fn open_history(ctx: &Ctx) -> Result<History, CliError> {
    if let Some(dir) = ctx.db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::Other(anyhow::anyhow!("cannot create {}: {e}", dir.display()))
        })?;
    }
    History::open(&ctx.db)
        .map_err(|e| CliError::Other(anyhow::anyhow!("job history {}: {e}", ctx.db.display())))
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

fn confirm(tenant: &Tenant, p: &Plan, requests: usize, rate: f64) -> Result<bool, CliError> {
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
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::Other(anyhow::anyhow!("reading the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn report(ctx: &Ctx, o: &JobOutcome, history: &History) -> CmdResult {
    if ctx.json() {
        let mut job = history
            .get_job(&o.bulk_id.to_string())
            .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?
            .map(|j| j.to_fusion_json())
            .unwrap_or_else(|| serde_json::json!({ "id": o.bulk_id, "job_id": o.job_id }));
        if let Some(m) = job.as_object_mut() {
            m.insert("exit_code".into(), o.exit_code.into());
            m.insert("requests".into(), o.requests.into());
            m.insert("retries".into(), o.retries.into());
            m.insert("throttled".into(), o.throttled.into());
            m.insert("elapsed_s".into(), o.elapsed.as_secs_f64().into());
        }
        print_json(&job);
    } else {
        outln!(
            "\njob {} ({}): {} — {} users: {} succeeded ({} unchanged), {} failed; {} requests, {} retries, {}, {:.1}s",
            o.bulk_id,
            o.job_id,
            o.status.as_str(),
            o.total,
            o.success,
            o.unchanged,
            o.errors,
            o.requests,
            o.retries,
            o.throttling(),
            o.elapsed.as_secs_f64()
        );
        if o.errors > 0 {
            outln!(
                "failed items: teamsync jobs show {} --status error   retry sheet: teamsync jobs export {} --format csv --failed-only",
                o.bulk_id, o.bulk_id
            );
        }
    }
    Ok(o.exit_code)
}

async fn execute(
    ctx: &Ctx,
    tenant: &Tenant,
    p: &Plan,
    run: &RunArgs,
    target: JobTarget,
    title: String,
) -> CmdResult {
    let history = open_history(ctx)?;
    let opts = apply_options(tenant, run, title)?;
    let outcome = apply::execute(p, tenant.connector.clone(), &history, target, &opts)
        .await
        .map_err(|e| match e.exit_code() {
            2 => CliError::Invalid(e.to_string()),
            3 => CliError::Aborted(e.to_string()),
            _ => CliError::Other(anyhow::anyhow!("{e}")),
        })?;
    if let Some(path) = &run.report {
        write_html_report(&history, outcome.bulk_id, path)?;
        if !ctx.json() {
            outln!("job report: {}", path.display());
        }
    }
    report(ctx, &outcome, &history)
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

/// A read-only backend (Live Platform) is audited with `plan` and never written: the
/// refusal comes before the snapshot, so a job that cannot run sends no request at all.
fn refuse_read_only(tenant: &Tenant, command: &str) -> Result<(), CliError> {
    if tenant.connector.capabilities().write {
        return Ok(());
    }
    Err(CliError::Invalid(format!(
        "tenant {t}: the {b} backend is read-only, so `{command}` cannot change it; nothing was sent. \
         Audit it with `teamsync plan SHEET --tenant {t} --detailed-exitcode` (exit 4 when the sheet and the tenant differ)",
        t = tenant.name,
        b = tenant.connector.backend(),
    )))
}

fn title_for(run: &RunArgs, source: &str) -> String {
    run.title.clone().unwrap_or_else(|| {
        let name = Path::new(source)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| source.to_string());
        format!("sync {name}")
    })
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
    let tenant_name = match plan_file {
        Some(f) => {
            let p =
                plan::load(f).map_err(|e| CliError::Invalid(format!("{}: {e}", f.display())))?;
            Some(p.tenant)
        }
        None => args.tenant.clone(),
    };
    if let (Some(t), Some(f)) = (&args.tenant, plan_file) {
        if Some(t) != tenant_name.as_ref() {
            return Err(CliError::Invalid(format!(
                "{} was made for tenant {:?}, not {t:?}",
                f.display(),
                tenant_name.unwrap_or_default()
            )));
        }
    }
    let tenant = open_tenant(ctx, tenant_name.as_deref(), run.rate).await?;
    let result = async {
        refuse_read_only(&tenant, "apply")?;
        let p = match (sheet, plan_file) {
            (_, Some(f)) => {
                let p = plan::load(f)
                    .map_err(|e| CliError::Invalid(format!("{}: {e}", f.display())))?;
                let specs: Vec<_> = p.users.iter().map(|u| u.desired.clone()).collect();
                let fresh = snapshot(ctx, &tenant, &specs).await?;
                if let Err(drift) = plan::check_drift(&p, &fresh) {
                    return Err(CliError::Invalid(format!(
                        "the tenant changed since {} was made; nothing was sent. Plan again.\n  {}",
                        f.display(),
                        drift.join("\n  ")
                    )));
                }
                p
            }
            (Some(s), None) => build_plan(ctx, &tenant, s, args, sheet_args).await?,
            (None, None) => return Err(CliError::Invalid("give a sheet or --plan FILE".into())),
        };
        show_plan(ctx, &p);
        let requests = request_count(&tenant, &p, !run.no_verify);
        if !yes && plan::summary(&p).operations > 0 {
            let rate = run.rate.unwrap_or(tenant.config.rate_per_second);
            if !confirm(&tenant, &p, requests, rate)? {
                eprintln!("nothing was applied");
                return Ok(super::exit::OK);
            }
        }
        let title = title_for(run, p.sources.first().map(String::as_str).unwrap_or("plan"));
        execute(ctx, &tenant, &p, run, JobTarget::New, title).await
    }
    .await;
    tenant.close().await;
    result
}

pub async fn sync(
    ctx: &Ctx,
    sheet: &Path,
    args: &PlanArgs,
    sheet_args: &SheetArgs,
    run: &RunArgs,
) -> CmdResult {
    let tenant = open_tenant(ctx, args.tenant.as_deref(), run.rate).await?;
    let result = async {
        refuse_read_only(&tenant, "sync")?;
        let p = build_plan(ctx, &tenant, sheet, args, sheet_args).await?;
        if !ctx.json() {
            show_plan(ctx, &p);
        }
        let title = title_for(run, &sheet.display().to_string());
        execute(ctx, &tenant, &p, run, JobTarget::New, title).await
    }
    .await;
    tenant.close().await;
    result
}

pub async fn resume(ctx: &Ctx, job: &str, run: &RunArgs) -> CmdResult {
    let history = open_history(ctx)?;
    let row = history
        .get_job(job)
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?
        .ok_or_else(|| CliError::Invalid(format!("no job {job:?} in {}", ctx.db.display())))?;
    let specs = history
        .pending_specs(row.id)
        .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?;
    if specs.is_empty() {
        eprintln!("job {} has no pending items; nothing to resume", row.id);
        return Ok(super::exit::OK);
    }
    drop(history);
    let tenant = open_tenant(ctx, Some(&row.tenant), run.rate).await?;
    let result = async {
        refuse_read_only(&tenant, "resume")?;
        let snap = snapshot(ctx, &tenant, &specs).await?;
        let input = PlanInput {
            tenant: &tenant.name,
            backend: tenant.connector.backend(),
            mode: crate::plan::model::Mode::Upsert,
            kind: if row.kind == JobKind::MsResourceAccounts.as_str() {
                JobKind::MsResourceAccounts
            } else {
                JobKind::MsUsers
            },
            sources: vec![row.source.clone()],
            source_sha256: row.source_sha256.clone(),
            specs: &specs,
            snapshot: &snap,
            capabilities: tenant.connector.capabilities(),
            allow_removals: None,
        };
        let p = plan_or_report(ctx, input)?;
        if !ctx.json() {
            show_plan(ctx, &p);
        }
        execute(
            ctx,
            &tenant,
            &p,
            run,
            JobTarget::Resume(row.id),
            row.title.clone(),
        )
        .await
    }
    .await;
    tenant.close().await;
    result
}
