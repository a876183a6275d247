//! The admin listener: `/healthz` (the process is alive), `/readyz` (config loaded, cookie keys
//! present, IdP metadata known, the shared record of ended sessions read, not draining), `/metrics` (Prometheus, OpenMetrics text). Not whether the IdP answers right now: a
//! flapping IdP must not take every pod out of the Service at once.

use crate::app::App;
use crate::body::{full, Body};
use crate::server::conn::{watched, Activity, Tracked, Watchdog};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Admin connections served at once (probes and a scraper need a handful).
const MAX_CONNECTIONS: usize = 64;

/// Serves the admin endpoints until `shutdown` resolves, with the main listener's limits:
/// a connection idle for `server.header_read_timeout` is closed, a stalled write ends it, and
/// at most [`MAX_CONNECTIONS`] are open.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    info!(addr = %listener.local_addr()?, "admin listening");
    let builder = Arc::new(crate::server::builder(&app.config.server));
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let stopping = CancellationToken::new();
    let _stop_on_exit = stopping.clone().drop_guard();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("semaphore never closed"),
            () = &mut shutdown => return Ok(()),
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    crate::server::accept_backoff(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let (app, builder, stopping) = (Arc::clone(&app), Arc::clone(&builder), stopping.clone());
        tokio::spawn(async move {
            let server = &app.config.server;
            let (idle, write) = (server.header_read_timeout, server.write_timeout);
            let activity = Activity::new();
            let service = {
                let activity = Arc::clone(&activity);
                service_fn(move |request| {
                    let busy = activity.begin();
                    let response = answer(&app, &request).map(|body| Tracked::new(body, busy));
                    async move { Ok::<_, std::convert::Infallible>(response) }
                })
            };
            let io = TokioIo::new(crate::server::write_deadline(stream, write));
            let connection = builder.serve_connection(io, service);
            tokio::pin!(connection);
            let mut watchdog = Watchdog::new(activity, idle, stopping);
            let ended = watched!(connection, watchdog);
            if let Some(Err(e)) = ended {
                debug!(error = %e, "admin connection ended with an error");
            }
            drop(permit);
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
    if app.ended.shared().is_some_and(|shared| !shared.ready()) {
        return Err("the shared record of ended sessions is not read yet");
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
