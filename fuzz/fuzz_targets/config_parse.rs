//! Fuzzes `Config::from_toml` on arbitrary text (with valid secrets in the environment, so
//! validation runs to the end), then checks that a config it *accepts* can be used: design
//! habit 4 says every problem is caught before a port is bound, so an accepted config must
//! not make the proxy panic or misbehave later.
//!
//! Invariants: `from_toml` never panics; for an accepted config, a session started now seals
//! and reads back (the absolute lifetime does not overflow), and the values handed to tokio
//! at start-up are ones tokio accepts (`reload_interval` non-zero for `time::interval`,
//! `max_connections` within `Semaphore::MAX_PERMITS`).
//!
//! Inputs naming files (`ca_file`, `tls_*_file`) are skipped: validation reads those files,
//! and a fuzzer that finds `/dev/zero` or a FIFO would hang the run, not find a bug.

#![no_main]

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use token_handler::config::Config;
use token_handler::secret::{AccessToken, RefreshToken};
use token_handler::session::{CookieCodec, ReadOutcome, Session};

const KEYS: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// A realistic "now" (Unix seconds).
const NOW: u64 = 1_700_000_000;
/// `tokio::sync::Semaphore::MAX_PERMITS` (tokio 1.x: `usize::MAX >> 3`); `Semaphore::new`
/// panics above it.
const MAX_PERMITS: usize = usize::MAX >> 3;

fn names_a_file(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    table.values().any(|section| {
        section
            .as_table()
            .is_some_and(|t| t.keys().any(|k| k.contains("file")))
    })
}

fn env(name: &str) -> Option<String> {
    match name {
        "TOKEN_HANDLER_COOKIE_KEYS" => Some(KEYS.to_string()),
        "TOKEN_HANDLER_CLIENT_SECRET" => Some("fuzz-secret".to_string()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_a_file(text) {
        return;
    }
    let Ok(config) = Config::from_toml(text, &env) else {
        return;
    };
    assert!(
        !config.server.reload_interval.is_zero(),
        "accepted server.reload_interval = 0 (tokio::time::interval panics on it)"
    );
    assert!(
        config.server.max_connections <= MAX_PERMITS,
        "accepted server.max_connections = {} (tokio's Semaphore::new panics above {MAX_PERMITS})",
        config.server.max_connections
    );
    let codec = CookieCodec::new(&config.session, Arc::clone(&config.secrets.cookie_keys));
    let session = Session {
        id: "fuzz".into(),
        refresh_token: RefreshToken::new("r"),
        access_token: AccessToken::new("a"),
        access_expires_at: NOW + 60,
        access_issued_at: NOW,
        scope: config.idp.scope.clone(),
        claims: Default::default(),
        id_token: None,
        started_at: NOW,
        sub: None,
        sid: None,
        last_used_at: NOW,
        dpop: None,
        dpop_bound: false,
    };
    let cookies = codec.seal(&session, NOW);
    let pairs: Vec<&str> = cookies
        .iter()
        .map(|v| {
            v.to_str()
                .expect("ASCII")
                .split(';')
                .next()
                .expect("one part")
        })
        .collect();
    let mut headers = HeaderMap::new();
    headers.insert(
        COOKIE,
        HeaderValue::from_str(&pairs.join("; ")).expect("header"),
    );
    assert!(
        matches!(
            codec.read(&codec.incoming(&headers), NOW),
            ReadOutcome::Valid { .. }
        ),
        "a session started now does not read back under session.lifetime = {:?}",
        config.session.lifetime
    );
});
