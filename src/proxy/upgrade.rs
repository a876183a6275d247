//! Protocol upgrades: only the configured protocols (`proxy.upgrades`, WebSocket by default)
//! are tunnelled, and only after a `101` that completes the handshake the client asked for.
//!
//! A tunnel is a raw byte pipe to the upstream: whatever goes through it after the `101` is
//! never seen by the proxy, so forged `Authorization` or `X-Forwarded-For` lines inside it
//! would reach the API unchecked. An `Upgrade` for another protocol (`h2c`, `TLS/1.0`, ...)
//! is dropped, as any hop-by-hop header, and the request goes on as a plain one; a `101`
//! that answers a plain request, names another protocol, lacks `Connection: upgrade`, or (for
//! WebSocket) carries a `Sec-WebSocket-Accept` that does not match the client's key, is
//! refused with 502 and its connection closed (RFC 9110 §7.8, RFC 6455 §4.1).

use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderMap, Method, Response, Version};

/// RFC 6455 §1.3.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// What a valid `101` must say, from the request that asked for it.
#[derive(Debug, Clone)]
pub struct Expected {
    protocol: String,
    /// The WebSocket accept value the client will check, when it is a WebSocket handshake.
    websocket_accept: Option<String>,
}

/// The upgrade a request asks for, when it is one the proxy tunnels: HTTP/1.1, a `GET`, one
/// protocol in `Upgrade` that is in `allowed`, and `upgrade` among the `Connection` tokens.
pub fn requested(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
    allowed: &[String],
) -> Option<Expected> {
    if version != Version::HTTP_11 || method != Method::GET || !connection_has_upgrade(headers) {
        return None;
    }
    let mut values = headers.get_all(UPGRADE).iter();
    let value = values.next()?.to_str().ok()?.trim();
    if values.next().is_some() || value.contains(',') {
        return None;
    }
    let name = value.split('/').next().unwrap_or(value);
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(name)) {
        return None;
    }
    let websocket_accept = if name.eq_ignore_ascii_case("websocket") {
        let key = headers.get(SEC_WEBSOCKET_KEY)?.as_bytes();
        Some(accept_value(key))
    } else {
        None
    };
    Some(Expected {
        protocol: value.to_string(),
        websocket_accept,
    })
}

/// Whether the upstream's `101` completes the handshake that was asked for.
pub fn completes<B>(expected: &Expected, response: &Response<B>) -> bool {
    let headers = response.headers();
    let protocol_ok = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(&expected.protocol));
    let accept_ok = match &expected.websocket_accept {
        None => true,
        Some(want) => headers
            .get(SEC_WEBSOCKET_ACCEPT)
            .is_some_and(|v| v.as_bytes() == want.as_bytes()),
    };
    protocol_ok && accept_ok && connection_has_upgrade(headers)
}

fn connection_has_upgrade(headers: &HeaderMap) -> bool {
    // Most requests have no `Connection` field: found absent without a hashed lookup.
    super::headers::has(headers, &CONNECTION)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// `base64(SHA-1(key + GUID))` (RFC 6455 §4.2.2).
fn accept_value(key: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key);
    ctx.update(WEBSOCKET_GUID.as_bytes());
    crate::b64::std_encode(ctx.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const WS: &[(&str, &str)] = &[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    fn allowed() -> Vec<String> {
        vec!["websocket".to_string()]
    }

    #[test]
    fn only_allowed_protocols_on_http11_get() {
        let h = headers(WS);
        assert!(requested(&Method::GET, Version::HTTP_11, &h, &allowed()).is_some());
        assert!(requested(&Method::POST, Version::HTTP_11, &h, &allowed()).is_none());
        assert!(requested(&Method::GET, Version::HTTP_10, &h, &allowed()).is_none());
        assert!(requested(&Method::GET, Version::HTTP_11, &h, &[]).is_none());
        for upgrade in ["h2c", "TLS/1.0", "websocket, h2c"] {
            let h = headers(&[("connection", "upgrade"), ("upgrade", upgrade)]);
            assert!(
                requested(&Method::GET, Version::HTTP_11, &h, &allowed()).is_none(),
                "{upgrade}"
            );
        }
        let no_connection = headers(&[("upgrade", "websocket"), ("sec-websocket-key", "k")]);
        assert!(requested(&Method::GET, Version::HTTP_11, &no_connection, &allowed()).is_none());
    }

    #[test]
    fn a_101_must_complete_the_websocket_handshake() {
        let expected =
            requested(&Method::GET, Version::HTTP_11, &headers(WS), &allowed()).expect("ws");
        let answer = |pairs: &[(&'static str, &'static str)]| {
            let mut r = Response::new(());
            *r.headers_mut() = headers(pairs);
            r
        };
        // RFC 6455 §1.3's example.
        let good = answer(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert!(completes(&expected, &good));
        for bad in [
            answer(&[
                ("connection", "Upgrade"),
                ("upgrade", "h2c"),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ]),
            answer(&[
                ("connection", "Upgrade"),
                ("upgrade", "websocket"),
                ("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ]),
            answer(&[
                ("upgrade", "websocket"),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ]),
        ] {
            assert!(!completes(&expected, &bad));
        }
    }
}
