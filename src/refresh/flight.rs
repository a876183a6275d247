//! In-process single flight: one refresh per refresh token in this process, however many
//! requests race for it, on top of the rotations map (`rotations.rs`).
//!
//! The map lock is never held across `.await`: [`Flights::next_step`] decides under the lock
//! and returns what to do. The request that starts a refresh gets a [`Leader`], a drop guard:
//! if the refresh task ends without reporting (it panicked), the guard forgets the in-flight
//! entry and wakes the waiters with [`RefreshError::Panicked`]. Without it, a panic left the
//! entry behind and every later request of that session waited on a dead refresh (503) until
//! a restart.

use super::report::{report, Event};
use super::rotations::{Fingerprint, Known, Rotations};
use super::{RefreshError, Refreshed};
use crate::metrics::Metrics;
use crate::session::Session;
use std::hash::Hasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What waiters of one refresh receive: `None` until it ends.
pub type FlightResult = Option<Result<Arc<Refreshed>, RefreshError>>;
pub type Waiter = watch::Receiver<FlightResult>;

type Map = Rotations<Arc<Refreshed>, Waiter>;

/// What a request does next about its session.
#[derive(Debug)]
pub enum Step {
    /// Refreshed within the grace window (by this or a newer refresh): use the successor.
    Follow(Arc<Refreshed>),
    /// Another request is refreshing this token: wait for it.
    Join(Waiter),
    /// This request starts the refresh: run it, report through the leader.
    Lead(Leader, Waiter),
    /// A token rotated away longer ago than the grace window: never spend it again.
    Reuse,
    /// Fresh enough: nothing to do.
    Done,
}

/// The single-flight map of this process, keyed by a fingerprint of the refresh token.
#[derive(Debug)]
pub struct Flights {
    map: Arc<Mutex<Map>>,
    metrics: Arc<Metrics>,
    /// Random per process: fingerprints are unpredictable and never leave the process.
    key: (u64, u64),
}

impl Flights {
    pub fn new(
        grace: Duration,
        reuse_window: Duration,
        cap: usize,
        metrics: Arc<Metrics>,
    ) -> Flights {
        let mut key = [0u8; 16];
        crate::crypto::fill_random(&mut key);
        Flights {
            map: Arc::new(Mutex::new(Rotations::new(grace, reuse_window, cap))),
            metrics,
            key: (
                u64::from_le_bytes(key[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(key[8..].try_into().expect("8 bytes")),
            ),
        }
    }

    /// Decides, under the lock and without awaiting, what to do with `session`. `due` says
    /// whether its access token needs a refresh (asked only when nothing else applies).
    pub fn next_step(&self, session: &Session, due: impl Fn(&Session) -> bool) -> Step {
        let fp = self.fingerprint(session.refresh_token.expose_bytes());
        let mut map = lock(&self.map);
        match map.lookup(&fp, Instant::now) {
            Known::InFlight(waiter) => Step::Join(waiter),
            // Refused when a refresh is due, as another replica that only learns of the spent
            // token from Redis at refresh time does: the answer never depends on the pod.
            Known::ReuseSuspected if due(session) => Step::Reuse,
            Known::ReuseSuspected => Step::Done,
            Known::Successor(s) if s.session.succeeds(session) => Step::Follow(s),
            Known::Successor(_) | Known::Nothing => {
                if !due(session) {
                    return Step::Done;
                }
                let (tx, rx) = watch::channel(None);
                map.begin(fp, rx.clone());
                let leader = Leader {
                    map: Arc::clone(&self.map),
                    metrics: Arc::clone(&self.metrics),
                    fp,
                    tx: Some(tx),
                };
                Step::Lead(leader, rx)
            }
        }
    }

    /// Drops the grace-window successors of session `id` (it was logged out).
    pub fn forget_session(&self, id: &str) {
        lock(&self.map).forget(|refreshed| refreshed.session.id == id);
    }

    /// Refresh tokens remembered (in flight, in grace, or as tombstones).
    pub fn tracked(&self) -> usize {
        lock(&self.map).len()
    }

    /// A keyed 128-bit SipHash of the refresh token: a PRF under a random per-process key, so
    /// map keys are unpredictable and collisions negligible, at a fraction of HMAC-SHA256's
    /// cost (it runs on every request; measured in BENCHMARKS.md).
    fn fingerprint(&self, refresh_token: &[u8]) -> Fingerprint {
        let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(self.key.0, self.key.1);
        hasher.write(refresh_token);
        siphasher::sip128::Hasher128::finish128(&hasher).as_bytes()
    }
}

/// A poisoned lock only means a panic elsewhere: the map itself is always consistent between
/// two calls, so keep using it.
fn lock(map: &Mutex<Map>) -> MutexGuard<'_, Map> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

/// The request that runs one refresh. Report the result with [`Leader::finish`]; dropped
/// without it (the refresh task panicked), it cleans up and wakes the waiters.
#[derive(Debug)]
pub struct Leader {
    map: Arc<Mutex<Map>>,
    metrics: Arc<Metrics>,
    fp: Fingerprint,
    tx: Option<watch::Sender<FlightResult>>,
}

impl Leader {
    /// Records the outcome (`rotated`: the old refresh token is spent) and wakes every waiter.
    pub fn finish(mut self, result: Result<(Arc<Refreshed>, bool), RefreshError>) {
        {
            let mut map = lock(&self.map);
            match &result {
                Ok((refreshed, rotated)) => {
                    map.succeeded(self.fp, Arc::clone(refreshed), *rotated, Instant::now())
                }
                // Learnt from another replica: remember it here too, no second Redis trip.
                Err(RefreshError::ReuseSuspected) => map.spent(self.fp, Instant::now()),
                Err(_) => map.failed(&self.fp),
            }
        }
        if let Some(tx) = self.tx.take() {
            // Waiters may all be gone (clients disconnected): the map keeps the result.
            let _ = tx.send(Some(result.map(|(refreshed, _)| refreshed)));
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            lock(&self.map).failed(&self.fp);
            report(&self.metrics, Event::Panicked);
            let _ = tx.send(Some(Err(RefreshError::Panicked)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{AccessToken, RefreshToken};

    fn session(refresh: &str) -> Session {
        Session {
            id: "s".into(),
            refresh_token: RefreshToken::new(refresh),
            access_token: AccessToken::new("a"),
            access_expires_at: 0,
            access_issued_at: 0,
            scope: String::new(),
            claims: Default::default(),
            id_token: None,
            started_at: 0,
            sub: None,
            sid: None,
            last_used_at: 0,
            dpop: None,
            dpop_bound: false,
        }
    }

    fn flights() -> Flights {
        let metrics = Arc::new(Metrics::new());
        Flights::new(
            Duration::from_secs(60),
            Duration::from_secs(600),
            100,
            metrics,
        )
    }

    #[tokio::test]
    async fn one_leader_the_others_join_and_all_see_its_result() {
        let f = flights();
        let s = session("rt");
        let Step::Lead(leader, mut own) = f.next_step(&s, |_| true) else {
            panic!("the first request leads");
        };
        let Step::Join(mut other) = f.next_step(&s, |_| true) else {
            panic!("the second joins");
        };
        let mut newer = session("rt-2");
        newer.access_token = AccessToken::new("a-2");
        let refreshed = Arc::new(Refreshed {
            session: newer,
            set_cookies: Vec::new(),
        });
        leader.finish(Ok((Arc::clone(&refreshed), true)));
        for waiter in [&mut own, &mut other] {
            let result = waiter
                .wait_for(Option::is_some)
                .await
                .expect("sent")
                .clone();
            assert!(matches!(result, Some(Ok(r)) if Arc::ptr_eq(&r, &refreshed)));
        }
        assert!(matches!(f.next_step(&s, |_| true), Step::Follow(_)));
    }

    #[tokio::test]
    async fn a_panicking_refresh_frees_its_session_and_says_so() {
        let f = flights();
        let s = session("rt");
        let Step::Lead(leader, mut waiter) = f.next_step(&s, |_| true) else {
            panic!("leads");
        };
        let task = tokio::spawn(async move {
            let _leader = leader;
            panic!("a bug in the refresh task");
        });
        assert!(task.await.is_err(), "the task panicked");
        let result = waiter
            .wait_for(Option::is_some)
            .await
            .expect("sent")
            .clone();
        assert!(matches!(result, Some(Err(RefreshError::Panicked))));
        assert!(f
            .metrics
            .encode()
            .contains("token_handler_refreshes_total{outcome=\"panicked\"} 1"));
        // The next request is not stuck behind the dead refresh: it leads a new one.
        assert!(matches!(f.next_step(&s, |_| true), Step::Lead(..)));
    }

    #[test]
    fn a_successor_is_followed_only_when_newer() {
        let mut old = session("rt");
        old.access_issued_at = 100;
        let mut rotated = session("rt-2");
        rotated.access_issued_at = 100;
        assert!(
            rotated.succeeds(&old),
            "a rotation spent the token: always newer"
        );
        let mut later = session("rt");
        later.access_token = AccessToken::new("a-2");
        later.access_issued_at = 101;
        assert!(later.succeeds(&old));
        assert!(!old.succeeds(&later), "never back to an older token");
        let mut same_second = later.clone();
        same_second.access_token = AccessToken::new("a-3");
        same_second.access_issued_at = 101;
        assert!(
            !same_second.succeeds(&later),
            "a tie keeps the request's own (it may be the later one)"
        );
    }

    #[test]
    fn a_fresh_session_is_done_and_a_failure_is_forgotten() {
        let f = flights();
        let s = session("rt");
        assert!(matches!(f.next_step(&s, |_| false), Step::Done));
        let Step::Lead(leader, _) = f.next_step(&s, |_| true) else {
            panic!("leads");
        };
        leader.finish(Err(RefreshError::Panicked));
        assert_eq!(f.tracked(), 0);
    }
}
