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
use crate::history::{FailKind, History, UserRead};
use crate::model::{Diagnostic, JobKind, Snapshot, TenantUser, Upn, UserSpec};
use crate::plan::{self, Plan, PlanInput};
use crate::refresh::{RefreshMode, RefreshReport};
use crate::template::TemplateSet;
use crate::validate::{validate_files, SheetOptions, Validated};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
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
    /// `--refresh`; `None`: the tenant's `refresh` key.
    pub refresh: Option<RefreshMode>,
}

/// The history an incremental refresh trusts, and whether this run keeps tonight's reads
/// in it (a write run does; `plan` only reads it).
#[derive(Clone, Copy)]
pub struct Reads<'a> {
    pub history: &'a History,
    pub record: bool,
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
    reads: Option<Reads<'_>>,
) -> Result<Plan, RunError> {
    let v = read_sheet(config, &tenant.name, &sheet.path, &sheet.options)?;
    plan_validated(tenant, sheet, &v, reads).await
}

/// A snapshot whose details were read (or trusted) user by user, and what it knows of
/// each detail user.
struct Refreshed {
    snap: Snapshot,
    /// Fingerprint of each detail user's list entry, as tonight's list showed it.
    listed: HashMap<Upn, String>,
    /// Detail users whose details came from the history.
    trusted: HashSet<Upn>,
    /// Detail users read tonight.
    read: HashSet<Upn>,
}

/// Lists the tenant without details, then reads the details of the detail users
/// `wanted` does not trust: the same requests as a full snapshot when it trusts no one
/// (the backend answers the whole user to `read_user`, [`Connector::details_per_user`]).
///
/// [`Connector::details_per_user`]: crate::connector::Connector::details_per_user
async fn refreshed_snapshot(
    tenant: &Tenant,
    specs: &[UserSpec],
    kind: JobKind,
    wanted: impl Fn(&TenantUser, &UserSpec) -> Option<crate::model::UserDetails>,
) -> Result<Refreshed, RunError> {
    check_backend_rules(tenant, specs, kind)?;
    let detail: HashSet<Upn> = plan::detail_upns(specs, &tenant.connector.profile())
        .into_iter()
        .collect();
    let by_upn: HashMap<&Upn, &UserSpec> = specs.iter().map(|s| (&s.upn, s)).collect();
    let t0 = std::time::Instant::now();
    let mut snap = tenant
        .connector
        .snapshot(&[], false)
        .await
        .map_err(|e| connector_failure(&tenant.name, e))?;
    let mut out = Refreshed {
        snap: Snapshot::default(),
        listed: HashMap::new(),
        trusted: HashSet::new(),
        read: HashSet::new(),
    };
    let mut todo = Vec::new();
    for u in &mut snap.users {
        // Resource accounts have no single-user read: a full snapshot leaves them as
        // listed too.
        if !detail.contains(&u.upn) || u.account_type.is_some() {
            continue;
        }
        out.listed
            .insert(u.upn.clone(), crate::refresh::listed_fingerprint(u));
        match by_upn.get(&u.upn).and_then(|s| wanted(u, s)) {
            Some(d) => {
                u.details = Some(d);
                out.trusted.insert(u.upn.clone());
            }
            None => todo.push(u.upn.clone()),
        }
    }
    out.snap = snap;
    read_fresh(tenant, &mut out, &todo).await?;
    tracing::info!(
        "snapshot of {}: {} users, {} requests in {:.1}s ({} details trusted from the history)",
        tenant.name,
        out.snap.users.len(),
        out.snap.requests,
        t0.elapsed().as_secs_f64(),
        out.trusted.len()
    );
    Ok(out)
}

/// Reads `upns`' details now (one `read_user` each, a few at a time: the tenant's gate
/// sets the pace), in place of what the snapshot held. A user gone since the list is left
/// out, as a full snapshot leaves it out.
async fn read_fresh(tenant: &Tenant, r: &mut Refreshed, upns: &[Upn]) -> Result<(), RunError> {
    use futures::{StreamExt, TryStreamExt};
    // As many at once as Fusion's own snapshot reads details.
    const CONCURRENCY: usize = 16;
    let wanted: HashSet<&Upn> = upns.iter().collect();
    let ids: Vec<(Upn, String)> = r
        .snap
        .users
        .iter()
        .filter(|u| wanted.contains(&u.upn))
        .map(|u| (u.upn.clone(), u.id.clone()))
        .collect();
    let connector = &tenant.connector;
    let found: HashMap<Upn, Option<TenantUser>> = futures::stream::iter(ids)
        .map(|(upn, id)| async move { connector.read_user(&id).await.map(|d| (upn, d)) })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
        .map_err(|e| connector_failure(&tenant.name, e))?;
    r.snap.requests += found.len() as u64;
    let users = std::mem::take(&mut r.snap.users);
    r.snap.users = users
        .into_iter()
        .filter_map(|u| match found.get(&u.upn) {
            None => Some(u),
            Some(Some(d)) => Some(d.clone()),
            Some(None) => {
                tracing::warn!(upn = %u.upn, "user disappeared between list and detail read; left out");
                None
            }
        })
        .collect();
    for upn in found.keys() {
        r.trusted.remove(upn);
        r.read.insert(upn.clone());
    }
    Ok(())
}

/// Snapshot and plan of an already validated sheet. With `--refresh incremental` (or the
/// tenant's `refresh` key) on a backend that reads details user by user, users whose
/// stored read may be trusted ([`crate::refresh::trusted`]) are not read; any of them the
/// plan would change is read and the sheet planned again, so no write rests on a stored
/// read. With `reads.record`, every detail read of tonight is kept for the next run.
pub(crate) async fn plan_validated(
    tenant: &Tenant,
    sheet: &SheetInput,
    v: &Validated,
    reads: Option<Reads<'_>>,
) -> Result<Plan, RunError> {
    let paths = vec![sheet.path.clone()];
    let pacing = tenant.config.pacing();
    let mode = sheet.refresh.unwrap_or(pacing.refresh);
    let per_user = tenant.connector.details_per_user();
    if !per_user {
        if mode == RefreshMode::Incremental {
            tracing::info!(
                "the {} backend reads details its own way: refresh is full",
                tenant.connector.backend()
            );
        }
        let snap = snapshot(tenant, &v.specs, v.kind).await?;
        return finish_plan(tenant, sheet, v, &paths, &snap);
    }
    let now = chrono::Utc::now();
    let stored: HashMap<String, UserRead> = match (mode, reads) {
        (RefreshMode::Incremental, Some(r)) => r
            .history
            .user_reads(&tenant.name)
            .map_err(RunError::History)?,
        _ => HashMap::new(),
    };
    let mut r = refreshed_snapshot(tenant, &v.specs, v.kind, |u, s| {
        crate::refresh::trusted(stored.get(u.upn.as_str()), u, s, now, pacing.refresh_share)
    })
    .await?;
    let plan = loop {
        let made = finish_plan(tenant, sheet, v, &paths, &r.snap);
        let stale: Vec<Upn> = match &made {
            Ok(p) => p
                .users
                .iter()
                .filter(|u| !u.ops.is_empty() && r.trusted.contains(&u.upn))
                .map(|u| u.upn.clone())
                .collect(),
            // A plan error may come from a stored read: read everyone trusted, then
            // the error (if any) is tonight's.
            Err(_) => r.trusted.iter().cloned().collect(),
        };
        if stale.is_empty() {
            break made?;
        }
        tracing::info!(
            "{} the plan changes read again before planning them",
            crate::human::count(stale.len(), "trusted user")
        );
        read_fresh(tenant, &mut r, &stale).await?;
    };
    if let Some(reads) = reads.filter(|x| x.record) {
        let by_upn: HashMap<&Upn, &UserSpec> = v.specs.iter().map(|s| (&s.upn, s)).collect();
        let records: Vec<UserRead> = r
            .snap
            .users
            .iter()
            .filter(|u| r.read.contains(&u.upn))
            .filter_map(|u| {
                let mut rec = crate::refresh::record(u, by_upn.get(&u.upn).copied(), now)?;
                // Tomorrow's list is compared with tonight's list entry.
                rec.listed.clone_from(r.listed.get(&u.upn)?);
                Some(rec)
            })
            .collect();
        reads
            .history
            .put_user_reads(tenant.name.clone(), records)
            .await
            .map_err(RunError::History)?;
    }
    let users = r.listed.len() as u64;
    Ok(Plan {
        refresh: Some(RefreshReport {
            mode,
            users,
            trusted: r.trusted.len() as u64,
            read: r.read.len() as u64,
        }),
        ..plan
    })
}

fn finish_plan(
    tenant: &Tenant,
    sheet: &SheetInput,
    v: &Validated,
    paths: &[PathBuf],
    snap: &Snapshot,
) -> Result<Plan, RunError> {
    let plan = make_plan(PlanInput {
        tenant: &tenant.name,
        mode: sheet.mode,
        kind: v.kind,
        sources: paths.iter().map(|p| p.display().to_string()).collect(),
        source_sha256: sources_sha256(paths)?,
        specs: &v.specs,
        snapshot: snap,
        profile: tenant.connector.profile(),
        allow_removals: sheet.allow_removals,
    })?;
    plan::removals::check_license_removals(&plan, snap, sheet.allow_license_removals).map_err(
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
