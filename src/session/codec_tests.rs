//! The cookie codec both ways: sealing, chunking, attributes, reading back, clearing.

use super::*;
use crate::config::SameSite;
use crate::config::SessionConfig;
use crate::crypto::KeyRing;
use crate::secret::{AccessToken, RefreshToken};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

pub(super) fn codec(keys: &str) -> CookieCodec {
    let config = SessionConfig {
        cookie_name: "__Host-th".into(),
        secure: true,
        same_site: SameSite::Strict,
        lifetime: Duration::from_secs(3600),
        refresh_skew: Duration::from_secs(30),
        rotation_grace: Duration::from_secs(60),
        reuse_window: Duration::from_secs(600),
        max_tracked_rotations: 10,
        max_ended_sessions: 10,
        claims: vec![],
        idle_timeout: None,
        idle_touch_interval: Duration::from_secs(60),
    };
    CookieCodec::new(&config, Arc::new(KeyRing::parse(keys).expect("keys")))
}

pub(super) const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub(super) const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

pub(super) fn session(token_len: usize) -> Session {
    Session {
        id: "sid".into(),
        refresh_token: RefreshToken::new("r".repeat(token_len)),
        access_token: AccessToken::new("a".repeat(token_len)),
        access_expires_at: 2000,
        access_issued_at: 1000,
        scope: "openid".into(),
        claims: Default::default(),
        id_token: None,
        started_at: 1000,
        sub: None,
        sid: None,
        last_used_at: 0,
        dpop: None,
        dpop_bound: false,
    }
}

pub(super) fn request_with(set_cookies: &[HeaderValue]) -> HeaderMap {
    let pairs: Vec<String> = set_cookies
        .iter()
        .map(|v| {
            v.to_str()
                .expect("ascii")
                .split(';')
                .next()
                .expect("pair")
                .to_string()
        })
        .collect();
    let mut h = HeaderMap::new();
    h.insert(
        COOKIE,
        HeaderValue::from_str(&format!("app=1; {}", pairs.join("; "))).expect("hv"),
    );
    h
}

fn open(c: &CookieCodec, headers: &HeaderMap) -> ReadOutcome {
    c.read(&c.incoming(headers), 1500)
}

#[test]
fn attributes_are_host_prefix_strict_httponly_secure() {
    let c = codec(K1);
    let cookies = c.seal(&session(10), 1500);
    assert_eq!(cookies.len(), 1);
    let line = cookies[0].to_str().expect("ascii");
    assert!(line.starts_with("__Host-th="), "{line}");
    for attr in [
        "; Path=/",
        "; Secure",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=3100",
    ] {
        assert!(line.contains(attr), "{attr} missing in {line}");
    }
    assert!(!line.contains("Domain"), "{line}");
}

#[test]
fn large_sessions_are_chunked_and_reassembled() {
    let c = codec(K1);
    let cookies = c.seal(&session(6000), 1500);
    assert!(cookies.len() >= 4, "{} cookies", cookies.len());
    for v in &cookies {
        assert!(v.len() < 4096, "each cookie fits the browser limit");
    }
    match open(&c, &request_with(&cookies)) {
        ReadOutcome::Valid {
            session,
            retired_key,
        } => {
            assert_eq!(session.access_token.expose().len(), 6000);
            assert!(!retired_key);
        }
        other => panic!("expected a session, got {other:?}"),
    }
    // A missing chunk is not a session.
    let mut missing = cookies.clone();
    missing.remove(2);
    assert!(matches!(
        open(&c, &request_with(&missing)),
        ReadOutcome::Invalid
    ));
}

#[test]
fn an_oversized_session_drops_its_id_token_to_fit() {
    let c = codec(K1);
    let mut s = session(10);
    s.id_token = Some(crate::secret::IdToken::new("i".repeat(40_000)));
    let cookies = c.seal(&s, 1500);
    assert!(cookies.len() <= MAX_CHUNKS, "{} cookies", cookies.len());
    match open(&c, &request_with(&cookies)) {
        ReadOutcome::Valid { session, .. } => {
            assert!(session.id_token.is_none());
            assert_eq!(session.refresh_token.expose(), s.refresh_token.expose());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn stale_chunks_are_cleared_when_the_session_shrinks() {
    let c = codec(K1);
    let big = c.seal(&session(6000), 1500);
    let headers = request_with(&big);
    let incoming = c.incoming(&headers);
    let small = c.seal(&session(10), 1500);
    let clears = c.clear_stale(small.len(), &incoming.presence());
    assert_eq!(clears.len(), big.len() - 1);
    for v in clears {
        let line = v.to_str().expect("ascii");
        assert!(
            line.contains("Max-Age=0") && line.starts_with("__Host-th."),
            "{line}"
        );
    }
}

#[test]
fn tampered_foreign_and_expired_cookies_are_invalid_not_errors() {
    let c = codec(K1);
    let good = c.seal(&session(10), 1500);
    let line = good[0].to_str().expect("ascii").to_string();
    let value = line
        .split(';')
        .next()
        .expect("pair")
        .split_once('=')
        .expect("=")
        .1
        .to_string();
    let mut h = HeaderMap::new();
    let mut bytes = value.clone().into_bytes();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let tampered = format!("__Host-th={}", String::from_utf8(bytes).expect("ascii"));
    h.insert(COOKIE, HeaderValue::from_str(&tampered).expect("hv"));
    assert!(matches!(open(&c, &h), ReadOutcome::Invalid));
    h.insert(COOKIE, HeaderValue::from_static("__Host-th=garbage"));
    assert!(matches!(open(&c, &h), ReadOutcome::Invalid));
    h.insert(COOKIE, HeaderValue::from_static("__Host-th=9.x"));
    assert!(matches!(open(&c, &h), ReadOutcome::Invalid));
    // Another key id: this replica may not have received the key yet (never cleared).
    assert!(matches!(
        open(&codec(K2), &request_with(&good)),
        ReadOutcome::UnknownKey
    ));
    // The same key id with other key bytes: forged or foreign, invalid.
    let impostor = K2.replace("k2:", "k1:");
    assert!(matches!(
        open(&codec(&impostor), &request_with(&good)),
        ReadOutcome::Invalid
    ));
    let c_late = c.read(&c.incoming(&request_with(&good)), 1000 + 3600);
    assert!(
        matches!(c_late, ReadOutcome::Invalid),
        "past the absolute lifetime"
    );
    assert!(matches!(open(&c, &HeaderMap::new()), ReadOutcome::Absent));
}

#[test]
fn retired_key_is_flagged_for_resealing() {
    let old = codec(K1);
    let cookies = old.seal(&session(10), 1500);
    let rotated = codec(&format!("{K2},{K1}"));
    assert!(matches!(
        open(&rotated, &request_with(&cookies)),
        ReadOutcome::Valid {
            retired_key: true,
            ..
        }
    ));
}

#[test]
fn strip_own_keeps_the_apps_cookies() {
    let c = codec(K1);
    let mut h = request_with(&c.seal(&session(6000), 1500));
    h.append(
        COOKIE,
        HeaderValue::from_static("theme=dark; __Host-th_flow_x=1"),
    );
    let kept = c.strip_own(&h).expect("app cookies remain");
    assert_eq!(kept, "app=1; theme=dark");
    let mut only_ours = HeaderMap::new();
    only_ours.insert(COOKIE, HeaderValue::from_static("__Host-th=abc"));
    assert!(c.strip_own(&only_ours).is_none());
}
