//! Session ↔ cookies: sealing, chunking, attributes, clearing, and stripping ours from `Cookie`.
//!
//! Browsers drop cookies over 4096 bytes (name + value), silently. A sealed value over
//! [`CHUNK_BYTES`] is split: the base cookie holds `<count>.<first part>` (`.` never occurs
//! in base64url) and `<name>.1` … `<name>.<count-1>` hold the rest. Responses clear chunk
//! cookies the new value no longer uses, so a stale chunk can never be glued onto a new value.

use super::cookie_header::{cookie_pair_bytes, raw_pairs, split_pair};
use super::Session;
use crate::config::SessionConfig;
use crate::crypto::KeyRing;
use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderValue};
use std::borrow::Cow;
use std::sync::Arc;

/// Longest value a single cookie carries; leaves room for the name under the 4096-byte limit.
pub const CHUNK_BYTES: usize = 3800;
/// Most chunks a session may use (~30 KB); more is refused as malformed.
pub const MAX_CHUNKS: usize = 8;

/// Encodes sessions into cookies and back, for one configured cookie name and key ring.
#[derive(Debug, Clone)]
pub struct CookieCodec {
    name: String,
    attributes: String,
    secure: bool,
    lifetime_secs: u64,
    /// Swapped when the mounted key file changes; shared by every clone of the codec.
    keys: Arc<ArcSwap<KeyRing>>,
}

/// The proxy's cookies found on one request: raw bytes (ours are base64url, which the opening
/// checks; anything else cannot open, and reads as an invalid session).
#[derive(Default)]
pub struct Incoming<'a> {
    base: Option<&'a [u8]>,
    chunks: [Option<&'a [u8]>; MAX_CHUNKS],
    /// 1 + highest chunk index seen (0 when none of ours were sent).
    present: usize,
    /// The request also carries cookies that are not ours (the app's).
    foreign: bool,
}

/// Never the values: a sealed session cookie is a credential for the session.
impl std::fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("base", &self.base.map(<[u8]>::len))
            .field("chunks", &self.chunks.map(|c| c.map(<[u8]>::len)))
            .field("present", &self.present)
            .field("foreign", &self.foreign)
            .finish()
    }
}

/// Which session cookies a request carried (not their values): what is needed to delete
/// stale chunks after the request's headers are gone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presence {
    chunks: [bool; MAX_CHUNKS],
    present: usize,
    foreign: bool,
}

impl Presence {
    /// Whether the request carries cookies other than the proxy's (to forward upstream).
    pub fn foreign_cookies(&self) -> bool {
        self.foreign
    }
}

impl Incoming<'_> {
    pub fn presence(&self) -> Presence {
        let mut chunks = [false; MAX_CHUNKS];
        for (i, c) in self.chunks.iter().enumerate() {
            chunks[i] = c.is_some();
        }
        Presence {
            chunks,
            present: self.present,
            foreign: self.foreign,
        }
    }

    /// Whether the request carried any of the session cookies.
    pub fn any(&self) -> bool {
        self.present > 0
    }

    pub fn present(&self) -> usize {
        self.present
    }
}

/// What a request's cookies say about its session.
#[derive(Debug)]
pub enum ReadOutcome {
    /// No session cookie at all.
    Absent,
    /// Cookies present but not a session we sealed (tampered, truncated, foreign key, expired
    /// lifetime, missing chunk): the request is anonymous and the cookies get cleared.
    Invalid,
    Valid {
        session: Session,
        /// Opened with a retired key: re-seal on this response.
        retired_key: bool,
    },
}

impl CookieCodec {
    pub fn new(config: &SessionConfig, keys: Arc<KeyRing>) -> CookieCodec {
        let mut attributes = String::from("; Path=/");
        if config.secure {
            attributes.push_str("; Secure");
        }
        attributes.push_str("; HttpOnly; SameSite=");
        attributes.push_str(config.same_site.as_str());
        CookieCodec {
            name: config.cookie_name.clone(),
            attributes,
            secure: config.secure,
            lifetime_secs: config.lifetime.as_secs(),
            keys: Arc::new(ArcSwap::new(keys)),
        }
    }

    /// The base cookie name (with `__Host-` when configured).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current key ring.
    pub fn keys(&self) -> arc_swap::Guard<Arc<KeyRing>> {
        self.keys.load()
    }

    /// The current key ring, owned (to hold across an `.await`).
    pub fn key_ring(&self) -> Arc<KeyRing> {
        self.keys.load_full()
    }

    /// Installs a new key ring (key rotation without a restart).
    pub fn set_keys(&self, keys: KeyRing) {
        self.keys.store(Arc::new(keys));
    }

    /// Whether a cookie name belongs to the proxy (session, its chunks, login flows): such
    /// cookies are never forwarded upstream.
    pub fn is_own(&self, cookie_name: &str) -> bool {
        cookie_name.starts_with(self.name.as_str())
    }

    /// Whether a `Set-Cookie` line (from the upstream) would set one of the proxy's own
    /// cookies (session, chunk, login flow; any ASCII case): such lines are dropped, or the
    /// upstream could plant a session of its choosing in the browser.
    pub fn is_own_set_cookie(&self, line: &[u8]) -> bool {
        let end = memchr::memchr2(b'=', b';', line).unwrap_or(line.len());
        let name = line[..end].trim_ascii();
        name.len() >= self.name.len()
            && name[..self.name.len()].eq_ignore_ascii_case(self.name.as_bytes())
    }

    /// Collects the session cookies of a request.
    pub fn incoming<'a>(&self, headers: &'a HeaderMap) -> Incoming<'a> {
        let mut found = Incoming::default();
        for (name, value) in cookie_pair_bytes(headers) {
            let Some(rest) = name.strip_prefix(self.name.as_bytes()) else {
                found.foreign = true;
                continue;
            };
            if rest.is_empty() {
                // Duplicates (possible with non-__Host- names): the first one wins, as most
                // servers do; a wrong pick fails to open and is treated as no session.
                found.base.get_or_insert(value);
                found.present = found.present.max(1);
            } else if let Some(index) = rest
                .strip_prefix(b".")
                .and_then(|i| std::str::from_utf8(i).ok())
                .and_then(|i| i.parse::<usize>().ok())
            {
                if (1..MAX_CHUNKS).contains(&index) {
                    found.chunks[index].get_or_insert(value);
                    found.present = found.present.max(index + 1);
                }
            }
        }
        found
    }

    /// Opens the session carried by `incoming`, if any.
    pub fn read(&self, incoming: &Incoming<'_>, now: u64) -> ReadOutcome {
        if !incoming.any() {
            return ReadOutcome::Absent;
        }
        let Some(sealed) = self.reassemble(incoming) else {
            return ReadOutcome::Invalid;
        };
        let Some(opened) = self.keys.load().open(&self.name, &sealed) else {
            return ReadOutcome::Invalid;
        };
        let Some(session) = Session::from_bytes(&opened.plaintext) else {
            return ReadOutcome::Invalid;
        };
        if self.remaining_lifetime(&session, now) == 0 {
            return ReadOutcome::Invalid;
        }
        ReadOutcome::Valid {
            session,
            retired_key: !opened.current_key,
        }
    }

    fn reassemble<'a>(&self, incoming: &Incoming<'a>) -> Option<Cow<'a, [u8]>> {
        let base = incoming.base?;
        // `count.first-chunk`: the count is at most two digits and base64url has no '.', so
        // only the first bytes are looked at (not the whole kilobyte of an unchunked value).
        let Some(dot) = base.iter().take(3).position(|&b| b == b'.') else {
            return Some(Cow::Borrowed(base));
        };
        let (count, first) = (&base[..dot], &base[dot + 1..]);
        let count: usize = std::str::from_utf8(count).ok()?.parse().ok()?;
        if !(2..=MAX_CHUNKS).contains(&count) {
            return None;
        }
        let mut sealed = Vec::with_capacity(count * CHUNK_BYTES);
        sealed.extend_from_slice(first);
        for chunk in &incoming.chunks[1..count] {
            sealed.extend_from_slice((*chunk)?);
        }
        Some(Cow::Owned(sealed))
    }

    /// Seconds left of the session's absolute lifetime (0 when over).
    pub fn remaining_lifetime(&self, session: &Session, now: u64) -> u64 {
        session
            .started_at
            .saturating_add(self.lifetime_secs)
            .saturating_sub(now)
    }

    /// Seals a session into `Set-Cookie` values (base first, then chunks).
    pub fn seal(&self, session: &Session, now: u64) -> Vec<HeaderValue> {
        let keys = self.keys.load();
        let fits = |sealed: &String| sealed.len().div_ceil(CHUNK_BYTES) <= MAX_CHUNKS;
        let mut sealed = keys.seal(&self.name, &session.to_bytes());
        // More than MAX_CHUNKS cookies would never be read back: drop what the session can do
        // without (the ID token, then the claims) before giving up on it.
        if !fits(&sealed) {
            let mut lighter = session.clone();
            lighter.id_token = None;
            sealed = keys.seal(&self.name, &lighter.to_bytes());
            let mut dropped = "the ID token";
            if !fits(&sealed) {
                lighter.claims.clear();
                sealed = keys.seal(&self.name, &lighter.to_bytes());
                dropped = "the ID token and claims";
            }
            if fits(&sealed) {
                tracing::warn!(
                    bytes = sealed.len(),
                    dropped,
                    "session too large for its cookies"
                );
            } else {
                tracing::error!(
                    bytes = sealed.len(),
                    "session too large to store even without claims: the tokens alone exceed the cookie budget"
                );
            }
        }
        let max_age = self.remaining_lifetime(session, now);
        if sealed.len() <= CHUNK_BYTES {
            return vec![self.set_cookie(&self.name, &sealed, max_age)];
        }
        let parts: Vec<&str> = sealed
            .as_bytes()
            .chunks(CHUNK_BYTES)
            // base64url is ASCII, so byte chunks are valid UTF-8.
            .map(|c| std::str::from_utf8(c).expect("base64url is ASCII"))
            .collect();
        let count = parts.len();
        let mut out = Vec::with_capacity(count);
        out.push(self.set_cookie(&self.name, &format!("{count}.{}", parts[0]), max_age));
        for (i, part) in parts.iter().enumerate().skip(1) {
            out.push(self.set_cookie(&format!("{}.{i}", self.name), part, max_age));
        }
        out
    }

    /// `Set-Cookie` values deleting the chunk cookies the request carried beyond the `used`
    /// cookies of the value being set (`used` = length of [`CookieCodec::seal`]'s result).
    pub fn clear_stale(&self, used: usize, presence: &Presence) -> Vec<HeaderValue> {
        (used.max(1)..presence.present)
            .filter(|&i| presence.chunks[i])
            .map(|i| self.set_cookie(&format!("{}.{i}", self.name), "", 0))
            .collect()
    }

    /// `Set-Cookie` values that delete every session cookie the request carried.
    pub fn clear(&self, presence: &Presence) -> Vec<HeaderValue> {
        let mut out = vec![self.set_cookie(&self.name, "", 0)];
        out.extend(self.clear_stale(1, presence));
        out
    }

    /// A `Set-Cookie` value for `name` with the configured attributes.
    pub fn set_cookie(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let line = format!("{name}={value}{}; Max-Age={max_age}", self.attributes);
        // Names are validated at start-up and values are base64url or digits.
        HeaderValue::from_str(&line).expect("cookie line is a valid header value")
    }

    /// A `Set-Cookie` value like [`CookieCodec::set_cookie`] but `SameSite=Lax`: for the
    /// login-flow cookie, which must come back on the IdP's cross-site redirect to the
    /// callback (a `Strict` cookie would not, and every login would fail).
    pub fn set_lax_cookie(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let line =
            format!("{name}={value}; Path=/{secure}; HttpOnly; SameSite=Lax; Max-Age={max_age}");
        HeaderValue::from_str(&line).expect("cookie line is a valid header value")
    }

    /// The request's `Cookie` header without the proxy's cookies, joined into one value
    /// (`None` when nothing is left). Cookies we cannot parse are passed through untouched.
    pub fn strip_own(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        let mut kept: Vec<u8> = Vec::new();
        for pair in raw_pairs(headers) {
            if split_pair(pair).0.starts_with(self.name.as_bytes()) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            // The app's bytes, exactly as the browser sent them.
            kept.extend_from_slice(pair);
        }
        if kept.is_empty() {
            None
        } else {
            HeaderValue::from_bytes(&kept).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SameSite;
    use crate::secret::{AccessToken, RefreshToken};
    use http::header::COOKIE;
    use std::time::Duration;

    fn codec(keys: &str) -> CookieCodec {
        let config = SessionConfig {
            cookie_name: "__Host-th".into(),
            secure: true,
            same_site: SameSite::Strict,
            lifetime: Duration::from_secs(3600),
            refresh_skew: Duration::from_secs(30),
            rotation_grace: Duration::from_secs(60),
            reuse_window: Duration::from_secs(600),
            max_tracked_rotations: 10,
            max_ended_sessions: 10,
            claims: vec![],
        };
        CookieCodec::new(&config, Arc::new(KeyRing::parse(keys).expect("keys")))
    }

    const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn session(token_len: usize) -> Session {
        Session {
            id: "sid".into(),
            refresh_token: RefreshToken::new("r".repeat(token_len)),
            access_token: AccessToken::new("a".repeat(token_len)),
            access_expires_at: 2000,
            access_issued_at: 1000,
            scope: "openid".into(),
            claims: Default::default(),
            id_token: None,
            started_at: 1000,
        }
    }

    fn request_with(set_cookies: &[HeaderValue]) -> HeaderMap {
        let pairs: Vec<String> = set_cookies
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
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("app=1; {}", pairs.join("; "))).expect("hv"),
        );
        h
    }

    fn open(c: &CookieCodec, headers: &HeaderMap) -> ReadOutcome {
        c.read(&c.incoming(headers), 1500)
    }

    #[test]
    fn attributes_are_host_prefix_strict_httponly_secure() {
        let c = codec(K1);
        let cookies = c.seal(&session(10), 1500);
        assert_eq!(cookies.len(), 1);
        let line = cookies[0].to_str().expect("ascii");
        assert!(line.starts_with("__Host-th="), "{line}");
        for attr in [
            "; Path=/",
            "; Secure",
            "; HttpOnly",
            "; SameSite=Strict",
            "; Max-Age=3100",
        ] {
            assert!(line.contains(attr), "{attr} missing in {line}");
        }
        assert!(!line.contains("Domain"), "{line}");
    }

    #[test]
    fn large_sessions_are_chunked_and_reassembled() {
        let c = codec(K1);
        let cookies = c.seal(&session(6000), 1500);
        assert!(cookies.len() >= 4, "{} cookies", cookies.len());
        for v in &cookies {
            assert!(v.len() < 4096, "each cookie fits the browser limit");
        }
        match open(&c, &request_with(&cookies)) {
            ReadOutcome::Valid {
                session,
                retired_key,
            } => {
                assert_eq!(session.access_token.expose().len(), 6000);
                assert!(!retired_key);
            }
            other => panic!("expected a session, got {other:?}"),
        }
        // A missing chunk is not a session.
        let mut missing = cookies.clone();
        missing.remove(2);
        assert!(matches!(
            open(&c, &request_with(&missing)),
            ReadOutcome::Invalid
        ));
    }

    #[test]
    fn an_oversized_session_drops_its_id_token_to_fit() {
        let c = codec(K1);
        let mut s = session(10);
        s.id_token = Some(crate::secret::IdToken::new("i".repeat(40_000)));
        let cookies = c.seal(&s, 1500);
        assert!(cookies.len() <= MAX_CHUNKS, "{} cookies", cookies.len());
        match open(&c, &request_with(&cookies)) {
            ReadOutcome::Valid { session, .. } => {
                assert!(session.id_token.is_none());
                assert_eq!(session.refresh_token.expose(), s.refresh_token.expose());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stale_chunks_are_cleared_when_the_session_shrinks() {
        let c = codec(K1);
        let big = c.seal(&session(6000), 1500);
        let headers = request_with(&big);
        let incoming = c.incoming(&headers);
        let small = c.seal(&session(10), 1500);
        let clears = c.clear_stale(small.len(), &incoming.presence());
        assert_eq!(clears.len(), big.len() - 1);
        for v in clears {
            let line = v.to_str().expect("ascii");
            assert!(
                line.contains("Max-Age=0") && line.starts_with("__Host-th."),
                "{line}"
            );
        }
    }

    #[test]
    fn tampered_foreign_and_expired_cookies_are_invalid_not_errors() {
        let c = codec(K1);
        let good = c.seal(&session(10), 1500);
        let line = good[0].to_str().expect("ascii").to_string();
        let value = line
            .split(';')
            .next()
            .expect("pair")
            .split_once('=')
            .expect("=")
            .1
            .to_string();
        let mut h = HeaderMap::new();
        let mut bytes = value.clone().into_bytes();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let tampered = format!("__Host-th={}", String::from_utf8(bytes).expect("ascii"));
        h.insert(COOKIE, HeaderValue::from_str(&tampered).expect("hv"));
        assert!(matches!(open(&c, &h), ReadOutcome::Invalid));
        h.insert(COOKIE, HeaderValue::from_static("__Host-th=garbage"));
        assert!(matches!(open(&c, &h), ReadOutcome::Invalid));
        h.insert(COOKIE, HeaderValue::from_static("__Host-th=9.x"));
        assert!(matches!(open(&c, &h), ReadOutcome::Invalid));
        assert!(matches!(
            open(&codec(K2), &request_with(&good)),
            ReadOutcome::Invalid
        ));
        let c_late = c.read(&c.incoming(&request_with(&good)), 1000 + 3600);
        assert!(
            matches!(c_late, ReadOutcome::Invalid),
            "past the absolute lifetime"
        );
        assert!(matches!(open(&c, &HeaderMap::new()), ReadOutcome::Absent));
    }

    #[test]
    fn retired_key_is_flagged_for_resealing() {
        let old = codec(K1);
        let cookies = old.seal(&session(10), 1500);
        let rotated = codec(&format!("{K2},{K1}"));
        assert!(matches!(
            open(&rotated, &request_with(&cookies)),
            ReadOutcome::Valid {
                retired_key: true,
                ..
            }
        ));
    }

    #[test]
    fn strip_own_keeps_the_apps_cookies() {
        let c = codec(K1);
        let mut h = request_with(&c.seal(&session(6000), 1500));
        h.append(
            COOKIE,
            HeaderValue::from_static("theme=dark; __Host-th_flow_x=1"),
        );
        let kept = c.strip_own(&h).expect("app cookies remain");
        assert_eq!(kept, "app=1; theme=dark");
        let mut only_ours = HeaderMap::new();
        only_ours.insert(COOKIE, HeaderValue::from_static("__Host-th=abc"));
        assert!(c.strip_own(&only_ours).is_none());
    }
}
