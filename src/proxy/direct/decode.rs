//! De-framing a response body from the bytes read so far (no I/O: `body.rs` reads, this
//! decides; the fuzz target `direct_response` drives it against hyper's client).
//!
//! Chunked framing is read strictly (RFC 9112 §7.1): a size line of 1 to 16 hex digits, then
//! optional extensions (ignored) without control characters, ended by CRLF; CRLF after each
//! chunk's data; the trailer section parsed as header fields (`httparse`) to its empty line and
//! dropped. Line and trailer sizes are bounded. Anything else fails the body.

use super::head::Framing;
use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (the size and its extensions).
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Largest trailer section, and most fields in it.
const MAX_TRAILERS: usize = 16 * 1024;
const MAX_TRAILER_FIELDS: usize = 100;

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

/// What the bytes read so far give.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes (taken off the buffer).
    Data(Bytes),
    /// The body ended here; anything left in the buffer comes after it.
    End,
    /// More bytes are needed.
    More,
    /// The framing is broken.
    Fail(&'static str),
}

/// The state of one response body's framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    state: State,
}

impl Decoder {
    pub fn new(framing: Framing) -> Decoder {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::Close,
        };
        Decoder { state }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The exact length left, when the framing says it.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Done => Some(0),
            State::Length(n) => Some(n),
            _ => None,
        }
    }

    /// The connection closed: the end of a close-delimited body, a failure for any other.
    pub fn at_close(&mut self) -> Step {
        match self.state {
            State::Done => Step::End,
            State::Close => {
                self.state = State::Done;
                Step::End
            }
            _ => {
                self.state = State::Done;
                Step::Fail("the upstream closed before its end")
            }
        }
    }

    /// The next step on the bytes in `read`.
    pub fn step(&mut self, read: &mut BytesMut) -> Step {
        loop {
            match self.state {
                State::Done => return Step::End,
                State::Length(remaining) | State::ChunkData(remaining) => {
                    if read.is_empty() {
                        return Step::More;
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(read.len());
                    let data = read.split_to(n).freeze();
                    let left = remaining - n as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), _) => State::Length(left),
                        (_, 0) => State::ChunkEnd,
                        _ => State::ChunkData(left),
                    };
                    return Step::Data(data);
                }
                State::Close => {
                    if read.is_empty() {
                        return Step::More;
                    }
                    return Step::Data(read.split().freeze());
                }
                State::ChunkSize => match chunk_size_line(read) {
                    Ok(Some((line, size))) => {
                        read.advance(line);
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::ChunkData(size)
                        };
                    }
                    Ok(None) if read.len() > MAX_CHUNK_LINE => {
                        return self.fail("chunk-size line too long")
                    }
                    Ok(None) => return Step::More,
                    Err(()) => return self.fail("malformed chunk-size line"),
                },
                State::ChunkEnd => {
                    if read.len() < 2 {
                        return Step::More;
                    }
                    if &read[..2] != b"\r\n" {
                        return self.fail("chunk data not followed by CRLF");
                    }
                    read.advance(2);
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
                    match httparse::parse_headers(read, &mut fields) {
                        // httparse takes a bare LF for a line's end; HTTP/1.1 does not.
                        Ok(httparse::Status::Complete((len, _))) if bare_lf(&read[..len]) => {
                            return self.fail("malformed trailer section")
                        }
                        Ok(httparse::Status::Complete((len, _))) => {
                            read.advance(len);
                            self.state = State::Done;
                            return Step::End;
                        }
                        Ok(httparse::Status::Partial) if read.len() > MAX_TRAILERS => {
                            return self.fail("trailer section too large")
                        }
                        Ok(httparse::Status::Partial) => return Step::More,
                        Err(_) => return self.fail("malformed trailer section"),
                    }
                }
            }
        }
    }

    fn fail(&mut self, why: &'static str) -> Step {
        self.state = State::Done;
        Step::Fail(why)
    }
}

/// A line feed not preceded by a carriage return.
fn bare_lf(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', bytes).any(|i| i == 0 || bytes[i - 1] != b'\r')
}

/// A chunk-size line at the start of `buf`: its length (CRLF included) and the size; `None`
/// while it is incomplete.
fn chunk_size_line(buf: &[u8]) -> Result<Option<(usize, u64)>, ()> {
    let Some(lf) = memchr::memchr(b'\n', buf) else {
        return Ok(None);
    };
    let line = buf[..lf].strip_suffix(b"\r").ok_or(())?;
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 {
        return Err(());
    }
    let rest = &line[digits..];
    // Only SP and HTAB may stand between the size and ";" (BWS); `trim_ascii_start` would
    // also take CR, which hyper (and the RFC) refuse there.
    let spaces = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let ext = &rest[spaces..];
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
    use super::*;

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
            b"0\r\r;a\r\n",
            b"0 \r;a\r\n",
            b"0\x0c;a\r\n",
        ] {
            assert_eq!(
                chunk_size_line(bad),
                Err(()),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    /// Feeds `input` one byte at a time (the worst split) and collects the body.
    fn decode(framing: Framing, input: &[u8]) -> Result<(Vec<u8>, usize), &'static str> {
        let mut decoder = Decoder::new(framing);
        let mut read = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match decoder.step(&mut read) {
                Step::Data(data) => body.extend_from_slice(&data),
                Step::End => return Ok((body, read.len() + input.len() - fed)),
                Step::Fail(why) => return Err(why),
                Step::More if fed < input.len() => {
                    read.extend_from_slice(&input[fed..=fed]);
                    fed += 1;
                }
                Step::More => {
                    return match decoder.at_close() {
                        Step::End => Ok((body, 0)),
                        Step::Fail(why) => Err(why),
                        other => panic!("{other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_reads_and_stop_at_their_end() {
        let input = b"5;x=1\r\nhello\r\n6\r\n world\r\n0\r\nA: b\r\nC: d\r\n\r\nNEXT";
        assert_eq!(
            decode(Framing::Chunked, input),
            Ok((b"hello world".to_vec(), 4)),
            "the bytes after the body are left"
        );
        assert_eq!(decode(Framing::Chunked, b"0\r\n\r\n"), Ok((Vec::new(), 0)));
    }

    #[test]
    fn broken_chunked_bodies_fail() {
        for bad in [
            &b"5\r\nhelloXX0\r\n\r\n"[..],
            b"5\r\nhel",
            b"0\r\nbad trailer\r\n\r\n",
            b"0\r\nA: b\n\r\n",
            b"zz\r\n",
        ] {
            assert!(
                decode(Framing::Chunked, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn lengths_and_closes() {
        assert_eq!(
            decode(Framing::Length(5), b"helloNEXT"),
            Ok((b"hello".to_vec(), 4))
        );
        assert!(decode(Framing::Length(5), b"hel").is_err());
        assert_eq!(
            decode(Framing::Close, b"all of it"),
            Ok((b"all of it".to_vec(), 0))
        );
        assert_eq!(decode(Framing::Empty, b"x"), Ok((Vec::new(), 1)));
    }
}
