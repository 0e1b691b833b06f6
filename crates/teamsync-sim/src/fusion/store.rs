//! SQLite persistence of the simulated tenant, so a state file survives restarts (a second
//! sync against the embedded tenant must change nothing).
//!
//! The tenant lives in memory for speed (reads never touch SQLite); every write is persisted
//! here in one transaction, row by row, before memory is updated. Catalogs (domains, groups,
//! licenses, VRPs, numbers) are written once, at seeding; free license counts and number
//! links are never stored, they are derived from the users. Templates are a catalog too; the
//! administrator (password as a salted hash only), the group filter and the bulk jobs are
//! written as they change. Tables added after the first release are created on open, so an
//! older state file keeps working.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::state::{Account, Admin, Change, Tenant};
use super::wire::{
    BulkJob, GroupObj, GroupRef, LicenseObj, RoleRef, TemplateObj, TenantDoc, VrpObj,
};
use crate::common::store::{open_db, Schema, StoreError};

/// The state file's tables; `users` marks a Fusion file.
const STATE: Schema = Schema {
    version: 1,
    sql: SCHEMA,
    own_table: "users",
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS domains (pos INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups_ (pos INTEGER PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS licenses (pos INTEGER PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vrps (pos INTEGER PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS numbers (number_id INTEGER PRIMARY KEY, number TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY, upn TEXT NOT NULL, display_name TEXT NOT NULL, location TEXT,
  licenses TEXT NOT NULL, groups_ TEXT NOT NULL, roles TEXT NOT NULL, vrp TEXT,
  phone_number TEXT, connection_id INTEGER, draas_id INTEGER NOT NULL,
  customer_licenses TEXT NOT NULL, status TEXT NOT NULL, visible_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
  id TEXT PRIMARY KEY, upn TEXT NOT NULL, display_name TEXT NOT NULL, location TEXT NOT NULL,
  account_type TEXT NOT NULL, licenses TEXT NOT NULL, vrp TEXT, phone_number TEXT,
  connection_id INTEGER, draas_id INTEGER NOT NULL, customer_licenses TEXT NOT NULL,
  status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS admin (
  id INTEGER PRIMARY KEY, ms_username TEXT NOT NULL, salt TEXT NOT NULL,
  password_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS group_filter (
  pos INTEGER PRIMARY KEY, id TEXT NOT NULL, display_name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS templates (pos INTEGER PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS bulk_jobs (id INTEGER PRIMARY KEY, json TEXT NOT NULL);
";

pub struct Store {
    conn: Connection,
}

fn js<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    Ok(serde_json::to_string(v)?)
}

impl Store {
    /// Opens (creating) the state file, or an in-memory database when `path` is None.
    pub fn open(path: Option<&Path>) -> Result<Store, StoreError> {
        Ok(Store {
            conn: open_db(path, &STATE)?,
        })
    }

    fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// The key that signs continuation tokens, created on first use and kept with the state.
    pub fn token_key(&mut self) -> Result<Vec<u8>, StoreError> {
        if let Some(h) = self.meta("token_key")? {
            return hex::decode(h).map_err(|_| StoreError::Invalid("token_key is not hex".into()));
        }
        let key: [u8; 32] = rand::random();
        self.conn.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('token_key', ?1)",
            [hex::encode(key)],
        )?;
        Ok(key.to_vec())
    }

    /// True when the store has never been seeded.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.meta("draas_instance")?.is_none())
    }

    /// Writes a freshly seeded tenant, catalogs included, in one transaction.
    pub fn seed(&mut self, t: &Tenant) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut meta = tx.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")?;
            meta.execute(params!["draas_instance", t.draas_instance])?;
            meta.execute(params!["tenant_uuid", t.tenant_uuid])?;
            meta.execute(params!["subscription_id", t.subscription_id.to_string()])?;
            meta.execute(params!["ms_tenant_id", t.ms_tenant_id])?;
            if let Some(s) = &t.status {
                meta.execute(params!["status", js(s)?])?;
            }
            for (i, d) in t.domains.iter().enumerate() {
                tx.execute(
                    "INSERT INTO domains(pos, name) VALUES (?1, ?2)",
                    params![i, d],
                )?;
            }
            for (i, g) in t.groups.iter().enumerate() {
                tx.execute(
                    "INSERT INTO groups_(pos, json) VALUES (?1, ?2)",
                    params![i, js(g)?],
                )?;
            }
            for (i, l) in t.licenses.iter().enumerate() {
                tx.execute(
                    "INSERT INTO licenses(pos, json) VALUES (?1, ?2)",
                    params![i, js(l)?],
                )?;
            }
            for (i, v) in t.vrps.iter().enumerate() {
                tx.execute(
                    "INSERT INTO vrps(pos, json) VALUES (?1, ?2)",
                    params![i, js(v)?],
                )?;
            }
            for n in &t.numbers {
                tx.execute(
                    "INSERT INTO numbers(number_id, number) VALUES (?1, ?2)",
                    params![t.number_ids.get(n), n],
                )?;
            }
            for (i, tpl) in t.templates.iter().enumerate() {
                tx.execute(
                    "INSERT INTO templates(pos, json) VALUES (?1, ?2)",
                    params![i, js(tpl)?],
                )?;
            }
        }
        let change = Change {
            upsert_users: t.users.values().cloned().collect(),
            upsert_accounts: t.accounts.values().cloned().collect(),
            next_draas_id: t.next_draas_id,
            next_connection_id: t.next_connection_id,
            admin: Some(t.admin.clone()),
            next_admin_id: t.next_admin_id,
            group_filter: Some(t.group_filter.clone()),
            upsert_bulk_jobs: t.bulk_jobs.values().cloned().collect(),
            ..Change::default()
        };
        write_change(&tx, &change)?;
        tx.commit()?;
        Ok(())
    }

    /// Persists one validated write.
    pub fn commit(&mut self, change: &Change) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        write_change(&tx, change)?;
        tx.commit()?;
        Ok(())
    }

    /// Loads the tenant a previous run left, rebuilding the indexes through the seed checks.
    pub fn load(&self) -> Result<Tenant, StoreError> {
        let need = |k: &str| -> Result<String, StoreError> {
            self.meta(k)?
                .ok_or_else(|| StoreError::Invalid(format!("meta key {k} is missing")))
        };
        let subscription_id: i64 = need("subscription_id")?
            .parse()
            .map_err(|_| StoreError::Invalid("subscription_id is not an integer".into()))?;
        let status = match self.meta("status")? {
            Some(s) => Some(serde_json::from_str(&s)?),
            None => None,
        };
        let col = |sql: &str| -> Result<Vec<String>, StoreError> {
            let mut st = self.conn.prepare(sql)?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        };
        let domains = col("SELECT name FROM domains ORDER BY pos")?;
        let groups = json_rows::<GroupObj>(&col("SELECT json FROM groups_ ORDER BY pos")?)?;
        let licenses = json_rows::<LicenseObj>(&col("SELECT json FROM licenses ORDER BY pos")?)?;
        let vrps = json_rows::<VrpObj>(&col("SELECT json FROM vrps ORDER BY pos")?)?;
        let numbers = col("SELECT number FROM numbers ORDER BY number_id")?;
        let templates = json_rows::<TemplateObj>(&col("SELECT json FROM templates ORDER BY pos")?)?;
        let bulk_jobs = json_rows::<BulkJob>(&col("SELECT json FROM bulk_jobs ORDER BY id")?)?;
        let group_filter = {
            let mut st = self
                .conn
                .prepare("SELECT id, display_name FROM group_filter ORDER BY pos")?;
            let rows = st.query_map([], |r| {
                Ok(GroupRef {
                    id: r.get(0)?,
                    display_name: r.get(1)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let doc = TenantDoc {
            draas_instance: need("draas_instance")?,
            tenant_uuid: need("tenant_uuid")?,
            subscription_id,
            ms_tenant_id: need("ms_tenant_id")?,
            status,
            domains,
            users: Vec::new(),
            groups,
            licenses,
            vrps,
            resource_accounts: Vec::new(),
            numbers,
            admin: None,
            group_filter,
            templates,
            bulk_jobs,
        };
        let mut t = Tenant::from_doc(doc).map_err(StoreError::Invalid)?;
        let mut change = t.start_change();
        {
            let mut st = self.conn.prepare(
                "SELECT id, upn, display_name, location, licenses, groups_, roles, vrp, \
                 phone_number, connection_id, draas_id, customer_licenses, status, visible_at_ms \
                 FROM users",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let lic: String = r.get(4)?;
                let grp: String = r.get(5)?;
                let roles: String = r.get(6)?;
                let cl: String = r.get(11)?;
                change.upsert_users.push(super::state::User {
                    id: r.get(0)?,
                    upn: r.get(1)?,
                    display_name: r.get(2)?,
                    location: r.get(3)?,
                    licenses: serde_json::from_str(&lic)?,
                    groups: serde_json::from_str(&grp)?,
                    roles: serde_json::from_str::<Vec<RoleRef>>(&roles)?,
                    vrp: r.get(7)?,
                    phone_number: r.get(8)?,
                    connection_id: r.get(9)?,
                    draas_id: r.get(10)?,
                    customer_licenses: serde_json::from_str(&cl)?,
                    status: r.get(12)?,
                    visible_at_ms: r.get(13)?,
                });
            }
            let mut st = self.conn.prepare(
                "SELECT id, upn, display_name, location, account_type, licenses, vrp, \
                 phone_number, connection_id, draas_id, customer_licenses, status FROM accounts",
            )?;
            let mut rows = st.query([])?;
            while let Some(r) = rows.next()? {
                let lic: String = r.get(5)?;
                let cl: String = r.get(10)?;
                change.upsert_accounts.push(Account {
                    id: r.get(0)?,
                    upn: r.get(1)?,
                    display_name: r.get(2)?,
                    location: r.get(3)?,
                    account_type: r.get(4)?,
                    licenses: serde_json::from_str(&lic)?,
                    vrp: r.get(6)?,
                    phone_number: r.get(7)?,
                    connection_id: r.get(8)?,
                    draas_id: r.get(9)?,
                    customer_licenses: serde_json::from_str(&cl)?,
                    status: r.get(11)?,
                });
            }
        }
        let num = |k: &str| -> Result<i64, StoreError> {
            need(k)?
                .parse()
                .map_err(|_| StoreError::Invalid(format!("{k} is not an integer")))
        };
        change.next_draas_id = num("next_draas_id")?;
        change.next_connection_id = num("next_connection_id")?;
        change.admin = Some(
            self.conn
                .query_row(
                    "SELECT id, ms_username, salt, password_hash FROM admin",
                    [],
                    |r| {
                        Ok(Admin {
                            id: r.get(0)?,
                            ms_username: r.get(1)?,
                            salt: r.get(2)?,
                            password_hash: r.get(3)?,
                        })
                    },
                )
                .optional()?,
        );
        if self.meta("next_admin_id")?.is_some() {
            change.next_admin_id = num("next_admin_id")?;
        }
        t.apply(change);
        Ok(t)
    }
}

/// Parses rows of JSON text.
fn json_rows<T: serde::de::DeserializeOwned>(rows: &[String]) -> Result<Vec<T>, StoreError> {
    Ok(rows
        .iter()
        .map(|s| serde_json::from_str::<T>(s))
        .collect::<Result<Vec<_>, _>>()?)
}

fn write_change(tx: &rusqlite::Transaction<'_>, c: &Change) -> Result<(), StoreError> {
    {
        let mut up = tx.prepare_cached(
            "INSERT OR REPLACE INTO users(id, upn, display_name, location, licenses, groups_, \
             roles, vrp, phone_number, connection_id, draas_id, customer_licenses, status, \
             visible_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        )?;
        for u in &c.upsert_users {
            up.execute(params![
                u.id,
                u.upn,
                u.display_name,
                u.location,
                js(&u.licenses)?,
                js(&u.groups)?,
                js(&u.roles)?,
                u.vrp,
                u.phone_number,
                u.connection_id,
                u.draas_id,
                js(&u.customer_licenses)?,
                u.status,
                u.visible_at_ms
            ])?;
        }
        let mut del = tx.prepare_cached("DELETE FROM users WHERE id = ?1")?;
        for id in &c.delete_users {
            del.execute([id])?;
        }
        let mut up = tx.prepare_cached(
            "INSERT OR REPLACE INTO accounts(id, upn, display_name, location, account_type, \
             licenses, vrp, phone_number, connection_id, draas_id, customer_licenses, status) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for a in &c.upsert_accounts {
            up.execute(params![
                a.id,
                a.upn,
                a.display_name,
                a.location,
                a.account_type,
                js(&a.licenses)?,
                a.vrp,
                a.phone_number,
                a.connection_id,
                a.draas_id,
                js(&a.customer_licenses)?,
                a.status
            ])?;
        }
        let mut del = tx.prepare_cached("DELETE FROM accounts WHERE id = ?1")?;
        for id in &c.delete_accounts {
            del.execute([id])?;
        }
        if let Some(a) = &c.admin {
            tx.execute("DELETE FROM admin", [])?;
            if let Some(a) = a {
                tx.execute(
                    "INSERT INTO admin(id, ms_username, salt, password_hash) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![a.id, a.ms_username, a.salt, a.password_hash],
                )?;
            }
        }
        if let Some(f) = &c.group_filter {
            tx.execute("DELETE FROM group_filter", [])?;
            for (i, g) in f.iter().enumerate() {
                tx.execute(
                    "INSERT INTO group_filter(pos, id, display_name) VALUES (?1, ?2, ?3)",
                    params![i, g.id, g.display_name],
                )?;
            }
        }
        let mut job =
            tx.prepare_cached("INSERT OR REPLACE INTO bulk_jobs(id, json) VALUES (?1, ?2)")?;
        for j in &c.upsert_bulk_jobs {
            job.execute(params![j.id, js(j)?])?;
        }
        let mut meta =
            tx.prepare_cached("INSERT OR REPLACE INTO meta(key, value) VALUES (?1, ?2)")?;
        meta.execute(params!["next_admin_id", c.next_admin_id.to_string()])?;
        meta.execute(params!["next_draas_id", c.next_draas_id.to_string()])?;
        meta.execute(params![
            "next_connection_id",
            c.next_connection_id.to_string()
        ])?;
    }
    Ok(())
}
