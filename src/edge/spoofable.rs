//! Headers a client could forge to make the upstream believe something about the request's
//! origin: its address, scheme, host, port, prefix or original URL. Only a proxy in
//! `server.trusted_proxies` may send them; from anyone else they are removed before the proxy
//! sets its own `X-Forwarded-For/-Proto/-Host`.
//!
//! Removed from untrusted peers: `Forwarded` (RFC 7239), every `X-Forwarded-*` and
//! `X-Original-*`, and the client-address and URL-rewrite headers of common proxies and CDNs.
//! Removed from everyone: header names with `_`, which CGI, WSGI, PHP and others read as
//! the `-` spelling (`X_Forwarded_For` becomes `HTTP_X_FORWARDED_FOR`), so they would smuggle
//! a forged value past any check of the real name.

use http::header::HeaderName;
use http::HeaderMap;

/// Exact names (lower case) of client-address and rewrite headers besides the two prefixes.
const NAMES: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-proxyuser-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-host",
    "x-rewrite-url",
    "x-http-host-override",
    "x-envoy-external-address",
    "x-envoy-original-path",
    "x-envoy-internal",
    "front-end-https",
    "x-url-scheme",
    "x-scheme",
];

/// Prefixes (lower case) whose every header is about the request's origin.
const PREFIXES: &[&str] = &["x-forwarded-", "x-original-"];

/// Whether `name` may only come from a trusted proxy. Every such name starts with one of a
/// few letters: most headers are dismissed on their first byte.
fn from_proxies_only(name: &str) -> bool {
    matches!(name.as_bytes().first(), Some(b'x' | b'f' | b't' | b'c'))
        && (NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p)))
}

/// Removes the spoofable headers: those of a proxy when `trusted` is false, and header names
/// with `_` always. One pass over the names; nothing is allocated when none is there.
pub fn strip(headers: &mut HeaderMap, trusted: bool) {
    let mut doomed: Option<Vec<HeaderName>> = None;
    for name in headers.keys() {
        let text = name.as_str();
        // Names are short: a plain scan beats a `memchr` call here.
        if text.as_bytes().contains(&b'_') || (!trusted && from_proxies_only(text)) {
            doomed.get_or_insert_with(Vec::new).push(name.clone());
        }
    }
    // Not `doomed.into_iter().flatten()`: its two inner iterators would be dropped on every
    // request, when usually nothing is doomed.
    if let Some(doomed) = doomed {
        for name in doomed {
            headers.remove(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(names: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for n in names {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                "1.2.3.4".parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn untrusted_peers_lose_every_origin_header() {
        let mut h = map(&[
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-port",
            "x-forwarded-prefix",
            "x-forwarded-client-cert",
            "x-original-url",
            "x-original-forwarded-for",
            "x-rewrite-url",
            "x-real-ip",
            "x-client-ip",
            "true-client-ip",
            "x_forwarded_for",
            "x-custom_header",
            "accept",
            "x-request-id",
        ]);
        strip(&mut h, false);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "x-request-id"]);
    }

    #[test]
    fn every_listed_name_starts_with_a_screened_letter() {
        for name in NAMES.iter().chain(PREFIXES) {
            assert!(
                from_proxies_only(name) || PREFIXES.contains(name),
                "{name} would be missed by the first-byte screen"
            );
        }
    }

    #[test]
    fn trusted_peers_keep_them_but_never_underscores() {
        let mut h = map(&["forwarded", "x-forwarded-for", "x-real-ip", "x_real_ip"]);
        strip(&mut h, true);
        assert_eq!(h.len(), 3);
        assert!(!h.contains_key("x_real_ip"));
    }
}
