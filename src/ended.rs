//! The record of ended sessions: after `POST /auth/logout`, every copy of that session's
//! cookies is refused, not only the one the browser deleted.
//!
//! Sessions are stateless sealed cookies: a copy taken before logout (another tab, a stolen
//! cookie, a pre-refresh cookie still inside `rotation_grace`) would otherwise keep working
//! until its access token expires, or even be refreshed. So the session's random id (fixed at
//! login, unchanged by refreshes) is remembered until the session's absolute end
//! (`started_at + session.lifetime`), after which no copy of it can open anyway.
//!
//! Bounded: at most `session.max_ended_sessions` entries (the earliest to expire are dropped
//! first, with a warning); expired entries go as new ones arrive. Keys are keyed SipHash-128
//! fingerprints of the id, never the id. The check costs nothing while the record is empty.
//! This record is per process; sharing it across replicas is the back-channel logout work.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::Hasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tracing::warn;

type Fingerprint = [u8; 16];

#[derive(Debug)]
pub struct EndedSessions {
    key: (u64, u64),
    cap: usize,
    /// Entries in `inner.until`: lets the hot path skip the lock while nothing has ended.
    count: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Fingerprint → Unix second until which the session is refused.
    until: HashMap<Fingerprint, u64>,
    /// The same entries, earliest end first (stale heap items are skipped when popped).
    by_end: BinaryHeap<Reverse<(u64, Fingerprint)>>,
}

impl EndedSessions {
    pub fn new(cap: usize) -> EndedSessions {
        let mut key = [0u8; 16];
        crate::crypto::fill_random(&mut key);
        EndedSessions {
            key: (
                u64::from_le_bytes(key[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(key[8..].try_into().expect("8 bytes")),
            ),
            cap: cap.max(1),
            count: AtomicUsize::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Ends session `id` until `until` (Unix seconds).
    pub fn end(&self, id: &str, until: u64, now: u64) {
        let fp = self.fingerprint(id);
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.prune(now);
        let previous = inner.until.insert(fp, until);
        if previous != Some(until) {
            inner.by_end.push(Reverse((until, fp)));
        }
        while inner.until.len() > self.cap {
            if let Some(Reverse((end, fp))) = inner.by_end.pop() {
                if inner.until.get(&fp) == Some(&end) {
                    inner.until.remove(&fp);
                    warn!(
                        event = "ended_sessions_full",
                        "the record of ended sessions is full: the one ending soonest is forgotten (raise session.max_ended_sessions)"
                    );
                }
            }
        }
        self.count.store(inner.until.len(), Ordering::Release);
    }

    /// Whether session `id` was ended and is still refused at `now`.
    pub fn is_ended(&self, id: &str, now: u64) -> bool {
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let fp = self.fingerprint(id);
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.until.get(&fp).is_some_and(|&until| now < until)
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fingerprint(&self, id: &str) -> Fingerprint {
        let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(self.key.0, self.key.1);
        hasher.write(id.as_bytes());
        siphasher::sip128::Hasher128::finish128(&hasher).as_bytes()
    }
}

impl Inner {
    fn prune(&mut self, now: u64) {
        while let Some(Reverse((end, fp))) = self.by_end.peek().copied() {
            if end > now {
                break;
            }
            self.by_end.pop();
            if self.until.get(&fp) == Some(&end) {
                self.until.remove(&fp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_until_the_session_end_then_forgotten() {
        let ended = EndedSessions::new(10);
        assert!(!ended.is_ended("a", 100));
        ended.end("a", 200, 100);
        assert!(ended.is_ended("a", 100));
        assert!(ended.is_ended("a", 199));
        assert!(!ended.is_ended("a", 200));
        assert!(!ended.is_ended("b", 150));
        // Expired entries go when the next one arrives.
        ended.end("b", 400, 300);
        assert_eq!(ended.len(), 1);
    }

    #[test]
    fn bounded_dropping_the_soonest_to_end() {
        let ended = EndedSessions::new(3);
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            ended.end(id, 1000 + i as u64, 0);
        }
        assert_eq!(ended.len(), 3);
        assert!(!ended.is_ended("a", 1), "the soonest to end went first");
        assert!(ended.is_ended("d", 1));
        // Ending the same session again does not grow the record.
        ended.end("d", 1003, 1);
        assert_eq!(ended.len(), 3);
    }
}
