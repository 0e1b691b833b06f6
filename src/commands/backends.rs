//! `teamsync backends`: the capability matrix, so a user sees what a backend can do
//! before trying. It is each backend's [`Profile`](crate::model::Profile) from the registry,
//! so it cannot disagree with what the planner enforces.

use super::{print_json, CmdResult, Ctx, Exit};
use crate::connector::registry::{Backend, BACKENDS};
use crate::model::Attr;

/// Column headers of what a backend can do, beside [`Profile::operations`]' keys.
fn operation_header(key: &str) -> &str {
    match key {
        "resource_accounts" => "RES.ACCT",
        "number_ranges" => "RANGES",
        other => other,
    }
}

pub(super) fn run(ctx: &Ctx) -> CmdResult {
    let rows: &[&Backend] = BACKENDS;
    if ctx.json() {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "backend": r.profile.backend,
                    "available": true,
                    "capabilities": r.profile.capabilities_json(),
                    "note": r.note,
                })
            })
            .collect();
        print_json(
            "backends",
            super::schema::list("backends", "backends", v.into(), &[]),
        )?;
        return Ok(Exit::Done);
    }
    // Attributes every backend carries (display name, number) say nothing: only the
    // others get a column.
    let attrs: Vec<Attr> = Attr::all()
        .filter(|a| rows.iter().any(|r| !r.profile.carries(*a)))
        .collect();
    let mut header: Vec<String> = vec!["BACKEND".into()];
    header.extend(
        rows[0]
            .profile
            .operations()
            .iter()
            .map(|(k, _)| operation_header(k).to_uppercase()),
    );
    header.extend(attrs.iter().map(|a| a.name().to_uppercase()));
    let widths: Vec<usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| if i == 0 { 13 } else { h.len().max(3) })
        .collect();
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$} "));
            }
        }
        s
    };
    outln!("{}", line(header.clone()))?;
    let yn = |b: bool| if b { "yes" } else { "-" }.to_string();
    for r in rows {
        let mut cells = vec![r.profile.backend.to_string()];
        cells.extend(r.profile.operations().iter().map(|(_, v)| yn(*v)));
        cells.extend(attrs.iter().map(|a| yn(r.profile.carries(*a))));
        outln!("{}", line(cells))?;
    }
    Ok(Exit::Done)
}
