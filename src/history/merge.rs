//! `teamsync jobs merge DB…`: fold other job histories (one per pod of a sharded night,
//! or one per night) into this one, so the morning review sees every tenant in one
//! `jobs list` and one report.
//!
//! Rules, and why:
//! - **The sources are only read.** A source is opened read-only and copied with SQLite's
//!   `VACUUM INTO` (a consistent snapshot even while another process writes it) into a
//!   private file beside the target; the copy, not the source, is migrated and read.
//! - **Only teamsync histories.** A file that is not SQLite, or has no job tables, is
//!   refused naming it; one written by a newer teamsync (a schema this one does not
//!   know) is refused rather than misread; an older one is migrated (its copy is).
//! - **One transaction per source.** A source merges whole or not at all.
//! - **New ids, the same job once.** Integer ids are the target's own (AUTOINCREMENT,
//!   never reused). A job is recognised by what made it — tenant, kind, start time (ms),
//!   host and source digest — not by its `job_id`, because two pods starting jobs in the
//!   same second may draw the same `job_id` (a second and 16 random bits): such a job
//!   gets a fresh `job_id` of the same shape, and `job_id` stays unique. Merging a source
//!   again adds nothing; a job that went on in the source since (a `resume` there) is
//!   brought up to date, items and all.
//! - **Leases stay behind.** The `job_locks` rows describe processes of the machine that
//!   wrote the source; a job left `running` there reads as interrupted here.

use super::{schema, History, HistoryError};
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

/// Why a merge was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The source is missing or cannot be read.
    #[error("cannot read {path}: {reason}")]
    Source { path: String, reason: String },
    /// The source is not a teamsync job history.
    #[error("{path} is not a teamsync job history ({reason}); nothing was merged from it")]
    NotAHistory { path: String, reason: String },
    /// The source was written by a newer teamsync.
    #[error(
        "{path} was written by a newer teamsync (history schema {found}; this one knows up to {known}); \
         merge it with that version; nothing was merged from it"
    )]
    Newer {
        path: String,
        found: i64,
        known: usize,
    },
    /// The source is the target itself.
    #[error("{path} is the history being merged into")]
    SameFile { path: String },
    /// The target history cannot be opened or written.
    #[error(transparent)]
    Target(#[from] HistoryError),
    /// Merging a source into the target failed; the source's transaction was rolled back.
    #[error("cannot merge {path} into {target}: {reason}; nothing was merged from it")]
    Write {
        path: String,
        target: String,
        reason: String,
    },
}

impl MergeError {
    /// Whether the fault is in what was given (a wrong file), not in the surroundings.
    pub fn is_input(&self) -> bool {
        matches!(
            self,
            MergeError::Source { .. }
                | MergeError::NotAHistory { .. }
                | MergeError::Newer { .. }
                | MergeError::SameFile { .. }
        )
    }
}

/// What one source brought.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Merged {
    pub source: String,
    /// Jobs new to the target.
    pub added: u64,
    /// Jobs the target had, brought up to date (they went on in the source).
    pub updated: u64,
    /// Jobs the target already had as they are.
    pub unchanged: u64,
    /// Items written (of added and updated jobs).
    pub items: u64,
    /// Added jobs whose `job_id` was taken by another job, with the one they got.
    pub renamed: Vec<(String, String)>,
}

/// A private, temporary copy of a source; removed when dropped.
struct Copy {
    path: PathBuf,
}

impl Drop for Copy {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

fn source_err(path: &Path, reason: impl std::fmt::Display) -> MergeError {
    MergeError::Source {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn not_history(path: &Path, reason: impl std::fmt::Display) -> MergeError {
    MergeError::NotAHistory {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Whether SQLite's error says the file is not a database at all.
fn is_not_a_database(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt)
    )
}

/// A consistent copy of `source` in `dir`, read-only on the source.
fn snapshot(source: &Path, dir: &Path) -> Result<Copy, MergeError> {
    let meta = std::fs::metadata(source).map_err(|e| source_err(source, e))?;
    if !meta.is_file() {
        return Err(source_err(source, "it is not a regular file"));
    }
    let copy = Copy {
        path: dir.join(format!(
            ".teamsync-merge-{}-{:08x}.db",
            std::process::id(),
            rand::random::<u32>()
        )),
    };
    // Private from the start: a history names every user of every tenant. SQLite's
    // VACUUM INTO writes into an existing empty file.
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(&copy.path).map_err(|e| MergeError::Write {
        path: source.display().to_string(),
        target: dir.display().to_string(),
        reason: format!("cannot create a working copy in {}: {e}", dir.display()),
    })?;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let vacuum = |uri: String| -> Result<(), rusqlite::Error> {
        let c = Connection::open_with_flags(uri, flags)?;
        c.busy_timeout(std::time::Duration::from_secs(10))?;
        c.execute("VACUUM main INTO ?1", [copy.path.to_string_lossy()])?;
        Ok(())
    };
    let uri = super::sqlite_uri(source);
    match vacuum(uri.clone()) {
        Ok(()) => Ok(copy),
        Err(e) if is_not_a_database(&e) => Err(not_history(source, "not an SQLite database")),
        // A WAL history on read-only media whose `-shm` is gone cannot be opened the
        // usual way; nothing can be writing it there, so it is read as immutable.
        Err(first) => match vacuum(format!("{uri}?immutable=1")) {
            Ok(()) => Ok(copy),
            Err(e) if is_not_a_database(&e) => Err(not_history(source, "not an SQLite database")),
            Err(_) => Err(source_err(source, first)),
        },
    }
}

/// Checks that the copy of `source` is a teamsync history, and migrates it to this
/// version's schema.
fn prepare(source: &Path, copy: &Path) -> Result<Connection, MergeError> {
    let mut c = Connection::open(copy).map_err(|e| source_err(source, e))?;
    let has = |c: &Connection, table: &str| -> Result<bool, MergeError> {
        c.query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
            [table],
            |_| Ok(()),
        )
        .optional()
        .map(|o| o.is_some())
        .map_err(|e| {
            if is_not_a_database(&e) {
                not_history(source, "not an SQLite database")
            } else {
                source_err(source, e)
            }
        })
    };
    let missing: Vec<&str> = ["bulk_jobs", "job_items"]
        .into_iter()
        .map(|t| has(&c, t).map(|h| (t, h)))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|(_, h)| !h)
        .map(|(t, _)| t)
        .collect();
    if !missing.is_empty() {
        return Err(not_history(
            source,
            format!(
                "an SQLite database without the table {}",
                missing.join(" and ")
            ),
        ));
    }
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| source_err(source, e))?;
    let known = schema::MIGRATIONS.len();
    if version < 1 {
        return Err(not_history(
            source,
            "its job tables carry no teamsync schema version",
        ));
    }
    if version as usize > known {
        return Err(MergeError::Newer {
            path: source.display().to_string(),
            found: version,
            known,
        });
    }
    schema::migrations().to_latest(&mut c).map_err(|e| {
        not_history(
            source,
            format!("its schema (version {version}) cannot be brought up to date: {e}"),
        )
    })?;
    Ok(c)
}

/// The columns of `table` in the target, `id` (and `skip`) aside, checked against the
/// source's (both are at this version's schema).
fn columns(c: &Connection, table: &str, skip: &[&str]) -> Result<Vec<String>, rusqlite::Error> {
    let names = |schema: &str| -> Result<Vec<String>, rusqlite::Error> {
        let mut st = c.prepare(&format!(
            "SELECT name FROM pragma_table_info('{table}', '{schema}')"
        ))?;
        let v = st
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(v)
    };
    let main = names("main")?;
    let src = names("src")?;
    Ok(main
        .into_iter()
        .filter(|n| n != "id" && !skip.contains(&n.as_str()) && src.contains(n))
        .collect())
}

/// `"a", "b"` for SQL.
fn quoted(cols: &[String]) -> String {
    cols.iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A `job_id` of the same shape (`20261123T061500Z-3f9a`: the time, then 16 random
/// bits) that the target does not hold.
fn fresh_job_id(tx: &rusqlite::Transaction<'_>, taken: &str) -> Result<String, rusqlite::Error> {
    let stem = taken.rsplit_once('-').map_or(taken, |(s, _)| s);
    loop {
        let candidate = format!("{stem}-{:04x}", rand::random::<u16>());
        let exists: Option<i64> = tx
            .query_row(
                "SELECT id FROM main.bulk_jobs WHERE job_id = ?1",
                [&candidate],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Ok(candidate);
        }
    }
}

/// Merges the attached `src` into `main` in one transaction.
fn merge_attached(conn: &mut Connection, source: &str) -> Result<Merged, rusqlite::Error> {
    let job_cols = columns(conn, "bulk_jobs", &[])?;
    let item_cols = columns(conn, "job_items", &["bulk_id"])?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut out = Merged {
        source: source.to_string(),
        ..Merged::default()
    };
    // (src id, job_id, updated_on, the target's id and updated_on for the same job).
    type Pair = (i64, String, String, Option<(i64, String)>);
    let pairs: Vec<Pair> = {
        let mut st = tx.prepare(
            "SELECT s.id, s.job_id, s.updated_on, m.id, m.updated_on
               FROM src.bulk_jobs s
               LEFT JOIN main.bulk_jobs m
                 ON m.tenant = s.tenant AND m.kind = s.kind AND m.created_on = s.created_on
                AND m.host = s.host AND m.source_sha256 = s.source_sha256
              ORDER BY s.created_on, s.id",
        )?;
        let rows = st.query_map([], |r| {
            let m: Option<i64> = r.get(3)?;
            let mu: Option<String> = r.get(4)?;
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, m.zip(mu)))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    let select_job = job_cols
        .iter()
        .map(|c| match c.as_str() {
            "job_id" => "?1".to_string(),
            c => format!("\"{c}\""),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let insert_job = format!(
        "INSERT INTO main.bulk_jobs ({}) SELECT {select_job} FROM src.bulk_jobs WHERE id = ?2",
        quoted(&job_cols)
    );
    let insert_items = format!(
        "INSERT INTO main.job_items (bulk_id, {cols}) SELECT ?1, {cols} FROM src.job_items WHERE bulk_id = ?2 ORDER BY id",
        cols = quoted(&item_cols)
    );
    // Everything but the ids: the job as the source has it now.
    let refreshed: Vec<String> = job_cols
        .iter()
        .filter(|c| *c != "job_id")
        .cloned()
        .collect();
    let update_job = format!(
        "UPDATE main.bulk_jobs SET ({}) = (SELECT {} FROM src.bulk_jobs WHERE id = ?2) WHERE id = ?1",
        quoted(&refreshed),
        quoted(&refreshed)
    );
    for (src_id, job_id, src_updated, same) in pairs {
        match same {
            Some((_, dst_updated)) if dst_updated >= src_updated => out.unchanged += 1,
            Some((dst_id, _)) => {
                tx.execute(&update_job, [dst_id, src_id])?;
                tx.execute("DELETE FROM main.job_items WHERE bulk_id = ?1", [dst_id])?;
                out.items += tx.execute(&insert_items, [dst_id, src_id])? as u64;
                out.updated += 1;
            }
            None => {
                let taken: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM main.bulk_jobs WHERE job_id = ?1",
                        [&job_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                let new_job_id = match taken {
                    Some(_) => {
                        let fresh = fresh_job_id(&tx, &job_id)?;
                        out.renamed.push((job_id.clone(), fresh.clone()));
                        fresh
                    }
                    None => job_id,
                };
                tx.execute(&insert_job, rusqlite::params![new_job_id, src_id])?;
                let dst_id = tx.last_insert_rowid();
                out.items += tx.execute(&insert_items, [dst_id, src_id])? as u64;
                out.added += 1;
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

/// The target of a merge, open: sources are merged into it one at a time
/// ([`Target::merge`]), each in one transaction.
pub struct Target {
    conn: Connection,
    path: PathBuf,
    real: PathBuf,
    /// Where working copies of sources go: beside the target (its folder is writable and
    /// as private as the history).
    dir: PathBuf,
}

impl Target {
    /// Opens the history `target`, creating and migrating it the way every run does.
    pub fn open(target: &Path) -> Result<Target, MergeError> {
        drop(History::open(target)?);
        let open_err = |e: &dyn std::fmt::Display| HistoryError::Open {
            path: target.display().to_string(),
            message: e.to_string(),
        };
        let real = std::fs::canonicalize(target).map_err(|e| open_err(&e))?;
        let dir = real
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let conn = Connection::open(target).map_err(|e| open_err(&e))?;
        schema::configure(&conn).map_err(|e| open_err(&e))?;
        Ok(Target {
            conn,
            path: target.to_path_buf(),
            real,
            dir,
        })
    }

    /// Merges one source, whole or not at all.
    pub fn merge(&mut self, source: &Path) -> Result<Merged, MergeError> {
        let write_err = |e: rusqlite::Error| MergeError::Write {
            path: source.display().to_string(),
            target: self.path.display().to_string(),
            reason: super::explain(&e.to_string()),
        };
        if std::fs::canonicalize(source).is_ok_and(|s| s == self.real) {
            return Err(MergeError::SameFile {
                path: source.display().to_string(),
            });
        }
        let copy = snapshot(source, &self.dir)?;
        drop(prepare(source, &copy.path)?);
        self.conn
            .execute("ATTACH DATABASE ?1 AS src", [copy.path.to_string_lossy()])
            .map_err(write_err)?;
        let r = merge_attached(&mut self.conn, &source.display().to_string());
        let detached = self.conn.execute("DETACH DATABASE src", []);
        let merged = r.map_err(write_err)?;
        detached.map_err(write_err)?;
        Ok(merged)
    }

    /// How many jobs the target holds now.
    pub fn job_count(&self) -> Result<u64, MergeError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM bulk_jobs", [], |r| r.get(0))
            .map_err(|e| MergeError::Target(e.into()))
    }
}

/// Merges `sources` into the history `target` (created if need be), one transaction per
/// source, in the order given. Stops at the first source that is refused or fails; the
/// ones before it are merged (each whole).
pub fn merge(target: &Path, sources: &[PathBuf]) -> Result<Vec<Merged>, MergeError> {
    let mut t = Target::open(target)?;
    sources.iter().map(|s| t.merge(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{FailKind, NewJob};
    use crate::model::JobKind;

    fn job(tenant: &str) -> NewJob {
        NewJob {
            kind: JobKind::MsUsers,
            title: format!("sync {tenant}.csv"),
            tenant: tenant.into(),
            source: format!("{tenant}.csv"),
            source_sha256: "abc".into(),
        }
    }

    async fn history_with(path: &Path, tenants: &[&str]) -> Vec<(i64, String)> {
        let h = History::open(path).unwrap();
        let mut ids = Vec::new();
        for t in tenants {
            ids.push(
                h.record_failed_job(job(t), FailKind::Sheet, "2 errors".into(), None)
                    .await
                    .unwrap(),
            );
        }
        ids
    }

    fn jobs(path: &Path) -> Vec<(i64, String, String)> {
        let c = Connection::open(path).unwrap();
        let mut st = c
            .prepare("SELECT id, job_id, tenant FROM bulk_jobs ORDER BY id")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn jobs_get_new_ids_once_and_a_taken_job_id_is_renamed() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, t) = (
            d.path().join("a.db"),
            d.path().join("b.db"),
            d.path().join("t.db"),
        );
        history_with(&a, &["acme", "beta"]).await;
        let in_b = history_with(&b, &["gamma"]).await;
        let in_t = history_with(&t, &["local"]).await;
        // Another pod drew the same job_id for another job.
        Connection::open(&b)
            .unwrap()
            .execute("UPDATE bulk_jobs SET job_id = ?1", [&in_t[0].1])
            .unwrap();
        let m = merge(&t, &[a.clone(), b.clone()]).unwrap();
        assert_eq!((m[0].added, m[1].added), (2, 1));
        assert_eq!(m[1].renamed.len(), 1);
        assert_eq!(m[1].renamed[0].0, in_t[0].1);
        let all = jobs(&t);
        let tenants: Vec<&str> = all.iter().map(|j| j.2.as_str()).collect();
        assert_eq!(tenants, ["local", "acme", "beta", "gamma"]);
        let ids: Vec<i64> = all.iter().map(|j| j.0).collect();
        assert_eq!(ids, [1, 2, 3, 4], "ids are the target's own");
        let mut job_ids: Vec<&str> = all.iter().map(|j| j.1.as_str()).collect();
        job_ids.sort_unstable();
        job_ids.dedup();
        assert_eq!(job_ids.len(), 4, "job_id stays unique");
        assert_ne!(all[3].1, in_b[0].1);
        // Again: nothing new, the renamed job recognised as the same job.
        let again = merge(&t, &[a, b]).unwrap();
        assert_eq!(
            again
                .iter()
                .map(|m| (m.added, m.unchanged))
                .collect::<Vec<_>>(),
            [(0, 2), (0, 1)]
        );
        assert_eq!(jobs(&t).len(), 4);
    }

    #[tokio::test]
    async fn a_job_that_went_on_in_the_source_is_brought_up_to_date() {
        let d = tempfile::tempdir().unwrap();
        let (s, t) = (d.path().join("s.db"), d.path().join("t.db"));
        history_with(&s, &["acme"]).await;
        merge(&t, std::slice::from_ref(&s)).unwrap();
        Connection::open(&s)
            .unwrap()
            .execute(
                "UPDATE bulk_jobs SET reason = 'fixed', updated_on = '2999-01-01T00:00:00.000Z'",
                [],
            )
            .unwrap();
        let m = merge(&t, std::slice::from_ref(&s)).unwrap();
        assert_eq!((m[0].added, m[0].updated), (0, 1));
        let reason: String = Connection::open(&t)
            .unwrap()
            .query_row("SELECT reason FROM bulk_jobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reason, "fixed");
    }

    #[tokio::test]
    async fn what_is_not_a_history_is_refused_and_sources_stay_as_they_were() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t.db");
        let text = d.path().join("notes.db");
        std::fs::write(
            &text,
            "these are not the jobs you are looking for\n".repeat(200),
        )
        .unwrap();
        let e = merge(&t, std::slice::from_ref(&text)).unwrap_err();
        assert!(
            matches!(e, MergeError::NotAHistory { .. }) && e.is_input(),
            "{e}"
        );
        assert!(e.to_string().contains("notes.db"), "{e}");
        let other = d.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE users (x);")
            .unwrap();
        let e = merge(&t, std::slice::from_ref(&other)).unwrap_err();
        assert!(e.to_string().contains("without the table bulk_jobs"), "{e}");
        let e = merge(&t, &[d.path().join("missing.db")]).unwrap_err();
        assert!(matches!(e, MergeError::Source { .. }), "{e}");
        let e = merge(&t, std::slice::from_ref(&t)).unwrap_err();
        assert!(matches!(e, MergeError::SameFile { .. }), "{e}");
        // A newer schema.
        let newer = d.path().join("newer.db");
        history_with(&newer, &["acme"]).await;
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        let e = merge(&t, std::slice::from_ref(&newer)).unwrap_err();
        assert!(matches!(e, MergeError::Newer { found: 99, .. }), "{e}");
        // No working copy left behind, and the sources unchanged.
        let before = std::fs::read(&text).unwrap();
        let _ = merge(&t, std::slice::from_ref(&text));
        assert_eq!(std::fs::read(&text).unwrap(), before);
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(std::result::Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("teamsync-merge"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// A history of schema 2 (before ids were never reused and throttling was counted)
    /// is migrated in its copy; the source file keeps its old schema.
    #[tokio::test]
    async fn an_older_history_is_migrated_in_its_copy() {
        let d = tempfile::tempdir().unwrap();
        let (old, t) = (d.path().join("old.db"), d.path().join("t.db"));
        {
            let mut c = Connection::open(&old).unwrap();
            rusqlite_migration::Migrations::from_slice(&schema::MIGRATIONS[..2])
                .to_latest(&mut c)
                .unwrap();
            c.execute(
                "INSERT INTO bulk_jobs (job_id, kind, title, tenant, source, source_sha256, status, \
                 host, os_user, teamsync_version, created_on, updated_on) VALUES \
                 ('20250101T000000Z-0001', 'ms_users', 'sync a.csv', 'acme', 'a.csv', 'x', 'success', \
                  'h', 'u', '0.0.1', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:01.000Z')",
                [],
            )
            .unwrap();
            c.execute(
                "INSERT INTO job_items (bulk_id, upn, data, status, created_on, updated_on) \
                 VALUES (1, 'a@acme.example', '{}', 'unchanged', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z')",
                [],
            )
            .unwrap();
        }
        let m = merge(&t, std::slice::from_ref(&old)).unwrap();
        assert_eq!((m[0].added, m[0].items), (1, 1));
        let v: i64 = Connection::open(&old)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 2, "the source is not migrated");
    }
}
