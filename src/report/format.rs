//! Turning the history's JSON columns into text, in the two ways reports need it:
//! as a sheet cell that our reader takes back with the same meaning, and as words for a
//! person reading the HTML or the changes summary.
//!
//! The JSON comes from our own database but is treated as untrusted shape: a column that
//! is not what we expect renders as its compact JSON instead of failing the report.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

/// One field change of an item, as stored in `changes` (`{field, old, new, added?,
/// removed?}`), with `old` taken from `before` when the change entry lacks it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Change {
    pub field: String,
    pub old: Value,
    pub new: Value,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// Reads an item's `changes` array. Entries without a `field` are skipped: they cannot
/// be attributed to anything a reader would recognise.
pub(super) fn changes_of(changes: &Value, before: &Value) -> Vec<Change> {
    let Some(list) = changes.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|c| {
            let field = c.get("field")?.as_str()?.to_string();
            let old = c
                .get("old")
                .or_else(|| before.get(&field))
                .cloned()
                .unwrap_or(Value::Null);
            let new = c.get("new").cloned().unwrap_or(Value::Null);
            Some(Change {
                added: string_list(c.get("added")),
                removed: string_list(c.get("removed")),
                field,
                old,
                new,
            })
        })
        .collect()
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a.iter().map(scalar_text).collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![scalar_text(other)],
    }
}

/// A scalar as plain text (strings without quotes); anything else as compact JSON.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// A desired-row value as an input-sheet cell: absent (`None`) is an empty cell (keep),
/// `null` and an empty list are `-` (clear), lists are `;`-joined.
pub(super) fn sheet_cell(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Null) => "-".to_string(),
        Some(Value::Array(a)) if a.is_empty() => "-".to_string(),
        Some(Value::Array(a)) => a.iter().map(scalar_text).collect::<Vec<_>>().join(";"),
        Some(other) => scalar_text(other),
    }
}

/// A value for a person: `(none)` for null or an empty list, lists joined with `, `.
pub(super) fn human(v: &Value) -> String {
    match v {
        Value::Null => "(none)".to_string(),
        Value::Array(a) if a.is_empty() => "(none)".to_string(),
        Value::Array(a) => a.iter().map(scalar_text).collect::<Vec<_>>().join(", "),
        Value::String(s) if s.is_empty() => "(empty)".to_string(),
        other => scalar_text(other),
    }
}

/// `number: +32… → +32…; groups: +Sales -Support`: one line per item for sheet exports.
pub(super) fn changes_summary(changes: &[Change]) -> String {
    changes
        .iter()
        .map(|c| {
            if c.added.is_empty() && c.removed.is_empty() {
                format!("{}: {} → {}", c.field, human(&c.old), human(&c.new))
            } else {
                let mut parts: Vec<String> = c.added.iter().map(|a| format!("+{a}")).collect();
                parts.extend(c.removed.iter().map(|r| format!("-{r}")));
                format!("{}: {}", c.field, parts.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses an RFC 3339 timestamp; the history writes UTC RFC 3339, but a timestamp
/// without an offset (Fusion's own style) is read as UTC too.
pub(super) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// `2026-11-23 06:06:06 UTC` for people; the raw text when it does not parse.
pub(super) fn human_time(s: &str) -> String {
    match parse_time(s) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => s.to_string(),
    }
}

/// RFC 3339 normalised to UTC seconds, for machine-facing places (`<time datetime>`).
pub(super) fn machine_time(s: &str) -> Option<String> {
    parse_time(s).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// How long a job ran: `finished - created`, or `None` when either end is unknown.
pub(super) fn duration(created: &str, finished: Option<&str>) -> Option<String> {
    let start = parse_time(created)?;
    let end = parse_time(finished?)?;
    let d = end.signed_duration_since(start);
    if d.num_milliseconds() < 0 {
        return None;
    }
    Some(human_duration(d.num_milliseconds() as u64))
}

/// `850 ms`, `4.2 s`, `3 min 07 s`, `2 h 05 min` (seconds stop mattering past an hour).
pub(super) fn human_duration(ms: u64) -> String {
    if ms < 1_000 {
        return format!("{ms} ms");
    }
    if ms < 60_000 {
        return format!("{}.{} s", ms / 1000, (ms % 1000) / 100);
    }
    let s = ms / 1000;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    if h == 0 {
        format!("{m} min {s:02} s")
    } else {
        format!("{h} h {m:02} min")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sheet_cells_keep_merge_patch_meaning() {
        assert_eq!(sheet_cell(None), "");
        assert_eq!(sheet_cell(Some(&Value::Null)), "-");
        assert_eq!(sheet_cell(Some(&json!([]))), "-");
        assert_eq!(sheet_cell(Some(&json!(["A", "B c"]))), "A;B c");
        assert_eq!(sheet_cell(Some(&json!("+3225405200"))), "+3225405200");
        assert_eq!(sheet_cell(Some(&json!(12))), "12");
    }

    #[test]
    fn changes_take_old_from_before_when_missing() {
        let ch = json!([{"field": "vrp", "new": "B"}, {"nofield": 1}, {"field": "groups",
            "old": ["x"], "new": ["y"], "added": ["y"], "removed": ["x"]}]);
        let before = json!({"vrp": "A"});
        let got = changes_of(&ch, &before);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].old, json!("A"));
        assert_eq!(
            changes_summary(&got),
            "vrp: A → B; groups: +y -x",
            "list changes show members added and removed"
        );
        assert!(changes_of(&json!({"not": "array"}), &Value::Null).is_empty());
    }

    #[test]
    fn summary_names_cleared_values() {
        let ch = json!([{"field": "number", "old": "+3225405200", "new": null}]);
        let got = changes_of(&ch, &Value::Null);
        assert_eq!(changes_summary(&got), "number: +3225405200 → (none)");
    }

    #[test]
    fn durations_and_times() {
        assert_eq!(
            duration("2026-11-23T06:00:00Z", Some("2026-11-23T06:03:07.500Z")).as_deref(),
            Some("3 min 07 s")
        );
        assert_eq!(
            duration(
                "2024-08-02T12:31:05.856955",
                Some("2024-08-02T12:31:06.056955")
            )
            .as_deref(),
            Some("200 ms")
        );
        assert_eq!(duration("2026-11-23T06:00:00Z", None), None);
        assert_eq!(duration("garbage", Some("2026-11-23T06:00:00Z")), None);
        assert_eq!(
            duration("2026-11-23T07:00:00Z", Some("2026-11-23T06:00:00Z")),
            None
        );
        assert_eq!(human_duration(4_250), "4.2 s");
        assert_eq!(human_duration(7_500_000), "2 h 05 min");
        assert_eq!(
            human_time("2026-11-23T06:06:06+01:00"),
            "2026-11-23 05:06:06 UTC"
        );
        assert_eq!(human_time("not a time"), "not a time");
    }
}
