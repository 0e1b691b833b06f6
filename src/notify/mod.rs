//! After a run: what it did, told once to everyone who needs it without watching — the
//! one-line outcome of `-q`, a webhook ([`webhook`]) and a Prometheus textfile
//! ([`metrics`]).
//!
//! Why one [`RunSummary`]: the cron log line, the Teams card and the metrics must agree on
//! the counts, the status and the exit code, so they are all rendered from one value read
//! back from the job history (the record of what happened), not from each caller's
//! variables. A run the history could not record (an unwritable history, a config error
//! after the tenant was chosen) still gets a summary, with no job.
//!
//! Nothing here may fail or stall a run: the webhook is bounded in time and its failures
//! are warnings; the metrics file is replaced whole or not at all.

pub mod metrics;
pub mod webhook;

use crate::exit::Exit;
use crate::history::{History, HistoryError, ItemStatus};
use crate::report::Outcomes;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `[notify]` table of the config: where and when a run's summary is posted.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The incoming-webhook URL. It is a secret (it carries the token that lets anyone
    /// post): prefer `webhook_url_env`.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Environment variable holding the webhook URL.
    #[serde(default)]
    pub webhook_url_env: Option<String>,
    #[serde(default)]
    pub format: NotifyFormat,
    #[serde(default)]
    pub on: NotifyOn,
    /// The whole notification (every attempt) gives up after this many seconds.
    #[serde(default = "d_notify_timeout")]
    pub timeout_s: u64,
}

fn d_notify_timeout() -> u64 {
    15
}

/// The payload's shape.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// [`RunSummary`] as a documented object (`teamsync.notification/v1`).
    #[default]
    Json,
    /// A Microsoft Teams incoming-webhook message card.
    Teams,
    /// A Slack incoming-webhook message with blocks.
    Slack,
}

/// Which runs are told.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// Every run.
    #[default]
    Always,
    /// Runs that did not end done (exit code other than 0).
    Failure,
}

impl NotifyConfig {
    /// Checks the table's own rules: exactly one URL source, an http(s) URL.
    pub fn check(&self) -> Result<(), String> {
        match (&self.webhook_url, &self.webhook_url_env) {
            (Some(_), Some(_)) => {
                Err("[notify]: give webhook_url or webhook_url_env, not both".into())
            }
            (None, None) => Err("[notify]: webhook_url_env (or webhook_url) is required".into()),
            (Some(u), None) => check_webhook_url(u),
            (None, Some(_)) => Ok(()),
        }
    }

    /// The URL, from the file or the environment. Never logged.
    pub fn url(&self) -> Result<String, String> {
        match (&self.webhook_url, &self.webhook_url_env) {
            (Some(u), _) => Ok(u.clone()),
            (None, Some(var)) => match std::env::var(var) {
                Ok(u) if !u.trim().is_empty() => {
                    let u = u.trim().to_string();
                    check_webhook_url(&u)?;
                    Ok(u)
                }
                _ => Err(format!(
                    "environment variable {var} (webhook_url_env) is not set"
                )),
            },
            (None, None) => Err("[notify] names no webhook URL".into()),
        }
    }

    /// Whether a run that ended with `exit` is told.
    pub fn wants(&self, exit: Exit) -> bool {
        match self.on {
            NotifyOn::Always => true,
            NotifyOn::Failure => exit != Exit::Done,
        }
    }
}

/// An http(s) URL, without repeating it in the message (it is a secret).
fn check_webhook_url(u: &str) -> Result<(), String> {
    match url::Url::parse(u) {
        Ok(p) if p.scheme() == "https" || p.scheme() == "http" => Ok(()),
        Ok(p) => Err(format!(
            "[notify]: the webhook URL must be http or https, not {}",
            p.scheme()
        )),
        Err(e) => Err(format!("[notify]: the webhook URL is not a URL ({e})")),
    }
}

/// How many failed users a summary names (the rest are counted).
pub const FAILED_USERS_SHOWN: usize = 10;

/// One failed user of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedUser {
    pub upn: String,
    pub error_code: Option<String>,
    pub error_reason: Option<String>,
}

/// What a run's figures were (not kept by the history).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RunFigures {
    pub requests: u64,
    pub retries: u64,
    /// Throttling answers (429, or 503 with Retry-After) the tenant gave this run.
    pub throttled: u64,
    pub elapsed: Duration,
}

/// A finished sync, apply or resume, as everyone outside is told about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// `sync`, `apply` or `resume`.
    pub command: String,
    pub tenant: String,
    /// The job's integer id and its string id; `None` when no job could be recorded.
    pub id: Option<i64>,
    pub job_id: Option<String>,
    pub title: String,
    /// The job's status (`success`, `partial`, `error`, `aborted`, `interrupted`,
    /// `failed`), or `failed` for a run that could not be recorded.
    pub status: String,
    /// Why it failed, aborted or was interrupted (a `failed` job's kind: `sheet`, `auth`…).
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub total: u64,
    pub counts: Outcomes,
    pub exit_code: u8,
    pub exit_meaning: String,
    pub requests: u64,
    pub retries: u64,
    pub throttled: u64,
    pub duration_s: f64,
    /// When the run ended, RFC 3339 UTC.
    pub finished_on: String,
    pub report: Option<String>,
    /// The first [`FAILED_USERS_SHOWN`] failed users, and how many failed in all.
    pub failed_users: Vec<FailedUser>,
    pub failed_users_total: u64,
    pub host: String,
}

impl RunSummary {
    /// The run that left job `bulk_id`, read back from the history.
    pub fn from_job(
        history: &History,
        bulk_id: i64,
        command: &str,
        figures: RunFigures,
        report: Option<&Path>,
    ) -> Result<RunSummary, HistoryError> {
        let job = history
            .get_job(&bulk_id.to_string())?
            .ok_or_else(|| HistoryError::NoSuchJob(bulk_id.to_string()))?;
        let mut counts = Outcomes::default();
        for (status, action, n) in history.item_outcomes(bulk_id)? {
            counts.add(&status, action.as_deref(), n);
        }
        let failed = history.job_items(bulk_id, &[ItemStatus::Error])?;
        let exit = job.exit();
        Ok(RunSummary {
            command: command.to_string(),
            tenant: job.tenant.clone(),
            id: Some(job.id),
            job_id: Some(job.job_id.clone()),
            title: job.title.clone(),
            status: job.status.as_str().to_string(),
            reason_code: job.reason_code.clone(),
            reason: job.reason.clone(),
            total: job.total_count,
            counts,
            exit_code: exit.code(),
            exit_meaning: exit.meaning().to_string(),
            requests: figures.requests,
            retries: figures.retries,
            throttled: figures.throttled,
            duration_s: round_ms(figures.elapsed),
            finished_on: job.finished_on.clone().unwrap_or_else(crate::history::now),
            report: report.map(|p| p.display().to_string()),
            failed_users_total: failed.len() as u64,
            failed_users: failed
                .into_iter()
                .take(FAILED_USERS_SHOWN)
                .map(|i| FailedUser {
                    upn: i.upn,
                    error_code: i.error_code,
                    error_reason: i.error_reason,
                })
                .collect(),
            host: crate::history::jobs::host_name(),
        })
    }

    /// A run that no job records (the history could not be written, the tenant could
    /// not be chosen): what is known.
    pub fn unrecorded(
        command: &str,
        tenant: &str,
        exit: Exit,
        reason: String,
        elapsed: Duration,
    ) -> RunSummary {
        RunSummary {
            command: command.to_string(),
            tenant: tenant.to_string(),
            id: None,
            job_id: None,
            title: command.to_string(),
            status: "failed".into(),
            reason_code: None,
            reason: Some(reason),
            total: 0,
            counts: Outcomes::default(),
            exit_code: exit.code(),
            exit_meaning: exit.meaning().to_string(),
            requests: 0,
            retries: 0,
            throttled: 0,
            duration_s: round_ms(elapsed),
            finished_on: crate::history::now(),
            report: None,
            failed_users: vec![],
            failed_users_total: 0,
            host: crate::history::jobs::host_name(),
        }
    }

    pub fn succeeded(&self) -> bool {
        self.exit_code == Exit::Done.code()
    }

    /// The `-q` line: "job 12 (20261204T021500Z-3f9a) sync users.xlsx on acme: partial —
    /// 2 created, 5 updated, 1 failed, 120 unchanged; 42 requests in 12 s; exit 1 (items
    /// failed); report: /srv/report.html".
    pub fn one_line(&self) -> String {
        use crate::human::{count, duration};
        let job = match (&self.id, &self.job_id) {
            (Some(id), Some(j)) => format!("job {id} ({j}) "),
            _ => String::new(),
        };
        let why = match (&self.reason_code, &self.reason) {
            (Some(c), Some(r)) => format!(" [{c}] {}", first_line(r)),
            (None, Some(r)) => format!(" {}", first_line(r)),
            _ => String::new(),
        };
        let mut line = format!(
            "{job}{} on {}: {}{why} — {}",
            self.title,
            self.tenant,
            self.status,
            if self.total == 0 {
                "no items".to_string()
            } else {
                self.counts.describe(true)
            }
        );
        if self.requests > 0 {
            line.push_str(&format!(
                "; {} in {}",
                count(self.requests, "request"),
                duration(Duration::from_secs_f64(self.duration_s))
            ));
        }
        line.push_str(&format!(
            "; exit {} ({})",
            self.exit_code, self.exit_meaning
        ));
        if let Some(r) = &self.report {
            line.push_str(&format!("; report: {r}"));
        }
        line
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Where the metrics file goes, if the config names one.
pub fn metrics_path(config: &crate::config::Config) -> Option<PathBuf> {
    config.metrics_file.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn summary() -> RunSummary {
        RunSummary {
            command: "sync".into(),
            tenant: "acme".into(),
            id: Some(12),
            job_id: Some("20261204T021500Z-3f9a".into()),
            title: "sync users.xlsx".into(),
            status: "partial".into(),
            reason_code: None,
            reason: None,
            total: 128,
            counts: Outcomes {
                created: 2,
                updated: 5,
                unchanged: 120,
                failed: 1,
                ..Default::default()
            },
            exit_code: 1,
            exit_meaning: "items failed".into(),
            requests: 42,
            retries: 1,
            throttled: 3,
            duration_s: 12.3,
            finished_on: "2026-12-04T02:15:12.300Z".into(),
            report: Some("/srv/report.html".into()),
            failed_users: vec![FailedUser {
                upn: "bob@acme.example".into(),
                error_code: Some("404".into()),
                error_reason: Some("User not found".into()),
            }],
            failed_users_total: 1,
            host: "runner".into(),
        }
    }

    #[test]
    fn the_quiet_line_says_it_all_once() {
        assert_eq!(
            summary().one_line(),
            "job 12 (20261204T021500Z-3f9a) sync users.xlsx on acme: partial — 2 created, 5 updated, 120 unchanged, 1 failed; 42 requests in 12 s; exit 1 (items failed); report: /srv/report.html"
        );
        let u = RunSummary::unrecorded(
            "sync",
            "acme",
            Exit::Aborted,
            "cannot write the job history /x/h.db: it is read-only\nmore".into(),
            Duration::from_millis(20),
        );
        assert_eq!(
            u.one_line(),
            "sync on acme: failed cannot write the job history /x/h.db: it is read-only — no items; exit 3 (aborted)"
        );
    }

    #[test]
    fn the_notify_table_wants_one_url_and_says_when() {
        let t: NotifyConfig =
            toml::from_str("webhook_url_env = \"HOOK\"\nformat = \"teams\"\non = \"failure\"")
                .unwrap();
        assert!(t.check().is_ok());
        assert_eq!(t.format, NotifyFormat::Teams);
        assert!(!t.wants(Exit::Done) && t.wants(Exit::Incomplete) && t.wants(Exit::Aborted));
        let both: NotifyConfig =
            toml::from_str("webhook_url = \"https://h/x\"\nwebhook_url_env = \"H\"").unwrap();
        assert!(both.check().is_err());
        let bad: NotifyConfig = toml::from_str("webhook_url = \"ftp://secret@h/x\"").unwrap();
        let e = bad.check().unwrap_err();
        assert!(!e.contains("secret"), "the URL is not repeated: {e}");
        assert!(toml::from_str::<NotifyConfig>("webhook = \"x\"").is_err());
    }
}
