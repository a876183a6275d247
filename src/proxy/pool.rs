//! Keep-alive HTTP/1.1 connections to the one upstream.
//!
//! There is a single upstream, so the pool is one stack of idle connections (one per worker
//! with `server.scheduler = "per_core"`), the most recently used on top (warm in the caches,
//! and the least likely to have been timed out by the upstream). A connection goes back when
//! its response body has been read to the end ([`PooledBody`]); one whose body is dropped
//! half-read is closed. It is taken again only if hyper reports it ready. Closed and long-idle connections are dropped
//! where a request meets them, and by the stack's sweep once traffic stops ([`super::idle`]).
//! This replaces hyper-util's generic client, whose per-host map, checkout/connect race and
//! per-request "return to pool" task cost about a sixth of a proxied request (BENCHMARKS.md).

use super::idle::{self, Idle, Pooling, Stack, IDLE_TIMEOUT};
use super::UpstreamError;
use crate::body::{Body, BoxError};
use crate::server::workers::Shards;
use bytes::Bytes;
use http::Uri;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::time::Sleep;
use tower_service::Service;
use tracing::debug;

/// Largest read buffer of an upstream connection; also the largest upstream response head
/// (nginx's default `proxy_buffer_size` allows only 4 or 8 KiB).
pub(super) const UPSTREAM_READ_BUF: usize = 16 * 1024;

pub struct Pool {
    /// Per worker (`server::workers`): one shard in use unless `scheduler = "per_core"`.
    idle: Shards<Stack<Conn>>,
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority` of the upstream, what the connector dials.
    origin: Uri,
}

/// One upstream connection: its sender, and the timer that bounds the wait for each response
/// head on it. A request resets the timer rather than starting one of its own: extending a
/// registered timer is an atomic update, where a new one is inserted into tokio's timer wheel
/// and removed again, under the driver's lock, on every request (BENCHMARKS.md).
#[derive(Debug)]
pub struct Conn {
    pub sender: SendRequest<Body>,
    pub timer: Pin<Box<Sleep>>,
}

impl Idle for Conn {
    fn usable(&self) -> bool {
        !self.sender.is_closed()
    }
}

impl Pooling for Pool {
    type Conn = Conn;
    fn stacks(&self) -> &Shards<Stack<Conn>> {
        &self.idle
    }
}

impl Conn {
    /// Forgets the waker of the last request's task: an idle connection must not keep that
    /// task's memory alive (a dropped client connection's task is freed with its last waker).
    fn forget_waker(&mut self) {
        forget_waker(&mut self.timer);
    }
}

/// Re-registers `timer` with a waker that wakes nothing (the direct client's idle connections
/// too).
pub(super) fn forget_waker(timer: &mut Pin<Box<Sleep>>) {
    let _ = timer
        .as_mut()
        .poll(&mut Context::from_waker(std::task::Waker::noop()));
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub fn new(connector: HttpsConnector<HttpConnector>, origin: Uri) -> Pool {
        Pool {
            idle: Shards::default(),
            connector,
            origin,
        }
    }

    /// The most recently used idle connection that is ready for a request; `now` is the
    /// caller's clock reading (one per request, shared with its response-head deadline).
    pub fn take(&self, now: Instant) -> Option<Conn> {
        let idle = &mut self.idle.lock().entries;
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            let (conn, since) = &idle[i];
            if conn.sender.is_closed() || now.duration_since(*since) > IDLE_TIMEOUT {
                idle.remove(i);
            } else if conn.sender.is_ready() {
                return idle.remove(i).map(|(conn, _)| conn);
            }
            // Otherwise hyper has not caught up with the end of its last exchange yet (or the
            // upstream answered before the request body was all sent): leave it for later.
        }
        None
    }

    /// Gives a connection back: its response has been read to the end.
    pub fn put(self: &Arc<Self>, mut conn: Conn) {
        if conn.sender.is_closed() {
            return;
        }
        conn.forget_waker();
        idle::put(self, conn, Instant::now());
    }

    /// A new connection (TCP, TLS for `https://`, HTTP/1.1 handshake), driven by its own task.
    pub async fn connect(&self) -> Result<SendRequest<Body>, UpstreamError> {
        let mut connector = self.connector.clone();
        let io = async {
            std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
            connector.call(self.origin.clone()).await
        }
        .await
        .map_err(|e| {
            debug!(error = %super::describe(e.as_ref()), "upstream connect failed");
            UpstreamError::Unavailable("connect failed")
        })?;
        // The read buffer bounds what one response pins in memory while its client is slow to
        // read (hyper's default grows to ~400 KiB, and a stalled client pinned two of them).
        let (sender, connection) = http1::Builder::new()
            .max_buf_size(UPSTREAM_READ_BUF)
            // One buffer and one write(2) for the request head and a small body, rather than a
            // queue of slices for writev(2): ~250 fewer instructions per request (BENCHMARKS.md).
            .writev(false)
            .handshake(io)
            .await
            .map_err(|e| {
                debug!(error = %super::describe(&e), "upstream handshake failed");
                UpstreamError::Unavailable("connection failed")
            })?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                debug!(error = %super::describe(&e), "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// An upstream response body that gives its connection back to the pool once read to the end:
/// on one of hyper's connections, or on the direct client's ([`super::direct`]).
pub struct PooledBody {
    inner: Inner,
}

enum Inner {
    Hyper {
        body: Incoming,
        home: Option<(Arc<Pool>, Conn)>,
    },
    Direct(super::direct::DirectBody),
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Hyper { home, .. } => f
                .debug_struct("PooledBody")
                .field("pooled", &home.is_some())
                .finish_non_exhaustive(),
            Inner::Direct(body) => f.debug_tuple("PooledBody").field(body).finish(),
        }
    }
}

impl PooledBody {
    /// `conn` is the connection `body` arrives on; `None` when it must not be reused.
    pub fn new(pool: &Arc<Pool>, conn: Option<Conn>, body: Incoming) -> Self {
        let mut pooled = PooledBody {
            inner: Inner::Hyper {
                body,
                home: conn.map(|c| (Arc::clone(pool), c)),
            },
        };
        if let Inner::Hyper { body, home } = &mut pooled.inner {
            if hyper::body::Body::is_end_stream(body) {
                release(home);
            }
        }
        pooled
    }

    /// A body on a direct connection (it gives its connection back itself).
    pub fn direct(body: super::direct::DirectBody) -> Self {
        PooledBody {
            inner: Inner::Direct(body),
        }
    }
}

fn release(home: &mut Option<(Arc<Pool>, Conn)>) {
    if let Some((pool, conn)) = home.take() {
        pool.put(conn);
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let (body, home) = match &mut self.get_mut().inner {
            Inner::Direct(body) => return Pin::new(body).poll_frame(cx),
            Inner::Hyper { body, home } => (body, home),
        };
        let polled = Pin::new(&mut *body).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => release(home),
            Poll::Ready(Some(Ok(_))) if body.is_end_stream() => release(home),
            // A broken connection is not given back.
            Poll::Ready(Some(Err(_))) => *home = None,
            _ => {}
        }
        polled.map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Hyper { body, .. } => body.is_end_stream(),
            Inner::Direct(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Hyper { body, .. } => body.size_hint(),
            Inner::Direct(body) => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;
    use std::task::Wake;
    use std::time::Duration;

    /// A request's task, as far as a waker can tell.
    struct Task;

    impl Wake for Task {
        fn wake(self: Arc<Self>) {}
    }

    /// A connection going back to the pool lets go of the last request's waker: idle, it must
    /// not keep that request's task alive.
    #[tokio::test]
    async fn an_idle_connection_keeps_no_waker_of_the_last_request() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let (sender, connection) = http1::handshake::<_, Body>(TokioIo::new(ours))
            .await
            .expect("handshake");
        let driven = tokio::spawn(connection);
        let mut conn = Conn {
            sender,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(60))),
        };
        let task = Arc::new(Task);
        let waker = std::task::Waker::from(Arc::clone(&task));
        assert!(conn
            .timer
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending());
        drop(waker);
        assert_eq!(Arc::strong_count(&task), 2, "the timer holds the waker");
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::tls::client_config(None).expect("TLS config"))
            .https_or_http()
            .enable_http1()
            .wrap_connector(HttpConnector::new());
        let pool = Arc::new(Pool::new(
            connector,
            Uri::from_static("http://127.0.0.1:9/"),
        ));
        pool.put(conn);
        assert_eq!(Arc::strong_count(&task), 1, "and lets it go in the pool");
        assert_eq!(pool.idle.lock().entries.len(), 1, "the connection was kept");
        driven.abort();
    }
}
