//! Sessions already opened, by the exact sealed bytes they came in: a repeat request with the
//! same cookie skips base64, AES-GCM and decoding, and gets its `Authorization: Bearer` value
//! ready (measured in BENCHMARKS.md).
//!
//! What may be served from here is exactly what opening those bytes would give again:
//! - an entry matches only on full byte equality with the sealed value (the keyed hash of its
//!   tail only picks the slot), and only under the key ring that opened it (its generation:
//!   a reloaded ring gives a new one, and installing it also empties the cache);
//! - only what does not depend on time is kept: the session as decoded. Everything that does
//!   (the absolute lifetime here; ended sessions, idle timeout, CSRF, refresh in the caller)
//!   is decided again on every request, after the cache.
//!
//! The byte comparison is `memcmp`, not constant time: what its time can tell is which 16-32-byte
//! block first differs, and past the public header (format, key id) every block of a sealed value
//! holds nonce or ciphertext bytes that a guess would have to match whole: no byte-at-a-time
//! oracle on a cached value. Besides, a value reaches a slot only through the keyed hash.
//!
//! Bounded: [`SLOTS`] direct-mapped slots, and only values up to [`MAX_SEALED`] bytes (a
//! chunked session is opened every time). A value is kept the second time it is seen in a
//! row in its slot, so a stream of distinct sessions (more than the slots hold) does not churn
//! the cache with entries that would be evicted before their next use.

use super::Session;
use http::HeaderValue;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::sync::{Arc, Mutex, PoisonError};

/// Number of slots; each holds at most one session (~3.5 KB for a 900-byte access token:
/// the sealed value, the decoded session and the `Authorization` value).
pub const SLOTS: usize = 128;
/// Largest sealed value kept (an unchunked cookie is at most `CHUNK_BYTES`).
pub const MAX_SEALED: usize = super::cookies::CHUNK_BYTES;
/// Bytes of the sealed value's end that pick the slot: its GCM tag (random for every seal).
const TAIL: usize = 24;

/// An opened session, as the sealed value `sealed` gave it under key ring `generation`.
#[derive(Clone)]
pub(super) struct Opened {
    pub session: Arc<Session>,
    pub retired_key: bool,
    /// `Bearer <access token>` (sensitive), unless the session's token is DPoP-bound.
    pub bearer: Option<HeaderValue>,
}

impl Opened {
    /// What the cache keeps of a session opened with (`retired_key`) or without a retired key.
    pub fn new(session: &Arc<Session>, retired_key: bool) -> Opened {
        let dpop = session.dpop.is_some() && session.dpop_bound;
        let bearer = (!dpop)
            .then(|| HeaderValue::from_str(&format!("Bearer {}", session.access_token.expose())))
            .and_then(Result::ok)
            .map(|mut value| {
                value.set_sensitive(true);
                value
            });
        Opened {
            session: Arc::clone(session),
            retired_key,
            bearer,
        }
    }
}

struct Entry {
    sealed: Box<[u8]>,
    generation: u64,
    opened: Opened,
}

#[derive(Default)]
struct Slot {
    /// The slot hash of the last value that missed here (kept on its second miss).
    candidate: u64,
    entry: Option<Arc<Entry>>,
}

pub(super) struct OpenedCache {
    hasher: SipHasher13,
    slots: Box<[Mutex<Slot>]>,
}

/// Never the values: the entries hold credentials.
impl std::fmt::Debug for OpenedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedCache")
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl Default for OpenedCache {
    fn default() -> Self {
        let mut key = [0u8; 16];
        crate::crypto::fill_random(&mut key);
        OpenedCache {
            hasher: SipHasher13::new_with_key(&key),
            slots: (0..SLOTS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl OpenedCache {
    fn hash(&self, sealed: &[u8]) -> u64 {
        let mut h = self.hasher;
        h.write_usize(sealed.len());
        h.write(&sealed[sealed.len().saturating_sub(TAIL)..]);
        h.finish()
    }

    fn slot(&self, hash: u64) -> std::sync::MutexGuard<'_, Slot> {
        // An entry is replaced whole under the lock: a panic elsewhere cannot leave half of one.
        self.slots[(hash % SLOTS as u64) as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The session `sealed` opened to under key ring `generation`, if it is here.
    pub fn get(&self, sealed: &[u8], generation: u64) -> Option<Opened> {
        if sealed.len() > MAX_SEALED {
            return None;
        }
        let entry = {
            let slot = self.slot(self.hash(sealed));
            let entry = slot.entry.as_ref()?;
            if entry.generation != generation || *entry.sealed != *sealed {
                return None;
            }
            Arc::clone(entry)
        };
        Some(entry.opened.clone())
    }

    /// Records what `sealed` opened to (the second time in a row it misses in its slot).
    pub fn put(&self, sealed: &[u8], generation: u64, opened: impl FnOnce() -> Opened) {
        if sealed.len() > MAX_SEALED {
            return;
        }
        let hash = self.hash(sealed);
        {
            let mut slot = self.slot(hash);
            if slot.candidate != hash {
                slot.candidate = hash;
                return;
            }
        }
        let entry = Arc::new(Entry {
            sealed: sealed.into(),
            generation,
            opened: opened(),
        });
        // The old entry is dropped after the lock is released.
        let _old = self.slot(hash).entry.replace(entry);
    }

    /// Empties every slot (a new key ring: nothing here can be served again).
    pub fn clear(&self) {
        for slot in self.slots.iter() {
            let _old = std::mem::take(&mut *slot.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}
