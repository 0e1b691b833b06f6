//! Diff desired users against a tenant snapshot into a plan of operations.
//!
//! The planner is pure (no I/O, like Terraform's): given the sheet's desired users and a
//! snapshot it returns every operation in order, with the cross-user dependencies that
//! number moves need, or *all* the problems it found at once (a 5,000-row sheet should not
//! be fixed one error per run). Apply, history and reports only ever see the [`Plan`].
//!
//! Layout: `resolve` (names → catalog IDs), `diff` (one user), `numbers` (moves, swaps,
//! conflicts), `preflight` (license counts), `render` (human, JSON, summary), `saved`
//! (plan files, fingerprint, drift).
//!
//! The planner knows attributes through their table (`model::attr`) and a backend only
//! through its [`Profile`] (`model::profile`), which the caller takes from the connector:
//! it never imports a connector, and the connectors import the plan they execute. Every
//! backend rule (attributes it carries, what a create needs, what cannot change, what
//! needs a detail read, its own row rules) is checked in the same pass as everything else.
//!
//! Choices where the vendor documents and the README are silent:
//! - A `disable`/`delete` row for a UPN the tenant lacks is an unchanged item plus a plan
//!   warning, not an error: the desired end state already holds.
//! - A `disable` row releases number and VRP only; its other values are ignored (warning).
//! - Mirror removals carry a synthesised row (`number` cleared, `action = disable`). Their
//!   details are never read, so their VRP is released unconditionally when the backend
//!   has VRPs (harmless; they hold no number afterwards, so a re-run plans nothing).
//! - The removal threshold counts mirror removals only (sheet `disable`/`delete` rows are
//!   explicit), against tenant users (not resource accounts) holding a number.
//! - Resource-account sheets support create (displayName, country, accountType), display
//!   name, country, number, VRP and customer licenses, disable and delete. The connector
//!   reads a new account's type from `UserPlan::desired.account_type`. Changing the type of
//!   an existing account, groups and licenses are plan errors. Mirror mode never touches
//!   resource accounts, so a mirror resource-account plan acts as upsert (with a warning).
//! - No rows at all: an empty plan in upsert mode, a plan error in mirror mode.
//! - The Phone System check applies only to users whose number or licenses the plan
//!   changes, so an odd tenant record that the sheet leaves alone never blocks a plan.

mod auto;
mod diff;
pub mod model;
mod numbers;
mod preflight;
pub mod removals;
mod render;
mod resolve;
pub mod revert;
mod saved;

pub use model::*;
pub use render::{render_human, render_json, summary, PlanSummary};
pub use saved::{check_drift, fingerprint, load, save, SavedPlanError};

use crate::model::{
    AttrSet, Diagnostic, Field, JobKind, Profile, RowAction, Snapshot, TenantUser, Upn, UserSpec,
};
use diff::{Ctx, Report};
use resolve::Resolver;
use std::collections::HashMap;
use std::fmt;

/// Everything `make_plan` needs; borrowed so a 100k-user snapshot is not copied.
pub struct PlanInput<'a> {
    pub tenant: &'a str,
    pub mode: Mode,
    pub kind: JobKind,
    pub sources: Vec<String>,
    pub source_sha256: String,
    pub specs: &'a [UserSpec],
    pub snapshot: &'a Snapshot,
    /// The backend: what it can do and its rules (from [`Connector::profile`]).
    ///
    /// [`Connector::profile`]: crate::connector::Connector::profile
    pub profile: Profile,
    /// `--allow-removals N`: how many mirror removals the caller accepts.
    pub allow_removals: Option<usize>,
}

/// Every problem that stops a plan, not only the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<Diagnostic>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} plan error{}", if n == 1 { "" } else { "s" })?;
        for d in &self.0 {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

/// Sheet users whose rows (after templates) need the backend's single-user read: they
/// touch an attribute only that read returns (the profile's `detail_reads`), or they are
/// `disable` rows and a `disable` releases such an attribute (its value decides whether
/// there is anything to release).
pub fn detail_upns(specs: &[UserSpec], profile: &Profile) -> Vec<Upn> {
    let released_by_disable: AttrSet = profile
        .detail_reads
        .iter()
        .filter(|a| a.info().disable_clears)
        .collect();
    let mut seen = std::collections::HashSet::new();
    specs
        .iter()
        .filter(|s| {
            s.touched().intersects(profile.detail_reads)
                || (s.action == RowAction::Disable && !released_by_disable.is_empty())
        })
        .filter(|s| seen.insert(s.upn.clone()))
        .map(|s| s.upn.clone())
        .collect()
}

/// The problems of rows that need no tenant data: attributes the backend (or the sheet
/// kind) cannot carry and the backend's own rules, every row at once. Callers run it
/// before reading the tenant, so a sheet the backend refuses costs no request;
/// [`make_plan`] runs the same checks again with everything else.
pub fn check_rows(specs: &[UserSpec], kind: JobKind, profile: &Profile) -> Vec<Diagnostic> {
    let catalogs = crate::model::Catalogs::default();
    let ctx = Ctx {
        backend: profile.backend,
        kind,
        profile: *profile,
        resolver: Resolver::new(&catalogs),
        default_file: "<sheet>".into(),
    };
    let mut rep = Report::default();
    for spec in specs {
        diff::check_row(&ctx, spec, &mut rep);
    }
    rep.errors
}

/// The row a mirror run stands in for a tenant user absent from the sheet.
fn mirror_spec(u: &TenantUser) -> UserSpec {
    let mut s = UserSpec::new(u.upn.clone());
    s.number = Field::Clear;
    s.action = RowAction::Disable;
    s
}

/// `max(10, 5 %)` of the tenant's users holding a number.
fn removal_threshold(snapshot: &Snapshot) -> usize {
    let holders = snapshot
        .users
        .iter()
        .filter(|u| u.number.is_some() && u.account_type.is_none())
        .count();
    (holders * 5 / 100).max(10)
}

/// Plans `input.specs` against `input.snapshot`; see the module doc and the README's
/// "Modes and safety".
pub fn make_plan(input: PlanInput) -> Result<Plan, PlanErrors> {
    let snapshot = input.snapshot;
    let default_file = if input.sources.is_empty() {
        "<sheet>".to_string()
    } else {
        input.sources.join(", ")
    };
    let ctx = Ctx {
        backend: input.profile.backend,
        kind: input.kind,
        profile: input.profile,
        resolver: Resolver::new(&snapshot.catalogs),
        default_file: default_file.clone(),
    };
    let mut rep = Report::default();
    let file_error = |message: String| Diagnostic {
        file: default_file.clone(),
        row: None,
        column: None,
        message,
    };

    if input.kind == JobKind::MsResourceAccounts && !input.profile.resource_accounts {
        rep.errors.push(file_error(format!(
            "the {} backend cannot manage resource accounts",
            input.profile.backend
        )));
    }
    // An empty export must never read as "remove everyone". In upsert mode no rows
    // simply means nothing to do (e.g. a resumed job with no pending items).
    if input.specs.is_empty() && input.mode == Mode::Mirror {
        rep.errors.push(file_error(
            "the sheet has no user rows; refusing to mirror an empty sheet (it would disable every user)".into(),
        ));
    }

    let resolved = auto::assign(&ctx, input.specs, snapshot, &mut rep);
    let specs: &[UserSpec] = resolved.as_deref().unwrap_or(input.specs);
    let by_upn: HashMap<&Upn, &TenantUser> = snapshot.users.iter().map(|u| (&u.upn, u)).collect();
    let mut first_row: HashMap<&Upn, &UserSpec> = HashMap::new();
    let mut users = Vec::with_capacity(specs.len());
    for spec in specs {
        if let Some(prev) = first_row.get(&spec.upn) {
            rep.error(
                &ctx,
                spec,
                Some("upn"),
                format!(
                    "appears twice in the sheet: {}",
                    diff::row_label(&default_file, prev)
                ),
            );
            continue;
        }
        first_row.insert(&spec.upn, spec);
        users.push(diff::diff_user(
            &ctx,
            spec,
            by_upn.get(&spec.upn).copied(),
            &mut rep,
        ));
    }

    match (input.mode, input.kind) {
        (Mode::Mirror, JobKind::MsResourceAccounts) => rep
            .warnings
            .push("mirror mode never touches resource accounts; this plan only applies the sheet (upsert)".into()),
        (Mode::Mirror, JobKind::MsUsers) => {
            let mut gone: Vec<&TenantUser> = snapshot
                .users
                .iter()
                .filter(|u| u.number.is_some() && u.account_type.is_none() && !first_row.contains_key(&u.upn))
                .collect();
            gone.sort_by(|a, b| a.upn.cmp(&b.upn));
            let limit = removal_threshold(snapshot);
            if gone.len() > limit && input.allow_removals.is_none_or(|a| a < gone.len()) {
                rep.errors.push(file_error(format!(
                    "mirror mode would disable {} users absent from the sheet (number and VRP released), more than the safety threshold of {limit} (10 or 5 % of the tenant's users holding a number, whichever is larger); check the sheet is complete, or pass --allow-removals {}",
                    gone.len(),
                    gone.len()
                )));
            }
            for u in gone {
                let spec = mirror_spec(u);
                let mut up = UserPlan {
                    upn: u.upn.clone(),
                    user_id: Some(u.id.clone()),
                    action: UserAction::Disable,
                    desired: spec.clone(),
                    origin: None,
                    changes: vec![],
                    ops: vec![],
                    before: Default::default(),
                };
                diff::disable_ops(&ctx, &spec, u, &mut up, &mut rep, false);
                users.push(up);
            }
        }
        (Mode::Upsert, _) => {}
    }

    numbers::link_numbers(&mut users, snapshot, &default_file, &mut rep);
    numbers::check_unknown_numbers(&users, snapshot, &input.profile, &default_file, &mut rep);
    preflight::check_licenses(&users, snapshot, input.kind, &default_file, &mut rep);
    if rep.errors.is_empty() {
        if let Err(stuck) = numbers::check_acyclic(&users) {
            rep.errors.push(file_error(format!(
                "internal error: the plan's operations wait on each other in a cycle ({}); please report this",
                stuck.join(", ")
            )));
        }
    }
    if !rep.errors.is_empty() {
        return Err(PlanErrors(rep.errors));
    }
    let snapshot_fingerprint = fingerprint(snapshot, &users);
    Ok(Plan {
        format: PLAN_FORMAT,
        tenant: input.tenant.to_string(),
        backend: input.profile.backend.to_string(),
        mode: input.mode,
        kind: input.kind,
        sources: input.sources,
        source_sha256: input.source_sha256,
        created_on: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        snapshot_fingerprint,
        snapshot_requests: snapshot.requests,
        users,
        warnings: rep.warnings,
        refresh: None,
    })
}

#[cfg(test)]
mod tests;
