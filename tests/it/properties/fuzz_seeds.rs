//! Seeds for the `chunk_reassembly` fuzz target: real sealed sessions, made with the crate's
//! own codec so that they follow its current format. The target opens them with the same
//! keys, cookie name and clock (see fuzz/fuzz_targets/chunk_reassembly.rs).

use super::{build_session, codec, pair, SessionSpec, K1};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use serde_json::{json, Map};
use std::sync::Arc;
use token_handler::config::Config;
use token_handler::session::{CookieCodec, ReadOutcome, Session};

/// `SEED_STARTED_AT` of the fuzz target.
const SEED_STARTED_AT: u64 = 1_700_000_000;

pub(super) fn seed_spec(token_len: usize) -> SessionSpec {
    let mut claims = Map::new();
    claims.insert("sub".into(), json!("usr:42"));
    claims.insert("name".into(), json!("Demo Ünïcødé"));
    SessionSpec {
        access_len: token_len,
        refresh_len: 88,
        id_token_len: Some(40),
        seed: 42,
        claims,
        scope: "openid profile email offline_access".into(),
    }
}

fn seed_session(id: &str, token_len: usize) -> Session {
    let mut s = build_session(&seed_spec(token_len));
    s.id = id.into();
    s.started_at = SEED_STARTED_AT;
    s.access_issued_at = SEED_STARTED_AT;
    s.access_expires_at = SEED_STARTED_AT + 300;
    s
}

/// `cargo test --test it -- --ignored write_fuzz_seeds` rewrites the sealed-session
/// seeds under fuzz/seeds/chunk_reassembly/ (after a change of the session or cookie format).
#[test]
#[ignore = "writes fuzz seed files; run by hand"]
fn write_fuzz_seeds() {
    let dir = format!("{}/fuzz/seeds/chunk_reassembly", env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(&dir).expect("seed dir");
    let write = |name: &str, lines: Vec<String>| {
        std::fs::write(format!("{dir}/{name}"), lines.join("\n")).expect("write seed");
    };
    let current = codec("th_session", true);
    let retired = {
        let toml = r#"
[upstream]
url = "http://127.0.0.1:3000"
[idp]
dialect = "tokenidp"
issuer = "https://idp.example.com"
client_id = "spa"
redirect_uri = "https://app.example.com/auth/callback"
"#;
        let env = |name: &str| (name == "TOKEN_HANDLER_COOKIE_KEYS").then(|| K1.to_string());
        let config = Config::from_toml(toml, &env).expect("config");
        CookieCodec::new(&config.session, Arc::clone(&config.secrets.cookie_keys))
    };
    let pairs = |c: &CookieCodec, s: &Session| -> Vec<String> {
        c.seal(s, SEED_STARTED_AT).iter().map(pair).collect()
    };
    let small = pairs(&current, &seed_session("seed-small", 30));
    let chunked = pairs(&current, &seed_session("seed-chunked", 9_000));
    let old = pairs(&retired, &seed_session("seed-retired", 30));
    assert!(chunked.len() >= 3, "{} chunks", chunked.len());
    write("small", vec![format!("theme=dark; {}; lang=en", small[0])]);
    write(
        "chunked_one_header",
        vec![format!("app=1; {}", chunked.join("; "))],
    );
    let mut reversed = chunked.clone();
    reversed.reverse();
    reversed.push("app=1".into());
    write("chunked_split_headers", reversed);
    let mut missing = chunked.clone();
    missing.remove(2);
    write("chunk_missing", vec![missing.join("; ")]);
    write("retired_key", vec![old.join("; ")]);
    write(
        "duplicates",
        vec![
            format!("__Host-th_session=garbage; {}", small[0]),
            format!("{}; {}", small[0], small[0]),
        ],
    );
    // Read back as the fuzz target does.
    for name in [
        "small",
        "chunked_one_header",
        "chunked_split_headers",
        "retired_key",
    ] {
        let data = std::fs::read(format!("{dir}/{name}")).expect("seed");
        let mut h = HeaderMap::new();
        for line in data.split(|&b| b == b'\n') {
            h.append(COOKIE, HeaderValue::from_bytes(line).expect("hv"));
        }
        assert!(
            matches!(
                current.read(&current.incoming(&h), SEED_STARTED_AT + 60),
                ReadOutcome::Valid { .. }
            ),
            "seed {name} does not open"
        );
    }
}
