//! `teamsync plan`: the sheet → snapshot → plan half of the pipeline (`crate::run`),
//! rendered, optionally saved. Sends reads only; takes no lock and records no job.

use super::run::{render_run_error, sheet_input};
use super::{exit, print_json, CliError, CmdResult, Ctx};
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
    let input = sheet_input(ctx, sheet, args, sheet_args);
    let tenant = run::open_tenant(&ctx.config, args.tenant.as_deref(), None)
        .await
        .map_err(|e| render_run_error(ctx, e))?;
    let result = run::plan_sheet(&ctx.config, &tenant, &input).await;
    tenant.close().await;
    let p = result.map_err(|e| render_run_error(ctx, e))?;
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
