//! One run per tenant, from its first request to its last record: an OS advisory lock
//! (`flock`) on a file named after the tenant's identity, plus a lease row in the history
//! that says who holds it.
//!
//! Why a lock *file* and not only a row in the history: the row lived in one database, so a
//! second `--db` gave no exclusion at all, and a row outlives a killed process, so it had to
//! be judged stale by pid (reused pids, PID 1 in containers) or by a 300 s heartbeat. The
//! kernel drops a `flock` the moment its process dies, however it dies, so none of that
//! guessing is left. The file lives in one folder every run on the machine meets
//! (`lock_dir`, see [`default_lock_dir`]) and is named by a hash of the tenant's identity
//! (backend, address and tenant path), so two tenant names for the same tenant, or two
//! history databases, still exclude each other.
//!
//! The lease row (`job_locks`) is for reporting: which process and job hold the tenant,
//! and whether a job still `running` in the history is alive ([`job_has_live_lease`]).
//! The lock file holds the same facts as JSON, so a second run names the holder even when
//! it writes to another history.
//!
//! Release unlinks the file before unlocking it; acquiring checks that the file it locked
//! is still the one at the path, so a run can never hold a lock on a file that was
//! unlinked under it while a newer run locks its replacement.

use super::jobs::{host_name, JobEnd};
use super::{now, writer, History, HistoryError};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a run keeps trying a held lock before it reports the tenant busy. Readers
/// (`jobs list`) take the lock shared for a few microseconds to see whether a job is
/// alive; this rides that out without making a real refusal slow.
const BUSY_RETRY: Duration = Duration::from_millis(100);
const BUSY_RETRY_EVERY: Duration = Duration::from_millis(20);

/// Where lock files live when the config sets no `lock_dir`: the user's runtime folder
/// (`$XDG_RUNTIME_DIR/teamsync/locks`, a tmpfs that empties at logout), else the system
/// temporary folder (`/tmp/teamsync-locks`). Runs that must meet across OS users, or under
/// systemd's `PrivateTmp`, need a `lock_dir` they all share.
pub fn default_lock_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("teamsync").join("locks"),
        None => std::env::temp_dir().join("teamsync-locks"),
    }
}

/// The lock file of a tenant identity in `dir`.
pub fn lock_file(dir: &Path, identity: &str) -> PathBuf {
    let h = sha2::Sha256::digest(identity.as_bytes());
    dir.join(format!("tenant-{}.lock", hex::encode(&h[..16])))
}

/// Who holds a tenant, as the lock file and the refusal message tell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub tenant: String,
    pub host: String,
    pub pid: u32,
    pub since: String,
    /// The history database the holder records into.
    pub history: String,
    /// The job it runs, once created.
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub bulk_id: Option<i64>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.job_id, self.bulk_id) {
            (Some(j), Some(b)) => write!(f, "job {j} (#{b}), ")?,
            _ => f.write_str("a run that has not created its job yet, ")?,
        }
        write!(
            f,
            "pid {} on host {}, since {} (history {})",
            self.pid, self.host, self.since, self.history
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "tenant {tenant} is busy: its lock {file} is held by {}",
        holder.as_deref().map_or_else(|| "another process".to_string(), Holder::to_string)
    )]
    Busy {
        tenant: String,
        file: PathBuf,
        /// Boxed: errors stay small on the happy path.
        holder: Option<Box<Holder>>,
    },
    #[error("cannot use the tenant lock file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot record the tenant lock in the history: {0}")]
    History(#[from] HistoryError),
}

/// A held tenant lock. Dies with the process; [`TenantLock::release`] ends it cleanly
/// (lease row deleted, file unlinked), and dropping it does the same without waiting.
pub struct TenantLock {
    file: File,
    path: PathBuf,
    holder: Holder,
    lease: Option<(History, String)>,
    released: bool,
}

impl std::fmt::Debug for TenantLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantLock")
            .field("path", &self.path)
            .field("holder", &self.holder)
            .finish()
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LockError + '_ {
    move |source| LockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The holder a lock file names, if it names one (it may be empty or half written).
fn read_holder(path: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(text.trim()).ok()
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

/// `try_lock`, retried for [`BUSY_RETRY`]: false when another process holds it.
fn try_lock_for_a_moment(f: &File, path: &Path) -> Result<bool, LockError> {
    let until = std::time::Instant::now() + BUSY_RETRY;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(true),
            Err(TryLockError::WouldBlock) if std::time::Instant::now() < until => {
                std::thread::sleep(BUSY_RETRY_EVERY);
            }
            Err(TryLockError::WouldBlock) => return Ok(false),
            Err(TryLockError::Error(e)) => return Err(io(path)(e)),
        }
    }
}

impl TenantLock {
    /// Takes the lock of tenant `identity` in `dir` (created if needed) without waiting:
    /// [`LockError::Busy`], naming the holder, when another process has it. Sends nothing
    /// and writes nothing to the history; see [`TenantLock::record_lease`].
    pub fn acquire(
        dir: &Path,
        identity: &str,
        tenant: &str,
        history_path: &Path,
    ) -> Result<TenantLock, LockError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = lock_file(dir, identity);
        let holder = Holder {
            tenant: tenant.to_string(),
            host: host_name(),
            pid: std::process::id(),
            since: now(),
            history: std::path::absolute(history_path)
                .unwrap_or_else(|_| history_path.to_path_buf())
                .display()
                .to_string(),
            job_id: None,
            bulk_id: None,
        };
        // A releaser unlinks the file before unlocking it; if ours was unlinked between
        // our open and our lock, open the new one and try again.
        for _ in 0..16 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io(&path))?;
            if !try_lock_for_a_moment(&file, &path)? {
                return Err(LockError::Busy {
                    tenant: tenant.to_string(),
                    holder: read_holder(&path).map(Box::new),
                    file: path,
                });
            }
            let ours = file.metadata().map_err(io(&path))?;
            match std::fs::metadata(&path) {
                Ok(at_path) if same_file(&ours, &at_path) => {
                    let mut lock = TenantLock {
                        file,
                        path,
                        holder,
                        lease: None,
                        released: false,
                    };
                    lock.write_holder()?;
                    return Ok(lock);
                }
                // Someone else holds it, or its holder just removed it: try again.
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
        }
        Err(LockError::Io {
            path,
            source: std::io::Error::other("the lock file kept being replaced while taking it"),
        })
    }

    fn write_holder(&mut self) -> Result<(), LockError> {
        let text = serde_json::to_string(&self.holder).unwrap_or_default();
        let path = self.path.clone();
        (|| {
            self.file.set_len(0)?;
            self.file.seek(SeekFrom::Start(0))?;
            self.file.write_all(text.as_bytes())?;
            self.file.write_all(b"\n")?;
            self.file.flush()
        })()
        .map_err(io(&path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Writes the lease row into `history`. A lease row already there was left by a
    /// process that is gone (we hold the OS lock): its unfinished job is closed as
    /// interrupted, so it reads as what it is and `resume` can pick it up. A lease whose
    /// own lock file is still held (a run using another `lock_dir` with this history) makes
    /// the tenant busy too. This is the run's first history write, before any request:
    /// a history that cannot be written stops the run here.
    pub async fn record_lease(&mut self, history: &History) -> Result<(), LockError> {
        let token = uuid::Uuid::new_v4().to_string();
        let (h, k, file) = (
            self.holder.clone(),
            token.clone(),
            self.path.display().to_string(),
        );
        let busy = history
            .write(move |c| write_lease(c, &h, &k, &file))
            .await?;
        if let Some(other) = busy {
            return Err(LockError::Busy {
                tenant: self.holder.tenant.clone(),
                file: PathBuf::from(other.lock_file.clone().unwrap_or_default()),
                holder: Some(Box::new(Holder {
                    tenant: other.tenant,
                    host: other.host,
                    pid: other.pid,
                    since: other.acquired_on,
                    history: history.path().display().to_string(),
                    job_id: None,
                    bulk_id: other.bulk_id,
                })),
            });
        }
        self.lease = Some((history.clone(), token));
        Ok(())
    }

    /// Records which job holds the tenant, in the lease row and the lock file.
    pub async fn set_job(&mut self, bulk_id: i64, job_id: &str) -> Result<(), LockError> {
        self.holder.bulk_id = Some(bulk_id);
        self.holder.job_id = Some(job_id.to_string());
        self.write_holder()?;
        if let Some((h, token)) = &self.lease {
            let (t, k) = (self.holder.tenant.clone(), token.clone());
            h.write(move |c| {
                c.execute(
                    "UPDATE job_locks SET bulk_id = ?3 WHERE tenant = ?1 AND token = ?2",
                    params![t, k, bulk_id],
                )?;
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Deletes the lease row (waiting for it), then unlinks and unlocks the file.
    pub async fn release(mut self) -> Result<(), HistoryError> {
        self.released = true;
        let r = match self.lease.take() {
            Some((h, token)) => {
                let t = self.holder.tenant.clone();
                h.write(move |c| {
                    c.execute(
                        "DELETE FROM job_locks WHERE tenant = ?1 AND token = ?2",
                        params![t, token],
                    )?;
                    Ok(())
                })
                .await
            }
            None => Ok(()),
        };
        self.unlink();
        r
    }

    fn unlink(&self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("cannot remove the lock file {}: {e}", self.path.display());
            }
        }
    }
}

impl Drop for TenantLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        if let Some((h, token)) = self.lease.take() {
            let t = self.holder.tenant.clone();
            let _ = h.send_detached(writer::detached(move |c| {
                c.execute(
                    "DELETE FROM job_locks WHERE tenant = ?1 AND token = ?2",
                    params![t, token],
                )?;
                Ok(())
            }));
        }
        self.unlink();
        // Closing the file (after this) releases the flock.
    }
}

/// A `job_locks` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseInfo {
    pub tenant: String,
    pub host: String,
    pub pid: u32,
    pub bulk_id: Option<i64>,
    pub acquired_on: String,
    /// The OS lock file the lease stands for (`None` in rows of older teamsync versions).
    pub lock_file: Option<String>,
}

const LEASE_COLUMNS: &str = "tenant, host, pid, bulk_id, acquired_on, lock_file";

fn lease_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LeaseInfo> {
    Ok(LeaseInfo {
        tenant: r.get(0)?,
        host: r.get(1)?,
        pid: r.get::<_, i64>(2)?.clamp(0, i64::from(u32::MAX)) as u32,
        bulk_id: r.get(3)?,
        acquired_on: r.get(4)?,
        lock_file: r.get(5)?,
    })
}

pub(crate) fn read_lease(
    conn: &Connection,
    tenant: &str,
) -> Result<Option<LeaseInfo>, HistoryError> {
    Ok(conn
        .query_row(
            &format!("SELECT {LEASE_COLUMNS} FROM job_locks WHERE tenant = ?1"),
            [tenant],
            lease_from_row,
        )
        .optional()?)
}

/// Whether the process a lease names still holds its OS lock. Leases of another host
/// cannot be probed (a flock is local) and count as live; leases of older versions (no
/// lock file) count as dead, since their holders are long gone once this version runs.
pub fn lease_is_live(lease: &LeaseInfo) -> bool {
    let Some(path) = lease.lock_file.as_deref().map(Path::new) else {
        return false;
    };
    if lease.host != host_name() {
        return true;
    }
    let Ok(f) = File::open(path) else {
        return false; // released (unlinked) or never there
    };
    match f.try_lock_shared() {
        // Free: nobody holds it. Closing `f` drops our shared lock at once.
        Ok(()) => false,
        Err(TryLockError::WouldBlock) => {
            // Held, but by the lease's process? A newer run may hold the same file.
            let mut text = String::new();
            let mut f = f;
            let _ = f.read_to_string(&mut text);
            match serde_json::from_str::<Holder>(text.trim()) {
                Ok(h) => h.pid == lease.pid && h.host == lease.host,
                Err(_) => true,
            }
        }
        Err(TryLockError::Error(_)) => true,
    }
}

/// Whether a live process holds the lease of job `bulk_id`.
pub(crate) fn job_has_live_lease(conn: &Connection, bulk_id: i64) -> Result<bool, HistoryError> {
    let lease = conn
        .query_row(
            &format!("SELECT {LEASE_COLUMNS} FROM job_locks WHERE bulk_id = ?1"),
            [bulk_id],
            lease_from_row,
        )
        .optional()?;
    Ok(lease.as_ref().is_some_and(lease_is_live))
}

/// The lease write of [`TenantLock::record_lease`], in one transaction. Returns the
/// other lease when it is live (busy); otherwise replaces it, closing its dead job.
fn write_lease(
    conn: &Connection,
    me: &Holder,
    token: &str,
    lock_file: &str,
) -> Result<Option<LeaseInfo>, HistoryError> {
    if let Some(cur) = read_lease(conn, &me.tenant)? {
        let same_file = cur.lock_file.as_deref() == Some(lock_file);
        if !same_file && lease_is_live(&cur) {
            return Ok(Some(cur));
        }
        conn.execute("DELETE FROM job_locks WHERE tenant = ?1", [&me.tenant])?;
        if let Some(bulk_id) = cur.bulk_id {
            let still_running: i64 = conn.query_row(
                "SELECT COUNT(*) FROM bulk_jobs WHERE id = ?1 AND status IN ('running', 'pending')",
                [bulk_id],
                |r| r.get(0),
            )?;
            if still_running > 0 {
                tracing::warn!(
                    "job #{bulk_id} of tenant {} was left running by pid {} on {} (killed?); closing it as interrupted",
                    me.tenant,
                    cur.pid,
                    cur.host
                );
                super::jobs::finish_job(
                    conn,
                    bulk_id,
                    &JobEnd::Interrupted(format!(
                        "the process running it (pid {} on {}) stopped without closing the job",
                        cur.pid, cur.host
                    )),
                )?;
                conn.execute(
                    "UPDATE bulk_jobs SET reason_code = 'killed' WHERE id = ?1",
                    [bulk_id],
                )?;
            }
        }
    }
    let ts = now();
    conn.execute(
        "INSERT INTO job_locks (tenant, token, host, pid, acquired_on, heartbeat_on, lock_file) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)",
        params![me.tenant, token, me.host, i64::from(me.pid), ts, lock_file],
    )?;
    Ok(None)
}
