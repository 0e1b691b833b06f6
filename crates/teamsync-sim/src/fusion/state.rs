//! The tenant held in memory: users, catalogs, the number inventory and the indexes that make
//! the document's rules cheap to check (UPN uniqueness, one owner per number, license counts).
//!
//! Handlers validate a change against this model, the store persists it, and only then is
//! it applied here, so a failed write never leaves memory and disk apart.

use crate::common::{is_country, is_e164};
use std::collections::{BTreeMap, HashMap};

use super::error::{ApiError, Code};
use super::wire::{
    BulkJob, Draas, GroupObj, GroupRef, LicenseObj, LicenseRef, RaMsTeams, ResourceAccount,
    RoleRef, SingleMsTeams, SingleUser, TemplateObj, VrpObj,
};

/// SKUs that include Microsoft Teams Phone System: a user holding one is `voiceEnabled: "yes"`
/// and may be given a number. Our reading; the document only says the value tells whether the
/// user "may be voice activated".
pub const VOICE_SKUS: &[&str] = &[
    "MCOEV",
    "MCOCAP",
    "PHONESYSTEM_VIRTUALUSER",
    "MCOEV_VIRTUALUSER",
    "ENTERPRISEPREMIUM",
    "ENTERPRISEPREMIUM_NOPSTNCONF",
    "SPE_E5",
];

/// Status of a Fusion user record; the document's example value.
pub const DRAAS_STATUS: &str = "active";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    pub location: Option<String>,
    /// skuIds, in assignment order.
    pub licenses: Vec<String>,
    /// group ids, in assignment order.
    pub groups: Vec<String>,
    pub roles: Vec<RoleRef>,
    pub vrp: Option<String>,
    pub phone_number: Option<String>,
    pub connection_id: Option<i64>,
    pub draas_id: i64,
    pub customer_licenses: Vec<String>,
    pub status: String,
    /// Unix ms before which the user is not visible (replication delay); 0 for seeded users.
    pub visible_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    pub location: String,
    pub account_type: String,
    pub licenses: Vec<String>,
    pub vrp: Option<String>,
    pub phone_number: Option<String>,
    pub connection_id: Option<i64>,
    pub draas_id: i64,
    pub customer_licenses: Vec<String>,
    pub status: String,
}

/// The subscription's MS Teams administrator. Only a salted SHA-256 of the password is kept
/// (both empty for a seeded administrator); Debug shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Admin {
    pub id: i64,
    pub ms_username: String,
    /// Hex of 16 random bytes.
    pub salt: String,
    /// Hex of SHA-256(salt bytes ‖ password).
    pub password_hash: String,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("id", &self.id)
            .field("ms_username", &self.ms_username)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// Who holds a number of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    User(String),
    Account(String),
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub draas_instance: String,
    pub tenant_uuid: String,
    pub subscription_id: i64,
    pub ms_tenant_id: String,
    pub status: Option<serde_json::Map<String, serde_json::Value>>,
    pub domains: Vec<String>,
    pub groups: Vec<GroupObj>,
    pub licenses: Vec<LicenseObj>,
    pub vrps: Vec<VrpObj>,
    /// Inventory in seed order; the number id is the 1-based position.
    pub numbers: Vec<String>,
    pub number_ids: HashMap<String, i64>,
    pub users: BTreeMap<String, User>,
    pub accounts: BTreeMap<String, Account>,
    pub upn_index: HashMap<String, String>,
    pub number_holder: HashMap<String, Holder>,
    pub assigned: HashMap<String, i64>,
    pub next_draas_id: i64,
    pub next_connection_id: i64,
    pub admin: Option<Admin>,
    pub next_admin_id: i64,
    /// The SRE group filter as last posted (entries may name groups that no longer exist).
    pub group_filter: Vec<GroupRef>,
    /// Server-side templates (read-only through the API).
    pub templates: Vec<TemplateObj>,
    /// Bulk jobs by database id.
    pub bulk_jobs: BTreeMap<i64, BulkJob>,
}

/// One write, validated: what the store persists and the model then applies.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub upsert_users: Vec<User>,
    pub delete_users: Vec<String>,
    pub upsert_accounts: Vec<Account>,
    pub delete_accounts: Vec<String>,
    pub next_draas_id: i64,
    pub next_connection_id: i64,
    /// Some(None) deletes the administrator, Some(Some(a)) creates or replaces it.
    pub admin: Option<Option<Admin>>,
    pub next_admin_id: i64,
    /// Some(list) replaces the whole SRE group filter.
    pub group_filter: Option<Vec<GroupRef>>,
    /// Bulk jobs created or updated.
    pub upsert_bulk_jobs: Vec<BulkJob>,
}

impl Tenant {
    pub fn is_voice_sku(&self, sku_id: &str) -> bool {
        self.licenses
            .iter()
            .any(|l| l.sku_id == sku_id && VOICE_SKUS.contains(&l.sku_part_number.as_str()))
    }

    pub fn voice_enabled(&self, licenses: &[String]) -> &'static str {
        if licenses.iter().any(|s| self.is_voice_sku(s)) {
            "yes"
        } else {
            "no"
        }
    }

    pub fn license(&self, sku_id: &str) -> Option<&LicenseObj> {
        self.licenses
            .iter()
            .find(|l| l.sku_id.eq_ignore_ascii_case(sku_id))
    }

    pub fn free(&self, sku_id: &str) -> i64 {
        let total = self.license(sku_id).map_or(0, |l| l.total);
        total - self.assigned.get(sku_id).copied().unwrap_or(0)
    }

    pub fn group(&self, id: &str) -> Option<&GroupObj> {
        self.groups.iter().find(|g| g.id.eq_ignore_ascii_case(id))
    }

    pub fn vrp(&self, identity: &str) -> Option<&VrpObj> {
        self.vrps.iter().find(|v| v.identity == identity)
    }

    pub fn license_refs(&self, skus: &[String]) -> Vec<LicenseRef> {
        skus.iter()
            .map(|s| LicenseRef {
                sku_id: s.clone(),
                sku_part_number: self
                    .license(s)
                    .map_or_else(|| s.clone(), |l| l.sku_part_number.clone()),
            })
            .collect()
    }

    pub fn draas_of(&self, u: &User) -> Option<Draas> {
        let number = u.phone_number.as_ref()?;
        Some(Draas {
            id: u.draas_id,
            connection_id: u.connection_id,
            customer_licenses: u.customer_licenses.clone(),
            number_id: self.number_ids.get(number).copied(),
            phone_number: Some(number.clone()),
            status: u.status.clone(),
        })
    }

    pub fn single_user(&self, u: &User) -> SingleUser {
        SingleUser {
            ms_teams: SingleMsTeams {
                id: u.id.clone(),
                user_principal_name: u.upn.clone(),
                display_name: u.display_name.clone(),
                groups: u
                    .groups
                    .iter()
                    .map(|g| GroupRef {
                        display_name: self
                            .group(g)
                            .map(|x| x.display_name.clone())
                            .unwrap_or_default(),
                        id: g.clone(),
                    })
                    .collect(),
                location: u.location.clone(),
                licenses: self.license_refs(&u.licenses),
                voice_enabled: self.voice_enabled(&u.licenses).to_string(),
                vrp: u.vrp.clone(),
                roles: None,
            },
            draas: self.draas_of(u),
        }
    }

    pub fn resource_account(&self, a: &Account) -> ResourceAccount {
        ResourceAccount {
            ms_teams: RaMsTeams {
                id: a.id.clone(),
                user_principal_name: a.upn.clone(),
                display_name: a.display_name.clone(),
                location: a.location.clone(),
                phone_number: a.phone_number.clone(),
                account_type: a.account_type.clone(),
                licenses: if a.licenses.is_empty() {
                    None
                } else {
                    Some(self.license_refs(&a.licenses))
                },
                vrp: None,
            },
            draas: a.phone_number.as_ref().map(|n| Draas {
                id: a.draas_id,
                connection_id: a.connection_id,
                customer_licenses: a.customer_licenses.clone(),
                number_id: self.number_ids.get(n).copied(),
                phone_number: Some(n.clone()),
                status: a.status.clone(),
            }),
        }
    }

    /// A user as the API sees it now: absent, or not replicated yet, is a 404.
    pub fn visible_user(&self, id: &str, now_ms: i64) -> Result<&User, ApiError> {
        match self.users.get(id) {
            Some(u) if u.visible_at_ms <= now_ms => Ok(u),
            _ => Err(ApiError::unknown_user(id)),
        }
    }

    pub fn start_change(&self) -> Change {
        Change {
            next_draas_id: self.next_draas_id,
            next_connection_id: self.next_connection_id,
            next_admin_id: self.next_admin_id,
            ..Change::default()
        }
    }

    pub(super) fn unindex_user(&mut self, u: &User) {
        self.unindex(&u.upn, u.phone_number.as_ref(), &u.licenses);
    }

    pub(super) fn index_user(&mut self, u: &User) {
        let holder = Holder::User(u.id.clone());
        self.index(&u.upn, &u.id, u.phone_number.as_ref(), &u.licenses, holder);
    }

    pub(super) fn unindex_account(&mut self, a: &Account) {
        self.unindex(&a.upn, a.phone_number.as_ref(), &a.licenses);
    }

    pub(super) fn index_account(&mut self, a: &Account) {
        let holder = Holder::Account(a.id.clone());
        self.index(&a.upn, &a.id, a.phone_number.as_ref(), &a.licenses, holder);
    }

    /// Users and resource accounts share the UPN namespace, the number inventory and the
    /// license counts, so both are indexed the same way.
    fn index(
        &mut self,
        upn: &str,
        id: &str,
        number: Option<&String>,
        licenses: &[String],
        holder: Holder,
    ) {
        self.upn_index.insert(upn.to_lowercase(), id.to_string());
        if let Some(n) = number {
            self.number_holder.insert(n.clone(), holder);
        }
        for s in licenses {
            *self.assigned.entry(s.clone()).or_insert(0) += 1;
        }
    }

    fn unindex(&mut self, upn: &str, number: Option<&String>, licenses: &[String]) {
        self.upn_index.remove(&upn.to_lowercase());
        if let Some(n) = number {
            self.number_holder.remove(n);
        }
        for s in licenses {
            if let Some(c) = self.assigned.get_mut(s) {
                *c -= 1;
            }
        }
    }

    /// Applies a change that the store has already persisted.
    pub fn apply(&mut self, change: Change) {
        for id in change.delete_users {
            if let Some(old) = self.users.remove(&id) {
                self.unindex_user(&old);
            }
        }
        for u in change.upsert_users {
            if let Some(old) = self.users.remove(&u.id) {
                self.unindex_user(&old);
            }
            self.index_user(&u);
            self.users.insert(u.id.clone(), u);
        }
        for id in change.delete_accounts {
            if let Some(old) = self.accounts.remove(&id) {
                self.unindex_account(&old);
            }
        }
        for a in change.upsert_accounts {
            if let Some(old) = self.accounts.remove(&a.id) {
                self.unindex_account(&old);
            }
            self.index_account(&a);
            self.accounts.insert(a.id.clone(), a);
        }
        self.next_draas_id = change.next_draas_id;
        self.next_connection_id = change.next_connection_id;
        if let Some(a) = change.admin {
            self.admin = a;
        }
        self.next_admin_id = change.next_admin_id;
        if let Some(f) = change.group_filter {
            self.group_filter = f;
        }
        for j in change.upsert_bulk_jobs {
            self.bulk_jobs.insert(j.id, j);
        }
    }

    /// Checks that `number` may be linked to the holder `me` (E.164, in the inventory, free).
    pub fn check_number(&self, number: &str, me: &Holder) -> Result<(), ApiError> {
        if !is_e164(number) {
            return Err(ApiError::bad(
                Code::BadValue,
                format!("{number:?} is not an E.164 phone number"),
            ));
        }
        if !self.number_ids.contains_key(number) {
            return Err(ApiError::bad(
                Code::NumberNotInInventory,
                format!("Phone number {number} is not part of the subscription"),
            ));
        }
        match self.number_holder.get(number) {
            Some(h) if h != me => Err(ApiError::bad(
                Code::NumberAlreadyLinked,
                format!("Phone number {number} is already linked"),
            )),
            _ => Ok(()),
        }
    }

    /// Resolves and de-duplicates group ids; unknown ids are a 400.
    pub fn check_groups(&self, ids: &[String]) -> Result<Vec<String>, ApiError> {
        let mut out: Vec<String> = Vec::new();
        for id in ids {
            let Some(g) = self.group(id) else {
                return Err(ApiError::bad(
                    Code::UnknownGroup,
                    format!("Group {id} does not exist"),
                ));
            };
            if !out.contains(&g.id) {
                out.push(g.id.clone());
            }
        }
        Ok(out)
    }

    /// Resolves a new license set for a holder that has `old` now: unknown skuIds, a missing
    /// usage location, or no free unit for an added license are 400s.
    pub fn check_licenses(
        &self,
        ids: &[String],
        old: &[String],
        location: Option<&str>,
    ) -> Result<Vec<String>, ApiError> {
        let mut out: Vec<String> = Vec::new();
        for id in ids {
            let Some(l) = self.license(id) else {
                return Err(ApiError::bad(
                    Code::UnknownLicense,
                    format!("License {id} does not exist"),
                ));
            };
            if !out.contains(&l.sku_id) {
                out.push(l.sku_id.clone());
            }
        }
        if !out.is_empty() && location.is_none_or(str::is_empty) {
            return Err(ApiError::bad(
                Code::LocationRequired,
                "A usage location must be set before licenses can be assigned",
            ));
        }
        for s in &out {
            if !old.contains(s) && self.free(s) < 1 {
                let part = self.license(s).map_or("", |l| l.sku_part_number.as_str());
                return Err(ApiError::bad(
                    Code::NoFreeLicense,
                    format!("No free license left for {part} ({s})"),
                ));
            }
        }
        Ok(out)
    }

    pub fn check_vrp(&self, vrp: &str) -> Result<(), ApiError> {
        if self.vrp(vrp).is_none() {
            return Err(ApiError::bad(
                Code::UnknownVrp,
                format!("Voice Routing Policy {vrp} does not exist"),
            ));
        }
        Ok(())
    }

    /// Links (or unlinks) a number on a user being changed, giving a new connection id when
    /// the number changes. The user's licenses must already be the final ones.
    pub fn set_user_number(
        &self,
        change: &mut Change,
        u: &mut User,
        number: Option<&str>,
    ) -> Result<(), ApiError> {
        match number {
            None => {
                u.phone_number = None;
                u.connection_id = None;
            }
            Some(n) => {
                self.check_number(n, &Holder::User(u.id.clone()))?;
                if self.voice_enabled(&u.licenses) != "yes" {
                    return Err(ApiError::bad(
                        Code::NotVoiceEnabled,
                        format!(
                            "User {} has no Phone System license: a number cannot be assigned",
                            u.upn
                        ),
                    ));
                }
                if u.phone_number.as_deref() != Some(n) {
                    u.phone_number = Some(n.to_string());
                    u.connection_id = Some(change.next_connection_id);
                    change.next_connection_id += 1;
                }
            }
        }
        Ok(())
    }
}

pub fn check_country(s: &str) -> Result<(), ApiError> {
    if is_country(s) {
        Ok(())
    } else {
        Err(ApiError::bad(
            Code::BadValue,
            format!("location {s:?} is not an ISO 3166 alpha-2 country code"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::TenantDoc;
    use super::*;

    #[test]
    fn countries_are_strict_iso() {
        assert!(is_country("BE"));
        assert!(is_country("GB"));
        assert!(!is_country("UK"));
        assert!(!is_country("be"));
        assert!(!is_country("XX"));
        assert!(!is_country("BEL"));
    }

    fn doc(users: serde_json::Value) -> TenantDoc {
        serde_json::from_value(serde_json::json!({
            "draas_instance": "d", "tenant_uuid": "t", "subscription_id": 1, "msTenantId": "m",
            "domains": ["x.com"],
            "licenses": [{"skuDescription": "Phone", "skuId": "s1", "skuPartNumber": "MCOEV", "total": 1}],
            "vrps": [{"description": "G", "identity": "G"}],
            "numbers": ["+3225405201", "+3225405202"],
            "users": users
        }))
        .unwrap()
    }

    fn user(n: u32, number: Option<&str>, sku: Option<&str>) -> serde_json::Value {
        let mut u = serde_json::json!({"msTeams": {
            "id": format!("u{n}"), "userPrincipalName": format!("u{n}@x.com"), "displayName": "U",
            "location": "BE",
            "licenses": sku.map(|s| vec![serde_json::json!({"skuId": s, "skuPartNumber": "MCOEV"})]).unwrap_or_default()
        }});
        if let Some(num) = number {
            u["draas"] = serde_json::json!({"id": n, "phoneNumber": num, "status": "active"});
        }
        u
    }

    #[test]
    fn seeds_are_checked() {
        let ok = Tenant::from_doc(doc(serde_json::json!([user(
            1,
            Some("+3225405201"),
            Some("s1")
        )])));
        let t = ok.unwrap();
        assert_eq!(t.free("s1"), 0);
        assert_eq!(t.voice_enabled(&t.users["u1"].licenses), "yes");
        let twice = doc(serde_json::json!([
            user(1, Some("+3225405201"), None),
            user(2, Some("+3225405201"), None)
        ]));
        assert!(Tenant::from_doc(twice)
            .unwrap_err()
            .contains("linked twice"));
        let over = doc(serde_json::json!([
            user(1, None, Some("s1")),
            user(2, None, Some("s1"))
        ]));
        assert!(Tenant::from_doc(over)
            .unwrap_err()
            .contains("assigned more often"));
        let unknown = doc(serde_json::json!([user(1, None, Some("nope"))]));
        assert!(Tenant::from_doc(unknown)
            .unwrap_err()
            .contains("unknown license"));
        let outside = doc(serde_json::json!([user(1, Some("+3299999999"), None)]));
        assert!(Tenant::from_doc(outside)
            .unwrap_err()
            .contains("not in the inventory"));
    }

    #[test]
    fn e164_shape() {
        assert!(is_e164("+3225405201"));
        assert!(!is_e164("3225405201"));
        assert!(!is_e164("+0225405201"));
        assert!(!is_e164("+32 2540"));
        assert!(!is_e164("+123456"));
    }
}
