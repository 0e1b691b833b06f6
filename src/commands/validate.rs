//! `teamsync validate`: sheets and templates checked offline.

use super::{exit, print_json, CliError, CmdResult, Ctx};
use crate::cli::SheetArgs;
use crate::sheet::Limits;
use crate::template::TemplateSet;
use crate::validate::{validate_files, SheetOptions, Validated};
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

/// Reads and validates sheets; on errors prints them (human or JSON) and returns
/// `Err` with exit code 2 so nothing is sent to a tenant.
pub(crate) fn read_sheets(
    ctx: &Ctx,
    paths: &[PathBuf],
    args: &SheetArgs,
) -> Result<Validated, CliError> {
    let templates = load_templates(ctx)?;
    let v = validate_files(paths, &sheet_options(ctx, args), &templates);
    if !v.errors.is_empty() {
        if ctx.json() {
            print_json(&v.to_json());
        } else {
            eprint!("{}", v.render_human());
        }
        return Err(CliError::Invalid(format!(
            "{} error(s) in the sheet; nothing was sent",
            v.error_count()
        )));
    }
    for w in &v.warnings {
        tracing::warn!("{}", crate::sheet::terminal_safe(&w.to_string()));
    }
    if v.warnings_not_listed > 0 {
        tracing::warn!("… and {} more warnings", v.warnings_not_listed);
    }
    Ok(v)
}

pub fn run(ctx: &Ctx, paths: &[PathBuf], args: &SheetArgs) -> CmdResult {
    let templates = load_templates(ctx)?;
    let v = validate_files(paths, &sheet_options(ctx, args), &templates);
    if ctx.json() {
        print_json(&v.to_json());
    } else {
        out!("{}", v.render_human());
    }
    Ok(if v.errors.is_empty() {
        exit::OK
    } else {
        exit::INVALID
    })
}
