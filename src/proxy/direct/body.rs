//! The direct client's response body: read from the upstream connection as the client takes
//! it, de-framed (`Content-Length`, chunked, or to the close), and the connection given back to
//! the pool once the body has been read to its exact end with nothing after it.
//!
//! Chunked framing is read strictly (RFC 9112 §7.1): a size line of 1 to 16 hex digits, then
//! optional extensions (ignored) without control characters, ended by CRLF; CRLF after each
//! chunk's data; the trailer section is read to its empty line and dropped (bounded). Anything
//! else ends the body with an error and closes the connection.

use super::{DirectConn, DirectPool};
use crate::body::BoxError;
use bytes::{Buf, Bytes};
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Longest chunk-size line (the size and its extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Largest trailer section.
const MAX_TRAILERS: usize = 16 * 1024;

use super::head::Framing;

/// What `poll_frame` answers.
type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// Why a response body ended early.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("upstream response body: {0}")]
pub struct BodyError(&'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Done,
    Length(u64),
    /// Until the connection closes.
    Close,
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
}

/// A response body on a direct connection; the connection goes back to the pool when the body
/// ends cleanly, and is closed when the body is dropped before its end or breaks.
pub struct DirectBody {
    conn: Option<DirectConn>,
    pool: Arc<DirectPool>,
    state: State,
    reusable: bool,
}

impl std::fmt::Debug for DirectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectBody")
            .field("state", &self.state)
            .field("reusable", &self.reusable)
            .finish_non_exhaustive()
    }
}

impl DirectBody {
    pub(super) fn new(
        conn: DirectConn,
        pool: Arc<DirectPool>,
        framing: Framing,
        reusable: bool,
    ) -> DirectBody {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        let mut body = DirectBody {
            conn: Some(conn),
            pool,
            state,
            reusable,
        };
        if state == State::Done {
            body.finish();
        }
        body
    }

    /// The body ended cleanly: the connection goes back if it may carry another exchange and
    /// the upstream sent nothing past this body.
    fn finish(&mut self) {
        self.state = State::Done;
        if let Some(conn) = self.conn.take() {
            if self.reusable && conn.io.read.is_empty() {
                self.pool.put(conn);
            }
        }
    }

    fn fail(&mut self, why: &'static str) -> Polled {
        self.state = State::Done;
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(BodyError(why)))))
    }

    /// The next step on bytes already read: a frame, the end, or `None` when more bytes are
    /// needed.
    fn step(&mut self) -> Option<Polled> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Some(Poll::Ready(None));
            };
            let read = &mut conn.io.read;
            match self.state {
                State::Done => return Some(Poll::Ready(None)),
                State::Length(remaining) | State::ChunkData(remaining) => {
                    if read.is_empty() {
                        return None;
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(read.len());
                    let data = read.split_to(n).freeze();
                    let left = remaining - n as u64;
                    match (self.state, left) {
                        (State::Length(_), 0) => self.finish(),
                        (State::Length(_), _) => self.state = State::Length(left),
                        (_, 0) => self.state = State::ChunkEnd,
                        _ => self.state = State::ChunkData(left),
                    }
                    return Some(Poll::Ready(Some(Ok(Frame::data(data)))));
                }
                State::Close => {
                    if read.is_empty() {
                        return None;
                    }
                    let data = read.split().freeze();
                    return Some(Poll::Ready(Some(Ok(Frame::data(data)))));
                }
                State::ChunkSize => match chunk_size_line(read) {
                    Ok(Some((line, 0))) => {
                        read.advance(line);
                        self.state = State::Trailers;
                    }
                    Ok(Some((line, size))) => {
                        read.advance(line);
                        self.state = State::ChunkData(size);
                    }
                    Ok(None) if read.len() > MAX_CHUNK_LINE => {
                        return Some(self.fail("chunk-size line too long"))
                    }
                    Ok(None) => return None,
                    Err(()) => return Some(self.fail("malformed chunk-size line")),
                },
                State::ChunkEnd => {
                    if read.len() < 2 {
                        return None;
                    }
                    if &read[..2] != b"\r\n" {
                        return Some(self.fail("chunk data not followed by CRLF"));
                    }
                    read.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let end = if read.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        memchr::memmem::find(read, b"\r\n\r\n").map(|at| at + 4)
                    };
                    match end {
                        Some(end) => {
                            read.advance(end);
                            self.finish();
                            return Some(Poll::Ready(None));
                        }
                        None if read.len() > MAX_TRAILERS => {
                            return Some(self.fail("trailer section too large"))
                        }
                        None => return None,
                    }
                }
            }
        }
    }
}

impl hyper::body::Body for DirectBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let this = self.get_mut();
        loop {
            if let Some(polled) = this.step() {
                return polled;
            }
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match conn.io.poll_fill(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if this.state == State::Close => {
                    this.reusable = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => return this.fail("the upstream closed before its end"),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(_)) => return this.fail("reading it failed"),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Done => SizeHint::with_exact(0),
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}

/// A chunk-size line at the start of `buf`: its length (CRLF included) and the size; `None`
/// while it is incomplete.
fn chunk_size_line(buf: &[u8]) -> Result<Option<(usize, u64)>, ()> {
    let Some(lf) = memchr::memchr(b'\n', buf) else {
        return Ok(None);
    };
    let line = match buf[..lf].strip_suffix(b"\r") {
        Some(line) => line,
        None => return Err(()),
    };
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(());
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    if !(rest.is_empty() || ext.starts_with(b";")) {
        return Err(());
    }
    if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(());
    }
    let size = line[..digits].iter().fold(0u64, |n, &d| {
        let v = (d as char).to_digit(16).unwrap_or(0);
        (n << 4) | u64::from(v)
    });
    Ok(Some((lf + 1, size)))
}

#[cfg(test)]
mod tests {
    use super::chunk_size_line;

    #[test]
    fn chunk_size_lines_are_read_strictly() {
        assert_eq!(chunk_size_line(b"1a\r\nrest"), Ok(Some((4, 0x1a))));
        assert_eq!(chunk_size_line(b"0\r\n"), Ok(Some((3, 0))));
        assert_eq!(chunk_size_line(b"A ; name=\"v\"\r\n"), Ok(Some((14, 0xa))));
        assert_eq!(
            chunk_size_line(b"ffffffffffffffff\r\n"),
            Ok(Some((18, u64::MAX)))
        );
        assert_eq!(chunk_size_line(b"1a"), Ok(None), "incomplete");
        for bad in [
            &b"1a\n"[..],
            b"\r\n",
            b"x\r\n",
            b"-1\r\n",
            b"1 2\r\n",
            b"10000000000000000\r\n",
            b"1;a\rb\r\n",
            b"1;\x00\r\n",
            b"0x1\r\n",
        ] {
            assert_eq!(
                chunk_size_line(bad),
                Err(()),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
