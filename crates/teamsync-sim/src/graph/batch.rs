//! `POST /v1.0/$batch`: JSON batching as Graph documents it. Each part goes through the
//! same handlers as a request of its own (the API router without the edge), after passing
//! the tenant's rate limit on its own: a part over the limit is a 429 with its own
//! `Retry-After`, inside a batch answered 200.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use super::{GraphError, Shared};
use crate::common::reqlog::Entry;

/// A part in the request log, as `$batch#ID METHOD /v1.0/url`, so tests (and people) see
/// what Graph throttled inside a batch answered 200.
fn log_part(sh: &Shared, p: &Part, status: u16, retry_after: Option<u64>) {
    let (path, query) = match p.url.split_once('?') {
        Some((a, b)) => (a, Some(b.to_string())),
        None => (p.url.as_str(), None),
    };
    sh.edge.log().push(Entry {
        method: p.method.to_string(),
        path: format!("$batch#{} /v1.0/{}", p.id, path.trim_start_matches('/')),
        query,
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        status: Some(status),
        fault: false,
        fault_kind: None,
        retry_after,
    });
}

/// Graph's cap on the requests of one batch.
pub const MAX_REQUESTS: usize = 20;

struct Part {
    id: String,
    method: Method,
    url: String,
    content_type: Option<String>,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn bad(m: impl Into<String>) -> GraphError {
    GraphError::new(StatusCode::BAD_REQUEST, "BadRequest", m)
}

/// The batch's parts, or the 400 the whole batch gets.
fn parse(body: &Bytes) -> Result<Vec<Part>, GraphError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("Unable to read JSON request payload: {e}")))?;
    let Some(Value::Array(reqs)) = v.get("requests") else {
        return Err(bad("The batch request must have a 'requests' array."));
    };
    if reqs.is_empty() {
        return Err(bad("The batch request must hold at least one request."));
    }
    if reqs.len() > MAX_REQUESTS {
        return Err(bad(format!(
            "The number of requests in the batch ({}) exceeds the limit of {MAX_REQUESTS}.",
            reqs.len()
        )));
    }
    let mut parts: Vec<Part> = Vec::new();
    for r in reqs {
        let Value::Object(o) = r else {
            return Err(bad("Each batch request must be an object."));
        };
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let id = s("id")
            .filter(|i| !i.is_empty())
            .ok_or_else(|| bad("A batch request is missing its 'id'."))?;
        if parts.iter().any(|p| p.id == id) {
            return Err(bad(format!("The batch holds two requests with id '{id}'.")));
        }
        let method = s("method")
            .and_then(|m| Method::from_bytes(m.to_ascii_uppercase().as_bytes()).ok())
            .filter(|m| {
                [
                    Method::GET,
                    Method::POST,
                    Method::PATCH,
                    Method::PUT,
                    Method::DELETE,
                ]
                .contains(m)
            })
            .ok_or_else(|| {
                bad(format!(
                    "Request '{id}': 'method' is missing or not an HTTP method Graph takes."
                ))
            })?;
        let url = s("url").ok_or_else(|| bad(format!("Request '{id}': 'url' is missing.")))?;
        if url.contains("://") {
            return Err(bad(format!(
                "Request '{id}': 'url' must be relative to the version (e.g. /users), not {url}."
            )));
        }
        if url.trim_start_matches('/').starts_with("$batch") {
            return Err(bad(format!("Request '{id}': a batch cannot hold a batch.")));
        }
        let headers: Map<String, Value> = match o.get("headers") {
            None => Map::new(),
            Some(Value::Object(h)) => h.clone(),
            Some(_) => return Err(bad(format!("Request '{id}': 'headers' must be an object."))),
        };
        let content_type = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .and_then(|(_, v)| v.as_str().map(str::to_string));
        let body = o.get("body").cloned();
        if body.is_some() && content_type.is_none() {
            return Err(bad(format!(
                "Request '{id}': a request with a body must have a Content-Type header."
            )));
        }
        let depends_on: Vec<String> = match o.get("dependsOn") {
            None => Vec::new(),
            Some(Value::Array(d)) => d
                .iter()
                .map(|x| x.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad(format!("Request '{id}': 'dependsOn' must hold ids.")))?,
            Some(_) => {
                return Err(bad(format!(
                    "Request '{id}': 'dependsOn' must be an array."
                )))
            }
        };
        for d in &depends_on {
            if !parts.iter().any(|p| &p.id == d) {
                return Err(bad(format!(
                    "Request '{id}' depends on '{d}', which is not an earlier request of the batch."
                )));
            }
        }
        parts.push(Part {
            id,
            method,
            url,
            content_type,
            body,
            depends_on,
        });
    }
    Ok(parts)
}

fn answer(id: &str, status: u16, headers: Map<String, Value>, body: Option<Value>) -> Value {
    let mut a = json!({"id": id, "status": status, "headers": headers});
    if let Some(b) = body {
        a["body"] = b;
    }
    a
}

fn error_answer(id: &str, e: &GraphError) -> Value {
    let mut h = Map::new();
    h.insert("Content-Type".into(), json!("application/json"));
    if let Some(s) = e.retry_after {
        h.insert("Retry-After".into(), json!(s.to_string()));
    }
    answer(id, e.status.as_u16(), h, Some(e.body()))
}

pub async fn batch(State(sh): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let parts = match parse(&body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let Some(api) = sh.inner.get().cloned() else {
        return GraphError::internal("the simulator's API is not ready").into_response();
    };
    let host = headers.get(header::HOST).cloned();
    let mut statuses: HashMap<String, u16> = HashMap::new();
    let mut out = Vec::new();
    for p in parts {
        if let Some(d) = p
            .depends_on
            .iter()
            .find(|d| statuses.get(*d).is_none_or(|s| *s >= 400))
        {
            let e = GraphError::new(
                StatusCode::FAILED_DEPENDENCY,
                "FailedDependency",
                format!("The request it depends on ('{d}') failed."),
            );
            statuses.insert(p.id.clone(), 424);
            log_part(&sh, &p, 424, None);
            out.push(error_answer(&p.id, &e));
            continue;
        }
        if let Err(secs) = sh.edge.admit_inner() {
            statuses.insert(p.id.clone(), 429);
            log_part(&sh, &p, 429, Some(secs));
            out.push(error_answer(&p.id, &GraphError::throttled(secs)));
            continue;
        }
        let uri = format!("/v1.0/{}", p.url.trim_start_matches('/'));
        let mut rb = Request::builder().method(p.method.clone()).uri(&uri);
        if let Some(h) = &host {
            rb = rb.header(header::HOST, h.clone());
        }
        if let Some(ct) = &p.content_type {
            rb = rb.header(header::CONTENT_TYPE, ct.as_str());
        }
        let req_body = match &p.body {
            Some(b) => Body::from(serde_json::to_vec(b).unwrap_or_default()),
            None => Body::empty(),
        };
        let resp = match rb.body(req_body) {
            Ok(req) => match api.clone().oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            },
            Err(_) => {
                let e = bad(format!(
                    "Request '{}': 'url' {:?} is not a valid URL.",
                    p.id, p.url
                ));
                statuses.insert(p.id.clone(), 400);
                out.push(error_answer(&p.id, &e));
                continue;
            }
        };
        let status = resp.status().as_u16();
        let mut h = Map::new();
        for name in [header::LOCATION, header::RETRY_AFTER, header::CONTENT_TYPE] {
            if let Some(v) = resp.headers().get(&name).and_then(|v| v.to_str().ok()) {
                h.insert(canonical(name.as_str()), json!(v));
            }
        }
        let bytes = to_bytes(resp.into_body(), 16 << 20)
            .await
            .unwrap_or_default();
        let body = if bytes.is_empty() {
            None
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        statuses.insert(p.id.clone(), status);
        log_part(&sh, &p, status, None);
        out.push(answer(&p.id, status, h, body));
    }
    // Parts without dependsOn may be answered in any order: a client must match by id.
    out.reverse();
    Json(json!({"responses": out})).into_response()
}

fn canonical(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}
