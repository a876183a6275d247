//! The direct HTTP/1.1 client (`upstream.client = "direct"`): requests without a body, or with
//! a body whose bytes are all at hand (held for a retry, or read whole with its head by the
//! direct server) under one `Content-Length` of their length, to a plain `http://` upstream are
//! written and their responses read in the request's own task, without hyper's client
//! connection task and the hand-over between the two tasks (about 7k instructions of a bare
//! proxy's 22k: BENCHMARKS.md). Streamed bodies, upgrades and `https://` upstreams stay on
//! hyper's client ([`super::pool`]).
//!
//! The rules it keeps are hyper's: a kept-alive connection is reused only after a response
//! read to its exact end; a request of which no byte could be written goes out on the next
//! connection (one cut off inside is `UpstreamError::Closed`, as below: the upstream may have
//! its head);
//! an upstream that closes before a byte of the answer is `UpstreamError::Closed` (the caller's
//! one replay); the response head must come within `upstream.response_header_timeout`
//! (connecting included); heads are at most 16 KiB. Framing: `head.rs`; bodies: `decode.rs`
//! (the de-framing, no I/O) and `body.rs` (the reads).

mod body;
pub mod decode;
mod eligible;
pub mod head;
mod names;

pub use body::DirectBody;
pub use eligible::eligible;

use super::forwarded::Forwarded;
use super::UpstreamError;
use crate::body::Body;
use crate::server::workers::Shards;
use bytes::{Bytes, BytesMut};
use head::{parse_response_head, write_request_head, Head, HeadError};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Body as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tracing::debug;

// Largest response head, idle time and idle count: as hyper's client here (`pool.rs`).
use super::idle::{self, Idle, Pooling, Stack, IDLE_TIMEOUT};
use super::pool::{forget_waker, UPSTREAM_READ_BUF as MAX_HEAD};
/// What a read asks for at least: a response head and a small body fit in one read.
const READ_SIZE: usize = 8 * 1024;
/// Largest write buffer an idle connection keeps.
const KEPT_WRITE_BUFFER: usize = 8 * 1024;

/// The socket and its two buffers. The write buffer holds the last request head, its
/// `Authorization` among it: `Debug` shows neither buffer's bytes.
struct Io {
    stream: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("peer", &self.stream.peer_addr().ok())
            .field("buffered", &self.read.len())
            .finish_non_exhaustive()
    }
}

impl Io {
    /// Reads more into `read`: `Ok(0)` at the upstream's close.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read.capacity() - self.read.len() < READ_SIZE / 2 {
            self.read.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.read)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Idle and sound: nothing to read (a close, or bytes no request asked for, would be).
    /// Checks tokio's readiness first, so a sound connection costs no system call; also
    /// leaves no task's waker registered on the socket.
    fn sound(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            Poll::Ready(Ok(())) => matches!(
                self.stream.try_read(&mut [0u8; 1]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock
            ),
        }
    }
}

/// One upstream connection and the timer bounding the wait for each response head on it (reset
/// per request, as the hyper pool's `Conn`).
#[derive(Debug)]
pub struct DirectConn {
    io: Io,
    timer: Pin<Box<Sleep>>,
}

impl Idle for DirectConn {
    fn usable(&self) -> bool {
        self.io.sound()
    }
}

impl Pooling for DirectPool {
    type Conn = DirectConn;
    fn stacks(&self) -> &Shards<Stack<DirectConn>> {
        &self.idle
    }
}

/// The direct client's idle connections to one upstream, the most recently used on top.
#[derive(Debug)]
pub struct DirectPool {
    /// Per worker (`server::workers`): one shard in use unless `scheduler = "per_core"`.
    idle: Shards<Stack<DirectConn>>,
    host: String,
    port: u16,
    connect_timeout: Duration,
}

/// How one exchange on a connection ended, short of an answer.
enum Failure {
    /// The request could not be written: the upstream has not acted on it.
    Unsent,
    /// The connection closed (or reset) before a byte of the answer.
    Closed,
    /// A broken or refused answer.
    Broken(&'static str),
}

impl DirectPool {
    /// For a plain `http://` origin; `None` for any other scheme.
    pub fn new(origin: &Uri, connect_timeout: Duration) -> Option<DirectPool> {
        if origin.scheme_str() != Some("http") {
            return None;
        }
        let host = origin.host()?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Some(DirectPool {
            idle: Shards::default(),
            host,
            port: origin.port_u16().unwrap_or(80),
            connect_timeout,
        })
    }

    fn take(&self, now: Instant) -> Option<DirectConn> {
        let idle = &mut self.idle.lock().entries;
        while let Some((conn, since)) = idle.pop_back() {
            if now.saturating_duration_since(since) > IDLE_TIMEOUT {
                // Everything under it is older still.
                idle.clear();
                return None;
            }
            if conn.io.sound() {
                return Some(conn);
            }
        }
        None
    }

    /// Pools a connection whose response was read to its exact end. Whether the upstream has
    /// closed it since is checked when it is taken (or swept), not twice.
    fn put(self: &Arc<Self>, mut conn: DirectConn) {
        // An idle connection keeps no large buffer: a head of a large request (up to
        // `server.max_header_bytes`) or a body is not kept for every pooled connection.
        if conn.io.write.capacity() > KEPT_WRITE_BUFFER {
            conn.io.write = Vec::new();
        }
        // An idle connection keeps no task's waker.
        forget_waker(&mut conn.timer);
        idle::put(self, conn, Instant::now());
    }

    async fn connect(&self, deadline: tokio::time::Instant) -> Result<DirectConn, UpstreamError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                debug!(error = %e, "upstream connect failed");
                return Err(UpstreamError::Unavailable("connect failed"));
            }
            Err(_) => {
                debug!("upstream connect timed out");
                return Err(UpstreamError::Unavailable("connect failed"));
            }
        };
        let _ = stream.set_nodelay(true);
        Ok(DirectConn {
            io: Io {
                stream,
                read: BytesMut::with_capacity(READ_SIZE),
                write: Vec::with_capacity(1024),
            },
            timer: Box::pin(tokio::time::sleep_until(deadline)),
        })
    }

    /// Sends `request` (see [`eligible`]: `ready` holds its body's bytes) and returns the
    /// response head with its body to be read; the head must come within `header_timeout` of
    /// `now`.
    pub async fn send(
        self: &Arc<Self>,
        request: &Request<Body>,
        ready: Option<&Bytes>,
        forwarded: Option<&Forwarded>,
        now: tokio::time::Instant,
        header_timeout: Duration,
    ) -> Result<Response<DirectBody>, UpstreamError> {
        let deadline = now + header_timeout;
        let timeout = UpstreamError::Timeout(header_timeout);
        while let Some(mut conn) = self.take(now.into_std()) {
            conn.timer.as_mut().reset(deadline);
            let exchanged = exchange(&mut conn.io, request, ready, forwarded);
            match super::within(conn.timer.as_mut(), exchanged).await {
                None => return Err(timeout),
                Some(Ok(head)) => return Ok(self.respond(conn, head)),
                // Not written: the next connection, or a new one.
                Some(Err(Failure::Unsent)) => continue,
                Some(Err(failure)) => return Err(failed(failure)),
            }
        }
        // Boxed: connecting is rare next to a pooled connection; inline, its state (and the
        // connect timeout's) would enlarge every request's future (as in `Upstream::send`).
        Box::pin(self.send_new(request, ready, forwarded, deadline, header_timeout)).await
    }

    /// [`DirectPool::send`] on a new connection, connecting included by `deadline`.
    async fn send_new(
        self: &Arc<Self>,
        request: &Request<Body>,
        ready: Option<&Bytes>,
        forwarded: Option<&Forwarded>,
        deadline: tokio::time::Instant,
        header_timeout: Duration,
    ) -> Result<Response<DirectBody>, UpstreamError> {
        let timeout = UpstreamError::Timeout(header_timeout);
        let mut conn = match tokio::time::timeout_at(deadline, self.connect(deadline)).await {
            Err(_) => return Err(timeout),
            Ok(connected) => connected?,
        };
        let exchanged = exchange(&mut conn.io, request, ready, forwarded);
        match super::within(conn.timer.as_mut(), exchanged).await {
            None => Err(timeout),
            Some(Ok(head)) => Ok(self.respond(conn, head)),
            Some(Err(failure)) => Err(failed(failure)),
        }
    }

    fn respond(self: &Arc<Self>, conn: DirectConn, head: Head) -> Response<DirectBody> {
        let mut response = Response::new(DirectBody::new(
            conn,
            Arc::clone(self),
            head.framing,
            head.reusable,
        ));
        *response.status_mut() = head.status;
        *response.version_mut() = Version::HTTP_11;
        crate::proxy::maps::replace(response.headers_mut(), head.headers);
        response
    }
}

fn failed(failure: Failure) -> UpstreamError {
    match failure {
        Failure::Unsent => UpstreamError::Unavailable("connection failed"),
        Failure::Closed => {
            debug!("upstream closed the connection before answering");
            UpstreamError::Closed
        }
        Failure::Broken(why) => {
            debug!(why, "upstream response refused");
            UpstreamError::Unavailable("bad response")
        }
    }
}

/// Writes the request head (and the body [`eligible`] found in `ready`, in the same write) and
/// reads up to the final response head (interim 1xx skipped).
async fn exchange(
    io: &mut Io,
    request: &Request<Body>,
    ready: Option<&Bytes>,
    forwarded: Option<&Forwarded>,
) -> Result<Head, Failure> {
    write_request_head(&mut io.write, request, forwarded);
    // Only a body there is: `ready` of a request without one writes nothing.
    if let Some(bytes) = ready.filter(|_| !request.body().is_end_stream()) {
        io.write.extend_from_slice(bytes);
    }
    let mut written = 0;
    while written < io.write.len() {
        match io.stream.write(&io.write[written..]).await {
            Ok(n) if n > 0 => written += n,
            // Not a byte out: the upstream has not seen the request.
            _ if written == 0 => return Err(Failure::Unsent),
            // Cut off inside: the upstream may have the head, and act on it.
            _ => return Err(Failure::Closed),
        }
    }
    let mut answered = false;
    loop {
        match parse_response_head(&mut io.read, request.method()) {
            Ok(Some(head))
                if head.status.is_informational()
                    && head.status != StatusCode::SWITCHING_PROTOCOLS =>
            {
                // The final head may be in the buffer already.
                answered = true;
                continue;
            }
            Ok(Some(head)) => return Ok(head),
            Ok(None) if io.read.len() >= MAX_HEAD => {
                return Err(Failure::Broken("response head too large"))
            }
            Ok(None) => {}
            Err(HeadError::Malformed) => return Err(Failure::Broken("malformed response head")),
            Err(HeadError::Framing) => return Err(Failure::Broken("ambiguous response framing")),
        }
        answered |= !io.read.is_empty();
        match io.fill().await {
            Ok(n) if n > 0 => {}
            // Closed or reset before a byte of the answer: the request may be replayed.
            Ok(_) | Err(_) if !answered => return Err(Failure::Closed),
            Ok(_) => return Err(Failure::Broken("closed inside the response head")),
            Err(_) => return Err(Failure::Broken("reading the response head failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pooled connection's buffers hold the last exchange (the bearer token among it): its
    /// `Debug`, and the pool's, show none of it.
    #[tokio::test]
    async fn debug_shows_no_byte_of_the_last_exchange() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stream = TcpStream::connect(addr).await.expect("connect");
        let _peer = listener.accept().await.expect("accept");
        let origin: Uri = format!("http://{addr}/").parse().expect("uri");
        let pool = Arc::new(DirectPool::new(&origin, Duration::from_secs(1)).expect("http"));
        let conn = DirectConn {
            io: Io {
                stream,
                read: BytesMut::from(&b"HTTP/1.1 200 OK\r\nx-echo: token-in-read"[..]),
                write: b"GET / HTTP/1.1\r\nauthorization: Bearer token-in-write\r\n\r\n".to_vec(),
            },
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(60))),
        };
        let shown = format!("{conn:?}");
        assert!(!shown.contains("token-in"), "{shown}");
        pool.put(conn);
        assert_eq!(pool.idle.lock().entries.len(), 1, "pooled");
        let shown = format!("{pool:?}");
        assert!(!shown.contains("token-in"), "{shown}");
        assert!(shown.contains(&addr.to_string()), "{shown}");
    }
}
