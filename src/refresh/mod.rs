//! Keeping a session's access token fresh: single-flight refresh, rotation grace, reuse guard.
//!
//! `ensure_fresh` is called on every proxied request. The parts, each in its own file:
//! `flight.rs` decides per request (follow a newer session, wait on a refresh, lead one, refuse
//! a reused token) under a lock never held across `.await`; `replicas.rs` decides which
//! replica calls `/token`; `merge.rs` turns the IdP's answer into the new session (pure);
//! `report.rs` counts and logs every outcome; `timing.rs` holds the pure time rules. After
//! waiting on another refresh, a request looks again (the successor may itself have been
//! rotated meanwhile). The `/token` call runs in its own task, so a client that disconnects
//! mid-refresh cannot cancel it after the IdP has consumed the old refresh token: the result
//! still lands in the grace map, and the client's retry with its old cookie gets the tokens.

mod flight;
mod merge;
mod replicas;
mod report;
mod rotations;
mod timing;

pub use merge::{merge, Merged};
pub use timing::{expires_at, needs_refresh};

use crate::config::SessionConfig;
use crate::coordination::Coordinator;
use crate::idp::{Grant, IdpClient, IdpError, TokenResponse, Transient};
use crate::metrics::Metrics;
use crate::session::{CookieCodec, Session};
use flight::{Flights, Leader, Step, Waiter};
use http::HeaderValue;
use replicas::{Replicas, Turn};
use report::{report, Event};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::{Instrument, Span};

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
// The session-carrying variant is the common one on the data path: boxing it would
// allocate once more per request.
#[allow(clippy::large_enum_variant)]
pub enum FreshSession {
    /// The request's own session, unchanged (shared with the cache of opened sessions).
    Same(Arc<Session>),
    /// A newer session, whose cookies the response must carry.
    Newer(Arc<Refreshed>),
}

impl Fresh {
    /// The session, shared (to refresh it again).
    pub fn shared(&self) -> Arc<Session> {
        match &self.session {
            FreshSession::Same(s) => Arc::clone(s),
            FreshSession::Newer(r) => Arc::new(r.session.clone()),
        }
    }

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
    /// The refresh task panicked: a bug of ours, not the IdP's answer. The session is kept.
    #[error("the refresh task panicked")]
    Panicked,
}

/// Refreshes sessions, once per refresh token, process-wide (and across replicas with Redis).
#[derive(Debug)]
pub struct Refresher {
    client: Arc<IdpClient>,
    replicas: Replicas,
    flights: Flights,
    grace: Duration,
    reuse_window: Duration,
    metrics: Arc<Metrics>,
    codec: CookieCodec,
    skew: u64,
    send_scope: bool,
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
        Refresher {
            client,
            replicas: Replicas::new(coordinator),
            flights: Flights::new(
                config.rotation_grace,
                config.reuse_window,
                config.max_tracked_rotations,
                Arc::clone(&metrics),
            ),
            grace: config.rotation_grace,
            reuse_window: config.reuse_window,
            metrics,
            codec,
            skew: config.refresh_skew.as_secs(),
            send_scope,
        }
    }

    /// Returns a session whose access token is fresh, refreshing (once) if needed. `now`: the
    /// request's reading of the clock (Unix seconds), which judges its session's token.
    pub async fn ensure_fresh(
        self: &Arc<Self>,
        session: Arc<Session>,
        now: u64,
    ) -> Result<Fresh, RefreshError> {
        self.run(session, false, now).await
    }

    /// Like [`Refresher::ensure_fresh`] but refreshes even a token that looks valid (the
    /// upstream rejected it: revoked, or clocks disagree), unless another request already
    /// refreshed this session: then its newer tokens are used and no second call is made.
    pub async fn force_refresh(
        self: &Arc<Self>,
        session: Arc<Session>,
        now: u64,
    ) -> Result<Fresh, RefreshError> {
        self.run(session, true, now).await
    }

    async fn run(
        self: &Arc<Self>,
        session: Arc<Session>,
        force: bool,
        now: u64,
    ) -> Result<Fresh, RefreshError> {
        let mut current = FreshSession::Same(session);
        let mut outcome = Outcome::Unchanged;
        for hop in 0..MAX_HOPS {
            // Forcing applies to the request's own session only, never to a successor.
            let forced = force && hop == 0;
            // A successor is judged after the wait that brought it: by the clock then.
            let now = if hop == 0 { now } else { unix_now() };
            let session = match &current {
                FreshSession::Same(s) => s,
                FreshSession::Newer(r) => &r.session,
            };
            let step = self
                .flights
                .next_step(session, |s| forced || self.due(s, now));
            let (successor, this_outcome) = match step {
                Step::Done => break,
                Step::Reuse => {
                    report(&self.metrics, Event::ReuseSuspected);
                    return Err(RefreshError::ReuseSuspected);
                }
                Step::Follow(successor) => {
                    report(&self.metrics, Event::GraceHit);
                    (successor, Outcome::GraceHit)
                }
                Step::Join(waiter) => {
                    report(&self.metrics, Event::Coalesced);
                    let _waiting = self.client.traces().refresh_wait("request");
                    (wait(waiter).await?, Outcome::Coalesced)
                }
                Step::Lead(leader, waiter) => {
                    self.spawn_refresh(leader, session.clone());
                    (wait(waiter).await?, Outcome::Refreshed)
                }
            };
            if outcome == Outcome::Unchanged {
                outcome = this_outcome;
            }
            current = FreshSession::Newer(successor);
        }
        Ok(Fresh {
            session: current,
            outcome,
        })
    }

    fn due(&self, session: &Session, now: u64) -> bool {
        needs_refresh(
            session.access_issued_at,
            session.access_expires_at,
            now,
            self.skew,
        )
    }

    /// Runs the refresh in its own task (see the module docs), reporting through `leader`;
    /// with traces on, in a `refresh` span that is a child of the leading request's.
    fn spawn_refresh(self: &Arc<Self>, leader: Leader, old: Session) {
        let this = Arc::clone(self);
        let span = self.client.traces().refresh();
        let outcome = span.clone();
        tokio::spawn(
            async move {
                let result = this.refresh(old, &outcome).await;
                leader.finish(result);
            }
            .instrument(span),
        );
    }

    /// One refresh of `old`: this replica's turn (or another replica's result), one `/token`
    /// call, the merged session, sealed once for every request that needs it. `span` (the
    /// `refresh` span, or none) gets the outcome.
    async fn refresh(
        &self,
        old: Session,
        span: &Span,
    ) -> Result<(Arc<Refreshed>, bool), RefreshError> {
        let outcome = |what: &'static str| {
            if !span.is_disabled() {
                span.record("token_handler.refresh.outcome", what);
            }
        };
        let keys = self.codec.key_ring();
        let ticket = match self.replicas.claim(&keys, &old).await {
            Turn::Mine(ticket) => ticket,
            Turn::Theirs(session) => {
                outcome("remote");
                report(&self.metrics, Event::RefreshedElsewhere);
                let rotated =
                    session.refresh_token.expose_bytes() != old.refresh_token.expose_bytes();
                return Ok((self.sealed(session), rotated));
            }
            Turn::Spent => {
                outcome("reuse_suspected");
                crate::trace::record_error(span);
                report(&self.metrics, Event::ReuseSuspectedShared);
                return Err(RefreshError::ReuseSuspected);
            }
            Turn::Busy => {
                let busy = IdpError::Transient {
                    kind: Transient::Busy,
                    retry_after: Some(Duration::from_secs(1)),
                };
                outcome("busy");
                crate::trace::record_error(span);
                report(&self.metrics, Event::Failed(&busy));
                return Err(busy.into());
            }
        };
        let answer = match self.call_token_endpoint(&old).await {
            Ok(answer) => answer,
            Err(e) => {
                outcome(match e {
                    IdpError::Rejected { .. } => "rejected",
                    IdpError::Transient { .. } => "transient",
                });
                crate::trace::record_error(span);
                report(&self.metrics, Event::Failed(&e));
                self.replicas.abandon(ticket).await;
                return Err(e.into());
            }
        };
        let now = unix_now();
        let had_key = old.dpop.is_some();
        let merged = merge(old, answer, now);
        if had_key && !merged.session.dpop_bound {
            // Kept, not refused: the refresh token is already spent. Sent as Bearer.
            tracing::warn!(
                event = "dpop_not_bound",
                "the IdP refreshed a DPoP session with a token that is not DPoP-bound; it goes upstream as Bearer"
            );
        }
        outcome("refreshed");
        report(
            &self.metrics,
            Event::Refreshed {
                rotated: merged.rotated,
                expires_in: merged.session.access_expires_at.saturating_sub(now),
            },
        );
        self.replicas
            .publish(
                &keys,
                ticket,
                &merged.session,
                merged.rotated,
                (self.grace, self.reuse_window),
            )
            .await;
        Ok((self.sealed(merged.session), merged.rotated))
    }

    /// The one `/token` call of a refresh (the scope goes along where the dialect wants it).
    async fn call_token_endpoint(&self, old: &Session) -> Result<TokenResponse, IdpError> {
        let scope = (self.send_scope && !old.scope.is_empty()).then_some(old.scope.as_str());
        let grant = Grant::Refresh {
            refresh_token: &old.refresh_token,
            scope,
        };
        self.client.token(&grant, old.dpop.as_ref()).await
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
        self.flights.forget_session(id);
    }

    /// Refresh tokens currently remembered (in flight, in grace, or as tombstones).
    pub fn tracked(&self) -> usize {
        self.flights.tracked()
    }
}

/// Waits for a refresh to end. A refresh task always reports (its leader guard does so even
/// when it panics); a closed channel can only mean the same.
async fn wait(mut waiter: Waiter) -> Result<Arc<Refreshed>, RefreshError> {
    match waiter.wait_for(Option::is_some).await {
        Ok(value) => value.clone().unwrap_or(Err(RefreshError::Panicked)),
        Err(_) => Err(RefreshError::Panicked),
    }
}

/// Seconds since the Unix epoch, local clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}
