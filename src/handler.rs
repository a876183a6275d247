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
use crate::proxy::{headers, relay_response, UpstreamError};
use crate::refresh::unix_now;
use crate::session::ReadOutcome;
use crate::sessions::{freshen, with_cookies, Freshened};
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{debug, info_span, warn, Instrument};

/// Routes a request to the proxy's own endpoints or upstream.
pub async fn handle(app: Arc<App>, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let span = info_span!("request", method = %request.method(), route = tracing::field::Empty, status = tracing::field::Empty);
    async move {
        let path = request.uri().path();
        let prefix = app.config.proxy.auth_prefix.as_str();
        let own = path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        let response = if own {
            tracing::Span::current().record("route", "auth");
            let rest = path[prefix.len()..].to_string();
            endpoints::handle(&app, &request, &rest).await
        } else {
            proxy(&app, request, peer).await
        };
        tracing::Span::current().record("status", response.status().as_u16());
        debug!("done");
        response
    }
    .instrument(span)
    .await
}

async fn proxy(app: &App, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let protected = app.config.proxy.is_protected(request.uri().path());
    tracing::Span::current().record("route", if protected { "protected" } else { "public" });
    let upgrade = headers::is_upgrade(request.headers());
    let now = unix_now();
    let incoming = app.codec.incoming(request.headers());
    let (session, retired_key) = match app.codec.read(&incoming, now) {
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
        return forward(app, request, peer, None, Vec::new(), upgrade).await;
    };

    let authority = csrf::authority(request.headers(), request.uri());
    if let Err(failure) = csrf::check(
        &app.config.csrf,
        request.method(),
        request.headers(),
        authority,
        upgrade,
    ) {
        warn!(reason = ?failure, "CSRF check failed");
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
    forward(app, request, peer, Some(access_token), set_cookies, upgrade).await
}

/// Rewrites the request for the upstream, sends it, and relays the answer.
async fn forward(
    app: &App,
    mut request: Request<Incoming>,
    peer: SocketAddr,
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
        peer.ip(),
        "http",
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
    let response = match app.upstream.send(upstream_request).await {
        Ok(response) => relay_response(response, client_upgrade, &app.tunnels),
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
