//! The user endpoints: list (continuation tokens, search, group and filters), single GET,
//! create, the full update and the per-aspect updates, delete and the voice check.
//!
//! Every write is validated completely against the tenant before anything changes, so a 400
//! leaves the tenant as it was (our reading: the document does not say whether a failing
//! full update is partially applied).

use std::ops::Bound;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, Code};
use super::extract::{get, query_params, Body};
use super::state::{check_country, Change, Tenant, User, DRAAS_STATUS};
use super::token::{self, Cursor};
use super::wire::{
    Check, CreateUser, Created, ListMsTeams, ListUser, PutGroups, PutLicenses, PutPhoneNumber,
    PutSkuIds, PutVrp, UpdateProperties, UpdateUser, UsersPage,
};
use super::{now_ms, Shared};

/// Largest `page_size` accepted (Microsoft Graph's `$top` limit, which Fusion fronts).
pub const MAX_PAGE_SIZE: u32 = 999;
pub const DEFAULT_PAGE_SIZE: u32 = 10;

/// The `{ms_user_id}` of the path, rejected in the API's error shape.
pub struct UserId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for UserId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        #[derive(Deserialize)]
        struct P {
            ms_user_id: String,
        }
        Path::<P>::from_request_parts(parts, state)
            .await
            .map(|p| UserId(p.0.ms_user_id))
            .map_err(|e| ApiError::bad(Code::BadValue, format!("Invalid path: {e}")))
    }
}

/// The `filters` query parameter: a JSON object (URL-encoded) with the document's
/// "MS Teams Users Filters" keys, e.g.
/// `filters={"country":["BE","NL"],"is_voice_enabled":"yes","have_number":"no"}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_voice_enabled: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub have_number: Option<String>,
}

fn parse_filters(raw: &str) -> Result<Filters, ApiError> {
    let f: Filters = serde_json::from_str(raw).map_err(|e| {
        ApiError::bad(
            Code::BadQuery,
            format!(
                "filters must be a JSON object of country / is_voice_enabled / have_number: {e}"
            ),
        )
    })?;
    if let Some(v) = &f.is_voice_enabled {
        if !["yes", "no", "maybe"].contains(&v.as_str()) {
            return Err(ApiError::bad(
                Code::BadQuery,
                "filters.is_voice_enabled must be yes, no or maybe",
            ));
        }
    }
    if let Some(v) = &f.have_number {
        if !["yes", "no"].contains(&v.as_str()) {
            return Err(ApiError::bad(
                Code::BadQuery,
                "filters.have_number must be yes or no",
            ));
        }
    }
    Ok(f)
}

fn matches(t: &Tenant, u: &User, search: Option<&str>, group: Option<&str>, f: &Filters) -> bool {
    if let Some(s) = search {
        if !u.display_name.to_lowercase().starts_with(s) {
            return false;
        }
    }
    if let Some(g) = group {
        if !u.groups.iter().any(|x| x == g) {
            return false;
        }
    }
    if let Some(cs) = &f.country {
        let loc = u.location.as_deref().unwrap_or("");
        if !cs.iter().any(|c| c.eq_ignore_ascii_case(loc)) {
            return false;
        }
    }
    if let Some(v) = &f.is_voice_enabled {
        if t.voice_enabled(&u.licenses) != v {
            return false;
        }
    }
    if let Some(h) = &f.have_number {
        if (h == "yes") != u.phone_number.is_some() {
            return false;
        }
    }
    true
}

fn list_user(t: &Tenant, u: &User) -> ListUser {
    ListUser {
        ms_teams: ListMsTeams {
            id: u.id.clone(),
            user_principal_name: u.upn.clone(),
            display_name: u.display_name.clone(),
            location: u.location.clone(),
            licenses: if u.licenses.is_empty() {
                None
            } else {
                Some(t.license_refs(&u.licenses))
            },
            roles: if u.roles.is_empty() {
                None
            } else {
                Some(u.roles.clone())
            },
            voice_enabled: t.voice_enabled(&u.licenses).to_string(),
        },
        draas: t.draas_of(u),
    }
}

/// `GET users`.
pub async fn list(State(sh): State<Arc<Shared>>, uri: Uri) -> Result<Json<UsersPage>, ApiError> {
    let params = query_params(
        uri.query(),
        &["page_size", "next", "search", "group", "refresh", "filters"],
    )?;
    let page_size = match get(&params, "page_size") {
        None => DEFAULT_PAGE_SIZE,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => {
                return Err(ApiError::bad(
                    Code::BadQuery,
                    format!("page_size must be an integer from 1 to {MAX_PAGE_SIZE}"),
                ))
            }
        },
    };
    if let Some(v) = get(&params, "refresh") {
        if !["true", "false"].contains(&v) {
            return Err(ApiError::bad(
                Code::BadQuery,
                "refresh must be true or false",
            ));
        }
    }
    let search = get(&params, "search").map(str::to_string);
    let group = get(&params, "group").map(str::to_string);
    let filters = match get(&params, "filters") {
        Some(raw) => Some(parse_filters(raw)?),
        None => None,
    };
    let filters_key = filters
        .as_ref()
        .map(|f| serde_json::to_string(f).unwrap_or_default());
    let after = match get(&params, "next") {
        None => None,
        Some(tok) => {
            let c = token::open(&sh.token_key, tok)
                .ok_or_else(|| ApiError::bad(Code::BadToken, "The next token is invalid"))?;
            if c.page_size != page_size
                || c.search != search
                || c.group != group
                || c.filters != filters_key
            {
                return Err(ApiError::bad(
                    Code::BadToken,
                    "The next token is only valid with the page_size, search, group and filters \
                     of the query that returned it",
                ));
            }
            Some(c.after)
        }
    };
    let now = now_ms();
    let search_lc = search.as_ref().map(|s| s.to_lowercase());
    let f = filters.clone().unwrap_or_default();
    let page = sh.read(|t| -> Result<UsersPage, ApiError> {
        if let Some(g) = &group {
            if t.group(g).is_none() {
                return Err(ApiError::bad(
                    Code::UnknownGroup,
                    format!("Group {g} does not exist"),
                ));
            }
        }
        let group_id = group
            .as_ref()
            .and_then(|g| t.group(g))
            .map(|g| g.id.clone());
        let lower = match &after {
            Some(a) => Bound::Excluded(a.clone()),
            None => Bound::Unbounded,
        };
        let mut users = Vec::new();
        let mut more = false;
        for u in t.users.range((lower, Bound::Unbounded)).map(|(_, u)| u) {
            if u.visible_at_ms > now
                || !t.passes_group_filter(u)
                || !matches(t, u, search_lc.as_deref(), group_id.as_deref(), &f)
            {
                continue;
            }
            if users.len() == page_size as usize {
                more = true;
                break;
            }
            users.push(list_user(t, u));
        }
        let next = match (more, users.last()) {
            (true, Some(last)) => Some(token::issue(
                &sh.token_key,
                &Cursor {
                    after: last.ms_teams.id.clone(),
                    page_size,
                    search: search.clone(),
                    group: group.clone(),
                    filters: filters_key.clone(),
                },
            )),
            _ => None,
        };
        Ok(UsersPage { next, users })
    })?;
    Ok(Json(page))
}

/// `GET user/{id}`.
pub async fn get_one(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Response, ApiError> {
    query_params(uri.query(), &[])?;
    let now = now_ms();
    let body = sh.read(|t| t.visible_user(&id, now).map(|u| t.single_user(u)))?;
    Ok(Json(body).into_response())
}

/// `GET users/{id}/check`.
pub async fn check(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    uri: Uri,
) -> Result<Json<Check>, ApiError> {
    query_params(uri.query(), &[])?;
    let now = now_ms();
    let voice = sh.read(|t| {
        t.visible_user(&id, now)
            .map(|u| t.voice_enabled(&u.licenses) == "yes")
    })?;
    Ok(Json(Check {
        voice_enabled: voice,
    }))
}

pub(crate) fn check_display_name(s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > 256 {
        return Err(ApiError::bad(
            Code::BadValue,
            "displayName must be 1 to 256 characters",
        ));
    }
    Ok(s.to_string())
}

pub(crate) fn check_customer_licenses(list: &[String]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for c in list {
        let c = c.trim();
        if c.is_empty() || c.len() > 64 {
            return Err(ApiError::bad(
                Code::BadValue,
                "customerLicenses entries must be 1 to 64 characters",
            ));
        }
        if !out.iter().any(|x| x == c) {
            out.push(c.to_string());
        }
    }
    Ok(out)
}

/// Entra ID's UPN local-part alphabet: letters, digits and `' . - _ ! # ^ ~`.
pub(crate) fn check_username(s: &str) -> Result<(), ApiError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-'!#^~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad(
            Code::BadValue,
            format!("username {s:?} is not a valid user name"),
        ))
    }
}

/// A user just created: a fresh id and draas id, nothing assigned, invisible for `delay_ms`.
pub(crate) fn new_user(
    change: &mut Change,
    upn: String,
    display_name: String,
    location: Option<String>,
    customer_licenses: Vec<String>,
    delay_ms: u64,
) -> User {
    let draas_id = change.next_draas_id;
    change.next_draas_id += 1;
    User {
        id: uuid::Uuid::new_v4().to_string(),
        upn,
        display_name,
        location,
        licenses: Vec::new(),
        groups: Vec::new(),
        roles: Vec::new(),
        vrp: None,
        phone_number: None,
        connection_id: None,
        draas_id,
        customer_licenses,
        status: DRAAS_STATUS.to_string(),
        visible_at_ms: now_ms() + i64::try_from(delay_ms).unwrap_or(i64::MAX / 2),
    }
}

/// `POST users`.
pub async fn create(
    State(sh): State<Arc<Shared>>,
    Body(b): Body<CreateUser>,
) -> Result<Response, ApiError> {
    let display_name = check_display_name(&b.display_name)?;
    check_username(&b.username)?;
    check_country(&b.location)?;
    let customer = check_customer_licenses(b.customer_licenses.as_deref().unwrap_or(&[]))?;
    let delay = sh.edge.opts.replication_delay_ms;
    let id = sh.write(|t, change| {
        let Some(domain) = t.domains.iter().find(|d| d.eq_ignore_ascii_case(&b.domain)) else {
            return Err(ApiError::bad(
                Code::DomainNotVerified,
                format!("Domain {} is not a verified domain of the tenant", b.domain),
            ));
        };
        let upn = format!("{}@{}", b.username, domain);
        if t.upn_index.contains_key(&upn.to_lowercase()) {
            return Err(ApiError::bad(
                Code::UserExists,
                format!("User {upn} already exists"),
            ));
        }
        let u = new_user(
            change,
            upn,
            display_name,
            Some(b.location.clone()),
            customer,
            delay,
        );
        let id = u.id.clone();
        change.upsert_users.push(u);
        Ok(id)
    })?;
    Ok((StatusCode::CREATED, Json(Created { ms_teams_id: id })).into_response())
}

/// Runs `f` on a copy of the visible user `id` and commits the result.
pub(crate) fn update_user<R>(
    sh: &Shared,
    id: &str,
    f: impl FnOnce(&Tenant, &mut Change, &mut User) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let now = now_ms();
    sh.write(|t, change| {
        let mut u = t.visible_user(id, now)?.clone();
        let r = f(t, change, &mut u)?;
        change.upsert_users.push(u);
        Ok(r)
    })
}

/// Applies the full update's fields to `u` (a copy), in the order their rules need: location
/// before licenses, licenses before the number. Shared with the bulk update.
pub(crate) fn apply_update(
    t: &Tenant,
    change: &mut Change,
    u: &mut User,
    b: &UpdateUser,
) -> Result<(), ApiError> {
    if let Some(n) = &b.display_name {
        u.display_name = check_display_name(n)?;
    }
    if let Some(l) = &b.location {
        check_country(l)?;
        u.location = Some(l.clone());
    }
    if let Some(l) = &b.licenses {
        let list = l.as_deref().unwrap_or(&[]);
        u.licenses = t.check_licenses(list, &u.licenses, u.location.as_deref())?;
    }
    if let Some(n) = &b.phone_number {
        t.set_user_number(change, u, n.as_deref())?;
    }
    if let Some(g) = &b.groups {
        u.groups = t.check_groups(g.as_deref().unwrap_or(&[]))?;
    }
    if let Some(v) = &b.vrp {
        if let Some(v) = v {
            t.check_vrp(v)?;
        }
        u.vrp.clone_from(v);
    }
    if let Some(c) = &b.customer_licenses {
        u.customer_licenses = check_customer_licenses(c)?;
    }
    Ok(())
}

/// `PUT users/{id}`: 200 when the user ends with a number (enabled), 204 when without.
pub async fn update(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    Body(b): Body<UpdateUser>,
) -> Result<Response, ApiError> {
    let enabled = update_user(&sh, &id, |t, change, u| {
        apply_update(t, change, u, &b)?;
        Ok(u.phone_number.is_some())
    })?;
    Ok(if enabled {
        StatusCode::OK.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    })
}

/// `PUT users/{id}/properties`.
pub async fn properties(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    Body(b): Body<UpdateProperties>,
) -> Result<StatusCode, ApiError> {
    update_user(&sh, &id, |_, _, u| {
        if let Some(n) = &b.display_name {
            u.display_name = check_display_name(n)?;
        }
        if let Some(l) = &b.location {
            check_country(l)?;
            u.location = Some(l.clone());
        }
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT users/{id}/groups`: replaces the whole set.
pub async fn groups(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    Body(b): Body<PutGroups>,
) -> Result<StatusCode, ApiError> {
    update_user(&sh, &id, |t, _, u| {
        u.groups = t.check_groups(&b.groups)?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

fn set_licenses(sh: &Shared, id: &str, list: &[String]) -> Result<StatusCode, ApiError> {
    update_user(sh, id, |t, _, u| {
        u.licenses = t.check_licenses(list, &u.licenses, u.location.as_deref())?;
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT users/{id}/licenses`: replaces the whole set.
pub async fn licenses(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    Body(b): Body<PutLicenses>,
) -> Result<StatusCode, ApiError> {
    set_licenses(&sh, &id, &b.licenses)
}

/// `PUT {ms_user_id}/licenses` with `skuIds` ("Manage user licenses"): the full list.
pub async fn sku_ids(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    Body(b): Body<PutSkuIds>,
) -> Result<StatusCode, ApiError> {
    set_licenses(&sh, &id, &b.sku_ids)
}

/// `PUT users/{id}/phone_number`.
pub async fn phone_number(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    Body(b): Body<PutPhoneNumber>,
) -> Result<StatusCode, ApiError> {
    let number = b.phone_number.flatten();
    update_user(&sh, &id, |t, change, u| {
        t.set_user_number(change, u, number.as_deref())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT users/{id}/vrp`.
pub async fn vrp(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
    Body(b): Body<PutVrp>,
) -> Result<StatusCode, ApiError> {
    let vrp = b.vrp.flatten();
    update_user(&sh, &id, |t, _, u| {
        if let Some(v) = &vrp {
            t.check_vrp(v)?;
        }
        u.vrp.clone_from(&vrp);
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE users/{id}`: the number returns to the inventory, the licenses are freed.
pub async fn delete(
    State(sh): State<Arc<Shared>>,
    UserId(id): UserId,
) -> Result<StatusCode, ApiError> {
    let now = now_ms();
    sh.write(|t, change| {
        t.visible_user(&id, now)?;
        change.delete_users.push(id.clone());
        Ok(())
    })?;
    Ok(StatusCode::NO_CONTENT)
}
