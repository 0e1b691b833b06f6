//! AudioCodes Live Platform as a read-only backend: teamsync can audit a sheet against the
//! users Live Platform manages (`plan`, `tenant users|export`), and refuses to write to it.
//!
//! Endpoints (the "v3 Teams users" and "v2 licensed users" documents; their examples are
//! in `tests/fixtures/liveplatform/`), below `base_url`:
//! - `GET /api/v3/customer/{customer_id}/user?pageNumber=N&pageSize=S`: users with their
//!   Teams Phone attributes, page-numbered (`currentPage`, `pageSize`, `totalPages`,
//!   `totalRecords`, `data`);
//! - `GET /api/v2/customer/{customer_id}/licensedUsers`: `[{sipAddress, licenseCriteria}]`.
//!
//! Our readings where the documents are vague or silent (kept here, in one place):
//! - The query parameters are named "Page Number" and "Page Size" in the document; a real
//!   server cannot take spaces, and the answer spells them `currentPage`/`pageSize`, so we
//!   send [`PAGE_NUMBER_PARAM`]/[`PAGE_SIZE_PARAM`] (`pageNumber`, `pageSize`). Pages count
//!   from 1; the size must be 2..=10000 ([`MIN_PAGE_SIZE`], [`MAX_PAGE_SIZE`]); we ask for
//!   [`DEFAULT_PAGE_SIZE`] and read pages 1..=`totalPages`.
//! - Authentication is not described by either document: we send `Authorization: Bearer`
//!   with a token from `token_env` or `token_command` (run again once on a 401), as Fusion.
//! - Errors: the 400/500 bodies are RFC 7807 problem details with AudioCodes' extras
//!   (`errorCode`, `errorTicket`, `traceId`); `errorCode` becomes the error's code, title and
//!   detail its reason, and ticket and trace id are kept for a support call. Status mapping
//!   is the shared [`crate::connector::http`] client's (401/403 auth, 429 pauses the tenant, 5xx retried, other 4xx
//!   rejected).
//! - No status endpoint is documented: `check` reads the first page with the smallest size.
//! - No single-user GET is documented: `read_user`/`find_user` page through the list.
//!
//! Field mapping (Live Platform → teamsync):
//!
//! | Live Platform | teamsync | note |
//! | --- | --- | --- |
//! | `Identity` (else `ObjectId`, lowercased) | user id | |
//! | `UserPrincipalName` | upn | lowercased; a record without a valid UPN is skipped |
//! | `WebName` | displayName | the document has no `DisplayName` field |
//! | `LineURI` | number | `tel:` stripped, `;ext=` kept; `null`/empty = none |
//! | `UsageLocation` | country | |
//! | `OnlineVoiceRoutingPolicy` | vrp | `""` = none; present in the list, so every user has details |
//! | `EnterpriseVoiceEnabled` | voice enabled | shown, not planned |
//! | licensed users' `licenseCriteria` | licenses | joined by `sipAddress` (`sip:` and case ignored), else by UPN |
//!
//! Live Platform has no groups and no customer licenses: the capabilities say so, and the
//! planner refuses those columns. Its licenses are Live Platform license criteria, not
//! Microsoft SKUs, so the `licenses` column is refused too (they are shown by `tenant users`
//! and `tenant licenses`). The VRP catalog is the set of policies users hold (no policy list
//! is documented): a sheet naming a policy no user holds is reported as unknown.
//!
//! Read-only: capabilities say `write = false`, `apply`/`sync`/`resume` refuse before any
//! request (exit 2), and [`Connector::send`] answers [`ConnectorError::Unsupported`].

pub mod config;
pub mod mapping;
pub mod sim;
pub mod steps;
pub mod wire;

use crate::connector::http::{Client, HttpSettings, Request, TokenSource};
use crate::connector::registry::Backend;
use crate::connector::{Connector, ConnectorError, Gate, Step, TenantStatus};
use crate::model::{Attr, AttrSet, Profile, Snapshot, TenantUser, Upn};
use crate::plan::model::UserPlan;
use async_trait::async_trait;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The query parameter the document calls "Page Number" (see the module doc).
pub const PAGE_NUMBER_PARAM: &str = "pageNumber";
/// The query parameter the document calls "Page Size".
pub const PAGE_SIZE_PARAM: &str = "pageSize";
pub const MIN_PAGE_SIZE: u32 = 2;
pub const MAX_PAGE_SIZE: u32 = 10_000;
/// Few requests for a large customer, small enough answers for a slow link.
pub const DEFAULT_PAGE_SIZE: u32 = 1000;

/// What Live Platform can do (shown by `teamsync backends`): read, and audit the
/// attributes its list carries (the VRP too, so no detail read is ever needed).
pub const PROFILE: Profile = Profile {
    attrs: AttrSet::of(&[Attr::DisplayName, Attr::Number, Attr::Country, Attr::Vrp]),
    ..Profile::read_only("liveplatform")
};

/// Live Platform in the registry of backends.
pub const BACKEND: Backend = Backend {
    name: "liveplatform",
    note: "AudioCodes Live Platform (read-only: plan audits, apply refuses)",
    profile: PROFILE,
    keys: LivePlatformConfig::KEYS,
    sample: teamsync_sim::liveplatform::SAMPLE,
    sim_token: true,
    open_sim: sim::open,
};

pub use config::LivePlatformConfig;

/// Everything needed to reach one Live Platform customer.
#[derive(Clone, Debug)]
pub struct LivePlatformSettings {
    /// Scheme, host and optional path prefix; `/api/v3/…` and `/api/v2/…` are added.
    pub base_url: String,
    /// The customer's `umpCustomerGuid`.
    pub customer_id: String,
    pub page_size: u32,
    pub http: HttpSettings,
}

impl LivePlatformSettings {
    /// Settings with defaults: 30 s timeout, [`DEFAULT_PAGE_SIZE`], default retry policy.
    pub fn new(
        base_url: impl Into<String>,
        customer_id: impl Into<String>,
        token: TokenSource,
    ) -> LivePlatformSettings {
        LivePlatformSettings {
            base_url: base_url.into(),
            customer_id: customer_id.into(),
            page_size: DEFAULT_PAGE_SIZE,
            http: HttpSettings::new(token),
        }
    }
}

/// The Live Platform connector; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct LivePlatformConnector {
    client: Client,
    customer_id: String,
    page_size: u32,
}

fn cfg(m: String) -> ConnectorError {
    ConnectorError::Config(m)
}

impl LivePlatformConnector {
    /// Refuses plain http to a non-loopback host (unless allowed), a customer id that is not
    /// a GUID, a page size outside 2..=10000 and an unreadable CA file. The token is not
    /// resolved yet (the first request does it).
    pub fn new(
        s: LivePlatformSettings,
        gate: Arc<Gate>,
    ) -> Result<LivePlatformConnector, ConnectorError> {
        let customer = uuid::Uuid::parse_str(s.customer_id.trim()).map_err(|_| {
            cfg(format!(
                "liveplatform: customer_id {:?} is not a GUID (the customer's umpCustomerGuid)",
                s.customer_id
            ))
        })?;
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&s.page_size) {
            return Err(cfg(format!(
                "liveplatform: page size {} is outside {MIN_PAGE_SIZE}..={MAX_PAGE_SIZE}",
                s.page_size
            )));
        }
        let client = Client::new(&s.base_url, &["api"], s.http, mapping::parse_problem, gate)?;
        Ok(LivePlatformConnector {
            client,
            customer_id: customer.hyphenated().to_string(),
            page_size: s.page_size,
        })
    }

    fn users_request(&self, page: u64, size: u32) -> Request {
        let mut r = Request::get(&["v3", "customer", &self.customer_id, "user"]);
        r.query.push((PAGE_NUMBER_PARAM, page.to_string()));
        r.query.push((PAGE_SIZE_PARAM, size.to_string()));
        r
    }

    /// Every page of users, with each user's SIP key. A server that ignores the page number
    /// (a page that answers another `currentPage`, or repeats users only) would make us loop
    /// or miss users: it is an error.
    async fn list_users(
        &self,
        counter: &AtomicU64,
    ) -> Result<Vec<(TenantUser, Option<String>)>, ConnectorError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut page_no: u64 = 1;
        loop {
            let r = self.users_request(page_no, self.page_size);
            let page: wire::UsersPage = self.client.read(&r, counter).await?;
            let bad = |m: String| ConnectorError::Retryable {
                status: None,
                retry_after: None,
                message: format!("{}: {m}", r.describe()),
            };
            if let Some(cur) = page.current_page.filter(|&c| c != page_no) {
                return Err(bad(format!(
                    "asked for page {page_no}, the server answered page {cur}"
                )));
            }
            let listed = page.data.len();
            let mut new = 0;
            for (u, sip) in mapping::users_from_page(&page) {
                if seen.insert(u.id.clone()) {
                    out.push((u, sip));
                    new += 1;
                } else {
                    tracing::warn!(upn = %u.upn, "user listed twice; second entry ignored");
                }
            }
            if page_no >= page.total_pages || listed == 0 {
                if let Some(total) = page.total_records {
                    if total != out.len() as u64 {
                        tracing::warn!(
                            "Live Platform announced {total} users and listed {} (changed while paging, or entries skipped)",
                            out.len()
                        );
                    }
                }
                return Ok(out);
            }
            if new == 0 {
                return Err(bad(format!("page {page_no} repeated users already listed")));
            }
            page_no += 1;
        }
    }

    async fn licensed(
        &self,
        counter: &AtomicU64,
    ) -> Result<Vec<wire::LicensedUser>, ConnectorError> {
        let r = Request::get(&["v2", "customer", &self.customer_id, "licensedUsers"]);
        let raw: Vec<serde_json::Value> = self.client.read(&r, counter).await?;
        Ok(mapping::licensed_from_wire(&raw))
    }

    /// Users with their licenses joined.
    async fn all_users(&self, counter: &AtomicU64) -> Result<Vec<TenantUser>, ConnectorError> {
        let (mut users, licensed) =
            tokio::try_join!(self.list_users(counter), self.licensed(counter))?;
        let stray = mapping::join_licenses(&mut users, &licensed);
        if stray > 0 {
            tracing::warn!(
                "{stray} licensed user(s) match no listed user; their licenses are not shown"
            );
        }
        Ok(users.into_iter().map(|(u, _)| u).collect())
    }
}

#[async_trait]
impl Connector for LivePlatformConnector {
    /// Every request passes the tenant's gate and is timed by the HTTP client once admitted,
    /// so pacing and Retry-After pauses never count as a request timeout.
    fn gate(&self) -> Option<&crate::connector::Gate> {
        Some(self.client.gate())
    }

    fn profile(&self) -> Profile {
        PROFILE
    }

    async fn check(&self) -> Result<TenantStatus, ConnectorError> {
        let counter = AtomicU64::new(0);
        let page: wire::UsersPage = self
            .client
            .read(&self.users_request(1, MIN_PAGE_SIZE), &counter)
            .await?;
        Ok(TenantStatus {
            ok: true,
            details: serde_json::json!({
                "customer": self.customer_id,
                "users": page.total_records,
                "access": "read-only",
            }),
        })
    }

    /// Every user with details (the list carries them) and licenses, in
    /// `ceil(users / page size) + 1` requests whatever `detail_upns` asks.
    async fn snapshot(
        &self,
        _detail_upns: &[Upn],
        _all_details: bool,
    ) -> Result<Snapshot, ConnectorError> {
        let counter = AtomicU64::new(0);
        let users = self.all_users(&counter).await?;
        let catalogs = mapping::catalogs_from_users(&users);
        Ok(Snapshot {
            users,
            catalogs,
            requests: counter.load(Ordering::Relaxed),
            number_ranges: Vec::new(),
            held_elsewhere: Vec::new(),
        })
    }

    async fn read_user(&self, id: &str) -> Result<Option<TenantUser>, ConnectorError> {
        let id = id.to_lowercase();
        let users = self.all_users(&AtomicU64::new(0)).await?;
        Ok(users.into_iter().find(|u| u.id == id))
    }

    async fn find_user(
        &self,
        upn: &Upn,
        _display_name_hint: Option<&str>,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        let users = self.all_users(&AtomicU64::new(0)).await?;
        Ok(users.into_iter().find(|u| &u.upn == upn))
    }

    fn steps(&self, user: &UserPlan) -> Vec<Step> {
        steps::group(user)
    }

    async fn send(
        &self,
        _user: &UserPlan,
        _user_id: &mut Option<String>,
        _step: &Step,
    ) -> Result<(), ConnectorError> {
        Err(steps::refuse())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, customer: &str) -> LivePlatformSettings {
        LivePlatformSettings::new(url, customer, TokenSource::None)
    }

    #[test]
    fn settings_are_checked_before_anything_is_sent() {
        let gate = Arc::new(Gate::new(0.0, 1));
        let guid = "7e24d47c-eb72-439a-84e4-aea1bdb1eed9";
        assert!(
            LivePlatformConnector::new(settings("https://lp.example.net", guid), gate.clone())
                .is_ok()
        );
        let e =
            LivePlatformConnector::new(settings("https://lp.example.net", "acme"), gate.clone())
                .unwrap_err();
        assert!(e.to_string().contains("not a GUID"), "{e}");
        let e = LivePlatformConnector::new(settings("http://lp.example.net", guid), gate.clone())
            .unwrap_err();
        assert!(matches!(e, ConnectorError::Config(_)), "{e}");
        for size in [1, 10_001] {
            let mut s = settings("https://lp.example.net", guid);
            s.page_size = size;
            assert!(
                LivePlatformConnector::new(s, gate.clone()).is_err(),
                "{size}"
            );
        }
    }

    #[test]
    fn the_page_parameters_are_named_once() {
        let c = LivePlatformConnector::new(
            settings(
                "https://lp.example.net/prefix/",
                "7E24D47C-EB72-439A-84E4-AEA1BDB1EED9",
            ),
            Arc::new(Gate::new(0.0, 1)),
        )
        .unwrap();
        let r = c.users_request(3, 50);
        assert_eq!(
            r.path,
            vec![
                "v3",
                "customer",
                "7e24d47c-eb72-439a-84e4-aea1bdb1eed9",
                "user"
            ]
        );
        assert_eq!(
            r.query,
            vec![
                ("pageNumber", "3".to_string()),
                ("pageSize", "50".to_string())
            ]
        );
    }

    #[tokio::test]
    async fn send_is_unsupported_and_steps_are_empty() {
        let c = LivePlatformConnector::new(
            settings(
                "https://lp.example.net",
                "7e24d47c-eb72-439a-84e4-aea1bdb1eed9",
            ),
            Arc::new(Gate::new(0.0, 1)),
        )
        .unwrap();
        let upn = Upn::parse("a@b.com").unwrap();
        let up = UserPlan {
            upn: upn.clone(),
            user_id: Some("x".into()),
            action: crate::plan::model::UserAction::Update,
            desired: crate::model::UserSpec::new(upn),
            origin: None,
            changes: vec![],
            ops: vec![],
            before: Default::default(),
        };
        assert!(c.steps(&up).is_empty());
        let e = c
            .send(
                &up,
                &mut None,
                &Step {
                    ops: vec![],
                    label: "x".into(),
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(e, ConnectorError::Unsupported(_)));
        assert!(!c.profile().write);
    }
}
