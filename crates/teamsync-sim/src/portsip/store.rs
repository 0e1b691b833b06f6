//! The simulated PBX's users in memory, persisted to SQLite on every write, so a state
//! file survives restarts (a second sync against the embedded tenant changes nothing).
//!
//! Passwords are kept only as salted SHA-256 hashes (`sha256$<salt>$<hash>`): the
//! simulator never needs them back, and a test can check the clear text is nowhere.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::wire::{TenantDoc, UserObj};

/// The state file's tables, prefixed so no other simulator's file passes for a PortSIP one.
const STATE: Schema = Schema {
    version: 1,
    sql: "
CREATE TABLE IF NOT EXISTS portsip_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS portsip_users (
  id INTEGER PRIMARY KEY, json TEXT NOT NULL,
  password_hash TEXT, extension_password_hash TEXT);
",
    own_table: "portsip_users",
};

pub use crate::common::store::StoreError;
use crate::common::store::{open_db, Schema};

/// One user and its secrets' hashes.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub user: UserObj,
    pub password_hash: Option<String>,
    pub extension_password_hash: Option<String>,
}

/// Salted hash of a secret; the clear text is dropped by the caller right after.
pub fn hash_secret(secret: &str) -> String {
    use rand::Rng;
    let salt: [u8; 16] = rand::rng().random();
    let salt = hex::encode(salt);
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(secret.as_bytes());
    format!("sha256${salt}${}", hex::encode(h.finalize()))
}

/// The tenant: users by numeric id (listed in id order) and custom roles.
#[derive(Debug, Default)]
pub struct Tenant {
    pub users: BTreeMap<u64, Record>,
    pub custom_roles: Vec<String>,
    pub next_id: u64,
}

/// The first id handed out in a fresh tenant: PortSIP ids are long decimal strings.
const FIRST_ID: u64 = 100_000_000_001;

impl Tenant {
    pub fn to_doc(&self) -> TenantDoc {
        TenantDoc {
            custom_roles: self.custom_roles.clone(),
            users: self.users.values().map(|r| r.user.clone()).collect(),
        }
    }
    pub fn get(&self, id: &str) -> Option<&Record> {
        id.parse::<u64>().ok().and_then(|n| self.users.get(&n))
    }
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating it and its folder) the state file, or an in-memory database when
    /// `path` is None, the way every simulator does ([`open_db`]).
    pub fn open(path: Option<&Path>) -> Result<Store, StoreError> {
        Ok(Store {
            conn: open_db(path, &STATE)?,
        })
    }

    pub fn is_empty(&self) -> Result<bool, StoreError> {
        let seeded: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM portsip_meta WHERE key = 'seeded'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(seeded.is_none())
    }

    /// Writes a seeded tenant (checked by the caller) in one transaction.
    pub fn seed(&mut self, t: &Tenant) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for r in t.users.values() {
            put(&tx, r)?;
        }
        tx.execute(
            "INSERT OR REPLACE INTO portsip_meta (key, value) VALUES ('custom_roles', ?1)",
            params![serde_json::to_string(&t.custom_roles)?],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO portsip_meta (key, value) VALUES ('seeded', '1')",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn load(&self) -> Result<Tenant, StoreError> {
        let roles: String = self
            .conn
            .query_row(
                "SELECT value FROM portsip_meta WHERE key = 'custom_roles'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_else(|| "[]".into());
        let mut t = Tenant {
            custom_roles: serde_json::from_str(&roles)?,
            ..Tenant::default()
        };
        let mut st = self.conn.prepare(
            "SELECT id, json, password_hash, extension_password_hash FROM portsip_users",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        for row in rows {
            let (id, json, password_hash, extension_password_hash) = row?;
            let user: UserObj = serde_json::from_str(&json)?;
            let id = u64::try_from(id).map_err(|_| StoreError::Invalid(format!("user id {id}")))?;
            t.users.insert(
                id,
                Record {
                    user,
                    password_hash,
                    extension_password_hash,
                },
            );
        }
        t.next_id = t
            .users
            .keys()
            .max()
            .map_or(FIRST_ID, |m| m + 1)
            .max(FIRST_ID);
        Ok(t)
    }

    /// Persists one created or modified user.
    pub fn put(&mut self, r: &Record) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        put(&tx, r)?;
        tx.commit()?;
        Ok(())
    }
}

fn put(tx: &rusqlite::Transaction<'_>, r: &Record) -> Result<(), StoreError> {
    let id: i64 = r
        .user
        .id
        .parse()
        .map_err(|_| StoreError::Invalid(format!("user id {:?} is not numeric", r.user.id)))?;
    tx.execute(
        "INSERT OR REPLACE INTO portsip_users (id, json, password_hash, extension_password_hash) VALUES (?1, ?2, ?3, ?4)",
        params![
            id,
            serde_json::to_string(&r.user)?,
            r.password_hash,
            r.extension_password_hash
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sim_backend` changed but `state` kept: each simulator refuses the other's file
    /// rather than seeding a second tenant into it.
    #[test]
    fn another_simulators_state_file_is_refused_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let fusion_file = dir.path().join("fusion.db");
        crate::fusion::store::Store::open(Some(&fusion_file)).unwrap();
        let e = Store::open(Some(&fusion_file)).err().unwrap();
        assert!(e.to_string().contains("another simulator"), "{e}");

        let portsip_file = dir.path().join("portsip.db");
        Store::open(Some(&portsip_file)).unwrap();
        Store::open(Some(&portsip_file)).unwrap();
        let e = crate::fusion::store::Store::open(Some(&portsip_file))
            .err()
            .unwrap();
        assert!(e.to_string().contains("another simulator"), "{e}");
    }
}
