//! Forwarding one request upstream: header rewriting, the Bearer token, and one retry after a
//! refresh when the upstream says the token is not valid (RFC 6750 §3.1 `invalid_token`:
//! revoked at the IdP, or clocks that disagree about expiry).
//!
//! A request can be replayed only if its body is empty or small enough to hold
//! (`proxy.retry_body_bytes`, with a known `Content-Length`); larger or streamed bodies go
//! through untouched and a 401 is passed on. Never more than one retry of each kind (an API's
//! DPoP nonce challenge, then `invalid_token`): no loops. The request's head: `prepared.rs`.

use crate::app::App;
use crate::body::{boxed, full, Body};
use crate::dpop::nonce;
use crate::error::{error_response, login_required, ErrorCode};
use crate::proxy::client_body::{ClientBody, Pace, Watch};
use crate::proxy::failure::{client_body_error, failure};
use crate::proxy::forwarded::Forwarded;
use crate::proxy::{relay_response, upgrade, ConnInfo, PooledBody, Upstream, UpstreamError};
use crate::refresh::{unix_now, Fresh};
use crate::request_session::{refresh_now, with_cookies, Freshened};
use crate::server::RequestBody;
use crate::session::Presence;
use crate::trace;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::upgrade::OnUpgrade;
use std::future::Future;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

mod prepared;

pub use prepared::Target;
use prepared::{prepare, upstream_of, Credential};

/// The client's body, timed (`server.body_read_timeout` / `body_min_rate`) and watched.
fn client_body(app: &App, body: RequestBody) -> (ClientBody, Watch) {
    let server = &app.config.server;
    ClientBody::new(
        body,
        Pace {
            timeout: server.body_read_timeout,
            min_rate: server.body_min_rate,
        },
    )
}

/// The upstream's answer for the browser: our cookies it tried to set are dropped, and a
/// `101` is passed on only when it completes the upgrade the client asked for.
fn relay(
    app: &App,
    mut response: Response<PooledBody>,
    client_upgrade: Option<OnUpgrade>,
    upgrade: Option<&upgrade::Expected>,
) -> Response<Body> {
    strip_own_set_cookies(app, response.headers_mut());
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && !upgrade.is_some_and(|expected| upgrade::completes(expected, &response))
    {
        // Dropping the response closes its connection (a 101 never goes back to the pool).
        warn!("the upstream switched protocols without completing the requested upgrade; refused");
        return error_response(
            ErrorCode::UpstreamUnavailable,
            "the upstream switched protocols unexpectedly",
        );
    }
    let mut slot = None;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        match Arc::clone(&app.tunnel_slots).try_acquire_owned() {
            Ok(permit) => slot = Some(permit),
            Err(_) => {
                warn!("server.max_connections tunnels are open; upgrade refused");
                return error_response(ErrorCode::Overloaded, "too many open connections");
            }
        }
    }
    relay_response(response, client_upgrade, slot, &app.tunnels, &app.metrics)
}

fn strip_own_set_cookies(app: &App, headers: &mut HeaderMap) {
    // Most responses set no cookie: found absent without a hashed lookup.
    if !crate::proxy::headers::has(headers, &SET_COOKIE)
        || !headers
            .get_all(SET_COOKIE)
            .iter()
            .any(|v| app.codec.is_own_set_cookie(v.as_bytes()))
    {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| !app.codec.is_own_set_cookie(v.as_bytes()))
        .cloned()
        .collect();
    warn!("the upstream tried to set the proxy's own cookie; dropped");
    headers.remove(SET_COOKIE);
    for value in kept {
        headers.append(SET_COOKIE, value);
    }
}

/// A request without a session, forwarded as it is (no token).
///
/// This and [`with_session`] prepare the upstream request when called and return only the
/// sending as a future: as `async fn`s, their states kept the browser's request, its
/// connection's details and the route (and a second copy of each argument) while the upstream
/// answered, in every request's future (see BENCHMARKS.md, "Memory per connection").
pub fn anonymous<'a>(
    app: &'a App,
    request: Request<RequestBody>,
    conn: ConnInfo,
    upgrade: Option<upgrade::Expected>,
    target: Target,
    presence: Presence,
) -> impl Future<Output = Response<Body>> + Send + 'a {
    let upstream = upstream_of(app, &target);
    let (mut prepared, body, client_upgrade) =
        prepare(app, request, conn, upgrade.is_some(), target, &presence);
    // No body (the usual GET), or one the direct server read whole with its head: nothing to
    // time or watch, and its bytes are at hand to write (and to send again).
    let (body, watch, ready) = match body {
        body if body.is_end_stream() => {
            (crate::body::empty(), Watch::default(), Some(Bytes::new()))
        }
        RequestBody::Full(bytes) => (full(bytes.clone()), Watch::default(), Some(bytes)),
        body => {
            let (body, watch) = client_body(app, body);
            (boxed(body), watch, None)
        }
    };
    let mut slot = prepared.first(body, ready.as_ref(), None, upstream);
    async move {
        let forwarded = prepared.forwarded();
        let mut result = send(app, upstream, &mut slot, forwarded, ready.as_ref()).await;
        if let (Err(UpstreamError::Closed), Some(bytes)) = (&result, &ready) {
            if let Some(again) = prepared.replay(slot.take(), bytes, None) {
                result = send(app, upstream, &mut Some(again), forwarded, Some(bytes)).await;
            }
        }
        match result {
            Ok(response) => relay(app, response, client_upgrade, upgrade.as_ref()),
            Err(e) => failure(e, &watch),
        }
    }
}

/// A request with a fresh session: Bearer injected, one retry after a refresh on
/// `invalid_token`; `cookies` (a refreshed or re-sealed session) go out on any answer.
#[allow(clippy::too_many_arguments)]
pub fn with_session<'a>(
    app: &'a App,
    request: Request<RequestBody>,
    conn: ConnInfo,
    upgrade: Option<upgrade::Expected>,
    target: Target,
    fresh: Fresh,
    cookies: Vec<HeaderValue>,
    presence: Presence,
    bearer: Option<HeaderValue>,
) -> impl Future<Output = Response<Body>> + Send + 'a {
    let route = app.routes.get(target.route);
    let upstream = upstream_of(app, &target);
    let (mut prepared, body, client_upgrade) =
        prepare(app, request, conn, upgrade.is_some(), target, &presence);
    for (name, value) in route.identity(fresh.session()) {
        prepared.headers.insert(name, value);
    }
    let cap = app.config.proxy.retry_body_bytes;
    // A body the direct server read whole is held as it came: nothing to time or collect.
    let (body, watch) = match body {
        RequestBody::Full(bytes) if bytes.len() <= cap => (Held::Bytes(bytes), Watch::default()),
        body => {
            let (body, watch) = client_body(app, body);
            (Held::Stream(body), watch)
        }
    };
    let mut cookies = cookies;
    async move {
        let (first_body, replay) = match body {
            Held::Bytes(held) => (full(held.clone()), Some(held)),
            Held::Stream(body) if upgrade.is_some() => (boxed(body), None),
            Held::Stream(body) => match hold_if_small(body, &prepared.headers, cap).await {
                Ok(Held::Bytes(bytes)) => (full(bytes.clone()), Some(bytes)),
                Ok(Held::Stream(body)) => (boxed(body), None),
                Err(Unreadable) => {
                    let refusal = match watch.failure() {
                        Some(failure) => client_body_error(failure),
                        None => {
                            error_response(ErrorCode::BadRequest, "could not read the request body")
                        }
                    };
                    return with_cookies(refusal, cookies);
                }
            },
        };
        let credential = Credential {
            bearer: bearer.as_ref(),
            ..Credential::of(fresh.session(), upstream)
        };
        let ready = replay.as_ref();
        let Some(request) = prepared.first(first_body, ready, Some(&credential), upstream) else {
            return with_cookies(
                error_response(
                    ErrorCode::UpstreamUnavailable,
                    "cannot forward this session's token",
                ),
                cookies,
            );
        };
        // Each request after the first is made from the one before it when the upstream's
        // client hands it back (`Prepared::again`).
        let mut slot = Some(request);
        let forwarded = prepared.forwarded();
        let mut result = send(app, upstream, &mut slot, forwarded, ready).await;
        if let (Err(UpstreamError::Closed), Some(bytes)) = (&result, ready) {
            slot = prepared.replay(slot.take(), bytes, Some(&credential));
            if slot.is_some() {
                result = send(app, upstream, &mut slot, forwarded, ready).await;
            }
        }
        if let (Some((_, nonces)), Ok(response)) = (credential.dpop, &result) {
            nonces.learn(response.headers());
            if nonce::resource_challenge(response.status(), response.headers()) {
                if let Some(bytes) = &replay {
                    app.metrics.dpop_nonce_challenge("upstream");
                    debug!("the upstream asked for a DPoP nonce; sending again with it");
                    slot = prepared.again(slot.take(), full(bytes.clone()), Some(&credential));
                    if slot.is_some() {
                        result = send(app, upstream, &mut slot, forwarded, ready).await;
                        if let Ok(response) = &result {
                            nonces.learn(response.headers());
                        }
                    }
                }
            }
        }
        if let (Some(bytes), Ok(response)) = (ready, &result) {
            if invalid_token(response) {
                let token = credential.token;
                match refresh_now(app, fresh.shared(), &presence, unix_now()).await {
                    Freshened::Ready {
                        fresh: newer,
                        cookies: new_cookies,
                    } if newer.session().access_token.expose_bytes() != token.expose_bytes() => {
                        info!(
                            event = "retry_after_invalid_token",
                            "the upstream rejected the access token; refreshed and retried once"
                        );
                        let newer_credential = Credential::of(newer.session(), upstream);
                        let body = full(bytes.clone());
                        slot = prepared.again(slot.take(), body, Some(&newer_credential));
                        if slot.is_some() {
                            cookies = new_cookies;
                            result = send(app, upstream, &mut slot, forwarded, ready).await;
                        }
                    }
                    Freshened::Ended { clear } => return with_cookies(login_required(), clear),
                    // The IdP is unavailable, or gave the same token: pass the 401 on.
                    _ => {}
                }
            }
        }
        let response = match result {
            Ok(response) => relay(app, response, client_upgrade, upgrade.as_ref()),
            Err(e) => failure(e, &watch),
        };
        // Refreshed cookies go out even on 502/504: the IdP already rotated the tokens.
        with_cookies(response, cookies)
    }
}

enum Held {
    Bytes(Bytes),
    Stream(ClientBody),
}

/// Holds the body in memory when it is empty or declared no larger than `cap`.
/// A body that could not be held: the client's body failed (its [`Watch`] says why), or it
/// ran past the length it declared.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read")]
struct Unreadable;

async fn hold_if_small(
    body: ClientBody,
    headers: &HeaderMap,
    cap: usize,
) -> Result<Held, Unreadable> {
    if body.is_end_stream() {
        return Ok(Held::Bytes(Bytes::new()));
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(len) if len <= cap => Limited::new(body, cap)
            .collect()
            .await
            .map(|collected| Held::Bytes(collected.to_bytes()))
            .map_err(|_| Unreadable),
        _ => Ok(Held::Stream(body)),
    }
}

/// RFC 6750 §3.1 (and RFC 9449 §7.1 for DPoP): `401` with
/// `WWW-Authenticate: Bearer ... error="invalid_token"` (or `DPoP ...`).
fn invalid_token(response: &Response<PooledBody>) -> bool {
    response.status() == StatusCode::UNAUTHORIZED
        && response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .any(|v| {
                let v = v.to_str().unwrap_or("").to_ascii_lowercase();
                let v = v.trim_start();
                (v.starts_with("bearer") || v.starts_with("dpop"))
                    && (v.contains("error=\"invalid_token\"") || v.contains("error=invalid_token"))
            })
}

/// Sends the request in `slot`: taken from it, or left there when the upstream's client lends
/// it (see [`Upstream::send`]); `ready` holds the body's bytes when they are all at hand. Not
/// an `async fn`, which would keep a second copy of its arguments in its state.
#[allow(clippy::manual_async_fn)]
fn send<'a>(
    app: &'a App,
    upstream: &'a Upstream,
    slot: &'a mut Option<Request<Body>>,
    forwarded: Option<&'a Forwarded>,
    ready: Option<&'a Bytes>,
) -> impl Future<Output = Result<Response<PooledBody>, UpstreamError>> + Send + 'a {
    // Traces on: an `upstream` span, whose id the upstream receives in `traceparent`.
    let span = slot
        .as_mut()
        .map(|request| {
            let span = app.traces.upstream(request.method(), upstream.origin());
            trace::inject(&span, request.headers_mut());
            span
        })
        .unwrap_or_else(tracing::Span::none);
    async move {
        let sent = Instant::now();
        let result = upstream.send(slot, forwarded, ready, sent).await;
        match &result {
            Ok(response) => {
                let status = response.status().as_u16();
                trace::record_status(&span, status, status >= 400);
            }
            Err(_) => trace::record_error(&span),
        }
        app.metrics
            .upstream_seconds
            .observe(sent.elapsed().as_secs_f64());
        result
    }
}
