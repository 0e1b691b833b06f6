//! How a plan reads: to a person reviewing it before `apply`, and to scripts (`--output
//! json`). The human form follows Terraform's: a `+`/`~`/`-` line per user with field
//! lines beneath (old → new, list members added/removed by name); unchanged users are only
//! counted, since a nightly sync of 5,000 users would otherwise bury the three that change.
//! Names and values come from sheets and tenants, so control and bidi characters in them
//! are shown escaped ([`terminal_safe`]); the JSON form carries them as they are.

use super::model::{FieldChange, Operation, Plan, UserAction, UserPlan};
use crate::model::attr::OpGroup;
use crate::sheet::terminal_safe;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Counts of a plan: users by action and operations by kind. Field names are the JSON
/// keys of `summary` (issue 5): `users`, `unchanged`, `operations` and one key per
/// operation kind, plus per-action user counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    pub users: usize,
    pub unchanged: usize,
    pub operations: usize,
    pub create: usize,
    pub set_properties: usize,
    pub set_licenses: usize,
    pub set_number: usize,
    pub set_vrp: usize,
    pub set_groups: usize,
    pub set_customer_licenses: usize,
    pub delete: usize,
    pub creates: usize,
    pub updates: usize,
    pub disables: usize,
    pub deletes: usize,
}

pub fn summary(plan: &Plan) -> PlanSummary {
    let mut s = PlanSummary {
        users: plan.users.len(),
        ..Default::default()
    };
    for u in &plan.users {
        match u.action {
            UserAction::Create => s.creates += 1,
            UserAction::Update => s.updates += 1,
            UserAction::Disable => s.disables += 1,
            UserAction::Delete => s.deletes += 1,
            UserAction::Unchanged => {}
        }
        if u.ops.is_empty() {
            s.unchanged += 1;
        }
        for op in &u.ops {
            s.operations += 1;
            match (&op.op, op.op.group()) {
                (Operation::Create { .. }, _) => s.create += 1,
                (Operation::Delete, _) => s.delete += 1,
                (Operation::Set { .. }, Some(g)) => {
                    *match g {
                        OpGroup::Properties => &mut s.set_properties,
                        OpGroup::Licenses => &mut s.set_licenses,
                        OpGroup::Number => &mut s.set_number,
                        OpGroup::Vrp => &mut s.set_vrp,
                        OpGroup::Groups => &mut s.set_groups,
                        OpGroup::CustomerLicenses => &mut s.set_customer_licenses,
                    } += 1;
                }
                // A set of nothing (only a hand-edited plan holds one) counts as no kind.
                (Operation::Set { .. }, None) => {}
            }
        }
    }
    s
}

struct Paint {
    on: bool,
}

impl Paint {
    fn sym(&self, sym: char) -> String {
        let code = match sym {
            '+' => "32",
            '~' => "33",
            '-' => "31",
            _ => return sym.to_string(),
        };
        if self.on {
            format!("\x1b[{code}m{sym}\x1b[0m")
        } else {
            sym.to_string()
        }
    }
    fn bold(&self, s: &str) -> String {
        if self.on {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "(none)".into(),
        Value::String(s) => terminal_safe(s).into_owned(),
        Value::Array(a) if a.is_empty() => "(none)".into(),
        Value::Array(a) => a.iter().map(scalar).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn change_lines(out: &mut String, p: &Paint, c: &FieldChange, created: bool, waits: &str) {
    let is_list = c.new.is_array() || c.old.is_array();
    if is_list {
        let sym = if created { '+' } else { '~' };
        let _ = writeln!(out, "  {} {}:", p.sym(sym), c.field);
        for a in &c.added {
            let _ = writeln!(out, "      {} {}", p.sym('+'), terminal_safe(a));
        }
        for r in &c.removed {
            let _ = writeln!(out, "      {} {}", p.sym('-'), terminal_safe(r));
        }
        if c.added.is_empty() && c.removed.is_empty() {
            let _ = writeln!(out, "      {} → {}", scalar(&c.old), scalar(&c.new));
        }
        return;
    }
    let sym = if created || c.old.is_null() {
        '+'
    } else if c.new.is_null() {
        '-'
    } else {
        '~'
    };
    if created {
        let _ = writeln!(
            out,
            "  {} {}: {}{waits}",
            p.sym(sym),
            c.field,
            scalar(&c.new)
        );
    } else {
        let _ = writeln!(
            out,
            "  {} {}: {} → {}{waits}",
            p.sym(sym),
            c.field,
            scalar(&c.old),
            scalar(&c.new)
        );
    }
}

/// "(after bob@x.com releases it)" for a number claim that waits on another user.
fn number_waits(u: &UserPlan) -> String {
    let mut who: Vec<String> = vec![];
    for op in &u.ops {
        if op.op.claims_number().is_some() {
            who.extend(
                op.after
                    .iter()
                    .map(|a| terminal_safe(a.upn.as_str()).into_owned()),
            );
        }
    }
    if who.is_empty() {
        String::new()
    } else {
        format!("  (after {} releases it)", who.join(", "))
    }
}

pub fn render_human(plan: &Plan, color: bool) -> String {
    let p = Paint { on: color };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for tenant {} ({}, {} mode, {} users):",
        plan.tenant,
        plan.backend,
        match plan.mode {
            super::model::Mode::Upsert => "upsert",
            super::model::Mode::Mirror => "mirror",
        },
        plan.users.len()
    );
    if let Some(r) = &plan.refresh {
        let _ = writeln!(out, "{}", refresh_line(r));
    }
    for u in &plan.users {
        if u.ops.is_empty() {
            continue;
        }
        let label = match u.action {
            UserAction::Create => " (create)",
            UserAction::Disable => " (disable)",
            UserAction::Delete => " (delete)",
            _ => "",
        };
        let mirror = if u.origin.is_none()
            && plan.mode == super::model::Mode::Mirror
            && u.action == UserAction::Disable
        {
            ": not in the sheet"
        } else {
            ""
        };
        let label = if mirror.is_empty() {
            label.to_string()
        } else {
            " (disable: not in the sheet)".to_string()
        };
        let _ = writeln!(
            out,
            "\n{} {}{label}",
            p.sym(u.action.symbol()),
            p.bold(&terminal_safe(u.upn.as_str()))
        );
        let created = u.action == UserAction::Create;
        for c in &u.changes {
            let waits = if c.field == crate::model::Attr::Number.name() {
                number_waits(u)
            } else {
                String::new()
            };
            change_lines(&mut out, &p, c, created, &waits);
        }
    }
    let s = summary(plan);
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings:");
        for w in &plan.warnings {
            let _ = writeln!(out, "  ! {}", terminal_safe(w));
        }
    }
    let _ = writeln!(
        out,
        "\nPlan: {} to create, {} to update, {} to disable, {} to delete, {} unchanged.",
        s.creates, s.updates, s.disables, s.deletes, s.unchanged
    );
    let kinds = kind_counts(&s);
    let listed: Vec<String> = kinds
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if listed.is_empty() {
        let _ = writeln!(out, "No changes: the tenant matches the sheet.");
    } else {
        let _ = writeln!(out, "Operations: {} ({}).", s.operations, listed.join(", "));
    }
    if let Some(r) = super::removals::removals(plan).describe() {
        let _ = writeln!(out, "Removals: {r}.");
    }
    out
}

/// The header line saying how the users' details were read: what was trusted, and how
/// stale it may be.
fn refresh_line(r: &crate::refresh::RefreshReport) -> String {
    use crate::human::thousands;
    match r.mode {
        crate::refresh::RefreshMode::Full => {
            format!("refresh: full — {} users' details read", thousands(r.read))
        }
        crate::refresh::RefreshMode::Incremental => format!(
            "refresh: incremental — {} of {} users' details trusted from the history (read within {} days), {} read",
            thousands(r.trusted),
            thousands(r.users),
            crate::refresh::MAX_AGE_DAYS,
            thousands(r.read)
        ),
    }
}

fn kind_counts(s: &PlanSummary) -> [(&'static str, usize); 8] {
    [
        ("create", s.create),
        ("set_properties", s.set_properties),
        ("set_licenses", s.set_licenses),
        ("set_number", s.set_number),
        ("set_vrp", s.set_vrp),
        ("set_groups", s.set_groups),
        ("set_customer_licenses", s.set_customer_licenses),
        ("delete", s.delete),
    ]
}

/// `{"summary": {...}, "users": [{upn, action, changes, operations}]}` plus the plan's
/// identity (tenant, backend, mode, kind, fingerprint) and warnings.
pub fn render_json(plan: &Plan) -> Value {
    let users: Vec<Value> = plan
        .users
        .iter()
        .map(|u| {
            json!({
                "upn": u.upn,
                "action": u.action,
                "changes": u.changes,
                "operations": u.ops,
            })
        })
        .collect();
    let mut doc = json!({
        "summary": summary(plan),
        "tenant": plan.tenant,
        "backend": plan.backend,
        "mode": plan.mode,
        "kind": plan.kind,
        "snapshot_fingerprint": plan.snapshot_fingerprint,
        "warnings": plan.warnings,
        "removals": super::removals::removals(plan),
        "users": users,
    });
    // Only a plan whose run chose how to read details says how (a saved plan's drift
    // check, a revert plan, a backend that reads details its own way do not).
    if let Some(r) = &plan.refresh {
        doc["refresh"] = json!(r);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::refresh_line;
    use crate::refresh::{RefreshMode, RefreshReport};

    #[test]
    fn the_header_says_the_refresh_and_what_was_trusted() {
        let r = RefreshReport {
            mode: RefreshMode::Incremental,
            users: 3000,
            trusted: 2880,
            read: 120,
        };
        assert_eq!(
            refresh_line(&r),
            "refresh: incremental — 2,880 of 3,000 users' details trusted from the history (read within 7 days), 120 read"
        );
        let full = RefreshReport {
            mode: RefreshMode::Full,
            trusted: 0,
            read: 3000,
            ..r
        };
        assert_eq!(
            refresh_line(&full),
            "refresh: full — 3,000 users' details read"
        );
    }
}
