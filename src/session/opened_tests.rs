//! The cache of opened sessions serves exactly what opening the same bytes would give again.

use super::codec_tests::{codec, request_with, session, K1, K2};
use super::*;
use crate::crypto::KeyRing;
use http::header::COOKIE;
use http::HeaderValue;
use std::sync::Arc;

const NOW: u64 = 1500;

/// Reads `headers` through the cache `n` times; the last opening.
fn read_n(c: &CookieCodec, headers: &http::HeaderMap, now: u64, n: usize) -> Opening {
    let mut last = None;
    for _ in 0..n {
        last = Some(c.read_cached(&c.incoming(headers), now));
    }
    last.expect("n > 0")
}

fn token(outcome: &ReadOutcome<Arc<Session>>) -> Option<&str> {
    match outcome {
        ReadOutcome::Valid { session, .. } => Some(session.access_token.expose()),
        _ => None,
    }
}

#[test]
fn a_repeat_cookie_is_served_with_its_bearer_value_ready() {
    let c = codec(K1);
    let headers = request_with(&c.seal(&session(900), NOW));
    let first = read_n(&c, &headers, NOW, 1);
    assert_eq!(token(&first.outcome), Some(&*"a".repeat(900)));
    assert!(first.bearer.is_none(), "opened, not from the cache");
    // Kept on its second sighting, served from the third.
    let third = read_n(&c, &headers, NOW, 2);
    assert_eq!(token(&third.outcome), Some(&*"a".repeat(900)));
    let bearer = third.bearer.expect("from the cache");
    assert_eq!(bearer, format!("Bearer {}", "a".repeat(900)).as_str());
    assert!(bearer.is_sensitive());
    assert!(matches!(
        third.outcome,
        ReadOutcome::Valid {
            retired_key: false,
            ..
        }
    ));
}

#[test]
fn only_the_same_bytes_hit() {
    let c = codec(K1);
    let sealed = c.seal(&session(900), NOW);
    let headers = request_with(&sealed);
    assert!(read_n(&c, &headers, NOW, 3).bearer.is_some());
    // The same value with one byte changed in the middle: same length, same tail (the slot
    // it hashes to), not the same bytes.
    let line = sealed[0].to_str().expect("ascii").to_string();
    let (pair, _) = line.split_once(';').expect("attributes");
    let mut bytes = pair.as_bytes().to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
    let mut tampered = http::HeaderMap::new();
    tampered.insert(COOKIE, HeaderValue::from_bytes(&bytes).expect("value"));
    for _ in 0..3 {
        let opening = c.read_cached(&c.incoming(&tampered), NOW);
        assert!(matches!(opening.outcome, ReadOutcome::Invalid));
        assert!(opening.bearer.is_none());
    }
    // Nor is the genuine entry disturbed.
    assert!(read_n(&c, &headers, NOW, 1).bearer.is_some());
}

#[test]
fn a_new_key_ring_is_never_answered_from_the_old_one() {
    let c = codec(K1);
    let headers = request_with(&c.seal(&session(100), NOW));
    assert!(read_n(&c, &headers, NOW, 3).bearer.is_some());
    // A ring without the key that sealed it: the value does not open any more.
    c.set_keys(KeyRing::parse(K2).expect("keys"));
    let opening = read_n(&c, &headers, NOW, 3);
    assert!(matches!(opening.outcome, ReadOutcome::UnknownKey));
    // The key back, but retired: opened again, and now due to be re-sealed.
    c.set_keys(KeyRing::parse(&format!("{K2},{K1}")).expect("keys"));
    let opening = read_n(&c, &headers, NOW, 1);
    assert!(matches!(
        opening.outcome,
        ReadOutcome::Valid {
            retired_key: true,
            ..
        }
    ));
    assert!(opening.bearer.is_none(), "the old entry was not served");
    assert!(read_n(&c, &headers, NOW, 2).bearer.is_some());
}

#[test]
fn the_absolute_lifetime_is_checked_on_every_hit() {
    let c = codec(K1);
    let headers = request_with(&c.seal(&session(100), NOW));
    assert!(read_n(&c, &headers, NOW, 3).bearer.is_some());
    // started_at 1000, lifetime 3600 s.
    let late = c.read_cached(&c.incoming(&headers), 4600);
    assert!(matches!(late.outcome, ReadOutcome::Invalid));
}

#[test]
fn a_dpop_bound_session_gets_no_bearer_value() {
    let c = codec(K1);
    let mut s = session(100);
    s.dpop = Some(crate::dpop::DpopKey::generate().expect("key"));
    s.dpop_bound = true;
    let headers = request_with(&c.seal(&s, NOW));
    let opening = read_n(&c, &headers, NOW, 3);
    assert!(matches!(opening.outcome, ReadOutcome::Valid { .. }));
    assert!(opening.bearer.is_none());
}

#[test]
fn a_chunked_session_is_served_with_its_bearer_value_ready() {
    let c = codec(K1);
    let sealed = c.seal(&session(4000), NOW);
    assert!(sealed.len() > 1, "chunked");
    let headers = request_with(&sealed);
    let first = read_n(&c, &headers, NOW, 1);
    assert!(first.bearer.is_none(), "opened, not from the cache");
    let third = read_n(&c, &headers, NOW, 2);
    assert_eq!(token(&third.outcome), Some(&*"a".repeat(4000)));
    let bearer = third.bearer.expect("from the cache");
    assert_eq!(bearer, format!("Bearer {}", "a".repeat(4000)).as_str());
    assert_eq!(c.opened.large_entries(), (1, 1));
}

/// At most `LARGE_ENTRIES` slots hold a chunked value; the others are opened every time. The
/// count follows every entry that comes and goes: replaced by small ones, and a new key ring.
#[test]
fn chunked_values_take_at_most_their_share_of_the_slots() {
    let c = codec(K1);
    let mut large_hits = 0;
    for _ in 0..40 {
        let headers = request_with(&c.seal(&session(4000), NOW));
        let opening = read_n(&c, &headers, NOW, 3);
        assert_eq!(token(&opening.outcome), Some(&*"a".repeat(4000)));
        large_hits += usize::from(opening.bearer.is_some());
        let (counted, found) = c.opened.large_entries();
        assert_eq!(counted, found);
        assert!(counted <= opened::LARGE_ENTRIES, "{counted}");
    }
    assert_eq!(c.opened.large_entries().0, opened::LARGE_ENTRIES);
    assert!(large_hits >= opened::LARGE_ENTRIES, "{large_hits}");
    assert!(large_hits < 40, "some were opened every time: {large_hits}");
    // Small sessions over every slot: the large entries they replace are no longer counted.
    for _ in 0..600 {
        let headers = request_with(&c.seal(&session(100), NOW));
        read_n(&c, &headers, NOW, 2);
    }
    let (counted, found) = c.opened.large_entries();
    assert_eq!(counted, found);
    assert!(counted < opened::LARGE_ENTRIES, "{counted}");
    // A new key ring empties the cache, and the count with it.
    c.set_keys(KeyRing::parse(K2).expect("keys"));
    assert_eq!(c.opened.large_entries(), (0, 0));
}
