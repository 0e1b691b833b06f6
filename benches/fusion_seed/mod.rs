//! The Fusion simulator's seed for the request-counting benches (`requests`, `refresh`):
//! the sample tenant's catalogs and a number of generated users.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn upn(i: usize) -> String {
    format!("user{i:06}@contoso.com")
}

pub(crate) fn number(i: usize) -> String {
    format!("+322{}", 5_000_000 + i)
}

/// The sample tenant's catalogs with `users` users when `present` (none otherwise), each
/// with its number, E1 + Phone System and the VRP `vrp`; the subscription holds every
/// user's number.
pub(crate) fn seed(
    path: &Path,
    users: usize,
    present: bool,
    vrp: Option<&str>,
) -> anyhow::Result<()> {
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(
        repo().join("samples/tenant.json"),
    )?)?;
    let licenses = doc["licenses"].as_array().cloned().unwrap_or_default();
    let sku = |p: &str| {
        licenses.iter().find(|l| l["skuPartNumber"] == p).map_or(
            Value::Null,
            |l| json!({"skuId": l["skuId"], "skuPartNumber": p}),
        )
    };
    let (e1, phone) = (sku("STANDARDPACK"), sku("MCOEV"));
    let out: Vec<Value> = (0..users)
        .filter(|_| present)
        .map(|i| {
            json!({
                "msTeams": {"id": format!("00000000-0000-4000-8000-{i:012}"),
                    "userPrincipalName": upn(i), "displayName": format!("User {i}"), "groups": [],
                    "location": "BE", "licenses": [e1, phone], "voiceEnabled": "yes", "vrp": vrp},
                "draas": {"id": i + 1, "connectionId": i + 1, "customerLicenses": [],
                    "numberId": i + 1, "phoneNumber": number(i), "status": "active"}
            })
        })
        .collect();
    let mut lic = licenses.clone();
    for l in &mut lic {
        l["total"] = json!(users * 2 + 1000);
        l["free"] = json!(users * 2 + 1000);
    }
    doc["users"] = Value::Array(out);
    doc["licenses"] = Value::Array(lic);
    doc["resourceAccounts"] = json!([]);
    doc["numbers"] = Value::Array((0..users).map(|i| json!(number(i))).collect());
    doc["domains"] = json!(["contoso.com"]);
    std::fs::write(path, serde_json::to_vec(&doc)?)?;
    Ok(())
}
