//! AudioCodes User Management Pack 365 (its "REST API" document) as a
//! read-and-write backend: a Teams / Skype for Business user manager that fronts
//! PowerShell, so what it can write is exactly the attribute list of "Update an Individual
//! User". Layout: `config` (the tenant table), `wire` (the JSON as read), `mapping` (wire →
//! model), `steps` (which request carries which change), `sim` (the simulator as a
//! tenant); HTTP is the shared [`crate::connector::http`] client (gate, auth, status
//! mapping, read retries), rooted at `{base_url}/sysadmin/api`.
//!
//! What it can and cannot do (see [`PROFILE`]): read users, write usage location, number
//! (LineURI + EnterpriseVoiceEnabled) and voice policy, list number ranges. The document has no endpoint to create or delete users, nor groups,
//! licenses or customer licenses: the planner turns rows that need them into plan errors.
//!
//! Our readings where the document is vague (kept here, in one place):
//! - **Base URL**: `base_url` is the server (`http://ump.example.net`); `/sysadmin/api` is
//!   added unless the URL already ends with it. UMP documents no authentication and plain
//!   http, so a remote server needs `allow_insecure_http = true`; `token_env` /
//!   `token_command` send a bearer token for deployments behind an authenticating proxy.
//! - **Paging**: the list is `POST proxy/endpoint/list` answering `{"Total", "Data"}`; the
//!   document shows no request body. We read it as the Kendo-grid body that answer shape
//!   comes from: `{"skip": N, "take": M}`, pages of [`DEFAULT_PAGE_SIZE`] until `Total`.
//! - **UPN**: the list carries no `UserPrincipalName`; a user's UPN is its `SipAddress`
//!   without `sip:` (Teams' default). Its id (the path key) is the SIP address with `sip:`.
//! - **Display name**: `WebName` in the list, `DisplayName` in the detail (the document's
//!   examples differ for one user; we treat them as one value). It is read, never written:
//!   the update call's table of "supported attributes to be updated" does not list
//!   `DisplayName`. Its "Example 1" says it "updates the display name", but the example's
//!   body is not in the document, and the table lists `FirstName` and `LastName`, from which
//!   a directory may derive the display name itself. Sending a key the table does not list
//!   would be a guess a real server may refuse or ignore, so a sheet giving a user another
//!   display name is a plan error (the profile marks it as not changeable), not a silent
//!   send; the same value plans nothing, so an export plans to zero changes.
//! - **Country**: `UsageLocation` is in the list; the document's detail example (an
//!   on-premises user) lacks it, so the detail's is read when present (our simulator
//!   shows it) and the list's is used otherwise.
//! - **Number release**: `{"LineURI": null, "EnterpriseVoiceEnabled": false}`; the
//!   document does not say how to clear a LineURI.
//! - **VRP**: the sheet's `vrp` is UMP's `VoicePolicy` (the only voice policy in the
//!   attribute table). UMP has no endpoint listing policies, so the names a sheet may use
//!   come from the tenant's `voice_policies` config key.
//! - **Number ranges**: `GET numberrange` gives each range's bounds (`tel:+…`) and a count;
//!   the free numbers are the bounds' span minus every LineURI the list shows (at most
//!   [`mapping::MAX_FREE_PER_RANGE`] per range). A range without bounds lists none.
//! - **Status**: `check` reads `license` and `sysinfo` (and the SIP domains); it is not ok
//!   when the license's `Expired` date has passed.

pub mod config;
pub mod mapping;
pub mod sim;
pub mod steps;
pub mod wire;

use crate::connector::http::{parse_error_body, Client, HttpSettings, Request};
use crate::connector::registry::Backend;
use crate::connector::{Connector, ConnectorError, Gate, Step, TenantStatus};
use crate::model::{Attr, AttrSet, Catalogs, Profile, Snapshot, TenantUser, Upn, VrpInfo, E164};
use crate::plan::model::UserPlan;
use async_trait::async_trait;
use reqwest::Method;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Users per list page.
pub const DEFAULT_PAGE_SIZE: u32 = 500;
/// Detail GETs in flight during a snapshot; the gate sets the pace.
const DETAIL_CONCURRENCY: usize = 8;

/// What UMP 365 can do (shown by `teamsync backends`). The voice policy is only in the
/// detail answer, so rows touching it get a detail read. The display name is read and
/// compared but never written (see the module doc): another value is a plan error.
pub const PROFILE: Profile = Profile {
    write: true,
    number_ranges: true,
    attrs: AttrSet::of(&[Attr::DisplayName, Attr::Number, Attr::Country, Attr::Vrp]),
    create_only: AttrSet::of(&[Attr::DisplayName]),
    detail_reads: AttrSet::of(&[Attr::Vrp]),
    ..Profile::read_only("ump")
};

/// UMP 365 in the registry of backends.
pub const BACKEND: Backend = Backend {
    name: "ump",
    note: "AudioCodes UMP 365 (no create or delete; `tenant numbers` lists its ranges)",
    profile: PROFILE,
    keys: UmpConfig::KEYS,
    sample: teamsync_sim::ump::SAMPLE,
    sim_token: false,
    open_sim: sim::open,
};

pub use config::UmpConfig;

/// Everything needed to reach one UMP server.
#[derive(Clone, Debug)]
pub struct UmpSettings {
    pub base_url: String,
    pub page_size: u32,
    /// The voice policies sheets may name (UMP cannot list them).
    pub voice_policies: Vec<String>,
    /// No token by default: UMP documents no authentication (see the module doc).
    pub http: HttpSettings,
}

impl UmpSettings {
    pub fn new(base_url: impl Into<String>) -> UmpSettings {
        UmpSettings {
            base_url: base_url.into(),
            page_size: DEFAULT_PAGE_SIZE,
            voice_policies: vec![],
            http: HttpSettings::default(),
        }
    }
}

pub struct UmpConnector {
    client: Client,
    page_size: u32,
    voice_policies: Vec<String>,
}

impl std::fmt::Debug for UmpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmpConnector")
            .field("client", &self.client)
            .field("page_size", &self.page_size)
            .finish()
    }
}

fn malformed(what: &str, m: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Retryable {
        status: None,
        retry_after: None,
        message: format!("{what}: {m}"),
    }
}

impl UmpConnector {
    /// Refuses plain http to a remote host unless allowed, and an unreadable CA file.
    pub fn new(s: UmpSettings, gate: Arc<Gate>) -> Result<UmpConnector, ConnectorError> {
        let cfg = |m: String| ConnectorError::Config(m);
        if s.http.allow_insecure_http && s.base_url.trim().starts_with("http://") {
            tracing::warn!("UMP tenant over plain http: requests and answers travel unencrypted");
        }
        if s.page_size == 0 {
            return Err(cfg("ump: page_size must be at least 1".into()));
        }
        let base = s.base_url.trim();
        // An unparsable URL gets no segments here and is refused by `Client::new`.
        let has_api = reqwest::Url::parse(base).is_ok_and(|u| {
            u.path()
                .trim_end_matches('/')
                .to_ascii_lowercase()
                .ends_with("/sysadmin/api")
        });
        let segments: &[&str] = if has_api { &[] } else { &["sysadmin", "api"] };
        // UMP answers RFC 7807 problem details; the generic reading takes `detail`.
        let client = Client::new(base, segments, s.http, parse_error_body, gate)?;
        Ok(UmpConnector {
            client,
            page_size: s.page_size,
            voice_policies: s.voice_policies,
        })
    }

    /// Every page of the user list.
    async fn list_users(&self, counter: &AtomicU64) -> Result<Vec<TenantUser>, ConnectorError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut skip: u64 = 0;
        loop {
            let r = Request {
                method: Method::POST,
                path: vec!["proxy".into(), "endpoint".into(), "list".into()],
                query: vec![],
                body: Some(serde_json::json!({"skip": skip, "take": self.page_size})),
            };
            let page: wire::ListPage = self.client.read(&r, counter).await?;
            let data = page.data.unwrap_or_default();
            let got = data.len() as u64;
            for u in &data {
                match mapping::user_from_list(u) {
                    Ok(u) if seen.insert(u.upn.clone()) => out.push(u),
                    Ok(u) => {
                        tracing::warn!(upn = %u.upn, "user listed twice; second entry ignored");
                    }
                    Err(m) => tracing::warn!("UMP list: user skipped: {m}"),
                }
            }
            skip += got;
            let done = match page.total {
                Some(t) => skip >= t,
                None => got < u64::from(self.page_size),
            };
            if done || got == 0 {
                return Ok(out);
            }
        }
    }

    async fn read_detail(
        &self,
        id: &str,
        counter: &AtomicU64,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        let sip = mapping::sip_of(id);
        let r = Request::get(&["proxy", "endpoint", &sip]);
        let d: wire::DetailUser = match self.client.read(&r, counter).await {
            Ok(d) => d,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        mapping::user_from_detail(&d)
            .map(Some)
            .map_err(|m| malformed(&format!("GET proxy/endpoint/{sip}"), m))
    }

    async fn number_ranges(
        &self,
        users: &[TenantUser],
        counter: &AtomicU64,
    ) -> Result<Vec<crate::model::NumberRange>, ConnectorError> {
        let rows: wire::NumberRanges = self
            .client
            .read(&Request::get(&["numberrange"]), counter)
            .await?;
        let held: HashSet<E164> = users.iter().filter_map(|u| u.number.clone()).collect();
        Ok(rows
            .rows
            .iter()
            .map(|r| mapping::range_free(r, &held))
            .collect())
    }
}

#[async_trait]
impl Connector for UmpConnector {
    /// Every request passes the tenant's gate and is timed by the HTTP client once admitted,
    /// so pacing and Retry-After pauses never count as a request timeout.
    fn gate(&self) -> Option<&crate::connector::Gate> {
        Some(self.client.gate())
    }

    fn profile(&self) -> Profile {
        PROFILE
    }

    async fn check(&self) -> Result<TenantStatus, ConnectorError> {
        let c = AtomicU64::new(0);
        let (rl, rs, rd) = (
            Request::get(&["license"]),
            Request::get(&["sysinfo"]),
            Request::get(&["signindomain"]),
        );
        let (license, sysinfo, domains) = tokio::try_join!(
            self.client.read::<serde_json::Value>(&rl, &c),
            self.client.read::<serde_json::Value>(&rs, &c),
            self.client.read::<Vec<wire::SignInDomain>>(&rd, &c),
        )?;
        let expires = serde_json::from_value::<wire::License>(license.clone())
            .ok()
            .and_then(|l| l.expired)
            .and_then(|d| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok());
        let expired = expires.is_some_and(|d| d < chrono::Utc::now().date_naive());
        let details = serde_json::json!({
            "license": license,
            "license_expired": expired,
            "sysinfo": sysinfo,
            "sip_domains": domains.iter().map(|d| d.value.clone()).collect::<Vec<_>>(),
        });
        Ok(TenantStatus {
            ok: !expired,
            details,
        })
    }

    async fn snapshot(
        &self,
        detail_upns: &[Upn],
        all_details: bool,
    ) -> Result<Snapshot, ConnectorError> {
        let counter = AtomicU64::new(0);
        let users = self.list_users(&counter).await?;
        let ranges = self.number_ranges(&users, &counter).await?;
        let wanted: HashSet<&Upn> = detail_upns.iter().collect();
        let counter_ref = &counter;
        let users = crate::connector::read_details(
            users,
            |u| all_details || wanted.contains(&u.upn),
            DETAIL_CONCURRENCY,
            |id| async move { self.read_detail(&id, counter_ref).await },
            // The list's display name is the one compared (WebName); the detail adds the
            // voice policy and flag, and the list's country stands in when it has none.
            |listed, mut d| {
                d.display_name = listed.display_name;
                d.country = d.country.or(listed.country);
                d
            },
        )
        .await?;
        Ok(Snapshot {
            users,
            catalogs: Catalogs {
                groups: vec![],
                licenses: vec![],
                vrps: self
                    .voice_policies
                    .iter()
                    .map(|p| VrpInfo {
                        identity: p.clone(),
                        description: None,
                    })
                    .collect(),
            },
            requests: counter.load(Ordering::Relaxed),
            number_ranges: ranges,
            held_elsewhere: Vec::new(),
        })
    }

    async fn read_user(&self, id: &str) -> Result<Option<TenantUser>, ConnectorError> {
        self.read_detail(id, &AtomicU64::new(0)).await
    }

    async fn find_user(
        &self,
        upn: &Upn,
        _display_name_hint: Option<&str>,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        // The SIP address is the UPN: one detail read answers it.
        self.read_detail(upn.as_str(), &AtomicU64::new(0)).await
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
        let body = steps::script_body(user, step)?;
        let id = user_id
            .clone()
            .unwrap_or_else(|| mapping::sip_of(user.upn.as_str()));
        let r = Request {
            method: Method::PUT,
            path: vec![
                "proxy".into(),
                "endpoint".into(),
                mapping::sip_of(&id),
                "script".into(),
            ],
            query: vec![],
            body: Some(body),
        };
        self.client.send(&r, &AtomicU64::new(0)).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::http::TokenSource;

    #[test]
    fn plain_http_to_a_remote_ump_needs_allow_insecure_http() {
        let mut s = UmpSettings::new("http://ump.example.net");
        let e = UmpConnector::new(s.clone(), Arc::new(Gate::unlimited())).unwrap_err();
        assert!(
            matches!(&e, ConnectorError::Config(m) if m.contains("plain http")),
            "{e}"
        );
        s.http.allow_insecure_http = true;
        let c = UmpConnector::new(s, Arc::new(Gate::unlimited())).unwrap();
        assert!(format!("{c:?}").contains("http://ump.example.net/sysadmin/api"));
        // A URL that already names the API is not extended twice.
        let mut s = UmpSettings::new("http://ump.example.net/sysadmin/api/");
        s.http.allow_insecure_http = true;
        let c = UmpConnector::new(s, Arc::new(Gate::unlimited())).unwrap();
        let d = format!("{c:?}");
        assert!(
            d.contains("ump.example.net/sysadmin/api\"") && !d.contains("api/sysadmin"),
            "{d}"
        );
    }

    #[test]
    fn an_unparsable_base_url_is_a_config_error_naming_it() {
        for url in ["not a url", "ftp://ump.example.net"] {
            let e =
                UmpConnector::new(UmpSettings::new(url), Arc::new(Gate::unlimited())).unwrap_err();
            assert!(
                matches!(&e, ConnectorError::Config(m) if m.contains(url)),
                "{e}"
            );
        }
    }

    #[test]
    fn tenant_config_keys_and_capabilities() {
        let cfg: UmpConfig = toml::from_str(
            "base_url = \"http://10.0.0.5\"\nallow_insecure_http = true\n\
             token_env = \"UMP_PROXY_TOKEN\"\nvoice_policies = [\"International\"]\n",
        )
        .unwrap();
        let s = cfg.settings();
        assert_eq!(s.http.token, TokenSource::Env("UMP_PROXY_TOKEN".into()));
        assert_eq!(s.voice_policies, ["International"]);
        let e = toml::from_str::<UmpConfig>("voice_policies = []\n").unwrap_err();
        assert!(e.to_string().contains("base_url"), "{e}");
        let c = PROFILE;
        assert!(c.read && c.write && c.carries(Attr::Vrp) && c.number_ranges);
        assert!(!c.create && !c.delete);
        for a in [Attr::Groups, Attr::Licenses, Attr::CustomerLicenses] {
            assert!(!c.carries(a), "{a}");
        }
    }
}
