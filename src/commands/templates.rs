//! `teamsync templates list|show`.

use super::validate::load_templates;
use super::{print_json, CliError, CmdResult, Ctx, Exit};
use crate::cli::TemplatesCommand;

pub(super) fn run(ctx: &Ctx, cmd: TemplatesCommand) -> CmdResult {
    let set = load_templates(ctx)?;
    match cmd {
        TemplatesCommand::List => {
            if ctx.json() {
                let items: Vec<_> = set
                    .names()
                    .into_iter()
                    .filter_map(|n| set.get(n).map(|t| snake_keys(t.to_json())))
                    .collect();
                print_json(
                    "templates",
                    super::schema::list("templates", "templates", items.into(), &[]),
                )?;
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
                print_json("template", snake_keys(t.to_json()))?;
            } else {
                out!("{}", t.render_human())?;
            }
        }
    }
    Ok(Exit::Done)
}

/// A template's JSON with snake_case keys (`customerLicenses` → `customer_licenses`): the
/// one casing of teamsync's JSON documents (see [`super::schema`]).
fn snake_keys(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.into_iter()
                .map(|(k, v)| {
                    let mut snake = String::with_capacity(k.len() + 2);
                    for c in k.chars() {
                        if c.is_ascii_uppercase() {
                            snake.push('_');
                            snake.push(c.to_ascii_lowercase());
                        } else {
                            snake.push(c);
                        }
                    }
                    (snake, v)
                })
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn template_keys_are_snake_case() {
        let v =
            super::snake_keys(serde_json::json!({"customerLicenses": [], "number_range": null}));
        assert_eq!(
            v,
            serde_json::json!({"customer_licenses": [], "number_range": null})
        );
    }
}
