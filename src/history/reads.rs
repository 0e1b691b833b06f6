//! Two records of migration 5, for the fewest requests:
//! - a job's bulk requests ([`BackendBulkRow`]): their titles and the ids the backend's
//!   own bulk history gave them (Fusion's `GET users/bulk`), shown by `jobs show` and the
//!   report, so one job reads across both histories;
//! - the last verified read of each user ([`UserRead`]), per tenant, which an incremental
//!   refresh trusts instead of reading the user again (see `crate::refresh`).

use super::{History, HistoryError};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// One bulk request a job sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendBulkRow {
    /// The request's name, unique per request (`teamsync <job> <run>.<n>`).
    pub title: String,
    /// The backend's bulk id (`GET users/bulk/{id}`), when its history was read.
    pub backend_id: Option<i64>,
    /// The backend's job id.
    pub backend_job_id: Option<String>,
    /// Users the request carried, and those it failed.
    pub items: u64,
    pub failed: u64,
}

/// What a verified read of a user showed, as an incremental refresh compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRead {
    pub upn: String,
    /// Fingerprint of what the list shows (name, location, licenses, number).
    pub listed: String,
    /// Fingerprint of the row the user was planned from; `None` when not known.
    pub desired: Option<String>,
    /// The details the single-user read returned (JSON of `UserDetails`).
    pub details: String,
    /// When it was read (RFC 3339).
    pub read_on: String,
}

fn add_bulks(c: &Connection, bulk_id: i64, rows: &[BackendBulkRow]) -> Result<(), HistoryError> {
    let now = super::now();
    let mut st = c.prepare_cached(
        "INSERT INTO backend_bulks (bulk_id, title, backend_id, backend_job_id, items, failed, created_on) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for r in rows {
        st.execute(params![
            bulk_id,
            r.title,
            r.backend_id,
            r.backend_job_id,
            i64::try_from(r.items).unwrap_or(i64::MAX),
            i64::try_from(r.failed).unwrap_or(i64::MAX),
            now
        ])?;
    }
    Ok(())
}

/// A `user_reads` row selected as `upn, listed, desired, details, read_on`.
fn user_read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UserRead> {
    Ok(UserRead {
        upn: r.get(0)?,
        listed: r.get(1)?,
        desired: r.get(2)?,
        details: r.get(3)?,
        read_on: r.get(4)?,
    })
}

fn put_reads(c: &Connection, tenant: &str, reads: &[UserRead]) -> Result<(), HistoryError> {
    let mut st = c.prepare_cached(
        "INSERT INTO user_reads (tenant, upn, listed, desired, details, read_on) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (tenant, upn) DO UPDATE SET listed = excluded.listed, \
         desired = excluded.desired, details = excluded.details, read_on = excluded.read_on",
    )?;
    for r in reads {
        st.execute(params![
            tenant,
            r.upn.to_lowercase(),
            r.listed,
            r.desired,
            r.details,
            r.read_on
        ])?;
    }
    Ok(())
}

impl History {
    /// Records a run's bulk requests on its job.
    pub async fn add_backend_bulks(
        &self,
        bulk_id: i64,
        rows: Vec<BackendBulkRow>,
    ) -> Result<(), HistoryError> {
        self.write(move |c| add_bulks(c, bulk_id, &rows)).await
    }

    /// A job's bulk requests, in the order they were recorded.
    pub fn backend_bulks(&self, bulk_id: i64) -> Result<Vec<BackendBulkRow>, HistoryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT title, backend_id, backend_job_id, items, failed FROM backend_bulks \
                 WHERE bulk_id = ?1 ORDER BY id",
            )?;
            let rows = st
                .query_map([bulk_id], |r| {
                    Ok(BackendBulkRow {
                        title: r.get(0)?,
                        backend_id: r.get(1)?,
                        backend_job_id: r.get(2)?,
                        items: r.get::<_, i64>(3)?.max(0) as u64,
                        failed: r.get::<_, i64>(4)?.max(0) as u64,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
    }

    /// Keeps the verified reads of `tenant`'s users (replacing earlier ones).
    pub async fn put_user_reads(
        &self,
        tenant: String,
        reads: Vec<UserRead>,
    ) -> Result<(), HistoryError> {
        if reads.is_empty() {
            return Ok(());
        }
        self.write(move |c| put_reads(c, &tenant, &reads)).await
    }

    /// The last verified read of one of `tenant`'s users.
    pub fn user_read(&self, tenant: &str, upn: &str) -> Result<Option<UserRead>, HistoryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT upn, listed, desired, details, read_on FROM user_reads \
                 WHERE tenant = ?1 AND upn = ?2",
            )?;
            Ok(st
                .query_row(params![tenant, upn.to_lowercase()], user_read_row)
                .optional()?)
        })
    }

    /// Every verified read of `tenant`, by UPN (lower case).
    pub fn user_reads(
        &self,
        tenant: &str,
    ) -> Result<std::collections::HashMap<String, UserRead>, HistoryError> {
        self.read(|c| {
            let mut st = c.prepare_cached(
                "SELECT upn, listed, desired, details, read_on FROM user_reads WHERE tenant = ?1",
            )?;
            let rows = st
                .query_map([tenant], user_read_row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows.into_iter().map(|r| (r.upn.clone(), r)).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_and_bulks_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(&dir.path().join("h.db")).unwrap();
        let read = |listed: &str| UserRead {
            upn: "Ann@X.com".into(),
            listed: listed.into(),
            desired: Some("d".into()),
            details: "{}".into(),
            read_on: "2024-01-01T00:00:00.000Z".into(),
        };
        h.put_user_reads("t".into(), vec![read("a")]).await.unwrap();
        h.put_user_reads("t".into(), vec![read("b")]).await.unwrap();
        let r = h.user_read("t", "ann@x.com").unwrap().unwrap();
        assert_eq!((r.upn.as_str(), r.listed.as_str()), ("ann@x.com", "b"));
        assert!(h.user_read("other", "ann@x.com").unwrap().is_none());
        assert_eq!(h.user_reads("t").unwrap().len(), 1);
    }
}
