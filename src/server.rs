//! Serving: accept loop, per-connection HTTP (HTTP/1.1 and h2c), graceful shutdown.
//!
//! Library code never binds sockets (design habit 3): `run` takes a bound listener and a
//! shutdown future, so tests bind `127.0.0.1:0`. On shutdown the listener closes at once;
//! in-flight requests and upgraded tunnels get `server.shutdown_grace` to finish.

use crate::app::App;
use crate::handler::handle;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
        .max_buf_size(server.max_header_bytes.max(8192));
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(server.max_connections));
    tokio::pin!(shutdown);
    info!(addr = %listener.local_addr()?, "proxy listening");
    loop {
        // Backpressure: at the connection cap, stop accepting until one closes.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => permit.expect("semaphore never closed"),
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
        let app = Arc::clone(&app);
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, std::convert::Infallible>(handle(app, request, peer).await) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    app.start_draining();
    drop(listener);
    let grace = app.config.server.shutdown_grace;
    info!(?grace, "shutting down: draining in-flight requests");
    app.tunnels.close();
    let drained = tokio::time::timeout(grace, async {
        graceful.shutdown().await;
        app.tunnels.wait().await;
    })
    .await;
    match drained {
        Ok(()) => info!("drained"),
        Err(_) => warn!("shutdown grace expired with requests still in flight"),
    }
    Ok(())
}
