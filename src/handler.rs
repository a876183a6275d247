//! One proxied request: session → CSRF → fresh tokens → forward → cookies.
//!
//! The order matters: the CSRF check runs *before* any refresh, so a forged request can never
//! spend a refresh token; the session is changed only by the IdP (a refresh, or a rejected
//! grant that ends it), never by an upstream failure.

use crate::app::App;
use crate::body::{boxed, Body};
use crate::config::BrowserAuthorization;
use crate::csrf;
use crate::endpoints;
use crate::error::{error_response, idp_unavailable, login_required, ErrorCode};
use crate::metrics::RequestLabels;
use crate::proxy::{headers, relay_response, UpstreamError};
use crate::refresh::unix_now;
use crate::session::ReadOutcome;
use crate::sessions::{self, freshen, with_cookies, Freshened};
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{debug, info, info_span, warn, Instrument};

/// Routes a request to the proxy's own endpoints or upstream.
/// What the handler knows about the client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// The client connected over TLS (sets `X-Forwarded-Proto: https`).
    pub tls: bool,
}

pub async fn handle(app: Arc<App>, request: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let started = Instant::now();
    let path = request.uri().path();
    let prefix = app.config.proxy.auth_prefix.as_str();
    let own = path
        .strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .map(str::to_string);
    let route = match &own {
        Some(rest) => endpoints::route_class(rest),
        None if headers::is_upgrade(request.headers()) => "upgrade",
        None if app.config.proxy.is_protected(path) => "protected",
        None => "public",
    };
    // One span per request; fields are opted in (never a path, a query or a header value).
    let span = info_span!(
        "request",
        method = %request.method(),
        route,
        status = Empty,
        latency_ms = Empty,
        session = Empty,
    );
    async move {
        let response = match own {
            Some(rest) => endpoints::handle(&app, &request, &rest).await,
            None => proxy(&app, request, conn, route == "protected").await,
        };
        let status = response.status().as_u16();
        let span = tracing::Span::current();
        span.record("status", status);
        span.record("latency_ms", started.elapsed().as_millis() as u64);
        app.metrics
            .requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
        if app.config.log.access_log {
            info!("request");
        } else {
            debug!("request");
        }
        response
    }
    .instrument(span)
    .await
}

async fn proxy(
    app: &App,
    request: Request<Incoming>,
    conn: ConnInfo,
    protected: bool,
) -> Response<Body> {
    let upgrade = headers::is_upgrade(request.headers());
    let now = unix_now();
    let (incoming, outcome) = sessions::read(app, request.headers(), now);
    let (session, retired_key) = match outcome {
        ReadOutcome::Valid {
            session,
            retired_key,
        } => (Some(session), retired_key),
        ReadOutcome::Absent => (None, false),
        ReadOutcome::Invalid => {
            debug!("session cookie present but not valid; treated as no session");
            if protected {
                return with_cookies(login_required(), app.codec.clear(&incoming));
            }
            (None, false)
        }
    };
    let Some(session) = session else {
        if protected {
            return login_required();
        }
        return forward(app, request, conn, None, Vec::new(), upgrade).await;
    };

    let authority = csrf::authority(request.headers(), request.uri());
    if let Err(failure) = csrf::check(
        &app.config.csrf,
        request.method(),
        request.headers(),
        authority,
        upgrade,
    ) {
        warn!(reason = failure.label(), "CSRF check failed");
        app.metrics.csrf_refusal(failure.label());
        return error_response(ErrorCode::CsrfCheckFailed, failure.message());
    }
    if request.headers().contains_key(AUTHORIZATION)
        && app.config.proxy.browser_authorization == BrowserAuthorization::Reject
    {
        return error_response(
            ErrorCode::BadRequest,
            "the browser must not send an Authorization header",
        );
    }

    let (fresh, set_cookies) = match freshen(app, session, retired_key, &incoming, now).await {
        Freshened::Ready { fresh, cookies } => (fresh, cookies),
        Freshened::Unavailable { retry_after } => return idp_unavailable(retry_after),
        Freshened::Ended { clear } => return with_cookies(login_required(), clear),
    };
    let access_token = fresh.session().access_token.expose();
    forward(app, request, conn, Some(access_token), set_cookies, upgrade).await
}

/// Rewrites the request for the upstream, sends it, and relays the answer.
async fn forward(
    app: &App,
    mut request: Request<Incoming>,
    conn: ConnInfo,
    access_token: Option<&str>,
    set_cookies: Vec<HeaderValue>,
    upgrade: bool,
) -> Response<Body> {
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    let host = headers::client_host(&parts.headers, &parts.uri);
    let kept_cookies = app.codec.strip_own(&parts.headers);
    parts.uri = app.upstream.target(&parts.uri);
    parts.version = Version::HTTP_11;
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    headers::set_forwarded(
        &mut parts.headers,
        conn.peer.ip(),
        if conn.tls { "https" } else { "http" },
        host.as_ref(),
        app.config.server.trust_forwarded_headers,
    );
    headers::set_cookies(&mut parts.headers, kept_cookies);
    if let Some(host) = host {
        // Keep the Host the browser used (HTTP/2 sends it as :authority only).
        parts.headers.insert(HOST, host);
    }
    if let Some(token) = access_token {
        if headers::set_bearer(&mut parts.headers, token).is_err() {
            warn!("the access token is not a valid header value; not forwarding");
            return with_cookies(
                error_response(
                    ErrorCode::UpstreamUnavailable,
                    "cannot forward this session's token",
                ),
                set_cookies,
            );
        }
    }
    let upstream_request = Request::from_parts(parts, boxed(body));
    let sent = Instant::now();
    let result = app.upstream.send(upstream_request).await;
    app.metrics
        .upstream_seconds
        .observe(sent.elapsed().as_secs_f64());
    let response = match result {
        Ok(response) => relay_response(response, client_upgrade, &app.tunnels, &app.metrics),
        Err(UpstreamError::Unavailable(reason)) => {
            warn!(%reason, "upstream unavailable");
            error_response(
                ErrorCode::UpstreamUnavailable,
                "the upstream API is unavailable",
            )
        }
        Err(UpstreamError::Timeout(after)) => {
            warn!(?after, "upstream timed out");
            error_response(
                ErrorCode::UpstreamTimeout,
                "the upstream API did not answer in time",
            )
        }
    };
    // Refreshed cookies go out even on 502/504: the IdP already rotated the tokens.
    with_cookies(response, set_cookies)
}
