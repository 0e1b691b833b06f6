//! Unit tests of the simulator's own rules (its HTTP behaviour is tested end to end).

use super::*;

#[test]
fn the_sample_seeds() {
    let sim = GraphSim::open(None, None, SimOptions::default()).unwrap();
    let (tenant, client) = sim.app();
    assert!(!tenant.is_empty() && !client.is_empty());
}

#[test]
fn a_seed_breaking_the_rules_is_refused() {
    let mut doc: TenantDoc = serde_json::from_str(SAMPLE.json).unwrap();
    doc.users[1].usage_location = Some("UK".into());
    assert!(tenant_from_doc(doc).unwrap_err().contains("usageLocation"));
    let mut doc: TenantDoc = serde_json::from_str(SAMPLE.json).unwrap();
    let n = doc.number_assignments[3].clone();
    doc.number_assignments.push(n);
    assert!(tenant_from_doc(doc).unwrap_err().contains("appears twice"));
    let unknown = serde_json::from_str::<TenantDoc>(r#"{"tenantId":"t","clientId":"c","user":[]}"#);
    assert!(unknown.is_err(), "unknown keys in a seed are refused");
}

#[test]
fn errors_have_the_documented_shape() {
    let b = GraphError::throttled(2).body();
    assert_eq!(b["error"]["code"], "TooManyRequests");
    assert_eq!(b["error"]["innerError"]["status"], "429");
    assert!(b["error"]["innerError"]["request-id"].is_string());
    let b = GraphError::bad("x").body();
    assert_eq!(b["error"]["message"], "x");
    assert!(b["error"]["innerError"]["date"].is_string());
}
