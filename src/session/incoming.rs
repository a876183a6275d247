//! Cookies → session: the proxy's cookies found on a request (chunks reassembled), opened and
//! checked; what was present, for the cookies the response must clear.

use super::cookie_header::{pairs_of, split_pair};
use super::cookies::{CookieCodec, CHUNK_BYTES, MAX_CHUNKS};
use super::opened::Opened;
use super::Session;
use crate::crypto::{KeyRing, OpenError};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use std::borrow::Cow;
use std::sync::Arc;

/// The proxy's cookies found on one request: raw bytes (ours are base64url, which the opening
/// checks; anything else cannot open, and reads as an invalid session).
#[derive(Default)]
pub struct Incoming<'a> {
    pub(super) base: Option<&'a [u8]>,
    pub(super) chunks: [Option<&'a [u8]>; MAX_CHUNKS],
    /// 1 + highest chunk index seen (0 when none of ours were sent).
    pub(super) present: usize,
    /// The request also carries cookies that are not ours (the app's).
    pub(super) foreign: bool,
    /// The request has a `Cookie` field at all.
    pub(super) sent: bool,
    /// The bytes of its `Cookie` fields.
    pub(super) cookie_bytes: usize,
}

/// Never the values: a sealed session cookie is a credential for the session.
impl std::fmt::Debug for Incoming<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("base", &self.base.map(<[u8]>::len))
            .field("chunks", &self.chunks.map(|c| c.map(<[u8]>::len)))
            .field("present", &self.present)
            .field("foreign", &self.foreign)
            .field("sent", &self.sent)
            .field("cookie_bytes", &self.cookie_bytes)
            .finish()
    }
}

/// See [`Presence::large_cookies`]: past a chunk of our session (3,800 bytes of its value), what
/// a chunked session sends.
pub const LARGE_COOKIES: usize = 4096;

/// Which session cookies a request carried (not their values): what is needed to delete
/// stale chunks after the request's headers are gone.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presence {
    pub(super) chunks: [bool; MAX_CHUNKS],
    pub(super) present: usize,
    pub(super) foreign: bool,
    pub(super) sent: bool,
    pub(super) cookie_bytes: usize,
}

impl Presence {
    /// Whether the request carries cookies other than the proxy's (to forward upstream).
    pub fn foreign_cookies(&self) -> bool {
        self.foreign
    }

    /// Whether the request has a `Cookie` field at all (else there is nothing to strip).
    pub fn cookie_sent(&self) -> bool {
        self.sent
    }

    /// Whether the `Cookie` fields came to more than [`LARGE_COOKIES`] bytes. hyper reads a
    /// head that large into a buffer grown past its first 8 KiB, and every header value it
    /// parsed shares that buffer, keeping it allocated while any of them lives.
    pub fn large_cookies(&self) -> bool {
        self.cookie_bytes > LARGE_COOKIES
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
            sent: self.sent,
            cookie_bytes: self.cookie_bytes,
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
// The session-carrying variant is the common one on the data path: boxing it would
// allocate once more per request.
#[allow(clippy::large_enum_variant)]
pub enum ReadOutcome<S = Session> {
    /// No session cookie at all.
    Absent,
    /// Cookies present but not a session we sealed (tampered, truncated, foreign key, expired
    /// lifetime, missing chunk): the request is anonymous and the cookies get cleared.
    Invalid,
    /// Sealed with a cookie key this replica does not have yet (a rotation reaching the pods
    /// at different moments): the pod is behind, not the browser. Never cleared.
    UnknownKey,
    Valid {
        /// The session: owned, or shared with the cache of opened sessions (`read_cached`).
        session: S,
        /// Opened with a retired key: re-seal on this response.
        retired_key: bool,
    },
}

/// A [`ReadOutcome`] through the cache of opened sessions.
#[derive(Debug)]
pub struct Opening {
    pub outcome: ReadOutcome<Arc<Session>>,
    /// `Authorization: Bearer <access token>`, ready, when the session came from the cache
    /// (and its token is not DPoP-bound).
    pub bearer: Option<HeaderValue>,
}

impl Opening {
    fn new(outcome: ReadOutcome<Arc<Session>>) -> Opening {
        Opening {
            outcome,
            bearer: None,
        }
    }
}

impl CookieCodec {
    /// Collects the session cookies of a request.
    pub fn incoming<'a>(&self, headers: &'a HeaderMap) -> Incoming<'a> {
        let mut found = Incoming::default();
        let fields = headers.get_all(COOKIE);
        for field in &fields {
            found.sent = true;
            found.cookie_bytes += field.len();
        }
        for (name, value) in pairs_of(fields).map(split_pair) {
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
        let Some(sealed) = self.sealed(incoming) else {
            return self.absent_or_invalid(incoming);
        };
        match self.open(&self.keys.load(), &sealed) {
            ReadOutcome::Valid { session, .. } if !self.lives(&session, now) => {
                ReadOutcome::Invalid
            }
            outcome => outcome,
        }
    }

    /// As [`CookieCodec::read`], through the cache of sessions opened before (`opened.rs`):
    /// the same outcome for the same bytes under the same key ring, the lifetime checked
    /// again. With a valid session from the cache, its `Authorization: Bearer` value ready.
    pub fn read_cached(&self, incoming: &Incoming<'_>, now: u64) -> Opening {
        let Some(sealed) = self.sealed(incoming) else {
            return Opening::new(self.absent_or_invalid(incoming));
        };
        let keys = self.keys.load();
        let generation = keys.generation();
        if let Some(opened) = self.opened.get(&sealed, generation) {
            return Opening {
                outcome: self.alive(
                    ReadOutcome::Valid {
                        session: opened.session,
                        retired_key: opened.retired_key,
                    },
                    now,
                ),
                bearer: opened.bearer,
            };
        }
        let outcome = match self.open(&keys, &sealed) {
            ReadOutcome::Valid {
                session,
                retired_key,
            } => {
                let session = Arc::new(session);
                self.opened
                    .put(&sealed, generation, || Opened::new(&session, retired_key));
                ReadOutcome::Valid {
                    session,
                    retired_key,
                }
            }
            ReadOutcome::Absent => ReadOutcome::Absent,
            ReadOutcome::Invalid => ReadOutcome::Invalid,
            ReadOutcome::UnknownKey => ReadOutcome::UnknownKey,
        };
        Opening::new(self.alive(outcome, now))
    }

    fn absent_or_invalid<S>(&self, incoming: &Incoming<'_>) -> ReadOutcome<S> {
        if incoming.any() {
            ReadOutcome::Invalid
        } else {
            ReadOutcome::Absent
        }
    }

    /// The sealed value (chunks reassembled); `None` when there is none or it is malformed.
    fn sealed<'a>(&self, incoming: &Incoming<'a>) -> Option<Cow<'a, [u8]>> {
        if !incoming.any() {
            return None;
        }
        self.reassemble(incoming)
    }

    /// Opens and decodes a sealed value (what does not depend on the time).
    fn open(&self, keys: &KeyRing, sealed: &[u8]) -> ReadOutcome {
        let opened = match keys.open_checked(&self.name, sealed) {
            Ok(opened) => opened,
            Err(OpenError::UnknownKey) => return ReadOutcome::UnknownKey,
            Err(OpenError::Invalid) => return ReadOutcome::Invalid,
        };
        let Some(session) = Session::from_bytes(&opened.plaintext) else {
            return ReadOutcome::Invalid;
        };
        ReadOutcome::Valid {
            session,
            retired_key: !opened.current_key,
        }
    }

    /// A valid session past its absolute lifetime is invalid.
    fn alive<S: std::ops::Deref<Target = Session>>(
        &self,
        outcome: ReadOutcome<S>,
        now: u64,
    ) -> ReadOutcome<S> {
        match outcome {
            ReadOutcome::Valid { session, .. } if !self.lives(&session, now) => {
                ReadOutcome::Invalid
            }
            outcome => outcome,
        }
    }

    fn lives(&self, session: &Session, now: u64) -> bool {
        self.remaining_lifetime(session, now) > 0
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
}
