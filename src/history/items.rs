//! Item rows (`job_items`): one per UPN of a job, written before each of its requests goes
//! out and when it finishes, so a killed run leaves `running` items that `resume` picks up.
//!
//! What an item records so that the history never claims less than the tenant saw:
//! - `sending`: the request about to go out (its label and operation kinds), committed
//!   before it is sent; a history that cannot take this write stops the job before the
//!   request, so no write reaches the tenant unrecorded;
//! - `applied`: the operation kinds the tenant acknowledged (a create that succeeded
//!   stays recorded when a later step of the same user fails, and revert can undo it);
//! - `before`/`plan`: the tenant's values and the operations at plan time. A resume keeps
//!   them (it does not overwrite them with "no change needed now"): an item the tenant now
//!   shows as desired, whose stored plan had operations, was applied before the
//!   interruption, and revert puts it back.

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
    /// Operation kinds the tenant acknowledged (see [`crate::plan::Operation::kind`]).
    pub applied: Vec<String>,
    /// What the user should know beyond the status (e.g. applied before an interruption).
    pub note: Option<String>,
}

impl ItemResult {
    /// A result with nothing but its status (tests, and items that never sent).
    pub fn status(status: ItemStatus) -> ItemResult {
        ItemResult {
            status,
            error_code: None,
            error_reason: None,
            attempts: 0,
            user_id: None,
            applied: Vec::new(),
            note: None,
        }
    }
}

/// What an item is about to send; committed before the request goes out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intent {
    /// The connector's label of the request (e.g. `PUT users/{id}`).
    pub step: String,
    /// Kinds of the operations it carries.
    pub ops: Vec<String>,
    /// Operation kinds acknowledged so far (earlier steps of the same user).
    pub applied: Vec<String>,
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
    /// Operation kinds the tenant acknowledged.
    pub applied: Vec<String>,
    /// The request that was about to go out when the item was last written and whose
    /// answer was never recorded (`null` once it finished).
    pub sending: Option<Value>,
    pub note: Option<String>,
}

impl ItemRow {
    /// Whether the tenant may hold a change this item made: the item succeeded, the tenant
    /// acknowledged part of it, or a request of it went out without a recorded answer.
    /// Revert considers exactly these.
    pub fn may_have_changed_tenant(&self) -> bool {
        self.status == ItemStatus::Success || !self.applied.is_empty() || self.sending.is_some()
    }

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
            "note": self.note,
            "applied": self.applied,
        })
    }
}

pub(crate) const ITEM_COLUMNS: &str =
    "id, bulk_id, upn, data, changes, before, plan, user_id, status, \
     error_code, error_reason, attempts, created_on, updated_on, applied, sending, note";

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
        attempts: r.get::<_, i64>(11)?.clamp(0, i64::from(u32::MAX)) as u32,
        created_on: r.get(12)?,
        updated_on: r.get(13)?,
        applied: serde_json::from_value(json_col(r, 14)?).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(14, rusqlite::types::Type::Text, Box::new(e))
        })?,
        sending: match r.get::<_, Option<String>>(15)? {
            Some(_) => Some(json_col(r, 15)?),
            None => None,
        },
        note: r.get(16)?,
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
        it.plan.as_ref().map(std::string::ToString::to_string),
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

/// Records the request an item is about to send (status running). The caller sends only
/// once this is committed.
pub(crate) fn set_sending(
    conn: &Connection,
    item_id: i64,
    intent: &Intent,
) -> Result<(), HistoryError> {
    let ts = now();
    let sending = json!({ "step": intent.step, "ops": intent.ops, "since": ts });
    let mut st = conn.prepare_cached(
        "UPDATE job_items SET status = 'running', sending = ?2, applied = ?3, updated_on = ?4 WHERE id = ?1",
    )?;
    let applied = serde_json::to_string(&intent.applied)
        .map_err(|e| HistoryError::Db(format!("item {item_id}: {e}")))?;
    if st.execute(params![item_id, sending.to_string(), applied, ts])? == 0 {
        return Err(HistoryError::NoSuchItem(item_id));
    }
    touch_job(conn, item_id, &ts)
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
         user_id = COALESCE(?6, user_id), updated_on = ?7, applied = ?8, note = ?9, sending = NULL \
         WHERE id = ?1",
    )?;
    let applied = serde_json::to_string(&r.applied)
        .map_err(|e| HistoryError::Db(format!("item {item_id}: {e}")))?;
    let n = st.execute(params![
        item_id,
        r.status.as_str(),
        r.error_code,
        r.error_reason,
        i64::from(r.attempts),
        r.user_id,
        ts,
        applied,
        r.note,
    ])?;
    if n == 0 {
        return Err(HistoryError::NoSuchItem(item_id));
    }
    touch_job(conn, item_id, &ts)
}

/// Re-plans an interrupted job in place: each UPN must be one of the job's pending or
/// running items; its row goes back to pending with what resume will send, or is closed
/// when the fresh tenant state already matches the desired row.
///
/// The job's record of the tenant *before* it is kept, not replaced by the fresh
/// snapshot: the stored `before`, `changes` and `plan` describe what this job set out to
/// change, and revert needs them. Fields the fresh plan touches that the stored one did
/// not (someone changed the user meanwhile) are added. An item with nothing left to do
/// whose stored plan had operations was applied before the interruption: it ends
/// `success` with a note (and all its operations as applied), not `unchanged`.
pub(crate) fn replan_items(
    conn: &Connection,
    bulk_id: i64,
    items: &[NewItem],
) -> Result<Vec<i64>, HistoryError> {
    let ts = now();
    let mut find = conn.prepare_cached(
        "SELECT id, status, before, changes, plan, applied FROM job_items WHERE bulk_id = ?1 AND upn = ?2",
    )?;
    let mut upd = conn.prepare_cached(
        "UPDATE job_items SET before = ?2, changes = ?3, plan = ?4, user_id = COALESCE(?5, user_id), \
         status = ?6, error_code = NULL, error_reason = NULL, note = ?7, applied = ?8, updated_on = ?9 \
         WHERE id = ?1",
    )?;
    let mut ids = Vec::with_capacity(items.len());
    for it in items {
        type Found = (i64, String, String, String, Option<String>, String);
        let found: Option<Found> = {
            let mut rows = find.query(params![bulk_id, it.upn])?;
            match rows.next()? {
                Some(r) => Some((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                )),
                None => None,
            }
        };
        let Some((id, status, before, changes, plan, applied)) = found else {
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
        let corrupt = |what: &str, e: serde_json::Error| {
            HistoryError::Corrupt(format!("job {bulk_id} item {id} ({}): {what}: {e}", it.upn))
        };
        let stored_before: Value =
            serde_json::from_str(&before).map_err(|e| corrupt("before", e))?;
        let stored_changes: Value =
            serde_json::from_str(&changes).map_err(|e| corrupt("changes", e))?;
        let stored_plan: Option<Value> = plan
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| corrupt("plan", e))?;
        let mut applied: Vec<String> =
            serde_json::from_str(&applied).map_err(|e| corrupt("applied", e))?;
        let before = merge_objects(&stored_before, &it.before);
        let changes = merge_changes(&stored_changes, &it.changes);
        let plan = match (&stored_plan, &it.plan) {
            (Some(p), _) => Some(with_before(p, &before)),
            (None, p) => p.clone(),
        };
        let stored_ops: Vec<String> = stored_plan
            .as_ref()
            .and_then(|p| p.get("ops"))
            .and_then(Value::as_array)
            .map(|ops| {
                ops.iter()
                    .filter_map(|o| o.get("op").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let (status, note) = match it.status {
            ItemStatus::Unchanged if !stored_ops.is_empty() => {
                for k in stored_ops {
                    if !applied.contains(&k) {
                        applied.push(k);
                    }
                }
                (
                    ItemStatus::Success,
                    Some("applied before the interruption".to_string()),
                )
            }
            s => (s, None),
        };
        let applied = serde_json::to_string(&applied)
            .map_err(|e| HistoryError::Db(format!("item {id}: {e}")))?;
        upd.execute(params![
            id,
            before.to_string(),
            changes.to_string(),
            plan.as_ref().map(std::string::ToString::to_string),
            it.user_id,
            status.as_str(),
            note,
            applied,
            ts,
        ])?;
        ids.push(id);
    }
    conn.execute(
        "UPDATE bulk_jobs SET status = 'running', updated_on = ?2, finished_on = NULL, \
         reason_code = NULL, reason = NULL WHERE id = ?1",
        params![bulk_id, ts],
    )?;
    super::jobs::refresh_counts(conn, bulk_id)?;
    Ok(ids)
}

/// `base` with the keys of `extra` it lacks (the stored values win).
fn merge_objects(base: &Value, extra: &Value) -> Value {
    let mut out = base.as_object().cloned().unwrap_or_default();
    if let Some(extra) = extra.as_object() {
        for (k, v) in extra {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(out)
}

/// The stored changes plus fresh ones on fields they do not cover.
fn merge_changes(stored: &Value, fresh: &Value) -> Value {
    let mut out = stored.as_array().cloned().unwrap_or_default();
    let field = |c: &Value| c.get("field").and_then(Value::as_str).map(str::to_string);
    let known: std::collections::HashSet<String> = out.iter().filter_map(field).collect();
    if let Some(fresh) = fresh.as_array() {
        out.extend(
            fresh
                .iter()
                .filter(|c| field(c).is_some_and(|f| !known.contains(&f)))
                .cloned(),
        );
    }
    Value::Array(out)
}

/// A stored plan with its `before` replaced.
fn with_before(plan: &Value, before: &Value) -> Value {
    let mut p = plan.clone();
    if let Some(o) = p.as_object_mut() {
        o.insert("before".into(), before.clone());
    }
    p
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
