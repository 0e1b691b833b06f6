//! Request parsing that answers in the API's error shape, never axum's plain-text rejections.
//!
//! Bodies must be `application/json` and match the documented fields exactly: an unknown
//! field is a 400 (our reading), so a client's misspelt field cannot pass silently. Query
//! strings may only hold the parameters an endpoint documents, each at most once.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::{ApiError, Code};

/// A JSON body, checked against its serde type.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            });
        if !is_json {
            return Err(ApiError::bad(
                Code::BadBody,
                "The request body must be JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad(Code::BadBody, format!("Unreadable body: {e}")))?;
        serde_json::from_slice(&bytes)
            .map(Body)
            .map_err(|e| ApiError::bad(Code::BadBody, format!("Invalid body: {e}")))
    }
}

/// The query parameters of a request, refusing any not in `allowed` and any repeated one.
pub fn query_params(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if !allowed.contains(&k.as_ref()) {
            return Err(ApiError::bad(
                Code::BadQuery,
                format!("Unknown query parameter {k:?}"),
            ));
        }
        if out.iter().any(|(x, _)| *x == k) {
            return Err(ApiError::bad(
                Code::BadQuery,
                format!("Query parameter {k:?} is given twice"),
            ));
        }
        out.push((k.into_owned(), v.into_owned()));
    }
    Ok(out)
}

/// The integer path parameter `name` (a bulk id, a template id), a 400 when it is not one.
pub async fn int_path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<i64, ApiError> {
    let p = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::bad(Code::BadValue, format!("Invalid path: {e}")))?;
    p.get(name)
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(|| ApiError::bad(Code::BadValue, format!("{name} must be an integer")))
}

pub fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
