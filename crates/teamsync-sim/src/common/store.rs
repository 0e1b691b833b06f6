//! How every simulator keeps its state: one SQLite file per simulator (WAL), its tables
//! created on open and stamped with a version, and a refusal to open another simulator's file.

use std::path::Path;

use rusqlite::Connection;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("state store holds malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("state store: {0}")]
    Invalid(String),
    #[error("state store {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Opens (creating it and its folder) a simulator's state file in WAL mode, or an in-memory
/// database when `path` is None, then creates the tables of `schema` and stamps its version.
/// Every simulator keeps its state this way, and each refuses a file it cannot read: one
/// written by a newer schema, or by another simulator (tables, but not `schema.own_table`),
/// so pointing one simulator at another's state file fails instead of mixing tenants.
pub fn open_db(path: Option<&Path>, schema: &Schema) -> Result<Connection, StoreError> {
    let conn = match path {
        Some(p) => {
            // The default state lives in `.teamsync/`, which a first run has not made yet.
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            Connection::open(p)?
        }
        None => Connection::open_in_memory()?,
    };
    if path.is_some() {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
    }
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > schema.version {
        return Err(StoreError::Invalid(format!(
            "state file schema {version} is newer than this simulator ({})",
            schema.version
        )));
    }
    let (tables, own): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(name = ?1), 0) FROM sqlite_master \
         WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
        [schema.own_table],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if tables > 0 && own == 0 {
        return Err(StoreError::Invalid(
            "the state file belongs to another simulator".into(),
        ));
    }
    conn.execute_batch(schema.sql)?;
    conn.pragma_update(None, "user_version", schema.version)?;
    Ok(conn)
}

/// What [`open_db`] makes of a state file for one simulator.
pub struct Schema {
    /// Bumped when the tables change; a newer file is refused.
    pub version: i64,
    /// `CREATE TABLE IF NOT EXISTS …` of every table.
    pub sql: &'static str,
    /// A table only this simulator has: a file with tables but not this one is another's.
    pub own_table: &'static str,
}
