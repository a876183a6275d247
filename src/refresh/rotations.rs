//! Memory of recent refreshes, keyed by a fingerprint of the refresh token they spent.
//!
//! Three jobs, one map: (1) single-flight: while a refresh runs, others with the same token
//! wait on it instead of calling `/token`; (2) the rotation grace window: for `grace` after a
//! refresh, a request still carrying the *old* token gets the new tokens and cookie;
//! (3) reuse detection: until `reuse_window`, a rotated token that shows up again is refused
//! locally instead of being spent at the IdP a second time (providers such as oidc-provider
//! revoke the whole grant on reuse, logging the real user out).
//!
//! Bounded: entries expire in insertion order (two queues, amortised O(1) pruning) and the
//! map never holds more than `cap` finished entries (oldest evicted first). Full successors
//! (with tokens) are kept only for `grace`; after that only a tombstone remains.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

pub type Fingerprint = [u8; 16];

/// Fingerprints are already keyed SipHash-128 output, uniformly random and unknowable without
/// the process's key: their first 8 bytes are a hash as good as any, for none of the cost.
#[derive(Default)]
pub struct FingerprintHasher(u64);

impl std::hash::Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*b) << (8 * i);
        }
    }
}

type FingerprintMap<V> = HashMap<Fingerprint, V, std::hash::BuildHasherDefault<FingerprintHasher>>;

/// What is known about a refresh token.
#[derive(Debug)]
pub enum Known<S, W> {
    /// Nothing: decide by the access token's expiry.
    Nothing,
    /// A refresh with this token is running; wait on it.
    InFlight(W),
    /// Refreshed within the grace window: use this successor.
    Successor(S),
    /// Rotated away longer ago than the grace window: never spend it again.
    ReuseSuspected,
}

#[derive(Debug)]
enum Entry<S, W> {
    InFlight(W),
    Refreshed {
        successor: S,
        at: Instant,
        rotated: bool,
    },
    Tombstone {
        at: Instant,
    },
}

#[derive(Debug)]
pub struct Rotations<S, W> {
    entries: FingerprintMap<Entry<S, W>>,
    /// Finished refreshes in completion order, for the grace expiry.
    recent: VecDeque<(Fingerprint, Instant)>,
    /// Rotations in completion order, for the reuse-window expiry and the cap.
    rotated: VecDeque<(Fingerprint, Instant)>,
    grace: Duration,
    reuse_window: Duration,
    cap: usize,
}

impl<S: Clone, W: Clone> Rotations<S, W> {
    pub fn new(grace: Duration, reuse_window: Duration, cap: usize) -> Self {
        Rotations {
            entries: FingerprintMap::default(),
            recent: VecDeque::new(),
            rotated: VecDeque::new(),
            grace,
            reuse_window,
            cap,
        }
    }

    /// `now` is read only when `fp` has an entry (most requests' tokens have none).
    pub fn lookup(&self, fp: &Fingerprint, now: impl FnOnce() -> Instant) -> Known<S, W> {
        match self.entries.get(fp) {
            None => Known::Nothing,
            Some(Entry::InFlight(w)) => Known::InFlight(w.clone()),
            Some(Entry::Refreshed {
                successor,
                at,
                rotated,
            }) => {
                let age = now().saturating_duration_since(*at);
                if age < self.grace {
                    Known::Successor(successor.clone())
                } else if *rotated && age < self.reuse_window {
                    Known::ReuseSuspected
                } else {
                    Known::Nothing
                }
            }
            Some(Entry::Tombstone { at }) => {
                if now().saturating_duration_since(*at) < self.reuse_window {
                    Known::ReuseSuspected
                } else {
                    Known::Nothing
                }
            }
        }
    }

    /// Marks a refresh of `fp` as running. The caller checked `lookup` under the same lock.
    pub fn begin(&mut self, fp: Fingerprint, waiter: W) {
        self.entries.insert(fp, Entry::InFlight(waiter));
    }

    /// Records a successful refresh. `rotated`: the IdP issued a new refresh token (so the old
    /// one is spent); otherwise the entry only serves the grace window.
    pub fn succeeded(&mut self, fp: Fingerprint, successor: S, rotated: bool, now: Instant) {
        self.entries.insert(
            fp,
            Entry::Refreshed {
                successor,
                at: now,
                rotated,
            },
        );
        self.recent.push_back((fp, now));
        if rotated {
            self.rotated.push_back((fp, now));
        }
        self.prune(now);
    }

    /// Records `fp` as spent elsewhere (another replica rotated it): refused until the reuse
    /// window ends.
    pub fn spent(&mut self, fp: Fingerprint, now: Instant) {
        self.entries.insert(fp, Entry::Tombstone { at: now });
        self.rotated.push_back((fp, now));
        self.prune(now);
    }

    /// Forgets a failed refresh so the next request tries again.
    pub fn failed(&mut self, fp: &Fingerprint) {
        if matches!(self.entries.get(fp), Some(Entry::InFlight(_))) {
            self.entries.remove(fp);
        }
    }

    /// Drops every successor still inside the grace window that `matches` selects (only those
    /// hold tokens; the walk is over the last `grace` of refreshes, not the whole map): a
    /// rotated one leaves a tombstone (its refresh token is still spent), an unrotated one goes.
    pub fn forget(&mut self, matches: impl Fn(&S) -> bool) {
        let mut doomed = Vec::new();
        for (fp, at) in &self.recent {
            if let Some(Entry::Refreshed {
                successor,
                at: entry_at,
                rotated,
            }) = self.entries.get(fp)
            {
                if entry_at == at && matches(successor) {
                    doomed.push((*fp, *at, *rotated));
                }
            }
        }
        for (fp, at, rotated) in doomed {
            if rotated {
                self.entries.insert(fp, Entry::Tombstone { at });
            } else {
                self.entries.remove(&fp);
            }
        }
    }

    /// Number of entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(fp, at)) = self.recent.front() {
            if now.saturating_duration_since(at) < self.grace {
                break;
            }
            self.recent.pop_front();
            // Drop the tokens; keep a tombstone if the token was spent. The `at` check skips
            // queue items whose entry was replaced by a later refresh.
            if let Some(Entry::Refreshed {
                at: entry_at,
                rotated,
                ..
            }) = self.entries.get(&fp)
            {
                if *entry_at == at {
                    if *rotated {
                        self.entries.insert(fp, Entry::Tombstone { at });
                    } else {
                        self.entries.remove(&fp);
                    }
                }
            }
        }
        while let Some(&(_, at)) = self.rotated.front() {
            let over_cap = self.entries.len() > self.cap;
            if !over_cap && now.saturating_duration_since(at) < self.reuse_window {
                break;
            }
            let (fp, at) = self.rotated.pop_front().expect("front exists");
            let matches = match self.entries.get(&fp) {
                Some(Entry::Tombstone { at: a }) | Some(Entry::Refreshed { at: a, .. }) => *a == at,
                _ => false,
            };
            if matches {
                self.entries.remove(&fp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = Rotations<&'static str, u8>;
    const GRACE: Duration = Duration::from_secs(60);
    const REUSE: Duration = Duration::from_secs(600);

    fn fp(n: u8) -> Fingerprint {
        [n; 16]
    }

    #[test]
    fn in_flight_then_grace_then_reuse_then_forgotten() {
        let t0 = Instant::now();
        let mut r = R::new(GRACE, REUSE, 100);
        assert!(matches!(r.lookup(&fp(1), || t0), Known::Nothing));
        r.begin(fp(1), 7);
        assert!(matches!(r.lookup(&fp(1), || t0), Known::InFlight(7)));
        r.succeeded(fp(1), "new", true, t0);
        assert!(matches!(
            r.lookup(&fp(1), || t0 + GRACE / 2),
            Known::Successor("new")
        ));
        assert!(matches!(
            r.lookup(&fp(1), || t0 + GRACE),
            Known::ReuseSuspected
        ));
        assert!(matches!(r.lookup(&fp(1), || t0 + REUSE), Known::Nothing));
    }

    #[test]
    fn unrotated_refresh_only_serves_the_grace_window() {
        let t0 = Instant::now();
        let mut r = R::new(GRACE, REUSE, 100);
        r.succeeded(fp(1), "same-rt", false, t0);
        assert!(matches!(r.lookup(&fp(1), || t0), Known::Successor(_)));
        assert!(
            matches!(r.lookup(&fp(1), || t0 + GRACE), Known::Nothing),
            "not a reuse"
        );
    }

    #[test]
    fn a_logged_out_session_loses_its_successors_but_spent_tokens_stay_spent() {
        let t0 = Instant::now();
        let mut r = R::new(GRACE, REUSE, 100);
        r.succeeded(fp(1), "gone", true, t0);
        r.succeeded(fp(2), "gone", false, t0);
        r.succeeded(fp(3), "kept", true, t0);
        r.forget(|s| *s == "gone");
        assert!(matches!(r.lookup(&fp(1), || t0), Known::ReuseSuspected));
        assert!(matches!(r.lookup(&fp(2), || t0), Known::Nothing));
        // No entry: the clock is not read.
        assert!(matches!(
            r.lookup(&fp(4), || unreachable!("the clock was read")),
            Known::Nothing
        ));
        assert!(matches!(r.lookup(&fp(3), || t0), Known::Successor("kept")));
    }

    #[test]
    fn failures_are_forgotten_so_the_next_request_retries() {
        let t0 = Instant::now();
        let mut r = R::new(GRACE, REUSE, 100);
        r.begin(fp(1), 1);
        r.failed(&fp(1));
        assert!(matches!(r.lookup(&fp(1), || t0), Known::Nothing));
    }

    #[test]
    fn tokens_are_dropped_after_grace_and_memory_is_bounded() {
        let t0 = Instant::now();
        let mut r = R::new(GRACE, REUSE, 50);
        for i in 0..200u32 {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.to_le_bytes());
            r.succeeded(key, "s", true, t0 + Duration::from_millis(i as u64));
            assert!(r.len() <= 51, "len {} at {i}", r.len());
        }
        // Everything finished long ago: a later insert prunes the lot.
        r.succeeded(fp(9), "s", true, t0 + REUSE * 2);
        assert_eq!(r.len(), 1);
        // Past grace the successor is gone (a tombstone remains).
        r.succeeded(fp(10), "s", true, t0 + REUSE * 2 + GRACE);
        assert!(matches!(
            r.entries.get(&fp(9)),
            Some(Entry::Tombstone { .. })
        ));
    }
}
