//! Shared handling of token-endpoint answers: size-capped reads, `Retry-After`, Basic auth,
//! and the HTTP-status half of the rejected/transient classification.

use super::{IdpError, Rejection, TokenResponse, Transient};
use crate::secret::{AccessToken, ClientSecret, IdToken, RefreshToken};
use http::HeaderMap;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime};

/// Longest `Retry-After` we pass on; an IdP asking for more still gets retried sooner.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Reads the body, refusing more than `max` bytes (an IdP must not make us buffer 10 MB).
pub(super) async fn read_limited(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, Transient> {
    if response
        .content_length()
        .is_some_and(|len| len as usize > max)
    {
        return Err(Transient::TooLarge);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(Transient::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(Transient::Timeout),
            // A connection cut mid-body is a truncated answer.
            Err(_) => return Err(Transient::MalformedBody),
        }
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), capped.
pub(super) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// `Authorization: Basic` per RFC 6749 §2.3.1: id and secret are form-urlencoded first.
pub(super) fn basic_auth(client_id: &str, secret: &ClientSecret) -> String {
    let id: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let pw: String = url::form_urlencoded::byte_serialize(secret.expose().as_bytes()).collect();
    format!("Basic {}", crate::b64::std_encode(format!("{id}:{pw}")))
}

/// A request that never got an answer: logged (what, and why) and classified as transient.
pub(super) fn unreachable(what: &str, e: &reqwest::Error) -> IdpError {
    tracing::debug!(error = %describe(e), "{what} unreachable");
    IdpError::transient(if e.is_timeout() {
        Transient::Timeout
    } else {
        Transient::Connect
    })
}

/// A transport error described without its URL (which is fine) or any body (never read).
pub(super) fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Looks a key up the way TokenIDP's server matches them: case-insensitive, `_` ignored
/// (`access_token` = `accessToken` = `AccessToken`).
pub(super) fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.iter().find_map(|(k, v)| {
        let mut a = k
            .bytes()
            .filter(|&b| b != b'_')
            .map(|b| b.to_ascii_lowercase());
        let mut b = name.bytes();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Some(v),
                (Some(x), Some(y)) if x == y => continue,
                _ => return None,
            }
        }
    })
}

pub(super) fn string_field(object: &Map<String, Value>, name: &str) -> Option<String> {
    field(object, name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `expires_in` may arrive as a number or a numeric string.
pub(super) fn seconds_field(object: &Map<String, Value>, name: &str) -> Option<u64> {
    match field(object, name)? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The status half of classification, for answers that are not a success.
/// `rejection` is what the dialect read from a well-formed error body (if any).
/// A `/token` answer: a 2xx JSON object goes to `success` (the dialect finds its token
/// object); anything else is a failure, worded by `rejection` from the JSON body, if any.
pub(super) fn parse_answer(
    status: u16,
    body: &[u8],
    success: impl FnOnce(&Map<String, Value>) -> Result<TokenResponse, IdpError>,
    rejection: impl FnOnce(&Map<String, Value>) -> Option<(Rejection, String)>,
) -> Result<TokenResponse, IdpError> {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        let object = parsed.ok_or(IdpError::transient(Transient::MalformedBody))?;
        return success(&object);
    }
    Err(classify_failure(
        status,
        parsed.as_ref().and_then(rejection),
    ))
}

/// The tokens of a successful answer's token object (field names in either spelling). No
/// An OAuth error's code with its `error_description` (RFC 6749 §5.2), for the log line.
pub(super) fn error_detail(object: &Map<String, Value>, code: &str) -> String {
    match object.get("error_description").and_then(Value::as_str) {
        Some(description) if !description.is_empty() => format!("{code}: {description}"),
        _ => code.to_string(),
    }
}

/// access token means no success, whatever the status said.
pub(super) fn token_object(object: &Map<String, Value>) -> Result<TokenResponse, IdpError> {
    let Some(access_token) = string_field(object, "accesstoken") else {
        return Err(IdpError::transient(Transient::NoAccessToken));
    };
    Ok(TokenResponse {
        access_token: AccessToken::new(access_token),
        refresh_token: string_field(object, "refreshtoken").map(RefreshToken::new),
        id_token: string_field(object, "idtoken").map(IdToken::new),
        expires_in: seconds_field(object, "expiresin"),
        scope: string_field(object, "scope"),
        token_type: string_field(object, "tokentype"),
    })
}

/// A failed answer: a refusal when the IdP said so in its error shape, transient otherwise.
pub(super) fn classify_failure(status: u16, rejection: Option<(Rejection, String)>) -> IdpError {
    match (status, rejection) {
        (400 | 401, Some((reason, detail))) => IdpError::Rejected {
            reason,
            detail: sanitize(&detail),
        },
        (429, _) => IdpError::transient(Transient::RateLimited),
        // A 400/401 without the IdP's error shape came from something else (a WAF, a load
        // balancer, an HTML error page): not a verdict on the grant.
        (_, _) => IdpError::transient(Transient::Status(status)),
    }
}

/// Error text from the IdP, made safe for a log line: bounded, printable.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// Lifetime (`exp - iat`, seconds) claimed by a JWT access token, read **without**
/// verification: only to schedule the refresh, using the IdP's own clock difference so a
/// skewed local clock does not matter. `None` for opaque tokens.
pub fn unverified_lifetime(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = crate::b64::url_decode(payload.trim_end_matches('='))?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    let iat = claims.get("iat").or_else(|| claims.get("nbf"))?.as_u64()?;
    exp.checked_sub(iat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_match_in_both_spellings() {
        let v: Map<String, Value> =
            serde_json::from_str(r#"{"Access_Token":"a","expiresIn":"30"}"#).expect("json");
        assert_eq!(string_field(&v, "accesstoken").as_deref(), Some("a"));
        assert_eq!(seconds_field(&v, "expiresin"), Some(30));
        assert!(field(&v, "access").is_none());
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "7".parse().expect("hv"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(http::header::RETRY_AFTER, "99999".parse().expect("hv"));
        assert_eq!(retry_after(&h), Some(MAX_RETRY_AFTER));
        h.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("hv"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert(http::header::RETRY_AFTER, "soon".parse().expect("hv"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn basic_auth_form_encodes_per_rfc6749() {
        let h = basic_auth("my client", &ClientSecret::new("p@ss:w+rd"));
        let decoded = crate::b64::std_decode(h.trim_start_matches("Basic ")).expect("b64");
        assert_eq!(decoded, b"my+client:p%40ss%3Aw%2Brd");
    }

    #[test]
    fn jwt_lifetime_uses_the_issuers_clock_difference() {
        let payload = crate::b64::url_encode(r#"{"iat":1000,"exp":1300}"#);
        assert_eq!(unverified_lifetime(&format!("h.{payload}.s")), Some(300));
        assert_eq!(unverified_lifetime("opaque-token"), None);
    }
}
