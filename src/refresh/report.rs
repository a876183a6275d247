//! What the refresh path did, counted (`token_handler_refreshes_total{outcome}`) and logged
//! (an audit event) in one place: a new outcome is one new arm here, and a dashboard and a
//! log search always agree.

use crate::idp::{IdpError, Rejection};
use crate::metrics::Metrics;
use tracing::{error, info, warn};

/// One thing the refresh path did for a request.
#[derive(Debug)]
pub enum Event<'a> {
    /// This replica called `/token` and got new tokens.
    Refreshed { rotated: bool, expires_in: u64 },
    /// Another replica called `/token`; its result was used (through Redis).
    RefreshedElsewhere,
    /// The `/token` call failed: rejected (the session ends) or transient (it is kept).
    Failed(&'a IdpError),
    /// The request waited on another request's `/token` call.
    Coalesced,
    /// An old cookie was served the newer session from the rotation grace window.
    GraceHit,
    /// A rotated-away refresh token came back after the grace window: refused locally.
    ReuseSuspected,
    /// The same, known from another replica's spent marker in Redis.
    ReuseSuspectedShared,
    /// The refresh task panicked (a bug): the session is kept, the request gets a 503.
    Panicked,
}

/// Counts and logs `event`. Never a token: only outcomes, reasons and durations.
pub fn report(metrics: &Metrics, event: Event<'_>) {
    match event {
        Event::Refreshed {
            rotated,
            expires_in,
        } => {
            metrics.refresh("refreshed");
            info!(
                event = "refreshed",
                rotated, expires_in, "access token refreshed"
            );
        }
        Event::RefreshedElsewhere => {
            metrics.refresh("remote");
            info!(
                event = "refreshed_elsewhere",
                "another replica refreshed this session"
            );
        }
        Event::Failed(IdpError::Rejected {
            reason: Rejection::InvalidClient,
            detail,
        }) => {
            // The client, not the grant, was refused (a secret rotating across pods, a
            // disabled client): sessions are kept, requests get 503 until it is fixed.
            metrics.refresh("client_refused");
            error!(
                event = "client_refused",
                reason = "invalid_client",
                detail = %detail,
                "the IdP refused the client's credentials: operator error (wrong client_id or secret, a secret not yet rotated on this pod, or the client is disabled); sessions are kept"
            );
        }
        Event::Failed(IdpError::Rejected { reason, detail }) => {
            metrics.refresh("rejected");
            warn!(event = "rejected", reason = %reason, detail = %detail, "the IdP rejected the refresh token; the session ends");
        }
        Event::Failed(IdpError::Transient { kind, retry_after }) => {
            metrics.refresh("transient");
            warn!(
                event = "transient",
                kind = %kind,
                retry_after_s = retry_after.map(|d| d.as_secs()),
                "refresh failed transiently; the session is kept"
            );
        }
        Event::Coalesced => metrics.refresh("coalesced"),
        Event::GraceHit => metrics.refresh("grace_hit"),
        Event::ReuseSuspected => {
            metrics.refresh("reuse_suspected");
            warn!(
                event = "reuse_suspected",
                "a rotated-away refresh token came back after the grace window; refused without calling the IdP"
            );
        }
        Event::ReuseSuspectedShared => {
            metrics.refresh("reuse_suspected_shared");
            warn!(
                event = "reuse_suspected",
                seen = "redis",
                "a refresh token another replica rotated away came back after the grace window; refused without calling the IdP"
            );
        }
        Event::Panicked => {
            metrics.refresh("panicked");
            error!(
                event = "refresh_panicked",
                "the refresh task panicked (a bug); the session is kept and the request answered 503"
            );
        }
    }
}
