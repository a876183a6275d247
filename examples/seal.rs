//! Prints a `Cookie` header value (the `name=value` pairs) carrying a valid sealed session,
//! for manual load tests (`TOKEN_HANDLER_COOKIE_KEYS` must hold the proxy's keys). Not a
//! credential: fake tokens.
//!
//!   TOKEN_HANDLER_COOKIE_KEYS=... cargo run --release --example seal [-- --sub S --sid S]
//!
//! Without `--sub`/`--sid` the session names no user nor IdP session, as before those fields
//! existed; with them, the record of ended sessions has a digest to compute for each. With
//! `--dpop` the session has a DPoP key and a DPoP-bound token: every call gets a proof. With
//! `--groups N` it carries a `groups` claim of N bytes (6000: bench/run.sh's chunked session).

use token_handler::config::{SameSite, SessionConfig};
use token_handler::crypto::KeyRing;
use token_handler::secret::{AccessToken, RefreshToken};
use token_handler::session::{CookieCodec, Session};

fn main() {
    let (mut sub, mut sid, mut dpop, mut groups) = (None, None, false, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--dpop" {
            dpop = true;
            continue;
        }
        let slot = match arg.as_str() {
            "--sub" => &mut sub,
            "--sid" => &mut sid,
            "--groups" => &mut groups,
            _ => panic!("usage: seal [--sub S] [--sid S] [--dpop] [--groups N]"),
        };
        *slot = Some(args.next().expect("a value after the flag"));
    }
    let keys = std::env::var("TOKEN_HANDLER_COOKIE_KEYS").expect("TOKEN_HANDLER_COOKIE_KEYS");
    let config = SessionConfig {
        cookie_name: "__Host-th_session".into(),
        secure: true,
        same_site: SameSite::Strict,
        lifetime: std::time::Duration::from_secs(12 * 3600),
        refresh_skew: std::time::Duration::from_secs(30),
        rotation_grace: std::time::Duration::from_secs(60),
        reuse_window: std::time::Duration::from_secs(600),
        max_tracked_rotations: 1,
        max_ended_sessions: 10,
        claims: vec![],
        idle_timeout: None,
        idle_touch_interval: std::time::Duration::from_secs(60),
    };
    let codec = CookieCodec::new(
        &config,
        std::sync::Arc::new(KeyRing::parse(&keys).expect("keys")),
    );
    let now = token_handler::refresh::unix_now();
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), "usr:42".into());
    claims.insert("name".into(), "Load Test".into());
    if let Some(n) = groups {
        let n: usize = n.parse().expect("--groups takes a number of bytes");
        claims.insert("groups".into(), "g".repeat(n).into());
    }
    let session = Session {
        id: "load-test".into(),
        refresh_token: RefreshToken::new("r".repeat(88)),
        access_token: AccessToken::new(format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", "a".repeat(850))),
        access_expires_at: now + 3600,
        access_issued_at: now,
        scope: "openid profile email offline_access api.read".into(),
        claims: claims.into(),
        id_token: None,
        started_at: now,
        sub,
        sid,
        last_used_at: now,
        dpop: dpop.then(|| token_handler::dpop::DpopKey::generate().expect("DPoP key")),
        dpop_bound: dpop,
    };
    let pairs: Vec<String> = codec
        .seal(&session, now)
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
    println!("{}", pairs.join("; "));
}
