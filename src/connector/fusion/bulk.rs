//! Fusion's bulk update (`PUT users/bulk`) and its job history (`GET users/bulk`,
//! `GET users/bulk/{bulk_id}`): many users' changes in one request.
//!
//! Our readings of the document ("Bulk update MS Teams users", "MS Teams User Bulk
//! Object", "Get bulk jobs history", "Get bulk job details"):
//! - **Items carry names, not ids**: groups by displayName, licenses by skuPartNumber, as
//!   the example (`"groups": ["Security", "All"]`, `"licenses": ["BusinessPack"]`) shows.
//!   An item is built only when every group and license it names has a name no other
//!   group or license of the tenant has (case-insensitively); otherwise the change goes
//!   through the per-user endpoints, which take ids.
//! - **`displayName` is required** in every item: the row's when it sets one, else the
//!   name the snapshot listed (so an item never renames anyone); a user the snapshot did
//!   not list goes per user.
//! - **Creation**: "not existing MS Teams users on Fusion will be created" — we take it
//!   literally, so bulk creates users (not resource accounts, which have their own
//!   collection). A created user starts from the tenant's default template ("see
//!   templating"), which `POST users` does not apply, so a create's item names the VRP,
//!   groups and licenses explicitly (`null` where the row sets none): the user ends as
//!   `POST users` plus the row's updates would have left it. The answer names no object
//!   id, so a user is only created through bulk when the one item carries all of its
//!   changes; its id comes from the read-back list.
//! - **What an item cannot carry**: a deletion, a cleared display name or country, and
//!   resource accounts (they are not `ms_users`) go per user. Customer licenses never
//!   share an item with a number release (the release deletes the `draas` object they
//!   live in), the same rule as the single `PUT`.
//! - **Answers**: 200 all, 207 some, 400 none, each with `details` holding one entry per
//!   item — `details` (success) or `error.code`/`error.reason` (that user's error) — and
//!   `errors` repeating the failures. A 400 without `details` is a refusal of the request
//!   itself, as are 403 (the token lacks the bulk role), 404 and 405 (a Fusion without
//!   the endpoint): the job then falls back to per-user requests.
//! - **History**: the history's path is written without `/api/v01/draas` in the
//!   document while every other endpoint has it; we use the prefixed path, like every
//!   other request (the simulator serves both). `job_id` may be a string or a number
//!   (the examples disagree); `search` matches the title, which we make unique per
//!   request (`teamsync <job> <run>.<n>`), so a lost answer is found again and a job's
//!   requests are listed with one search.
//!
//! Batch size: the tenant's `bulk_size` ([`DEFAULT_BULK_SIZE`], at most [`MAX_BULK_SIZE`]).

use super::{wire, FusionConnector};
use crate::connector::http::{parse_json, Request};
use crate::connector::{BackendBulk, BulkOutcome, ConnectorError, Step};
use crate::model::{Attr, AttrValue, TenantUser, Upn};
use crate::plan::model::{Operation, UserPlan};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

/// Users per bulk request unless the tenant says otherwise. Fusion applies a bulk's
/// items one after another inside the one request, so a request's time grows with its
/// size and must stay well inside the request timeout (30 s by default); 100 items keep
/// a request to a few seconds at the per-user pace Fusion's own job details show, cut
/// a job's write requests a hundredfold, and bound what one lost answer leaves to be
/// looked up again.
pub const DEFAULT_BULK_SIZE: usize = 100;
/// The most `bulk_size` may be. The document sets no maximum; above 1,000 items a
/// request saves less than 0.1 % more requests while its body nears 1 MB (a common
/// proxy limit) and one timeout or lost answer puts a thousand users in doubt.
pub const MAX_BULK_SIZE: usize = 1000;
/// Bulk jobs per page of Fusion's history when we look ours up.
const HISTORY_PAGE_SIZE: u32 = 100;

/// What the snapshot showed that bulk items need: listed display names, and the names of
/// groups and licenses that only one group or license has.
#[derive(Debug, Default)]
pub(super) struct Names {
    pub listed: bool,
    pub display_names: HashMap<Upn, String>,
    pub groups: HashMap<String, String>,
    pub licenses: HashMap<String, String>,
}

impl Names {
    /// Unique names only: a name two groups (or licenses) share cannot name either.
    pub(super) fn catalogs(&mut self, c: &crate::model::Catalogs) {
        self.groups = unique(c.groups.iter().map(|g| (&g.id, &g.display_name)));
        self.licenses = unique(c.licenses.iter().map(|l| (&l.sku_id, &l.sku_part_number)));
    }
}

fn unique<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> HashMap<String, String> {
    let pairs: Vec<(&String, &String)> = pairs.collect();
    let mut count: HashMap<String, usize> = HashMap::new();
    for (_, n) in &pairs {
        *count.entry(n.trim().to_lowercase()).or_default() += 1;
    }
    pairs
        .into_iter()
        .filter(|(_, n)| !n.trim().is_empty() && count[&n.trim().to_lowercase()] == 1)
        .map(|(id, n)| (id.clone(), n.trim().to_string()))
        .collect()
}

/// The bulk object's key for an attribute; `None` for one it has no key for.
fn bulk_key(attr: Attr) -> Option<&'static str> {
    match attr {
        Attr::DisplayName => Some("displayName"),
        Attr::Country => Some("country"),
        Attr::Number => Some("number"),
        Attr::Vrp => Some("vrp"),
        Attr::Groups => Some("groups"),
        Attr::Licenses => Some("licenses"),
        Attr::CustomerLicenses => Some("customerLicenses"),
        _ => None,
    }
}

/// Ids to names; `None` when one has no unique name. An empty list is `null` (the
/// document's "Set to null to remove all").
fn names_of(ids: &[String], names: &HashMap<String, String>) -> Option<Value> {
    if ids.is_empty() {
        return Some(Value::Null);
    }
    ids.iter()
        .map(|id| names.get(id).map(|n| json!(n)))
        .collect::<Option<Vec<Value>>>()
        .map(Value::Array)
}

/// The item's value for one change, or `None` when the bulk object cannot carry it.
fn value(attr: Attr, after: &Option<AttrValue>, n: &Names) -> Option<Value> {
    let list = |v: &Option<AttrValue>| -> Vec<String> {
        v.as_ref()
            .and_then(AttrValue::as_list)
            .map(<[String]>::to_vec)
            .unwrap_or_default()
    };
    match attr {
        // Neither can be cleared through the bulk object (`displayName` is required,
        // `country` takes no null).
        Attr::DisplayName => after.as_ref()?.as_text().map(|t| json!(t)),
        Attr::Country => after.as_ref()?.as_country().map(|c| json!(c.as_str())),
        Attr::Number | Attr::Vrp => Some(match after {
            None => Value::Null,
            Some(v) => json!(v.to_string()),
        }),
        Attr::Groups => names_of(&list(after), &n.groups),
        Attr::Licenses => names_of(&list(after), &n.licenses),
        Attr::CustomerLicenses => {
            let l = list(after);
            Some(if l.is_empty() { Value::Null } else { json!(l) })
        }
        _ => None,
    }
}

/// The bulk item for `steps` of `user`; see the module doc for what it cannot carry.
pub(super) fn item(user: &UserPlan, steps: &[&Step], n: &Names) -> Option<Value> {
    let mut ops: Vec<&Operation> = Vec::new();
    for s in steps {
        for &i in &s.ops {
            ops.push(&user.ops.get(i)?.op);
        }
    }
    if ops.is_empty() || ops.iter().any(|o| matches!(o, Operation::Delete)) {
        return None;
    }
    let creates = matches!(ops[0], Operation::Create { .. });
    if ops[1..]
        .iter()
        .any(|o| matches!(o, Operation::Create { .. }))
    {
        return None;
    }
    // A created user's id is not in the answer: only the whole user goes as one item.
    if creates && ops.len() != user.ops.len() {
        return None;
    }
    let mut m = Map::new();
    m.insert("upn".into(), json!(user.upn.as_str()));
    let mut releases = false;
    let mut customer_licenses = false;
    for op in &ops {
        for c in op.changes() {
            let key = bulk_key(c.attr)?;
            // One value per key: a release and a claim of a number are two requests.
            if m.contains_key(key) {
                return None;
            }
            releases |= c.attr == Attr::Number && c.after.is_none();
            customer_licenses |= c.attr == Attr::CustomerLicenses;
            m.insert(key.into(), value(c.attr, &c.after, n)?);
        }
    }
    if releases && customer_licenses {
        return None;
    }
    if creates {
        if !m.contains_key("country") {
            return None;
        }
        // Fusion's default template must not add what `POST users` would not.
        for key in ["vrp", "groups", "licenses"] {
            m.entry(key).or_insert(Value::Null);
        }
    } else if !m.contains_key("displayName") {
        let name = n.display_names.get(&user.upn)?;
        m.insert("displayName".into(), json!(name));
    }
    Some(Value::Object(m))
}

/// A `code` that is a number or a string in the examples' shape.
fn code_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "bulk".into(),
        other => other.to_string(),
    }
}

fn malformed(what: &str) -> ConnectorError {
    ConnectorError::Retryable {
        status: None,
        retry_after: None,
        message: format!("PUT users/bulk: {what}"),
    }
}

fn upn_of(item: &Value) -> &str {
    item.get("upn").and_then(Value::as_str).unwrap_or("")
}

/// Each item's outcome from a bulk answer. `details` holds one entry per item in order
/// (matched by position when the UPNs agree, else by UPN); an item the answer does not
/// name makes the answer unusable (`Retryable`: the history tells what happened).
pub(super) fn outcomes(
    answer: &wire::BulkAnswer,
    items: &[Value],
) -> Result<Vec<BulkOutcome>, ConnectorError> {
    let entry = |i: usize, upn: &str| -> Option<&wire::BulkDetail> {
        match answer.details.get(i) {
            Some(d) if d.upn.eq_ignore_ascii_case(upn) => Some(d),
            _ => answer
                .details
                .iter()
                .find(|d| d.upn.eq_ignore_ascii_case(upn)),
        }
    };
    let failed_in_errors = |upn: &str| -> Option<&wire::BulkDetail> {
        answer
            .errors
            .iter()
            .flatten()
            .find(|d| d.upn.eq_ignore_ascii_case(upn))
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let upn = upn_of(item);
            let d = entry(i, upn)
                .ok_or_else(|| malformed(&format!("the answer has no result for {upn}")))?;
            let err = d.error.as_ref().or_else(|| {
                failed_in_errors(upn)
                    .filter(|_| d.details.is_none())
                    .and_then(|e| e.error.as_ref())
            });
            Ok(match err {
                Some(e) => BulkOutcome::Failed {
                    code: code_text(&e.code),
                    reason: e.reason.clone(),
                },
                None if d.details.is_some() => BulkOutcome::Done,
                None => return Err(malformed(&format!("the result for {upn} is empty"))),
            })
        })
        .collect()
}

impl FusionConnector {
    /// `PUT users/bulk`: 200, 207 and a 400 with `details` are answers to map; anything
    /// else is an error as for any request.
    pub(super) async fn put_bulk(
        &self,
        title: &str,
        items: &[Value],
    ) -> Result<Vec<BulkOutcome>, ConnectorError> {
        let r = Request {
            method: reqwest::Method::PUT,
            path: vec!["users".into(), "bulk".into()],
            query: Vec::new(),
            body: Some(json!({"name": title, "data": items})),
        };
        let (status, body) = self
            .client
            .send_keeping(&r, &AtomicU64::new(0), &[400])
            .await?;
        if status == 400 {
            return match serde_json::from_slice::<wire::BulkAnswer>(&body) {
                Ok(a) if !a.details.is_empty() => outcomes(&a, items),
                _ => {
                    let (code, reason) = crate::connector::http::parse_error_body(
                        &body,
                        reqwest::StatusCode::BAD_REQUEST,
                    );
                    Err(ConnectorError::Rejected {
                        status: 400,
                        code,
                        reason,
                    })
                }
            };
        }
        let a: wire::BulkAnswer = parse_json(&r, &body)?;
        outcomes(&a, items)
    }

    /// Every job of Fusion's bulk history whose title contains `search`.
    pub(super) async fn bulk_history(
        &self,
        search: &str,
    ) -> Result<Vec<wire::BulkSummary>, ConnectorError> {
        let counter = AtomicU64::new(0);
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        loop {
            let mut r = Request::get(&["users", "bulk"]);
            r.query.push(("page_size", HISTORY_PAGE_SIZE.to_string()));
            r.query.push(("search", search.to_string()));
            if let Some(n) = &next {
                r.query.push(("next", n.clone()));
            }
            let page: wire::BulkPage = match self.client.read(&r, &counter).await {
                Ok(p) => p,
                // The document's 404: "No bulk history found".
                Err(e) if e.is_not_found() => return Ok(out),
                Err(e) => return Err(e),
            };
            out.extend(page.bulks);
            match page.next.filter(|n| !n.is_empty()) {
                Some(n) if seen.insert(n.clone()) => next = Some(n),
                _ => return Ok(out),
            }
        }
    }

    /// What Fusion's history says of the bulk request named `title`.
    pub(super) async fn recover_bulk(
        &self,
        title: &str,
        items: &[Value],
    ) -> Result<Option<Vec<BulkOutcome>>, ConnectorError> {
        let Some(job) = self
            .bulk_history(title)
            .await?
            .into_iter()
            .find(|b| b.title == title)
        else {
            return Ok(None);
        };
        let id = job.id.to_string();
        let r = Request::get(&["users", "bulk", &id]);
        let details: wire::BulkDetails = self.client.read(&r, &AtomicU64::new(0)).await?;
        let by_upn: HashMap<String, &str> = details
            .job_items
            .iter()
            .map(|i| (i.upn.to_lowercase(), i.status.as_str()))
            .collect();
        Ok(Some(
            items
                .iter()
                .map(|it| {
                    let upn = upn_of(it);
                    match by_upn.get(&upn.to_lowercase()) {
                        Some(s) if s.eq_ignore_ascii_case("success") => BulkOutcome::Done,
                        Some(_) => BulkOutcome::Failed {
                            code: "bulk".into(),
                            reason: format!(
                                "Fusion's bulk job {id} (its answer was lost) records an error for this user; see GET users/bulk/{id}"
                            ),
                        },
                        None => BulkOutcome::Failed {
                            code: "bulk".into(),
                            reason: format!(
                                "Fusion's bulk job {id} (its answer was lost) does not list this user"
                            ),
                        },
                    }
                })
                .collect(),
        ))
    }

    pub(super) async fn our_bulk_jobs(
        &self,
        prefix: &str,
    ) -> Result<Vec<BackendBulk>, ConnectorError> {
        Ok(self
            .bulk_history(prefix)
            .await?
            .into_iter()
            .filter(|b| b.title.starts_with(prefix))
            .map(|b| BackendBulk {
                id: b.id,
                job_id: code_text(&b.job_id),
                title: b.title,
            })
            .collect())
    }

    /// The list (all pages), with the single GET for `detail` only.
    pub(super) async fn read_back_users(
        &self,
        detail: &[Upn],
    ) -> Result<Vec<TenantUser>, ConnectorError> {
        let counter = AtomicU64::new(0);
        let users = self.list_users(None, &counter).await?;
        let wanted: std::collections::HashSet<&Upn> = detail.iter().collect();
        let counter_ref = &counter;
        crate::connector::read_details(
            users,
            |u| wanted.contains(&u.upn),
            super::DETAIL_CONCURRENCY,
            |id| async move { self.read_user_counted(&id, counter_ref).await },
            |_listed, d| d,
        )
        .await
    }
}

/// 403 (the token lacks the bulk role), 404 and 405 (no such endpoint), and a 400 that
/// is no bulk answer (the request itself refused).
pub(super) fn refused(e: &ConnectorError) -> bool {
    matches!(
        e,
        ConnectorError::Auth { status: 403, .. }
            | ConnectorError::Rejected {
                status: 400 | 404 | 405 | 413,
                ..
            }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Catalogs, Country, GroupInfo, LicenseInfo, UserSpec, E164};
    use crate::plan::model::{PlannedOp, UserAction};

    fn names() -> Names {
        let mut n = Names::default();
        n.catalogs(&Catalogs {
            groups: vec![
                GroupInfo {
                    id: "g1".into(),
                    display_name: "Sales".into(),
                },
                GroupInfo {
                    id: "g2".into(),
                    display_name: "Twin".into(),
                },
                GroupInfo {
                    id: "g3".into(),
                    display_name: "twin".into(),
                },
            ],
            licenses: vec![LicenseInfo {
                sku_id: "s1".into(),
                sku_part_number: "MCOEV".into(),
                sku_description: None,
                total: 1,
                free: 1,
            }],
            vrps: vec![],
        });
        n.display_names.insert(upn(), "Jane Doe".into());
        n.listed = true;
        n
    }
    fn upn() -> Upn {
        Upn::parse("jane@contoso.com").unwrap()
    }
    fn user(ops: Vec<Operation>) -> UserPlan {
        UserPlan {
            upn: upn(),
            user_id: Some("u-1".into()),
            action: UserAction::Update,
            desired: UserSpec::new(upn()),
            origin: None,
            changes: vec![],
            ops: ops
                .into_iter()
                .map(|op| PlannedOp {
                    op,
                    after: vec![],
                    awaited: false,
                })
                .collect(),
            before: Default::default(),
        }
    }
    fn steps(u: &UserPlan) -> Vec<Step> {
        (0..u.ops.len())
            .map(|i| Step {
                ops: vec![i],
                label: String::new(),
            })
            .collect()
    }
    fn num(n: Option<&str>) -> Operation {
        Operation::set_number(n.map(|n| E164::parse_canonical(n).unwrap()))
    }

    #[test]
    fn an_update_item_carries_names_and_the_listed_display_name() {
        let u = user(vec![
            num(Some("+3225405200")),
            Operation::set_groups(vec!["g1".into()]),
            Operation::set_licenses(vec!["s1".into()]),
            Operation::set_vrp(None),
        ]);
        let st = steps(&u);
        let refs: Vec<&Step> = st.iter().collect();
        assert_eq!(
            item(&u, &refs, &names()).unwrap(),
            json!({"upn": "jane@contoso.com", "displayName": "Jane Doe", "number": "+3225405200",
                "groups": ["Sales"], "licenses": ["MCOEV"], "vrp": null})
        );
    }

    #[test]
    fn what_an_item_cannot_carry_goes_per_user() {
        let n = names();
        // A group whose name another group shares (case-insensitively).
        let u = user(vec![Operation::set_groups(vec!["g2".into()])]);
        assert!(item(&u, &[&steps(&u)[0]], &n).is_none());
        // A release and a claim of a number.
        let u = user(vec![num(None), num(Some("+3225405200"))]);
        let st = steps(&u);
        assert!(item(&u, &[&st[0], &st[1]], &n).is_none());
        assert!(item(&u, &[&st[0]], &n).is_some());
        // Customer licenses next to a release.
        let u = user(vec![
            num(None),
            Operation::set_customer_licenses(vec!["c".into()]),
        ]);
        let st = steps(&u);
        assert!(item(&u, &[&st[0], &st[1]], &n).is_none());
        // A deletion; a user the snapshot did not list.
        let u = user(vec![Operation::Delete]);
        assert!(item(&u, &[&steps(&u)[0]], &n).is_none());
        let u = user(vec![Operation::set_vrp(None)]);
        assert!(item(&u, &[&steps(&u)[0]], &Names::default()).is_none());
    }

    #[test]
    fn a_create_goes_whole_and_names_what_the_default_template_would_add() {
        let create = Operation::create_user("New One".into(), Some(Country::parse("BE").unwrap()));
        let u = user(vec![create, num(Some("+3225405200"))]);
        let st = steps(&u);
        assert!(item(&u, &[&st[0]], &names()).is_none());
        assert_eq!(
            item(&u, &[&st[0], &st[1]], &names()).unwrap(),
            json!({"upn": "jane@contoso.com", "displayName": "New One", "country": "BE",
                "number": "+3225405200", "vrp": null, "groups": null, "licenses": null})
        );
    }

    #[test]
    fn answers_map_to_items_by_position_or_upn() {
        let items = vec![json!({"upn": "a@x.com"}), json!({"upn": "b@x.com"})];
        let a: wire::BulkAnswer = serde_json::from_value(json!({
            "details": [
                {"details": {}, "upn": "b@x.com"},
                {"error": {"code": 2095, "reason": "The template does not exist"}, "upn": "A@x.com"}
            ],
            "errors": [{"error": {"code": 2095, "reason": "The template does not exist"}, "upn": "a@x.com"}],
            "message": "Some errors detected"
        }))
        .unwrap();
        assert_eq!(
            outcomes(&a, &items).unwrap(),
            vec![
                BulkOutcome::Failed {
                    code: "2095".into(),
                    reason: "The template does not exist".into()
                },
                BulkOutcome::Done
            ]
        );
        let partial: wire::BulkAnswer = serde_json::from_value(
            json!({"details": [{"details": {}, "upn": "a@x.com"}], "message": "Success"}),
        )
        .unwrap();
        let e = outcomes(&partial, &items).unwrap_err();
        assert!(matches!(e, ConnectorError::Retryable { .. }), "{e}");
    }

    #[test]
    fn refusals_of_the_endpoint_are_told_apart() {
        let rej = |status| ConnectorError::Rejected {
            status,
            code: None,
            reason: String::new(),
        };
        assert!(refused(&ConnectorError::Auth {
            status: 403,
            message: String::new()
        }));
        assert!(!refused(&ConnectorError::Auth {
            status: 401,
            message: String::new()
        }));
        assert!(refused(&rej(404)) && refused(&rej(405)) && refused(&rej(400)));
        assert!(!refused(&rej(409)));
    }
}
