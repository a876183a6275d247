//! Micro-benchmarks of the per-request work: sealing and opening a typical session, reading
//! the session from a `Cookie` header, and rewriting a request's headers for the upstream.
//! `cargo bench --bench hot_path`; results and targets in BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use token_handler::config::{SameSite, SessionConfig};
use token_handler::crypto::KeyRing;
use token_handler::proxy::headers;
use token_handler::secret::{AccessToken, RefreshToken};
use token_handler::session::{CookieCodec, Session};

const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn codec() -> CookieCodec {
    let config = SessionConfig {
        cookie_name: "__Host-th_session".into(),
        secure: true,
        same_site: SameSite::Strict,
        lifetime: Duration::from_secs(12 * 3600),
        refresh_skew: Duration::from_secs(30),
        rotation_grace: Duration::from_secs(60),
        reuse_window: Duration::from_secs(600),
        max_tracked_rotations: 1000,
        max_ended_sessions: 10,
        claims: vec![],
        idle_timeout: None,
        idle_touch_interval: Duration::from_secs(60),
    };
    CookieCodec::new(&config, Arc::new(KeyRing::parse(KEY).expect("key")))
}

/// A typical session: a ~900-byte JWT access token, an 88-character refresh token, a few claims.
fn session() -> Session {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), "usr:42".into());
    claims.insert("name".into(), "Demo User".into());
    claims.insert("email".into(), "demo@example.com".into());
    Session {
        id: "AbCdEfGhIjKlMnOp".into(),
        refresh_token: RefreshToken::new("q3L".repeat(29) + "x=="),
        access_token: AccessToken::new(format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", "a".repeat(850))),
        access_expires_at: 2_000_000_000,
        access_issued_at: 1_999_999_000,
        scope: "openid profile email offline_access api.read".into(),
        claims,
        id_token: None,
        started_at: 1_999_999_000,
        sub: None,
        sid: None,
        last_used_at: 0,
    }
}

fn request_headers(cookie: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_static("app.example.com"));
    h.insert("accept", HeaderValue::from_static("application/json"));
    h.insert(
        "user-agent",
        HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"),
    );
    h.insert(
        "accept-language",
        HeaderValue::from_static("en-GB,en;q=0.9"),
    );
    h.insert("x-csrf", HeaderValue::from_static("1"));
    h.insert(
        "cookie",
        HeaderValue::from_str(&format!("theme=dark; {cookie}; _ga=GA1.1.123")).expect("hv"),
    );
    h
}

fn benches(c: &mut Criterion) {
    let codec = codec();
    let session = session();
    let now = 1_999_999_500;
    let sealed = codec.seal(&session, now);
    let cookie = sealed[0]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let value = cookie.split_once('=').expect("=").1.to_string();
    let keys = KeyRing::parse(KEY).expect("key");
    let plaintext = session.to_bytes();

    c.bench_function("seal (typical session)", |b| {
        b.iter(|| black_box(codec.seal(black_box(&session), now)))
    });
    c.bench_function("open (typical session)", |b| {
        b.iter(|| black_box(keys.open("__Host-th_session", black_box(&value))))
    });
    c.bench_function("seal + open (typical session)", |b| {
        b.iter(|| {
            let v = keys.seal("__Host-th_session", black_box(&plaintext));
            black_box(keys.open("__Host-th_session", &v))
        })
    });
    let headers = request_headers(&cookie);
    c.bench_function("session from Cookie header", |b| {
        b.iter(|| {
            let incoming = codec.incoming(black_box(&headers));
            black_box(codec.read(&incoming, now))
        })
    });
    let client = headers::ClientIp::from(std::net::IpAddr::from([10, 0, 0, 7]));
    c.bench_function("rewrite request headers", |b| {
        b.iter(|| {
            let mut h = headers.clone();
            let kept = codec.strip_own(&h);
            headers::strip_hop_by_hop(&mut h, false);
            let host = h.get("host").cloned();
            headers::set_forwarded(&mut h, &client, "https", host.as_ref(), false);
            headers::set_cookies(&mut h, kept);
            headers::set_bearer(&mut h, session.access_token.expose()).expect("bearer");
            black_box(h)
        })
    });
}

criterion_group!(hot_path, benches);
criterion_main!(hot_path);
