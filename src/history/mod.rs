//! The job history: every job and every UPN's outcome in SQLite (WAL), shaped after
//! Fusion's bulk-job objects so `jobs show --output json` reads like Fusion's "Get bulk job
//! details".
//!
//! Why a database and not log files: an unattended nightly run must be auditable the next
//! morning, a killed run must be resumable (each request is recorded before it is sent),
//! and two runs against one tenant must exclude each other (the tenant lock).
//!
//! Layout: [`schema`] (migrations), [`writer`] (the single writer thread that batches
//! writes into transactions), [`jobs`] and [`items`] (rows and status rules), [`lock`]
//! (the per-tenant OS lock and its lease row), [`queries`] (reads for reports). Writes are
//! async (they wait for the commit); reads are synchronous on a separate WAL reader
//! connection and never wait for the writer.
//!
//! A history is opened for writing by runs ([`History::open`], then
//! [`History::check_writable`] before the first request) and, when that is impossible
//! (a read-only file or file system), read-only by `jobs list`/`jobs show`
//! ([`History::open_read_only`]).
//!
//! Write rate: `cargo test --lib history::tests::write_rate -- --ignored --nocapture`
//! (10,000 items created in one transaction, then 20,000 item updates from 16 concurrent
//! writers). Measured on the 2-core build box, debug build: job with 10,000 items created
//! in ~0.13 s, ~12,400 item writes/s — three orders of magnitude above a tenant's request
//! rate, so the history never paces a job.

pub mod items;
pub mod jobs;
pub mod lock;
pub mod merge;
pub mod queries;
mod reads;
mod schema;
mod writer;

pub use items::{Intent, ItemResult, ItemRow, ItemStatus, NewItem};
pub use jobs::{final_status, Counts, FailKind, JobEnd, JobRow, JobStatus, NewJob};
pub use lock::{Holder, LeaseInfo, LockError, TenantLock};
pub use queries::JobFilter;
pub use reads::{BackendBulkRow, UserRead};

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, thiserror::Error)]
pub enum HistoryError {
    #[error("history database: {0}")]
    Db(String),
    #[error("cannot open history database {path}: {message}")]
    Open { path: String, message: String },
    #[error("history writer: {0}")]
    Writer(String),
    #[error("no job {0} in the history")]
    NoSuchJob(String),
    #[error("no job item {0} in the history")]
    NoSuchItem(i64),
    /// The history cannot take writes (read-only file or file system, a folder that
    /// cannot be created, a full disk): a run stops before its first request.
    #[error("cannot write the job history {path}: {reason}")]
    Unwritable { path: String, reason: String },
    /// The history was opened read-only (`jobs list` on a read-only file).
    #[error("the job history {0} is open read-only")]
    ReadOnly(String),
    #[error("cannot resume: {0}")]
    Resume(String),
    #[error("history holds unreadable data: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for HistoryError {
    fn from(e: rusqlite::Error) -> Self {
        HistoryError::Db(e.to_string())
    }
}

/// Now, UTC, RFC 3339 with milliseconds and `Z`: fixed width, so text order is time order
/// and the `since`/`until` filters can compare strings.
pub fn now() -> String {
    rfc3339(chrono::Utc::now())
}

pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

struct Inner {
    path: PathBuf,
    tx: Mutex<Option<writer::Sender>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    reader: Mutex<Connection>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel lets the writer drain what is queued, then stop.
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(h) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = h.join();
        }
    }
}

/// Handle to the history database; cheap to clone and share between workers.
#[derive(Clone)]
pub struct History {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl History {
    /// Opens (creating it and its folder if needed) and migrates the database, then starts
    /// the writer thread. The migration runs on a connection of its own, closed before the
    /// writer and reader open, so both see the schema it leaves.
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        let open_err = |m: String| HistoryError::Open {
            path: path.display().to_string(),
            message: m,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                unwritable(
                    path,
                    format!(
                        "its folder {} does not exist and cannot be created ({e})",
                        dir.display()
                    ),
                )
            })?;
        }
        create_private(path);
        {
            let mut mconn = Connection::open(path).map_err(|e| open_error(path, e))?;
            schema::configure(&mconn).map_err(|e| open_error(path, e))?;
            schema::migrations()
                .to_latest(&mut mconn)
                .map_err(|e| match e {
                    rusqlite_migration::Error::RusqliteError { err, .. } => open_error(path, err),
                    e => open_err(format!("migration failed: {e}")),
                })?;
        }
        let wconn = Connection::open(path).map_err(|e| open_error(path, e))?;
        schema::configure(&wconn).map_err(|e| open_error(path, e))?;
        let reader = Connection::open(path).map_err(|e| open_error(path, e))?;
        schema::configure(&reader).map_err(|e| open_error(path, e))?;
        let (tx, thread) =
            writer::spawn(wconn).map_err(|e| open_err(format!("cannot start writer: {e}")))?;
        Ok(History {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                reader: Mutex::new(reader),
            }),
        })
    }

    /// Opens an existing history for reading only, for `jobs list`/`jobs show` on a file
    /// (or file system) this process cannot write. Nothing is migrated: a history written
    /// by an older teamsync must be opened once for writing first (a clear error says so).
    /// Writes answer [`HistoryError::ReadOnly`].
    pub fn open_read_only(path: &Path) -> Result<History, HistoryError> {
        let open_err = |m: String| HistoryError::Open {
            path: path.display().to_string(),
            message: m,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let version = |c: &Connection| schema::migrations().pending_migrations(c);
        let normal = Connection::open_with_flags(path, flags).and_then(|c| {
            c.busy_timeout(std::time::Duration::from_secs(10))?;
            Ok(c)
        });
        // On a read-only file system a WAL database whose `-shm` is gone (closed cleanly)
        // cannot be opened normally; nothing can change it there, so it is read as
        // immutable (SQLite's documented way for read-only media).
        let (reader, pending) = if let Ok((c, Ok(v))) = normal.map(|c| {
            let v = version(&c);
            (c, v)
        }) {
            (c, v)
        } else {
            let uri = format!("{}?immutable=1", sqlite_uri(path));
            let c = Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                .map_err(|e| open_err(e.to_string()))?;
            let v = version(&c)
                .map_err(|e| open_err(format!("cannot read its schema version: {e}")))?;
            (c, v)
        };
        if pending != 0 {
            return Err(open_err(
                "it was written by an older teamsync and is read-only here; open it once where it can be written to update it".into(),
            ));
        }
        Ok(History {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                tx: Mutex::new(None),
                thread: Mutex::new(None),
                reader: Mutex::new(reader),
            }),
        })
    }

    /// Opens the history for writing if possible, else read-only: what commands that only
    /// read (`jobs list`, `jobs show`, exports) use, so a read-only history still answers.
    pub fn open_for_reading(path: &Path) -> Result<History, HistoryError> {
        match History::open(path) {
            Ok(h) => Ok(h),
            Err(e @ (HistoryError::Unwritable { .. } | HistoryError::Open { .. })) => {
                History::open_read_only(path).map_err(|ro| match ro {
                    HistoryError::Open { .. } if !path.exists() => e,
                    ro => ro,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Proves the history takes a committed write, before a run sends its first request:
    /// a read-only file, a read-only file system or a full disk is refused here with a
    /// message naming the file and the reason.
    pub async fn check_writable(&self) -> Result<(), HistoryError> {
        let path = self.inner.path.clone();
        let r = self
            .write(|c| {
                // A row in and out again within one transaction: nobody sees it, but its
                // pages are written (the WAL grows), which is what a full disk refuses.
                c.execute_batch(
                    "INSERT INTO job_locks (tenant, token, host, pid, acquired_on, heartbeat_on) \
                     VALUES (' write probe', '', '', 0, '', ''); \
                     DELETE FROM job_locks WHERE tenant = ' write probe';",
                )?;
                Ok(())
            })
            .await;
        match r {
            Ok(()) => Ok(()),
            Err(HistoryError::ReadOnly(_)) => Err(unwritable(&path, "it is open read-only".into())),
            Err(HistoryError::Db(m) | HistoryError::Writer(m)) => {
                Err(unwritable_diagnosed(&path, explain(&m)))
            }
            Err(e) => Err(e),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues a write for the writer thread and waits for its commit.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R, HistoryError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, HistoryError> + Send + 'static,
    {
        let (op, rx) = writer::op(f);
        if !self.send_detached(op) {
            return Err(HistoryError::ReadOnly(
                self.inner.path.display().to_string(),
            ));
        }
        rx.await
            .map_err(|_| HistoryError::Writer("the writer thread stopped".into()))?
    }

    /// Queues a write; false when this history has no writer (opened read-only).
    pub(crate) fn send_detached(&self, op: Box<dyn writer::WriteOp>) -> bool {
        let guard = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match guard.as_ref() {
            // A send error drops the op, whose reply channel then reports the failure.
            Some(tx) => {
                let _ = tx.send(op);
                true
            }
            None => false,
        }
    }

    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, HistoryError>,
    ) -> Result<R, HistoryError> {
        let conn = self
            .inner
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn)
    }

    // ---- writes -------------------------------------------------------------------

    /// The lease row of a tenant, if any (who holds it, for messages and reports).
    pub fn lease(&self, tenant: &str) -> Result<Option<LeaseInfo>, HistoryError> {
        self.read(|c| lock::read_lease(c, tenant))
    }

    /// Records a run that stopped before its first write as a finished `failed` job
    /// without items: `kind` says why, `reason` tells the user, `errors` holds the sheet
    /// or plan diagnostics. Returns the bulk id and the job id.
    pub async fn record_failed_job(
        &self,
        job: NewJob,
        kind: FailKind,
        reason: String,
        errors: Option<serde_json::Value>,
    ) -> Result<(i64, String), HistoryError> {
        self.write(move |c| jobs::insert_failed_job(c, &job, kind, &reason, errors.as_ref()))
            .await
    }

    /// Creates a job (status running) with all its items in one transaction.
    /// Returns the bulk id, the job id and the item ids in the order given.
    pub async fn create_job(
        &self,
        job: NewJob,
        items: Vec<NewItem>,
    ) -> Result<(i64, String, Vec<i64>), HistoryError> {
        self.write(move |c| jobs::insert_job(c, &job, &items)).await
    }

    /// Re-plans pending/interrupted items of an existing job in place (see
    /// [`items::replan_items`]); returns their ids in the order given.
    pub async fn replan_items(
        &self,
        bulk_id: i64,
        items: Vec<NewItem>,
    ) -> Result<Vec<i64>, HistoryError> {
        self.write(move |c| items::replan_items(c, bulk_id, &items))
            .await
    }

    /// Ends unfinished items in error without sending: `(upn, error_code, error_reason)`,
    /// e.g. rows a resume's re-plan refuses (code `plan`). All or nothing.
    pub async fn fail_items(
        &self,
        bulk_id: i64,
        failures: Vec<(String, String, String)>,
    ) -> Result<(), HistoryError> {
        self.write(move |c| items::fail_items(c, bulk_id, &failures))
            .await
    }

    /// Marks an item as being sent; returns once that is committed.
    pub async fn item_running(&self, item_id: i64) -> Result<(), HistoryError> {
        self.write(move |c| items::set_running(c, item_id)).await
    }

    /// Records the request an item is about to send (and what it has applied so far);
    /// returns once that is committed, so the request may go out.
    pub async fn item_sending(&self, item_id: i64, intent: Intent) -> Result<(), HistoryError> {
        self.write(move |c| items::set_sending(c, item_id, &intent))
            .await
    }

    pub async fn item_finished(
        &self,
        item_id: i64,
        result: ItemResult,
    ) -> Result<(), HistoryError> {
        self.write(move |c| items::set_finished(c, item_id, &result))
            .await
    }

    /// Records a run's throttling on its job (see [`jobs::add_throttling`]).
    pub async fn add_throttling(
        &self,
        bulk_id: i64,
        throttled: u64,
        settled_rate: Option<f64>,
    ) -> Result<(), HistoryError> {
        self.write(move |c| jobs::add_throttling(c, bulk_id, throttled, settled_rate))
            .await
    }

    /// Closes a job: interrupted items back to pending, counts and status from the items,
    /// and why it stopped (`end`).
    pub async fn finish_job(&self, bulk_id: i64, end: JobEnd) -> Result<JobRow, HistoryError> {
        self.write(move |c| jobs::finish_job(c, bulk_id, &end))
            .await
    }

    /// Deletes jobs (and their items) last updated more than `older_than_days` ago, except
    /// a job that holds its tenant's lock (still running). A job left `running` by a killed
    /// process is pruned like any other once old enough. Returns the jobs deleted.
    pub async fn prune(&self, older_than_days: u32) -> Result<usize, HistoryError> {
        let cutoff = prune_cutoff(older_than_days);
        self.write(move |c| queries::prune(c, &cutoff)).await
    }

    /// The jobs [`History::prune`] would delete now, oldest first (`jobs prune --dry-run`,
    /// and the list `jobs prune` asks about).
    pub fn prunable(&self, older_than_days: u32) -> Result<Vec<JobRow>, HistoryError> {
        let cutoff = prune_cutoff(older_than_days);
        self.read(|c| queries::prunable(c, &cutoff))
    }

    /// Deletes the jobs `ids` with their items, skipping one that holds a tenant lock.
    /// Their ids are never given to another job (the table is AUTOINCREMENT).
    pub async fn delete_jobs(&self, ids: Vec<i64>) -> Result<usize, HistoryError> {
        self.write(move |c| queries::delete_jobs(c, &ids)).await
    }
}

/// Creates a new history file readable by its owner only (0600) before SQLite opens it:
/// the history names every user of every tenant, and SQLite gives its `-wal` and `-shm`
/// files the database file's permissions. An existing file keeps its own; a failure here
/// is left for SQLite's open to report in its words.
fn create_private(path: &Path) {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let _ = opts.open(path);
}

fn prune_cutoff(older_than_days: u32) -> String {
    rfc3339(chrono::Utc::now() - chrono::Duration::days(i64::from(older_than_days)))
}

/// Why SQLite refused, in the user's terms (the file is named by the caller).
pub fn explain(message: &str) -> String {
    let m = message.to_ascii_lowercase();
    if m.contains("readonly") || m.contains("read-only") || m.contains("read only") {
        format!("it is read-only ({message})")
    } else if m.contains("disk is full") || m.contains("database or disk is full") {
        format!("the disk is full ({message})")
    } else if m.contains("unable to open") {
        format!("it cannot be opened for writing ({message})")
    } else {
        message.to_string()
    }
}

fn unwritable(path: &Path, reason: String) -> HistoryError {
    HistoryError::Unwritable {
        path: path.display().to_string(),
        reason,
    }
}

/// [`unwritable`] with the file system's own word when it has one (SQLite's "unable to
/// open database file" does not say that the file system is read-only).
fn unwritable_diagnosed(path: &Path, sqlite_says: String) -> HistoryError {
    unwritable(path, diagnose(path).unwrap_or(sqlite_says))
}

/// `file:` URI of a path for SQLite: bytes outside the unreserved set percent-encoded.
fn sqlite_uri(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::from("file:");
    for b in abs.to_string_lossy().bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char);
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// What the file system says when SQLite only says "unable to open": the database file
/// (read-only file, read-only file system) or its folder (SQLite creates `-wal` and
/// `-shm` files next to it) refuses writes.
fn diagnose(path: &Path) -> Option<String> {
    if path.exists() {
        if let Err(e) = std::fs::OpenOptions::new().append(true).open(path) {
            return Some(format!("it is read-only ({e})"));
        }
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let probe = dir.join(format!(".teamsync-write-probe-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(format!(
            "its folder {} is read-only ({e}); SQLite needs to create files next to it",
            dir.display()
        )),
    }
}

/// An error opening or preparing the database: a history that cannot be written (the
/// usual cause on a machine that ran it before) is [`HistoryError::Unwritable`].
fn open_error(path: &Path, e: rusqlite::Error) -> HistoryError {
    let code = e.sqlite_error_code();
    match code {
        Some(
            rusqlite::ErrorCode::ReadOnly
            | rusqlite::ErrorCode::DiskFull
            | rusqlite::ErrorCode::CannotOpen
            | rusqlite::ErrorCode::PermissionDenied,
        ) => unwritable_diagnosed(path, explain(&e.to_string())),
        _ => HistoryError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests;
