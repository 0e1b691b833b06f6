//! The `--output json` documents: one object per command, named and versioned.
//!
//! Every document is a JSON object whose `schema` key names it and its version
//! (`teamsync.plan/v1`), so a script can check what it reads and a later teamsync can
//! change a shape by bumping the version instead of breaking scripts silently. Lists are
//! wrapped in an object under a plural key (`{"schema": "teamsync.tenant-users/v1",
//! "tenant": "demo", "users": [...]}`), never printed bare.
//!
//! One casing: teamsync's own keys are snake_case. Values that mirror another format keep
//! that format's names, as the README's "JSON output" section lists: a user's desired row
//! (`data`, `desired`) and a change's `field` use the sheet's column names
//! (`displayName`, `customerLicenses`), and `tenant status`'s `details` is the vendor's
//! object as received.

use serde_json::{Map, Value};

/// The version of every document's shape; bumped when a key changes meaning or goes.
/// Adding a key is not a change of version.
pub const VERSION: u32 = 1;

/// `teamsync.NAME/vVERSION`.
pub fn name(kind: &str) -> String {
    format!("teamsync.{kind}/v{VERSION}")
}

/// `doc` with its `schema` key. A value that is not an object is wrapped under `value`
/// (no command prints one; the wrapper keeps the rule "always an object").
pub fn tag(kind: &str, doc: Value) -> Value {
    let mut o = match doc {
        Value::Object(o) => o,
        other => {
            let mut o = Map::new();
            o.insert("value".into(), other);
            o
        }
    };
    o.insert("schema".into(), Value::String(name(kind)));
    Value::Object(o)
}

/// A list as a document: `{"schema": …, key: items, …extra}`.
pub fn list(kind: &str, key: &str, items: Value, extra: &[(&str, Value)]) -> Value {
    let mut o = Map::new();
    o.insert(key.into(), items);
    for (k, v) in extra {
        o.insert((*k).into(), v.clone());
    }
    tag(kind, Value::Object(o))
}

/// Every document name a command prints, for the README's table and its test.
pub const DOCUMENTS: [&str; 18] = [
    "validate",
    "plan",
    "plan-errors",
    "job",
    "job-details",
    "jobs-page",
    "jobs-prune",
    "jobs-merge",
    "tenants",
    "tenant-status",
    "tenant-users",
    "tenant-groups",
    "tenant-licenses",
    "tenant-vrps",
    "tenant-numbers",
    "templates",
    "template",
    "backends",
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_are_named_objects() {
        assert_eq!(
            tag("plan", json!({"a": 1})),
            json!({"a": 1, "schema": "teamsync.plan/v1"})
        );
        assert_eq!(
            list(
                "tenant-users",
                "users",
                json!([1]),
                &[("tenant", json!("demo"))]
            ),
            json!({"schema": "teamsync.tenant-users/v1", "users": [1], "tenant": "demo"})
        );
        assert_eq!(tag("x", json!([1]))["value"], json!([1]));
    }

    #[test]
    fn every_document_is_in_the_readme() {
        let readme = include_str!("../../README.md");
        for d in DOCUMENTS {
            assert!(
                readme.contains(&format!("`{}`", name(d))),
                "README lacks {}",
                name(d)
            );
        }
    }
}
