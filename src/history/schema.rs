//! The history database's schema, kept as ordered migrations so a database written by an
//! older teamsync opens in a newer one (and a newer database is refused by an older one
//! rather than misread).

use rusqlite::Connection;
use rusqlite_migration::{Migrations, M};

/// Append-only: never edit a migration that has shipped; add the next one.
pub(crate) const MIGRATIONS: &[M<'static>] = &[
    M::up(
        r"
CREATE TABLE bulk_jobs (
    id               INTEGER PRIMARY KEY,
    job_id           TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('ms_users', 'ms_resource_accounts')),
    title            TEXT NOT NULL,
    tenant           TEXT NOT NULL,
    source           TEXT NOT NULL,
    source_sha256    TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'running', 'success', 'partial', 'error', 'aborted')),
    total_count      INTEGER NOT NULL DEFAULT 0,
    success_count    INTEGER NOT NULL DEFAULT 0,
    error_count      INTEGER NOT NULL DEFAULT 0,
    unchanged_count  INTEGER NOT NULL DEFAULT 0,
    host             TEXT NOT NULL,
    os_user          TEXT NOT NULL,
    teamsync_version TEXT NOT NULL,
    created_on       TEXT NOT NULL,
    updated_on       TEXT NOT NULL,
    finished_on      TEXT
);
CREATE INDEX bulk_jobs_created ON bulk_jobs (created_on);
CREATE INDEX bulk_jobs_tenant_created ON bulk_jobs (tenant, created_on);

CREATE TABLE job_items (
    id           INTEGER PRIMARY KEY,
    bulk_id      INTEGER NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    upn          TEXT NOT NULL,
    data         TEXT NOT NULL,
    changes      TEXT NOT NULL DEFAULT '[]',
    before       TEXT NOT NULL DEFAULT '{}',
    plan         TEXT,
    user_id      TEXT,
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'running', 'success', 'error', 'unchanged')),
    error_code   TEXT,
    error_reason TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_on   TEXT NOT NULL,
    updated_on   TEXT NOT NULL,
    UNIQUE (bulk_id, upn)
);
CREATE INDEX job_items_bulk_status ON job_items (bulk_id, status);

CREATE TABLE job_locks (
    tenant       TEXT PRIMARY KEY,
    token        TEXT NOT NULL,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    bulk_id      INTEGER,
    acquired_on  TEXT NOT NULL,
    heartbeat_on TEXT NOT NULL
);
",
    ),
    // 2: the history tells the truth (see `jobs.rs`, `items.rs` and `lock.rs`):
    // - job statuses `failed` (the run stopped before its first write: sheet or plan errors,
    //   drift, authentication, a failed read, a busy lock) and `interrupted` (stopped by a
    //   signal; `resume` finishes it), with the reason and, for plan errors, the diagnostics;
    // - per item, the operations the tenant acknowledged (`applied`), the request in flight
    //   (`sending`, committed before it goes out) and a `note`;
    // - the lease row names the OS lock file it stands for, so a reader can tell a live
    //   holder from a dead one.
    // SQLite cannot alter a CHECK constraint: the status list is widened in the stored table
    // definition (the writable_schema procedure for changes every stored row still meets),
    // the migration fails if the text was not found, and `RESET` reloads the schema so that
    // later ALTERs in the same transaction work on the new text.
    M::up(
        r"
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, '''error'', ''aborted'')', '''error'', ''aborted'', ''failed'', ''interrupted'')')
 WHERE type = 'table' AND name = 'bulk_jobs';
PRAGMA writable_schema = RESET;
CREATE TEMP TABLE migration_2_check (ok INTEGER NOT NULL CHECK (ok = 1));
INSERT INTO migration_2_check
  SELECT instr(sql, '''failed'', ''interrupted'')') > 0 FROM sqlite_schema
   WHERE type = 'table' AND name = 'bulk_jobs';
DROP TABLE migration_2_check;

ALTER TABLE bulk_jobs ADD COLUMN reason_code TEXT;
ALTER TABLE bulk_jobs ADD COLUMN reason TEXT;
ALTER TABLE bulk_jobs ADD COLUMN errors TEXT;
ALTER TABLE job_items ADD COLUMN applied TEXT NOT NULL DEFAULT '[]';
ALTER TABLE job_items ADD COLUMN sending TEXT;
ALTER TABLE job_items ADD COLUMN note TEXT;
ALTER TABLE job_locks ADD COLUMN lock_file TEXT;
CREATE INDEX bulk_jobs_status ON bulk_jobs (status);
",
    ),
    // 3: job ids are never reused (AUTOINCREMENT), so "job 12" in an old log or ticket
    // never points at another job after `jobs prune` removed the newest ones. SQLite
    // cannot add AUTOINCREMENT with ALTER; the stored table definition is edited in place
    // (the rowid table's pages are the same with or without it), so the columns other
    // migrations added stay as they are. A throwaway AUTOINCREMENT table makes SQLite
    // create `sqlite_sequence`, which is then started at the highest id in use. The
    // migration fails if the definition was not found.
    M::up(
        r"
CREATE TABLE migration_3_sequence (id INTEGER PRIMARY KEY AUTOINCREMENT);
DROP TABLE migration_3_sequence;
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
   SET sql = replace(sql, 'id               INTEGER PRIMARY KEY,', 'id               INTEGER PRIMARY KEY AUTOINCREMENT,')
 WHERE type = 'table' AND name = 'bulk_jobs';
PRAGMA writable_schema = RESET;
CREATE TEMP TABLE migration_3_check (ok INTEGER NOT NULL CHECK (ok = 1));
INSERT INTO migration_3_check
  SELECT instr(sql, 'INTEGER PRIMARY KEY AUTOINCREMENT') > 0 FROM sqlite_schema
   WHERE type = 'table' AND name = 'bulk_jobs';
DROP TABLE migration_3_check;
DELETE FROM sqlite_sequence WHERE name = 'bulk_jobs';
INSERT INTO sqlite_sequence (name, seq) SELECT 'bulk_jobs', COALESCE(MAX(id), 0) FROM bulk_jobs;
",
    ),
    // 4: throttling seen by a job: 429s (and 503s with Retry-After) answered over all its
    // runs, and the limit the tenant's gate learned in the last run that was throttled.
    M::up(
        r"
ALTER TABLE bulk_jobs ADD COLUMN throttled_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE bulk_jobs ADD COLUMN settled_rate REAL;
",
    ),
    // 5: fewest requests (see `backend_bulks.rs`):
    // - `backend_bulks`: the bulk requests a job sent (Fusion's `PUT users/bulk`), with the
    //   ids the backend's own bulk history gave them, so both histories link up;
    // - `user_reads`: per tenant and user, what the last verified read showed (the listed
    //   fields' fingerprint, the details, the row it was planned from), which an
    //   incremental refresh trusts instead of reading the user again.
    M::up(
        r"
CREATE TABLE backend_bulks (
    id             INTEGER PRIMARY KEY,
    bulk_id        INTEGER NOT NULL REFERENCES bulk_jobs (id) ON DELETE CASCADE,
    title          TEXT NOT NULL,
    backend_id     INTEGER,
    backend_job_id TEXT,
    items          INTEGER NOT NULL,
    failed         INTEGER NOT NULL,
    created_on     TEXT NOT NULL
);
CREATE INDEX backend_bulks_bulk ON backend_bulks (bulk_id);

CREATE TABLE user_reads (
    tenant   TEXT NOT NULL,
    upn      TEXT NOT NULL,
    listed   TEXT NOT NULL,
    desired  TEXT,
    details  TEXT NOT NULL,
    read_on  TEXT NOT NULL,
    PRIMARY KEY (tenant, upn)
);
",
    ),
];

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

/// Pragmas every connection needs: WAL so readers (`jobs list` while a job runs) never
/// block the writer, NORMAL sync (durable across process kills, which is what resume
/// needs; an OS crash may lose the last commits), foreign keys for the item cascade, and a
/// busy timeout because another teamsync process may hold the write lock briefly.
pub(crate) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }
}
