//! `teamsync backends`: the capability matrix, so a user sees what a backend can do
//! before trying.

use super::{print_json, CmdResult, Ctx, Exit};
use crate::connector::Capabilities;

struct Row {
    name: &'static str,
    note: &'static str,
    caps: Option<Capabilities>,
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "fusion",
            note: "Netaxis Fusion MS Teams API (also the embedded `sim` tenant)",
            caps: Some(crate::connector::fusion::CAPABILITIES),
        },
        Row {
            name: "liveplatform",
            note: "AudioCodes Live Platform (read-only: plan audits, apply refuses)",
            caps: Some(crate::connector::liveplatform::CAPABILITIES),
        },
        Row {
            name: "ump",
            note: "AudioCodes UMP 365 (also `sim_backend = \"ump\"`)",
            caps: Some(crate::connector::ump::CAPABILITIES),
        },
        Row {
            name: "portsip",
            note: "PortSIP PBX users (no country, groups, licenses, VRP or delete; `extension` column required to create)",
            caps: Some(crate::connector::portsip::CAPABILITIES),
        },
    ]
}

pub fn run(ctx: &Ctx) -> CmdResult {
    let rows = rows();
    if ctx.json() {
        let v: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"backend": r.name, "available": r.caps.is_some(), "capabilities": r.caps, "note": r.note}))
            .collect();
        print_json(
            "backends",
            super::schema::list("backends", "backends", v.into(), &[]),
        )?;
        return Ok(Exit::Done);
    }
    let yn = |b: bool| if b { "yes" } else { "-" };
    outln!(
        "{:<13} {:<5} {:<5} {:<6} {:<6} {:<6} {:<8} {:<4} {:<9} {:<9} {:<7} {:<8} {}",
        "BACKEND",
        "READ",
        "WRITE",
        "CREATE",
        "DELETE",
        "GROUPS",
        "LICENSES",
        "VRP",
        "CUST.LIC",
        "RES.ACCT",
        "RANGES",
        "COUNTRY",
        "EXTENSION"
    )?;
    for r in &rows {
        match r.caps {
            Some(c) => outln!(
                "{:<13} {:<5} {:<5} {:<6} {:<6} {:<6} {:<8} {:<4} {:<9} {:<9} {:<7} {:<8} {}",
                r.name,
                yn(c.read),
                yn(c.write),
                yn(c.create),
                yn(c.delete),
                yn(c.groups),
                yn(c.licenses),
                yn(c.vrp),
                yn(c.customer_licenses),
                yn(c.resource_accounts),
                yn(c.number_ranges),
                yn(c.country),
                yn(c.extension)
            )?,
            None => outln!("{:<13} {}", r.name, r.note)?,
        }
    }
    Ok(Exit::Done)
}
