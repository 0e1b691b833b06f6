//! Item rows (`job_items`): one per UPN of a job, written before it is sent and when it
//! finishes, so a killed run leaves `running` items that `resume` picks up.

use super::{now, HistoryError};
use rusqlite::{params, Connection, Row};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    Pending,
    Running,
    Success,
    Error,
    Unchanged,
}

impl ItemStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ItemStatus::Pending => "pending",
            ItemStatus::Running => "running",
            ItemStatus::Success => "success",
            ItemStatus::Error => "error",
            ItemStatus::Unchanged => "unchanged",
        }
    }
    pub fn parse(s: &str) -> Option<ItemStatus> {
        Some(match s {
            "pending" => ItemStatus::Pending,
            "running" => ItemStatus::Running,
            "success" => ItemStatus::Success,
            "error" => ItemStatus::Error,
            "unchanged" => ItemStatus::Unchanged,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An item as a job is created (or re-planned by resume).
#[derive(Debug, Clone)]
pub struct NewItem {
    pub upn: String,
    /// The desired row (a serialised `UserSpec`).
    pub data: Value,
    pub changes: Value,
    pub before: Value,
    /// The `UserPlan` the item runs, kept for resume and revert.
    pub plan: Option<Value>,
    pub user_id: Option<String>,
    /// `Pending` or `Unchanged`.
    pub status: ItemStatus,
}

/// How an item ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemResult {
    pub status: ItemStatus,
    pub error_code: Option<String>,
    pub error_reason: Option<String>,
    pub attempts: u32,
    /// The backend id, filled in by a create.
    pub user_id: Option<String>,
}

/// One `job_items` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemRow {
    pub id: i64,
    pub bulk_id: i64,
    pub upn: String,
    pub data: Value,
    pub changes: Value,
    pub before: Value,
    pub plan: Option<Value>,
    pub user_id: Option<String>,
    pub status: ItemStatus,
    pub error_code: Option<String>,
    pub error_reason: Option<String>,
    pub attempts: u32,
    pub created_on: String,
    pub updated_on: String,
}

impl ItemRow {
    /// The item as Fusion's "Get bulk job details" shows it, plus our error fields and the
    /// changes and prior values.
    pub fn to_fusion_json(&self) -> Value {
        json!({
            "id": self.id,
            "upn": self.upn,
            "data": self.data,
            "status": self.status.as_str(),
            "created_on": self.created_on,
            "updated_on": self.updated_on,
            "error_code": self.error_code,
            "error_reason": self.error_reason,
            "changes": self.changes,
            "before": self.before,
        })
    }
}

pub(crate) const ITEM_COLUMNS: &str =
    "id, bulk_id, upn, data, changes, before, plan, user_id, status, \
     error_code, error_reason, attempts, created_on, updated_on";

fn json_col(r: &Row<'_>, i: usize) -> rusqlite::Result<Value> {
    let s: String = r.get(i)?;
    serde_json::from_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub(crate) fn item_from_row(r: &Row<'_>) -> rusqlite::Result<ItemRow> {
    let status: String = r.get(8)?;
    let plan: Option<String> = r.get(6)?;
    Ok(ItemRow {
        id: r.get(0)?,
        bulk_id: r.get(1)?,
        upn: r.get(2)?,
        data: json_col(r, 3)?,
        changes: json_col(r, 4)?,
        before: json_col(r, 5)?,
        plan: match plan {
            Some(p) => Some(serde_json::from_str(&p).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    6,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?),
            None => None,
        },
        user_id: r.get(7)?,
        status: ItemStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                8,
                rusqlite::types::Type::Text,
                format!("item status {status:?}").into(),
            )
        })?,
        error_code: r.get(9)?,
        error_reason: r.get(10)?,
        attempts: r.get::<_, i64>(11)?.clamp(0, u32::MAX as i64) as u32,
        created_on: r.get(12)?,
        updated_on: r.get(13)?,
    })
}

pub(crate) fn insert_item(
    conn: &Connection,
    bulk_id: i64,
    it: &NewItem,
    ts: &str,
) -> Result<i64, HistoryError> {
    let mut st = conn.prepare_cached(
        "INSERT INTO job_items (bulk_id, upn, data, changes, before, plan, user_id, status, created_on, updated_on) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )?;
    st.execute(params![
        bulk_id,
        it.upn,
        it.data.to_string(),
        it.changes.to_string(),
        it.before.to_string(),
        it.plan.as_ref().map(|p| p.to_string()),
        it.user_id,
        it.status.as_str(),
        ts,
    ])?;
    Ok(conn.last_insert_rowid())
}

fn touch_job(conn: &Connection, item_id: i64, ts: &str) -> Result<(), HistoryError> {
    let mut st = conn
        .prepare_cached("UPDATE bulk_jobs SET updated_on = ?2 WHERE id = (SELECT bulk_id FROM job_items WHERE id = ?1)")?;
    st.execute(params![item_id, ts])?;
    Ok(())
}

pub(crate) fn set_running(conn: &Connection, item_id: i64) -> Result<(), HistoryError> {
    let ts = now();
    let mut st = conn
        .prepare_cached("UPDATE job_items SET status = 'running', updated_on = ?2 WHERE id = ?1")?;
    if st.execute(params![item_id, ts])? == 0 {
        return Err(HistoryError::NoSuchItem(item_id));
    }
    touch_job(conn, item_id, &ts)
}

pub(crate) fn set_finished(
    conn: &Connection,
    item_id: i64,
    r: &ItemResult,
) -> Result<(), HistoryError> {
    let ts = now();
    let mut st = conn.prepare_cached(
        "UPDATE job_items SET status = ?2, error_code = ?3, error_reason = ?4, attempts = ?5, \
         user_id = COALESCE(?6, user_id), updated_on = ?7 WHERE id = ?1",
    )?;
    let n = st.execute(params![
        item_id,
        r.status.as_str(),
        r.error_code,
        r.error_reason,
        r.attempts as i64,
        r.user_id,
        ts,
    ])?;
    if n == 0 {
        return Err(HistoryError::NoSuchItem(item_id));
    }
    touch_job(conn, item_id, &ts)
}

/// Re-plans an interrupted job in place: each UPN must be one of the job's pending or
/// running items; its row takes the new plan and goes back to pending (or unchanged when
/// the fresh tenant state already matches).
pub(crate) fn replan_items(
    conn: &Connection,
    bulk_id: i64,
    items: &[NewItem],
) -> Result<Vec<i64>, HistoryError> {
    let ts = now();
    let mut find =
        conn.prepare_cached("SELECT id, status FROM job_items WHERE bulk_id = ?1 AND upn = ?2")?;
    let mut upd = conn.prepare_cached(
        "UPDATE job_items SET data = ?2, changes = ?3, before = ?4, plan = ?5, user_id = COALESCE(?6, user_id), \
         status = ?7, error_code = NULL, error_reason = NULL, updated_on = ?8 WHERE id = ?1",
    )?;
    let mut ids = Vec::with_capacity(items.len());
    for it in items {
        let found: Option<(i64, String)> = {
            let mut rows = find.query(params![bulk_id, it.upn])?;
            match rows.next()? {
                Some(r) => Some((r.get(0)?, r.get(1)?)),
                None => None,
            }
        };
        let Some((id, status)) = found else {
            return Err(HistoryError::Resume(format!(
                "{} is not an item of job {bulk_id}",
                it.upn
            )));
        };
        if status != "pending" && status != "running" {
            return Err(HistoryError::Resume(format!(
                "{} already finished in job {bulk_id} (status {status}); only pending and interrupted items are resumed",
                it.upn
            )));
        }
        upd.execute(params![
            id,
            it.data.to_string(),
            it.changes.to_string(),
            it.before.to_string(),
            it.plan.as_ref().map(|p| p.to_string()),
            it.user_id,
            it.status.as_str(),
            ts,
        ])?;
        ids.push(id);
    }
    conn.execute(
        "UPDATE bulk_jobs SET status = 'running', updated_on = ?2, finished_on = NULL WHERE id = ?1",
        params![bulk_id, ts],
    )?;
    super::jobs::refresh_counts(conn, bulk_id)?;
    Ok(ids)
}

/// Ends unfinished items of a job in error without sending anything: what `resume` does
/// with rows its re-plan refuses (a number now held by someone else, a license gone).
pub(crate) fn fail_items(
    conn: &Connection,
    bulk_id: i64,
    failures: &[(String, String, String)],
) -> Result<(), HistoryError> {
    let ts = now();
    let mut st = conn.prepare_cached(
        "UPDATE job_items SET status = 'error', error_code = ?3, error_reason = ?4, updated_on = ?5 \
         WHERE bulk_id = ?1 AND upn = ?2 AND status IN ('pending', 'running')",
    )?;
    for (upn, code, reason) in failures {
        if st.execute(params![bulk_id, upn, code, reason, ts])? == 0 {
            return Err(HistoryError::Resume(format!(
                "{upn} is not an unfinished item of job {bulk_id}"
            )));
        }
    }
    super::jobs::refresh_counts(conn, bulk_id)?;
    Ok(())
}
