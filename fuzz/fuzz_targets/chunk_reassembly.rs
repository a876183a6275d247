//! Fuzzes the session cookie codec on arbitrary `Cookie` header bytes: chunk collection
//! (`incoming`), reassembly and opening (`read`), clearing, and stripping our cookies before
//! the request goes upstream (`strip_own`).
//!
//! Input: header values separated by `\n`, each sent as its own `Cookie` header (as HTTP/2
//! may split them); bytes that are not a valid header value are skipped like hyper would.
//! Invalid UTF-8 (obs-text) is a valid header value and reaches the codec.
//!
//! Invariants: no panic; at most `MAX_CHUNKS` cookies counted; `Absent` exactly when none of
//! ours came; a `Valid` session is one of the seed sessions (nothing else is sealed with the
//! fixed test keys) and survives a re-seal; `strip_own` never forwards one of our cookies and
//! keeps every other pair; `Presence::foreign_cookies` says whether `strip_own` leaves
//! anything; every clearing `Set-Cookie` targets one of our names.

#![no_main]

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};
use token_handler::config::Config;
use token_handler::session::{CookieCodec, ReadOutcome, MAX_CHUNKS};

/// The crate's own unit-test keys (public): K2 seals, K1 is retired.
const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
/// Unix time the seed sessions started at (fuzz/README.md); "now" is a minute later.
const SEED_STARTED_AT: u64 = 1_700_000_000;
const NOW: u64 = SEED_STARTED_AT + 60;
/// Session ids of the seed cookies: the only sessions that may open.
const SEED_IDS: &[&str] = &["seed-small", "seed-chunked", "seed-retired"];

const CONFIG: &str = r#"
[upstream]
url = "http://127.0.0.1:3000"
[idp]
dialect = "tokenidp"
issuer = "https://idp.example.com"
client_id = "spa"
"#;

fn codec() -> &'static CookieCodec {
    static CODEC: OnceLock<CookieCodec> = OnceLock::new();
    CODEC.get_or_init(|| {
        let keys = format!("{K2},{K1}");
        let env = move |name: &str| (name == "TOKEN_HANDLER_COOKIE_KEYS").then(|| keys.clone());
        let config = Config::from_toml(CONFIG, &env).expect("fuzz config");
        assert_eq!(config.session.cookie_name, "__Host-th_session");
        CookieCodec::new(&config.session, Arc::clone(&config.secrets.cookie_keys))
    })
}

/// The `name=value` part of a `Set-Cookie` value.
fn pair(set_cookie: &HeaderValue) -> String {
    let line = set_cookie.to_str().expect("our Set-Cookie is ASCII");
    line.split(';')
        .next()
        .expect("split yields one")
        .to_string()
}

fuzz_target!(|data: &[u8]| {
    let codec = codec();
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, value);
        }
    }
    let incoming = codec.incoming(&headers);
    assert!(incoming.present() <= MAX_CHUNKS);
    let outcome = codec.read(&incoming, NOW);
    assert_eq!(
        matches!(outcome, ReadOutcome::Absent),
        !incoming.any(),
        "Absent exactly when none of our cookies came"
    );
    if let ReadOutcome::Valid { session, .. } = &outcome {
        assert!(
            SEED_IDS.contains(&session.id.as_str()),
            "opened a session we never sealed: {:?}",
            session.id
        );
        // Re-sealing gives cookies that read back to the same session.
        let cookies = codec.seal(session, NOW);
        assert!(cookies.len() <= MAX_CHUNKS, "{} cookies", cookies.len());
        let pairs: Vec<String> = cookies.iter().map(pair).collect();
        let mut again = HeaderMap::new();
        again.insert(
            COOKIE,
            HeaderValue::from_str(&pairs.join("; ")).expect("header"),
        );
        match codec.read(&codec.incoming(&again), NOW) {
            ReadOutcome::Valid { session: s, .. } => assert_eq!(s.id, session.id),
            other => panic!("re-sealed session does not read back: {other:?}"),
        }
        for v in codec.clear_stale(cookies.len(), &incoming.presence()) {
            assert!(pair(&v).starts_with(codec.name()));
        }
    }
    let clear = codec.clear(&incoming.presence());
    assert!(clear.len() <= MAX_CHUNKS);
    for v in &clear {
        assert!(pair(v).starts_with(codec.name()));
    }

    // strip_own: none of ours upstream, all of theirs kept, byte for byte (browsers send
    // UTF-8 cookie values as raw bytes: they pass through as they came).
    fn pairs(bytes: &[u8]) -> Vec<&[u8]> {
        bytes
            .split(|&b| b == b';')
            .map(<[u8]>::trim_ascii)
            .filter(|p| !p.is_empty())
            .collect()
    }
    let own = |p: &[u8]| {
        let name = p.iter().position(|&b| b == b'=').map_or(p, |i| &p[..i]);
        name.trim_ascii().starts_with(codec.name().as_bytes())
    };
    let expected: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| pairs(v.as_bytes()))
        .filter(|p| !own(p))
        .collect();
    let stripped = codec.strip_own(&headers);
    assert_eq!(
        incoming.presence().foreign_cookies(),
        stripped.is_some(),
        "foreign_cookies() disagrees with strip_own: {stripped:?}"
    );
    match stripped {
        None => assert!(expected.is_empty(), "dropped {expected:?}"),
        Some(kept) => {
            let got = pairs(kept.as_bytes());
            for p in &got {
                assert!(!own(p), "forwarded our cookie {p:?}");
            }
            assert_eq!(got, expected);
        }
    }
});
