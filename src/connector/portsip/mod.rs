//! The PortSIP PBX backend: PBX users read and written through the same [`Connector`]
//! trait as Fusion, so the planner, executor and history work unchanged.
//!
//! Paths. The PortSIP users document lists fields and rules but no paths; we assume (the
//! project's reading since its start) `GET /api/users` (paged:
//! `pagination` = 1-based page, `pagesize`; answer `{"count", "items"}`), `POST /api/users`
//! (create, 201 `{"id"}`), `GET /api/users/{id}` and `POST /api/users/{id}` (modify).
//! Auth: `Authorization: Bearer <token>` from `token_env` or `token_command` (the document
//! is silent; PortSIP issues bearer access tokens).
//!
//! Mapping (README, "PortSIP"): the UPN is the user's `email`, and its local part the account
//! `name`; `number` is the office phone number and the one outbound caller ID; the sheet's
//! `extension` column is `extension_number`, required to create (a plan error otherwise:
//! [`PROFILE`] says a create needs it). PortSIP has no country, groups, licenses, VRPs,
//! customer licenses or resource accounts, and its document has no delete: the profile
//! carries none of them, hence plan errors. The modify endpoint cannot change a name or an
//! extension number, so the extension is only sent when creating, and the profile marks it
//! create-only: a row giving an existing user another extension is a plan error (the
//! snapshot reads every user's extension). Users without a UPN-shaped email are left out
//! of the snapshot (nothing in a sheet can address them).
//!
//! The account-name rules (letters, digits, `_ - ' .`, no leading or trailing period, at
//! most 64 characters, and never `admin`, `system`, `administrator` or `root` in any case)
//! are the profile's row rules ([`row_problems`]), checked before the snapshot: a breaking
//! row is a plan error and nothing is sent. The simulator enforces the same rules
//! server-side.
//!
//! Created users get random passwords; see `steps`.

pub mod config;
pub mod mapping;
pub mod sim;
pub mod steps;
pub mod wire;

use crate::connector::http::{
    parse_error_body, parse_json, Client, HttpSettings, Request, TokenSource,
};
use crate::connector::registry::Backend;
use crate::connector::{Connector, ConnectorError, Gate, Step, TenantStatus};
use crate::model::{
    Attr, AttrSet, Catalogs, HeldNumber, Profile, RowProblem, Snapshot, TenantUser, Upn, UserSpec,
};
use crate::plan::model::UserPlan;
use async_trait::async_trait;
use mapping::user_from_wire;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use steps::PASSWORD_LEN;

/// Users per list page: the simulator's maximum (the document gives none).
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Account names PortSIP reserves for its system administrator (case ignored).
pub const RESERVED_NAMES: [&str; 4] = ["admin", "system", "administrator", "root"];

/// What PortSIP can do (shown by `teamsync backends`) and its rules on rows.
pub const PROFILE: Profile = Profile {
    write: true,
    create: true,
    attrs: AttrSet::of(&[Attr::DisplayName, Attr::Number, Attr::Extension]),
    create_needs: AttrSet::of(&[Attr::DisplayName, Attr::Extension]),
    create_only: AttrSet::of(&[Attr::Extension]),
    row_rules: row_problems,
    ..Profile::read_only("portsip")
};

/// PortSIP in the registry of backends.
pub const BACKEND: Backend = Backend {
    name: "portsip",
    note: "PortSIP PBX users (no country, groups, licenses, VRP or delete; `extension` column required to create)",
    profile: PROFILE,
    keys: PortsipConfig::KEYS,
    sample: teamsync_sim::portsip::SAMPLE,
    sim_token: true,
    open_sim: sim::open,
};

pub use config::PortsipConfig;

/// Everything needed to reach one PortSIP PBX.
#[derive(Clone, Debug)]
pub struct PortsipSettings {
    /// Scheme, host and optional path prefix; `/api/users` is added.
    pub base_url: String,
    pub page_size: u32,
    pub http: HttpSettings,
}

impl PortsipSettings {
    pub fn new(base_url: impl Into<String>, token: TokenSource) -> PortsipSettings {
        PortsipSettings {
            base_url: base_url.into(),
            page_size: DEFAULT_PAGE_SIZE,
            http: HttpSettings::new(token),
        }
    }
}

pub struct PortsipConnector {
    client: Client,
    page_size: u32,
}

impl std::fmt::Debug for PortsipConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortsipConnector")
            .field("client", &self.client)
            .field("page_size", &self.page_size)
            .finish()
    }
}

/// The account name PortSIP gets for a UPN, and why it would refuse it.
pub fn account_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.chars().count() > 64 {
        return Some(format!(
            "the PortSIP account name {name:?} (the UPN's local part) must be 1 to 64 characters"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-'.".contains(*c)))
    {
        return Some(format!(
            "the PortSIP account name {name:?} (the UPN's local part) contains {c:?}; only letters, digits, _ - ' and . are allowed"
        ));
    }
    if name.starts_with('.') || name.ends_with('.') {
        return Some(format!(
            "the PortSIP account name {name:?} cannot start or end with a period"
        ));
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Some(format!(
            "the PortSIP account name {name:?} (the UPN's local part) is reserved for the system administrator (admin, system, administrator and root, in any case)"
        ));
    }
    None
}

fn extension_problem(ext: &str) -> Option<String> {
    if (3..=64).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_digit()) {
        None
    } else {
        Some(format!("extension {ext:?} must be 3 to 64 digits"))
    }
}

/// PortSIP's own rules on a row, which need no tenant data: the account name the UPN's
/// local part becomes, and the extension's shape (rows that did not come from a sheet,
/// such as a resumed job's, were never checked by the sheet layer).
pub fn row_problems(spec: &UserSpec) -> Vec<RowProblem> {
    let mut out = Vec::new();
    if let Some(m) = account_name_problem(spec.upn.local_part()) {
        out.push(RowProblem {
            column: "upn",
            message: m,
        });
    }
    if let Some(m) = spec.extension.as_set().and_then(|e| extension_problem(e)) {
        out.push(RowProblem {
            column: "extension",
            message: m,
        });
    }
    out
}

impl PortsipConnector {
    /// Refuses plain http to a non-loopback host (unless allowed) and an unreadable CA
    /// file. The token is resolved on first use.
    pub fn new(s: PortsipSettings, gate: Arc<Gate>) -> Result<PortsipConnector, ConnectorError> {
        if s.page_size == 0 {
            return Err(ConnectorError::Config(
                "portsip: page_size must be at least 1".into(),
            ));
        }
        // Fusion's reader takes PortSIP's flat `{"code", "message"}` error body as it is.
        let client = Client::new(&s.base_url, &["api"], s.http, parse_error_body, gate)?;
        Ok(PortsipConnector {
            client,
            page_size: s.page_size,
        })
    }

    /// Every page of `GET users`, until `count` users came or a page is empty. A server
    /// whose pages never end is cut off after the pages `count` allows plus one.
    async fn list_users(
        &self,
        counter: &AtomicU64,
    ) -> Result<(Vec<TenantUser>, Vec<HeldNumber>), ConnectorError> {
        let mut out = Vec::new();
        let mut held = Vec::new();
        let mut seen = HashSet::new();
        let mut listed: u64 = 0;
        let mut page: u64 = 1;
        loop {
            let mut r = Request::get(&["users"]);
            r.query.push(("pagination", page.to_string()));
            r.query.push(("pagesize", self.page_size.to_string()));
            let p: wire::UsersPage = self.client.read(&r, counter).await?;
            let n = p.items.len() as u64;
            listed += n;
            for w in &p.items {
                if !seen.insert(w.id.0.clone()) {
                    tracing::warn!(id = %w.id.0, "user listed twice; second entry ignored");
                    continue;
                }
                if let Some(u) = user_from_wire(w) {
                    out.push(u);
                }
                held.extend(mapping::unaddressable_holder(w));
            }
            let max_pages = p.count / u64::from(self.page_size) + 2;
            if n == 0 || listed >= p.count {
                return Ok((out, held));
            }
            if page >= max_pages {
                return Err(ConnectorError::Retryable {
                    status: None,
                    retry_after: None,
                    message: format!(
                        "GET users: still listing after {page} pages of {} for a count of {}",
                        self.page_size, p.count
                    ),
                });
            }
            page += 1;
        }
    }

    async fn read_counted(
        &self,
        id: &str,
        counter: &AtomicU64,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        let r = Request::get(&["users", id]);
        match self.client.read::<wire::WireUser>(&r, counter).await {
            Ok(w) => Ok(user_from_wire(&w)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Connector for PortsipConnector {
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
        let mut r = Request::get(&["users"]);
        r.query.push(("pagination", "1".into()));
        r.query.push(("pagesize", "1".into()));
        let p: wire::UsersPage = self.client.read(&r, &counter).await?;
        Ok(TenantStatus {
            ok: true,
            details: serde_json::json!({ "users": p.count }),
        })
    }

    /// The list carries every field teamsync maps, so no per-user read is needed.
    async fn snapshot(
        &self,
        _detail_upns: &[Upn],
        _all_details: bool,
    ) -> Result<Snapshot, ConnectorError> {
        let counter = AtomicU64::new(0);
        let (users, held_elsewhere) = self.list_users(&counter).await?;
        Ok(Snapshot {
            users,
            catalogs: Catalogs::default(),
            number_ranges: Vec::new(),
            requests: counter.load(Ordering::Relaxed),
            held_elsewhere,
        })
    }

    async fn read_user(&self, id: &str) -> Result<Option<TenantUser>, ConnectorError> {
        self.read_counted(id, &AtomicU64::new(0)).await
    }

    async fn find_user(
        &self,
        upn: &Upn,
        _display_name_hint: Option<&str>,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        let counter = AtomicU64::new(0);
        Ok(self
            .list_users(&counter)
            .await?
            .0
            .into_iter()
            .find(|u| &u.upn == upn))
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
            method: reqwest::Method::POST,
            path: call.path,
            query: Vec::new(),
            body: Some(call.body),
        };
        let answer = self.client.send(&r, &AtomicU64::new(0)).await;
        // The body held the generated passwords: gone before anything else happens.
        let r = Request { body: None, ..r };
        let body = answer?;
        if call.creates {
            let a: wire::Created = parse_json(&r, &body)?;
            *user_id = Some(a.id.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Field;

    fn spec(upn: &str) -> UserSpec {
        UserSpec::new(Upn::parse(upn).unwrap())
    }

    #[test]
    fn reserved_and_malformed_names_are_plan_problems() {
        for upn in [
            "admin@example.com",
            "ROOT@example.com",
            "System@example.com",
            "Administrator@example.com",
            "a+b@example.com",
            "a&b@example.com",
        ] {
            let p = row_problems(&spec(upn));
            assert_eq!(p.len(), 1, "{upn}: {p:?}");
            assert_eq!(p[0].column, "upn");
        }
        for upn in [
            "jane.doe@example.com",
            "o'brien@example.com",
            "admins@example.com",
            "a-b_c@example.com",
        ] {
            assert!(row_problems(&spec(upn)).is_empty(), "{upn}");
        }
        let mut s = spec("jane@example.com");
        s.extension = Field::Set("12".into());
        assert_eq!(row_problems(&s)[0].column, "extension");
        s.extension = Field::Set("1234".into());
        assert!(row_problems(&s).is_empty());
    }

    #[test]
    fn capabilities_refuse_what_portsip_cannot_carry() {
        let c = PROFILE;
        assert!(c.read && c.write && c.create && c.carries(Attr::Extension));
        assert!(!c.delete);
        for a in [
            Attr::Groups,
            Attr::Licenses,
            Attr::Vrp,
            Attr::CustomerLicenses,
            Attr::Country,
        ] {
            assert!(!c.carries(a), "{a}");
        }
        assert!(!c.resource_accounts && !c.number_ranges);
        assert!(c.create_only.contains(Attr::Extension));
    }

    #[test]
    fn config_needs_a_base_url_and_debug_hides_the_token() {
        let e = toml::from_str::<PortsipConfig>("token_env = \"T\"\n").unwrap_err();
        assert!(e.to_string().contains("base_url"), "{e}");
        let s = PortsipSettings::new(
            "https://pbx.example.net/prefix/",
            TokenSource::Static("s3cr3t".into()),
        );
        let c = PortsipConnector::new(s, Arc::new(Gate::unlimited())).unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t"), "{d}");
        assert!(d.contains("https://pbx.example.net/prefix/api"), "{d}");
    }
}
