//! `teamsync templates list|show`.

use super::validate::load_templates;
use super::{print_json, CliError, CmdResult, Ctx, Exit};
use crate::cli::TemplatesCommand;

pub fn run(ctx: &Ctx, cmd: TemplatesCommand) -> CmdResult {
    let set = load_templates(ctx)?;
    match cmd {
        TemplatesCommand::List => {
            if ctx.json() {
                let items: Vec<_> = set
                    .names()
                    .into_iter()
                    .filter_map(|n| set.get(n).map(|t| t.to_json()))
                    .collect();
                print_json(&serde_json::Value::Array(items))?;
            } else {
                for n in set.names() {
                    let desc = set
                        .get(n)
                        .and_then(|t| t.description.clone())
                        .unwrap_or_default();
                    outln!("{n:<24} {desc}")?;
                }
            }
        }
        TemplatesCommand::Show { name } => {
            let t = set.get(&name).ok_or_else(|| {
                CliError::Invalid(format!(
                    "unknown template {name:?} (available: {})",
                    set.names().join(", ")
                ))
            })?;
            if ctx.json() {
                print_json(&t.to_json())?;
            } else {
                out!("{}", t.render_human())?;
            }
        }
    }
    Ok(Exit::Done)
}
