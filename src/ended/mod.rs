//! The record of ended sessions: a session ended by `POST /auth/logout`, a back-channel logout
//! from the IdP or an operator (`token-handler sessions end`) is refused on its next request,
//! whichever copy of its cookies comes back and whichever replica it reaches.
//!
//! Sessions are stateless sealed cookies: a copy taken before the end (another tab, a stolen
//! cookie, a pre-refresh cookie inside `rotation_grace`) would otherwise keep working until its
//! access token expires. So the record names what was ended ([`Entry`]: one session, an IdP
//! session `sid`, or a user's `sub` for the sessions begun before the end), each entry kept
//! until no session it names can open anyway (its start + `session.lifetime`). It grows with
//! the number of ends, not of sessions, and is capped at `session.max_ended_sessions` (the
//! entries ending soonest go first, with a warning).
//!
//! Each replica checks its own copy in memory (no I/O per request; nothing at all while the
//! record is empty). With `[coordination]`, the copies are kept in step through Redis
//! (`shared.rs`): an end is written there before it is acknowledged, and every replica reads
//! new entries every `coordination.ended_sync_interval`.

mod entry;
pub mod operator;
pub mod shared;

pub use entry::{digest, Digest, Entry, Kind, Reason};

use crate::metrics::Metrics;
use crate::session::Session;
use shared::Shared;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use tracing::warn;

/// An end that could not be written to Redis within `coordination.wait_timeout`: it holds on
/// this replica and is written again in the background until Redis takes it.
#[derive(Debug, thiserror::Error)]
#[error("the end is recorded on this replica only for now; Redis did not take it ({0})")]
pub struct NotShared(pub String);

pub struct EndedSessions {
    cap: usize,
    /// Entries per [`Kind`]: the hot path skips the lock (and the digests) of kinds with none.
    counts: [AtomicUsize; 3],
    inner: RwLock<Inner>,
    /// Sessions whose refresh token this replica revoked (or saw revoked) after their end.
    revoked: Mutex<HashSet<Digest>>,
    /// Logout-token `jti`s seen, until when they are remembered.
    seen: Mutex<HashMap<Digest, u64>>,
    shared: Option<Arc<Shared>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for EndedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndedSessions")
            .field("entries", &self.len())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// (kind, digest) → the entry (the latest `at`, the latest `until`).
    entries: HashMap<(Kind, Digest), Entry>,
    /// The same, earliest `until` first (stale heap items are skipped when popped).
    by_end: BinaryHeap<Reverse<(u64, Kind, Digest)>>,
    /// Entries per kind.
    counts: [usize; 3],
}

impl EndedSessions {
    pub fn new(cap: usize, shared: Option<Arc<Shared>>, metrics: Arc<Metrics>) -> EndedSessions {
        EndedSessions {
            cap: cap.max(1),
            counts: Default::default(),
            inner: RwLock::new(Inner::default()),
            revoked: Mutex::new(HashSet::new()),
            seen: Mutex::new(HashMap::new()),
            shared,
            metrics,
        }
    }

    /// The Redis side, when `[coordination]` is on.
    pub fn shared(&self) -> Option<&Arc<Shared>> {
        self.shared.as_ref()
    }

    /// Ends what `entry` names: at once on this replica, then on all of them (written to
    /// Redis, retried until `coordination.wait_timeout` when `patient`, else tried once; past
    /// that, in the background).
    pub async fn end(&self, entry: Entry, now: u64, patient: bool) -> Result<(), NotShared> {
        self.apply(entry, now);
        match &self.shared {
            Some(shared) => shared.publish(entry, patient).await,
            None => Ok(()),
        }
    }

    /// Adds `entry` to this replica's copy only (an end read from Redis, or made here).
    pub fn apply(&self, entry: Entry, now: u64) {
        if entry.until <= now {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.prune(now);
        let key = (entry.kind, entry.digest);
        let merged = match inner.entries.get(&key) {
            Some(old) => Entry {
                at: old.at.max(entry.at),
                until: old.until.max(entry.until),
                ..entry
            },
            None => entry,
        };
        if inner.entries.get(&key).map(|e| e.until) != Some(merged.until) {
            inner.by_end.push(Reverse((merged.until, key.0, key.1)));
        }
        if inner.entries.insert(key, merged).is_none() {
            inner.counts[key.0.index()] += 1;
        }
        while inner.entries.len() > self.cap {
            let Some(Reverse((until, kind, digest))) = inner.by_end.pop() else {
                break;
            };
            if inner.entries.get(&(kind, digest)).map(|e| e.until) == Some(until) {
                inner.remove(kind, digest);
                warn!(
                    event = "ended_sessions_full",
                    "the record of ended sessions is full: the entry ending soonest is forgotten (raise session.max_ended_sessions)"
                );
            }
        }
        self.recount(&inner);
    }

    /// Why `session` is refused at `now`, if it was ended.
    pub fn check(&self, session: &Session, now: u64) -> Option<Reason> {
        let has = |kind: Kind| self.counts[kind.index()].load(Ordering::Acquire) > 0;
        // A session sealed before it carried `sub` has it among its claims (the default): read
        // only when some user was ended, since reading the claims parses them.
        let sub = has(Kind::Sub)
            .then(|| {
                session.sub.as_deref().or_else(|| {
                    session
                        .claims
                        .get("sub")
                        .and_then(serde_json::Value::as_str)
                })
            })
            .flatten();
        let (by_session, by_sid, by_sub) = (
            has(Kind::Session),
            has(Kind::Sid) && session.sid.is_some(),
            sub.is_some(),
        );
        if !(by_session || by_sid || by_sub) {
            return None;
        }
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let live = |kind: Kind, value: &str| {
            inner
                .entries
                .get(&(kind, digest(kind, value)))
                .filter(|e| now < e.until)
        };
        if by_session {
            if let Some(e) = live(Kind::Session, &session.id) {
                return Some(e.reason);
            }
        }
        if let (true, Some(sid)) = (by_sid, &session.sid) {
            if let Some(e) = live(Kind::Sid, sid) {
                return Some(e.reason);
            }
        }
        if let (true, Some(sub)) = (by_sub, sub) {
            // Only the sessions begun by the end: the user may log in again right after.
            if let Some(e) = live(Kind::Sub, sub).filter(|e| session.started_at <= e.at) {
                return Some(e.reason);
            }
        }
        None
    }

    /// Whether this replica should revoke the refresh token of ended session `id`: the first
    /// time it sees the session after its end, and (with Redis) the first of all replicas.
    pub async fn first_revocation(&self, id: &str, ttl: u64) -> bool {
        let key = digest(Kind::Session, id);
        {
            let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            if revoked.len() >= self.cap {
                revoked.clear();
            }
            if !revoked.insert(key) {
                return false;
            }
        }
        match &self.shared {
            // Redis down: revoke anyway (a second revocation is harmless).
            Some(shared) => shared
                .first(&format!("revoked:{}", hex(&key)), ttl)
                .await
                .unwrap_or(true),
            None => true,
        }
    }

    /// Whether `name` (a logout token's issuer and `jti`) is seen for the first time, here and
    /// (with Redis) on every replica; it is remembered until `until`. Redis down: this
    /// replica's memory alone decides.
    pub async fn first_use(&self, name: &str, until: u64, now: u64) -> bool {
        let key = digest(Kind::Session, name);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.len() >= self.cap {
                seen.retain(|_, &mut u| u > now);
            }
            if seen.get(&key).is_some_and(|&u| u > now) || seen.len() >= self.cap {
                return false;
            }
            seen.insert(key, until);
        }
        match &self.shared {
            Some(shared) => shared
                .first(&format!("jti:{}", hex(&key)), until.saturating_sub(now))
                .await
                .unwrap_or(true),
            None => true,
        }
    }

    /// Entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.counts.iter().map(|c| c.load(Ordering::Acquire)).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn recount(&self, inner: &Inner) {
        for (slot, &n) in self.counts.iter().zip(&inner.counts) {
            slot.store(n, Ordering::Release);
        }
        self.metrics.ended_entries.set(inner.entries.len() as i64);
    }
}

impl Inner {
    fn prune(&mut self, now: u64) {
        while let Some(Reverse((until, kind, digest))) = self.by_end.peek().copied() {
            if until > now {
                break;
            }
            self.by_end.pop();
            if self.entries.get(&(kind, digest)).map(|e| e.until) == Some(until) {
                self.remove(kind, digest);
            }
        }
    }

    fn remove(&mut self, kind: Kind, digest: Digest) {
        if self.entries.remove(&(kind, digest)).is_some() {
            self.counts[kind.index()] -= 1;
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
