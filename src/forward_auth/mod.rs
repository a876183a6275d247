//! Forward-auth mode: gateways ask before they route a request (nginx `auth_request`, Traefik
//! ForwardAuth, Envoy/Istio `ext_authz` HTTP, Gateway API `ExternalAuth`), on the listener of
//! `[forward_auth]` (a port of its own: see `config::forward_auth` for why).
//!
//! The original request is what the gateway says it is (`original.rs`); the same route, session,
//! CSRF and refresh rules as the inline proxy decide (`request_session::admit`), and the answer
//! is what each gateway acts on:
//!
//! - **200**, empty: allowed. `Authorization: Bearer …` (a DPoP-bound session: `Authorization:
//!   DPoP …` and a `DPoP` proof for the original method and URL) and the route's identity headers, for
//!   the gateway to copy upstream (no Bearer for an anonymous request; every identity header
//!   of every route is named, empty when it has no value, so a gateway that copies only what
//!   is present cannot pass a forged one on); `Set-Cookie` (a refreshed or
//!   re-sealed session, or stale chunks cleared) for the gateway to return to the browser, and
//!   each of those lines again as `X-Token-Handler-Set-Cookie-1`, `-2`, … (nginx copies one
//!   header per name).
//! - **401** `login_required` (cookies cleared when they were invalid), **403**
//!   `csrf_check_failed`, **503** `idp_unavailable` / `key_unavailable` (with `Retry-After`),
//!   **404** / **405** from the routes, **400** for a path refused at the edge: the proxy's JSON
//!   errors, plus `X-Token-Handler-Error: <code>` (nginx passes only 401 and 403 through; its
//!   config maps the rest with that header).
//!
//! No retry after an upstream `invalid_token` here: the gateway talks to the upstream.

mod original;

use crate::app::App;
use crate::body::{full, Body};
use crate::config::Access;
use crate::error::{error_response, ErrorCode};
use crate::handler::unrouted;
use crate::proxy::bearer::set_bearer;
use crate::proxy::ConnInfo;
use crate::request_session::{self, Admission};
use crate::routes::Decision;
use crate::trace;
use http::header::{CACHE_CONTROL, SET_COOKIE, UPGRADE};
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use std::sync::Arc;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{debug, info_span};

/// The error code of a refusal, for gateways that keep only the status (nginx).
pub const ERROR_HEADER: &str = "x-token-handler-error";
/// `Set-Cookie` line `i` (from 1) again, for gateways that copy one header per name.
pub const COOKIE_HEADER_PREFIX: &str = "x-token-handler-set-cookie-";

/// Answers one gateway's question.
pub async fn handle<B>(app: Arc<App>, request: Request<B>, _conn: ConnInfo) -> Response<Body> {
    let started = Instant::now();
    // Traces on: a server span (route `verify`), the gateway's `traceparent` as its parent.
    let traced = app.traces.request(
        request.method(),
        request.uri().path(),
        request.headers(),
        "verify",
    );
    let otel = traced.clone();
    let span = info_span!(
        "verify",
        method = Empty,
        status = Empty,
        latency_ms = Empty,
        session = Empty
    );
    let inner = async move {
        let response = verify(&app, &request).await;
        let status = response.status().as_u16();
        trace::record_status(&traced, status, status >= 500);
        let span = tracing::Span::current();
        span.record("status", status);
        span.record("latency_ms", started.elapsed().as_millis() as u64);
        app.metrics.request("verify", status);
        debug!("verify");
        finish(response)
    };
    trace::InSpans {
        otel,
        log: span,
        inner,
    }
    .await
}

async fn verify<B>(app: &App, request: &Request<B>) -> Response<Body> {
    let gateway = match &app.config.forward_auth {
        Some(forward_auth) => forward_auth.gateway,
        None => return error_response(ErrorCode::NotFound, "forward-auth is not configured"),
    };
    let original = match original::Original::of(request, gateway) {
        Ok(original) => original,
        Err(refusal) => return error_response(ErrorCode::BadRequest, refusal),
    };
    tracing::Span::current().record("method", original.method.as_str());
    let decoded = &original.path.decoded[..];
    let prefix = app.config.proxy.auth_prefix.as_bytes();
    // The proxy's own endpoints (login, callback, ...) need no session to be reached.
    let under_auth = decoded
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/"));
    let (route, access) = if under_auth {
        (None, Access::None)
    } else {
        match app
            .routes
            .decide(decoded, &original.method, &app.config.proxy)
        {
            Decision::Forward { route, access } => (route, access),
            refused => return unrouted(refused),
        }
    };
    let upgrade = request.headers().contains_key(UPGRADE);
    let admission = request_session::admit(
        app,
        &original.method,
        request.headers(),
        original.authority.as_deref(),
        access,
        upgrade,
    )
    .await;
    match admission {
        Err(refusal) => refusal,
        Ok(Admission::Anonymous(_)) => allowed(blank_identity(app, Vec::new()), &[]),
        Ok(Admission::Session { fresh, cookies, .. }) => {
            let mut upstream_headers = Vec::new();
            let mut bearer = http::HeaderMap::new();
            let session = fresh.session();
            let token = &session.access_token;
            let set = match session.dpop.as_ref().filter(|_| session.dpop_bound) {
                None => set_bearer(&mut bearer, token.expose_bytes()).is_ok(),
                Some(key) => dpop_headers(&mut bearer, token.expose(), key, &original),
            };
            if !set {
                return error_response(
                    ErrorCode::UpstreamUnavailable,
                    "cannot pass this session's token on",
                );
            }
            upstream_headers.extend(bearer.into_iter().filter_map(|(k, v)| Some((k?, v))));
            if let Some(route) = route {
                upstream_headers.extend(app.routes.get(route).identity(fresh.session()));
            }
            allowed(blank_identity(app, upstream_headers), &cookies)
        }
    }
}

/// `Authorization: DPoP` and a proof for the original request's method and URL. The API's
/// nonce challenges go to the gateway, not here: a proof carries no API nonce.
fn dpop_headers(
    out: &mut http::HeaderMap,
    token: &str,
    key: &crate::dpop::DpopKey,
    original: &original::Original,
) -> bool {
    let Some(htu) = original.htu() else {
        tracing::warn!("the gateway names no host: no DPoP proof can name the URL");
        return false;
    };
    crate::dpop::authorize(out, key, token, original.method.as_str(), &htu, None)
}

/// Every identity header of every route, empty where `headers` has no value: a gateway that
/// copies listed headers only when present (Envoy) would otherwise pass a forged one upstream.
fn blank_identity(
    app: &App,
    mut headers: Vec<(HeaderName, HeaderValue)>,
) -> Vec<(HeaderName, HeaderValue)> {
    for name in app.routes.identity_names() {
        if !headers.iter().any(|(n, _)| n == name) {
            headers.push((name.clone(), HeaderValue::from_static("")));
        }
    }
    headers
}

/// 200: the headers for the upstream, the cookies for the browser.
fn allowed(upstream: Vec<(HeaderName, HeaderValue)>, cookies: &[HeaderValue]) -> Response<Body> {
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    for (name, value) in upstream {
        headers.insert(name, value);
    }
    for cookie in cookies {
        headers.append(SET_COOKIE, cookie.clone());
    }
    response
}

/// Every answer: `no-store`, its `Set-Cookie` lines again under numbered names (see the
/// module), and, for a refusal, its code in [`ERROR_HEADER`].
fn finish(mut response: Response<Body>) -> Response<Body> {
    let code = (!response.status().is_success()).then(|| {
        response
            .extensions()
            .get::<ErrorCode>()
            .map_or("bad_request", |code| code.as_str())
    });
    let cookies: Vec<HeaderValue> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(code) = code {
        headers.insert(
            HeaderName::from_static(ERROR_HEADER),
            HeaderValue::from_static(code),
        );
    }
    for (i, cookie) in cookies.into_iter().enumerate() {
        if let Ok(name) =
            HeaderName::from_bytes(format!("{COOKIE_HEADER_PREFIX}{}", i + 1).as_bytes())
        {
            headers.insert(name, cookie);
        }
    }
    response
}
