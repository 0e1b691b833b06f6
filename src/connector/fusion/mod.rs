//! The Netaxis Fusion DRaaS MS Teams backend: the main tenant teamsync reads and writes.
//!
//! Layout: `client` (HTTP, auth, error mapping), `wire` (the API's JSON as we read it),
//! `mapping` (wire ↔ model), `steps` (which request carries which planned change — its
//! module doc has the endpoint table). This file ties them to the [`Connector`] trait.
//!
//! Reads and how many requests they cost:
//! - `snapshot` pages through `GET users` with [`DEFAULT_PAGE_SIZE`] (the document gives
//!   no maximum and a default of 10; 999 is the maximum of the Microsoft Graph users list
//!   it fronts), sending the same `page_size` (and `search`) with every `next` token as
//!   the document requires; then `GET groups`, `licenses` and `vrps` concurrently; then
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
//! Reads retry on their own with the tenant's [`RetryPolicy`]; `send` makes one attempt.

mod client;
pub mod mapping;
pub mod steps;
pub mod wire;

use crate::config::TenantConfig;
use crate::connector::retry::RetryPolicy;
use crate::connector::{Capabilities, Connector, ConnectorError, Gate, Step, TenantStatus};
use crate::model::{Catalogs, Snapshot, TenantUser, Upn};
use crate::plan::model::UserPlan;
use async_trait::async_trait;
use client::{Client, Request};
use futures::{StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use client::{DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER};

/// Users per list page; see the module doc for why 999.
pub const DEFAULT_PAGE_SIZE: u32 = 999;
/// Detail GETs in flight during a snapshot; the gate, not this, sets the pace.
const DETAIL_CONCURRENCY: usize = 16;

/// Where the bearer token comes from. `Debug` never shows a secret.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenSource {
    Static(String),
    /// Name of an environment variable, read on first use.
    Env(String),
    /// A credential helper printing a token; run on first use and again once on a 401.
    Command(String),
    None,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Static(_) => f.write_str("Static(<redacted>)"),
            TokenSource::Env(v) => write!(f, "Env({v:?})"),
            // A command line may embed a secret (`echo …`): not shown either.
            TokenSource::Command(_) => f.write_str("Command(<redacted>)"),
            TokenSource::None => f.write_str("None"),
        }
    }
}

/// Everything needed to reach one Fusion tenant.
#[derive(Clone, Debug)]
pub struct FusionSettings {
    /// Scheme, host and optional path prefix; `/api/v01/draas/…` is added.
    pub base_url: String,
    pub draas_instance: String,
    pub tenant_uuid: String,
    pub subscription_id: i64,
    pub token: TokenSource,
    pub request_timeout: Duration,
    /// PEM bundle of a private CA, trusted in addition to the public roots.
    pub ca_file: Option<PathBuf>,
    pub allow_insecure_http: bool,
    pub page_size: u32,
    /// Retries of reads (snapshot, read_user, find_user, check).
    pub retry: RetryPolicy,
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
            token,
            request_timeout: Duration::from_secs(30),
            ca_file: None,
            allow_insecure_http: false,
            page_size: DEFAULT_PAGE_SIZE,
            retry: RetryPolicy::default(),
        }
    }
}

/// The Fusion connector; cheap to share behind an `Arc`.
pub struct FusionConnector {
    client: Client,
    page_size: u32,
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
    pub fn new(
        settings: FusionSettings,
        gate: Arc<Gate>,
    ) -> Result<FusionConnector, ConnectorError> {
        let client = Client::new(&settings, gate)?;
        Ok(FusionConnector {
            client,
            page_size: settings.page_size,
        })
    }

    /// From a `[tenants.X]` table: needs `base_url`, `draas_instance`, `tenant_uuid`,
    /// `subscription_id`; the token comes from `token_command` if set, else `token_env`.
    pub fn from_tenant_config(
        cfg: &TenantConfig,
        gate: Arc<Gate>,
    ) -> Result<FusionConnector, ConnectorError> {
        fn need<T: Clone>(v: &Option<T>, key: &str) -> Result<T, ConnectorError> {
            v.clone().ok_or_else(|| {
                ConnectorError::Config(format!("fusion tenant: `{key}` is required"))
            })
        }
        let token = match (&cfg.token_command, &cfg.token_env) {
            (Some(c), _) => TokenSource::Command(c.clone()),
            (None, Some(v)) => TokenSource::Env(v.clone()),
            (None, None) => TokenSource::None,
        };
        let mut s = FusionSettings::new(
            need(&cfg.base_url, "base_url")?,
            need(&cfg.draas_instance, "draas_instance")?,
            need(&cfg.tenant_uuid, "tenant_uuid")?,
            need(&cfg.subscription_id, "subscription_id")?,
            token,
        );
        s.request_timeout = Duration::from_secs(cfg.request_timeout_s.max(1));
        s.ca_file = cfg.ca_file.clone();
        s.allow_insecure_http = cfg.allow_insecure_http;
        s.retry.max_attempts = cfg.max_attempts.max(1);
        FusionConnector::new(s, gate)
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
        loop {
            let mut r = Request::get(&["users"]);
            r.query.push(("page_size", self.page_size.to_string()));
            if let Some(s) = search {
                r.query.push(("search", s.to_string()));
            }
            if let Some(n) = &next {
                r.query.push(("next", n.clone()));
            }
            let page: wire::UsersPage = self.client.read(&r, counter).await?;
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
        mapping::user_from_wire(&w, true)
            .map(Some)
            .map_err(|m| ConnectorError::Retryable {
                status: None,
                retry_after: None,
                message: format!("GET user/{id}: {m}"),
            })
    }
}

/// What Fusion can do (shown by `teamsync backends`).
pub const CAPABILITIES: Capabilities = Capabilities {
    read: true,
    write: true,
    create: true,
    delete: true,
    groups: true,
    licenses: true,
    vrp: true,
    customer_licenses: true,
    resource_accounts: true,
    number_ranges: false,
};

#[async_trait]
impl Connector for FusionConnector {
    fn backend(&self) -> &'static str {
        "fusion"
    }

    fn gate(&self) -> Option<&Gate> {
        Some(self.client.gate())
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
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
        let (groups, licenses, vrps) = tokio::try_join!(
            self.client.read::<wire::GroupsAnswer>(&rg, &counter),
            self.client.read::<wire::LicensesAnswer>(&rl, &counter),
            self.client.read::<wire::VrpsAnswer>(&rv, &counter),
        )?;
        let wanted: HashSet<&Upn> = detail_upns.iter().collect();
        let todo: Vec<(usize, String)> = users
            .iter()
            .enumerate()
            .filter(|(_, u)| all_details || wanted.contains(&u.upn))
            .map(|(i, u)| (i, u.id.clone()))
            .collect();
        let counter_ref = &counter;
        let details: Vec<(usize, Option<TenantUser>)> = futures::stream::iter(todo)
            .map(|(i, id)| async move {
                self.read_user_counted(&id, counter_ref)
                    .await
                    .map(|u| (i, u))
            })
            .buffer_unordered(DETAIL_CONCURRENCY)
            .try_collect()
            .await?;
        let mut gone = HashSet::new();
        for (i, d) in details {
            match d {
                Some(u) => users[i] = u,
                None => {
                    tracing::warn!(upn = %users[i].upn, "user disappeared between list and detail read; left out");
                    gone.insert(i);
                }
            }
        }
        let users = users
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !gone.contains(i))
            .map(|(_, u)| u)
            .collect();
        Ok(Snapshot {
            users,
            catalogs: Catalogs {
                groups: mapping::groups_from_wire(groups),
                licenses: mapping::licenses_from_wire(licenses),
                vrps: mapping::vrps_from_wire(vrps),
            },
            requests: counter.load(Ordering::Relaxed),
        })
    }

    async fn read_user(&self, id: &str) -> Result<Option<TenantUser>, ConnectorError> {
        self.read_user_counted(id, &AtomicU64::new(0)).await
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
        let Some(listed) = found else { return Ok(None) };
        // The list lacks groups and VRP; the single GET completes the picture.
        Ok(Some(
            self.read_user_counted(&listed.id, &counter)
                .await?
                .unwrap_or(listed),
        ))
    }

    fn steps(&self, user: &UserPlan) -> Vec<Step> {
        steps::group(user)
    }

    async fn send(
        &self,
        user: &UserPlan,
        user_id: &mut Option<String>,
        step: &Step,
    ) -> Result<(), ConnectorError> {
        let call = steps::build(user, user_id.as_deref(), step)?;
        let r = Request {
            method: call.method,
            path: call.path,
            query: Vec::new(),
            body: call.body,
        };
        let body = self.client.send(&r, &AtomicU64::new(0)).await?;
        if call.creates {
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
        s.allow_insecure_http = true;
        assert!(FusionConnector::new(s, Arc::new(Gate::unlimited())).is_ok());
    }

    #[test]
    fn from_tenant_config_names_the_missing_key() {
        let cfg: TenantConfig = toml::from_str(
            "backend = \"fusion\"\nbase_url = \"https://f.example.net\"\ndraas_instance = \"p\"\n",
        )
        .unwrap();
        let e = FusionConnector::from_tenant_config(&cfg, Arc::new(Gate::unlimited())).unwrap_err();
        assert!(e.to_string().contains("tenant_uuid"), "{e}");
        let cfg: TenantConfig = toml::from_str(
            "backend = \"fusion\"\nbase_url = \"https://f.example.net/prefix/\"\ndraas_instance = \"p\"\n\
             tenant_uuid = \"t\"\nsubscription_id = 12\ntoken_env = \"NOPE_UNSET_VAR\"\n",
        )
        .unwrap();
        let c = FusionConnector::from_tenant_config(&cfg, Arc::new(Gate::unlimited())).unwrap();
        let d = format!("{c:?}");
        assert!(
            d.contains(
                "https://f.example.net/prefix/api/v01/draas/p/tenants/t/subscriptions/12/msteams"
            ),
            "{d}"
        );
    }

    #[test]
    fn capabilities_are_fusions() {
        let s = FusionSettings::new("https://f.example.net", "prod", "u", 1, TokenSource::None);
        let c = FusionConnector::new(s, Arc::new(Gate::unlimited())).unwrap();
        let caps = c.capabilities();
        assert!(caps.read && caps.write && caps.create && caps.delete && caps.groups);
        assert!(caps.licenses && caps.vrp && caps.customer_licenses && caps.resource_accounts);
        assert!(!caps.number_ranges);
        assert_eq!(c.backend(), "fusion");
    }
}
