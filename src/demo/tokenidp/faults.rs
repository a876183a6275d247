//! The answers of injected `/token` faults: the broken shapes a token handler meets in the
//! wild (rate limits, unhandled errors, HTML from a gateway, cut-off and oversized bodies).

use bytes::Bytes;
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::options::Fault;
use super::reply::{self, Response};

/// What a reverse proxy in front of a dead IdP answers.
const HTML_502: &str = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n\
<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// A success body cut in the middle of the access token. The `Content-Length` matches what is
/// sent, so the client reads it whole and then fails to parse it.
const TRUNCATED_JSON: &str =
    r#"{"isSuccess":true,"value":{"access_token":"eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIi"#;

/// The canned answer of a fault, or `None` when the request should be served (no fault,
/// `Slow` after its delay, and `Down`, which never gets this far).
pub(super) fn response(fault: &Fault) -> Option<Response> {
    let resp = match fault {
        Fault::None | Fault::Down | Fault::Slow(_) => return None,
        Fault::RateLimited { retry_after_secs } => {
            let mut resp = reply::json(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({
                    "error": "rate_limit_exceeded",
                    "error_description": "Too many requests. Please retry later.",
                }),
            );
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            resp
        }
        Fault::PascalCase500 => reply::pascal_case_500(),
        Fault::Html502 => reply::html(StatusCode::BAD_GATEWAY, HTML_502.to_owned()),
        Fault::TruncatedJson => reply::with_body(
            StatusCode::OK,
            "application/json; charset=utf-8",
            Bytes::from_static(TRUNCATED_JSON.as_bytes()),
        ),
        Fault::InnerFailure => reply::json(
            StatusCode::OK,
            // Outer success, inner failure, no access token: success means a token is present.
            &json!({
                "isSuccess": true,
                "value": {
                    "isSuccess": false,
                    "token_type": "Bearer",
                    "userId": 0,
                }
            }),
        ),
        Fault::TenantUnavailable => reply::json(
            StatusCode::NOT_FOUND,
            &json!({"error": "tenant_unavailable"}),
        ),
        Fault::HugeBody(size) => reply::with_body(
            StatusCode::OK,
            "application/json; charset=utf-8",
            Bytes::from(huge_json(*size)),
        ),
    };
    Some(resp)
}

/// A JSON text of exactly `size` bytes: `{"padding":"xxx…"}` when it fits, else a number
/// made of `1`s (the empty body for 0, which no JSON text can be).
fn huge_json(size: usize) -> Vec<u8> {
    const OPEN: &[u8] = br#"{"padding":""#;
    const CLOSE: &[u8] = br#""}"#;
    if size < OPEN.len() + CLOSE.len() {
        return vec![b'1'; size];
    }
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(OPEN);
    body.resize(size - CLOSE.len(), b'x');
    body.extend_from_slice(CLOSE);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_json_is_exact_and_valid() {
        for size in [1, 13, 14, 15, 1000, 70_000] {
            let body = huge_json(size);
            assert_eq!(body.len(), size);
            serde_json::from_slice::<serde_json::Value>(&body).expect("valid JSON");
        }
    }

    #[test]
    fn truncated_json_does_not_parse() {
        assert!(serde_json::from_str::<serde_json::Value>(TRUNCATED_JSON).is_err());
    }
}
