//! The benchmark's sessions: fake JWT-sized tokens and the sealed `Cookie` header of a session.

use token_handler::secret::{AccessToken, RefreshToken};
use token_handler::session::{CookieCodec, Session};

/// A realistic JWT-sized access token (the proxy never parses it on this path).
pub fn fake_token(i: usize, len: usize) -> String {
    let mut t = format!("eyJhbGciOiJSUzI1NiJ9.{i:08}.");
    while t.len() < len {
        t.push_str("abcdefghijklmnopqrstuvwxyz0123456789-_");
    }
    t.truncate(len);
    t
}

pub fn cookie_header(codec: &CookieCodec, session: &Session, now: u64) -> String {
    codec
        .seal(session, now)
        .iter()
        .map(|v| {
            v.to_str()
                .expect("ascii")
                .split(';')
                .next()
                .expect("pair")
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn session(
    i: usize,
    access: String,
    refresh: String,
    expired: bool,
    claims: serde_json::Map<String, serde_json::Value>,
    now: u64,
) -> Session {
    Session {
        id: format!("bench-{i}"),
        refresh_token: RefreshToken::new(refresh),
        access_token: AccessToken::new(access),
        access_expires_at: if expired { now - 10 } else { now + 3600 },
        access_issued_at: if expired { now - 310 } else { now },
        scope: "openid profile email offline_access api.read".into(),
        claims: claims.into(),
        id_token: None,
        started_at: now,
        sub: None,
        sid: None,
        last_used_at: now,
        dpop: None,
        dpop_bound: false,
    }
}
