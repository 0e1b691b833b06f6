//! The one error shape of the simulated API, and the table of its codes.
//!
//! The Fusion document shows an error body only once, in the bulk-update partial-success
//! example: `{"error": {"code": 2095, "reason": "The template does not exist"}}`. Our reading is
//! that every 4xx/5xx answer carries exactly that shape, so clients have one thing to parse.
//! The numeric codes below are ours (the document names only 2095); they are kept in this one
//! table so tests and clients can match on them.

use crate::common::error::json_error;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Codes carried in `error.code`. One place, so the reasons stay consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400: the body is not JSON, has a wrong type, an unknown or a missing field.
    BadBody = 1000,
    /// 400: a query parameter is unknown, repeated or malformed.
    BadQuery = 1001,
    /// 400: a value has the right type but is not acceptable (country code, number format…).
    BadValue = 1002,
    /// 400: the continuation token is unknown, forged, or used with other parameters.
    BadToken = 1003,
    /// 404: the draas instance / tenant / subscription of the path does not exist.
    UnknownTenant = 2001,
    /// 404: no MS Teams user has this id (or it has not replicated yet).
    UnknownUser = 2002,
    /// 404: no route under the msteams prefix has this path.
    UnknownRoute = 2003,
    /// 405: the route exists but not with this method.
    MethodNotAllowed = 2004,
    /// 404: no resource account has this id.
    UnknownResourceAccount = 2005,
    /// 404: no MS Teams administrator exists for the subscription.
    UnknownAdmin = 2006,
    /// 404: no bulk job has this id.
    UnknownBulk = 2007,
    /// 400: a bulk item's UPN belongs to a resource account, not a user.
    NotAUser = 2012,
    /// 400: a name in a bulk item matches several groups or licenses.
    AmbiguousName = 2035,
    /// 400: no template has this id or name (the document's own code and reason).
    TemplateNotFound = 2095,
    /// 400: a user with this UPN already exists.
    UserExists = 2010,
    /// 400: the domain of a new user is not a verified domain of the tenant.
    DomainNotVerified = 2011,
    /// 400: the phone number is not in the subscription's number inventory.
    NumberNotInInventory = 2020,
    /// 400: the phone number is already linked to another user or resource account.
    NumberAlreadyLinked = 2021,
    /// 400: a number needs a Phone System license (Teams refuses one otherwise).
    NotVoiceEnabled = 2022,
    /// 400: a group id does not exist in the tenant.
    UnknownGroup = 2030,
    /// 400: a license skuId does not exist in the tenant.
    UnknownLicense = 2031,
    /// 400: no free unit of a license is left.
    NoFreeLicense = 2032,
    /// 400: licenses cannot be assigned before a usage location is set.
    LocationRequired = 2033,
    /// 400: a Voice Routing Policy does not exist in the tenant.
    UnknownVrp = 2040,
    /// 401: no (bearer) credentials.
    Unauthenticated = 4010,
    /// 403: credentials given but not accepted.
    Forbidden = 4030,
    /// 429: rate limit exceeded; see `Retry-After`.
    RateLimited = 4290,
    /// 500: injected fault or internal failure (state store).
    Internal = 5000,
    /// 503: injected fault.
    Unavailable = 5030,
}

/// An error answer: status, code and a human reason. Never carries secrets.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub reason: String,
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: i64,
    reason: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            reason: reason.into(),
            retry_after: None,
        }
    }
    pub fn bad(code: Code, reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, reason)
    }
    pub fn unknown_tenant() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            Code::UnknownTenant,
            "The path tenant / subscription doesn't exist",
        )
    }
    pub fn unknown_user(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            Code::UnknownUser,
            format!("No MS Teams user found with id {id}"),
        )
    }
    pub fn internal(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, Code::Internal, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInner {
                code: self.code as i64,
                reason: &self.reason,
            },
        };
        json_error(self.status, "application/json", &body, self.retry_after)
    }
}
