//! Serving: accept loop, optional TLS, per-connection HTTP (HTTP/1.1, HTTP/2 via ALPN or h2c),
//! graceful shutdown.
//!
//! Library code never binds sockets (design habit 3): `run` takes a bound listener and a
//! shutdown future, so tests bind `127.0.0.1:0`. On shutdown the listener closes at once and
//! `/readyz` turns unready; in-flight requests and upgraded tunnels get
//! `server.shutdown_grace` to finish. TLS handshakes run in the connection's task, never in
//! the accept loop, and are bounded by `server.header_read_timeout`.

use crate::app::App;
use crate::handler::{handle, ConnInfo};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// Serves `listener` until `shutdown` resolves, then drains within the configured grace.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let server = &app.config.server;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        // Room above max_header_bytes, so an oversized head reaches the handler and gets
        // the JSON 431 rather than hyper's bare one.
        .max_buf_size(server.max_header_bytes + 16 * 1024);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let acceptor = match &app.tls {
        Some(cert) => Some(TlsAcceptor::from(
            crate::tls::server_config(Arc::clone(cert)).map_err(std::io::Error::other)?,
        )),
        None => None,
    };
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
    let limit = Arc::new(Semaphore::new(server.max_connections));
    tokio::pin!(shutdown);
    info!(addr = %listener.local_addr()?, tls = acceptor.is_some(), "proxy listening");
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
                    // EMFILE and friends: log and keep serving the connections we have.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, builder, acceptor, stopping) = (
            Arc::clone(&app),
            Arc::clone(&builder),
            acceptor.clone(),
            stopping.clone(),
        );
        connections.spawn(async move {
            app.metrics.connections_active.inc();
            let metrics = Arc::clone(&app.metrics);
            match acceptor {
                None => serve(app, &builder, stream, ConnInfo::new(peer, false), stopping).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        app.config.server.header_read_timeout,
                        acceptor.accept(stream),
                    );
                    match handshake.await {
                        Ok(Ok(tls)) => {
                            serve(app, &builder, tls, ConnInfo::new(peer, true), stopping).await
                        }
                        Ok(Err(e)) => debug!(error = %e, "TLS handshake failed"),
                        Err(_) => debug!("TLS handshake timed out"),
                    }
                }
            }
            metrics.connections_active.dec();
            drop(permit);
        });
    }
    app.start_draining();
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

/// Serves one connection; on shutdown, finishes its in-flight requests and closes it.
async fn serve<I>(
    app: Arc<App>,
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    conn: ConnInfo,
    stopping: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, std::convert::Infallible>(handle(app, request, conn).await) }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stopping.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection ended with an error");
    }
}
