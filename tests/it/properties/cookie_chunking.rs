//! CookieCodec: Session <-> cookies. Sessions of every size round-trip through chunked cookies
//! spread over shuffled `Cookie` headers next to the app's own cookies; a missing or foreign
//! chunk invalidates the session; hostile headers never panic, never open and never forward
//! one of our cookies upstream.

use super::{build_session, cases, codec, config, pair, request, session_spec, SessionSpec, NOW};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::Map;
use token_handler::session::{CookieCodec, ReadOutcome, MAX_CHUNKS};

fn app_cookies() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z][a-z0-9_]{0,8}=[A-Za-z0-9%._-]{0,20}", 0..4)
}

fn check_round_trip(
    c: &CookieCodec,
    spec: &SessionSpec,
    theirs: &[String],
    seed: u64,
) -> Result<usize, TestCaseError> {
    let session = build_session(spec);
    let cookies = c.seal(&session, NOW);
    // Sessions past the chunk budget are another matter (see the note in fuzz/README.md).
    prop_assume!(cookies.len() <= MAX_CHUNKS);
    for v in &cookies {
        prop_assert!(
            v.len() < 4096,
            "a cookie over the browser limit: {} bytes",
            v.len()
        );
    }
    let ours: Vec<String> = cookies.iter().map(pair).collect();
    // App cookies that happen to share our name's prefix are ours by definition (is_own).
    let theirs: Vec<String> = theirs
        .iter()
        .filter(|p| !c.is_own(p.split('=').next().unwrap_or(p)))
        .cloned()
        .collect();
    let headers = request(&ours, &theirs, seed);
    let incoming = c.incoming(&headers);
    prop_assert_eq!(incoming.present(), cookies.len());
    match c.read(&incoming, NOW) {
        ReadOutcome::Valid {
            session: read,
            retired_key,
        } => {
            prop_assert!(!retired_key);
            prop_assert_eq!(read.to_bytes(), session.to_bytes());
        }
        other => prop_assert!(false, "expected the session back, got {:?}", other),
    }
    // Nothing of ours goes upstream; everything else does, in order.
    let kept = c.strip_own(&headers);
    let kept: Vec<String> = kept
        .map(|v| {
            v.to_str()
                .expect("text")
                .split("; ")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let mut expected: Vec<String> = Vec::new();
    for v in headers.get_all(COOKIE) {
        for p in v.to_str().expect("text").split("; ") {
            if !c.is_own(p.split('=').next().unwrap_or(p)) {
                expected.push(p.to_string());
            }
        }
    }
    prop_assert_eq!(kept, expected);
    Ok(cookies.len())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn codec_round_trip_small_sessions(
        spec in session_spec(3_000),
        theirs in app_cookies(),
        seed in any::<u64>(),
        name in "[A-Za-z0-9_-]{1,16}",
        host_prefix in any::<bool>(),
    ) {
        let c = codec(&name, host_prefix);
        check_round_trip(&c, &spec, &theirs, seed)?;
    }
}

proptest! {
    // Large sessions: AES-GCM over ~20 KB in a debug build; fewer cases keep the suite fast.
    #![proptest_config(cases(48))]

    #[test]
    fn codec_round_trip_chunked_sessions(
        spec in session_spec(16_000),
        theirs in app_cookies(),
        seed in any::<u64>(),
    ) {
        let c = codec("th_session", true);
        check_round_trip(&c, &spec, &theirs, seed)?;
    }

    #[test]
    fn a_missing_or_foreign_chunk_invalidates_the_session(
        spec in session_spec(16_000),
        drop in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let c = codec("th_session", true);
        let session = build_session(&spec);
        let cookies = c.seal(&session, NOW);
        prop_assume!(cookies.len() >= 2 && cookies.len() <= MAX_CHUNKS);
        let ours: Vec<String> = cookies.iter().map(pair).collect();
        // Drop one chunk.
        let mut missing = ours.clone();
        missing.remove(drop.index(ours.len()));
        let h = request(&missing, &[], seed);
        prop_assert!(matches!(c.read(&c.incoming(&h), NOW), ReadOutcome::Invalid));
        // Swap one chunk for the same chunk of another sealing of the same session.
        let other: Vec<String> = c.seal(&session, NOW).iter().map(pair).collect();
        prop_assume!(other.len() == ours.len());
        let mut mixed = ours.clone();
        let i = drop.index(ours.len());
        mixed[i] = other[i].clone();
        let h = request(&mixed, &[], seed);
        prop_assert!(matches!(c.read(&c.incoming(&h), NOW), ReadOutcome::Invalid));
    }

    #[test]
    fn arbitrary_cookie_headers_never_panic_and_never_open(
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..4),
        chunks in prop::collection::vec((0usize..12, "[A-Za-z0-9_.+-]{0,12}"), 0..40),
    ) {
        let c = codec("th_session", true);
        let mut h = HeaderMap::new();
        for line in &lines {
            if let Ok(v) = HeaderValue::from_bytes(line) {
                h.append(COOKIE, v);
            }
        }
        let many: Vec<String> = chunks
            .iter()
            .map(|(i, v)| {
                if *i == 0 {
                    format!("__Host-th_session={v}")
                } else {
                    format!("__Host-th_session.{i}={v}")
                }
            })
            .collect();
        if !many.is_empty() {
            h.append(COOKIE, HeaderValue::from_str(&many.join("; ")).expect("header"));
        }
        let incoming = c.incoming(&h);
        prop_assert!(incoming.present() <= MAX_CHUNKS);
        let outcome = c.read(&incoming, NOW);
        let opened = matches!(outcome, ReadOutcome::Valid { .. });
        prop_assert!(!opened, "junk opened as a session");
        prop_assert_eq!(matches!(outcome, ReadOutcome::Absent), !incoming.any());
        let kept = c.strip_own(&h);
        prop_assert_eq!(incoming.presence().foreign_cookies(), kept.is_some());
        if let Some(kept) = kept {
            for p in String::from_utf8_lossy(kept.as_bytes()).split(';') {
                let name = p.split('=').next().unwrap_or(p).trim();
                prop_assert!(!c.is_own(name), "forwarded {}", name);
            }
        }
        prop_assert!(c.clear(&incoming.presence()).len() <= MAX_CHUNKS);
    }
}

#[test]
fn thousands_of_chunk_cookies_and_duplicates() {
    let c = codec("th_session", true);
    let session = build_session(&SessionSpec {
        access_len: 9_000,
        refresh_len: 88,
        id_token_len: None,
        seed: 7,
        claims: Map::new(),
        scope: "openid".into(),
    });
    let ours: Vec<String> = c.seal(&session, NOW).iter().map(pair).collect();
    assert!(ours.len() >= 3);
    // Our real cookies first, then thousands of junk chunk cookies and duplicates: the first
    // of each name wins, the session opens, and the junk is not forwarded.
    let junk: Vec<String> = (0..5_000)
        .map(|i| format!("__Host-th_session.{}=junk{i}", i % 20))
        .chain((0..100).map(|i| format!("__Host-th_session=dup{i}")))
        .collect();
    let mut h = HeaderMap::new();
    h.append(COOKIE, HeaderValue::from_str(&ours.join("; ")).expect("hv"));
    h.append(COOKIE, HeaderValue::from_str(&junk.join("; ")).expect("hv"));
    h.append(COOKIE, HeaderValue::from_static("app=1"));
    h.append(
        COOKIE,
        HeaderValue::from_bytes(b"bad=\xff\xfe").expect("obs-text"),
    );
    let incoming = c.incoming(&h);
    assert_eq!(incoming.present(), MAX_CHUNKS);
    assert!(matches!(c.read(&incoming, NOW), ReadOutcome::Valid { .. }));
    // The app's cookies go upstream byte for byte, even outside ASCII.
    assert_eq!(
        c.strip_own(&h).expect("app cookie").as_bytes(),
        b"app=1; bad=\xff\xfe"
    );
    // Junk first: the request is anonymous (the first value wins and does not open).
    let mut h = HeaderMap::new();
    h.append(COOKIE, HeaderValue::from_str(&junk.join("; ")).expect("hv"));
    h.append(COOKIE, HeaderValue::from_str(&ours.join("; ")).expect("hv"));
    assert!(matches!(c.read(&c.incoming(&h), NOW), ReadOutcome::Invalid));
}
