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
//! Bounded: [`SLOTS`] direct-mapped slots, each holding a value of up to [`MAX_SEALED`] bytes
//! (one cookie), and of those at most [`LARGE_ENTRIES`] holding a chunked value (up to
//! [`MAX_LARGE_SEALED`]): a few users with large sessions are served from here, and the cache
//! stays within ~0.45 MiB for the small ones plus ~0.4 MiB for the large ones. A chunked value
//! that finds the large entries taken is opened every time, as before. A value is kept the
//! second time it is seen in a row in its slot, so a stream of distinct sessions (more than the
//! slots hold) does not churn the cache with entries that would be evicted before their next use.

use super::Session;
use http::HeaderValue;
use siphasher::sip::SipHasher13;
use std::hash::Hasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Number of slots; each holds at most one session (~3.5 KB for a 900-byte access token:
/// the sealed value, the decoded session and the `Authorization` value).
pub const SLOTS: usize = 128;
/// Largest sealed value kept in any slot (an unchunked cookie is at most `CHUNK_BYTES`).
pub const MAX_SEALED: usize = super::cookies::CHUNK_BYTES;
/// Largest chunked value kept: every chunk a session may have.
pub const MAX_LARGE_SEALED: usize = super::cookies::MAX_CHUNKS * super::cookies::CHUNK_BYTES;
/// Most slots holding a chunked value at once (each up to ~52 KB with its decoded session).
pub const LARGE_ENTRIES: usize = 8;
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
            .then(|| crate::proxy::bearer::bearer(session.access_token.expose_bytes()))
            .and_then(Result::ok);
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

impl Entry {
    /// A chunked value: counted in [`LARGE_ENTRIES`].
    fn large(&self) -> bool {
        self.sealed.len() > MAX_SEALED
    }
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
    /// Slots holding a chunked value (at most [`LARGE_ENTRIES`]); changed only under the lock
    /// of the slot whose entry comes or goes.
    large: AtomicUsize,
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
            large: AtomicUsize::new(0),
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
        if sealed.len() > MAX_LARGE_SEALED {
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
        if sealed.len() > MAX_LARGE_SEALED {
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
        let mut slot = self.slot(hash);
        let was_large = slot.entry.as_ref().is_some_and(|old| old.large());
        match (was_large, entry.large()) {
            (false, true) => {
                let reserved = self
                    .large
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < LARGE_ENTRIES).then_some(n + 1)
                    });
                if reserved.is_err() {
                    // Every large entry is taken: this one is opened every time.
                    return;
                }
            }
            (true, false) => {
                self.large.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
        let old = slot.entry.replace(entry);
        // The old entry is dropped after the lock is released.
        drop(slot);
        drop(old);
    }

    /// Slots holding a chunked value: as counted, and as found by looking at every slot.
    #[cfg(test)]
    pub fn large_entries(&self) -> (usize, usize) {
        let found = self
            .slots
            .iter()
            .filter(|slot| {
                let slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
                slot.entry.as_ref().is_some_and(|entry| entry.large())
            })
            .count();
        (self.large.load(Ordering::Acquire), found)
    }

    /// Empties every slot (a new key ring: nothing here can be served again).
    pub fn clear(&self) {
        for slot in self.slots.iter() {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            let old = std::mem::take(&mut *slot);
            if old.entry.as_ref().is_some_and(|entry| entry.large()) {
                self.large.fetch_sub(1, Ordering::AcqRel);
            }
            drop(slot);
            drop(old);
        }
    }
}
