//! `teamsync plan`: the sheet → snapshot → plan half of the pipeline (`crate::run`),
//! rendered, optionally saved. Sends reads only; takes no lock and records no job.

use super::run::{render_run_error, sheet_input};
use super::{print_json, CliError, CmdResult, Ctx, Exit};
use crate::cli::{ModeArg, PlanArgs, SheetArgs};
use crate::plan::{self, Mode, Plan};
use crate::run;
use std::path::Path;

pub(crate) fn mode(m: ModeArg) -> Mode {
    match m {
        ModeArg::Upsert => Mode::Upsert,
        ModeArg::Mirror => Mode::Mirror,
    }
}

pub(crate) fn show_plan(ctx: &Ctx, p: &Plan) -> Result<(), CliError> {
    if ctx.json() {
        print_json("plan", plan::render_json(p))
    } else {
        out!("{}", plan::render_human(p, color_stdout()))
    }
}

pub(crate) fn color_stdout() -> bool {
    use is_terminal::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub(super) async fn run(
    ctx: &Ctx,
    sheet: &Path,
    args: &PlanArgs,
    sheet_args: &SheetArgs,
    out: Option<&Path>,
    detailed_exitcode: bool,
) -> CmdResult {
    let input = sheet_input(ctx, sheet, args, sheet_args);
    if let Some(out) = out {
        check_output(out)?;
    }
    let tenant = run::open_tenant(&ctx.config, args.tenant.as_deref(), None)
        .await
        .map_err(|e| render_run_error(ctx, e))?;
    // An incremental refresh trusts the history's reads; `plan` keeps none of its own.
    let history = if ctx.db.exists() {
        crate::history::History::open_for_reading(&ctx.db)
            .map_err(|e| tracing::warn!("{e}: every user's details are read"))
            .ok()
    } else {
        None
    };
    let reads = history.as_ref().map(|history| run::Reads {
        history,
        record: false,
    });
    let result = run::plan_sheet(&ctx.config, &tenant, &input, reads).await;
    tenant.close().await;
    let p = result.map_err(|e| render_run_error(ctx, e))?;
    show_plan(ctx, &p)?;
    if let Some(out) = out {
        plan::save(&p, out).map_err(CliError::output(out))?;
        if !ctx.json() {
            errln!(
                "plan saved to {} (apply it with: teamsync apply --plan {})",
                out.display(),
                out.display()
            );
        }
    }
    let changes = plan::summary(&p).operations > 0;
    Ok(if detailed_exitcode && changes {
        Exit::ChangesPending
    } else {
        Exit::Done
    })
}

/// Refuses an output path whose folder does not exist, before the tenant is read: a typo
/// in `--out` should cost nothing (exit 2), not a snapshot followed by a failed save.
pub(crate) fn check_output(path: &Path) -> Result<(), CliError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(CliError::Output {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                format!("{} is not a folder", dir.display()),
            ),
        }),
        Err(e) => Err(CliError::Output {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                e.kind(),
                format!("its folder {} does not exist ({e})", dir.display()),
            ),
        }),
    }
}
