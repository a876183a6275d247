//! Keeping a session's access token fresh: single-flight refresh, rotation grace, reuse guard.
//!
//! `ensure_fresh` is called on every proxied request. Concurrency rules (design habit 10):
//! the map lock is never held across `.await`; after waiting on another task's refresh we
//! look again (the successor may itself have been rotated meanwhile). The `/token` call runs in
//! its own task, so a client that disconnects mid-refresh cannot cancel it after the IdP has
//! consumed the old refresh token: the result still lands in the grace map, and the client's
//! retry with its old cookie gets the new tokens.

mod rotations;
mod timing;

pub use timing::{expires_at, needs_refresh};

use crate::config::SessionConfig;
use crate::coordination::{Claim, Coordinator};
use crate::idp::{Grant, IdpClient, IdpError, Rejection};
use crate::metrics::Metrics;
use crate::session::{CookieCodec, Session};
use http::HeaderValue;
use rotations::{Fingerprint, Known, Rotations};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// Follow at most this many grace-window successors for one request (a chain forms only if
/// the access token lifetime is shorter than the grace window).
const MAX_HOPS: usize = 8;

/// The new session after a refresh, sealed once and shared by every request that needs it,
/// so all of them send the browser the very same cookie.
#[derive(Debug)]
pub struct Refreshed {
    pub session: Session,
    pub set_cookies: Vec<HeaderValue>,
}

/// How the request obtained its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The session's access token was still fresh.
    Unchanged,
    /// This request performed the refresh.
    Refreshed,
    /// This request waited on another request's refresh.
    Coalesced,
    /// This request carried a rotated-away cookie inside the grace window.
    GraceHit,
}

/// A session ready to use.
#[derive(Debug)]
pub struct Fresh {
    pub session: FreshSession,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub enum FreshSession {
    /// The request's own session, unchanged.
    Same(Session),
    /// A newer session, whose cookies the response must carry.
    Newer(Arc<Refreshed>),
}

impl Fresh {
    pub fn session(&self) -> &Session {
        match &self.session {
            FreshSession::Same(s) => s,
            FreshSession::Newer(r) => &r.session,
        }
    }

    /// The sealed cookies to send, when the session changed.
    pub fn new_cookies(&self) -> Option<&[HeaderValue]> {
        match &self.session {
            FreshSession::Same(_) => None,
            FreshSession::Newer(r) => Some(&r.set_cookies),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Idp(#[from] IdpError),
    /// A refresh token we already rotated away, past the grace window.
    #[error("refresh token was already rotated; refusing to spend it again")]
    ReuseSuspected,
}

type FlightResult = Option<Result<Arc<Refreshed>, IdpError>>;

/// The outcome of one refresh task.
struct Refresh {
    refreshed: Arc<Refreshed>,
    rotated: bool,
    /// Metric outcome: `refreshed` (this replica called `/token`) or `remote` (another
    /// replica did, through Redis).
    source: &'static str,
}

type Waiter = watch::Receiver<FlightResult>;

/// Refreshes sessions, once per refresh token, process-wide.
#[derive(Debug)]
pub struct Refresher {
    client: Arc<IdpClient>,
    coordinator: Option<Arc<Coordinator>>,
    grace: Duration,
    metrics: Arc<Metrics>,
    codec: CookieCodec,
    skew: u64,
    send_scope: bool,
    fingerprint_key: (u64, u64),
    rotations: Mutex<Rotations<Arc<Refreshed>, Waiter>>,
}

enum Step {
    Follow(Arc<Refreshed>),
    Wait(Waiter, bool),
    Reuse,
    Done,
}

impl Refresher {
    pub fn new(
        client: Arc<IdpClient>,
        metrics: Arc<Metrics>,
        codec: CookieCodec,
        config: &SessionConfig,
        send_scope: bool,
        coordinator: Option<Arc<Coordinator>>,
    ) -> Refresher {
        let mut key = [0u8; 32];
        crate::crypto::fill_random(&mut key);
        Refresher {
            client,
            coordinator,
            grace: config.rotation_grace,
            metrics,
            codec,
            skew: config.refresh_skew.as_secs(),
            send_scope,
            fingerprint_key: (
                u64::from_le_bytes(key[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(key[8..16].try_into().expect("8 bytes")),
            ),
            rotations: Mutex::new(Rotations::new(
                config.rotation_grace,
                config.reuse_window,
                config.max_tracked_rotations,
            )),
        }
    }

    /// Returns a session whose access token is fresh, refreshing (once) if needed.
    pub async fn ensure_fresh(self: &Arc<Self>, session: Session) -> Result<Fresh, RefreshError> {
        self.run(session, false).await
    }

    /// Like [`Refresher::ensure_fresh`] but refreshes even a token that looks valid (the
    /// upstream rejected it: revoked, or clocks disagree), unless another request already
    /// refreshed this session: then its newer tokens are used and no second call is made.
    pub async fn force_refresh(self: &Arc<Self>, session: Session) -> Result<Fresh, RefreshError> {
        self.run(session, true).await
    }

    async fn run(self: &Arc<Self>, session: Session, force: bool) -> Result<Fresh, RefreshError> {
        let mut current = FreshSession::Same(session);
        let mut outcome = Outcome::Unchanged;
        for hop in 0..MAX_HOPS {
            // Forcing applies to the request's own session only, never to a successor.
            let step = self.next_step(&current, force && hop == 0);
            match step {
                Step::Done => break,
                Step::Reuse => {
                    self.metrics.refresh("reuse_suspected");
                    warn!(event = "reuse_suspected", "a rotated-away refresh token came back after the grace window; refused without calling the IdP");
                    return Err(RefreshError::ReuseSuspected);
                }
                Step::Follow(successor) => {
                    self.metrics.refresh("grace_hit");
                    if outcome == Outcome::Unchanged {
                        outcome = Outcome::GraceHit;
                    }
                    current = FreshSession::Newer(successor);
                }
                Step::Wait(mut waiter, leader) => {
                    if !leader {
                        self.metrics.refresh("coalesced");
                    }
                    let result = match waiter.wait_for(Option::is_some).await {
                        Ok(value) => value.clone().expect("waited for Some"),
                        // The refresh task ended without a result (it panicked): not the
                        // user's fault, keep the session.
                        Err(_) => Err(IdpError::Transient {
                            kind: crate::idp::Transient::Status(500),
                            retry_after: None,
                        }),
                    };
                    let successor = result?;
                    outcome = match (outcome, leader) {
                        (Outcome::Unchanged, true) => Outcome::Refreshed,
                        (Outcome::Unchanged, false) => Outcome::Coalesced,
                        (o, _) => o,
                    };
                    current = FreshSession::Newer(successor);
                }
            }
        }
        Ok(Fresh {
            session: current,
            outcome,
        })
    }

    /// Decides, under the lock and without awaiting, what to do with `current`.
    fn next_step(self: &Arc<Self>, current: &FreshSession, force: bool) -> Step {
        let session = match current {
            FreshSession::Same(s) => s,
            FreshSession::Newer(r) => &r.session,
        };
        let fp = self.fingerprint(session.refresh_token.expose());
        let now = Instant::now();
        let mut rotations = self.rotations.lock().expect("rotations lock");
        match rotations.lookup(&fp, now) {
            Known::InFlight(waiter) => Step::Wait(waiter, false),
            Known::ReuseSuspected => Step::Reuse,
            // An unrotated successor shares the refresh token: follow it only if it is newer.
            Known::Successor(s)
                if s.session.access_token.expose() != session.access_token.expose() =>
            {
                Step::Follow(s)
            }
            Known::Successor(_) | Known::Nothing => {
                if !force
                    && !needs_refresh(
                        session.access_issued_at,
                        session.access_expires_at,
                        unix_now(),
                        self.skew,
                    )
                {
                    return Step::Done;
                }
                let (tx, rx) = watch::channel(None);
                rotations.begin(fp, rx.clone());
                drop(rotations);
                let this = Arc::clone(self);
                let old = session.clone();
                tokio::spawn(async move {
                    let result = this.refresh(old).await;
                    this.metrics.refresh(match &result {
                        Ok(r) => r.source,
                        Err(IdpError::Rejected { .. }) => "rejected",
                        Err(IdpError::Transient { .. }) => "transient",
                    });
                    {
                        let mut rotations = this.rotations.lock().expect("rotations lock");
                        match &result {
                            Ok(r) => rotations.succeeded(
                                fp,
                                Arc::clone(&r.refreshed),
                                r.rotated,
                                Instant::now(),
                            ),
                            Err(_) => rotations.failed(&fp),
                        }
                    }
                    // Waiters may all be gone (clients disconnected): the map keeps the result.
                    let _ = tx.send(Some(result.map(|r| r.refreshed)));
                });
                Step::Wait(rx, true)
            }
        }
    }

    /// One `/token` call and the new session, sealed.
    /// One refresh of `old`: coordinated with the other replicas when Redis is configured,
    /// then one `/token` call unless another replica already made it.
    async fn refresh(&self, old: Session) -> Result<Refresh, IdpError> {
        let keys = self.codec.key_ring();
        let mut lease = None;
        if let Some(coordinator) = &self.coordinator {
            match coordinator.claim(&keys, &old.refresh_token).await {
                Claim::Done(session) => {
                    info!(
                        event = "refreshed_elsewhere",
                        "another replica refreshed this session"
                    );
                    let rotated = session.refresh_token.expose() != old.refresh_token.expose();
                    return Ok(Refresh {
                        refreshed: self.sealed(session),
                        rotated,
                        source: "remote",
                    });
                }
                Claim::Won(l) => lease = Some(l),
                Claim::Fallback => {}
                Claim::Busy => {
                    return Err(IdpError::Transient {
                        kind: crate::idp::Transient::Busy,
                        retry_after: Some(Duration::from_secs(1)),
                    })
                }
            }
        }
        let scope = (self.send_scope && !old.scope.is_empty()).then_some(old.scope.as_str());
        let grant = Grant::Refresh {
            refresh_token: &old.refresh_token,
            scope,
        };
        let response = match self.client.token(&grant).await {
            Ok(r) => r,
            Err(e) => {
                log_failure(&e);
                if let (Some(coordinator), Some(lease)) = (&self.coordinator, lease) {
                    coordinator.abandon(lease).await;
                }
                return Err(e);
            }
        };
        let now = unix_now();
        let rotated = response
            .refresh_token
            .as_ref()
            .is_some_and(|new| new.expose() != old.refresh_token.expose());
        let session = Session {
            access_expires_at: expires_at(&response, now),
            access_issued_at: now,
            access_token: response.access_token,
            // RFC 6749 §6: no new refresh token means keep the old one.
            refresh_token: response.refresh_token.unwrap_or(old.refresh_token),
            scope: response.scope.unwrap_or(old.scope),
            id_token: if old.id_token.is_some() {
                response.id_token.or(old.id_token)
            } else {
                None
            },
            ..old
        };
        info!(
            event = "refreshed",
            rotated,
            expires_in = session.access_expires_at.saturating_sub(now),
            "access token refreshed"
        );
        if let (Some(coordinator), Some(lease)) = (&self.coordinator, lease) {
            coordinator
                .publish(&keys, lease, &session, self.grace)
                .await;
        }
        Ok(Refresh {
            refreshed: self.sealed(session),
            rotated,
            source: "refreshed",
        })
    }

    fn sealed(&self, session: Session) -> Arc<Refreshed> {
        let set_cookies = self.codec.seal(&session, unix_now());
        self.metrics.session_cookies(&set_cookies);
        Arc::new(Refreshed {
            session,
            set_cookies,
        })
    }

    /// Drops the grace-window successors of session `id` (it was logged out): their tokens
    /// leave memory at once. Spent refresh tokens stay remembered as spent.
    pub fn forget_session(&self, id: &str) {
        self.rotations
            .lock()
            .expect("rotations lock")
            .forget(|refreshed| refreshed.session.id == id);
    }

    /// Refresh tokens currently remembered (in flight, in grace, or as tombstones).
    pub fn tracked(&self) -> usize {
        self.rotations.lock().expect("rotations lock").len()
    }

    /// A keyed 128-bit SipHash of the refresh token: a PRF under a random per-process key, so
    /// map keys are unpredictable and collisions negligible, at a fraction of HMAC-SHA256's
    /// cost (it runs on every request; measured in BENCHMARKS.md).
    fn fingerprint(&self, refresh_token: &str) -> Fingerprint {
        use std::hash::Hasher;
        let (k0, k1) = self.fingerprint_key;
        let mut hasher = siphasher::sip128::SipHasher13::new_with_keys(k0, k1);
        hasher.write(refresh_token.as_bytes());
        siphasher::sip128::Hasher128::finish128(&hasher).as_bytes()
    }
}

fn log_failure(e: &IdpError) {
    match e {
        IdpError::Rejected {
            reason: Rejection::InvalidClient,
            detail,
        } => error!(
            event = "rejected",
            reason = "invalid_client",
            detail = %detail,
            "the IdP refused the client's credentials: operator error (wrong client_id or secret, or the client is disabled)"
        ),
        IdpError::Rejected { reason, detail } => {
            warn!(event = "rejected", reason = %reason, detail = %detail, "the IdP rejected the refresh token; the session ends")
        }
        IdpError::Transient { kind, retry_after } => warn!(
            event = "transient",
            kind = %kind,
            retry_after_s = retry_after.map(|d| d.as_secs()),
            "refresh failed transiently; the session is kept"
        ),
    }
}

/// Seconds since the Unix epoch, local clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
