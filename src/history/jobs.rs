//! Job rows (`bulk_jobs`): creation, live counts, and the final status rule.

use super::items::{insert_item, ItemStatus, NewItem};
use super::{now, HistoryError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{json, Value};

/// A job's overall state, as Fusion's bulk history spells it plus `pending`, `running`,
/// `aborted`, `failed` and `interrupted` (which Fusion's server-side jobs never show).
///
/// `failed`: the run stopped before its first write (sheet or plan errors, a drifted
/// saved plan, authentication, a failed read, a busy lock); [`FailKind`] says which, so a
/// nightly run that did nothing still shows up in `jobs list`. `interrupted`: a signal
/// stopped it, or its process died; `resume` finishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Success,
    Partial,
    Error,
    Aborted,
    Failed,
    Interrupted,
}

impl JobStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Partial => "partial",
            JobStatus::Error => "error",
            JobStatus::Aborted => "aborted",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
        }
    }
    /// Every status, in the order `jobs list --status` documents them.
    pub const ALL: [JobStatus; 8] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Success,
        JobStatus::Partial,
        JobStatus::Error,
        JobStatus::Aborted,
        JobStatus::Failed,
        JobStatus::Interrupted,
    ];
    pub fn parse(s: &str) -> Option<JobStatus> {
        Some(match s {
            "pending" => JobStatus::Pending,
            "running" => JobStatus::Running,
            "success" => JobStatus::Success,
            "partial" => JobStatus::Partial,
            "error" => JobStatus::Error,
            "aborted" => JobStatus::Aborted,
            "failed" => JobStatus::Failed,
            "interrupted" => JobStatus::Interrupted,
            _ => return None,
        })
    }
}

/// Why a run stopped before its first write (the `reason_code` of a `failed` job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailKind {
    /// The sheet has errors.
    Sheet,
    /// The plan has errors (numbers claimed twice, unknown licenses, …).
    Plan,
    /// A saved plan the tenant drifted from.
    Drift,
    /// The backend cannot do what the run asks (a read-only backend).
    Unsupported,
    /// The tenant's configuration or connector setup is wrong.
    Config,
    /// The tenant refused the credentials.
    Auth,
    /// Reading the tenant failed (network, server errors after retries).
    Read,
    /// Another run holds the tenant's lock.
    Lock,
    /// A signal stopped the run before anything was written.
    Interrupted,
}

impl FailKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            FailKind::Sheet => "sheet",
            FailKind::Plan => "plan",
            FailKind::Drift => "drift",
            FailKind::Unsupported => "unsupported",
            FailKind::Config => "config",
            FailKind::Auth => "auth",
            FailKind::Read => "read",
            FailKind::Lock => "lock",
            FailKind::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> Option<FailKind> {
        Some(match s {
            "sheet" => FailKind::Sheet,
            "plan" => FailKind::Plan,
            "drift" => FailKind::Drift,
            "unsupported" => FailKind::Unsupported,
            "config" => FailKind::Config,
            "auth" => FailKind::Auth,
            "read" => FailKind::Read,
            "lock" => FailKind::Lock,
            "interrupted" => FailKind::Interrupted,
            _ => return None,
        })
    }
}

impl std::fmt::Display for FailKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a job that ran ends (see [`finish_job`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEnd {
    /// Every item it started was run to its end (or the job had nothing left to do).
    Completed,
    /// Fail-fast, an authentication failure or a history write failure stopped it.
    Aborted(String),
    /// A signal stopped it (or its process was found dead); `resume` finishes it.
    Interrupted(String),
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a new job records about where it came from.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: crate::model::JobKind,
    pub title: String,
    pub tenant: String,
    /// Sheet paths (or the saved plan) as given.
    pub source: String,
    pub source_sha256: String,
}

/// One `bulk_jobs` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobRow {
    pub id: i64,
    pub job_id: String,
    pub kind: String,
    pub title: String,
    pub tenant: String,
    pub source: String,
    pub source_sha256: String,
    pub status: JobStatus,
    pub total_count: u64,
    pub success_count: u64,
    pub error_count: u64,
    pub unchanged_count: u64,
    /// Items not finished (pending, or running when the process died). Not a column:
    /// computed from the items.
    pub pending_count: u64,
    /// Status `running` but no process holds the tenant lock for it: the run was killed
    /// (or its host died) and `resume` can finish it. Not a column: computed.
    pub interrupted: bool,
    pub host: String,
    pub os_user: String,
    pub teamsync_version: String,
    pub created_on: String,
    pub updated_on: String,
    pub finished_on: Option<String>,
    /// A `failed` job's [`FailKind`]; `signal` or `killed` for an interrupted one.
    pub reason_code: Option<String>,
    /// Why the job failed, aborted or was interrupted, as shown to the user.
    pub reason: Option<String>,
    /// A failed job's diagnostics (sheet or plan errors, drift), as JSON.
    pub errors: Option<Value>,
    /// Throttling answers (429, 503 with Retry-After) over all the job's runs.
    pub throttled_count: u64,
    /// The rate (req/s) the tenant's gate learned in the last throttled run; None when
    /// the tenant never throttled the job.
    pub settled_rate: Option<f64>,
}

impl JobRow {
    /// The exit code a run that left this job ends with ([`crate::exit::Exit::job`]).
    pub fn exit(&self) -> crate::exit::Exit {
        crate::exit::Exit::job(self.status, self.reason_code.as_deref())
    }

    /// The job as Fusion's "Get bulk jobs history" lists it (`id`, `job_id`, `kind`,
    /// `title`, `created_on`, `updated_on`) plus the status and counts Fusion only shows in
    /// the details, and our provenance fields.
    pub fn to_fusion_json(&self) -> Value {
        json!({
            "id": self.id,
            "job_id": self.job_id,
            "kind": self.kind,
            "title": self.title,
            "status": self.status.as_str(),
            "total_count": self.total_count,
            "success_count": self.success_count,
            "error_count": self.error_count,
            "unchanged_count": self.unchanged_count,
            "pending_count": self.pending_count,
            "interrupted": self.interrupted,
            "tenant": self.tenant,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "host": self.host,
            "os_user": self.os_user,
            "teamsync_version": self.teamsync_version,
            "created_on": self.created_on,
            "updated_on": self.updated_on,
            "finished_on": self.finished_on,
            "reason_code": self.reason_code,
            "abort_reason": self.reason,
            "errors": self.errors,
            "throttled_count": self.throttled_count,
            "settled_rate": self.settled_rate.map(|r| (r * 10.0).round() / 10.0),
        })
    }
}

pub(crate) const JOB_COLUMNS: &str =
    "id, job_id, kind, title, tenant, source, source_sha256, status, \
     total_count, success_count, error_count, unchanged_count, host, os_user, teamsync_version, \
     created_on, updated_on, finished_on, reason_code, reason, errors, throttled_count, settled_rate";

pub(crate) fn job_from_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    let status: String = r.get(7)?;
    Ok(JobRow {
        id: r.get(0)?,
        job_id: r.get(1)?,
        kind: r.get(2)?,
        title: r.get(3)?,
        tenant: r.get(4)?,
        source: r.get(5)?,
        source_sha256: r.get(6)?,
        status: JobStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                7,
                rusqlite::types::Type::Text,
                format!("job status {status:?}").into(),
            )
        })?,
        total_count: r.get::<_, i64>(8)?.max(0) as u64,
        success_count: r.get::<_, i64>(9)?.max(0) as u64,
        error_count: r.get::<_, i64>(10)?.max(0) as u64,
        unchanged_count: r.get::<_, i64>(11)?.max(0) as u64,
        pending_count: 0,
        interrupted: false,
        host: r.get(12)?,
        os_user: r.get(13)?,
        teamsync_version: r.get(14)?,
        created_on: r.get(15)?,
        updated_on: r.get(16)?,
        finished_on: r.get(17)?,
        reason_code: r.get(18)?,
        reason: r.get(19)?,
        errors: match r.get::<_, Option<String>>(20)? {
            Some(t) => Some(serde_json::from_str(&t).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    20,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?),
            None => None,
        },
        throttled_count: r.get::<_, i64>(21)?.max(0) as u64,
        settled_rate: r.get(22)?,
    })
}

/// Adds a run's throttling to the job: the count adds up, a learned rate replaces the
/// previous one (a run that was not throttled keeps the last one learned).
pub(crate) fn add_throttling(
    conn: &Connection,
    bulk_id: i64,
    throttled: u64,
    settled_rate: Option<f64>,
) -> Result<(), HistoryError> {
    let n = conn.execute(
        "UPDATE bulk_jobs SET throttled_count = throttled_count + ?2, \
         settled_rate = coalesce(?3, settled_rate) WHERE id = ?1",
        params![
            bulk_id,
            i64::try_from(throttled).unwrap_or(i64::MAX),
            settled_rate.filter(|r| r.is_finite())
        ],
    )?;
    if n == 0 {
        return Err(HistoryError::NoSuchJob(bulk_id.to_string()));
    }
    Ok(())
}

/// Item counts of one job, straight from its items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: u64,
    pub success: u64,
    pub error: u64,
    pub unchanged: u64,
    pub pending: u64,
}

pub(crate) fn counts(conn: &Connection, bulk_id: i64) -> Result<Counts, HistoryError> {
    let mut st = conn.prepare_cached(
        "SELECT status, COUNT(*) FROM job_items WHERE bulk_id = ?1 GROUP BY status",
    )?;
    let mut c = Counts::default();
    let rows = st.query_map([bulk_id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (s, n) = row?;
        let n = n.max(0) as u64;
        c.total += n;
        match ItemStatus::parse(&s) {
            Some(ItemStatus::Success) => c.success += n,
            Some(ItemStatus::Unchanged) => {
                c.success += n;
                c.unchanged += n;
            }
            Some(ItemStatus::Error) => c.error += n,
            Some(ItemStatus::Pending | ItemStatus::Running) | None => c.pending += n,
        }
    }
    Ok(c)
}

/// The status rule (ARCHITECTURE.md, "Job statuses"): everything as desired (unchanged included) → success;
/// every item failed → error; some failed or some never finished → partial; a fail-fast
/// stop → aborted whatever the counts; a signal → interrupted while items are left (a
/// signal after the last item changes nothing). An empty job (nothing to check) is a
/// success.
pub fn final_status(c: &Counts, end: &JobEnd) -> JobStatus {
    match end {
        JobEnd::Aborted(_) => return JobStatus::Aborted,
        JobEnd::Interrupted(_) if c.pending > 0 => return JobStatus::Interrupted,
        JobEnd::Interrupted(_) | JobEnd::Completed => {}
    }
    if c.total == 0 || (c.error == 0 && c.pending == 0) {
        JobStatus::Success
    } else if c.error == c.total {
        JobStatus::Error
    } else {
        JobStatus::Partial
    }
}

/// A time-ordered, human-readable unique id: `20261123T061500Z-3f9a`.
fn new_job_id() -> String {
    let t = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let r: u16 = rand::random();
    format!("{t}-{r:04x}")
}

pub(crate) fn host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Who ran the job. Schedulers (cron, systemd) often start jobs without `USER`, so fall
/// back to the process's uid and its name in /etc/passwd.
pub(crate) fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .or_else(user_from_uid)
        .unwrap_or_else(|| "unknown".into())
}

fn user_from_uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

/// Inserts a job row with `status`, drawing a new job id; returns (bulk id, job id).
fn insert_job_row(
    conn: &Connection,
    job: &NewJob,
    status: JobStatus,
    total: usize,
    ts: &str,
) -> Result<(i64, String), HistoryError> {
    let mut attempt = 0;
    loop {
        let job_id = new_job_id();
        let r = conn.execute(
            "INSERT INTO bulk_jobs (job_id, kind, title, tenant, source, source_sha256, status, \
             total_count, host, os_user, teamsync_version, created_on, updated_on) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
            params![
                job_id,
                job.kind.as_str(),
                job.title,
                job.tenant,
                job.source,
                job.source_sha256,
                status.as_str(),
                total as i64,
                host_name(),
                os_user(),
                env!("CARGO_PKG_VERSION"),
                ts,
            ],
        );
        match r {
            Ok(_) => return Ok((conn.last_insert_rowid(), job_id)),
            // Two jobs in the same second drew the same suffix: draw again.
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation && attempt < 8 =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Inserts a finished `failed` job without items: a run that stopped before its first
/// write still leaves its trace, with why (`kind`, `reason`) and its diagnostics.
pub(crate) fn insert_failed_job(
    conn: &Connection,
    job: &NewJob,
    kind: FailKind,
    reason: &str,
    errors: Option<&Value>,
) -> Result<(i64, String), HistoryError> {
    let ts = now();
    let (id, job_id) = insert_job_row(conn, job, JobStatus::Failed, 0, &ts)?;
    conn.execute(
        "UPDATE bulk_jobs SET reason_code = ?2, reason = ?3, errors = ?4, finished_on = ?5 WHERE id = ?1",
        params![
            id,
            kind.as_str(),
            reason,
            errors.map(std::string::ToString::to_string),
            ts
        ],
    )?;
    Ok((id, job_id))
}

/// Inserts the job (status running) and all its items in the caller's transaction.
pub(crate) fn insert_job(
    conn: &Connection,
    job: &NewJob,
    items: &[NewItem],
) -> Result<(i64, String, Vec<i64>), HistoryError> {
    let ts = now();
    let (id, job_id) = insert_job_row(conn, job, JobStatus::Running, items.len(), &ts)?;
    let mut ids = Vec::with_capacity(items.len());
    for it in items {
        ids.push(insert_item(conn, id, it, &ts)?);
    }
    refresh_counts(conn, id)?;
    Ok((id, job_id, ids))
}

/// Stores the live counts on the job row and returns them.
pub(crate) fn refresh_counts(conn: &Connection, bulk_id: i64) -> Result<Counts, HistoryError> {
    let c = counts(conn, bulk_id)?;
    conn.execute(
        "UPDATE bulk_jobs SET total_count = ?2, success_count = ?3, error_count = ?4, unchanged_count = ?5 \
         WHERE id = ?1",
        params![bulk_id, c.total as i64, c.success as i64, c.error as i64, c.unchanged as i64],
    )?;
    Ok(c)
}

pub(crate) fn load_job(conn: &Connection, bulk_id: i64) -> Result<Option<JobRow>, HistoryError> {
    let mut st = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE id = ?1"
    ))?;
    let row = st.query_row([bulk_id], job_from_row).optional()?;
    match row {
        Some(mut j) => {
            j.pending_count = counts(conn, j.id)?.pending;
            j.interrupted = is_interrupted(conn, &j)?;
            Ok(Some(j))
        }
        None => Ok(None),
    }
}

/// An interrupted job is one stopped by a signal, or one still `running` whose process
/// is gone: no lease names it, or the OS lock its lease stands for is free (see
/// [`super::lock::lease_is_live`]).
pub(crate) fn is_interrupted(conn: &Connection, j: &JobRow) -> Result<bool, HistoryError> {
    match j.status {
        JobStatus::Interrupted => Ok(true),
        JobStatus::Running => Ok(!super::lock::job_has_live_lease(conn, j.id)?),
        _ => Ok(false),
    }
}

/// Closes a job: interrupted items go back to pending (so `resume` finds them), counts
/// and status are recomputed from the items, and why it stopped is kept.
pub(crate) fn finish_job(
    conn: &Connection,
    bulk_id: i64,
    end: &JobEnd,
) -> Result<JobRow, HistoryError> {
    let ts = now();
    conn.execute(
        "UPDATE job_items SET status = 'pending', updated_on = ?2 WHERE bulk_id = ?1 AND status = 'running'",
        params![bulk_id, ts],
    )?;
    let c = refresh_counts(conn, bulk_id)?;
    let status = final_status(&c, end);
    let (code, reason) = match end {
        JobEnd::Completed => (None, None),
        JobEnd::Aborted(r) => (Some("aborted"), Some(r.as_str())),
        JobEnd::Interrupted(r) => (Some("signal"), Some(r.as_str())),
    };
    let n = conn.execute(
        "UPDATE bulk_jobs SET status = ?2, updated_on = ?3, finished_on = ?3, reason_code = ?4, reason = ?5 \
         WHERE id = ?1",
        params![bulk_id, status.as_str(), ts, code, reason],
    )?;
    if n == 0 {
        return Err(HistoryError::NoSuchJob(bulk_id.to_string()));
    }
    load_job(conn, bulk_id)?.ok_or_else(|| HistoryError::NoSuchJob(bulk_id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(total: u64, success: u64, error: u64, pending: u64) -> Counts {
        Counts {
            total,
            success,
            error,
            unchanged: 0,
            pending,
        }
    }

    #[test]
    fn status_rules() {
        let done = JobEnd::Completed;
        let abort = JobEnd::Aborted("fail-fast".into());
        let signal = JobEnd::Interrupted("SIGTERM".into());
        assert_eq!(final_status(&c(0, 0, 0, 0), &done), JobStatus::Success);
        assert_eq!(final_status(&c(3, 3, 0, 0), &done), JobStatus::Success);
        assert_eq!(final_status(&c(3, 2, 1, 0), &done), JobStatus::Partial);
        assert_eq!(final_status(&c(3, 0, 3, 0), &done), JobStatus::Error);
        assert_eq!(final_status(&c(3, 2, 0, 1), &done), JobStatus::Partial);
        assert_eq!(final_status(&c(3, 3, 0, 0), &abort), JobStatus::Aborted);
        assert_eq!(
            final_status(&c(3, 2, 0, 1), &signal),
            JobStatus::Interrupted
        );
        // A signal after the last item: the job simply finished.
        assert_eq!(final_status(&c(3, 3, 0, 0), &signal), JobStatus::Success);
        assert_eq!(final_status(&c(3, 2, 1, 0), &signal), JobStatus::Partial);
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn job_ids_sort_by_time_and_differ() {
        let a = new_job_id();
        assert_eq!(a.len(), "20261123T061500Z-3f9a".len());
        assert!(a.as_bytes()[8] == b'T' && a.as_bytes()[15] == b'Z');
    }
}
