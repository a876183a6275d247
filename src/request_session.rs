//! A request's session made ready to use: opened, refreshed if due, and the `Set-Cookie`
//! lines the response must carry. Shared by the proxy path and the `/auth` endpoints.

use crate::app::App;
use crate::body::Body;
use crate::config::{Access, BrowserAuthorization};
use crate::csrf;
use crate::ended::Reason;
use crate::error::{error_response, idp_unavailable, key_unavailable, login_required, ErrorCode};
use crate::idp::{IdpError, Rejection};
use crate::refresh::unix_now;
use crate::refresh::{Fresh, FreshSession, RefreshError};
use crate::session::{Opening, Presence, ReadOutcome, Session};
use http::header::{AUTHORIZATION, CACHE_CONTROL, COOKIE, SET_COOKIE};
use http::{HeaderValue, Response};
use std::sync::Arc;
use std::time::Duration;

/// The result of making a session fresh.
#[derive(Debug)]
// The session-carrying variant is the common one on the data path: boxing it would
// allocate once more per request.
#[allow(clippy::large_enum_variant)]
pub enum Freshened {
    /// Usable; `cookies` are to be set on the response (new session, stale chunks, re-seal).
    Ready {
        fresh: Fresh,
        cookies: Vec<HeaderValue>,
    },
    /// The IdP rejected the grant (or a rotated token came back): the session is over;
    /// `clear` deletes its cookies.
    Ended { clear: Vec<HeaderValue> },
    /// The IdP could not be used: keep the session, retry later.
    Unavailable { retry_after: Option<Duration> },
}

/// Opens the request's session; notes its fingerprint on the request's span and counts
/// sessions still sealed with a retired key. A session that was ended (logout on any replica,
/// back-channel logout, operator) or left idle past `session.idle_timeout` reads as invalid,
/// whichever copy of its cookies this is.
pub fn read(
    app: &App,
    headers: &http::HeaderMap,
    now: u64,
) -> (Presence, ReadOutcome<Arc<Session>>) {
    let (presence, opening) = read_opening(app, headers, now);
    (presence, opening.outcome)
}

/// [`read`], with the session's ready `Authorization` value when it came from the cache of
/// opened sessions. The checks below run on every request, cached or not.
fn read_opening(app: &App, headers: &http::HeaderMap, now: u64) -> (Presence, Opening) {
    let traced = app.traces.session_open();
    let incoming = app.codec.incoming(headers);
    let Opening {
        mut outcome,
        bearer,
    } = app.codec.read_cached(&incoming, now);
    if !traced.is_disabled() {
        traced.record("token_handler.session", opened(&outcome));
    }
    if let ReadOutcome::Valid { session, .. } = &outcome {
        if let Some(reason) = ended(app, session, now) {
            if !traced.is_disabled() {
                traced.record("token_handler.session", "ended");
            }
            tracing::debug!(reason, "the session was ended; its cookie is refused");
            app.metrics.ended_refusal(reason);
            if reason != Reason::Logout.as_str() {
                revoke_once(app, session, reason);
            }
            outcome = ReadOutcome::Invalid;
        }
    }
    if let ReadOutcome::Valid {
        session,
        retired_key,
    } = &outcome
    {
        // The keyed hash costs an HMAC: only when the span is recorded at all.
        let span = tracing::Span::current();
        if !span.is_disabled() {
            span.record(
                "session",
                app.codec.keys().fingerprint(session.id.as_bytes()),
            );
        }
        if *retired_key {
            app.metrics.retired_key_sessions.inc();
        }
    }
    (incoming.presence(), Opening { outcome, bearer })
}

/// What the `session.open` span says of a request's cookies.
fn opened<S>(outcome: &ReadOutcome<S>) -> &'static str {
    match outcome {
        ReadOutcome::Valid { .. } => "valid",
        ReadOutcome::Absent => "absent",
        ReadOutcome::UnknownKey => "unknown_key",
        ReadOutcome::Invalid => "invalid",
    }
}

/// What a request may do on a route, as its session (or the lack of one) decides.
#[derive(Debug)]
// As `Freshened`: the session variant is the common one; boxing it allocates per request.
#[allow(clippy::large_enum_variant)]
pub enum Admission {
    /// Forwarded without a token (no session on an optional route, or a `none` route).
    Anonymous(Presence),
    /// Forwarded with this fresh session's token; `cookies` go back to the browser.
    Session {
        fresh: Fresh,
        cookies: Vec<HeaderValue>,
        presence: Presence,
        /// `Authorization: Bearer` for `fresh`, ready (the session was not refreshed and came
        /// from the cache of opened sessions); else it is made from the token.
        bearer: Option<HeaderValue>,
    },
}

/// The session, CSRF and refresh rules of one request, shared by the inline proxy and the
/// forward-auth listener: the session is opened (unless the route wants none), refused when
/// the route requires one and there is none, the CSRF check runs *before* any refresh (a forged
/// request never spends a refresh token), then the session is made fresh. `Err`: the answer.
pub async fn admit(
    app: &App,
    method: &http::Method,
    headers: &http::HeaderMap,
    authority: Option<&str>,
    access: Access,
    upgrade: bool,
) -> Result<Admission, Response<Body>> {
    // No `Cookie` field at all (a public path's usual request): no session to open and no
    // cookie to clear, found without a hashed lookup. With traces on, the full path records
    // the session span ("absent").
    if !app.traces.on() && !crate::proxy::headers::has(headers, &COOKIE) {
        return match access {
            Access::Required => Err(login_required()),
            _ => Ok(Admission::Anonymous(Presence::default())),
        };
    }
    if access == Access::None {
        return Ok(Admission::Anonymous(app.codec.incoming(headers).presence()));
    }
    let required = access == Access::Required;
    let now = unix_now();
    let (presence, Opening { outcome, bearer }) = read_opening(app, headers, now);
    let (session, retired_key) = match outcome {
        ReadOutcome::Valid {
            session,
            retired_key,
        } => (session, retired_key),
        ReadOutcome::Absent if required => return Err(login_required()),
        ReadOutcome::UnknownKey if required => {
            tracing::debug!("session sealed with a cookie key this replica does not have yet");
            return Err(key_unavailable());
        }
        ReadOutcome::Invalid if required => {
            tracing::debug!("session cookie present but not valid");
            return Err(with_cookies(login_required(), app.codec.clear(&presence)));
        }
        ReadOutcome::Absent | ReadOutcome::UnknownKey | ReadOutcome::Invalid => {
            return Ok(Admission::Anonymous(presence));
        }
    };
    if let Some(refusal) = csrf::refusal(
        &app.config.csrf,
        &app.metrics,
        method,
        headers,
        authority,
        upgrade,
    ) {
        return Err(refusal);
    }
    if headers.contains_key(AUTHORIZATION)
        && app.config.proxy.browser_authorization == BrowserAuthorization::Reject
    {
        return Err(error_response(
            ErrorCode::BadRequest,
            "the browser must not send an Authorization header",
        ));
    }
    match freshen(app, session, retired_key, &presence, now).await {
        Freshened::Ready { fresh, cookies } => Ok(Admission::Session {
            // Only for the very session that was read: a refreshed one has another token.
            bearer: bearer.filter(|_| matches!(fresh.session, FreshSession::Same(_))),
            fresh,
            cookies,
            presence,
        }),
        Freshened::Unavailable { retry_after } => Err(idp_unavailable(retry_after)),
        Freshened::Ended { clear } => Err(with_cookies(login_required(), clear)),
    }
}

/// Why `session` is over before its absolute end, if it is.
fn ended(app: &App, session: &Session, now: u64) -> Option<&'static str> {
    if let Some(reason) = app.ended.check(session, now) {
        return Some(reason.as_str());
    }
    let idle = app.config.session.idle_timeout?;
    (now >= session.last_used_at.saturating_add(idle.as_secs())).then_some("idle")
}

/// Revokes an ended session's refresh token at the IdP, once of all replicas (best effort: the
/// session is refused whatever the IdP says). A logout revoked it already.
fn revoke_once(app: &App, session: &Session, reason: &'static str) {
    app.refresher.forget_session(&session.id);
    let (idp, ended) = (Arc::clone(&app.idp), Arc::clone(&app.ended));
    let ttl = app.config.session.lifetime.as_secs();
    let session = session.clone();
    // Traces on: the revocation's `idp.revoke` span stays in the request's trace.
    let trace = app.traces.on().then(opentelemetry::Context::current);
    let revocation = async move {
        if !ended.first_revocation(&session.id, ttl).await {
            return;
        }
        match idp
            .revoke(&session.refresh_token, &session.access_token)
            .await
        {
            Ok(revoked) => {
                tracing::info!(event = "ended_session", reason, revoked, "an ended session came back: refused, its refresh token revoked at the IdP where it can be")
            }
            Err(e) => {
                tracing::warn!(event = "ended_session", reason, revoked = false, error = %e, "an ended session came back: refused; revoking its refresh token failed")
            }
        }
    };
    match trace {
        Some(cx) => tokio::spawn(opentelemetry::context::FutureExt::with_context(
            revocation, cx,
        )),
        None => tokio::spawn(revocation),
    };
}

/// Whether the cookie's last-use time is due to be re-sealed (`session.idle_touch_interval`).
fn touch_due(app: &App, session: &Session, now: u64) -> bool {
    app.config.session.idle_timeout.is_some()
        && now
            >= session
                .last_used_at
                .saturating_add(app.config.session.idle_touch_interval.as_secs())
}

/// Refreshes `session` when due and works out the cookies to send back.
pub async fn freshen(
    app: &App,
    session: Arc<Session>,
    retired_key: bool,
    presence: &Presence,
    now: u64,
) -> Freshened {
    let result = app.refresher.ensure_fresh(session, now).await;
    outcome(app, result, retired_key, presence, now)
}

/// Refreshes `session` although its access token looks valid (the upstream said it is not),
/// unless another request already did.
pub async fn refresh_now(
    app: &App,
    session: Arc<Session>,
    presence: &Presence,
    now: u64,
) -> Freshened {
    let result = app.refresher.force_refresh(session, now).await;
    outcome(app, result, false, presence, now)
}

fn outcome(
    app: &App,
    result: Result<crate::refresh::Fresh, RefreshError>,
    retired_key: bool,
    presence: &Presence,
    now: u64,
) -> Freshened {
    let fresh = match result {
        Ok(fresh) => fresh,
        Err(RefreshError::Idp(IdpError::Transient { retry_after, .. })) => {
            return Freshened::Unavailable { retry_after };
        }
        // A bug of ours, not the user's: keep the session, let the SPA retry.
        Err(RefreshError::Panicked) => return Freshened::Unavailable { retry_after: None },
        // The client was refused, not the grant (e.g. a client secret that reached this pod
        // before or after the IdP): keep the session.
        Err(RefreshError::Idp(IdpError::Rejected {
            reason: Rejection::InvalidClient,
            ..
        })) => return Freshened::Unavailable { retry_after: None },
        Err(RefreshError::Idp(IdpError::Rejected { .. }) | RefreshError::ReuseSuspected) => {
            return Freshened::Ended {
                clear: app.codec.clear(presence),
            };
        }
    };
    let cookies = match fresh.new_cookies() {
        Some(cookies) => {
            let mut all = cookies.to_vec();
            all.extend(app.codec.clear_stale(cookies.len(), presence));
            all
        }
        // Opened with a retired key: re-seal with the current one. Or used after a while with
        // an idle timeout: re-seal its last use.
        None if retired_key || touch_due(app, fresh.session(), now) => {
            let mut session = fresh.session().clone();
            session.last_used_at = now;
            let mut all = app.codec.seal(&session, now);
            app.metrics.session_cookies(&all);
            let stale = app.codec.clear_stale(all.len(), presence);
            all.extend(stale);
            all
        }
        None => Vec::new(),
    };
    Freshened::Ready { fresh, cookies }
}

/// Appends `Set-Cookie` lines to a response. A response that sets a session cookie must never
/// be stored by a shared cache and served to someone else (RFC 9111 §5.2.2.5): it gets
/// `Cache-Control: no-store`, whatever the upstream said.
pub fn with_cookies(mut response: Response<Body>, cookies: Vec<HeaderValue>) -> Response<Body> {
    if cookies.is_empty() {
        return response;
    }
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie);
    }
    response
}
