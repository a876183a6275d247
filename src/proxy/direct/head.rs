//! The direct client's message heads: the request head written from a checked `Request`, and
//! the response head parsed (`httparse`, hyper's parser) and framed by RFC 9112 §6.3.
//!
//! Framing is decided once, here, on the values the body reader will act on, and every case a
//! peer could make ambiguous is refused (502) or ends the connection after the response:
//! `Transfer-Encoding` with `Content-Length` (chunked wins, `Content-Length` is dropped, the
//! connection is not reused), `Content-Length` fields that disagree or do not parse (refused),
//! `Transfer-Encoding` on an HTTP/1.0 response (refused), a transfer coding that does not end in
//! `chunked` (read to the close), obsolete line folding (refused by the parser).

use crate::proxy::forwarded::Forwarded;
use crate::proxy::headers::{length_digits, names_no_header};
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Version};
use smallvec::SmallVec;
use std::mem::MaybeUninit;

/// Most header fields in a response head (hyper's default too).
const MAX_FIELDS: usize = 100;

/// How a response's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: `HEAD`, 1xx, 204, 304, or `Content-Length: 0`.
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request after this response's body.
    pub reusable: bool,
}

/// Why a response head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("malformed response head")]
    Malformed,
    #[error("ambiguous response framing")]
    Framing,
}

/// Writes the request line and header fields into `out` (cleared first). The values come from a
/// `Request` the `http` crate has checked: no CR, LF or NUL anywhere, so no field can end early.
/// `Transfer-Encoding` is never written: the direct client sends only requests without a body
/// or with one announced by its `Content-Length` alone (`eligible`).
pub fn write_request_head<B>(
    out: &mut Vec<u8>,
    request: &Request<B>,
    forwarded: Option<&Forwarded>,
) {
    out.clear();
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        if name == TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(forwarded) = forwarded {
        forwarded.write(out);
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses a response head at the start of `buf`: `Ok(None)` while it is incomplete. On success
/// the head's bytes are split off `buf` (the header values are slices of them, not copies).
/// Interim (1xx other than 101) responses are for the caller to skip: their framing is `Empty`.
pub fn parse_response_head(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, HeadError> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Response::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_response_with_uninit_headers(&mut parsed, buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(HeadError::Malformed),
    };
    let code = parsed.code.ok_or(HeadError::Malformed)?;
    let status = StatusCode::from_u16(code).map_err(|_| HeadError::Malformed)?;
    let version = match parsed.version {
        Some(1) => Version::HTTP_11,
        Some(0) => Version::HTTP_10,
        _ => return Err(HeadError::Malformed),
    };
    // Names are parsed now; values are sliced out of the head once it is split off.
    let base = buf.as_ptr() as usize;
    // On the stack for a usual head: no allocation for them.
    let mut names: SmallVec<[(HeaderName, usize, usize); 16]> = SmallVec::new();
    // Whether every `Connection` field is a lone `keep-alive` or `close` (what nearly every
    // upstream says), naming no other field: then they are hop-by-hop and read for the framing
    // only, and left out of the map, where the strip on the way to the browser would only take
    // them out again (~0.5k instructions a response). All or none: a `Connection` that names
    // fields keeps every `Connection` field, in its place, for the strip.
    let mut connection_plain = true;
    for field in parsed.headers.iter() {
        let name =
            super::names::header_name(field.name.as_bytes()).map_err(|_| HeadError::Malformed)?;
        if name == CONNECTION {
            connection_plain &= names_no_header(field.value.trim_ascii());
        }
        let start = field.value.as_ptr() as usize - base;
        names.push((name, start, start + field.value.len()));
    }
    let head: Bytes = buf.split_to(len).freeze();
    // Framing is read off the parsed fields, in their order, without a lookup in the map.
    let values = |wanted: HeaderName| {
        let head = &head;
        names
            .iter()
            .filter(move |(name, ..)| *name == wanted)
            .map(move |&(_, start, end)| &head[start..end])
    };
    let decided = framing(
        status,
        version,
        method,
        values(TRANSFER_ENCODING),
        values(CONTENT_LENGTH),
    )?;
    let reusable = !decided.to_close && keeps_alive(version, values(CONNECTION));
    let mut headers = HeaderMap::with_capacity(names.len());
    // Drained in place: `into_iter` would first move the whole inline array.
    for (name, start, end) in names.drain(..) {
        if decided.drop_length && name == CONTENT_LENGTH {
            continue;
        }
        if connection_plain && name == CONNECTION {
            continue;
        }
        let value = HeaderValue::from_maybe_shared(head.slice(start..end))
            .map_err(|_| HeadError::Malformed)?;
        headers.append(name, value);
    }
    Ok(Some(Head {
        status,
        headers,
        framing: decided.framing,
        reusable,
    }))
}

/// How a response head frames its body.
struct Decided {
    framing: Framing,
    /// The framing forbids reusing the connection.
    to_close: bool,
    /// `Content-Length` came with `Transfer-Encoding`: it must not reach the client.
    drop_length: bool,
}

/// The body's framing (RFC 9112 §6.3) from the `Transfer-Encoding` and `Content-Length` field
/// values, in the order they came.
fn framing<'a>(
    status: StatusCode,
    version: Version,
    method: &Method,
    transfer_encoding: impl Iterator<Item = &'a [u8]>,
    content_length: impl Iterator<Item = &'a [u8]> + Clone,
) -> Result<Decided, HeadError> {
    let decided = |framing, to_close| Decided {
        framing,
        to_close,
        drop_length: false,
    };
    if status == StatusCode::SWITCHING_PROTOCOLS {
        // The direct client never asks for an upgrade: what follows is not HTTP/1.1.
        return Ok(decided(Framing::Empty, true));
    }
    if method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(decided(Framing::Empty, false));
    }
    let mut transfer_encoding = transfer_encoding.peekable();
    if transfer_encoding.peek().is_some() {
        if version == Version::HTTP_10 {
            return Err(HeadError::Framing);
        }
        let codings: Vec<&[u8]> = transfer_encoding
            .flat_map(|v| v.split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .collect();
        // An empty element ("chunked, ") is where readers disagree on the last coding: refused.
        if codings.iter().any(|c| c.is_empty()) {
            return Err(HeadError::Framing);
        }
        let chunked = codings
            .last()
            .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        // With both, chunked wins and `Content-Length` must not reach the client; the
        // connection ends after this response (RFC 9112 §6.1).
        let both = content_length.clone().next().is_some();
        return Ok(if chunked {
            Decided {
                framing: Framing::Chunked,
                to_close: both,
                drop_length: both,
            }
        } else {
            Decided {
                framing: Framing::Close,
                to_close: true,
                drop_length: both,
            }
        });
    }
    let mut length = None;
    for value in content_length {
        for part in value.split(|&b| b == b',') {
            let n = length_digits(part.trim_ascii()).ok_or(HeadError::Framing)?;
            if length.is_some_and(|l| l != n) {
                return Err(HeadError::Framing);
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => decided(Framing::Empty, false),
        Some(n) => decided(Framing::Length(n), false),
        None => decided(Framing::Close, true),
    })
}

/// HTTP/1.1 keeps the connection unless `Connection: close`; HTTP/1.0 only with `keep-alive`.
fn keeps_alive<'a>(version: Version, connection: impl Iterator<Item = &'a [u8]> + Clone) -> bool {
    let has = |token: &[u8]| {
        connection.clone().any(|v| {
            v.split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    if version == Version::HTTP_11 {
        !has(b"close")
    } else {
        has(b"keep-alive")
    }
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;
