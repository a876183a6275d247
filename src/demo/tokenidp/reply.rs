//! Building HTTP answers: small helpers, and the exact success and failure shapes of `/token`
//! in each `ResponseStyle`.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderValue, StatusCode};
use http_body_util::Full;
use serde_json::{json, Map, Value};

use super::grant::{insert_some, Minted};
use super::ids;
use super::options::ResponseStyle;

pub(super) type Response = http::Response<Full<Bytes>>;

pub(super) fn with_body(status: StatusCode, content_type: &'static str, body: Bytes) -> Response {
    let mut resp = http::Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(super) fn json(status: StatusCode, body: &Value) -> Response {
    with_body(
        status,
        "application/json; charset=utf-8",
        Bytes::from(body.to_string()),
    )
}

pub(super) fn text(status: StatusCode, body: &str) -> Response {
    with_body(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(body.to_owned()),
    )
}

pub(super) fn html(status: StatusCode, body: String) -> Response {
    with_body(status, "text/html; charset=utf-8", Bytes::from(body))
}

pub(super) fn empty(status: StatusCode) -> Response {
    let mut resp = http::Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// A 302. A location that is not a valid header value cannot come from our own URL building;
/// answer 500 rather than panic if it ever does.
pub(super) fn redirect(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => {
            let mut resp = empty(StatusCode::FOUND);
            resp.headers_mut().insert(LOCATION, value);
            resp
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect location"),
    }
}

/// The answer to a known path called with the wrong method.
pub(super) fn method_not_allowed() -> Response {
    text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.")
}

/// 401 for a missing, foreign, expired or non-access Bearer token (RFC 6750 §3.1).
pub(super) fn bearer_unauthorized() -> Response {
    let mut resp = empty(StatusCode::UNAUTHORIZED);
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    resp
}

/// `{"error","error_description"}`, the shape of `/authorize` and `/logout` errors.
pub(super) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

/// TokenIDP's answer to an unhandled exception, with its PascalCase keys (a different
/// serializer than the rest of the API). Also its answer to a bad code and a PKCE mismatch.
pub(super) fn pascal_case_500() -> Response {
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({
            "IsSuccess": false,
            "Error": {
                "Code": "",
                "CorrelationId": ids::correlation_id(),
                "UserId": 0,
                "Error": "An error has occurred, please contact support.",
            }
        }),
    )
}

/// A refused `/token` request.
#[derive(Debug)]
pub(super) enum Failure {
    /// A 400/401 with TokenIDP's envelope, or RFC 6749 §5.2 in `ResponseStyle::OAuth2`.
    Rejected {
        status: StatusCode,
        /// The RFC 6749 §5.2 code; TokenIDP never sends it (its `error.code` is always empty).
        error: &'static str,
        message: &'static str,
    },
    /// Bad or used code, PKCE mismatch: TokenIDP's PascalCase 500 (`invalid_grant` in OAuth2).
    BadCode,
    /// Something broke inside the emulator (randomness, signing).
    Internal,
}

impl Failure {
    const fn rejected(status: StatusCode, error: &'static str, message: &'static str) -> Self {
        Failure::Rejected {
            status,
            error,
            message,
        }
    }

    pub(super) const fn invalid_refresh_token() -> Self {
        Self::rejected(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid refresh token.",
        )
    }

    pub(super) const fn client_authentication_failed() -> Self {
        Self::rejected(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed.",
        )
    }

    pub(super) const fn invalid_request(message: &'static str) -> Self {
        Self::rejected(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub(super) const fn invalid_scope() -> Self {
        Self::rejected(StatusCode::BAD_REQUEST, "invalid_scope", "Invalid scope.")
    }

    pub(super) const fn invalid_redirect_uri() -> Self {
        Self::rejected(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid redirect_uri.",
        )
    }

    pub(super) const fn unauthorized_client() -> Self {
        Self::rejected(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "The grant type is not enabled for this client.",
        )
    }

    pub(super) const fn unsupported_grant_type() -> Self {
        Self::rejected(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Unsupported grant type.",
        )
    }
}

/// The answer to a refused `/token` request, in the given style.
pub(super) fn failure(style: ResponseStyle, failure: &Failure) -> Response {
    let mut resp = match (style, failure) {
        (
            ResponseStyle::OAuth2,
            Failure::Rejected {
                status,
                error,
                message,
            },
        ) => {
            let mut resp = oauth_error(*status, error, message);
            // RFC 6749 §5.2: a 401 invalid_client names the scheme the client should use.
            if *status == StatusCode::UNAUTHORIZED {
                resp.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"tokenidp\""),
                );
            }
            resp
        }
        (ResponseStyle::OAuth2, Failure::BadCode) => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "Invalid authorization code.",
        ),
        (ResponseStyle::OAuth2, Failure::Internal) => oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Internal error.",
        ),
        (
            _,
            Failure::Rejected {
                status, message, ..
            },
        ) => json(
            *status,
            // `code` is always empty: the OAuth error code never arrives (a server bug).
            &json!({
                "isSuccess": false,
                "error": {
                    "code": "",
                    "correlationId": ids::correlation_id(),
                    "userId": 0,
                    "error": message,
                }
            }),
        ),
        (_, Failure::BadCode | Failure::Internal) => pascal_case_500(),
    };
    no_store(&mut resp);
    resp
}

/// The answer to a successful `/token` request, in the given style. Null fields are left out
/// and `scope` is never returned, except in the plain OAuth2 style (RFC 6749 §5.1).
pub(super) fn success(style: ResponseStyle, m: &Minted) -> Response {
    let body = match style {
        ResponseStyle::Guide => {
            let mut data = Map::new();
            insert_some(&mut data, "accessToken", Some(&m.access_token));
            insert_some(&mut data, "refreshToken", m.refresh_token.as_deref());
            insert_some(&mut data, "tokenType", Some("Bearer"));
            data.insert("expiresIn".into(), json!(m.expires_in));
            insert_some(&mut data, "idToken", Some(&m.id_token));
            json!({"isSuccess": true, "data": data})
        }
        ResponseStyle::Server => {
            let mut value = Map::new();
            insert_some(&mut value, "access_token", Some(&m.access_token));
            insert_some(&mut value, "token_type", Some("Bearer"));
            insert_some(&mut value, "id_token", Some(&m.id_token));
            insert_some(&mut value, "refresh_token", m.refresh_token.as_deref());
            value.insert("expires_in".into(), json!(m.expires_in));
            insert_some(&mut value, "expireAt", Some(&m.expire_at));
            value.insert("isSuccess".into(), json!(true));
            value.insert("userId".into(), json!(m.user_id));
            json!({"isSuccess": true, "value": value})
        }
        ResponseStyle::OAuth2 => {
            let mut body = Map::new();
            insert_some(&mut body, "access_token", Some(&m.access_token));
            insert_some(&mut body, "token_type", Some("Bearer"));
            body.insert("expires_in".into(), json!(m.expires_in));
            insert_some(&mut body, "refresh_token", m.refresh_token.as_deref());
            insert_some(&mut body, "id_token", Some(&m.id_token));
            insert_some(&mut body, "scope", Some(&m.scope));
            Value::Object(body)
        }
    };
    let mut resp = json(StatusCode::OK, &body);
    no_store(&mut resp);
    resp
}

/// RFC 6749 §5.1: token answers must not be cached.
fn no_store(resp: &mut Response) {
    let headers = resp.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Appends query parameters to a registered redirect URI, kept byte for byte as registered
/// (no re-serialization that could add a slash). Values are percent-encoded with `%20` for a
/// space, which both RFC 3986 and form decoders read back unchanged (a `+` would not be).
pub(super) fn append_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut out = uri.to_owned();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (name, value) in pairs {
        out.push(sep);
        out.push_str(&percent_encode(name));
        out.push('=');
        out.push_str(&percent_encode(value));
        sep = '&';
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_query_keeps_uri_and_encodes_values() {
        assert_eq!(
            append_query("http://a/cb", &[("code", "x"), ("state", "a b+/=&é")]),
            "http://a/cb?code=x&state=a%20b%2B%2F%3D%26%C3%A9"
        );
        assert_eq!(
            append_query("http://a/?x=1", &[("logged_out", "1")]),
            "http://a/?x=1&logged_out=1"
        );
    }
}
