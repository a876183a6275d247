//! Server-provided nonces (RFC 9449 §8 for the authorization server, §9 for a resource
//! server): a server that wants fresh proofs answers `use_dpop_nonce` with a `DPoP-Nonce`
//! header; the client retries once with that nonce in the proof and keeps using it until the
//! server sends another. One cache per server (the IdP, each upstream), shared by all sessions
//! of a replica: the nonce is the server's, not the session's.

use arc_swap::ArcSwapOption;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, StatusCode};
use std::sync::Arc;

/// The proof header (RFC 9449 §4.1).
pub static DPOP: HeaderName = HeaderName::from_static("dpop");
/// The server's nonce (RFC 9449 §8.1).
pub static DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");
/// Longest nonce kept: servers send short opaque strings; a huge one would be echoed in
/// every proof.
const MAX_NONCE: usize = 512;

/// The latest nonce a server gave.
#[derive(Debug, Default)]
pub struct NonceCache(ArcSwapOption<String>);

impl NonceCache {
    pub fn current(&self) -> Option<Arc<String>> {
        self.0.load_full()
    }

    /// Keeps the `DPoP-Nonce` of a response, if it has a valid one. True when it is new.
    pub fn learn(&self, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers.get(&DPOP_NONCE).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        // RFC 9449 §8.1: NQCHAR = %x21 / %x23-5B / %x5D-7E, at least one.
        let valid = !nonce.is_empty()
            && nonce.len() <= MAX_NONCE
            && nonce
                .bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e));
        if !valid || self.current().is_some_and(|c| *c == nonce) {
            return false;
        }
        self.0.store(Some(Arc::new(nonce.to_string())));
        true
    }
}

/// A resource server's challenge (RFC 9449 §9): `401` with
/// `WWW-Authenticate: DPoP error="use_dpop_nonce"` (and, for it to be answerable, a nonce).
pub fn resource_challenge(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED
        && headers.contains_key(&DPOP_NONCE)
        && headers.get_all(WWW_AUTHENTICATE).iter().any(|v| {
            let v = v.to_str().unwrap_or("").to_ascii_lowercase();
            v.trim_start().starts_with("dpop")
                && (v.contains("error=\"use_dpop_nonce\"") || v.contains("error=use_dpop_nonce"))
        })
}

/// An authorization server's challenge (RFC 9449 §8): `400` (or `401`) with the JSON error
/// `use_dpop_nonce` and a nonce.
pub fn provider_challenge(status: u16, headers: &HeaderMap, body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Error<'a> {
        #[serde(borrow)]
        error: Option<std::borrow::Cow<'a, str>>,
    }
    matches!(status, 400 | 401)
        && headers.contains_key(&DPOP_NONCE)
        && serde_json::from_slice::<Error<'_>>(body)
            .is_ok_and(|e| e.error.as_deref() == Some("use_dpop_nonce"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                (*name).clone(),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        h
    }

    #[test]
    fn a_nonce_is_kept_until_another_comes() {
        let cache = NonceCache::default();
        assert!(cache.current().is_none());
        assert!(cache.learn(&headers(&[(&DPOP_NONCE, "n-1")])));
        assert!(!cache.learn(&headers(&[(&DPOP_NONCE, "n-1")])), "not new");
        assert!(
            !cache.learn(&HeaderMap::new()),
            "an answer without one keeps it"
        );
        assert_eq!(cache.current().as_deref().map(String::as_str), Some("n-1"));
        for bad in ["", "with space", "quo\"te", "back\\slash"] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(DPOP_NONCE.clone(), v);
            }
            assert!(!cache.learn(&h), "{bad:?}");
        }
        assert!(!cache.learn(&headers(&[(&DPOP_NONCE, &"n".repeat(513))])));
        assert!(cache.learn(&headers(&[(&DPOP_NONCE, "n-2")])));
        assert_eq!(cache.current().as_deref().map(String::as_str), Some("n-2"));
    }

    #[test]
    fn challenges_are_recognised_only_in_their_shape() {
        let rs = headers(&[
            (
                &WWW_AUTHENTICATE,
                r#"DPoP error="use_dpop_nonce", error_description="x""#,
            ),
            (&DPOP_NONCE, "n"),
        ]);
        assert!(resource_challenge(StatusCode::UNAUTHORIZED, &rs));
        assert!(!resource_challenge(StatusCode::FORBIDDEN, &rs));
        let no_nonce = headers(&[(&WWW_AUTHENTICATE, r#"DPoP error="use_dpop_nonce""#)]);
        assert!(!resource_challenge(StatusCode::UNAUTHORIZED, &no_nonce));
        let other = headers(&[
            (&WWW_AUTHENTICATE, r#"DPoP error="invalid_token""#),
            (&DPOP_NONCE, "n"),
        ]);
        assert!(!resource_challenge(StatusCode::UNAUTHORIZED, &other));

        let nonce = headers(&[(&DPOP_NONCE, "n")]);
        let body = br#"{"error":"use_dpop_nonce","error_description":"nonce required"}"#;
        assert!(provider_challenge(400, &nonce, body));
        assert!(!provider_challenge(400, &HeaderMap::new(), body));
        assert!(!provider_challenge(500, &nonce, body));
        assert!(!provider_challenge(
            400,
            &nonce,
            br#"{"error":"invalid_grant"}"#
        ));
        assert!(!provider_challenge(400, &nonce, b"not json"));
    }
}
