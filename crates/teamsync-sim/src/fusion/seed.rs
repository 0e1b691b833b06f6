//! Building the tenant from a seed document and dumping it back in the same shape
//! (`GET /_sim/state`), so a dump re-seeds to the same tenant.
//!
//! A seed is checked as strictly as the API checks writes: every group, license, VRP and
//! number must resolve, no number is linked twice, no license is over-assigned. A bad seed
//! is refused with the first problem found rather than served half-right.

use std::collections::{BTreeMap, HashMap};

use super::state::{Account, Admin, Tenant, User, DRAAS_STATUS};
use super::wire::{AdminObj, Draas, TenantDoc};
use crate::common::{is_country, is_e164};

impl Tenant {
    /// The tenant in the seed's shape (`GET /_sim/state`).
    pub fn to_doc(&self) -> TenantDoc {
        let mut licenses = self.licenses.clone();
        for l in &mut licenses {
            l.free = self.free(&l.sku_id);
        }
        TenantDoc {
            draas_instance: self.draas_instance.clone(),
            tenant_uuid: self.tenant_uuid.clone(),
            subscription_id: self.subscription_id,
            ms_tenant_id: self.ms_tenant_id.clone(),
            status: self.status.clone(),
            domains: self.domains.clone(),
            users: self
                .users
                .values()
                .map(|u| {
                    let mut s = self.single_user(u);
                    if !u.roles.is_empty() {
                        s.ms_teams.roles = Some(u.roles.clone());
                    }
                    // Customer licenses of a user without a number are kept in a draas object
                    // without number fields, so a state dump re-seeds to the same tenant.
                    if s.draas.is_none() && !u.customer_licenses.is_empty() {
                        s.draas = Some(Draas {
                            id: u.draas_id,
                            connection_id: None,
                            customer_licenses: u.customer_licenses.clone(),
                            number_id: None,
                            phone_number: None,
                            status: u.status.clone(),
                        });
                    }
                    s
                })
                .collect(),
            groups: self
                .groups
                .iter()
                .map(|g| {
                    let mut g = g.clone();
                    g.filter = self.in_group_filter(&g.id);
                    g
                })
                .collect(),
            licenses,
            vrps: self.vrps.clone(),
            resource_accounts: self
                .accounts
                .values()
                .map(|a| {
                    let mut r = self.resource_account(a);
                    r.ms_teams.vrp.clone_from(&a.vrp);
                    r
                })
                .collect(),
            numbers: self.numbers.clone(),
            admin: self.admin.as_ref().map(|a| AdminObj {
                id: a.id,
                ms_username: a.ms_username.clone(),
            }),
            group_filter: self.group_filter.clone(),
            templates: self.templates.clone(),
            bulk_jobs: self.bulk_jobs.values().cloned().collect(),
        }
    }

    /// Builds and checks a tenant from a seed document: every reference must resolve and
    /// every count must fit, or the seed is refused with the first problem found.
    pub fn from_doc(doc: TenantDoc) -> Result<Tenant, String> {
        let mut t = Tenant {
            draas_instance: doc.draas_instance,
            tenant_uuid: doc.tenant_uuid,
            subscription_id: doc.subscription_id,
            ms_tenant_id: doc.ms_tenant_id,
            status: doc.status,
            domains: doc.domains,
            groups: doc.groups,
            licenses: doc.licenses,
            vrps: doc.vrps,
            numbers: Vec::new(),
            number_ids: HashMap::new(),
            users: BTreeMap::new(),
            accounts: BTreeMap::new(),
            upn_index: HashMap::new(),
            number_holder: HashMap::new(),
            assigned: HashMap::new(),
            next_draas_id: 1,
            next_connection_id: 1,
            admin: None,
            next_admin_id: 1,
            group_filter: Vec::new(),
            templates: Vec::new(),
            bulk_jobs: BTreeMap::new(),
        };
        if t.draas_instance.is_empty() || t.tenant_uuid.is_empty() {
            return Err("draas_instance and tenant_uuid must not be empty".into());
        }
        for (i, n) in doc.numbers.iter().enumerate() {
            if !is_e164(n) {
                return Err(format!("numbers[{i}]: {n:?} is not E.164"));
            }
            if t.number_ids.insert(n.clone(), i as i64 + 1).is_some() {
                return Err(format!("numbers[{i}]: {n} is listed twice"));
            }
            t.numbers.push(n.clone());
        }
        let mut seen = std::collections::HashSet::new();
        for g in &t.groups {
            if !seen.insert(g.id.to_lowercase()) {
                return Err(format!("group id {} is listed twice", g.id));
            }
        }
        for l in &t.licenses {
            if l.total < 0 {
                return Err(format!("license {} has a negative total", l.sku_id));
            }
        }
        if let Some(a) = doc.admin {
            if a.ms_username.trim().is_empty() {
                return Err("admin.msUsername must not be empty".into());
            }
            t.next_admin_id = a.id + 1;
            t.admin = Some(Admin {
                id: a.id,
                ms_username: a.ms_username,
                salt: String::new(),
                password_hash: String::new(),
            });
        }
        for (i, f) in doc.group_filter.into_iter().enumerate() {
            if f.id.trim().is_empty() {
                return Err(format!("groupFilter[{i}]: id must not be empty"));
            }
            if t.in_group_filter(&f.id) {
                return Err(format!("groupFilter[{i}]: {} is listed twice", f.id));
            }
            t.group_filter.push(f);
        }
        for (i, tpl) in doc.templates.into_iter().enumerate() {
            t.check_template(&tpl)
                .map_err(|e| format!("templates[{i}] ({}): {e}", tpl.name))?;
            if t.templates
                .iter()
                .any(|x| x.id == tpl.id || x.name == tpl.name)
            {
                return Err(format!(
                    "templates[{i}]: id {} or name {:?} is listed twice",
                    tpl.id, tpl.name
                ));
            }
            t.templates.push(tpl);
        }
        for (i, j) in doc.bulk_jobs.into_iter().enumerate() {
            if t.bulk_jobs.contains_key(&j.id) {
                return Err(format!("bulkJobs[{i}]: id {} is listed twice", j.id));
            }
            if j.kind != "ms_users" && j.kind != "ms_resource_accounts" {
                return Err(format!(
                    "bulkJobs[{i}]: kind {:?} is not ms_users or ms_resource_accounts",
                    j.kind
                ));
            }
            t.bulk_jobs.insert(j.id, j);
        }
        let mut max_draas = 0;
        let mut max_conn = 0;
        for (i, su) in doc.users.into_iter().enumerate() {
            let m = su.ms_teams;
            let ctx = format!("users[{i}] ({})", m.user_principal_name);
            let domain = m
                .user_principal_name
                .split_once('@')
                .map(|(_, d)| d.to_lowercase())
                .ok_or_else(|| format!("{ctx}: userPrincipalName is not local@domain"))?;
            if !t.domains.iter().any(|d| d.eq_ignore_ascii_case(&domain)) {
                return Err(format!("{ctx}: domain {domain} is not a verified domain"));
            }
            if t.upn_index
                .contains_key(&m.user_principal_name.to_lowercase())
                || t.users.contains_key(&m.id)
            {
                return Err(format!("{ctx}: duplicate userPrincipalName or id"));
            }
            if let Some(loc) = &m.location {
                if !is_country(loc) {
                    return Err(format!("{ctx}: location {loc:?} is not ISO 3166 alpha-2"));
                }
            }
            let licenses = seed_licenses(&t, &ctx, m.licenses.iter().map(|l| l.sku_id.as_str()))?;
            let mut groups = Vec::new();
            for g in &m.groups {
                let Some(obj) = t.group(&g.id) else {
                    return Err(format!("{ctx}: unknown group {}", g.id));
                };
                groups.push(obj.id.clone());
            }
            if let Some(v) = &m.vrp {
                if t.vrp(v).is_none() {
                    return Err(format!("{ctx}: unknown vrp {v}"));
                }
            }
            let d = su.draas;
            let phone = d.as_ref().and_then(|d| d.phone_number.clone());
            if let Some(n) = &phone {
                seed_number(&t, &ctx, n)?;
            }
            let draas_id = d.as_ref().map_or(0, |d| d.id);
            max_draas = max_draas.max(draas_id);
            let connection_id = d.as_ref().and_then(|d| d.connection_id);
            max_conn = max_conn.max(connection_id.unwrap_or(0));
            let u = User {
                id: m.id,
                upn: m.user_principal_name,
                display_name: m.display_name,
                location: m.location,
                licenses,
                groups,
                roles: m.roles.unwrap_or_default(),
                vrp: m.vrp,
                connection_id: phone.as_ref().map(|_| connection_id.unwrap_or(0)),
                phone_number: phone,
                draas_id,
                customer_licenses: d
                    .as_ref()
                    .map(|d| d.customer_licenses.clone())
                    .unwrap_or_default(),
                status: d.map_or_else(|| DRAAS_STATUS.to_string(), |d| d.status),
                visible_at_ms: 0,
            };
            t.index_user(&u);
            t.users.insert(u.id.clone(), u);
        }
        for (i, ra) in doc.resource_accounts.into_iter().enumerate() {
            let m = ra.ms_teams;
            let ctx = format!("resourceAccounts[{i}] ({})", m.user_principal_name);
            if t.upn_index
                .contains_key(&m.user_principal_name.to_lowercase())
            {
                return Err(format!("{ctx}: duplicate userPrincipalName"));
            }
            let licenses = seed_licenses(
                &t,
                &ctx,
                m.licenses.iter().flatten().map(|l| l.sku_id.as_str()),
            )?;
            let phone = m.phone_number.clone();
            if let Some(n) = &phone {
                seed_number(&t, &ctx, n)?;
            }
            let d = ra.draas;
            let draas_id = d.as_ref().map_or(0, |d| d.id);
            max_draas = max_draas.max(draas_id);
            let connection_id = d.as_ref().and_then(|d| d.connection_id);
            max_conn = max_conn.max(connection_id.unwrap_or(0));
            let a = Account {
                id: m.id,
                upn: m.user_principal_name,
                display_name: m.display_name,
                location: m.location,
                account_type: m.account_type,
                licenses,
                vrp: m.vrp,
                connection_id: phone.as_ref().map(|_| connection_id.unwrap_or(0)),
                phone_number: phone,
                draas_id,
                customer_licenses: d
                    .as_ref()
                    .map(|d| d.customer_licenses.clone())
                    .unwrap_or_default(),
                status: d.map_or_else(|| DRAAS_STATUS.to_string(), |d| d.status),
            };
            t.index_account(&a);
            t.accounts.insert(a.id.clone(), a);
        }
        for l in &t.licenses {
            if t.free(&l.sku_id) < 0 {
                return Err(format!(
                    "license {} is assigned more often than its total {}",
                    l.sku_part_number, l.total
                ));
            }
        }
        t.next_draas_id = max_draas + 1;
        t.next_connection_id = max_conn + 1;
        // Users and accounts seeded without a draas id get fresh ones.
        let ids: Vec<String> = t
            .users
            .values()
            .filter(|u| u.draas_id == 0)
            .map(|u| u.id.clone())
            .collect();
        for id in ids {
            let n = t.next_draas_id;
            t.next_draas_id += 1;
            if let Some(u) = t.users.get_mut(&id) {
                u.draas_id = n;
            }
        }
        let ids: Vec<String> = t
            .accounts
            .values()
            .filter(|a| a.draas_id == 0)
            .map(|a| a.id.clone())
            .collect();
        for id in ids {
            let n = t.next_draas_id;
            t.next_draas_id += 1;
            if let Some(a) = t.accounts.get_mut(&id) {
                a.draas_id = n;
            }
        }
        Ok(t)
    }
}

/// A seeded user's or resource account's licenses, each of which must be in the catalog.
fn seed_licenses<'a>(
    t: &Tenant,
    ctx: &str,
    sku_ids: impl Iterator<Item = &'a str>,
) -> Result<Vec<String>, String> {
    sku_ids
        .map(|id| {
            t.license(id)
                .map(|obj| obj.sku_id.clone())
                .ok_or_else(|| format!("{ctx}: unknown license {id}"))
        })
        .collect()
}

/// A seeded number must be in the inventory and held by no one yet.
fn seed_number(t: &Tenant, ctx: &str, n: &str) -> Result<(), String> {
    if !t.number_ids.contains_key(n) {
        return Err(format!("{ctx}: number {n} is not in the inventory"));
    }
    if t.number_holder.contains_key(n) {
        return Err(format!("{ctx}: number {n} is linked twice"));
    }
    Ok(())
}
