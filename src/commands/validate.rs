//! `teamsync validate`: sheets and templates checked offline.

use super::{print_json, CliError, CmdResult, Ctx, Exit};
use crate::cli::SheetArgs;
use crate::sheet::Limits;
use crate::template::TemplateSet;
use crate::validate::{check_files, SheetOptions};
use std::path::PathBuf;

pub(crate) fn sheet_options(ctx: &Ctx, args: &SheetArgs) -> SheetOptions {
    let l = &ctx.config.limits;
    SheetOptions {
        sheet_name: args.sheet_name.clone(),
        ignore_unknown_columns: args.ignore_unknown_columns,
        limits: Limits {
            max_file_bytes: l.max_file_mb.saturating_mul(1024 * 1024),
            max_rows: l.max_rows,
            max_columns: u32::try_from(l.max_columns).unwrap_or(u32::MAX),
            max_cell_chars: u32::try_from(l.max_cell_chars).unwrap_or(u32::MAX),
        },
    }
}

pub(crate) fn load_templates(ctx: &Ctx) -> Result<TemplateSet, CliError> {
    TemplateSet::load_dir(&ctx.config.templates).map_err(|e| CliError::Invalid(e.to_string()))
}

pub(super) fn run(ctx: &Ctx, paths: &[PathBuf], args: &SheetArgs) -> CmdResult {
    let templates = load_templates(ctx)?;
    let v = check_files(paths, &sheet_options(ctx, args), &templates);
    if ctx.json() {
        print_json("validate", v.to_json())?;
    } else {
        out!("{}", v.render_human())?;
    }
    Ok(if v.errors.is_empty() {
        Exit::Done
    } else {
        Exit::Invalid
    })
}
