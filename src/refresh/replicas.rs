//! Who calls `/token` for one refresh token among the replicas: one interface whether the
//! proxy runs alone or several replicas coordinate on Redis, so the refresh code reads the
//! same either way.
//!
//! Alone, this replica always takes its turn. On Redis (`coordination.rs`), it takes a lease,
//! or finds another replica's result, or falls back to taking its turn alone when Redis is
//! unavailable (counted and logged there), or gives up waiting on another replica (busy).

use crate::coordination::{Claim, Coordinator, Lease};
use crate::crypto::KeyRing;
use crate::session::Session;
use std::sync::Arc;
use std::time::Duration;

/// The replicas this one coordinates with.
#[derive(Debug)]
pub enum Replicas {
    /// No coordination configured: the in-process single flight is all there is.
    Alone,
    Redis(Arc<Coordinator>),
}

/// What this replica does about one refresh.
#[derive(Debug)]
pub enum Turn {
    /// Call `/token`, then [`Replicas::publish`] or [`Replicas::abandon`] the ticket.
    Mine(Ticket),
    /// Another replica already refreshed: its new session.
    Theirs(Session),
    /// The refresh token was rotated away longer ago than the grace window (seen in Redis).
    Spent,
    /// Another replica holds the refresh past the wait limit: keep the session, retry later.
    Busy,
}

/// This replica's turn: with a Redis lease to release, or without (alone, or Redis down).
#[derive(Debug)]
pub struct Ticket(Option<Lease>);

impl Replicas {
    pub fn new(coordinator: Option<Arc<Coordinator>>) -> Replicas {
        match coordinator {
            Some(c) => Replicas::Redis(c),
            None => Replicas::Alone,
        }
    }

    /// Whose turn it is to refresh `old`.
    pub async fn claim(&self, keys: &KeyRing, old: &Session) -> Turn {
        let Replicas::Redis(coordinator) = self else {
            return Turn::Mine(Ticket(None));
        };
        match coordinator.claim(keys, old).await {
            Claim::Done(session) => Turn::Theirs(session),
            Claim::Spent => Turn::Spent,
            Claim::Won(lease) => Turn::Mine(Ticket(Some(lease))),
            Claim::Fallback => Turn::Mine(Ticket(None)),
            Claim::Busy => Turn::Busy,
        }
    }

    /// Shares the new session with the other replicas for `grace` (and, when `rotated`, that
    /// the old refresh token is spent, for `reuse_window`), and releases the turn.
    pub async fn publish(
        &self,
        keys: &KeyRing,
        ticket: Ticket,
        new: &Session,
        rotated: bool,
        windows: (Duration, Duration),
    ) {
        if let (Replicas::Redis(coordinator), Some(lease)) = (self, ticket.0) {
            let (grace, reuse_window) = windows;
            coordinator
                .publish(keys, lease, new, rotated, grace, reuse_window)
                .await;
        }
    }

    /// Releases the turn after a failed refresh: another replica may try.
    pub async fn abandon(&self, ticket: Ticket) {
        if let (Replicas::Redis(coordinator), Some(lease)) = (self, ticket.0) {
            coordinator.abandon(lease).await;
        }
    }
}
