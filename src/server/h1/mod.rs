//! The direct HTTP/1.1 server (`server.http1 = "direct"`): a connection's requests without a
//! body or with a `Content-Length` body that came with the head, read and answered here, in
//! fewer instructions than hyper's server spends on them (BENCHMARKS.md, "the direct
//! server"). The first request it does not take ([`parse`]: a chunked body, a body still on
//! its way, an upgrade, `HEAD`, HTTP/1.0, the HTTP/2 preface, anything malformed, a head and
//! body that do not fit in its 8 KiB buffer...) hands the
//! connection to hyper with the bytes already read ([`Prefixed`]), and hyper serves the rest
//! of it, that request included: every error answer, body and protocol switch stays hyper's.
//!
//! What it keeps of hyper's behaviour: the request it builds ([`parse`]), the head it writes
//! ([`encode`]), the body's framing (bytes past a `Content-Length` are not sent, a body that
//! ends short or fails ends the connection, trailers are not sent: no request it takes asked
//! for them), a client that goes away while its request is in flight drops the request, and a
//! graceful close finishes the request in flight, then closes.

pub mod date;
#[cfg(any(test, feature = "fuzzing"))]
pub mod differential;
pub mod encode;
pub mod parse;
mod prefixed;

use crate::body::Body;
use crate::server::conn::Tracked;
use crate::server::RequestBody;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use encode::{Announced, Encoded, Framing};
use http::{HeaderMap, Request, Response};
use http_body::Body as _;
pub use prefixed::Prefixed;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// The read buffer (hyper's first read is as large). A head that does not fit is hyper's:
/// past a few KiB of field values, checking them again (`HeaderValue::from_maybe_shared`,
/// which hyper skips with an `unsafe` constructor this crate forbids) and copying the head
/// cost more than hyper's machinery (BENCHMARKS.md, "The direct server").
const BUFFER: usize = 8 * 1024;
/// Response bytes gathered before a write (the head and small bodies go in one).
const WRITE_AT: usize = 16 * 1024;

/// How a connection left the direct server.
#[derive(Debug)]
pub enum Ended<I> {
    /// Closed: by the client, after a last response, on a graceful close, or on an error.
    Closed,
    /// hyper's from here on: the connection, and what was read of it.
    Hand(Prefixed<I>),
}

/// One connection's state between its requests.
struct Conn<I> {
    io: I,
    /// Read bytes not consumed yet. A request's head and body are split off its front, not
    /// copied ([`parse`]); its spare capacity is the room to read into.
    buf: BytesMut,
    out: Vec<u8>,
    /// The last response's (emptied) field map, filled by the next request (as hyper does).
    fields: HeaderMap,
}

/// Serves `io` until it closes or is hyper's. `closing` is a graceful close: no new request
/// is read, and the one in flight is the last. `respond` starts a request's handling.
pub async fn serve<I, R, F>(io: I, closing: &AtomicBool, respond: &R) -> Ended<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
    R: Fn(Request<RequestBody>) -> Pin<Box<F>>,
    F: Future<Output = Response<Tracked<Body>>> + ?Sized,
{
    let mut conn = Conn {
        io,
        buf: BytesMut::new(),
        out: Vec::new(),
        fields: HeaderMap::new(),
    };
    loop {
        let (head, body) = match conn.next_head(closing).await {
            Next::Head(head, body) => (head, body),
            Next::Closed => return Ended::Closed,
            Next::Hand => {
                return Ended::Hand(Prefixed::new(conn.buf.split().freeze(), conn.io));
            }
        };
        let body = if body.is_empty() {
            RequestBody::Empty
        } else {
            RequestBody::Full(body)
        };
        let mut pending = respond(head.into_request(body));
        let Some(response) = conn.await_response(pending.as_mut()).await else {
            return Ended::Closed;
        };
        drop(pending);
        let keep_alive = !closing.load(Ordering::Acquire);
        match conn.send(response, keep_alive).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                let _ = conn.io.shutdown().await;
                return Ended::Closed;
            }
        }
    }
}

// Returned once per request: boxing the head would allocate for every request.
#[allow(clippy::large_enum_variant)]
enum Next {
    Head(parse::Head, Bytes),
    Closed,
    Hand,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Conn<I> {
    /// Reads until the buffer holds a head (or shows it is hyper's to read).
    async fn next_head(&mut self, closing: &AtomicBool) -> Next {
        loop {
            // Closing: no new request, not even one already read (hyper reads none either).
            if closing.load(Ordering::Acquire) {
                return Next::Closed;
            }
            if !self.buf.is_empty() {
                match parse::parse(&mut self.buf, &mut self.fields) {
                    parse::Parsed::Request { head, body } => return Next::Head(head, body),
                    parse::Parsed::Hand => return Next::Hand,
                    parse::Parsed::Partial => {}
                }
            }
            if !self.make_room() {
                return Next::Hand;
            }
            // Polled again after a graceful close is asked: it ends the wait.
            let read = poll_fn(|cx| {
                if closing.load(Ordering::Acquire) {
                    return Poll::Ready(Ok(0));
                }
                self.poll_fill(cx)
            })
            .await;
            match read {
                Ok(0) | Err(_) => return Next::Closed,
                Ok(_) => {}
            }
        }
    }

    /// Room to read into, the unread bytes at most [`BUFFER`] in all. `false`: they fill it.
    /// The buffer is reclaimed (the unread bytes moved to its front) when no request holds a
    /// part of it, as is usual by then; otherwise (a value kept past its request) the unread
    /// bytes move to a new one, and the old one lives as long as what holds it. Never more
    /// than [`BUFFER`] is allocated here.
    fn make_room(&mut self) -> bool {
        let unread = self.buf.len();
        if unread >= BUFFER {
            return false;
        }
        let wanted = BUFFER - unread;
        if self.buf.capacity() - unread < wanted.min(BUFFER / 2) && !self.buf.try_reclaim(wanted) {
            let mut fresh = BytesMut::with_capacity(BUFFER);
            fresh.extend_from_slice(&self.buf);
            self.buf = fresh;
        }
        true
    }

    /// Reads at most up to [`BUFFER`] unread bytes (called with fewer: [`Conn::make_room`]).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let room = BUFFER.saturating_sub(self.buf.len());
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut (&mut self.buf).limit(room))
    }

    /// The handler's response; `None` if the client went away first (as hyper, which reads
    /// while a request is in flight when nothing is buffered, and drops it on end of stream).
    async fn await_response<F>(
        &mut self,
        mut pending: Pin<&mut F>,
    ) -> Option<Response<Tracked<Body>>>
    where
        F: Future<Output = Response<Tracked<Body>>> + ?Sized,
    {
        let mut watching = true;
        poll_fn(|cx| {
            if let Poll::Ready(response) = pending.as_mut().poll(cx) {
                return Poll::Ready(Some(response));
            }
            // Into what is left of the buffer: the request in flight holds a part of it, so
            // making room now would allocate another.
            if watching && self.buf.is_empty() {
                match self.poll_fill(cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(None),
                    // The next request, pipelined: kept for after this one.
                    Poll::Ready(Ok(_)) => watching = false,
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Writes the response. `Ok(true)`: the connection may carry another request.
    async fn send(
        &mut self,
        response: Response<Tracked<Body>>,
        keep_alive: bool,
    ) -> io::Result<bool> {
        let (mut parts, mut body) = response.into_parts();
        let announced = if body.is_end_stream() {
            Announced::Nothing
        } else {
            body.size_hint()
                .exact()
                .map_or(Announced::Unknown, Announced::Known)
        };
        self.out.clear();
        let encoded = encode::encode(&mut parts, announced, keep_alive, &mut self.out);
        // Moved out, not taken: taking would leave an empty map in `parts` to drop.
        crate::proxy::maps::replace(&mut self.fields, parts.headers);
        let Ok(Encoded { framing, last }) = encoded else {
            return Ok(false);
        };
        let complete = match framing {
            // hyper does not poll such a body: it is dropped, its request done.
            Framing::Length(0) => {
                drop(body);
                true
            }
            framing => self.body(&mut body, framing).await?,
        };
        if !complete {
            // What is gathered is not sent (hyper drops it too): the connection just ends.
            return Ok(false);
        }
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.out.clear();
        }
        self.io.flush().await?;
        if self.out.capacity() > 4 * WRITE_AT {
            self.out = Vec::new();
        }
        Ok(!last && framing != Framing::UntilClose)
    }

    /// Streams the body under `framing`. `Ok(false)`: it failed or ended short (the
    /// connection then ends, as hyper ends it).
    async fn body(&mut self, body: &mut Tracked<Body>, framing: Framing) -> io::Result<bool> {
        let mut owed = match framing {
            Framing::Length(len) => len,
            _ => u64::MAX,
        };
        loop {
            let frame = poll_fn(|cx| match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending if !self.out.is_empty() => Poll::Ready(Step::Write),
                Poll::Pending => Poll::Pending,
                Poll::Ready(frame) => Poll::Ready(Step::Frame(frame)),
            })
            .await;
            let data = match frame {
                Step::Write => {
                    self.io.write_all(&self.out).await?;
                    self.io.flush().await?;
                    self.out.clear();
                    continue;
                }
                Step::Frame(None) => {
                    return Ok(match framing {
                        Framing::Chunked => {
                            self.out.extend_from_slice(b"0\r\n\r\n");
                            true
                        }
                        Framing::Length(_) => owed == 0,
                        Framing::UntilClose => true,
                    })
                }
                Step::Frame(Some(Err(_))) => return Ok(false),
                Step::Frame(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    // Trailers: not sent (hyper sends them only to a request that asked).
                    Err(_) => continue,
                },
            };
            if data.is_empty() {
                continue;
            }
            match framing {
                Framing::Chunked => {
                    chunk_size(&mut self.out, data.len());
                    self.out.extend_from_slice(&data);
                    self.out.extend_from_slice(b"\r\n");
                }
                Framing::Length(_) => {
                    let take =
                        usize::try_from(owed).map_or(data.len(), |owed| owed.min(data.len()));
                    self.out.extend_from_slice(&data.chunk()[..take]);
                    owed -= take as u64;
                }
                Framing::UntilClose => self.out.extend_from_slice(&data),
            }
            if framing != Framing::UntilClose && owed == 0 {
                return Ok(true);
            }
            if self.out.len() >= WRITE_AT {
                self.io.write_all(&self.out).await?;
                self.out.clear();
            }
        }
    }
}

/// A chunk's size line, in upper-case hex as hyper writes it.
fn chunk_size(out: &mut Vec<u8>, len: usize) {
    use std::io::Write as _;
    // Writing to a `Vec` cannot fail.
    let _ = write!(out, "{len:X}\r\n");
}

enum Step {
    /// The body has nothing yet: write what is gathered first.
    Write,
    Frame(Option<Result<http_body::Frame<Bytes>, crate::body::BoxError>>),
}

#[cfg(test)]
mod tests;
