//! One running job per tenant: a lock row with its holder's host, pid and a heartbeat.
//!
//! Two jobs on one tenant would race on the same numbers and licenses and double the
//! request rate the tenant sees. A lock is stale — and may be taken over — only when its
//! holder is provably gone: same host and no `/proc/<pid>`, or no heartbeat for
//! [`STALE_AFTER`]. A live lock is never taken over.

use super::jobs::host_name;
use super::{now, writer, History, HistoryError};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often a holder refreshes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// A heartbeat older than this marks the lock stale (the holder hung or its host died).
pub const STALE_AFTER: Duration = Duration::from_secs(300);

/// Who holds a lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
}

impl LockHolder {
    /// This process.
    pub fn current() -> LockHolder {
        LockHolder {
            host: host_name(),
            pid: std::process::id(),
        }
    }
}

/// A `job_locks` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockInfo {
    pub tenant: String,
    pub host: String,
    pub pid: u32,
    pub bulk_id: Option<i64>,
    pub acquired_on: String,
    pub heartbeat_on: String,
}

/// Whether `pid` runs on this host. Without `/proc` (not Linux) we cannot tell, and
/// assume it does: only the heartbeat age can then free the lock.
pub fn pid_alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return true;
    }
    proc.join(pid.to_string()).exists()
}

/// The staleness rule, kept pure so it is testable without processes or clocks.
pub fn is_stale(
    lock: &LockInfo,
    me: &LockHolder,
    now: DateTime<Utc>,
    alive: impl Fn(u32) -> bool,
) -> bool {
    if lock.host == me.host && !alive(lock.pid) {
        return true;
    }
    match DateTime::parse_from_rfc3339(&lock.heartbeat_on) {
        Ok(hb) => {
            now.signed_duration_since(hb.with_timezone(&Utc))
                .to_std()
                .unwrap_or(Duration::ZERO)
                > STALE_AFTER
        }
        // An unreadable heartbeat cannot prove the holder alive.
        Err(_) => true,
    }
}

pub(crate) fn read_lock(conn: &Connection, tenant: &str) -> Result<Option<LockInfo>, HistoryError> {
    Ok(conn
        .query_row(
            "SELECT tenant, host, pid, bulk_id, acquired_on, heartbeat_on FROM job_locks WHERE tenant = ?1",
            [tenant],
            |r| {
                Ok(LockInfo {
                    tenant: r.get(0)?,
                    host: r.get(1)?,
                    pid: r.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32,
                    bulk_id: r.get(3)?,
                    acquired_on: r.get(4)?,
                    heartbeat_on: r.get(5)?,
                })
            },
        )
        .optional()?)
}

/// Takes the lock. Runs inside the writer's IMMEDIATE transaction, so the check and the
/// insert are atomic against other processes: two cannot both see the lock free.
pub(crate) fn acquire(
    conn: &Connection,
    tenant: &str,
    me: &LockHolder,
    token: &str,
    alive: impl Fn(u32) -> bool,
) -> Result<(), HistoryError> {
    if let Some(cur) = read_lock(conn, tenant)? {
        if !is_stale(&cur, me, Utc::now(), alive) {
            return Err(HistoryError::LockHeld {
                tenant: tenant.to_string(),
                host: cur.host,
                pid: cur.pid,
                since: cur.acquired_on,
                heartbeat: cur.heartbeat_on,
            });
        }
        tracing::warn!(
            "taking over the stale lock of tenant {tenant} held by {}/pid {} since {} (last heartbeat {})",
            cur.host,
            cur.pid,
            cur.acquired_on,
            cur.heartbeat_on
        );
        conn.execute("DELETE FROM job_locks WHERE tenant = ?1", [tenant])?;
        // The dead holder's job did not finish: close it as aborted, its running items
        // back to pending, so it reads as what it is and `resume` can pick it up.
        if let Some(bulk_id) = cur.bulk_id {
            let still_running: i64 = conn.query_row(
                "SELECT COUNT(*) FROM bulk_jobs WHERE id = ?1 AND status IN ('running', 'pending')",
                [bulk_id],
                |r| r.get(0),
            )?;
            if still_running > 0 {
                super::jobs::finish_job(conn, bulk_id, true)?;
            }
        }
    }
    let ts = now();
    conn.execute(
        "INSERT INTO job_locks (tenant, token, host, pid, acquired_on, heartbeat_on) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![tenant, token, me.host, me.pid as i64, ts],
    )?;
    Ok(())
}

/// Refreshes the heartbeat; false when the row is no longer ours (taken over).
async fn beat(h: &History, tenant: &str, token: &str) -> Result<bool, HistoryError> {
    let (t, k) = (tenant.to_string(), token.to_string());
    let n = h
        .write(move |c| {
            Ok(c.execute(
                "UPDATE job_locks SET heartbeat_on = ?3 WHERE tenant = ?1 AND token = ?2",
                params![t, k, now()],
            )?)
        })
        .await?;
    Ok(n == 1)
}

/// A held tenant lock. Heartbeats in the background; released on [`LockGuard::release`]
/// or, failing that, on drop.
pub struct LockGuard {
    history: History,
    tenant: String,
    token: String,
    lost: Arc<AtomicBool>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl LockGuard {
    pub(crate) fn start(history: History, tenant: String, token: String) -> LockGuard {
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::runtime::Handle::try_current().ok().map(|rt| {
            let (h, t, k, lost) = (history.clone(), tenant.clone(), token.clone(), lost.clone());
            rt.spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match beat(&h, &t, &k).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!(
                                "the lock of tenant {t} was taken over by another process"
                            );
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!("lock heartbeat failed: {e}"),
                    }
                }
            })
        });
        LockGuard {
            history,
            tenant,
            token,
            lost,
            heartbeat,
            released: false,
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// True when another process took the lock over (we stalled past [`STALE_AFTER`]):
    /// the job must stop sending.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// One heartbeat now (the background task does this every [`HEARTBEAT_EVERY`]);
    /// false, and [`LockGuard::is_lost`] from then on, when another process took it over.
    pub async fn heartbeat(&self) -> Result<bool, HistoryError> {
        let ours = beat(&self.history, &self.tenant, &self.token).await?;
        if !ours {
            self.lost.store(true, Ordering::SeqCst);
        }
        Ok(ours)
    }

    /// The flag behind [`LockGuard::is_lost`], for a monitor that outlives a borrow.
    pub fn lost_flag(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    /// Records which job holds the lock (shown in "lock held" errors' details).
    pub async fn set_job(&self, bulk_id: i64) -> Result<(), HistoryError> {
        let (t, k) = (self.tenant.clone(), self.token.clone());
        self.history
            .write(move |c| {
                c.execute(
                    "UPDATE job_locks SET bulk_id = ?3 WHERE tenant = ?1 AND token = ?2",
                    params![t, k, bulk_id],
                )?;
                Ok(())
            })
            .await
    }

    pub async fn release(mut self) -> Result<(), HistoryError> {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        self.released = true;
        let (t, k) = (self.tenant.clone(), self.token.clone());
        self.history
            .write(move |c| {
                c.execute(
                    "DELETE FROM job_locks WHERE tenant = ?1 AND token = ?2",
                    params![t, k],
                )?;
                Ok(())
            })
            .await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        if !self.released {
            let (t, k) = (self.tenant.clone(), self.token.clone());
            self.history.send_detached(writer::detached(move |c| {
                c.execute(
                    "DELETE FROM job_locks WHERE tenant = ?1 AND token = ?2",
                    params![t, k],
                )?;
                Ok(())
            }));
        }
    }
}
