//! Everything that leaves teamsync for people to read or to feed back in: sheets written
//! from the tenant or the history (CSV safe to open in Excel, XLSX) and job reports.
//!
//! Reports are rendered from [`ReportJob`] / [`ReportItem`], plain data of their own, so
//! they do not depend on how the history stores jobs: the caller converts history rows.
//! - [`html_report`]: one self-contained HTML page (summary, chart, filterable items).
//! - [`items_csv`] / [`items_xlsx`]: a full report sheet, or with `failed_only` a retry
//!   sheet in the input format, ready to fix and feed back to `teamsync apply`.
//! - [`job_json`]: Fusion's bulk-job-details shape, for `jobs show --output json`.

mod export;
mod format;
mod html;
pub mod model;
pub mod sheet_out;

pub use export::{items_csv, items_xlsx, job_json};
pub use html::{content_security_policy, html_report};
pub use model::{Outcomes, ReportItem, ReportJob};

/// Why a report could not be produced. Inputs are our own history rows, so these are
/// rare; they are typed so a CLI prints them instead of panicking.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot render the HTML report: {0}")]
    Template(String),
    #[error("cannot write the XLSX sheet: {0}")]
    Xlsx(String),
}

/// Sample jobs for the unit tests of the renderers.
#[cfg(test)]
pub(crate) mod testdata {
    use super::{ReportItem, ReportJob};
    use serde_json::{json, Value};

    pub(crate) const XSS_NAME: &str = "<script>document.title='PWNED'</script>";
    pub(crate) const XSS_ATTR: &str = "\"><img src=x onerror=\"document.title='PWNED'\">";

    pub(crate) fn job() -> ReportJob {
        ReportJob {
            id: 7,
            job_id: "01JDQ7ZK5W8M3X".into(),
            title: "Nightly <b>sync</b> & more".into(),
            kind: "ms_users".into(),
            tenant: "acme".into(),
            source: "users.xlsx".into(),
            status: "partial".into(),
            total_count: 5,
            success_count: 3,
            error_count: 2,
            unchanged_count: 1,
            created_on: "2026-11-23T06:00:00Z".into(),
            updated_on: "2026-11-23T06:03:07Z".into(),
            finished_on: Some("2026-11-23T06:03:07Z".into()),
            host: "runner-1".into(),
            os_user: "svc".into(),
            teamsync_version: "0.1.0".into(),
            reason: None,
            problems: vec![],
            backend_bulks: vec![],
            outcomes: crate::report::Outcomes {
                created: 1,
                updated: 1,
                unchanged: 1,
                failed: 2,
                ..Default::default()
            },
        }
    }

    pub(crate) fn item(id: i64, upn: &str, status: &str, data: Value) -> ReportItem {
        ReportItem {
            id,
            upn: upn.into(),
            status: status.into(),
            data,
            changes: json!([]),
            before: json!({}),
            error_code: None,
            error_reason: None,
            attempts: 1,
            created_on: "2026-11-23T06:00:01Z".into(),
            updated_on: "2026-11-23T06:00:02Z".into(),
            note: None,
            action: None,
        }
    }

    /// One item of each interesting kind; two carry hostile display names.
    pub(crate) fn items() -> Vec<ReportItem> {
        let mut ok = item(
            1,
            "alice@acme.example",
            "success",
            json!({"upn": "alice@acme.example", "displayName": "Alice", "number": "+3225405200",
                   "vrp": "BE-National", "action": "upsert"}),
        );
        ok.changes = json!([
            {"field": "number", "old": "+3225405100", "new": "+3225405200"},
            {"field": "vrp", "old": null, "new": "BE-National"},
            {"field": "groups", "old": ["Sales"], "new": ["Sales", "BE Office"], "added": ["BE Office"]}
        ]);
        ok.before = json!({"number": "+3225405100", "vrp": null, "groups": ["Sales"]});
        let same = item(
            2,
            "bob@acme.example",
            "unchanged",
            json!({"upn": "bob@acme.example", "displayName": "Bob", "action": "upsert"}),
        );
        let mut bad = item(
            3,
            "mallory@acme.example",
            "error",
            json!({"upn": "mallory@acme.example", "displayName": XSS_NAME, "number": null,
                   "groups": ["All", "=cmd|' /C calc'!A0"], "licenses": [], "template": "BE-Best",
                   "action": "upsert"}),
        );
        bad.changes = json!([{"field": "number", "old": "+3225405300", "new": null}]);
        bad.error_code = Some("number_linked".into());
        bad.error_reason = Some(format!("Number already linked {XSS_ATTR}"));
        bad.attempts = 3;
        let mut bad2 = item(
            4,
            "eve@acme.example",
            "error",
            json!({"upn": "eve@acme.example", "displayName": XSS_ATTR, "country": "BE",
                   "vrp": "+SUM(1)", "customerLicenses": ["-1+2"], "action": "disable"}),
        );
        bad2.error_code = Some("404".into());
        bad2.error_reason = Some("User not found".into());
        let pending = item(
            5,
            "trent@acme.example",
            "pending",
            json!({"upn": "trent@acme.example", "displayName": "@A1", "action": "upsert"}),
        );
        vec![ok, same, bad, bad2, pending]
    }
}
