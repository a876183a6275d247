//! Request and response header rewriting for the upstream hop.
//!
//! - Hop-by-hop headers (RFC 9110 §7.6.1) are removed, including every header named in
//!   `Connection`; an upgrade keeps `Connection: upgrade` and `Upgrade` (RFC 9110 §7.8).
//! - `X-Forwarded-*`: `forwarded.rs`.
//! - The proxy's own cookies are removed from `Cookie` (they would push upstream headers past
//!   common 8 KB limits and the API has no use for them); the app's cookies stay.
//! - `Authorization: Bearer <access token>`: `bearer.rs`.

use http::header::Entry;
use http::header::{
    HeaderName, CONNECTION, COOKIE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderValue};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Hop-by-hop headers of RFC 9110 §7.6.1 (plus the proxy credentials meant for us).
static HOP_BY_HOP: [&HeaderName; 8] = [
    &CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
    &UPGRADE,
    &PROXY_AUTHORIZATION,
];

/// `Connection`'s place in [`HOP_BY_HOP`].
const CONNECTION_AT: usize = 0;

/// Where `name` is in [`HOP_BY_HOP`], if it is there. Names are told apart by length first:
/// most names on a request or a response are none of these, and a length rules out all but one
/// or two candidates (`hop_index_finds_every_hop_by_hop_name` checks the table).
fn hop_index(name: &HeaderName) -> Option<usize> {
    let candidates: &[usize] = match name.as_str().len() {
        2 => &[3],
        7 => &[4, 6],
        10 => &[0, 1],
        16 => &[2],
        17 => &[5],
        19 => &[7],
        _ => return None,
    };
    candidates.iter().copied().find(|&i| *HOP_BY_HOP[i] == name)
}

/// A `Content-Length` value: digits only (no sign, no space inside, no list), at most 19 of
/// them, so it cannot overflow. The upstream's answers (`direct::head`) and the requests the
/// direct server reads (`server::h1::parse`) are read by this one rule.
pub fn length_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// Whether `headers` has a field named `name`: for the lookups of names most requests and
/// responses do not carry. A head holds a few fields, and comparing their names (a standard
/// name is one byte) costs about half of hashing the one looked for; a large map is hashed.
pub fn has(headers: &HeaderMap, name: &HeaderName) -> bool {
    if headers.keys_len() > 8 {
        return headers.contains_key(name);
    }
    headers.keys().any(|key| key == name)
}

/// Removes hop-by-hop headers in place. With `upgrade`, `Connection: upgrade` and `Upgrade`
/// are restored after the strip so the next hop sees the handshake. Returns whether a header
/// that `Connection` named (beyond the hop-by-hop ones) was removed.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) -> bool {
    // Most requests carry none, most responses only `Connection: keep-alive`: one pass over
    // the names finds which are there, and only those are removed.
    let mut present = [false; HOP_BY_HOP.len()];
    let mut any = false;
    for name in headers.keys() {
        if let Some(i) = hop_index(name) {
            present[i] = true;
            any = true;
        }
    }
    if !any {
        return false;
    }
    let upgrade_value = if upgrade {
        headers.get(UPGRADE).cloned()
    } else {
        None
    };
    // `Connection` goes first, with the headers its tokens name (`keep-alive` and `close` name
    // none): its values are read as they are removed, one lookup for both.
    let mut named: Vec<HeaderName> = Vec::new();
    if let Some(Entry::Occupied(connection)) =
        present[CONNECTION_AT].then(|| headers.entry(CONNECTION))
    {
        for value in connection.remove_entry_mult().1 {
            // Most responses say just `Connection: keep-alive`: no split for it.
            if names_no_header(value.as_bytes()) {
                continue;
            }
            // Bytes, not text: a token after an opaque byte still names a header to remove.
            let tokens = value
                .as_bytes()
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii);
            named.extend(
                tokens
                    .filter(|t| !names_no_header(t))
                    .filter_map(|t| HeaderName::from_bytes(t).ok()),
            );
        }
    }
    for name in &named {
        headers.remove(name);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present[i] && i != CONNECTION_AT {
            headers.remove(*name);
        }
    }
    if let Some(value) = upgrade_value {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(UPGRADE, value);
    }
    !named.is_empty()
}

/// `keep-alive` or `close`: the `Connection` tokens that name no header.
/// The lower-case spellings, which nearly every peer sends, are compared first.
pub fn names_no_header(token: &[u8]) -> bool {
    token == b"keep-alive"
        || token == b"close"
        || token.eq_ignore_ascii_case(b"keep-alive")
        || token.eq_ignore_ascii_case(b"close")
}

/// Replaces `Cookie` with `kept` (the app's cookies), or removes it.
pub fn set_cookies(headers: &mut HeaderMap, kept: Option<HeaderValue>) {
    headers.remove(COOKIE);
    if let Some(value) = kept {
        headers.insert(COOKIE, value);
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use http::header::AUTHORIZATION;

    /// A header map of `pairs`, in order (also for `forwarded.rs`'s tests).
    pub(in crate::proxy) fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("upgrade", "websocket"),
            ("accept", "application/json"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("accept"));
    }

    #[test]
    fn hop_index_finds_every_hop_by_hop_name() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_index(name), Some(i), "{name}");
        }
        assert_eq!(*HOP_BY_HOP[CONNECTION_AT], CONNECTION);
        for other in [
            "accept",
            "host",
            "cookie",
            "x-te",
            "trailers",
            "connections",
            "content-length",
            "x-forwarded-for",
            "proxy-authenticate",
            "x-proxy-connection",
        ] {
            let name = HeaderName::from_bytes(other.as_bytes()).expect("name");
            assert_eq!(hop_index(&name), None, "{other}");
        }
    }

    #[test]
    fn several_connection_headers_and_non_ascii_values() {
        let mut h = HeaderMap::new();
        h.append(CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(CONNECTION, HeaderValue::from_static("X-Named , close"));
        h.append(
            CONNECTION,
            HeaderValue::from_bytes(b"x-caf\xc3\xa9, x-after-opaque").expect("opaque value"),
        );
        h.insert("x-after-opaque", HeaderValue::from_static("1"));
        h.insert("x-named", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn a_lone_keep_alive_or_close_goes_and_names_no_header() {
        for value in [
            "keep-alive",
            "Keep-Alive",
            "close",
            "CLOSE",
            " close , keep-alive ",
        ] {
            let mut h = map(&[
                ("connection", value),
                ("close", "1"),
                ("content-length", "3"),
            ]);
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 2, "{value:?}: {h:?}");
            assert!(h.contains_key("close") && h.contains_key("content-length"));
        }
    }

    #[test]
    fn upgrades_keep_the_handshake_headers() {
        let mut h = map(&[
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "k"),
        ]);
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(CONNECTION).expect("connection"), "upgrade");
        assert_eq!(h.get(UPGRADE).expect("upgrade"), "websocket");
        assert!(h.contains_key("sec-websocket-key"));
    }

    /// `has` answers as `contains_key` on a small map (names compared) and a large one (hashed).
    #[test]
    fn has_agrees_with_contains_key_on_small_and_large_maps() {
        let mut h = map(&[("host", "a"), ("x-custom", "b"), ("cookie", "c")]);
        for size in [3, 12] {
            while h.keys_len() < size {
                let name = format!("x-filler-{}", h.keys_len());
                h.append(
                    HeaderName::from_bytes(name.as_bytes()).expect("name"),
                    HeaderValue::from_static("v"),
                );
            }
            for name in [COOKIE, UPGRADE, CONNECTION, AUTHORIZATION] {
                assert_eq!(has(&h, &name), h.contains_key(&name), "{name} of {size}");
            }
            let custom = HeaderName::from_static("x-custom");
            assert!(has(&h, &custom), "{size}");
            assert!(!has(&h, &HeaderName::from_static("x-other")), "{size}");
        }
    }
}
