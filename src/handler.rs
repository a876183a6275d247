//! One proxied request: session → CSRF → fresh tokens → forward → cookies.
//!
//! The order matters: the CSRF check runs *before* any refresh, so a forged request can never
//! spend a refresh token; the session is changed only by the IdP (a refresh, or a rejected
//! grant that ends it), never by an upstream failure.

use crate::app::App;
use crate::body::Body;
use crate::config::BrowserAuthorization;
use crate::csrf;
use crate::edge;
use crate::endpoints;
use crate::error::{error_response, idp_unavailable, key_unavailable, login_required, ErrorCode};
use crate::forward;
pub use crate::forward::Target;
use crate::metrics::RequestLabels;
use crate::proxy::upgrade;
pub use crate::proxy::ConnInfo;
use crate::refresh::unix_now;
use crate::request_session::{self, freshen, with_cookies, Freshened};
use crate::session::ReadOutcome;
use http::header::{AUTHORIZATION, CACHE_CONTROL};
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use std::borrow::Cow;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{debug, info, info_span, Instrument};

/// Routes a request to the proxy's own endpoints or upstream.
pub async fn handle(app: Arc<App>, request: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    let started = Instant::now();
    let routed = route(&app, &request);
    let label = match &routed {
        Err(_) => "refused",
        Ok(Route::Own { rest, .. }) => endpoints::route_class(rest),
        Ok(Route::Upstream {
            upgrade: Some(_), ..
        }) => "upgrade",
        Ok(Route::Upstream {
            protected: true, ..
        }) => "protected",
        Ok(Route::Upstream { .. }) => "public",
    };
    // One span per request; fields are opted in (never a path, a query or a header value).
    let span = info_span!(
        "request",
        method = %request.method(),
        route = label,
        status = Empty,
        latency_ms = Empty,
        session = Empty,
    );
    async move {
        let response = match routed {
            Err(refusal) => {
                debug!(reason = refusal.message(), "request refused at the edge");
                let code = match refusal {
                    edge::Refusal::Method => ErrorCode::MethodNotAllowed,
                    _ => ErrorCode::BadRequest,
                };
                error_response(code, refusal.message())
            }
            Ok(Route::Own { rest, authority }) => {
                let mut response = endpoints::handle(&app, request, &rest, &authority).await;
                // RFC 9111: nothing the proxy says about a session may be stored by a cache.
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Ok(Route::Upstream {
                protected,
                upgrade,
                target,
            }) => proxy(&app, request, conn, protected, upgrade, target).await,
        };
        let status = response.status().as_u16();
        let span = tracing::Span::current();
        span.record("status", status);
        span.record("latency_ms", started.elapsed().as_millis() as u64);
        app.metrics
            .requests
            .get_or_create(&RequestLabels {
                route: label,
                status,
            })
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

/// Where a request goes, decided once on its checked authority and normalised path.
enum Route {
    /// One of the proxy's endpoints; `rest` is the path below the prefix.
    Own {
        rest: String,
        authority: HeaderValue,
    },
    Upstream {
        protected: bool,
        upgrade: Option<upgrade::Expected>,
        target: Target,
    },
}

fn route(app: &App, request: &Request<Incoming>) -> Result<Route, edge::Refusal> {
    let admitted = edge::admit(request)?;
    let decoded = &admitted.path.decoded[..];
    let prefix = app.config.proxy.auth_prefix.as_bytes();
    if let Some(rest) = decoded
        .strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with(b"/"))
    {
        return Ok(Route::Own {
            rest: String::from_utf8_lossy(rest).into_owned(),
            authority: admitted.authority,
        });
    }
    let protected = app.config.proxy.is_protected(decoded);
    let upgrade = upgrade::requested(
        request.method(),
        request.version(),
        request.headers(),
        &app.config.proxy.upgrades,
    );
    let path = match admitted.path.forward {
        Cow::Borrowed(_) => None,
        Cow::Owned(path) => Some(path),
    };
    Ok(Route::Upstream {
        protected,
        upgrade,
        target: Target {
            authority: admitted.authority,
            path,
        },
    })
}

async fn proxy(
    app: &App,
    request: Request<Incoming>,
    conn: ConnInfo,
    protected: bool,
    upgrade: Option<upgrade::Expected>,
    target: Target,
) -> Response<Body> {
    if let Some(refusal) = oversized_headers(app, &request) {
        return refusal;
    }
    let now = unix_now();
    let (presence, outcome) = request_session::read(app, request.headers(), now);
    let (session, retired_key) = match outcome {
        ReadOutcome::Valid {
            session,
            retired_key,
        } => (Some(session), retired_key),
        ReadOutcome::Absent => (None, false),
        ReadOutcome::UnknownKey => {
            debug!("session sealed with a cookie key this replica does not have yet");
            if protected {
                return key_unavailable();
            }
            (None, false)
        }
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
        return forward::anonymous(app, request, conn, upgrade, target, presence).await;
    };

    if let Some(refusal) = csrf::refusal(
        &app.config.csrf,
        &app.metrics,
        request.method(),
        request.headers(),
        target.authority.to_str().ok(),
        upgrade.is_some(),
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
            forward::with_session(
                app, request, conn, upgrade, target, fresh, cookies, presence,
            )
            .await
        }
        Freshened::Unavailable { retry_after } => idp_unavailable(retry_after),
        Freshened::Ended { clear } => with_cookies(login_required(), clear),
    }
}

/// 431 `request_too_large` when the request's head exceeds `server.max_header_bytes`: the
/// header fields plus the request line (HTTP/2: the pseudo-headers), the same count on both
/// protocols.
fn oversized_headers<B>(app: &App, request: &Request<B>) -> Option<Response<Body>> {
    let uri = request.uri();
    let line = request.method().as_str().len()
        + uri.path_and_query().map_or(1, |p| p.as_str().len())
        + uri.authority().map_or(0, |a| a.as_str().len())
        + 12;
    let size: usize = line
        + request
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    (size > app.config.server.max_header_bytes).then(|| {
        error_response(
            ErrorCode::HeadersTooLarge,
            "the request's headers are too large",
        )
    })
}
