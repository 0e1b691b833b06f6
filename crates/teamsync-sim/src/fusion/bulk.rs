//! The bulk update (`PUT users/bulk`) and its job history (`GET users/bulk`,
//! `GET users/bulk/{bulk_id}`): the model teamsync's own job history copies.
//!
//! Each item is applied on its own, in order, all or nothing for that item (like the single
//! update), so a later item sees the earlier ones' effects; the job and its items are
//! recorded whatever the outcome.
//!
//! Our readings:
//! - Items carry names, not ids, resolved as Fusion's UI shows them: groups by displayName,
//!   licenses by skuPartNumber (or, failing that, skuDescription), both case-insensitively; a
//!   name matching two groups or licenses is that item's error ("ambiguous"); the VRP by
//!   identity; the template by its exact name (unknown: the document's 2095 "The template does
//!   not exist").
//! - A template overrides the item's country, vrp, groups and licenses wherever it names them
//!   (the bulk object's table: "if provided country, vrp, groups and licenses will be
//!   overridden") — Fusion's rule, unlike teamsync's sheet templates where the row wins.
//! - Absent fields are left as they are; `null` clears (number: the voice service and number
//!   are released; groups, licenses, customerLicenses: all removed; vrp: disabled).
//! - A UPN no user has is created (its domain must be verified, its local part valid): it
//!   starts from the default template (id 0, in add mode), then the item applies; it needs a
//!   country from one of them. A created user is subject to the replication delay like one
//!   made by `POST users`. A UPN of a resource account is the item's error.
//! - Answers: 200 all succeeded, 207 some, 400 none — all three in the document's bulk shape
//!   (`details` for every item in order, `errors` for the failed ones, absent on full success,
//!   `message` "Success" / "Some errors detected" / "No MS Teams user could be updated"). A
//!   request that is not a bulk at all (bad JSON, no name, empty or over 10,000 items, a body
//!   over 2 MiB — axum's default limit, every body has it) is a plain 400 in the API's error
//!   shape and records nothing.
//! - A malformed item (unknown field, wrong type, missing upn or displayName) is that item's
//!   error (code 1000); its `upn` is the item's `upn` when it is a string, else "".
//! - The job: `kind` "ms_users", `title` the request's `name`, `job_id` a string (the table
//!   and the history example; one details example has a number) holding the Unix time in
//!   seconds of its creation, bumped so it stays unique; `status` "success", "partial" or
//!   "error" (the table's list is cut after "partial"); items' `status` "success" or
//!   "error" and `data` the item exactly as sent. Times are UTC without zone, microseconds,
//!   like the examples.
//! - History: newest first; `search` is a case-insensitive substring of title or kind;
//!   `filters` a URL-encoded JSON object `{"kind": "ms_users"}` (the document names no keys;
//!   that one is ours); `page_size` 1..=999, default 10; `next` is bound to page_size, search
//!   and filters like the users list's. `results` counts the matching jobs, `pages` is
//!   ceil(results / page_size) (at least 1), `page` the 1-based page this answer is. No job at
//!   all is a 200 with an empty list (the document's 404 is kept for an unknown tenant).
//! - The history endpoints answer both at the document's literal path, without the
//!   `/api/v01/draas` prefix, and under it.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Code};
use super::extract::{get, int_path_param, query_params, Body};
use super::state::{Tenant, User};
use super::templates::{self, DEFAULT_TEMPLATE_ID};
use super::token::{self, Cursor};
use super::users::{
    apply_update, check_display_name, check_username, new_user, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};
use super::wire::{
    BulkAnswer, BulkErrorInner, BulkItem, BulkJob, BulkJobItem, BulkOutcome, BulkPage, BulkSummary,
    PutBulk, UpdateUser,
};
use super::{now_ms, Shared};

pub const KIND_USERS: &str = "ms_users";
pub const KIND_RESOURCE_ACCOUNTS: &str = "ms_resource_accounts";
/// Most items one bulk request may carry (ours).
pub const MAX_ITEMS: usize = 10_000;
/// The document's required roles of the bulk update, its history and its details.
pub const ROLE_BULK: &str = "tenants.instance.subscriptions.instance.msteams.users.bulk";
pub const ROLE_BULK_JOBS: &str = "tenants.instance.subscriptions.instance.msteams.users.bulk.jobs";
pub const ROLE_BULK_DETAILS: &str =
    "tenants.instance.subscriptions.instance.msteams.users.bulk.jobs.details";

/// `2024-08-06T11:37:28.280607`: the document's timestamps (UTC, no zone).
pub fn stamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

/// The one id a name resolved to; none or several is the item's error.
fn one_hit(hits: &[&str], kind: &str, name: &str, unknown: Code) -> Result<String, ApiError> {
    match hits {
        [one] => Ok((*one).to_string()),
        [] => Err(ApiError::bad(
            unknown,
            format!("{kind} {name} does not exist"),
        )),
        many => Err(ApiError::bad(
            Code::AmbiguousName,
            format!(
                "{kind} name {name:?} is ambiguous: {} {kind}s have it",
                many.len()
            ),
        )),
    }
}

/// Group names to ids (displayName, case-insensitive, exactly one match).
pub fn resolve_groups(t: &Tenant, names: &[String]) -> Result<Vec<String>, ApiError> {
    names
        .iter()
        .map(|n| {
            let n = n.trim();
            let hits: Vec<&str> = t
                .groups
                .iter()
                .filter(|g| g.display_name.eq_ignore_ascii_case(n))
                .map(|g| g.id.as_str())
                .collect();
            one_hit(&hits, "Group", n, Code::UnknownGroup)
        })
        .collect()
}

/// License names to skuIds (skuPartNumber, else skuDescription; case-insensitive).
pub fn resolve_licenses(t: &Tenant, names: &[String]) -> Result<Vec<String>, ApiError> {
    names
        .iter()
        .map(|n| {
            let n = n.trim();
            let by = |f: fn(&super::wire::LicenseObj) -> &str| -> Vec<&str> {
                t.licenses
                    .iter()
                    .filter(|l| f(l).eq_ignore_ascii_case(n))
                    .map(|l| l.sku_id.as_str())
                    .collect()
            };
            let mut hits = by(|l| &l.sku_part_number);
            if hits.is_empty() {
                hits = by(|l| &l.sku_description);
            }
            one_hit(&hits, "License", n, Code::UnknownLicense)
        })
        .collect()
}

/// A groups or licenses field: the template's ids when it names them, else the item's names
/// resolved (absent: keep; null: clear).
fn list_field(
    t: &Tenant,
    from_template: Option<Vec<String>>,
    item: &Option<Option<Vec<String>>>,
    resolve: fn(&Tenant, &[String]) -> Result<Vec<String>, ApiError>,
) -> Result<Option<Option<Vec<String>>>, ApiError> {
    Ok(match (from_template, item) {
        (Some(ids), _) => Some(Some(ids)),
        (None, Some(Some(names))) => Some(Some(resolve(t, names)?)),
        (None, other) => other.clone(),
    })
}

/// The full update an item stands for, names resolved and the template's values winning.
fn item_update(t: &Tenant, item: &BulkItem, display_name: String) -> Result<UpdateUser, ApiError> {
    let tpl = match &item.template {
        Some(name) => Some(t.template_by_name(name).ok_or_else(templates::not_found)?),
        None => None,
    };
    let groups = list_field(
        t,
        tpl.and_then(|x| x.groups.clone()),
        &item.groups,
        resolve_groups,
    )?;
    let licenses = list_field(
        t,
        tpl.and_then(|x| x.licenses.clone()),
        &item.licenses,
        resolve_licenses,
    )?;
    Ok(UpdateUser {
        display_name: Some(display_name),
        location: tpl
            .and_then(|x| x.location.clone())
            .or_else(|| item.country.clone()),
        phone_number: item.number.clone(),
        groups,
        vrp: match tpl.and_then(|x| x.vrp.clone()) {
            Some(v) => Some(Some(v)),
            None => item.vrp.clone(),
        },
        licenses,
        customer_licenses: item
            .customer_licenses
            .clone()
            .map(Option::unwrap_or_default),
    })
}

/// The user an item updates, or a new one when its UPN is free.
fn target_user(
    t: &Tenant,
    change: &mut super::state::Change,
    upn: &str,
    display_name: &str,
    country: Option<&str>,
    delay_ms: u64,
) -> Result<User, ApiError> {
    if let Some(id) = t.upn_index.get(&upn.to_lowercase()) {
        if !t.users.contains_key(id) {
            return Err(ApiError::bad(
                Code::NotAUser,
                format!("{upn} is a resource account, not a user"),
            ));
        }
        return Ok(t.visible_user(id, now_ms())?.clone());
    }
    let Some((local, domain)) = upn.split_once('@') else {
        return Err(ApiError::bad(
            Code::BadValue,
            format!("upn {upn:?} is not local@domain"),
        ));
    };
    check_username(local)?;
    let Some(domain) = t.domains.iter().find(|d| d.eq_ignore_ascii_case(domain)) else {
        return Err(ApiError::bad(
            Code::DomainNotVerified,
            format!("Domain {domain} is not a verified domain of the tenant"),
        ));
    };
    let mut u = new_user(
        change,
        format!("{local}@{domain}"),
        display_name.to_string(),
        country.map(str::to_string),
        Vec::new(),
        delay_ms,
    );
    // Add mode: the default template fills in only what the item leaves open (its licenses
    // can then use the item's country).
    if let Some(d) = t.template(DEFAULT_TEMPLATE_ID) {
        templates::apply(t, &mut u, d, false)?;
    }
    if u.location.is_none() {
        return Err(ApiError::bad(
            Code::BadValue,
            format!("{upn} does not exist and creating it needs a country"),
        ));
    }
    Ok(u)
}

fn run_item(sh: &Shared, raw: &serde_json::Value) -> Result<(), ApiError> {
    let item: BulkItem = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad(Code::BadBody, format!("Invalid item: {e}")))?;
    let upn = item.upn.trim().to_string();
    let display_name = check_display_name(&item.display_name)?;
    let delay = sh.edge.opts.replication_delay_ms;
    sh.write(|t, change| {
        let upd = item_update(t, &item, display_name.clone())?;
        let mut u = target_user(
            t,
            change,
            &upn,
            &display_name,
            upd.location.as_deref(),
            delay,
        )?;
        apply_update(t, change, &mut u, &upd)?;
        change.upsert_users.push(u);
        Ok(())
    })
}

/// `PUT users/bulk`.
pub async fn put(
    State(sh): State<Arc<Shared>>,
    uri: Uri,
    Body(b): Body<PutBulk>,
) -> Result<Response, ApiError> {
    sh.require_role(ROLE_BULK)?;
    query_params(uri.query(), &[])?;
    let title = b.name.trim().to_string();
    if title.is_empty() || title.chars().count() > 256 {
        return Err(ApiError::bad(
            Code::BadValue,
            "name must be 1 to 256 characters",
        ));
    }
    if b.data.is_empty() || b.data.len() > MAX_ITEMS {
        return Err(ApiError::bad(
            Code::BadValue,
            format!("data must hold 1 to {MAX_ITEMS} users"),
        ));
    }
    let created_on = stamp();
    let mut outcomes = Vec::with_capacity(b.data.len());
    let mut items = Vec::with_capacity(b.data.len());
    for raw in b.data {
        let upn = raw
            .get("upn")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string();
        let result = run_item(&sh, &raw);
        let at = stamp();
        items.push(BulkJobItem {
            id: 0,
            upn: upn.clone(),
            data: raw,
            status: if result.is_ok() { "success" } else { "error" }.to_string(),
            created_on: at.clone(),
            updated_on: at,
        });
        outcomes.push(match result {
            Ok(()) => BulkOutcome::Ok {
                details: serde_json::Map::new(),
                upn,
            },
            Err(e) => BulkOutcome::Err {
                error: BulkErrorInner {
                    code: e.code as i64,
                    reason: e.reason,
                },
                upn,
            },
        });
    }
    let total = items.len() as i64;
    let success = items.iter().filter(|i| i.status == "success").count() as i64;
    let status = if success == total {
        "success"
    } else if success > 0 {
        "partial"
    } else {
        "error"
    };
    sh.write(|t, change| {
        let id = t.bulk_jobs.keys().next_back().copied().unwrap_or(0) + 1;
        let first_item = t
            .bulk_jobs
            .values()
            .flat_map(|j| j.job_items.iter().map(|i| i.id))
            .max()
            .unwrap_or(0)
            + 1;
        for (it, n) in items.iter_mut().zip(first_item..) {
            it.id = n;
        }
        let last_job_id = t
            .bulk_jobs
            .values()
            .filter_map(|j| j.job_id.parse::<i64>().ok())
            .max()
            .unwrap_or(0);
        let job_id = (chrono::Utc::now().timestamp()).max(last_job_id + 1);
        change.upsert_bulk_jobs.push(BulkJob {
            id,
            job_id: job_id.to_string(),
            title: title.clone(),
            kind: KIND_USERS.to_string(),
            status: status.to_string(),
            total_count: total,
            success_count: success,
            job_items: std::mem::take(&mut items),
            updated_on: stamp(),
            created_on: created_on.clone(),
        });
        Ok(())
    })?;
    let errors: Vec<BulkOutcome> = outcomes
        .iter()
        .filter(|o| matches!(o, BulkOutcome::Err { .. }))
        .cloned()
        .collect();
    let (code, message) = if errors.is_empty() {
        (StatusCode::OK, "Success")
    } else if success > 0 {
        (StatusCode::MULTI_STATUS, "Some errors detected")
    } else {
        (StatusCode::BAD_REQUEST, "No MS Teams user could be updated")
    };
    let answer = BulkAnswer {
        details: outcomes,
        errors: if errors.is_empty() {
            None
        } else {
            Some(errors)
        },
        message: message.to_string(),
    };
    Ok((code, Json(answer)).into_response())
}

/// `filters` of the history: a JSON object, `{"kind": "ms_users"}`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryFilters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

fn summary(j: &BulkJob) -> BulkSummary {
    BulkSummary {
        id: j.id,
        job_id: j.job_id.clone(),
        kind: j.kind.clone(),
        title: j.title.clone(),
        created_on: j.created_on.clone(),
        updated_on: j.updated_on.clone(),
    }
}

/// `GET users/bulk`.
pub async fn history(State(sh): State<Arc<Shared>>, uri: Uri) -> Result<Json<BulkPage>, ApiError> {
    sh.require_role(ROLE_BULK_JOBS)?;
    let params = query_params(uri.query(), &["page_size", "next", "search", "filters"])?;
    let page_size = match get(&params, "page_size") {
        None => DEFAULT_PAGE_SIZE,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                ApiError::bad(
                    Code::BadQuery,
                    format!("page_size must be an integer from 1 to {MAX_PAGE_SIZE}"),
                )
            })?,
    };
    let search = get(&params, "search").map(str::to_string);
    let filters: Option<HistoryFilters> = match get(&params, "filters") {
        None => None,
        Some(raw) => Some(serde_json::from_str(raw).map_err(|e| {
            ApiError::bad(
                Code::BadQuery,
                format!("filters must be a JSON object with at most kind: {e}"),
            )
        })?),
    };
    if let Some(k) = filters.as_ref().and_then(|f| f.kind.as_deref()) {
        if k != KIND_USERS && k != KIND_RESOURCE_ACCOUNTS {
            return Err(ApiError::bad(
                Code::BadQuery,
                format!("filters.kind must be {KIND_USERS} or {KIND_RESOURCE_ACCOUNTS}"),
            ));
        }
    }
    let filters_key = filters
        .as_ref()
        .map(|f| serde_json::to_string(f).unwrap_or_default());
    let after: Option<i64> = match get(&params, "next") {
        None => None,
        Some(tok) => {
            let c = token::open(&sh.token_key, tok)
                .filter(|c| c.group.as_deref() == Some(KIND_USERS_TOKEN))
                .ok_or_else(|| ApiError::bad(Code::BadToken, "The next token is invalid"))?;
            if c.page_size != page_size || c.search != search || c.filters != filters_key {
                return Err(ApiError::bad(
                    Code::BadToken,
                    "The next token is only valid with the page_size, search and filters of \
                     the query that returned it",
                ));
            }
            Some(
                c.after
                    .parse()
                    .map_err(|_| ApiError::bad(Code::BadToken, "The next token is invalid"))?,
            )
        }
    };
    let needle = search.as_ref().map(|s| s.to_lowercase());
    let kind = filters.and_then(|f| f.kind);
    let page = sh.read(|t| {
        let matching: Vec<&BulkJob> = t
            .bulk_jobs
            .values()
            .rev()
            .filter(|j| {
                needle.as_ref().is_none_or(|n| {
                    j.title.to_lowercase().contains(n) || j.kind.to_lowercase().contains(n)
                }) && kind.as_ref().is_none_or(|k| *k == j.kind)
            })
            .collect();
        let start = match after {
            None => 0,
            Some(a) => matching.iter().take_while(|j| j.id >= a).count(),
        };
        let size = page_size as usize;
        let bulks: Vec<BulkSummary> = matching
            .iter()
            .skip(start)
            .take(size)
            .map(|j| summary(j))
            .collect();
        let more = start + bulks.len() < matching.len();
        let next = match (more, bulks.last()) {
            (true, Some(last)) => Some(token::issue(
                &sh.token_key,
                &Cursor {
                    after: last.id.to_string(),
                    page_size,
                    search: search.clone(),
                    group: Some(KIND_USERS_TOKEN.to_string()),
                    filters: filters_key.clone(),
                },
            )),
            _ => None,
        };
        let results = matching.len() as u64;
        BulkPage {
            bulks,
            next,
            page: (start / size) as u64 + 1,
            pages: results.div_ceil(u64::from(page_size)).max(1),
            results,
        }
    });
    Ok(Json(page))
}

/// Marks a continuation token as the bulk history's (in the cursor's `group` slot, which the
/// users list fills with a group id), so a users-list token is refused here and the reverse.
const KIND_USERS_TOKEN: &str = "#bulk-history";

/// The `{bulk_id}` of the path: an integer.
pub struct BulkId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for BulkId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        int_path_param(parts, state, "bulk_id").await.map(BulkId)
    }
}

/// `GET users/bulk/{bulk_id}`.
pub async fn details(
    State(sh): State<Arc<Shared>>,
    BulkId(id): BulkId,
    uri: Uri,
) -> Result<Json<BulkJob>, ApiError> {
    sh.require_role(ROLE_BULK_DETAILS)?;
    query_params(uri.query(), &[])?;
    sh.read(|t| t.bulk_jobs.get(&id).cloned())
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                Code::UnknownBulk,
                format!("No bulk history found with id {id}"),
            )
        })
}
