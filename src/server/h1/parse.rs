//! Reading a request head, as hyper's server reads it, for the requests the direct server
//! takes: everything else is handed to hyper untouched, and hyper decides (and answers errors).
//!
//! Taken: a complete HTTP/1.1 head that `httparse` accepts with hyper's settings (the default
//! `ParserConfig`, at most 100 fields), a method other than `HEAD` and `CONNECT`, a target
//! `http::Uri` accepts of at most hyper's 65,534 bytes, none of the fields that give a request
//! a chunked body, an expectation, an upgrade, trailers or a close (`Transfer-Encoding`,
//! `Expect`, `Upgrade`, `TE`, or a `Connection` naming `close`), and at most one
//! `Content-Length`, 1 to 19 digits ([`length_digits`], the direct client's rule for its
//! upstream's answers), whose body is already in the buffer behind the head. A body
//! still on its way is hyper's to read, with its timing (`server.body_read_timeout`, the 408),
//! and so is any other length field (two of them, a sign, a list, a space): hyper decides
//! what it accepts. The request is then the one hyper would build: the same method, target and
//! fields in the same order, no extensions, and the body's bytes. Head and body are split off
//! the front of the connection's read buffer, not copied, as hyper's server takes them: the
//! request's values are parts of the buffer's allocation while it is in flight.

use crate::proxy::headers::length_digits;
use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, EXPECT, TE, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use std::mem::MaybeUninit;
use std::ops::Range;

/// hyper's limit on fields per head (`DEFAULT_MAX_HEADERS`).
const MAX_FIELDS: usize = 100;
/// hyper's limit on a request target (`MAX_URI_LEN`): longer ones get its 414.
const MAX_TARGET: usize = (u16::MAX - 1) as usize;

/// What the buffered bytes hold.
#[derive(Debug)]
// Returned once per request: boxing the head would allocate for every request.
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// A head the direct server takes and its body (empty when there is none), both split
    /// off the buffer.
    Request { head: Head, body: Bytes },
    /// Not a whole head yet.
    Partial,
    /// hyper's to read: anything but a head the direct server takes.
    Hand,
}

/// A request head, as hyper's server would build it.
#[derive(Debug)]
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
}

impl Head {
    pub fn into_request<B>(self, body: B) -> http::Request<B> {
        let mut request = http::Request::new(body);
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.version_mut() = Version::HTTP_11;
        crate::proxy::maps::replace(request.headers_mut(), self.headers);
        request
    }
}

/// Reads the head at the start of `buf` and takes it, with its body, off the buffer; the
/// buffer is left as it was unless a request is returned. `fields` is an empty map (the
/// connection's last response's, as hyper keeps it): a request takes it.
pub fn parse(buf: &mut BytesMut, fields: &mut HeaderMap) -> Parsed {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut request = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut request,
        &buf[..],
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Hand,
    };
    let (Some(method), Some(target), Some(1)) = (request.method, request.path, request.version)
    else {
        return Parsed::Hand;
    };
    if target.len() > MAX_TARGET {
        return Parsed::Hand;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Parsed::Hand;
    };
    if method == Method::HEAD || method == Method::CONNECT {
        return Parsed::Hand;
    }
    let start = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let from = s.as_ptr() as usize - start;
        from..from + s.len()
    };
    let target = range(target.as_bytes());
    let mut ranges = smallvec::SmallVec::<[(Range<usize>, Range<usize>); 24]>::new();
    let mut length = None;
    for field in request.headers.iter() {
        // hyper's `record_header_indices`: a name of 64 KiB or more is its 431.
        if field.name.len() >= 1 << 16 {
            return Parsed::Hand;
        }
        if field.name.eq_ignore_ascii_case("content-length") {
            match (length, length_digits(field.value)) {
                (None, Some(declared)) => length = Some(declared),
                _ => return Parsed::Hand,
            }
        }
        ranges.push((range(field.name.as_bytes()), range(field.value)));
    }
    // The whole body is buffered, or it is hyper's (which times a body as it arrives).
    let total = match length {
        None => len,
        Some(declared) => match usize::try_from(declared) {
            Ok(declared) if declared <= buf.len() - len => len + declared,
            _ => return Parsed::Hand,
        },
    };
    let bytes = buf.split_to(total).freeze();
    match build(&bytes, method, target, &ranges, std::mem::take(fields)) {
        Some(head) => Parsed::Request {
            head,
            body: bytes.slice(len..),
        },
        None => {
            // hyper's to read after all: the bytes go back in front of the rest (once per
            // connection: hyper serves it from here on).
            let mut whole = BytesMut::with_capacity(total + buf.len());
            whole.extend_from_slice(&bytes);
            whole.extend_from_slice(buf);
            *buf = whole;
            Parsed::Hand
        }
    }
}

fn build(
    bytes: &Bytes,
    method: Method,
    target: Range<usize>,
    fields: &[(Range<usize>, Range<usize>)],
    mut headers: HeaderMap,
) -> Option<Head> {
    let uri = Uri::from_maybe_shared(bytes.slice(target)).ok()?;
    headers.reserve(fields.len());
    for (name, value) in fields {
        let name = HeaderName::from_bytes(&bytes[name.clone()]).ok()?;
        if name == TRANSFER_ENCODING || name == EXPECT || name == UPGRADE || name == TE {
            return None;
        }
        let value = HeaderValue::from_maybe_shared(bytes.slice(value.clone())).ok()?;
        if name == CONNECTION && names_close(&value) {
            return None;
        }
        headers.append(name, value);
    }
    Some(Head {
        method,
        uri,
        headers,
    })
}

/// hyper's `connection_close`: a `close` token among the value's.
pub fn names_close(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|text| {
        text.split(',')
            .any(|token| token.trim().eq_ignore_ascii_case("close"))
    })
}
