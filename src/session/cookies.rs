//! Session → cookies: sealing, chunking, attributes, clearing, and stripping ours from `Cookie`
//! (reading them back is `incoming.rs`).
//!
//! Browsers drop cookies over 4096 bytes (name + value), silently. A sealed value over
//! [`CHUNK_BYTES`] is split: the base cookie holds `<count>.<first part>` (`.` never occurs
//! in base64url) and `<name>.1` … `<name>.<count-1>` hold the rest. Responses clear chunk
//! cookies the new value no longer uses, so a stale chunk can never be glued onto a new value.

use super::cookie_header::{raw_pairs, split_pair};
use super::incoming::Presence;
use super::opened::OpenedCache;
use super::Session;
use crate::config::SessionConfig;
use crate::crypto::KeyRing;
use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderValue};
use std::sync::Arc;

/// Longest value a single cookie carries; leaves room for the name under the 4096-byte limit.
pub const CHUNK_BYTES: usize = 3800;
/// Most chunks a session may use (~30 KB); more is refused as malformed.
pub const MAX_CHUNKS: usize = 8;

/// Encodes sessions into cookies and back, for one configured cookie name and key ring.
#[derive(Debug, Clone)]
pub struct CookieCodec {
    pub(super) name: String,
    attributes: String,
    secure: bool,
    lifetime_secs: u64,
    /// Swapped when the mounted key file changes; shared by every clone of the codec.
    pub(super) keys: Arc<ArcSwap<KeyRing>>,
    /// Sessions opened recently, by their sealed bytes (`opened.rs`); emptied with a new ring.
    pub(super) opened: Arc<OpenedCache>,
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
            opened: Arc::default(),
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
        // Entries of the old ring would not be served (its generation is gone): free them.
        self.opened.clear();
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
