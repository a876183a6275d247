//! Property tests (proptest) for the hostile-input surfaces: cookie sealing and opening, the
//! session cookie codec (chunking, Cookie-header parsing, stripping), and the classification
//! of token-endpoint answers. The fuzz targets in `fuzz/` explore the same functions with
//! coverage guidance; the inputs they found are replayed in `fuzz_regressions` and `config`.
//!
//! Case counts are kept modest (256, fewer for the large-session cases) so the suite stays
//! fast; `PROPTEST_CASES=10000 cargo test --test it properties::` digs deeper.
//!
//! This file holds what the subjects share: the keys, the case counts, sessions of any size
//! and the cookie codec built around them.

mod config;
mod cookie_chunking;
mod fuzz_regressions;
mod fuzz_seeds;
mod idp_answers;
mod sealing;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use serde_json::{Map, Value};
use std::sync::Arc;
use token_handler::config::Config;
use token_handler::secret::{AccessToken, IdToken, RefreshToken};
use token_handler::session::{CookieCodec, Session};

/// The crate's own unit-test keys (public).
const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const NOW: u64 = 1_700_000_000;

/// `default` cases, or `PROPTEST_CASES` when set (`with_cases` alone would ignore it).
fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        // Failing cases are saved next to the module that found them
        // (`<module>.proptest-regressions`), as they were before the tests became modules of
        // one binary; proptest's default would start a `tests/proptest-regressions/` tree.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

fn config() -> ProptestConfig {
    cases(256)
}

// ---------------------------------------------------------------------------------------
// CookieCodec: Session <-> cookies (shared by the chunking, config and fuzz modules)

/// A codec for `cookie_name` (with or without `__Host-`), keys K2 (sealing) and K1 (retired).
fn codec(cookie_name: &str, host_prefix: bool) -> CookieCodec {
    let toml = format!(
        r#"
[upstream]
url = "http://127.0.0.1:3000"
[idp]
dialect = "tokenidp"
issuer = "https://idp.example.com"
client_id = "spa"
redirect_uri = "https://app.example.com/auth/callback"
[session]
cookie_name = "{cookie_name}"
host_prefix = {host_prefix}
"#
    );
    let keys = format!("{K2},{K1}");
    let env = move |name: &str| (name == "TOKEN_HANDLER_COOKIE_KEYS").then(|| keys.clone());
    let config = Config::from_toml(&toml, &env).expect("test config");
    CookieCodec::new(&config.session, Arc::clone(&config.secrets.cookie_keys))
}

/// `len` characters of a token alphabet (base64 with `+/=`, JWT dots), pseudo-random from
/// `seed`: cheap to generate at 20 KB, unlike a regex strategy.
fn token(len: usize, seed: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=.-_";
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

#[derive(Debug, Clone)]
struct SessionSpec {
    access_len: usize,
    refresh_len: usize,
    id_token_len: Option<usize>,
    seed: u64,
    claims: Map<String, Value>,
    scope: String,
}

fn session_spec(max_access: usize) -> impl Strategy<Value = SessionSpec> {
    (
        0..=max_access,
        0..=4_000usize,
        prop::option::of(0..=2_000usize),
        any::<u64>(),
        prop::collection::btree_map("[a-z_]{1,12}", any::<String>(), 0..5),
        "[ -~]{0,60}",
    )
        .prop_map(
            |(access_len, refresh_len, id_token_len, seed, claims, scope)| SessionSpec {
                access_len,
                refresh_len,
                id_token_len,
                seed,
                claims: claims
                    .into_iter()
                    .map(|(k, v)| (k, Value::String(v)))
                    .collect(),
                scope,
            },
        )
}

fn build_session(spec: &SessionSpec) -> Session {
    Session {
        id: token(16, spec.seed ^ 1),
        refresh_token: RefreshToken::new(token(spec.refresh_len, spec.seed ^ 2)),
        access_token: AccessToken::new(token(spec.access_len, spec.seed ^ 3)),
        access_expires_at: NOW + 300,
        access_issued_at: NOW,
        scope: spec.scope.clone(),
        claims: spec.claims.clone().into(),
        id_token: spec
            .id_token_len
            .map(|len| IdToken::new(token(len, spec.seed ^ 4))),
        started_at: NOW - 60,
        sub: None,
        sid: None,
        last_used_at: 0,
        dpop: None,
        dpop_bound: false,
    }
}

/// The `name=value` part of a `Set-Cookie` value.
fn pair(set_cookie: &HeaderValue) -> String {
    let line = set_cookie.to_str().expect("ASCII Set-Cookie");
    line.split(';').next().expect("one part").to_string()
}

/// A request carrying `ours` and `theirs` in a shuffled order over 1-3 `Cookie` headers.
fn request(ours: &[String], theirs: &[String], seed: u64) -> HeaderMap {
    let mut all: Vec<&String> = ours.iter().chain(theirs).collect();
    let n = all.len();
    all.rotate_left((seed as usize) % n.max(1));
    if seed & 1 == 1 {
        all.reverse();
    }
    let headers_count = 1 + (seed >> 8) as usize % 3;
    let mut h = HeaderMap::new();
    for part in all.chunks(n.div_ceil(headers_count).max(1)) {
        let line: Vec<&str> = part.iter().map(|s| s.as_str()).collect();
        h.append(
            COOKIE,
            HeaderValue::from_str(&line.join("; ")).expect("header"),
        );
    }
    h
}

/// An input found by a fuzz target, from fuzz/regressions/<target>/.
fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/fuzz/regressions/{target}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
