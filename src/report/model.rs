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
    /// The whole job's items by outcome (whatever subset of items a report lists).
    #[serde(default)]
    pub outcomes: Outcomes,
    /// The job's bulk requests as the backend's own history knows them.
    #[serde(default)]
    pub backend_bulks: Vec<BackendJob>,
}

/// One bulk request of a job, in the backend's own history (Fusion's
/// `GET users/bulk/{id}`): the link between the two histories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendJob {
    pub title: String,
    /// The backend's bulk id; `None` when its history could not be read.
    pub id: Option<i64>,
    pub job_id: Option<String>,
    pub items: u64,
    pub failed: u64,
}

impl BackendJob {
    /// "#42 (job 1722944248): 100 users, 2 failed" — as `jobs show` and the report say it.
    pub fn describe(&self) -> String {
        let id = match (&self.id, &self.job_id) {
            (Some(id), Some(j)) => format!("#{id} (job {j})"),
            (Some(id), None) => format!("#{id}"),
            _ => format!("\"{}\" (not found in its history)", self.title),
        };
        let failed = if self.failed > 0 {
            format!(", {} failed", self.failed)
        } else {
            String::new()
        };
        format!("{id}: {}{failed}", crate::human::count(self.items, "user"))
    }
}

/// A job's items by what happened to each user: created, updated, disabled, deleted,
/// unchanged, failed, and not finished. A successful item counts under its planned
/// action, so a job that creates users says "created", not "updated".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcomes {
    pub created: u64,
    pub updated: u64,
    pub disabled: u64,
    pub deleted: u64,
    pub unchanged: u64,
    pub failed: u64,
    /// Items not finished (pending, or running when the process died).
    pub pending: u64,
}

/// What happened to one item: its status, and for a successful one its planned action.
pub fn outcome(status: &str, action: Option<&str>) -> &'static str {
    match (status, action) {
        ("success", Some("create")) => "created",
        ("success", Some("disable")) => "disabled",
        ("success", Some("delete")) => "deleted",
        ("success", _) => "updated",
        ("unchanged", _) => "unchanged",
        ("error", _) => "failed",
        _ => "pending",
    }
}

impl Outcomes {
    /// Adds `n` items of `status` whose plan said `action`.
    pub fn add(&mut self, status: &str, action: Option<&str>, n: u64) {
        let slot = match outcome(status, action) {
            "created" => &mut self.created,
            "disabled" => &mut self.disabled,
            "deleted" => &mut self.deleted,
            "updated" => &mut self.updated,
            "unchanged" => &mut self.unchanged,
            "failed" => &mut self.failed,
            _ => &mut self.pending,
        };
        *slot += n;
    }

    /// Counts the given items.
    pub fn of_items(items: &[ReportItem]) -> Outcomes {
        let mut o = Outcomes::default();
        for i in items {
            o.add(&i.status, i.action.as_deref(), 1);
        }
        o
    }

    /// (key, label, count) in the order reports show them.
    pub fn rows(&self) -> [(&'static str, &'static str, u64); 7] {
        [
            ("created", "Created", self.created),
            ("updated", "Updated", self.updated),
            ("disabled", "Disabled", self.disabled),
            ("deleted", "Deleted", self.deleted),
            ("unchanged", "Unchanged", self.unchanged),
            ("failed", "Failed", self.failed),
            ("pending", "Not finished", self.pending),
        ]
    }

    /// "2 created, 3 updated, 0 disabled, 0 deleted, 120 unchanged, 1 failed": the six
    /// outcomes always, items not finished only when there are some. With `skip_zero`,
    /// only the outcomes that happened ("nothing" when none did).
    pub fn describe(&self, skip_zero: bool) -> String {
        let parts: Vec<String> = self
            .rows()
            .iter()
            .filter(|(k, _, n)| {
                if skip_zero || *k == "pending" {
                    *n > 0
                } else {
                    true
                }
            })
            .map(|(k, _, n)| match *k {
                "pending" => format!("{n} not finished"),
                k => format!("{n} {k}"),
            })
            .collect();
        if parts.is_empty() {
            "nothing".into()
        } else {
            parts.join(", ")
        }
    }
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
    /// The planned action: create, update, disable, delete or unchanged (`None` for a
    /// job recorded before plans were stored).
    #[serde(default)]
    pub action: Option<String>,
}

impl ReportItem {
    /// What happened to this user ([`outcome`]).
    pub fn outcome(&self) -> &'static str {
        outcome(&self.status, self.action.as_deref())
    }

    /// The display name the row asked for, when it names one (the report shows it under
    /// the UPN so a reader recognises the person).
    pub fn display_name(&self) -> Option<&str> {
        self.data.get("displayName").and_then(|v| v.as_str())
    }
}
