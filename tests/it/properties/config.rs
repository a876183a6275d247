//! Configs the proxy accepts are usable: the shipped example config and the inputs the
//! `config_parse` fuzz target found (fuzz/regressions/config_parse/).

use super::{pair, regression, request, K1, NOW};
use serde_json::Map;
use std::sync::Arc;
use token_handler::config::Config;
use token_handler::secret::{AccessToken, RefreshToken};
use token_handler::session::{CookieCodec, ReadOutcome, Session};

/// What the `config_parse` fuzz target checks of an *accepted* config: start-up and the
/// session codec can use it (every problem must be reported before anything is bound).
fn accepted_config_is_usable(text: &str) {
    let env = |name: &str| match name {
        "TOKEN_HANDLER_COOKIE_KEYS" => Some(K1.to_string()),
        "TOKEN_HANDLER_CLIENT_SECRET" => Some("s".to_string()),
        _ => None,
    };
    let Ok(config) = Config::from_toml(text, &env) else {
        return;
    };
    assert!(
        !config.server.reload_interval.is_zero(),
        "server.reload_interval = 0 accepted: tokio::time::interval panics on it"
    );
    assert!(
        config.server.max_connections <= usize::MAX >> 3,
        "server.max_connections = {} accepted: tokio's Semaphore::new panics above MAX_PERMITS",
        config.server.max_connections
    );
    let c = CookieCodec::new(&config.session, Arc::clone(&config.secrets.cookie_keys));
    let session = Session {
        id: "x".into(),
        refresh_token: RefreshToken::new("r"),
        access_token: AccessToken::new("a"),
        access_expires_at: NOW + 60,
        access_issued_at: NOW,
        scope: String::new(),
        claims: Map::new().into(),
        id_token: None,
        started_at: NOW,
        sub: None,
        sid: None,
        last_used_at: 0,
        dpop: None,
        dpop_bound: false,
    };
    let ours: Vec<String> = c.seal(&session, NOW).iter().map(pair).collect();
    let h = request(&ours, &[], 0);
    assert!(
        matches!(c.read(&c.incoming(&h), NOW), ReadOutcome::Valid { .. }),
        "a session started now does not read back under session.lifetime = {:?}",
        config.session.lifetime
    );
}

#[test]
fn shipped_configs_are_usable() {
    let path = format!("{}/config/token-handler.toml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("example config");
    accepted_config_is_usable(&text);
}

#[test]
fn regression_config_reload_interval_zero() {
    accepted_config_is_usable(
        &String::from_utf8(regression("config_parse", "reload_zero.toml")).expect("utf8"),
    );
}

#[test]
fn regression_config_max_connections_huge() {
    accepted_config_is_usable(
        &String::from_utf8(regression("config_parse", "max_conn.toml")).expect("utf8"),
    );
}

#[test]
fn regression_config_lifetime_huge() {
    accepted_config_is_usable(
        &String::from_utf8(regression("config_parse", "lifetime_huge.toml")).expect("utf8"),
    );
}

#[test]
fn regression_config_lifetime_zero() {
    accepted_config_is_usable(
        &String::from_utf8(regression("config_parse", "lifetime_zero.toml")).expect("utf8"),
    );
}
