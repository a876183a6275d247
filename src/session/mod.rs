//! The session the browser carries (sealed) and its cookie encoding. No I/O here.
//!
//! A session is what the proxy needs to act for the user: the refresh token, the current
//! access token and its expiry, the granted scope, a few ID-token claims for `/auth/session`,
//! and when it started (for the absolute lifetime).
//!
//! The sealed plaintext is a format byte and the fields in `postcard`'s compact binary form:
//! it is decoded on every request, and length-prefixed fields cost a fraction of JSON's
//! scanning (measured in BENCHMARKS.md). Claims ride as one JSON string inside, since they
//! are free-form. A new layout gets a new format byte.

mod claims;
#[cfg(test)]
mod codec_tests;
mod cookie_header;
mod cookies;
mod incoming;
mod opened;
#[cfg(test)]
mod opened_tests;

pub use claims::Claims;
pub use cookie_header::cookie_pairs;
pub use cookies::{CookieCodec, MAX_CHUNKS};
pub use incoming::{Incoming, Opening, Presence, ReadOutcome};

use crate::dpop::DpopKey;
use crate::secret::{AccessToken, IdToken, RefreshToken};
use serde::{Deserialize, Serialize};

/// Layout of the sealed plaintext (see the module docs).
const FORMAT: u8 = 1;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    /// Random id fixed at login; survives refreshes, so logs can follow one session by a
    /// keyed hash of it. Not a credential.
    pub id: String,
    pub refresh_token: RefreshToken,
    pub access_token: AccessToken,
    /// Unix seconds at which the access token expires (local clock).
    pub access_expires_at: u64,
    /// Unix seconds at which the access token was obtained (local clock).
    pub access_issued_at: u64,
    pub scope: String,
    /// Parsed when read (`claims.rs`).
    pub claims: Claims,
    /// Kept only where the IdP's logout wants it back as `id_token_hint`.
    pub id_token: Option<IdToken>,
    /// Unix seconds of the login that created this session.
    pub started_at: u64,
    /// The ID token's `sub` and `sid` at login: what a back-channel logout or an operator names
    /// to end this session. Sealed after the fields above (see [`Session::to_bytes`]).
    #[serde(skip)]
    pub sub: Option<String>,
    #[serde(skip)]
    pub sid: Option<String>,
    /// Unix seconds of the last use written into the cookie (for `session.idle_timeout`);
    /// re-sealed at most every `session.idle_touch_interval`.
    #[serde(skip)]
    pub last_used_at: u64,
    /// The session's DPoP key (`idp.dpop`): its tokens are bound to it. Sealed in a second
    /// extension record, written only when there is a key.
    #[serde(skip)]
    pub dpop: Option<DpopKey>,
    /// The IdP issued the current access token as `token_type: DPoP` (bound to `dpop`): it
    /// goes upstream as `Authorization: DPoP` with a proof, else as `Bearer`.
    #[serde(skip)]
    pub dpop_bound: bool,
}

/// The fields sealed after the first layout's, in their own postcard record: a binary that
/// knows only the first layout reads a new cookie and ignores them (postcard leaves trailing
/// bytes alone), so a rolling upgrade or downgrade logs nobody out.
#[derive(Serialize, Deserialize)]
struct Extension {
    sub: Option<String>,
    sid: Option<String>,
    last_used_at: u64,
}

/// The second extension record (DPoP), after [`Extension`]; absent without a key, so a session
/// without DPoP seals exactly as before. A binary that predates it ignores it (and, re-sealing,
/// drops the key: enable `idp.dpop` once every replica runs a binary that knows it).
#[derive(Serialize, Deserialize)]
struct DpopExtension {
    key: DpopKey,
    bound: bool,
}

impl Session {
    /// Whether this session, recorded as the result of refreshing `earlier`'s refresh token,
    /// is newer than `earlier`. A rotated one spent that token: newer, always (not taking it
    /// would spend the token again). An IdP that does not rotate leaves the token as it was:
    /// then it is newer only if its access token was issued later; on a tie `earlier` is kept
    /// (it may be a later refresh made elsewhere in the same second).
    pub fn succeeds(&self, earlier: &Session) -> bool {
        if self.refresh_token.expose_bytes() != earlier.refresh_token.expose_bytes() {
            return true;
        }
        self.access_issued_at > earlier.access_issued_at
            && self.access_token.expose_bytes() != earlier.access_token.expose_bytes()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![FORMAT];
        // Serializing strings and numbers into a Vec cannot fail.
        out.extend(postcard::to_allocvec(self).expect("session serializes"));
        let extension = Extension {
            sub: self.sub.clone(),
            sid: self.sid.clone(),
            last_used_at: self.last_used_at,
        };
        out.extend(postcard::to_allocvec(&extension).expect("extension serializes"));
        if let Some(key) = &self.dpop {
            let dpop = DpopExtension {
                key: key.clone(),
                bound: self.dpop_bound,
            };
            out.extend(postcard::to_allocvec(&dpop).expect("DPoP extension serializes"));
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Session> {
        let (&FORMAT, rest) = bytes.split_first()? else {
            return None;
        };
        let (mut session, rest) = postcard::take_from_bytes::<Session>(rest).ok()?;
        if rest.is_empty() {
            // Sealed before the extension existed: last used when its tokens were obtained.
            session.last_used_at = session.access_issued_at.max(session.started_at);
        } else {
            let (extension, rest) = postcard::take_from_bytes::<Extension>(rest).ok()?;
            session.sub = extension.sub;
            session.sid = extension.sid;
            session.last_used_at = extension.last_used_at;
            if !rest.is_empty() {
                let dpop: DpopExtension = postcard::from_bytes(rest).ok()?;
                session.dpop = Some(dpop.key);
                session.dpop_bound = dpop.bound;
            }
        }
        Some(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_formats() {
        let mut claims = serde_json::Map::new();
        claims.insert("name".into(), "Zoë \"Q\"".into());
        claims.insert("groups".into(), serde_json::json!(["a", "b"]));
        let s = Session {
            id: "i".into(),
            refresh_token: RefreshToken::new("r+/="),
            access_token: AccessToken::new("a.b.c"),
            access_expires_at: 2,
            access_issued_at: 1,
            scope: "openid".into(),
            claims: claims.into(),
            id_token: Some(IdToken::new("id")),
            started_at: 3,
            sub: Some("u".into()),
            sid: Some("s".into()),
            last_used_at: 4,
            dpop: None,
            dpop_bound: false,
        };
        let back = Session::from_bytes(&s.to_bytes()).expect("round trip");
        assert_eq!(back.refresh_token.expose(), "r+/=");
        assert_eq!(back.claims["name"], "Zoë \"Q\"");
        assert_eq!(back.claims["groups"][1], "b");
        assert_eq!(back.id_token.expect("id").expose(), "id");
        assert_eq!(
            (back.sub.as_deref(), back.sid.as_deref(), back.last_used_at),
            (Some("u"), Some("s"), 4)
        );
        assert!(
            Session::from_bytes(b"{\"r\":\"json\"}").is_none(),
            "not our format"
        );
        assert!(Session::from_bytes(&[]).is_none());
        // The first layout alone (a cookie sealed before the extension) still opens, and a
        // binary that knows only that layout opens a new cookie (trailing bytes ignored).
        let first = postcard::to_allocvec(&s).expect("first layout");
        let old = Session::from_bytes(&[&[FORMAT][..], &first].concat()).expect("old cookie");
        assert_eq!((old.sub, old.last_used_at), (None, 3));
        let new = s.to_bytes();
        assert!(
            Session::from_bytes(&new).expect("new").dpop.is_none(),
            "no key, no DPoP record"
        );
        let read_by_old: Session = postcard::from_bytes(&new[1..]).expect("old reader");
        assert_eq!(read_by_old.refresh_token.expose(), "r+/=");
        let mut truncated = s.to_bytes();
        truncated.truncate(10);
        assert!(Session::from_bytes(&truncated).is_none());
    }

    #[test]
    fn a_dpop_key_rides_in_its_own_record_that_older_readers_skip() {
        let mut s = Session::from_bytes(
            &Session {
                id: "i".into(),
                refresh_token: RefreshToken::new("r"),
                access_token: AccessToken::new("a"),
                access_expires_at: 2,
                access_issued_at: 1,
                scope: String::new(),
                claims: Default::default(),
                id_token: None,
                started_at: 1,
                sub: Some("u".into()),
                sid: None,
                last_used_at: 4,
                dpop: None,
                dpop_bound: false,
            }
            .to_bytes(),
        )
        .expect("plain");
        let without = s.to_bytes();
        let key = DpopKey::generate().expect("key");
        s.dpop = Some(key.clone());
        s.dpop_bound = true;
        let with = s.to_bytes();
        assert_eq!(
            &with[..without.len()],
            &without[..],
            "appended after the rest"
        );
        assert!(
            with.len() - without.len() <= 98,
            "{} bytes",
            with.len() - without.len()
        );
        let back = Session::from_bytes(&with).expect("back");
        assert_eq!(back.dpop.expect("key").thumbprint(), key.thumbprint());
        assert!(back.dpop_bound);
        // What a binary without the DPoP record reads: the first extension, trailing bytes
        // ignored.
        let first_len = 1 + postcard::to_allocvec(&s).expect("first").len();
        let old_reader: Extension = postcard::from_bytes(&with[first_len..]).expect("old reader");
        assert_eq!(old_reader.sub.as_deref(), Some("u"));
        // A truncated DPoP record does not open as a session without its key.
        assert!(Session::from_bytes(&with[..with.len() - 3]).is_none());
    }
}
