//! The admin listener: `/healthz` (the process is alive), `/readyz` (config loaded, cookie keys
//! present, IdP metadata known, not draining), `/metrics` (Prometheus, OpenMetrics text). Not whether the IdP answers right now: a
//! flapping IdP must not take every pod out of the Service at once.

use crate::app::App;
use crate::body::{full, Body};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{debug, info};

/// Serves the admin endpoints until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    info!(addr = %listener.local_addr()?, "admin listening");
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "admin accept failed");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let app = Arc::clone(&app);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let app = Arc::clone(&app);
                async move { Ok::<_, std::convert::Infallible>(answer(&app, &request)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(app: &App, request: &Request<Incoming>) -> Response<Body> {
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => match readiness(app) {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {why}\n"),
            ),
        },
        "/metrics" => {
            let mut response = text(StatusCode::OK, &app.metrics.encode());
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Why the proxy is not ready, if it is not.
pub fn readiness(app: &App) -> Result<(), &'static str> {
    if app.is_draining() {
        return Err("shutting down");
    }
    if app.idp.metadata().is_none() {
        return Err("IdP metadata not discovered yet");
    }
    Ok(())
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
