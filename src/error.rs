//! The proxy's own error answers: JSON `{"error": code, "message": ...}`, with the codes
//! the README lists (they are the SPA's contract: it acts on the code, not on the text).
//!
//! One function maps each failure *source* to a status and code, so an SPA can act on the
//! code: `login_required` → start a login; `idp_unavailable` → retry after `Retry-After`.
//! Messages are fixed strings or our own classifications: never a token, never IdP text.

use crate::body::{full, Body};
use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    LoginRequired,
    CsrfCheckFailed,
    IdpUnavailable,
    UpstreamUnavailable,
    UpstreamTimeout,
    BadRequest,
    RequestTooLarge,
    HeadersTooLarge,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    Overloaded,
    KeyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::LoginRequired => "login_required",
            ErrorCode::CsrfCheckFailed => "csrf_check_failed",
            ErrorCode::IdpUnavailable => "idp_unavailable",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamTimeout => "upstream_timeout",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::RequestTooLarge | ErrorCode::HeadersTooLarge => "request_too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::KeyUnavailable => "key_unavailable",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::LoginRequired => StatusCode::UNAUTHORIZED,
            ErrorCode::CsrfCheckFailed => StatusCode::FORBIDDEN,
            ErrorCode::IdpUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            ErrorCode::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::RequestTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Overloaded | ErrorCode::KeyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Default `Retry-After` when the IdP gave none.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(2);

/// A JSON error response.
pub fn error_response(code: ErrorCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": code.as_str(), "message": message }).to_string();
    let mut response = Response::new(full(body));
    *response.status_mut() = code.status();
    // For the forward-auth listener, which names the code in a header too.
    response.extensions_mut().insert(code);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if code == ErrorCode::LoginRequired {
        // RFC 9110 §11.6.1: a 401 carries a challenge. The SPA reads the JSON code instead.
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Cookie realm=\"token-handler\""),
        );
    }
    response
}

/// 401 `login_required`: the SPA should start a login (never a redirect: an XHR cannot follow
/// one to the IdP usefully).
pub fn login_required() -> Response<Body> {
    error_response(ErrorCode::LoginRequired, "no valid session; log in again")
}

/// 503 `key_unavailable` with `Retry-After`: the session cookie was sealed with a key this
/// replica has not received yet; the cookie is left alone and a retry (maybe on another
/// replica, or after this one reloads its keys) works.
pub fn key_unavailable() -> Response<Body> {
    let mut response = error_response(
        ErrorCode::KeyUnavailable,
        "this replica does not have the session's cookie key yet; retry later",
    );
    response.headers_mut().insert(
        RETRY_AFTER,
        HeaderValue::from(DEFAULT_RETRY_AFTER.as_secs()),
    );
    response
}

/// 503 `idp_unavailable` with `Retry-After` (the IdP's, when it sent one).
pub fn idp_unavailable(retry_after: Option<Duration>) -> Response<Body> {
    let mut response = error_response(
        ErrorCode::IdpUnavailable,
        "the identity provider is unavailable; the session is kept, retry later",
    );
    let secs = retry_after.unwrap_or(DEFAULT_RETRY_AFTER).as_secs().max(1);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    response
}
