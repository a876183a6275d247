//! One proxied request: session → CSRF → fresh tokens → forward → cookies.
//!
//! The order matters: the CSRF check runs *before* any refresh, so a forged request can never
//! spend a refresh token; the session is changed only by the IdP (a refresh, or a rejected
//! grant that ends it), never by an upstream failure.

use crate::app::App;
use crate::body::Body;
use crate::config::Access;
use crate::edge;
use crate::endpoints;
use crate::error::{error_response, ErrorCode};
use crate::forward;
pub use crate::forward::Target;
use crate::proxy::upgrade;
pub use crate::proxy::ConnInfo;
use crate::request_session::{self, Admission};
use crate::routes::Decision;
use crate::server::RequestBody;
use crate::trace;
use http::header::{ALLOW, CACHE_CONTROL};
use http::{HeaderValue, Request, Response};
use std::borrow::Cow;
use std::sync::Arc;
use tokio::time::Instant;
use tracing::field::Empty;
use tracing::{debug, info, info_span};

/// Routes a request to the proxy's own endpoints or upstream. Not an `async fn`: routing and the
/// spans are decided when it is called, and the future it returns is only the routed work, so
/// the request is not kept a second time in a state of its own (see BENCHMARKS.md, "Memory per
/// connection"). `wrap` turns the response's body into the server's (the connection's
/// activity): done here, the server keeps this future as it is, without a layer around it.
pub fn handle<B>(
    app: Arc<App>,
    request: Request<RequestBody>,
    conn: ConnInfo,
    wrap: impl FnOnce(Body) -> B + Send,
) -> impl std::future::Future<Output = Response<B>> + Send {
    let routed = route(&app, &request);
    let label = match &routed {
        Err(_) => "refused",
        Ok(Route::Own { rest, .. }) => endpoints::route_class(rest),
        Ok(Route::Unrouted(_)) => "unrouted",
        Ok(Route::Upstream {
            upgrade: Some(_), ..
        }) => "upgrade",
        Ok(Route::Upstream {
            access: Access::Required,
            ..
        }) => "protected",
        Ok(Route::Upstream { .. }) => "public",
    };
    // Traces on: the OpenTelemetry server span (its path, the browser's `traceparent` as its
    // parent), outside the log span; off, a disabled span.
    let traced = app.traces.request(
        request.method(),
        request.uri().path(),
        request.headers(),
        label,
    );
    // One span per request; fields are opted in (never a path, a query or a header value).
    let span = info_span!(
        "request",
        method = %request.method(),
        route = label,
        status = Empty,
        latency_ms = Empty,
        session = Empty,
    );
    // The latency is for the span's fields: no clock reads when it records nothing.
    let started = (!span.is_disabled()).then(Instant::now);
    let otel = traced.clone();
    let inner = async move {
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
                // Boxed: the endpoints' state (IdP calls) would enlarge every proxied request.
                let mut response =
                    Box::pin(endpoints::handle(&app, request, &rest, &authority)).await;
                // RFC 9111: nothing the proxy says about a session may be stored by a cache.
                response
                    .headers_mut()
                    .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Ok(Route::Unrouted(decision)) => unrouted(decision),
            // Proxied: the work is this future's own states, not a future of its own moved
            // into one of them (see BENCHMARKS.md, "Layers that move").
            Ok(Route::Upstream {
                access,
                upgrade,
                target,
            }) => 'proxied: {
                if let Some(refusal) = oversized_headers(&app, &request) {
                    break 'proxied refusal;
                }
                let admission = request_session::admit(
                    &app,
                    request.method(),
                    request.headers(),
                    target.authority.to_str().ok(),
                    access,
                    upgrade.is_some(),
                )
                .await;
                match admission {
                    Err(refusal) => refusal,
                    Ok(Admission::Anonymous(presence)) => {
                        forward::anonymous(&app, request, conn, upgrade, target, presence).await
                    }
                    Ok(Admission::Session {
                        fresh,
                        cookies,
                        presence,
                        bearer,
                    }) => {
                        forward::with_session(
                            &app, request, conn, upgrade, target, fresh, cookies, presence, bearer,
                        )
                        .await
                    }
                }
            }
        };
        let status = response.status().as_u16();
        trace::record_status(&traced, status, status >= 500);
        if let Some(started) = started {
            let span = tracing::Span::current();
            span.record("status", status);
            span.record("latency_ms", started.elapsed().as_millis() as u64);
        }
        app.metrics.request(label, status);
        if app.config.log.access_log {
            info!("request");
        } else {
            debug!("request");
        }
        response.map(wrap)
    };
    trace::InSpans {
        otel,
        log: span,
        inner,
    }
}

/// Where a request goes, decided once on its checked authority and normalised path.
enum Route {
    /// One of the proxy's endpoints; `rest` is the path below the prefix.
    Own {
        rest: String,
        authority: HeaderValue,
    },
    Upstream {
        access: Access,
        upgrade: Option<upgrade::Expected>,
        target: Target,
    },
    /// No route takes it (404), or not with this method (405): no upstream is touched.
    Unrouted(Decision),
}

fn route(app: &App, request: &Request<RequestBody>) -> Result<Route, edge::Refusal> {
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
    let (route, access) = match app
        .routes
        .decide(decoded, request.method(), &app.config.proxy)
    {
        Decision::Forward {
            route: Some(route),
            access,
        } if app.routes.get(route).upstream.is_some() => (route, access),
        // No upstream here: a forward-auth deployment, where the gateway forwards.
        Decision::Forward { .. } => return Ok(Route::Unrouted(Decision::NotFound)),
        refused => return Ok(Route::Unrouted(refused)),
    };
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
        access,
        upgrade,
        target: Target {
            route,
            authority: admitted.authority,
            path,
        },
    })
}

/// 404 or 405 from the routes.
pub fn unrouted(decision: Decision) -> Response<Body> {
    match decision {
        Decision::MethodNotAllowed { allow } => {
            let mut response = error_response(
                ErrorCode::MethodNotAllowed,
                "this route does not allow the method",
            );
            response.headers_mut().insert(ALLOW, allow);
            response
        }
        _ => error_response(ErrorCode::NotFound, "no route for this path"),
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
