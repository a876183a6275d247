//! Micro-benchmarks of the per-request work: sealing and opening a typical session, reading
//! the session from a `Cookie` header, checking it against the record of ended sessions, and
//! rewriting a request's headers for the upstream.
//! `cargo bench --bench hot_path`; results and targets in BENCHMARKS.md.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use token_handler::config::{SameSite, SessionConfig};
use token_handler::crypto::KeyRing;
use token_handler::dpop::DpopKey;
use token_handler::ended::{digest, EndedSessions, Entry, Kind, Reason};
use token_handler::metrics::Metrics;
use token_handler::proxy::{forwarded, headers};
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
        claims: claims.into(),
        id_token: None,
        started_at: 1_999_999_000,
        sub: None,
        sid: None,
        last_used_at: 0,
        dpop: None,
        dpop_bound: false,
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
    let client = forwarded::ClientIp::from(std::net::IpAddr::from([10, 0, 0, 7]));
    c.bench_function("rewrite request headers", |b| {
        b.iter(|| {
            let mut h = headers.clone();
            let kept = codec.strip_own(&h);
            headers::strip_hop_by_hop(&mut h, false);
            let host = h.get("host").cloned();
            let forwarded = forwarded::forwarded(&mut h, &client, "https", host.as_ref(), false);
            headers::set_cookies(&mut h, kept);
            token_handler::proxy::bearer::set_bearer(&mut h, session.access_token.expose_bytes())
                .expect("bearer");
            black_box((h, forwarded))
        })
    });
    dpop(c, &session, now);
}

/// What DPoP adds to a call: a proof signed with the session's key. Each request decodes its
/// session afresh, so its key pair is rebuilt (ring checks that the private and public halves
/// belong together: a scalar multiplication) before the one ES256 signature.
fn dpop(c: &mut Criterion, session: &Session, now: u64) {
    let mut bound = session.clone();
    bound.dpop = Some(DpopKey::generate().expect("key"));
    bound.dpop_bound = true;
    let plaintext = bound.to_bytes();
    let token = bound.access_token.expose();
    let htu = "https://app.example.com/api/orders";
    let ready = bound.dpop.clone().expect("key");
    ready
        .proof("GET", htu, Some(token), None, now)
        .expect("warm");
    c.bench_function("DPoP proof (key pair ready)", |b| {
        b.iter(|| black_box(ready.proof("GET", black_box(htu), Some(token), None, now)))
    });
    c.bench_function("DPoP proof (key from a decoded session)", |b| {
        b.iter(|| {
            let s = Session::from_bytes(black_box(&plaintext)).expect("session");
            let key = s.dpop.expect("key");
            black_box(key.proof("GET", htu, Some(token), None, now))
        })
    });
    c.bench_function(
        "decode a session (for comparison with the line above)",
        |b| b.iter(|| black_box(Session::from_bytes(black_box(&plaintext)))),
    );
}

/// A record of ended sessions holding `n` entries, a third of each kind, none naming
/// [`session`]'s id, `sid` or `sub`; every entry outlives the benchmark's `now`.
fn ended_record(n: usize, now: u64) -> EndedSessions {
    let lifetime = 12 * 3600;
    let record = EndedSessions::new(n + 1, None, Arc::new(Metrics::new()));
    for i in 0..n {
        let (kind, reason) = match i % 3 {
            0 => {
                let id = format!("ended-session-{i}");
                record.apply(Entry::session(&id, now, lifetime, now), now);
                continue;
            }
            1 => (Kind::Sid, Reason::Backchannel),
            _ => (Kind::Sub, Reason::Operator),
        };
        let value = format!("ended-{i}");
        record.apply(Entry::named(kind, &value, reason, lifetime, now), now);
    }
    assert_eq!(record.len(), n);
    record
}

/// `EndedSessions::check` on every request with a valid session: an empty record (no lock,
/// no digest), one entry of each kind (a read lock and one digest per kind: the session names
/// a `sid` and a `sub`; the lookups hit the cache), 100,000 entries of the three kinds, and a
/// session ended through its `sub` (the last kind looked up, so all three digests are
/// computed).
fn ended(c: &mut Criterion) {
    let now = 1_999_999_500;
    let mut session = session();
    session.sub = Some("usr:42".into());
    session.sid = Some("08a5019c-17e1-4977-8f42-65a12843ea02".into());
    session.last_used_at = now;

    // One digest: the 24-byte label and kind plus a 6-byte `sub` fit one SHA-256 block; plus a
    // 36-byte (UUID) `sid`, two.
    c.bench_function("ended: digest, 6-byte sub", |b| {
        b.iter(|| black_box(digest(Kind::Sub, black_box("usr:42"))))
    });
    let sid = session.sid.clone().expect("sid");
    c.bench_function("ended: digest, 36-byte sid", |b| {
        b.iter(|| black_box(digest(Kind::Sid, black_box(&sid))))
    });

    let empty = EndedSessions::new(100_000, None, Arc::new(Metrics::new()));
    assert_eq!(empty.check(&session, now), None);
    c.bench_function("ended: check, empty record", |b| {
        b.iter(|| black_box(empty.check(black_box(&session), now)))
    });

    // The digests alone: three entries, one per kind, whose lookups stay in the cache.
    let few = ended_record(3, now);
    assert_eq!(few.check(&session, now), None);
    c.bench_function("ended: check, 3 entries, no match", |b| {
        b.iter(|| black_box(few.check(black_box(&session), now)))
    });

    let full = ended_record(100_000, now);
    assert_eq!(full.check(&session, now), None);
    c.bench_function("ended: check, 100,000 entries, no match", |b| {
        b.iter(|| black_box(full.check(black_box(&session), now)))
    });

    full.apply(
        Entry::named(Kind::Sub, "usr:42", Reason::Operator, 12 * 3600, now),
        now,
    );
    assert_eq!(full.check(&session, now), Some(Reason::Operator));
    c.bench_function("ended: check, 100,000 entries, ended by sub", |b| {
        b.iter(|| black_box(full.check(black_box(&session), now)))
    });
}

criterion_group!(hot_path, benches, ended);
criterion_main!(hot_path);
