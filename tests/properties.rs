//! Property tests (proptest) for the hostile-input surfaces: cookie sealing and opening, the
//! session cookie codec (chunking, Cookie-header parsing, stripping), and the classification
//! of token-endpoint answers. The fuzz targets in `fuzz/` explore the same functions with
//! coverage guidance; the inputs they found are replayed at the end of this file.
//!
//! Case counts are kept modest (256, fewer for the large-session cases) so the suite stays
//! fast; `PROPTEST_CASES=10000 cargo test --test properties` digs deeper.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use token_handler::config::{Config, Dialect};
use token_handler::crypto::KeyRing;
use token_handler::idp::{parse_token_response, IdpError, Rejection, Transient};
use token_handler::refresh::expires_at;
use token_handler::secret::{AccessToken, IdToken, RefreshToken};
use token_handler::session::{CookieCodec, ReadOutcome, Session, MAX_CHUNKS};

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
    ProptestConfig::with_cases(n)
}

fn config() -> ProptestConfig {
    cases(256)
}

// ---------------------------------------------------------------------------------------
// KeyRing: seal / open

fn kid() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,32}"
}

/// A ring spec `kid:base64` for a random 32-byte key.
fn key_spec() -> impl Strategy<Value = String> {
    (kid(), any::<[u8; 32]>()).prop_map(|(kid, key)| format!("{kid}:{}", STANDARD.encode(key)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn seal_open_round_trip(
        spec in key_spec(),
        name in any::<String>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let ring = KeyRing::parse(&spec).expect("generated spec parses");
        let sealed = ring.seal(&name, &plaintext);
        prop_assert!(sealed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let opened = ring.open(&name, &sealed).expect("opens");
        prop_assert_eq!(opened.plaintext, plaintext);
        prop_assert!(opened.current_key);
    }

    #[test]
    fn any_bit_flip_or_truncation_fails(
        name in "[ -~]{0,40}",
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
        bit in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let ring = KeyRing::parse(K1).expect("k1");
        let sealed = ring.seal(&name, &plaintext);
        let raw = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
        // One bit of the decoded value (header, nonce, ciphertext or tag).
        let mut flipped = raw.clone();
        let i = bit.index(raw.len() * 8);
        flipped[i / 8] ^= 1 << (i % 8);
        prop_assert!(ring.open(&name, URL_SAFE_NO_PAD.encode(&flipped)).is_none(), "bit {}", i);
        // One bit of the text itself (stays ASCII): an invalid or a different value.
        let mut text = sealed.clone().into_bytes();
        let j = bit.index(text.len() * 7);
        text[j / 7] ^= 1 << (j % 7);
        let text = String::from_utf8(text).expect("ascii");
        prop_assert!(ring.open(&name, &text).is_none(), "text bit {}", j);
        // Truncated, in bytes and in text.
        let n = cut.index(raw.len());
        prop_assert!(ring.open(&name, URL_SAFE_NO_PAD.encode(&raw[..n])).is_none());
        let m = cut.index(sealed.len());
        prop_assert!(ring.open(&name, &sealed[..m]).is_none());
    }

    #[test]
    fn another_name_fails(
        name in any::<String>(),
        other in any::<String>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        prop_assume!(name != other);
        let ring = KeyRing::parse(K1).expect("k1");
        let sealed = ring.seal(&name, &plaintext);
        prop_assert!(ring.open(&other, &sealed).is_none());
    }

    #[test]
    fn retired_key_opens_and_is_flagged(
        old in key_spec(),
        new in key_spec(),
        name in any::<String>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let old_kid = old.split(':').next().expect("kid");
        prop_assume!(new.split(':').next() != Some(old_kid));
        let before = KeyRing::parse(&old).expect("old");
        let sealed = before.seal(&name, &plaintext);
        let rotated = KeyRing::parse(&format!("{new},{old}")).expect("rotated");
        let opened = rotated.open(&name, &sealed).expect("the retired key still opens");
        prop_assert!(!opened.current_key);
        prop_assert_eq!(opened.plaintext, plaintext);
        // Once the old key is dropped from the ring, its values no longer open.
        let only_new = KeyRing::parse(&new).expect("new");
        prop_assert!(only_new.open(&name, &sealed).is_none());
    }

    #[test]
    fn arbitrary_values_never_open(name in any::<String>(), value in any::<String>()) {
        let ring = KeyRing::parse(&format!("{K2},{K1}")).expect("ring");
        prop_assert!(ring.open(&name, &value).is_none());
    }
}

// ---------------------------------------------------------------------------------------
// CookieCodec: Session <-> cookies

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
        claims: spec.claims.clone(),
        id_token: spec
            .id_token_len
            .map(|len| IdToken::new(token(len, spec.seed ^ 4))),
        started_at: NOW - 60,
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

// ---------------------------------------------------------------------------------------
// Token-endpoint answers

/// How a field name is spelled: TokenIDP answers in all of these.
#[derive(Debug, Clone, Copy)]
enum Case {
    Camel,
    Snake,
    Pascal,
}

fn spell(words: &[&str], case: Case) -> String {
    let cap = |w: &str| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    match case {
        Case::Snake => words.join("_"),
        Case::Camel => {
            words[0].to_string() + &words[1..].iter().map(|w| cap(w)).collect::<String>()
        }
        Case::Pascal => words.iter().map(|w| cap(w)).collect(),
    }
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![Just(Case::Camel), Just(Case::Snake), Just(Case::Pascal)]
}

#[derive(Debug, Clone)]
enum ExpiresIn {
    Number(u64),
    Text(String),
}

#[derive(Debug, Clone)]
struct Tokens {
    access: String,
    refresh: Option<String>,
    id: Option<String>,
    expires_in: Option<ExpiresIn>,
    scope: Option<String>,
    case: Case,
}

fn tokens() -> impl Strategy<Value = Tokens> {
    (
        "[A-Za-z0-9._~+/=-]{0,64}",
        prop::option::of("[A-Za-z0-9+/=-]{1,88}"),
        prop::option::of("[A-Za-z0-9._-]{1,64}"),
        prop::option::of(prop_oneof![
            (0u64..400_000_000).prop_map(ExpiresIn::Number),
            (0u64..100_000).prop_map(|n| ExpiresIn::Text(n.to_string())),
        ]),
        prop::option::of("[a-z ._]{1,40}"),
        case(),
    )
        .prop_map(|(access, refresh, id, expires_in, scope, case)| Tokens {
            access,
            refresh,
            id,
            expires_in,
            scope,
            case,
        })
}

fn token_object(t: &Tokens) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert(spell(&["access", "token"], t.case), json!(t.access));
    o.insert(spell(&["token", "type"], t.case), json!("Bearer"));
    if let Some(r) = &t.refresh {
        o.insert(spell(&["refresh", "token"], t.case), json!(r));
    }
    if let Some(i) = &t.id {
        o.insert(spell(&["id", "token"], t.case), json!(i));
    }
    match &t.expires_in {
        Some(ExpiresIn::Number(n)) => {
            o.insert(spell(&["expires", "in"], t.case), json!(n));
        }
        Some(ExpiresIn::Text(s)) => {
            o.insert(spell(&["expires", "in"], t.case), json!(s));
        }
        None => {}
    }
    if let Some(s) = &t.scope {
        o.insert(spell(&["scope"], t.case), json!(s));
    }
    o
}

/// TokenIDP success bodies: `data` (guide), `value` (server) or no envelope, in any key case.
fn tokenidp_success() -> impl Strategy<Value = (Tokens, Vec<u8>)> {
    (
        tokens(),
        prop_oneof![Just(None), Just(Some("data")), Just(Some("value"))],
        case(),
        any::<bool>(),
    )
        .prop_map(|(t, envelope, outer_case, inner_flag)| {
            let mut inner = token_object(&t);
            if inner_flag {
                inner.insert(spell(&["is", "success"], t.case), json!(true));
                inner.insert(spell(&["user", "id"], t.case), json!(42));
            }
            let body = match envelope {
                None => Value::Object(inner),
                Some(key) => {
                    let mut outer = Map::new();
                    outer.insert(spell(&["is", "success"], outer_case), json!(true));
                    outer.insert(spell(&[key], outer_case), Value::Object(inner));
                    Value::Object(outer)
                }
            };
            (t, serde_json::to_vec(&body).expect("json"))
        })
}

fn check_success(
    t: &Tokens,
    result: Result<token_handler::idp::TokenResponse, IdpError>,
) -> Result<(), TestCaseError> {
    if t.access.is_empty() {
        prop_assert!(
            matches!(
                result,
                Err(IdpError::Transient {
                    kind: Transient::NoAccessToken,
                    ..
                })
            ),
            "empty access token: {:?}",
            result
        );
        return Ok(());
    }
    let r = result.map_err(|e| TestCaseError::fail(format!("expected Ok, got {e:?}")))?;
    prop_assert_eq!(r.access_token.expose(), t.access.as_str());
    prop_assert_eq!(
        r.refresh_token.as_ref().map(|x| x.expose()),
        t.refresh.as_deref()
    );
    prop_assert_eq!(r.id_token.as_ref().map(|x| x.expose()), t.id.as_deref());
    let expected = match &t.expires_in {
        Some(ExpiresIn::Number(n)) => Some(*n),
        Some(ExpiresIn::Text(s)) => s.parse().ok(),
        None => None,
    };
    prop_assert_eq!(r.expires_in, expected);
    prop_assert_eq!(r.scope.as_deref(), t.scope.as_deref());
    prop_assert!(expires_at(&r, NOW) >= NOW);
    Ok(())
}

/// Error-shaped bodies of both dialects (and a few that are no JSON object at all).
fn error_body() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![
        Just(""),
        Just("invalid_grant"),
        Just("invalid_client"),
        Just("unauthorized_client"),
        Just("invalid_request"),
        Just("invalid_scope"),
        Just("unsupported_grant_type"),
        Just("temporarily_unavailable"),
        Just("server_error"),
        Just("rate_limit_exceeded"),
        Just("tenant_unavailable"),
    ];
    let message = prop_oneof![
        Just("Invalid refresh token.".to_string()),
        Just("Client authentication failed.".to_string()),
        Just("An error has occurred, please contact support.".to_string()),
        "[ -~]{0,40}",
    ];
    prop_oneof![
        // TokenIDP: {"isSuccess":false,"error":{"code":"","error":"..."}} in any key case.
        (code.clone(), message.clone(), case()).prop_map(|(code, msg, c)| {
            let mut err = Map::new();
            err.insert(spell(&["code"], c), json!(code));
            err.insert(spell(&["correlation", "id"], c), json!("c"));
            err.insert(spell(&["error"], c), json!(msg));
            let mut o = Map::new();
            o.insert(spell(&["is", "success"], c), json!(false));
            o.insert(spell(&["error"], c), Value::Object(err));
            serde_json::to_vec(&o).expect("json")
        }),
        // RFC 6749 §5.2.
        (code, prop::option::of(message)).prop_map(|(code, msg)| {
            let mut o = json!({ "error": code });
            if let Some(m) = msg {
                o["error_description"] = json!(m);
            }
            serde_json::to_vec(&o).expect("json")
        }),
        Just(b"<html>Bad Gateway</html>".to_vec()),
        Just(b"{\"isSuccess\":true,\"value\":{\"access_tok".to_vec()),
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(200u16),
        Just(400),
        Just(401),
        Just(403),
        Just(404),
        Just(429),
        Just(500),
        Just(502),
        Just(503),
        100u16..600,
        any::<u16>(),
    ]
}

fn dialect() -> impl Strategy<Value = Dialect> {
    prop_oneof![Just(Dialect::TokenIdp), Just(Dialect::OAuth2)]
}

/// The classification invariants that hold for every answer, whatever the body.
fn check_classification(
    status: u16,
    result: &Result<token_handler::idp::TokenResponse, IdpError>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(r) => {
            prop_assert!((200..300).contains(&status), "Ok for status {}", status);
            prop_assert!(!r.access_token.expose().is_empty());
        }
        Err(IdpError::Rejected { detail, .. }) => {
            prop_assert!(
                matches!(status, 400 | 401),
                "Rejected for status {}",
                status
            );
            prop_assert!(detail.chars().count() <= 200 && !detail.chars().any(char::is_control));
        }
        Err(IdpError::Transient { .. }) => {}
    }
    if status == 429 || (500..600).contains(&status) {
        prop_assert!(
            matches!(result, Err(IdpError::Transient { .. })),
            "status {} must be transient: {:?}",
            status,
            result
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tokenidp_success_shapes_are_ok(
        (t, body) in tokenidp_success(),
        status in 200u16..300,
    ) {
        let result = parse_token_response(Dialect::TokenIdp, status, &body);
        check_classification(status, &result)?;
        check_success(&t, result)?;
    }

    #[test]
    fn oauth2_success_shapes_are_ok(t in tokens(), status in 200u16..300) {
        let body = serde_json::to_vec(&Value::Object(token_object(&t))).expect("json");
        let result = parse_token_response(Dialect::OAuth2, status, &body);
        check_classification(status, &result)?;
        check_success(&t, result)?;
    }

    #[test]
    fn any_status_and_body_obeys_the_classification(
        dialect in dialect(),
        status in status(),
        body in prop_oneof![
            error_body(),
            tokenidp_success().prop_map(|(_, b)| b),
            tokens().prop_map(|t| serde_json::to_vec(&Value::Object(token_object(&t))).expect("json")),
        ],
    ) {
        let result = parse_token_response(dialect, status, &body);
        check_classification(status, &result)?;
    }

    #[test]
    fn rejections_follow_the_status_and_code(
        c in case(),
        msg in "[ -~]{0,40}",
        code in prop_oneof![Just("invalid_grant"), Just("invalid_client"), Just("invalid_request")],
        status in prop_oneof![Just(400u16), Just(401)],
    ) {
        // TokenIDP: error.code is always empty; 401 is the client, 400 + "refresh token" the
        // grant.
        let mut err = Map::new();
        err.insert(spell(&["code"], c), json!(""));
        err.insert(spell(&["error"], c), json!(format!("Invalid refresh token. {msg}")));
        let mut outer = Map::new();
        outer.insert(spell(&["error"], c), Value::Object(err));
        let body = serde_json::to_vec(&outer).expect("json");
        match parse_token_response(Dialect::TokenIdp, status, &body) {
            Err(IdpError::Rejected { reason, .. }) => prop_assert_eq!(
                reason,
                if status == 401 { Rejection::InvalidClient } else { Rejection::InvalidGrant }
            ),
            other => prop_assert!(false, "expected a rejection, got {:?}", other),
        }
        // OAuth2: the RFC 6749 §5.2 code decides.
        let body = serde_json::to_vec(&json!({"error": code, "error_description": msg})).expect("json");
        let expected = match code {
            "invalid_grant" => Rejection::InvalidGrant,
            "invalid_client" => Rejection::InvalidClient,
            _ => Rejection::Other,
        };
        match parse_token_response(Dialect::OAuth2, status, &body) {
            Err(IdpError::Rejected { reason, .. }) => prop_assert_eq!(reason, expected),
            other => prop_assert!(false, "expected a rejection, got {:?}", other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        dialect in dialect(),
        status in any::<u16>(),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let result = parse_token_response(dialect, status, &body);
        check_classification(status, &result)?;
    }
}

// ---------------------------------------------------------------------------------------
// Inputs found by the fuzz targets (fuzz/regressions/<target>/), replayed here.

fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = format!(
        "{}/fuzz/regressions/{target}/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Splits an `idp_response` fuzz input: dialect byte, big-endian status, body.
fn idp_input(data: &[u8]) -> (Dialect, u16, &[u8]) {
    let dialect = if data[0] & 1 == 0 {
        Dialect::TokenIdp
    } else {
        Dialect::OAuth2
    };
    (dialect, u16::from_be_bytes([data[1], data[2]]), &data[3..])
}

#[test]
fn idp_regressions_obey_the_classification() {
    // Every idp_response regression input, present and future: whatever else it breaks, the
    // parser's classification holds.
    let dir = format!(
        "{}/fuzz/regressions/idp_response",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("regressions directory") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("regression input");
        if data.len() < 3 {
            continue;
        }
        let (dialect, status, body) = idp_input(&data);
        let result = parse_token_response(dialect, status, body);
        check_classification(status, &result).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen > 0, "no inputs in {dir}");
}

/// fuzz/regressions/idp_response/expires_in_overflow (`{"access_token":"x","expires_in":1e300}`)
/// and found_by_fuzzer_expires_in_1e300 (the same in TokenIDP's envelope, found by the
/// `idp_response` target): expires_in saturates to u64::MAX and `refresh::expires_at` computes
/// `now + u64::MAX`: a panic in debug builds, a wrapped expiry in the past in release (every
/// request then refreshes).
#[test]
fn regression_expires_in_overflow() {
    for name in ["expires_in_overflow", "found_by_fuzzer_expires_in_1e300"] {
        let data = regression("idp_response", name);
        let (dialect, status, body) = idp_input(&data);
        let tokens = parse_token_response(dialect, status, body).expect("a success answer");
        let expiry = expires_at(&tokens, NOW);
        assert!(expiry >= NOW, "{name}: expiry {expiry} is before now");
    }
}

/// What the `config_parse` fuzz target checks of an *accepted* config: start-up and the
/// session codec can use it (design habit 4: every problem is reported before binding).
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
        claims: Map::new(),
        id_token: None,
        started_at: NOW,
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

/// One `Cookie` header with an app cookie whose value is UTF-8 (`user=Jürgen`, as browsers
/// send it) next to a valid session. `HeaderValue::to_str` refuses any byte over 0x7f, so
/// `cookie_pairs` skips the whole header: the session is not seen (the user looks logged out)
/// and `strip_own` drops every app cookie of that header instead of passing it through.
#[test]
fn regression_non_ascii_app_cookie() {
    let c = codec("th_session", true);
    let ours: Vec<String> = c
        .seal(&build_session(&seed_spec(30)), NOW)
        .iter()
        .map(pair)
        .collect();
    let line = format!("user=Jürgen; {}; lang=en", ours.join("; "));
    let mut h = HeaderMap::new();
    h.append(
        COOKIE,
        HeaderValue::from_bytes(line.as_bytes()).expect("obs-text is a valid header value"),
    );
    assert!(
        matches!(c.read(&c.incoming(&h), NOW), ReadOutcome::Valid { .. }),
        "the session next to a non-ASCII app cookie is not seen"
    );
    let kept = c.strip_own(&h).expect("the app's cookies go upstream");
    assert_eq!(kept.as_bytes(), "user=Jürgen; lang=en".as_bytes());
}

// ---------------------------------------------------------------------------------------
// Seeds for the `chunk_reassembly` fuzz target: real sealed sessions, made with the crate's
// own codec so that they follow its current format. The target opens them with the same
// keys, cookie name and clock (see fuzz/fuzz_targets/chunk_reassembly.rs).

/// `SEED_STARTED_AT` of the fuzz target.
const SEED_STARTED_AT: u64 = 1_700_000_000;

fn seed_spec(token_len: usize) -> SessionSpec {
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

/// `cargo test --test properties -- --ignored write_fuzz_seeds` rewrites the sealed-session
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

#[test]
fn every_single_bit_flip_of_a_sealed_value_fails() {
    // Exhaustive over one value, decoded bytes and text alike (the text flips include the
    // last character's unused low bits, which a lax base64 decoder would ignore).
    let ring = KeyRing::parse(K1).expect("k1");
    for plaintext in [&b""[..], b"x", b"xy", b"session bytes"] {
        let sealed = ring.seal("__Host-th_session", plaintext);
        let raw = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
        for i in 0..raw.len() * 8 {
            let mut flipped = raw.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            let value = URL_SAFE_NO_PAD.encode(&flipped);
            assert!(
                ring.open("__Host-th_session", &value).is_none(),
                "byte bit {i}"
            );
        }
        for j in 0..sealed.len() * 7 {
            let mut text = sealed.clone().into_bytes();
            text[j / 7] ^= 1 << (j % 7);
            let text = String::from_utf8(text).expect("ascii");
            assert!(
                ring.open("__Host-th_session", &text).is_none(),
                "text bit {} of char {} ({:?} -> {:?}) of a {}-char value opens",
                j % 7,
                j / 7,
                sealed.as_bytes()[j / 7] as char,
                text.as_bytes()[j / 7] as char,
                sealed.len()
            );
        }
    }
}
