//! Reads for `jobs list`, `jobs show`, exports, resume and reports. They run on the
//! reader connection (WAL): a report can be produced while a job is writing.

use super::items::{item_from_row, ItemRow, ItemStatus, ITEM_COLUMNS};
use super::jobs::{counts, job_from_row, JobRow, JobStatus, JOB_COLUMNS};
use super::{rfc3339, History, HistoryError};
use crate::model::UserSpec;
use chrono::{DateTime, Utc};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde_json::{json, Value};

/// Which jobs `list_jobs` returns; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub tenant: Option<String>,
    pub status: Option<JobStatus>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

/// Jobs still running hold counts that are only refreshed at milestones; show live ones.
/// A `running` job whose process is gone reads as what it is: `interrupted`.
fn with_live_counts(conn: &Connection, mut j: JobRow) -> Result<JobRow, HistoryError> {
    let c = counts(conn, j.id)?;
    if matches!(j.status, JobStatus::Running | JobStatus::Pending) {
        j.total_count = c.total;
        j.success_count = c.success;
        j.error_count = c.error;
        j.unchanged_count = c.unchanged;
    }
    j.pending_count = c.pending;
    j.interrupted = super::jobs::is_interrupted(conn, &j)?;
    if j.status == JobStatus::Running && j.interrupted {
        j.status = JobStatus::Interrupted;
        j.reason_code.get_or_insert_with(|| "killed".into());
        j.reason.get_or_insert_with(|| {
            "the process running it stopped without closing the job (killed?); `teamsync resume` finishes it".into()
        });
    }
    Ok(j)
}

impl History {
    /// One page (1-based) of jobs, newest first, and the total number matching.
    pub fn list_jobs(
        &self,
        filter: &JobFilter,
        page: u32,
        page_size: u32,
    ) -> Result<(Vec<JobRow>, u64), HistoryError> {
        let page = page.max(1);
        let page_size = page_size.clamp(1, 10_000);
        self.read(|c| {
            let mut wh = Vec::new();
            let mut args: Vec<SqlValue> = Vec::new();
            if let Some(t) = &filter.tenant {
                args.push(SqlValue::Text(t.clone()));
                wh.push(format!("tenant = ?{}", args.len()));
            }
            // `running` and `interrupted` depend on whether the process is alive, which
            // only the rows can tell: both are read, judged, then paged here.
            let live_status = matches!(
                filter.status,
                Some(JobStatus::Running | JobStatus::Interrupted)
            );
            if live_status {
                wh.push("status IN ('running', 'interrupted')".into());
            } else if let Some(s) = filter.status {
                args.push(SqlValue::Text(s.as_str().into()));
                wh.push(format!("status = ?{}", args.len()));
            }
            if let Some(t) = filter.since {
                args.push(SqlValue::Text(rfc3339(t)));
                wh.push(format!("created_on >= ?{}", args.len()));
            }
            if let Some(t) = filter.until {
                args.push(SqlValue::Text(rfc3339(t)));
                wh.push(format!("created_on < ?{}", args.len()));
            }
            let where_sql = if wh.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", wh.join(" AND "))
            };
            if live_status {
                let mut st = c.prepare(&format!(
                    "SELECT {JOB_COLUMNS} FROM bulk_jobs{where_sql} ORDER BY id DESC"
                ))?;
                let rows = st
                    .query_map(params_from_iter(args.iter()), job_from_row)?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut rows = rows
                    .into_iter()
                    .map(|j| with_live_counts(c, j))
                    .collect::<Result<Vec<_>, _>>()?;
                rows.retain(|j| Some(j.status) == filter.status);
                let total = rows.len() as u64;
                let skip = (page as usize - 1).saturating_mul(page_size as usize);
                let rows = rows.into_iter().skip(skip).take(page_size as usize).collect();
                return Ok((rows, total));
            }
            let total: i64 = c.query_row(
                &format!("SELECT COUNT(*) FROM bulk_jobs{where_sql}"),
                params_from_iter(args.iter()),
                |r| r.get(0),
            )?;
            let n = args.len();
            args.push(SqlValue::Integer(i64::from(page_size)));
            args.push(SqlValue::Integer(i64::from(page - 1) * i64::from(page_size)));
            let mut st = c.prepare(&format!(
                "SELECT {JOB_COLUMNS} FROM bulk_jobs{where_sql} ORDER BY id DESC LIMIT ?{} OFFSET ?{}",
                n + 1,
                n + 2
            ))?;
            let rows = st
                .query_map(params_from_iter(args.iter()), job_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let rows = rows
                .into_iter()
                .map(|j| with_live_counts(c, j))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((rows, total.max(0) as u64))
        })
    }

    /// A job by its integer id (`42`) or its job id (`20261123T061500Z-3f9a`).
    pub fn get_job(&self, id_or_job_id: &str) -> Result<Option<JobRow>, HistoryError> {
        let key = id_or_job_id.trim();
        self.read(|c| {
            let mut row = c
                .query_row(
                    &format!("SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE job_id = ?1"),
                    [key],
                    job_from_row,
                )
                .optional()?;
            if row.is_none() {
                if let Ok(id) = key.parse::<i64>() {
                    row = c
                        .query_row(
                            &format!("SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE id = ?1"),
                            [id],
                            job_from_row,
                        )
                        .optional()?;
                }
            }
            row.map(|j| with_live_counts(c, j)).transpose()
        })
    }

    /// A job's items in id order; `statuses` empty means all.
    pub fn job_items(
        &self,
        bulk_id: i64,
        statuses: &[ItemStatus],
    ) -> Result<Vec<ItemRow>, HistoryError> {
        self.read(|c| {
            let mut args: Vec<SqlValue> = vec![SqlValue::Integer(bulk_id)];
            let mut sql = format!("SELECT {ITEM_COLUMNS} FROM job_items WHERE bulk_id = ?1");
            if !statuses.is_empty() {
                let marks: Vec<String> = statuses
                    .iter()
                    .map(|s| {
                        args.push(SqlValue::Text(s.as_str().into()));
                        format!("?{}", args.len())
                    })
                    .collect();
                sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
            }
            sql.push_str(" ORDER BY id");
            let mut st = c.prepare(&sql)?;
            let rows = st
                .query_map(params_from_iter(args.iter()), item_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Items not finished: pending, or running when the process stopped (interrupted).
    pub fn pending_items(&self, bulk_id: i64) -> Result<Vec<ItemRow>, HistoryError> {
        self.job_items(bulk_id, &[ItemStatus::Pending, ItemStatus::Running])
    }

    /// The desired rows of a job's unfinished items, for `resume` to re-plan against fresh
    /// tenant state (the sheet may have changed since; the job's rows have not).
    pub fn pending_specs(&self, bulk_id: i64) -> Result<Vec<UserSpec>, HistoryError> {
        self.pending_items(bulk_id)?
            .into_iter()
            .map(|it| {
                serde_json::from_value(it.data).map_err(|e| {
                    HistoryError::Corrupt(format!("job {bulk_id} item {} ({}): {e}", it.id, it.upn))
                })
            })
            .collect()
    }

    /// A job's items counted by (status, planned action): what reports turn into
    /// created / updated / disabled / deleted / unchanged / failed counts. The action is
    /// the stored plan's (`None` for an item stored without one).
    pub fn item_outcomes(
        &self,
        bulk_id: i64,
    ) -> Result<Vec<(String, Option<String>, u64)>, HistoryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT status, json_extract(plan, '$.action'), COUNT(*) FROM job_items \
                 WHERE bulk_id = ?1 GROUP BY 1, 2",
            )?;
            let rows = st.query_map([bulk_id], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, i64>(2)?.max(0) as u64,
                ))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Fusion's "Get bulk job details" shape: the job with its items (`statuses` filters
    /// the items; empty = all). `None` when there is no such job.
    pub fn job_details_json(
        &self,
        id_or_job_id: &str,
        statuses: &[ItemStatus],
    ) -> Result<Option<Value>, HistoryError> {
        let Some(job) = self.get_job(id_or_job_id)? else {
            return Ok(None);
        };
        let items = self.job_items(job.id, statuses)?;
        let mut v = job.to_fusion_json();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "job_items".into(),
                Value::Array(items.iter().map(ItemRow::to_fusion_json).collect()),
            );
        }
        Ok(Some(v))
    }
}

/// Fusion's "Get bulk jobs history" page: `{bulks, page, pages, results}`.
pub fn jobs_page_json(rows: &[JobRow], page: u32, page_size: u32, total: u64) -> Value {
    let size = u64::from(page_size.max(1));
    json!({
        "bulks": rows.iter().map(JobRow::to_fusion_json).collect::<Vec<_>>(),
        "page": page.max(1),
        "pages": total.div_ceil(size),
        "results": total,
    })
}

/// Jobs last updated before `cutoff` that hold no tenant lock: what `prune` deletes.
pub(crate) fn prunable(c: &Connection, cutoff: &str) -> Result<Vec<JobRow>, HistoryError> {
    let mut st = c.prepare(&format!(
        "SELECT {JOB_COLUMNS} FROM bulk_jobs WHERE COALESCE(finished_on, updated_on) < ?1 \
         AND id NOT IN (SELECT bulk_id FROM job_locks WHERE bulk_id IS NOT NULL) ORDER BY id"
    ))?;
    let rows = st.query_map(params![cutoff], super::jobs::job_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Deletes the jobs `ids` (with their items), except one that took a tenant lock since
/// it was listed. Returns the jobs deleted.
pub(crate) fn delete_jobs(c: &Connection, ids: &[i64]) -> Result<usize, HistoryError> {
    let mut st = c.prepare_cached(
        "DELETE FROM bulk_jobs WHERE id = ?1 \
         AND id NOT IN (SELECT bulk_id FROM job_locks WHERE bulk_id IS NOT NULL)",
    )?;
    let mut n = 0;
    for id in ids {
        n += st.execute([id])?;
    }
    Ok(n)
}

pub(crate) fn prune(c: &Connection, cutoff: &str) -> Result<usize, HistoryError> {
    // Items go with their job (ON DELETE CASCADE).
    let n = c.execute(
        "DELETE FROM bulk_jobs WHERE COALESCE(finished_on, updated_on) < ?1 \
         AND id NOT IN (SELECT bulk_id FROM job_locks WHERE bulk_id IS NOT NULL)",
        params![cutoff],
    )?;
    Ok(n)
}
