//! SQLite persistence of the simulated UMP server, so a state file survives restarts (a
//! second sync against the embedded tenant must change nothing). The seed's catalogs are
//! stored once as JSON; each user is one row, rewritten before memory changes.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::state::{key, Tenant, User};
use super::wire::SeedDoc;
use crate::common::store::{open_db, Schema, StoreError};

/// The state file's tables (prefixed, like every simulator's but Fusion's).
const STATE: Schema = Schema {
    version: 1,
    sql: "
CREATE TABLE IF NOT EXISTS ump_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ump_users (sip TEXT PRIMARY KEY, json TEXT NOT NULL);
",
    own_table: "ump_users",
};

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating) the state file, or an in-memory database when `path` is None.
    pub fn open(path: Option<&Path>) -> Result<Store, StoreError> {
        Ok(Store {
            conn: open_db(path, &STATE)?,
        })
    }

    /// The catalogs (the seed without its users), or None when never seeded.
    fn catalogs(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM ump_meta WHERE key = 'seed'", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.catalogs()?.is_none())
    }

    pub fn seed(&mut self, t: &Tenant) -> Result<(), StoreError> {
        let mut doc = t.doc.clone();
        doc.users.clear();
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO ump_meta(key, value) VALUES ('seed', ?1)",
            [serde_json::to_string(&doc)?],
        )?;
        for u in t.users.values() {
            put(&tx, u)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Persists one user as it is after a write.
    pub fn save_user(&mut self, u: &User) -> Result<(), StoreError> {
        put(&self.conn, u)
    }

    pub fn load(&self) -> Result<Tenant, StoreError> {
        let text = self
            .catalogs()?
            .ok_or_else(|| StoreError::Invalid("the state was never seeded".into()))?;
        let mut doc: SeedDoc = serde_json::from_str(&text)?;
        let mut st = self
            .conn
            .prepare("SELECT json FROM ump_users ORDER BY sip")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        for row in rows {
            doc.users.push(serde_json::from_str(&row?)?);
        }
        Tenant::from_doc(doc).map_err(StoreError::Invalid)
    }
}

fn put(conn: &Connection, u: &User) -> Result<(), StoreError> {
    let sip = u
        .get("SipAddress")
        .and_then(|v| v.as_str())
        .ok_or_else(|| StoreError::Invalid("a user without SipAddress".into()))?;
    conn.execute(
        "INSERT OR REPLACE INTO ump_users(sip, json) VALUES (?1, ?2)",
        params![key(sip), serde_json::to_string(u)?],
    )?;
    Ok(())
}
