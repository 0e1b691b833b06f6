//! The read side of the pipeline, shared by `plan`, the write runs, `jobs revert` and
//! `tenant …`: open a configured tenant, read a sheet, snapshot what the plan needs
//! (with the backend's own row rules checked before and after), and plan.
//!
//! Nothing here sends a write or records a job: failures are returned as [`RunError`]s
//! for the write pipeline to record (`super`) or for a read-only command to render.

use super::{Failure, Report, RunError};
use crate::config::{Config, TenantConfig};
use crate::connect::Tenant;
use crate::connector::ConnectorError;
use crate::history::FailKind;
use crate::model::{Diagnostic, JobKind, Snapshot, UserSpec};
use crate::plan::{self, Plan, PlanInput};
use crate::template::TemplateSet;
use crate::validate::{validate_files, SheetOptions, Validated};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// A sheet to plan: the file, how to read it, and the planning mode.
#[derive(Debug, Clone)]
pub struct SheetInput {
    pub path: PathBuf,
    pub options: SheetOptions,
    pub mode: plan::Mode,
    /// `--allow-removals N` for mirror mode.
    pub allow_removals: Option<usize>,
    /// `--allow-license-removals N`: users that may lose licenses above the threshold
    /// ([`crate::plan::removals::check_license_removals`]).
    pub allow_license_removals: Option<usize>,
}

/// Opens the tenant `name` (or the default one) with `rate` overriding its
/// `rate_per_second`. Sends nothing: connectors connect lazily (an embedded simulator is
/// started here).
pub async fn open_tenant(
    config: &Config,
    name: Option<&str>,
    rate: Option<f64>,
) -> Result<Tenant, RunError> {
    let (name, cfg) = config.tenant(name)?;
    Tenant::open(&name, cfg, rate).await.map_err(|e| {
        Failure::new(
            FailKind::Config,
            &name,
            format!("cannot connect to the tenant: {e}"),
        )
        .with_source(e)
        .into()
    })
}

/// What makes two tenant names the same tenant, for the tenant lock: the backend, its
/// address and the tenant path. A URL is normalised (scheme and host case, trailing
/// slash), an embedded simulator is its state file (an in-memory one is private to its
/// process). Each backend's table says ([`TenantTable::identity`]).
///
/// [`TenantTable::identity`]: crate::connector::registry::TenantTable::identity
pub fn tenant_identity(cfg: &TenantConfig) -> String {
    cfg.identity()
}

/// The folder of the tenant lock files: the config's `lock_dir`, else
/// [`crate::history::lock::default_lock_dir`].
pub fn lock_dir(config: &Config) -> PathBuf {
    config
        .lock_dir
        .clone()
        .unwrap_or_else(crate::history::lock::default_lock_dir)
}

pub fn load_templates(config: &Config) -> Result<TemplateSet, RunError> {
    TemplateSet::load_dir(&config.templates).map_err(|e| RunError::Usage(e.to_string()))
}

/// Reads and validates a sheet; errors are a [`FailKind::Sheet`] failure carrying the
/// whole validation report. Warnings are logged.
pub fn read_sheet(
    config: &Config,
    tenant: &str,
    path: &Path,
    options: &SheetOptions,
) -> Result<Validated, RunError> {
    let templates = load_templates(config)?;
    let v = validate_files(&[path.to_path_buf()], options, &templates);
    if !v.errors.is_empty() {
        let n = v.error_count();
        return Err(Failure::new(
            FailKind::Sheet,
            tenant,
            format!(
                "{} in the sheet; nothing was sent",
                crate::human::count(n, "error")
            ),
        )
        .with_report(Report::Sheet(Box::new(v)))
        .into());
    }
    for w in &v.warnings {
        tracing::warn!("{}", crate::sheet::terminal_safe(&w.to_string()));
    }
    if v.warnings_not_listed > 0 {
        tracing::warn!("… and {} more warnings", v.warnings_not_listed);
    }
    Ok(v)
}

/// SHA-256 over the SHA-256 of each file's bytes, in order (the job's `source_sha256`).
pub fn sources_sha256(paths: &[PathBuf]) -> Result<String, RunError> {
    let mut h = Sha256::new();
    for p in paths {
        let bytes =
            std::fs::read(p).map_err(|e| RunError::Usage(format!("{}: {e}", p.display())))?;
        h.update(Sha256::digest(&bytes));
    }
    Ok(hex::encode(h.finalize()))
}

/// A failed tenant request as a failure of the run: auth → [`FailKind::Auth`], local
/// configuration or an unsupported field → [`FailKind::Config`], anything else (network,
/// server errors after retries, throttling past `max_throttle_minutes`) →
/// [`FailKind::Read`].
pub fn connector_failure(tenant: &str, e: ConnectorError) -> RunError {
    let kind = match &e {
        ConnectorError::Auth { .. } => FailKind::Auth,
        ConnectorError::Config(_) | ConnectorError::Unsupported(_) => FailKind::Config,
        ConnectorError::Retryable { .. }
        | ConnectorError::Rejected { .. }
        | ConnectorError::Throttled { .. } => FailKind::Read,
    };
    Failure::new(kind, tenant, format!("tenant {tenant}: {e}"))
        .with_source(e)
        .into()
}

/// Rows the backend's own rules refuse (PortSIP's reserved account names) stop the run
/// before any request is sent, with every problem the sheet has that needs no tenant data
/// ([`plan::check_rows`]) as plan errors. Otherwise the planner reports those problems
/// together with the ones only the tenant can tell.
fn check_backend_rules(tenant: &Tenant, specs: &[UserSpec], kind: JobKind) -> Result<(), RunError> {
    let profile = tenant.connector.profile();
    if specs.iter().all(|s| profile.row_problems(s).is_empty()) {
        return Ok(());
    }
    Err(plan_errors(
        &tenant.name,
        plan::check_rows(specs, kind, &profile),
    ))
}

fn plan_errors(tenant: &str, errors: Vec<Diagnostic>) -> RunError {
    Failure::new(
        FailKind::Plan,
        tenant,
        format!(
            "{}; nothing was sent",
            crate::human::count(errors.len(), "plan error")
        ),
    )
    .with_report(Report::Plan(errors))
    .into()
}

/// Reads what the plan of `specs` (a sheet of `kind`) needs from the tenant. The
/// backend's own row rules are checked first, so a row it refuses costs no request.
pub async fn snapshot(
    tenant: &Tenant,
    specs: &[UserSpec],
    kind: JobKind,
) -> Result<Snapshot, RunError> {
    check_backend_rules(tenant, specs, kind)?;
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

/// The planner, with its errors as a [`FailKind::Plan`] failure.
pub fn make_plan(input: PlanInput) -> Result<Plan, RunError> {
    let tenant = input.tenant.to_string();
    plan::make_plan(input).map_err(|errs| plan_errors(&tenant, errs.0))
}

/// The `plan` command's pipeline, also the first half of `sync`: validated sheet →
/// snapshot → plan.
pub async fn plan_sheet(
    config: &Config,
    tenant: &Tenant,
    sheet: &SheetInput,
) -> Result<Plan, RunError> {
    let v = read_sheet(config, &tenant.name, &sheet.path, &sheet.options)?;
    plan_validated(tenant, sheet, &v).await
}

/// Snapshot and plan of an already validated sheet.
pub(crate) async fn plan_validated(
    tenant: &Tenant,
    sheet: &SheetInput,
    v: &Validated,
) -> Result<Plan, RunError> {
    let paths = vec![sheet.path.clone()];
    let snap = snapshot(tenant, &v.specs, v.kind).await?;
    let plan = make_plan(PlanInput {
        tenant: &tenant.name,
        mode: sheet.mode,
        kind: v.kind,
        sources: paths.iter().map(|p| p.display().to_string()).collect(),
        source_sha256: sources_sha256(&paths)?,
        specs: &v.specs,
        snapshot: &snap,
        profile: tenant.connector.profile(),
        allow_removals: sheet.allow_removals,
    })?;
    plan::removals::check_license_removals(&plan, &snap, sheet.allow_license_removals).map_err(
        |message| {
            let file = sheet.path.display().to_string();
            plan_errors(
                &tenant.name,
                vec![Diagnostic {
                    file,
                    row: None,
                    column: Some("licenses".into()),
                    message,
                }],
            )
        },
    )?;
    Ok(plan)
}
