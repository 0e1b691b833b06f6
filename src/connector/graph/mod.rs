//! The Microsoft Graph backend: a Microsoft 365 tenant's Teams Phone users reached directly
//! through Graph, with no Fusion, AudioCodes or PortSIP in front.
//!
//! What it reads (a snapshot, every collection paged through `@odata.nextLink`): `users`
//! (UPN, display name, usage location, licenses), `admin/teams/userConfigurations` (the
//! primary number, Enterprise Voice, the directly assigned voice routing policy, and which
//! accounts are resource accounts), `subscribedSkus` (the license catalog), `groups` (the
//! group catalog), `telephoneNumberManagement/numberAssignments` (the tenant's numbers and
//! their `numberType`, paged with `$top`/`$skip` as its page documents) and, for the users
//! whose rows touch groups or the VRP, `users/{id}/memberOf` — twenty users to a `$batch`.
//!
//! What it writes: see `steps` (one `$batch` per user step). Creating and deleting Entra
//! users is identity provisioning's job, not a phone system's: the profile says so, and a
//! row for a user the tenant does not have is a plan error.
//!
//! Readings where Graph's documents are vague (the README's "Choices" and the simulator's
//! module doc keep the same list):
//! - **Voice routing policies.** `policy/userAssignments/assign` documents no list of the
//!   policy types it takes: its pages name `teamsMeetingBroadcastPolicy` and
//!   `TeamsMeetingPolicy` as examples, and `userConfigurations` shows `TeamsCallingPolicy`.
//!   Nothing names `OnlineVoiceRoutingPolicy`. We send that type (the name Teams gives the
//!   policy, as the examples spell theirs), resolve the policy's id with
//!   `getPolicyId(type=…,name=…)`, and read the VRP back from
//!   `effectivePolicyAssignments` (a direct assignment only). A tenant whose Graph refuses
//!   the type fails the item with Graph's message and the advice to assign the VRP another
//!   way (`Grant-CsOnlineVoiceRoutingPolicy`); nothing else of the user is held back. Graph
//!   lists no policies, so the names a sheet may use are the tenant's
//!   `voice_routing_policies`.
//! - **Numbers.** `assignNumber`/`unassignNumber` answer 202 with a `Location` to poll; we
//!   poll it (250 ms, doubling to 5 s, for at most five minutes) until `succeeded` or
//!   `failed`/`skipped` — the latter an item error carrying the operation id and Graph's
//!   `statusDetail`; a succeeded one is a note on the item ([`Connector::take_notes`]). The operation's GET is read both bare and wrapped in `value` (its page's
//!   example wraps it). A new primary number is assigned without releasing the old one
//!   first (Teams replaces it, as `Set-CsPhoneNumberAssignment` does); `numberType` is the
//!   inventory's, and a number the inventory does not hold is an item error before anything
//!   is sent. The `numberAssignments` example shows a JSON object with a repeated `value`
//!   key (not valid JSON); we read the collection as an array, as every other Graph list.
//! - **Throttling.** The default ceiling is Graph's documented limit for Teams writes
//!   (30 requests per second per app and tenant outside named services); identity writes'
//!   3,000 per 150 s (20/s) would be lower, so a tenant writing mostly licenses and groups
//!   should set `rate_per_second = 20`. The adaptive gate learns the rest from 429s and
//!   `x-ms-throttle-limit-percentage` (`x-ms-throttle-scope` names the scope and is logged
//!   at debug level). Each part of a `$batch` takes its own permit, and a part answered 429
//!   (inside a 200) pauses the tenant for its own Retry-After and is sent again: never the
//!   user's failure.
//! - **Memberships** already as desired (a retried step) count as done: an add answered
//!   "already exist" or a removal answered 404.
//! - **Replication.** A just-changed user may read back stale for a moment; the executor's
//!   replication window applies as to every backend.

pub mod client;
pub mod config;
pub mod mapping;
pub mod sim;
pub mod steps;
pub mod wire;

use crate::connector::http::HttpSettings;
use crate::connector::registry::Backend;
use crate::connector::{Connector, ConnectorError, Gate, Step, TenantStatus};
use crate::model::{
    Attr, AttrSet, AttrValue, Catalogs, GroupInfo, HeldNumber, LicenseInfo, Profile, Snapshot,
    TenantUser, Upn, VrpInfo,
};
use crate::plan::model::UserPlan;
use async_trait::async_trait;
use client::{Auth, GraphClient, Part, Reply};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use config::GraphConfig;

/// The Teams policy type of a voice routing policy (see the module doc).
pub const VRP_POLICY_TYPE: &str = "OnlineVoiceRoutingPolicy";
/// Users to a page of `users`, `groups` and `memberOf` (Graph's maximum).
const PAGE: u32 = 999;
/// Numbers to a page of `numberAssignments` (its documented maximum).
const NUMBER_PAGE: usize = 1000;
/// Pages read before a list that never ends is given up.
const MAX_PAGES: usize = 100_000;

/// What Graph can do (shown by `teamsync backends`).
pub const PROFILE: Profile = Profile {
    write: true,
    attrs: AttrSet::of(&[
        Attr::DisplayName,
        Attr::Country,
        Attr::Number,
        Attr::Vrp,
        Attr::Groups,
        Attr::Licenses,
    ]),
    detail_reads: AttrSet::of(&[Attr::Groups, Attr::Vrp]),
    ..Profile::read_only("graph")
};

/// Graph in the registry of backends.
pub const BACKEND: Backend = Backend {
    name: "graph",
    note: "Microsoft Graph directly: Teams Phone numbers, voice routing policies, licenses, groups (users are not created or deleted)",
    profile: PROFILE,
    keys: GraphConfig::KEYS,
    sample: teamsync_sim::graph::SAMPLE,
    sim_token: true,
    open_sim: sim::open,
};

/// Everything needed to reach one tenant through Graph.
#[derive(Clone, Debug)]
pub struct GraphSettings {
    /// `https://graph.microsoft.com` (or a simulator); `/v1.0` is added.
    pub base_url: String,
    pub auth: Auth,
    pub voice_routing_policies: Vec<String>,
    pub location_id: Option<String>,
    pub http: HttpSettings,
}

/// A number of the tenant's inventory.
#[derive(Debug, Clone)]
struct Held {
    number_type: String,
    target: Option<String>,
}

pub struct GraphConnector {
    client: GraphClient,
    vrps: Vec<String>,
    location_id: Option<String>,
    /// From the last snapshot (or read when a send needs it).
    inventory: Mutex<Option<HashMap<String, Held>>>,
    policy_ids: Mutex<HashMap<String, String>>,
    /// Per user, the number operations that ended ("assignNumber +32… : operation op-7
    /// succeeded"), until the executor takes them for the item.
    notes: Mutex<HashMap<Upn, Vec<String>>>,
}

impl std::fmt::Debug for GraphConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphConnector")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn malformed(what: &str, e: impl std::fmt::Display) -> ConnectorError {
    ConnectorError::Retryable {
        status: None,
        retry_after: None,
        message: format!("{what}: malformed answer ({e})"),
    }
}

impl GraphConnector {
    pub fn new(s: GraphSettings, gate: Arc<Gate>) -> Result<GraphConnector, ConnectorError> {
        Ok(GraphConnector {
            client: GraphClient::new(&s.base_url, s.auth, s.http, gate)?,
            vrps: s.voice_routing_policies,
            location_id: s.location_id,
            inventory: Mutex::new(None),
            policy_ids: Mutex::new(HashMap::new()),
            notes: Mutex::new(HashMap::new()),
        })
    }

    /// Every page of a collection, from `first` through `@odata.nextLink`.
    async fn all<T: serde::de::DeserializeOwned>(
        &self,
        first: &str,
        counter: &AtomicU64,
    ) -> Result<Vec<T>, ConnectorError> {
        let mut out = Vec::new();
        let mut url = self.client.url(first)?;
        for _ in 0..MAX_PAGES {
            let v = self.client.read(url, counter).await?;
            let page: wire::Page<T> = serde_json::from_value(v).map_err(|e| malformed(first, e))?;
            out.extend(page.value);
            match page.next_link {
                Some(next) => url = self.client.follow(&next)?,
                None => return Ok(out),
            }
        }
        Err(malformed(first, "more pages than any tenant holds"))
    }

    /// The number inventory, paged with `$top`/`$skip`.
    async fn numbers(
        &self,
        counter: &AtomicU64,
    ) -> Result<Vec<wire::NumberAssignment>, ConnectorError> {
        let mut out: Vec<wire::NumberAssignment> = Vec::new();
        for _ in 0..MAX_PAGES {
            let rel = format!(
                "admin/teams/telephoneNumberManagement/numberAssignments?$top={NUMBER_PAGE}&$skip={}",
                out.len()
            );
            let v = self.client.read(self.client.url(&rel)?, counter).await?;
            let page: wire::Page<wire::NumberAssignment> =
                serde_json::from_value(v).map_err(|e| malformed("numberAssignments", e))?;
            let n = page.value.len();
            out.extend(page.value);
            if n < NUMBER_PAGE {
                return Ok(out);
            }
        }
        Err(malformed(
            "numberAssignments",
            "more pages than any tenant holds",
        ))
    }

    /// Group ids of each user, twenty users to a `$batch` of `memberOf` reads.
    async fn memberships(
        &self,
        ids: &[String],
        counter: &AtomicU64,
    ) -> Result<HashMap<String, Vec<String>>, ConnectorError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(client::BATCH_MAX) {
            let parts: Vec<Part> = chunk
                .iter()
                .map(|id| Part {
                    method: reqwest::Method::GET,
                    url: format!("users/{id}/memberOf?$select=id&$top={PAGE}"),
                    body: None,
                    depends_on: None,
                })
                .collect();
            let answers = if parts.len() == 1 {
                let url = self.client.url(&parts[0].url)?;
                vec![Ok(Reply {
                    status: 200,
                    location: None,
                    body: self.client.read(url, counter).await?,
                })]
            } else {
                self.client.batch(&parts, counter).await?
            };
            for (id, a) in chunk.iter().zip(answers) {
                let body = a?.body;
                let page: wire::Page<wire::DirectoryObject> =
                    serde_json::from_value(body).map_err(|e| malformed("memberOf", e))?;
                let mut groups: Vec<String> = page
                    .value
                    .into_iter()
                    .filter(|o| {
                        o.odata_type
                            .as_deref()
                            .is_none_or(|t| t.ends_with(".group"))
                    })
                    .map(|o| o.id)
                    .collect();
                if let Some(next) = page.next_link {
                    let rest: Vec<wire::DirectoryObject> = self.all_from(&next, counter).await?;
                    groups.extend(rest.into_iter().map(|o| o.id));
                }
                out.insert(id.clone(), groups);
            }
        }
        Ok(out)
    }

    async fn all_from<T: serde::de::DeserializeOwned>(
        &self,
        link: &str,
        counter: &AtomicU64,
    ) -> Result<Vec<T>, ConnectorError> {
        let mut out = Vec::new();
        let mut url = self.client.follow(link)?;
        for _ in 0..MAX_PAGES {
            let v = self.client.read(url, counter).await?;
            let page: wire::Page<T> = serde_json::from_value(v).map_err(|e| malformed(link, e))?;
            out.extend(page.value);
            match page.next_link {
                Some(next) => url = self.client.follow(&next)?,
                None => return Ok(out),
            }
        }
        Err(malformed(link, "more pages than any tenant holds"))
    }

    fn remember_inventory(&self, numbers: &[wire::NumberAssignment]) {
        let map = numbers
            .iter()
            .map(|n| {
                (
                    n.telephone_number.clone(),
                    Held {
                        number_type: n.number_type.clone().unwrap_or_default(),
                        target: n.assignment_target_id.clone(),
                    },
                )
            })
            .collect();
        *lock(&self.inventory) = Some(map);
    }

    async fn inventory(&self) -> Result<HashMap<String, Held>, ConnectorError> {
        if let Some(i) = lock(&self.inventory).clone() {
            return Ok(i);
        }
        let numbers = self.numbers(&AtomicU64::new(0)).await?;
        self.remember_inventory(&numbers);
        Ok(lock(&self.inventory).clone().unwrap_or_default())
    }

    /// A voice routing policy's id, by name (`getPolicyId`, cached).
    async fn policy_id(&self, name: &str) -> Result<String, ConnectorError> {
        let key = name.to_lowercase();
        if let Some(id) = lock(&self.policy_ids).get(&key) {
            return Ok(id.clone());
        }
        let rel = format!(
            "admin/teams/policy/getPolicyId(type='{VRP_POLICY_TYPE}',name='{}')",
            name.replace('\'', "''")
        );
        let v = self
            .client
            .read(self.client.url(&rel)?, &AtomicU64::new(0))
            .await?;
        let page: wire::Page<wire::PolicyIdentifier> =
            serde_json::from_value(v).map_err(|e| malformed("getPolicyId", e))?;
        let id = page
            .value
            .into_iter()
            .next()
            .map(|p| p.policy_id)
            .ok_or_else(|| ConnectorError::Rejected {
                status: 404,
                code: Some("policy-not-found".into()),
                reason: format!("the tenant has no {VRP_POLICY_TYPE} named {name:?}"),
            })?;
        lock(&self.policy_ids).insert(key, id.clone());
        Ok(id)
    }

    async fn user_configuration(
        &self,
        id: &str,
        counter: &AtomicU64,
    ) -> Result<Option<wire::UserConfiguration>, ConnectorError> {
        let url = self
            .client
            .url(&format!("admin/teams/userConfigurations/{id}"))?;
        match self.client.read(url, counter).await {
            Ok(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| malformed("userConfigurations", e)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends the parts (one request, or `$batch`es of twenty) and polls every number
    /// operation they started; the first failure is the step's.
    async fn run_parts(&self, upn: &Upn, parts: Vec<Part>) -> Result<(), ConnectorError> {
        let counter = AtomicU64::new(0);
        let mut answers: Vec<(Part, Result<Reply, ConnectorError>)> = Vec::new();
        if parts.len() == 1 {
            let p = parts
                .into_iter()
                .next()
                .ok_or_else(|| ConnectorError::Config("no part".into()))?;
            let url = self.client.url(&p.url)?;
            let r = self
                .client
                .send(p.method.clone(), url, p.body.as_ref(), &counter)
                .await;
            answers.push((p, r));
        } else {
            for chunk in parts.chunks(client::BATCH_MAX) {
                // Dependencies stay inside a chunk: the chained parts come first.
                let chunk: Vec<Part> = chunk.to_vec();
                let base = answers.len();
                let chunk: Vec<Part> = chunk
                    .into_iter()
                    .map(|mut p| {
                        p.depends_on = p.depends_on.and_then(|d| d.checked_sub(base));
                        p
                    })
                    .collect();
                let replies = self.client.batch(&chunk, &counter).await?;
                answers.extend(chunk.into_iter().zip(replies));
            }
        }
        let mut first_error = None;
        for (p, r) in answers {
            let outcome = match r {
                Ok(reply) if reply.status == 202 && p.url.contains("numberAssignments/") => {
                    let what = number_what(&p);
                    match reply.location.as_deref() {
                        Some(loc) => {
                            self.client
                                .poll(&what, loc, &counter)
                                .await
                                .map(|(id, status)| {
                                    tracing::info!("{what}: operation {id} {status}");
                                    lock(&self.notes)
                                        .entry(upn.clone())
                                        .or_default()
                                        .push(format!("{what}: operation {id} {status}"));
                                })
                        }
                        None => Err(ConnectorError::Rejected {
                            status: 202,
                            code: Some("no-location".into()),
                            reason: format!("{what}: accepted without a Location to poll"),
                        }),
                    }
                }
                Ok(_) => Ok(()),
                Err(e) => already_done(&p, e),
            };
            if let Err(e) = outcome {
                first_error.get_or_insert(explain(&p, e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn number_what(p: &Part) -> String {
    let action = if p.url.ends_with("unassignNumber") {
        "unassignNumber"
    } else {
        "assignNumber"
    };
    let n = p
        .body
        .as_ref()
        .and_then(|b| b.get("telephoneNumber"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{action} {n}")
}

/// A membership already as desired (a retried step) is done.
fn already_done(p: &Part, e: ConnectorError) -> Result<(), ConnectorError> {
    let members = p.url.ends_with("/$ref");
    match &e {
        ConnectorError::Rejected {
            status: 400,
            reason,
            ..
        } if members && p.method == reqwest::Method::POST && reason.contains("already exist") => {
            Ok(())
        }
        ConnectorError::Rejected { status: 404, .. }
            if members && p.method == reqwest::Method::DELETE =>
        {
            Ok(())
        }
        _ => Err(e),
    }
}

/// Graph refusing the VRP's policy type gets the advice the module doc gives.
fn explain(p: &Part, e: ConnectorError) -> ConnectorError {
    match e {
        ConnectorError::Rejected {
            status: 400,
            code,
            reason,
        } if p.url.contains("policy/userAssignments") => ConnectorError::Rejected {
            status: 400,
            code,
            reason: format!(
                "{reason} (Graph's policy assignment does not document {VRP_POLICY_TYPE}; this tenant refuses it: assign voice routing policies with Grant-CsOnlineVoiceRoutingPolicy, or leave the vrp column empty)"
            ),
        },
        other => other,
    }
}

fn before_list(c: &crate::plan::model::AttrChange) -> Option<Vec<String>> {
    match &c.before {
        Some(Some(AttrValue::List(l))) => Some(l.clone()),
        Some(None) => Some(Vec::new()),
        _ => None,
    }
}

#[async_trait]
impl Connector for GraphConnector {
    fn gate(&self) -> Option<&Gate> {
        Some(self.client.gate())
    }

    fn profile(&self) -> Profile {
        PROFILE
    }

    async fn check(&self) -> Result<TenantStatus, ConnectorError> {
        let counter = AtomicU64::new(0);
        let skus: Vec<wire::SubscribedSku> = self.all("subscribedSkus", &counter).await?;
        Ok(TenantStatus {
            ok: true,
            details: serde_json::json!({ "subscribedSkus": skus.len() }),
        })
    }

    async fn snapshot(
        &self,
        detail_upns: &[Upn],
        all_details: bool,
    ) -> Result<Snapshot, ConnectorError> {
        let counter = AtomicU64::new(0);
        let users: Vec<wire::User> = self
            .all(
                &format!("users?$select=id,userPrincipalName,displayName,usageLocation,assignedLicenses&$top={PAGE}"),
                &counter,
            )
            .await?;
        let configs: Vec<wire::UserConfiguration> =
            self.all("admin/teams/userConfigurations", &counter).await?;
        let skus: Vec<wire::SubscribedSku> = self.all("subscribedSkus", &counter).await?;
        let groups: Vec<wire::Group> = self
            .all(
                &format!("groups?$select=id,displayName&$top={PAGE}"),
                &counter,
            )
            .await?;
        let numbers = self.numbers(&counter).await?;
        self.remember_inventory(&numbers);
        let configs: HashMap<String, wire::UserConfiguration> = configs
            .into_iter()
            .map(|c| (c.id.to_lowercase(), c))
            .collect();
        let mut out = Vec::new();
        let mut held_elsewhere = Vec::new();
        let mut listed = std::collections::HashSet::new();
        for u in &users {
            let config = configs.get(&u.id.to_lowercase());
            let name = u
                .user_principal_name
                .clone()
                .unwrap_or_else(|| u.id.clone());
            if config.is_some_and(mapping::is_resource_account) {
                held_elsewhere.extend(config.and_then(mapping::primary_number).map(|n| {
                    HeldNumber {
                        number: n,
                        holder: format!("resource account {name}"),
                    }
                }));
                continue;
            }
            match mapping::user(u, config) {
                Some(t) => {
                    listed.insert(u.id.to_lowercase());
                    out.push(t);
                }
                None => {
                    tracing::warn!(id = %u.id, "user without a usable userPrincipalName left out");
                }
            }
        }
        for n in &numbers {
            let Ok(e) = crate::model::E164::parse_canonical(&n.telephone_number) else {
                continue;
            };
            let status = n.assignment_status.as_deref().unwrap_or("unassigned");
            let to_listed = n
                .assignment_target_id
                .as_deref()
                .is_some_and(|t| listed.contains(&t.to_lowercase()));
            if status != "unassigned"
                && !to_listed
                && !held_elsewhere.iter().any(|h: &HeldNumber| h.number == e)
            {
                held_elsewhere.push(HeldNumber {
                    number: e,
                    holder: format!(
                        "{status} ({})",
                        n.assignment_target_id.as_deref().unwrap_or("no target")
                    ),
                });
            }
        }
        let wanted: Vec<String> = out
            .iter()
            .filter(|u| all_details || detail_upns.contains(&u.upn))
            .map(|u| u.id.clone())
            .collect();
        let member_of = self.memberships(&wanted, &counter).await?;
        for u in &mut out {
            if let Some(g) = member_of.get(&u.id) {
                u.details = Some(mapping::details(
                    g.clone(),
                    configs.get(&u.id.to_lowercase()),
                ));
            }
        }
        let catalogs = Catalogs {
            groups: groups
                .into_iter()
                .map(|g| GroupInfo {
                    display_name: g.display_name.unwrap_or_default(),
                    id: g.id,
                })
                .collect(),
            licenses: skus
                .into_iter()
                .map(|s| {
                    let total = s.prepaid_units.map_or(0, |p| p.enabled);
                    LicenseInfo {
                        sku_id: s.sku_id.to_lowercase(),
                        sku_part_number: s.sku_part_number,
                        sku_description: None,
                        total,
                        free: total - s.consumed_units,
                    }
                })
                .collect(),
            vrps: self
                .vrps
                .iter()
                .map(|v| VrpInfo {
                    identity: v.clone(),
                    description: None,
                })
                .collect(),
        };
        Ok(Snapshot {
            users: out,
            catalogs,
            requests: counter.load(Ordering::Relaxed),
            number_ranges: Vec::new(),
            held_elsewhere,
        })
    }

    async fn read_user(&self, id: &str) -> Result<Option<TenantUser>, ConnectorError> {
        let counter = AtomicU64::new(0);
        let url = self.client.url(&format!(
            "users/{id}?$select=id,userPrincipalName,displayName,usageLocation,assignedLicenses"
        ))?;
        let u: wire::User = match self.client.read(url, &counter).await {
            Ok(v) => serde_json::from_value(v).map_err(|e| malformed("users", e))?,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let config = self.user_configuration(&u.id, &counter).await?;
        let groups = self
            .memberships(std::slice::from_ref(&u.id), &counter)
            .await?
            .remove(&u.id)
            .unwrap_or_default();
        Ok(mapping::user(&u, config.as_ref()).map(|mut t| {
            t.details = Some(mapping::details(groups, config.as_ref()));
            t
        }))
    }

    async fn find_user(
        &self,
        upn: &Upn,
        _display_name_hint: Option<&str>,
    ) -> Result<Option<TenantUser>, ConnectorError> {
        self.read_user(upn.as_str()).await
    }

    fn steps(&self, user: &UserPlan) -> Vec<Step> {
        steps::group(user)
    }

    fn take_notes(&self, upn: &Upn) -> Vec<String> {
        lock(&self.notes).remove(upn).unwrap_or_default()
    }

    async fn send(
        &self,
        user: &UserPlan,
        user_id: &mut Option<String>,
        step: &Step,
    ) -> Result<(), ConnectorError> {
        let Some(id) = user_id.clone() else {
            return Err(ConnectorError::Unsupported(
                "Graph does not create users: the user must exist in Entra ID".into(),
            ));
        };
        let changes: Vec<&crate::plan::model::AttrChange> = step
            .ops
            .iter()
            .filter_map(|&i| user.ops.get(i))
            .flat_map(|p| p.op.changes())
            .collect();
        if step.ops.iter().any(|&i| {
            matches!(
                user.ops.get(i).map(|p| &p.op),
                Some(
                    crate::plan::model::Operation::Create { .. }
                        | crate::plan::model::Operation::Delete
                )
            )
        }) {
            return Err(ConnectorError::Unsupported(
                "Graph does not create or delete users".into(),
            ));
        }
        let mut known = steps::Known {
            user_id: &id,
            policy_id: None,
            claim: None,
            release: None,
            licenses_now: Vec::new(),
            groups_now: Vec::new(),
            location_id: self.location_id.as_deref(),
        };
        let mut current: Option<TenantUser> = None;
        for c in &changes {
            match c.attr {
                Attr::Licenses | Attr::Groups => {
                    let now = match before_list(c) {
                        Some(l) => l,
                        None => {
                            if current.is_none() {
                                current = self.read_user(&id).await?;
                            }
                            let cur = current.as_ref();
                            match c.attr {
                                Attr::Licenses => cur.map(|u| u.licenses.clone()),
                                _ => cur
                                    .and_then(|u| u.details.as_ref())
                                    .map(|d| d.groups.clone()),
                            }
                            .unwrap_or_default()
                        }
                    };
                    if c.attr == Attr::Licenses {
                        known.licenses_now = now;
                    } else {
                        known.groups_now = now;
                    }
                }
                Attr::Vrp => {
                    if let Some(AttrValue::Text(name)) = &c.after {
                        known.policy_id = Some(self.policy_id(name).await?);
                    }
                }
                Attr::Number => {
                    let inventory = self.inventory().await?;
                    match &c.after {
                        Some(AttrValue::Number(n)) => {
                            let key = n.number().to_string();
                            let held = inventory.get(&key).ok_or_else(|| ConnectorError::Rejected {
                                status: 404,
                                code: Some("number-not-in-inventory".into()),
                                reason: format!(
                                    "{key} is not a Teams number of this tenant (numberAssignments does not list it)"
                                ),
                            })?;
                            known.claim = Some((key, held.number_type.clone()));
                        }
                        _ => {
                            let number = match &c.before {
                                Some(Some(AttrValue::Number(n))) => Some(n.number().to_string()),
                                _ => inventory
                                    .iter()
                                    .find(|(_, h)| {
                                        h.target
                                            .as_deref()
                                            .is_some_and(|t| t.eq_ignore_ascii_case(&id))
                                    })
                                    .map(|(n, _)| n.clone()),
                            };
                            known.release = number.and_then(|n| {
                                inventory
                                    .get(&n)
                                    .map(|h| (n.clone(), h.number_type.clone()))
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        let parts = steps::parts(&changes, &known)?;
        if parts.is_empty() {
            return Ok(());
        }
        let claimed = known.claim.clone();
        let released = known.release.clone();
        self.run_parts(&user.upn, parts).await?;
        // Keep the inventory true for the next user's step.
        if let Some(inv) = lock(&self.inventory).as_mut() {
            if let Some((n, _)) = released {
                if let Some(h) = inv.get_mut(&n) {
                    h.target = None;
                }
            }
            if let Some((n, _)) = claimed {
                for h in inv.values_mut() {
                    if h.target.as_deref() == Some(id.as_str()) {
                        h.target = None;
                    }
                }
                if let Some(h) = inv.get_mut(&n) {
                    h.target = Some(id.clone());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::http::TokenSource;

    #[test]
    fn profile_carries_what_graph_writes_and_no_creates() {
        let p = PROFILE;
        assert!(p.read && p.write && !p.create && !p.delete && !p.resource_accounts);
        for a in [
            Attr::DisplayName,
            Attr::Country,
            Attr::Number,
            Attr::Vrp,
            Attr::Groups,
            Attr::Licenses,
        ] {
            assert!(p.carries(a), "{a}");
        }
        assert!(!p.carries(Attr::CustomerLicenses) && !p.carries(Attr::Extension));
    }

    #[test]
    fn config_refuses_a_secret_in_the_file_and_debug_hides_it() {
        let e = toml::from_str::<GraphConfig>(
            "base_url = \"https://graph.microsoft.com\"\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("client_secret"), "{e}");
        let c: GraphConfig = toml::from_str(
            "base_url = \"https://graph.microsoft.com\"\ntenant_id = \"T1\"\nclient_id = \"c\"\nclient_secret_command = \"echo s3cr3t\"\n",
        )
        .unwrap();
        use crate::connector::registry::TenantTable;
        assert!(c.check().is_ok());
        let s = c.settings();
        let Auth::ClientSecret {
            token_url, secret, ..
        } = &s.auth
        else {
            panic!("{s:?}")
        };
        assert_eq!(
            token_url,
            "https://login.microsoftonline.com/T1/oauth2/v2.0/token"
        );
        assert_eq!(secret, &TokenSource::Command("echo s3cr3t".into()));
        assert!(!format!("{s:?}").contains("s3cr3t"));
        let bare: GraphConfig =
            toml::from_str("base_url = \"https://graph.microsoft.com\"\ntenant_id = \"t\"\n")
                .unwrap();
        assert!(bare
            .check()
            .unwrap_err()
            .contains("never goes in this file"));
    }
}
