//! The simulated PortSIP API's error answers.
//!
//! The PortSIP users document shows no error body and no codes. Our reading, kept in this
//! one place: every 4xx/5xx answer is `{"code": "<Name>", "message": "<text>"}`, with the
//! names of [`Code`]; rule violations of the document's field rules are 400s naming the
//! field, duplicates are 409s.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The `code` of an error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400: the body is not JSON, has a wrong type, or an unknown field.
    BadBody,
    /// 400: a query parameter is unknown, repeated or out of range.
    BadQuery,
    /// 400: a required field is missing.
    MissingField,
    /// 400: the account name has a character outside letters, digits and `_ - ' .`, or
    /// starts or ends with a period.
    InvalidUserName,
    /// 400: the account name is one of admin, system, administrator, root (any case).
    ReservedUserName,
    /// 400: the extension number is not `[0-9]{3,64}`.
    InvalidExtensionNumber,
    /// 400: a role is neither built in nor a custom role of the tenant.
    UnknownRole,
    /// 400: another field's value is not acceptable (phone number, email, password…).
    InvalidValue,
    /// 400: a field the modify endpoint does not take (name, extension number, role…).
    ReadOnlyField,
    /// 409: another user has this account name (case ignored).
    UserNameExists,
    /// 409: another user has this extension number.
    ExtensionNumberExists,
    /// 404: no user has this id.
    UserNotFound,
    /// 404: no route has this path.
    UnknownRoute,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    Unauthorized,
    Forbidden,
    TooManyRequests,
    InternalError,
    ServiceUnavailable,
}

impl Code {
    pub fn name(self) -> &'static str {
        match self {
            Code::BadBody => "BadBody",
            Code::BadQuery => "BadQuery",
            Code::MissingField => "MissingField",
            Code::InvalidUserName => "InvalidUserName",
            Code::ReservedUserName => "ReservedUserName",
            Code::InvalidExtensionNumber => "InvalidExtensionNumber",
            Code::UnknownRole => "UnknownRole",
            Code::InvalidValue => "InvalidValue",
            Code::ReadOnlyField => "ReadOnlyField",
            Code::UserNameExists => "UserNameExists",
            Code::ExtensionNumberExists => "ExtensionNumberExists",
            Code::UserNotFound => "UserNotFound",
            Code::UnknownRoute => "UnknownRoute",
            Code::MethodNotAllowed => "MethodNotAllowed",
            Code::Unauthorized => "Unauthorized",
            Code::Forbidden => "Forbidden",
            Code::TooManyRequests => "TooManyRequests",
            Code::InternalError => "InternalError",
            Code::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

/// An error answer. Never carries a secret (the handlers never echo a password).
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: Code,
    pub message: String,
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad(code: Code, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn conflict(code: Code, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
    pub fn not_found(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            Code::UserNotFound,
            format!("No user has the id {id:?}"),
        )
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::InternalError,
            message,
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            code: self.code.name(),
            message: &self.message,
        };
        crate::common::error::json_error(self.status, "application/json", &body, self.retry_after)
    }
}
