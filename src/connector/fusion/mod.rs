//! The Netaxis Fusion DRaaS MS Teams backend: the main tenant teamsync reads and writes.
//!
//! Layout: `wire` (the API's JSON as we read it), `mapping` (wire ↔ model), `steps` (which
//! request carries which planned change — its module doc has the endpoint table); HTTP,
//! auth and error mapping are the shared [`crate::connector::http`] client, rooted at the
//! tenant's `msteams` path. This file ties them to the [`Connector`] trait.
//!
//! Reads and how many requests they cost:
//! - `snapshot` pages through `GET users` with [`DEFAULT_PAGE_SIZE`] (the document gives
//!   no maximum and a default of 10; 999 is the maximum of the Microsoft Graph users list
//!   it fronts), sending the same `page_size` (and `search`) with every `next` token as
//!   the document requires. A server that refuses the first page with a 400 gets one more
//!   try with [`FALLBACK_PAGE_SIZE`], kept for the connector's life (a stricter cap than
//!   Graph's would otherwise fail every snapshot). Then `GET groups`, `licenses` and
//!   `vrps` concurrently; then
//!   `GET user/{id}` for each user needing details, concurrently (the gate paces them).
//! - Details always come from the single-user GET, never from the list's `group` filter:
//!   a user's details are groups *and* VRP, and the VRP is only in the single GET, so a
//!   user needing details costs that GET anyway and per-group lists could only add
//!   requests. (Were groups ever wanted without VRP, one paged list per group would win
//!   when there are fewer groups than detail users.)
//! - A detail GET answered 404 means the user vanished between the list and the GET: it
//!   is dropped from the snapshot with a warning.
//! - `find_user` searches by the first word of the display-name hint (the list's `search`
//!   is a case-insensitive displayName prefix), then falls back to the full list, since
//!   an existing account may carry another name; the match is by UPN, case-insensitively.
//!
//! Reads retry on their own with the tenant's
//! [`RetryPolicy`](crate::connector::retry::RetryPolicy); `send` makes one attempt of one
//! request, with two exceptions for resource accounts (below): the first write of a
//! connector that made no snapshot lists them once first, and the first write to an
//! account it just created looks up its object id.
//!
//! Resource accounts (call queues, auto attendants) live in their own collection:
//! - the snapshot also reads `GET resource_accounts` (one request, the document pages it
//!   not) and lists them among the users with `account_type` set; a 404 there is "none"
//!   (the document's 404 says "No MS Teams resource account found", and the tenant path was
//!   just proven by the user list); a UPN in both lists is kept as the resource account;
//! - they have no single GET: their details (VRP) exist only if the list reports `vrp`,
//!   which the document's object lacks, so usually `None`;
//! - a plan targets a resource account when its desired row has `accountType`, or its id
//!   or UPN was listed as one by this connector; `send` lists the resource accounts once
//!   itself when no snapshot did (so an account's update never goes to a users endpoint),
//!   and `steps` groups the same way for both collections except for a create;
//! - `POST resource_accounts` answers Fusion's internal integer id, not the object id the
//!   PUT and DELETE take, and creation is asynchronous. So a create sets the user id to
//!   `upn:<upn>` (a pending id) and the next write to that account first looks its object
//!   id up in the list (a second request); not listed yet is
//!   a 404, which the executor treats as "not replicated yet". `read_user("upn:…")` looks
//!   the account up the same way.

pub mod bulk;
pub mod config;
pub mod mapping;
pub mod sim;
pub mod steps;
pub mod wire;

use crate::connector::http::{self as client, Client, HttpSettings, Request};
use crate::connector::registry::Backend;
use crate::connector::{
    BackendBulk, Bulk, BulkOutcome, Connector, ConnectorError, Gate, Step, TenantStatus,
};
use crate::model::{Attr, AttrSet, Catalogs, Profile, Snapshot, TenantUser, Upn};
use crate::plan::model::{Operation, UserPlan};
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::connector::http::{TokenSource, DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER};
use steps::{Creates, Target};

pub use config::FusionConfig;

/// Prefix of the id `send` gives a resource account it just created (see the module doc).
pub const PENDING_RA_PREFIX: &str = "upn:";

/// Users per list page; see the module doc for why 999.
pub const DEFAULT_PAGE_SIZE: u32 = 999;
/// The page size fallen back to when a server refuses a larger one with a 400.
pub const FALLBACK_PAGE_SIZE: u32 = 100;
/// Detail GETs in flight during a snapshot; the gate, not this, sets the pace.
const DETAIL_CONCURRENCY: usize = 16;

/// Everything needed to reach one Fusion tenant.
#[derive(Clone, Debug)]
pub struct FusionSettings {
    /// Scheme, host and optional path prefix; `/api/v01/draas/…` is added.
    pub base_url: String,
    pub draas_instance: String,
    pub tenant_uuid: String,
    pub subscription_id: i64,
    pub page_size: u32,
    /// Users per `PUT users/bulk`; 0 sends every user's changes through the per-user
    /// endpoints (see [`bulk`]).
    pub bulk_size: usize,
    pub http: HttpSettings,
}

impl FusionSettings {
    /// Settings with defaults: 30 s timeout, [`DEFAULT_PAGE_SIZE`], default retry policy.
    pub fn new(
        base_url: impl Into<String>,
        draas_instance: impl Into<String>,
        tenant_uuid: impl Into<String>,
        subscription_id: i64,
        token: TokenSource,
    ) -> FusionSettings {
        FusionSettings {
            base_url: base_url.into(),
            draas_instance: draas_instance.into(),
            tenant_uuid: tenant_uuid.into(),
            subscription_id,
            page_size: DEFAULT_PAGE_SIZE,
            bulk_size: bulk::DEFAULT_BULK_SIZE,
            http: HttpSettings::new(token),
        }
    }
}

/// The Fusion connector; cheap to share behind an `Arc`.
pub struct FusionConnector {
    client: Client,
    page_size: std::sync::atomic::AtomicU32,
    ras: std::sync::Mutex<RaIndex>,
    /// Whether `ras` holds a listing yet.
    ras_listed: std::sync::atomic::AtomicBool,
    bulk_size: usize,
    /// What the last snapshot showed that bulk items need.
    names: std::sync::Mutex<bulk::Names>,
}

/// Ids and UPNs this connector has seen listed as resource accounts.
#[derive(Default)]
struct RaIndex {
    ids: HashSet<String>,
    upns: HashSet<Upn>,
}

impl std::fmt::Debug for FusionConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FusionConnector")
            .field("client", &self.client)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl FusionConnector {
    /// Refuses plain http to a non-loopback host (unless allowed), an unreadable CA file
    /// and empty path parameters. The token is not resolved yet (first request does it).
    pub fn new(s: FusionSettings, gate: Arc<Gate>) -> Result<FusionConnector, ConnectorError> {
        for (name, v) in [
            ("draas_instance", &s.draas_instance),
            ("tenant_uuid", &s.tenant_uuid),
        ] {
            if v.trim().is_empty() {
                return Err(ConnectorError::Config(format!("fusion: {name} is empty")));
            }
        }
        if s.bulk_size > bulk::MAX_BULK_SIZE {
            return Err(ConnectorError::Config(format!(
                "fusion: bulk_size {} is above the most one bulk request may carry ({})",
                s.bulk_size,
                bulk::MAX_BULK_SIZE
            )));
        }
        if s.page_size == 0 {
            return Err(ConnectorError::Config(
                "fusion: page_size must be at least 1".into(),
            ));
        }
        let sub = s.subscription_id.to_string();
        // The tenant's `msteams` path, below which every endpoint lies.
        let segments = [
            "api",
            "v01",
            "draas",
            s.draas_instance.as_str(),
            "tenants",
            s.tenant_uuid.as_str(),
            "subscriptions",
            sub.as_str(),
            "msteams",
        ];
        let client = Client::new(
            &s.base_url,
            &segments,
            s.http,
            client::parse_error_body,
            gate,
        )?;
        Ok(FusionConnector {
            client,
            page_size: s.page_size.into(),
            ras: Default::default(),
            ras_listed: Default::default(),
            bulk_size: s.bulk_size,
            names: Default::default(),
        })
    }

    /// Every page of `GET users` (with `search` when given). A repeated `next` token
    /// would loop forever: it is an error.
    async fn list_users(
        &self,
        search: Option<&str>,
        counter: &AtomicU64,
    ) -> Result<Vec<TenantUser>, ConnectorError> {
        let mut out = Vec::new();
        let mut seen_ids = HashSet::new();
        let mut seen_tokens = HashSet::new();
        let mut next: Option<String> = None;
        // Fixed for the whole listing: `next` tokens are bound to it.
        let mut page_size = self.page_size.load(Ordering::Relaxed);
        loop {
            let mut r = Request::get(&["users"]);
            r.query.push(("page_size", page_size.to_string()));
            if let Some(s) = search {
                r.query.push(("search", s.to_string()));
            }
            if let Some(n) = &next {
                r.query.push(("next", n.clone()));
            }
            let page: wire::UsersPage = match self.client.read(&r, counter).await {
                Ok(p) => p,
                Err(ConnectorError::Rejected {
                    status: 400,
                    reason,
                    ..
                }) if next.is_none() && page_size > FALLBACK_PAGE_SIZE => {
                    tracing::warn!(
                        "GET users refused page_size={page_size} ({reason}); using {FALLBACK_PAGE_SIZE}"
                    );
                    page_size = FALLBACK_PAGE_SIZE;
                    self.page_size.store(page_size, Ordering::Relaxed);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for u in mapping::users_from_page(&page) {
                if seen_ids.insert(u.id.clone()) {
                    out.push(u);
                } else {
                    tracing::warn!(upn = %u.upn, "user listed twice; second entry ignored");
                }
            }
            match page.next.filter(|n| !n.is_empty()) {
                None => return Ok(out),
                Some(n) => {
                    if !seen_tokens.insert(n.clone()) {
                        return Err(ConnectorError::Retryable {
                            status: None,
                            retry_after: None,
                            message: "GET users: the server repeated a continuation token".into(),
                        });
                    }
                    next = Some(n);
                }
            }
        }
    }

    fn names(&self) -> std::sync::MutexGuard<'_, bulk::Names> {
        self.names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ra_index(&self) -> std::sync::MutexGuard<'_, RaIndex> {
        self.ras
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Which collection `user` is written to (see the module doc).
    fn target(&self, user: &UserPlan, user_id: Option<&str>) -> Target {
        if user.desired.account_type.is_some()
            || user_id.is_some_and(|id| id.starts_with(PENDING_RA_PREFIX))
        {
            return Target::ResourceAccount;
        }
        let idx = self.ra_index();
        if user_id.is_some_and(|id| idx.ids.contains(id)) || idx.upns.contains(&user.upn) {
            Target::ResourceAccount
        } else {
            Target::User
        }
    }

    /// `GET resource_accounts`; 404 is an empty list (see the module doc).
    async fn list_resource_accounts(
        &self,
        counter: &AtomicU64,
    ) -> Result<Vec<TenantUser>, ConnectorError> {
        let r = Request::get(&["resource_accounts"]);
        let ras = match self
            .client
            .read::<wire::ResourceAccountsAnswer>(&r, counter)
            .await
        {
            Ok(a) => mapping::resource_accounts_from_answer(&a),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut idx = self.ra_index();
        for ra in &ras {
            idx.ids.insert(ra.id.clone());
            idx.upns.insert(ra.upn.clone());
        }
        self.ras_listed.store(true, Ordering::Release);
        Ok(ras)
    }

    /// The resource account with this id, or with this UPN for a pending `upn:` id.
    async fn find_resource_account(
        &self,
        id: &str,
        counter: &AtomicU64,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        let ras = self.list_resource_accounts(counter).await?;
        Ok(match id.strip_prefix(PENDING_RA_PREFIX) {
            Some(upn) => match Upn::parse(upn) {
                Ok(upn) => ras.into_iter().find(|r| r.upn == upn),
                Err(_) => None,
            },
            None => ras.into_iter().find(|r| r.id == id),
        })
    }

    async fn read_user_counted(
        &self,
        id: &str,
        counter: &AtomicU64,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        let r = Request::get(&["user", id]);
        let w: wire::WireUser = match self.client.read(&r, counter).await {
            Ok(w) => w,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        // A UPN our model refuses (a guest's `#EXT#`, say) will not parse on a retry either.
        mapping::user_from_wire(&w, true)
            .map(Some)
            .map_err(|m| ConnectorError::Unsupported(format!("GET user/{id}: {m}")))
    }
}

/// What Fusion can do (shown by `teamsync backends`), and the Fusion facts the planner
/// follows: groups and VRP are only in the single-user GET (the list lacks them), customer
/// licenses live in the `draas` object that only a user with a number has, a resource
/// account's VRP can be set but is shown nowhere (its list lacks it, it has no single GET),
/// and the subscription's numbers are not listed (the API has no call for them; a number
/// outside them is refused when sent, error 2020).
pub const PROFILE: Profile = Profile {
    write: true,
    create: true,
    delete: true,
    resource_accounts: true,
    attrs: AttrSet::of(&[
        Attr::DisplayName,
        Attr::Number,
        Attr::Country,
        Attr::Vrp,
        Attr::Groups,
        Attr::Licenses,
        Attr::CustomerLicenses,
    ]),
    create_needs: AttrSet::of(&[Attr::DisplayName, Attr::Country]),
    detail_reads: AttrSet::of(&[Attr::Groups, Attr::Vrp]),
    need_number: AttrSet::of(&[Attr::CustomerLicenses]),
    unshown_on_accounts: AttrSet::of(&[Attr::Vrp]),
    unlisted_inventory: true,
    ..Profile::read_only("fusion")
};

/// Fusion in the registry of backends.
pub const BACKEND: Backend = Backend {
    name: "fusion",
    note: "Netaxis Fusion MS Teams API (the embedded `demo` tenant simulates it)",
    profile: PROFILE,
    keys: FusionConfig::KEYS,
    sample: teamsync_sim::fusion::SAMPLE,
    sim_token: true,
    open_sim: sim::open,
};

#[async_trait]
impl Connector for FusionConnector {
    fn gate(&self) -> Option<&Gate> {
        Some(self.client.gate())
    }

    fn profile(&self) -> Profile {
        PROFILE
    }

    fn bulk(&self) -> Option<&dyn Bulk> {
        (self.bulk_size > 0).then_some(self as &dyn Bulk)
    }

    async fn check(&self) -> Result<TenantStatus, ConnectorError> {
        let counter = AtomicU64::new(0);
        let details: serde_json::Value = self
            .client
            .read(&Request::get(&["status"]), &counter)
            .await?;
        let ok = serde_json::from_value::<wire::StatusAnswer>(details.clone())
            .is_ok_and(|s| s.status == "onboarded");
        Ok(TenantStatus { ok, details })
    }

    async fn snapshot(
        &self,
        detail_upns: &[Upn],
        all_details: bool,
    ) -> Result<Snapshot, ConnectorError> {
        let counter = AtomicU64::new(0);
        let mut users = self.list_users(None, &counter).await?;
        let (rg, rl, rv) = (
            Request::get(&["groups"]),
            Request::get(&["licenses"]),
            Request::get(&["vrps"]),
        );
        let (groups, licenses, vrps, ras) = tokio::try_join!(
            self.client.read::<wire::GroupsAnswer>(&rg, &counter),
            self.client.read::<wire::LicensesAnswer>(&rl, &counter),
            self.client.read::<wire::VrpsAnswer>(&rv, &counter),
            self.list_resource_accounts(&counter),
        )?;
        let ra_upns: HashSet<&Upn> = ras.iter().map(|r| &r.upn).collect();
        users.retain(|u| !ra_upns.contains(&u.upn));
        let wanted: HashSet<&Upn> = detail_upns.iter().collect();
        let counter_ref = &counter;
        let mut users = crate::connector::read_details(
            users,
            |u| all_details || wanted.contains(&u.upn),
            DETAIL_CONCURRENCY,
            |id| async move { self.read_user_counted(&id, counter_ref).await },
            |_listed, detail| detail,
        )
        .await?;
        let catalogs = Catalogs {
            groups: mapping::groups_from_wire(groups),
            licenses: mapping::licenses_from_wire(licenses),
            vrps: mapping::vrps_from_wire(vrps),
        };
        {
            let mut n = self.names();
            n.catalogs(&catalogs);
            n.display_names = users
                .iter()
                .map(|u| (u.upn.clone(), u.display_name.clone()))
                .collect();
            n.listed = true;
        }
        users.extend(ras);
        Ok(Snapshot {
            users,
            catalogs,
            requests: counter.load(Ordering::Relaxed),
            number_ranges: Vec::new(),
            held_elsewhere: Vec::new(),
        })
    }

    /// `GET user/{id}` answers the whole user, the list's fields included, and the
    /// snapshot keeps that answer in place of the listed user.
    fn details_per_user(&self) -> bool {
        true
    }

    async fn read_user(&self, id: &str) -> Result<Option<TenantUser>, ConnectorError> {
        let counter = AtomicU64::new(0);
        let known_ra = id.starts_with(PENDING_RA_PREFIX) || self.ra_index().ids.contains(id);
        if known_ra {
            return self.find_resource_account(id, &counter).await;
        }
        self.read_user_counted(id, &counter).await
    }

    async fn find_user(
        &self,
        upn: &Upn,
        display_name_hint: Option<&str>,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        let counter = AtomicU64::new(0);
        let prefix = display_name_hint.and_then(|h| h.split_whitespace().next());
        let mut found = None;
        if let Some(p) = prefix {
            found = self
                .list_users(Some(p), &counter)
                .await?
                .into_iter()
                .find(|u| &u.upn == upn);
        }
        if found.is_none() {
            found = self
                .list_users(None, &counter)
                .await?
                .into_iter()
                .find(|u| &u.upn == upn);
        }
        let Some(listed) = found else {
            // Not a user: maybe a resource account (their create is refused the same way).
            let pending = format!("{PENDING_RA_PREFIX}{upn}");
            return self.find_resource_account(&pending, &counter).await;
        };
        // The list lacks groups and VRP; the single GET completes the picture.
        Ok(Some(
            self.read_user_counted(&listed.id, &counter)
                .await?
                .unwrap_or(listed),
        ))
    }

    fn steps(&self, user: &UserPlan) -> Vec<Step> {
        steps::group(user, self.target(user, user.user_id.as_deref()))
    }

    async fn send(
        &self,
        user: &UserPlan,
        user_id: &mut Option<String>,
        step: &Step,
    ) -> Result<(), ConnectorError> {
        if !self.ras_listed.load(Ordering::Acquire) {
            self.list_resource_accounts(&AtomicU64::new(0)).await?;
        }
        let target = self.target(user, user_id.as_deref());
        let is_create = step.ops.iter().any(|&i| {
            matches!(
                user.ops.get(i).map(|p| &p.op),
                Some(Operation::Create { .. })
            )
        });
        if let Some(pending) = user_id
            .as_deref()
            .filter(|id| id.starts_with(PENDING_RA_PREFIX))
        {
            if !is_create {
                match self
                    .find_resource_account(pending, &AtomicU64::new(0))
                    .await?
                {
                    Some(ra) => *user_id = Some(ra.id),
                    None => {
                        return Err(ConnectorError::Rejected {
                            status: 404,
                            code: None,
                            reason: format!(
                                "resource account {} is not listed yet (created asynchronously)",
                                user.upn
                            ),
                        })
                    }
                }
            }
        }
        let call = steps::build(user, user_id.as_deref(), step, target)?;
        let r = Request {
            method: call.method,
            path: call.path,
            query: Vec::new(),
            body: call.body,
        };
        let body = self.client.send(&r, &AtomicU64::new(0)).await?;
        if call.creates == Creates::ResourceAccount {
            *user_id = Some(format!("{PENDING_RA_PREFIX}{}", user.upn));
            self.ra_index().upns.insert(user.upn.clone());
        }
        if call.creates == Creates::User {
            // Created but unreadable: a retry meets "already exists", which the executor
            // resolves with find_user.
            let a: wire::CreateUserAnswer = client::parse_json(&r, &body)?;
            if a.ms_teams_id.trim().is_empty() {
                return Err(ConnectorError::Retryable {
                    status: None,
                    retry_after: None,
                    message: "POST users: the answer carries an empty msTeamsId".into(),
                });
            }
            *user_id = Some(a.ms_teams_id);
        }
        Ok(())
    }
}

#[async_trait]
impl Bulk for FusionConnector {
    fn batch_size(&self) -> usize {
        self.bulk_size.max(1)
    }

    fn max_batch_size(&self) -> usize {
        bulk::MAX_BULK_SIZE
    }

    fn item(
        &self,
        user: &UserPlan,
        user_id: Option<&str>,
        steps: &[&Step],
    ) -> Option<serde_json::Value> {
        // Resource accounts are not `ms_users`; the bulk job kind is.
        if self.target(user, user_id) != Target::User {
            return None;
        }
        let n = self.names();
        if !n.listed {
            return None;
        }
        bulk::item(user, steps, &n)
    }

    async fn send_bulk(
        &self,
        title: &str,
        items: &[serde_json::Value],
    ) -> Result<Vec<BulkOutcome>, ConnectorError> {
        self.put_bulk(title, items).await
    }

    async fn recover(
        &self,
        title: &str,
        items: &[serde_json::Value],
    ) -> Result<Option<Vec<BulkOutcome>>, ConnectorError> {
        self.recover_bulk(title, items).await
    }

    async fn jobs(&self, prefix: &str) -> Result<Vec<BackendBulk>, ConnectorError> {
        self.our_bulk_jobs(prefix).await
    }

    async fn read_back(&self, detail: &[Upn]) -> Result<Vec<TenantUser>, ConnectorError> {
        self.read_back_users(detail).await
    }

    fn refused(&self, e: &ConnectorError) -> bool {
        bulk::refused(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let s = FusionSettings::new(
            "https://f.example.net",
            "prod",
            "u",
            1,
            TokenSource::Static("s3cr3t".into()),
        );
        let c = FusionConnector::new(s.clone(), Arc::new(Gate::unlimited())).unwrap();
        for text in [
            format!("{s:?}"),
            format!("{c:?}"),
            format!("{:?}", TokenSource::Command("echo s3cr3t".into())),
        ] {
            assert!(!text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn plain_http_to_a_remote_host_is_refused() {
        let mut s = FusionSettings::new(
            "http://fusion.example.net",
            "prod",
            "u",
            1,
            TokenSource::None,
        );
        let e = FusionConnector::new(s.clone(), Arc::new(Gate::unlimited())).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("plain http")),
            "{e}"
        );
        s.http.allow_insecure_http = true;
        assert!(FusionConnector::new(s, Arc::new(Gate::unlimited())).is_ok());
    }

    #[test]
    fn a_tenant_table_connects_below_its_draas_path() {
        let cfg: FusionConfig = toml::from_str(
            "base_url = \"https://f.example.net/prefix/\"\ndraas_instance = \"p\"\n\
             tenant_uuid = \"t\"\nsubscription_id = 12\ntoken_env = \"NOPE_UNSET_VAR\"\n",
        )
        .unwrap();
        let c = FusionConnector::new(cfg.settings(), Arc::new(Gate::unlimited())).unwrap();
        let d = format!("{c:?}");
        assert!(
            d.contains(
                "https://f.example.net/prefix/api/v01/draas/p/tenants/t/subscriptions/12/msteams"
            ),
            "{d}"
        );
        assert_eq!(
            cfg.settings().http.token,
            TokenSource::Env("NOPE_UNSET_VAR".into())
        );
    }

    #[test]
    fn ca_file_is_loaded_or_refused_clearly() {
        let mut s = FusionSettings::new("https://f.example.net", "prod", "u", 1, TokenSource::None);
        s.http.ca_file = Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/ca/isrg-root-x1.pem"),
        );
        assert!(FusionConnector::new(s.clone(), Arc::new(Gate::unlimited())).is_ok());
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        s.http.ca_file = Some(empty);
        let e = FusionConnector::new(s.clone(), Arc::new(Gate::unlimited())).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("empty.pem")),
            "{e}"
        );
        s.http.ca_file = Some(dir.path().join("missing.pem"));
        let e = FusionConnector::new(s, Arc::new(Gate::unlimited())).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("missing.pem")),
            "{e}"
        );
    }

    #[test]
    fn capabilities_are_fusions() {
        let s = FusionSettings::new("https://f.example.net", "prod", "u", 1, TokenSource::None);
        let c = FusionConnector::new(s, Arc::new(Gate::unlimited())).unwrap();
        let caps = c.profile();
        assert!(
            caps.read && caps.write && caps.create && caps.delete && caps.carries(Attr::Groups)
        );
        assert!(
            caps.carries(Attr::Licenses)
                && caps.carries(Attr::Vrp)
                && caps.carries(Attr::CustomerLicenses)
                && caps.resource_accounts
        );
        assert!(!caps.number_ranges);
        assert_eq!(c.backend(), "fusion");
    }
}
