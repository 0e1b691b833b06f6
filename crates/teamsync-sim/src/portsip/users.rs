//! The user endpoints: list (paged), create, get, modify.
//!
//! Every write is validated completely before anything changes, against the document's
//! rules in [`super::rules`]; the body must be `Content-Type: application/json`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use super::error::{ApiError, Code};
use super::rules;
use super::store::{hash_secret, Record};
use super::wire::{Created, ListAnswer, Settings, UserObj, CREATE_ONLY};
use super::Shared;

/// Largest `pagesize` accepted; also the default's ceiling.
pub const MAX_PAGE_SIZE: u64 = 100;
pub const DEFAULT_PAGE_SIZE: u64 = 20;

fn query_map(raw: Option<&str>, allowed: &[&str]) -> Result<HashMap<String, String>, ApiError> {
    let mut out = HashMap::new();
    let Some(raw) = raw.filter(|q| !q.is_empty()) else {
        return Ok(out);
    };
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad(
                Code::BadQuery,
                format!(
                    "unknown query parameter {k:?} (allowed: {})",
                    allowed.join(", ")
                ),
            ));
        }
        if out.insert(k.to_string(), v.to_string()).is_some() {
            return Err(ApiError::bad(
                Code::BadQuery,
                format!("query parameter {k:?} given twice"),
            ));
        }
    }
    Ok(out)
}

fn number_param(
    q: &HashMap<String, String>,
    key: &str,
    default: u64,
    max: u64,
) -> Result<u64, ApiError> {
    match q.get(key) {
        None => Ok(default),
        Some(v) => match v.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(
                Code::BadQuery,
                format!("{key} must be an integer from 1 to {max}, got {v:?}"),
            )),
        },
    }
}

/// `GET /api/users?pagination=<page, 1-based>&pagesize=<1..=100>` → `{count, items}`,
/// in id order; a page past the end has no items.
pub async fn list(
    State(sh): State<Arc<Shared>>,
    RawQuery(q): RawQuery,
) -> Result<Json<ListAnswer>, ApiError> {
    let q = query_map(q.as_deref(), &["pagination", "pagesize"])?;
    let page = number_param(&q, "pagination", 1, u64::from(u32::MAX))?;
    let size = number_param(&q, "pagesize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)?;
    let skip = usize::try_from((page - 1).saturating_mul(size)).unwrap_or(usize::MAX);
    let answer = sh.read(|t| ListAnswer {
        count: t.users.len() as u64,
        items: t
            .users
            .values()
            .skip(skip)
            .take(size as usize)
            .map(|r| r.user.clone())
            .collect(),
    });
    Ok(Json(answer))
}

pub async fn get_one(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Json<UserObj>, ApiError> {
    sh.read(|t| t.get(&id).map(|r| r.user.clone()))
        .map(Json)
        .ok_or_else(|| ApiError::not_found(&id))
}

/// The JSON object of a write's body.
fn body_object(headers: &HeaderMap, body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
    if !json {
        return Err(ApiError::bad(
            Code::BadBody,
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::bad(
            Code::BadBody,
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad(
            Code::BadBody,
            format!("the body is not JSON: {e}"),
        )),
    }
}

fn settings_from(rest: Map<String, Value>) -> Result<Settings, ApiError> {
    serde_json::from_value(Value::Object(rest))
        .map_err(|e| ApiError::bad(Code::BadBody, format!("invalid body: {e}")))
}

fn take_string(m: &mut Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match m.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ApiError::bad(
            Code::BadBody,
            format!("{key} must be a string"),
        )),
    }
}

fn required(v: Option<String>, key: &str) -> Result<String, ApiError> {
    v.ok_or_else(|| ApiError::bad(Code::MissingField, format!("{key} is required")))
}

/// Values a stored user shows for settings it was never given.
pub fn fill_defaults(s: &mut Settings) {
    fn str(v: &mut Option<String>, d: &str) {
        v.get_or_insert_with(|| d.to_string());
    }
    str(&mut s.email, "");
    str(&mut s.display_name, "");
    s.enabled.get_or_insert(true);
    str(&mut s.mobile_phone_number, "");
    str(&mut s.office_phone_number, "");
    str(&mut s.home_phone_number, "");
    str(&mut s.address, "");
    str(&mut s.department, "");
    for b in [
        &mut s.enable_audio_recording_calls,
        &mut s.enable_video_recording_calls,
        &mut s.enable_dnd,
        &mut s.enable_acb,
        &mut s.enable_hot_desking,
        &mut s.always_anonymous,
        &mut s.always_deliver_outbound_caller_id,
    ] {
        b.get_or_insert(false);
    }
    str(&mut s.sms_mode, "DISABLE");
    s.outbound_caller_ids.get_or_insert_with(Vec::new);
    str(&mut s.custom_options, "{}");
    str(&mut s.language, "en-US");
}

/// Later values win, field by field.
fn merge(into: &mut Settings, from: Settings) {
    macro_rules! take {
        ($($f:ident),*) => { $( if from.$f.is_some() { into.$f = from.$f; } )* };
    }
    take!(
        email,
        display_name,
        enabled,
        mobile_phone_number,
        office_phone_number,
        home_phone_number,
        address,
        department,
        enable_audio_recording_calls,
        enable_video_recording_calls,
        enable_dnd,
        enable_acb,
        enable_hot_desking,
        always_anonymous,
        always_deliver_outbound_caller_id,
        sms_mode,
        outbound_caller_ids,
        custom_options,
        language
    );
}

/// Name and extension must be unique (names case-insensitively); `except` is the user
/// being checked against itself.
pub fn check_unique(
    users: &std::collections::BTreeMap<u64, Record>,
    name: &str,
    ext: &str,
    except: Option<&str>,
) -> Result<(), ApiError> {
    for r in users
        .values()
        .filter(|r| Some(r.user.id.as_str()) != except)
    {
        if r.user.name.eq_ignore_ascii_case(name) {
            return Err(ApiError::conflict(
                Code::UserNameExists,
                format!("a user named {name:?} already exists"),
            ));
        }
        if r.user.extension_number == ext {
            return Err(ApiError::conflict(
                Code::ExtensionNumberExists,
                format!("extension number {ext} is already taken"),
            ));
        }
    }
    Ok(())
}

/// `POST /api/users` → 201 `{"id"}`. Needs `name`, `password` and `extension_number`.
pub async fn create(
    State(sh): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mut m = body_object(&headers, &body)?;
    let name = required(take_string(&mut m, "name")?, "name")?;
    let password = required(take_string(&mut m, "password")?, "password")?;
    let ext = required(take_string(&mut m, "extension_number")?, "extension_number")?;
    let ext_password = take_string(&mut m, "extension_password")?;
    let role = take_string(&mut m, "role")?.unwrap_or_else(|| rules::DEFAULT_ROLE.into());
    if m.contains_key("id") {
        return Err(ApiError::bad(
            Code::ReadOnlyField,
            "id is assigned by the server",
        ));
    }
    let mut settings = settings_from(m)?;
    rules::user_name(&name)?;
    rules::extension_number(&ext)?;
    rules::password("password", &password)?;
    if let Some(p) = &ext_password {
        rules::password("extension_password", p)?;
    }
    rules::settings(&settings)?;
    fill_defaults(&mut settings);
    let password_hash = hash_secret(&password);
    let extension_password_hash = ext_password.as_deref().map(hash_secret);
    drop(password);
    drop(ext_password);
    let id = sh.write(|t| {
        rules::role(&role, &t.custom_roles)?;
        check_unique(&t.users, &name, &ext, None)?;
        let n = t.next_id;
        let rec = Record {
            user: UserObj {
                id: n.to_string(),
                name: name.clone(),
                role: role.clone(),
                extension_number: ext.clone(),
                settings,
            },
            password_hash: Some(password_hash),
            extension_password_hash,
        };
        Ok((n, rec))
    })?;
    Ok((StatusCode::CREATED, Json(Created { id })).into_response())
}

/// `POST /api/users/{id}` → 200. Takes the settings only; `name`, `password`,
/// `extension_number`, `extension_password`, `role` and `id` are 400s.
pub async fn modify(
    State(sh): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let m = body_object(&headers, &body)?;
    if sh.read(|t| t.get(&id).is_none()) {
        return Err(ApiError::not_found(&id));
    }
    if let Some(k) = m
        .keys()
        .find(|k| CREATE_ONLY.contains(&k.as_str()) || k.as_str() == "id")
    {
        return Err(ApiError::bad(
            Code::ReadOnlyField,
            format!("{k} cannot be modified through this endpoint"),
        ));
    }
    let settings = settings_from(m)?;
    rules::settings(&settings)?;
    sh.modify(&id, |rec| merge(&mut rec.user.settings, settings))?;
    Ok(StatusCode::OK.into_response())
}
