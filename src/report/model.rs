//! The report's own input: plain data, independent of how the history stores jobs.
//!
//! Reports are rendered from these rows and nothing else, so the history module can change
//! its schema without touching the renderers: the caller converts its rows into these.
//! JSON columns stay `serde_json::Value` because they are shown, not interpreted.

use serde::{Deserialize, Serialize};

/// One job (a Fusion "bulk job"), with its counters as the history recorded them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportJob {
    /// Integer id (Fusion's `bulk_id`).
    pub id: i64,
    /// Unique, time-ordered string id.
    pub job_id: String,
    pub title: String,
    /// `ms_users` or `ms_resource_accounts`.
    pub kind: String,
    pub tenant: String,
    /// Where the desired rows came from (sheet path, plan file).
    pub source: String,
    /// pending | running | success | partial | error | aborted | failed | interrupted
    pub status: String,
    pub total_count: u64,
    /// Items that ended as desired, unchanged ones included.
    pub success_count: u64,
    pub error_count: u64,
    pub unchanged_count: u64,
    /// RFC 3339, UTC.
    pub created_on: String,
    pub updated_on: String,
    pub finished_on: Option<String>,
    pub host: String,
    pub os_user: String,
    pub teamsync_version: String,
    /// Why the job failed, aborted or was interrupted.
    #[serde(default)]
    pub reason: Option<String>,
    /// A failed job's findings (sheet or plan errors, drift), one line each.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// One UPN of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportItem {
    pub id: i64,
    pub upn: String,
    /// pending | running | success | error | unchanged
    pub status: String,
    /// The desired row (UserSpec JSON, merge-patch style: absent = keep, null = clear).
    pub data: serde_json::Value,
    /// Array of `{field, old, new, added?, removed?}`.
    pub changes: serde_json::Value,
    /// Object: field -> the tenant's value before the change.
    pub before: serde_json::Value,
    pub error_code: Option<String>,
    pub error_reason: Option<String>,
    pub attempts: u32,
    pub created_on: String,
    pub updated_on: String,
    /// What the reader should know beyond the status ("applied before the interruption").
    #[serde(default)]
    pub note: Option<String>,
}

impl ReportItem {
    /// The display name the row asked for, when it names one (the report shows it under
    /// the UPN so a reader recognises the person).
    pub fn display_name(&self) -> Option<&str> {
        self.data.get("displayName").and_then(|v| v.as_str())
    }
}
