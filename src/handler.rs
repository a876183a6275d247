//! One proxied request: session → CSRF → fresh tokens → forward → cookies.
//!
//! The order matters: the CSRF check runs *before* any refresh, so a forged request can never
//! spend a refresh token; the session is changed only by the IdP (a refresh, or a rejected
//! grant that ends it), never by an upstream failure.

use crate::app::App;
use crate::body::Body;
use crate::config::BrowserAuthorization;
use crate::csrf;
use crate::endpoints;
use crate::error::{error_response, idp_unavailable, login_required, ErrorCode};
use crate::forward;
use crate::metrics::RequestLabels;
use crate::proxy::headers;
pub use crate::proxy::ConnInfo;
use crate::refresh::unix_now;
use crate::session::ReadOutcome;
use crate::sessions::{self, freshen, with_cookies, Freshened};
use http::header::AUTHORIZATION;
use http::{Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{debug, info, info_span, Instrument};

/// Routes a request to the proxy's own endpoints or upstream.
pub async fn handle(app: Arc<App>, request: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let started = Instant::now();
    let path = request.uri().path();
    let prefix = app.config.proxy.auth_prefix.as_str();
    let own = path
        .strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .map(str::to_string);
    let protected = app.config.proxy.is_protected(path);
    let route = match &own {
        Some(rest) => endpoints::route_class(rest),
        None if headers::is_upgrade(request.headers()) => "upgrade",
        None if protected => "protected",
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
            None => proxy(&app, request, conn, protected).await,
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
    if let Some(refusal) = oversized_headers(app, request.headers()) {
        return refusal;
    }
    let now = unix_now();
    let (presence, outcome) = sessions::read(app, request.headers(), now);
    let (session, retired_key) = match outcome {
        ReadOutcome::Valid {
            session,
            retired_key,
        } => (Some(session), retired_key),
        ReadOutcome::Absent => (None, false),
        ReadOutcome::Invalid => {
            debug!("session cookie present but not valid; treated as no session");
            if protected {
                return with_cookies(login_required(), app.codec.clear(&presence));
            }
            (None, false)
        }
    };
    let Some(session) = session else {
        if protected {
            return login_required();
        }
        return forward::anonymous(app, request, conn, upgrade, presence).await;
    };

    if let Some(refusal) = csrf::refusal(
        &app.config.csrf,
        &app.metrics,
        request.method(),
        request.headers(),
        request.uri(),
        upgrade,
    ) {
        return refusal;
    }
    if request.headers().contains_key(AUTHORIZATION)
        && app.config.proxy.browser_authorization == BrowserAuthorization::Reject
    {
        return error_response(
            ErrorCode::BadRequest,
            "the browser must not send an Authorization header",
        );
    }

    match freshen(app, session, retired_key, &presence, now).await {
        Freshened::Ready { fresh, cookies } => {
            forward::with_session(app, request, conn, upgrade, fresh, cookies, presence).await
        }
        Freshened::Unavailable { retry_after } => idp_unavailable(retry_after),
        Freshened::Ended { clear } => with_cookies(login_required(), clear),
    }
}

/// 431 `request_too_large` when the request's header block exceeds `server.max_header_bytes`.
fn oversized_headers(app: &App, headers: &http::HeaderMap) -> Option<Response<Body>> {
    let size: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    (size > app.config.server.max_header_bytes).then(|| {
        error_response(
            ErrorCode::HeadersTooLarge,
            "the request's headers are too large",
        )
    })
}
