//! `teamsync plan`, and the sheet → snapshot → plan pipeline shared with apply and sync.

use super::validate::read_sheets;
use super::{exit, print_json, CliError, CmdResult, Ctx};
use crate::cli::{ModeArg, PlanArgs, SheetArgs};
use crate::connect::Tenant;
use crate::model::{Diagnostic, JobKind, Snapshot, UserSpec};
use crate::plan::model::{Mode, Plan};
use crate::plan::{self, PlanInput};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub(crate) fn mode(m: ModeArg) -> Mode {
    match m {
        ModeArg::Upsert => Mode::Upsert,
        ModeArg::Mirror => Mode::Mirror,
    }
}

pub(crate) async fn open_tenant(
    ctx: &Ctx,
    name: Option<&str>,
    rate: Option<f64>,
) -> Result<Tenant, CliError> {
    let (name, cfg) = ctx.config.tenant(name)?;
    Tenant::open(&name, cfg, rate)
        .await
        .map_err(|e| CliError::Aborted(e.to_string()))
}

/// Rows the backend's own rules refuse (PortSIP's reserved account names) stop the run
/// before any request is sent, with every problem the sheet has that needs no tenant data
/// ([`plan::check_rows`]) as plan errors (exit 2). Otherwise the planner reports those
/// problems together with the ones only the tenant can tell.
pub(crate) fn check_backend_rules(
    ctx: &Ctx,
    tenant: &Tenant,
    specs: &[UserSpec],
    kind: JobKind,
) -> Result<(), CliError> {
    let profile = tenant.connector.profile();
    if specs.iter().all(|s| profile.row_problems(s).is_empty()) {
        return Ok(());
    }
    let errors = plan::check_rows(specs, kind, &profile);
    report_plan_errors(ctx, &errors);
    Err(CliError::Invalid(format!(
        "{} plan error(s); nothing was sent",
        errors.len()
    )))
}

fn report_plan_errors(ctx: &Ctx, errors: &[Diagnostic]) {
    if ctx.json() {
        print_json(&serde_json::json!({ "errors": errors }));
    } else {
        for d in errors {
            eprintln!("{d}");
        }
    }
}

/// Reads what the plan needs from the tenant; auth failures abort (exit 3). The
/// backend's own row rules are checked first, so a row it refuses costs no request.
pub(crate) async fn snapshot(
    ctx: &Ctx,
    tenant: &Tenant,
    specs: &[UserSpec],
    kind: JobKind,
) -> Result<Snapshot, CliError> {
    check_backend_rules(ctx, tenant, specs, kind)?;
    let detail = plan::detail_upns(specs, &tenant.connector.profile());
    let t0 = std::time::Instant::now();
    let snap = tenant
        .connector
        .snapshot(&detail, false)
        .await
        .map_err(|e| connector_failure(&tenant.name, e))?;
    tracing::info!(
        "snapshot of {}: {} users, {} requests in {:.1}s",
        tenant.name,
        snap.users.len(),
        snap.requests,
        t0.elapsed().as_secs_f64()
    );
    Ok(snap)
}

pub(crate) fn connector_failure(tenant: &str, e: crate::connector::ConnectorError) -> CliError {
    use crate::connector::ConnectorError as E;
    match e {
        E::Auth { .. } => CliError::Aborted(format!("tenant {tenant}: {e}")),
        E::Config(_) | E::Unsupported(_) => CliError::Invalid(format!("tenant {tenant}: {e}")),
        _ => CliError::Aborted(format!("tenant {tenant}: {e}")),
    }
}

pub(crate) fn sources_sha256(paths: &[PathBuf]) -> Result<String, CliError> {
    let mut h = Sha256::new();
    for p in paths {
        let bytes =
            std::fs::read(p).map_err(|e| CliError::Invalid(format!("{}: {e}", p.display())))?;
        h.update(Sha256::digest(&bytes));
    }
    Ok(hex::encode(h.finalize()))
}

/// Validated sheet + fresh snapshot → plan. Plan errors are printed and exit 2.
pub(crate) async fn build_plan(
    ctx: &Ctx,
    tenant: &Tenant,
    sheet: &Path,
    args: &PlanArgs,
    sheet_args: &SheetArgs,
) -> Result<Plan, CliError> {
    let paths = vec![sheet.to_path_buf()];
    let v = read_sheets(ctx, &paths, sheet_args)?;
    let snap = snapshot(ctx, tenant, &v.specs, v.kind).await?;
    let input = PlanInput {
        tenant: &tenant.name,
        mode: mode(args.mode),
        kind: v.kind,
        sources: paths.iter().map(|p| p.display().to_string()).collect(),
        source_sha256: sources_sha256(&paths)?,
        specs: &v.specs,
        snapshot: &snap,
        profile: tenant.connector.profile(),
        allow_removals: args.allow_removals,
    };
    plan_or_report(ctx, input)
}

pub(crate) fn plan_or_report(ctx: &Ctx, input: PlanInput) -> Result<Plan, CliError> {
    match plan::make_plan(input) {
        Ok(p) => Ok(p),
        Err(errs) => {
            report_plan_errors(ctx, &errs.0);
            Err(CliError::Invalid(format!(
                "{} plan error(s); nothing was sent",
                errs.0.len()
            )))
        }
    }
}

pub(crate) fn show_plan(ctx: &Ctx, p: &Plan) {
    if ctx.json() {
        print_json(&plan::render_json(p));
    } else {
        out!("{}", plan::render_human(p, color_stdout()));
    }
}

pub(crate) fn color_stdout() -> bool {
    use is_terminal::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub async fn run(
    ctx: &Ctx,
    sheet: &Path,
    args: &PlanArgs,
    sheet_args: &SheetArgs,
    out: Option<&Path>,
    detailed_exitcode: bool,
) -> CmdResult {
    let tenant = open_tenant(ctx, args.tenant.as_deref(), None).await?;
    let result = build_plan(ctx, &tenant, sheet, args, sheet_args).await;
    tenant.close().await;
    let p = result?;
    show_plan(ctx, &p);
    if let Some(out) = out {
        plan::save(&p, out)
            .map_err(|e| CliError::Other(anyhow::anyhow!("cannot write {}: {e}", out.display())))?;
        if !ctx.json() {
            eprintln!(
                "plan saved to {} (apply it with: teamsync apply --plan {})",
                out.display(),
                out.display()
            );
        }
    }
    let changes = plan::summary(&p).operations > 0;
    Ok(if detailed_exitcode && changes {
        exit::CHANGES_PENDING
    } else {
        exit::OK
    })
}
