//! Serving: accept loop, optional TLS, per-connection HTTP (HTTP/1.1, HTTP/2 via ALPN or h2c),
//! connection limits, graceful shutdown. With `server.scheduler = "per_core"` the accept loop
//! hands connections to the other workers' runtimes in turn ([`workers`]).
//!
//! Library code never binds sockets: `run` takes a bound listener and a shutdown future, so
//! tests bind `127.0.0.1:0` and nothing depends on a fixed port. On shutdown the listener closes at once and
//! `/readyz` turns unready; in-flight requests and upgraded tunnels get
//! `server.shutdown_grace` to finish. TLS handshakes run in the connection's task, never in
//! the accept loop, and are bounded by `server.header_read_timeout`.
//!
//! What one client may hold: one of `server.max_connections` slots, for at most
//! `header_read_timeout` without a request in flight (from accept: [`conn`]); a write that
//! makes no progress for `write_timeout` ends the connection ([`stall`]); HTTP/2 gets at most
//! `h2_max_concurrent_streams` streams, 16 KiB of buffered response per stream, a header
//! block limit equal to HTTP/1.1's, and keep-alive pings that must be answered.

pub mod conn;
pub mod h1;
mod request_body;
mod stall;
pub mod workers;

pub use request_body::RequestBody;

use crate::app::App;
use crate::body::Body;
use crate::config::{Http1Server, ServerConfig};
use crate::handler::{handle, ConnInfo};
use conn::{watched, Activity, Tracked, Verdict, Watchdog};
use http::{Request, Response};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use stall::WriteDeadline;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};
use workers::Workers;

/// Response bytes buffered per HTTP/2 stream beyond what the client has taken (hyper's
/// default is 400 KiB: a client that never reads pinned that much per stream; with this and
/// the upstream read buffer at 16 KiB a stalled stream holds ~83 KiB, BENCHMARKS.md).
const H2_MAX_SEND_BUF: usize = 16 * 1024;
/// Request bytes an HTTP/2 client may send ahead per stream and per connection.
const H2_STREAM_WINDOW: u32 = 256 * 1024;
const H2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Room above `max_header_bytes` so an oversized head reaches the handler and gets the JSON
/// 431 rather than the protocol's bare one.
const HEADER_ROOM: usize = 16 * 1024;

/// The HTTP/1.1 + HTTP/2 server settings shared by the proxy and admin listeners.
pub fn builder(server: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // No per-request timer: the connection's watchdog (`conn`) already closes a
        // connection with no request in flight for `header_read_timeout`, counted from the
        // last response (or accept), so a head read slowly is bounded by it.
        .header_read_timeout(None)
        .max_buf_size(server.max_header_bytes + HEADER_ROOM);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(server.h2_max_concurrent_streams)
        .max_send_buf_size(H2_MAX_SEND_BUF)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_header_list_size(
            u32::try_from(server.max_header_bytes + HEADER_ROOM).unwrap_or(u32::MAX),
        )
        .keep_alive_interval(server.h2_keepalive_interval)
        .keep_alive_timeout(server.h2_keepalive_timeout);
    builder
}

/// A client socket whose writes may stall at most `limit` (see [`stall`]).
pub fn write_deadline(
    stream: TcpStream,
    limit: Duration,
) -> impl AsyncRead + AsyncWrite + Unpin + Send + 'static {
    WriteDeadline::new(stream, limit)
}

/// Waits before accepting again after a failed accept (EMFILE and friends), so the loop never
/// spins.
pub async fn accept_backoff(e: &std::io::Error) {
    warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Serves {
    /// `server.listen`: the browser's requests (the proxy and `/auth`).
    Proxy,
    /// `forward_auth.listen`: gateways' questions (plain HTTP: it is cluster-internal).
    ForwardAuth,
}

/// Serves `listener` until `shutdown` resolves, then drains within the configured grace.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    crate::reload::spawn(&app);
    serve_listener(listener, app, shutdown, Serves::Proxy).await
}

/// Serves the forward-auth listener until `shutdown` resolves, with the same connection
/// limits and drain as the proxy's.
pub async fn run_forward_auth(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_listener(listener, app, shutdown, Serves::ForwardAuth).await
}

async fn serve_listener(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
    serves: Serves,
) -> std::io::Result<()> {
    let server = &app.config.server;
    let builder = Arc::new(builder(server));
    let acceptor = match (&app.tls, serves) {
        (Some(cert), Serves::Proxy) => Some(TlsAcceptor::from(
            crate::tls::server_config(Arc::clone(cert)).map_err(std::io::Error::other)?,
        )),
        _ => None,
    };
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(server.max_connections));
    tokio::pin!(shutdown);
    let addr = listener.local_addr()?;
    match serves {
        Serves::Proxy => info!(%addr, tls = acceptor.is_some(), "proxy listening"),
        Serves::ForwardAuth => info!(%addr, "forward-auth listening"),
    }
    loop {
        // Backpressure: at the connection cap, stop accepting until one closes.
        let permit = tokio::select! {
            permit = Arc::clone(&limit).acquire_owned() => permit.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_backoff(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (app, builder, acceptor, stopping) = (
            Arc::clone(&app),
            Arc::clone(&builder),
            acceptor.clone(),
            stopping.clone(),
        );
        let lane = app.workers.as_ref().and_then(Workers::next_lane).cloned();
        let Some(lane) = lane else {
            connections.spawn(accepted(
                app, builder, acceptor, stream, peer, stopping, serves, permit,
            ));
            continue;
        };
        // Another worker's turn: the socket leaves this runtime's driver and joins that
        // worker's when its task first runs there.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                debug!(error = %e, "an accepted connection could not be handed over");
                continue;
            }
        };
        let job = connections.track_future(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => {
                    accepted(
                        app, builder, acceptor, stream, peer, stopping, serves, permit,
                    )
                    .await
                }
                Err(e) => debug!(error = %e, "a handed-over connection could not be registered"),
            }
        });
        if let Err(refused) = lane.send(Box::pin(job)) {
            // That worker is gone (its runtime could not start): served here instead.
            tokio::spawn(refused.0);
        }
    }
    if serves == Serves::Proxy {
        app.start_draining();
    }
    drop(listener);
    let grace = app.config.server.shutdown_grace;
    info!(?grace, "shutting down: draining in-flight requests");
    stopping.cancel();
    connections.close();
    app.tunnels.close();
    let drained = tokio::time::timeout(grace, async {
        connections.wait().await;
        app.tunnels.wait().await;
    })
    .await;
    match drained {
        Ok(()) => info!("drained"),
        Err(_) => warn!("shutdown grace expired with requests still in flight"),
    }
    Ok(())
}

/// An accepted connection's life on the runtime that serves it, counted in the active
/// connections and holding its `max_connections` slot.
#[allow(clippy::too_many_arguments)]
async fn accepted(
    app: Arc<App>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    acceptor: Option<TlsAcceptor>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    stopping: CancellationToken,
    serves: Serves,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    app.metrics.connections_active.inc();
    let metrics = Arc::clone(&app.metrics);
    connection(app, &builder, acceptor, stream, peer, &stopping, serves).await;
    metrics.connections_active.dec();
    drop(permit);
}

/// One accepted connection: TLS if configured, then HTTP.
async fn connection(
    app: Arc<App>,
    builder: &auto::Builder<TokioExecutor>,
    acceptor: Option<TlsAcceptor>,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    stopping: &CancellationToken,
    serves: Serves,
) {
    let _ = stream.set_nodelay(true);
    let server = &app.config.server;
    let stream = WriteDeadline::new(stream, server.write_timeout);
    let trusted = server.is_trusted_proxy(peer.ip());
    match acceptor {
        None => {
            let info = ConnInfo::new(peer, false, trusted);
            serve(app, builder, stream, info, stopping, serves).await
        }
        // Boxed: a TLS connection's state (rustls's, the handshake's) is several KiB that
        // every plain connection's task would otherwise reserve too.
        Some(acceptor) => {
            let info = ConnInfo::new(peer, true, trusted);
            Box::pin(serve_tls(
                app, builder, acceptor, stream, info, stopping, serves,
            ))
            .await
        }
    }
}

/// The TLS handshake (bounded by `server.header_read_timeout`), then HTTP.
async fn serve_tls(
    app: Arc<App>,
    builder: &auto::Builder<TokioExecutor>,
    acceptor: TlsAcceptor,
    stream: WriteDeadline<TcpStream>,
    info: ConnInfo,
    stopping: &CancellationToken,
    serves: Serves,
) {
    let timeout = app.config.server.header_read_timeout;
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => serve(app, builder, tls, info, stopping, serves).await,
        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
        Err(_) => debug!("TLS handshake timed out"),
    }
}

/// A request's response on its way, boxed (see [`serve`]).
type Responding = Pin<Box<dyn Future<Output = Response<Tracked<Body>>> + Send>>;

/// `make()` written straight into its box: the box is allocated first, so the future's state
/// (only its captures, before its first poll) is not built on the stack and then copied in.
#[inline(always)]
fn boxed_in_place<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

/// Serves one connection; closes it when idle; on shutdown, finishes its in-flight requests.
/// With `server.http1 = "direct"` the direct server ([`h1`]) reads its first requests, and
/// hyper the rest from the first it does not take.
async fn serve<I>(
    app: Arc<App>,
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    conn: ConnInfo,
    stopping: &CancellationToken,
    serves: Serves,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let idle_timeout = app.config.server.header_read_timeout;
    let direct = app.config.server.http1 == Http1Server::Direct;
    let mut watchdog = Watchdog::new(Arc::clone(&activity), idle_timeout, stopping.clone());
    let respond = {
        let activity = Arc::clone(&activity);
        move |request: Request<RequestBody>| -> Responding {
            let busy = activity.begin();
            let app = Arc::clone(&app);
            let conn = conn.clone();
            let wrap = move |body| Tracked::new(body, busy);
            // Boxed per request: hyper keeps the slot for a connection's in-flight request
            // future (several KiB: the whole handler) allocated for the connection's lifetime,
            // so unboxed, every idle keep-alive connection would hold one. Each listener's
            // future is boxed as it is (no `async` layer around it to move it into).
            match serves {
                Serves::Proxy => boxed_in_place(move || handle(app, request, conn, wrap)),
                Serves::ForwardAuth => boxed_in_place(move || async move {
                    crate::forward_auth::handle(app, request, conn)
                        .await
                        .map(wrap)
                }),
            }
        }
    };
    if direct {
        let closing = AtomicBool::new(false);
        let ended = {
            let direct = h1::serve(io, &closing, &respond);
            tokio::pin!(direct);
            loop {
                tokio::select! {
                    biased;
                    ended = direct.as_mut() => break Some(ended),
                    verdict = watchdog.next_verdict() => match verdict {
                        Verdict::Close => closing.store(true, Ordering::Release),
                        Verdict::Drop => break None,
                    },
                }
            }
        };
        if let Some(h1::Ended::Hand(io)) = ended {
            if !closing.load(Ordering::Acquire) {
                serve_hyper(builder, io, respond, watchdog).await;
            }
        }
        return;
    }
    serve_hyper(builder, io, respond, watchdog).await;
}

/// hyper's server on the connection, under its watchdog.
async fn serve_hyper<I, R>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    respond: R,
    mut watchdog: Watchdog,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    R: Fn(Request<RequestBody>) -> Responding + Send + 'static,
{
    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
        let pending = respond(request.map(RequestBody::Hyper));
        async move { Ok::<_, std::convert::Infallible>(pending.await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let ended = watched!(connection, watchdog);
    if let Some(Err(e)) = ended {
        debug!(error = %e, "connection ended with an error");
    }
}
