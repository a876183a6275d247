//! Writing a response head, byte for byte as hyper's server writes it (`role::Server::encode`
//! with lower-case names) for the requests the direct server takes: HTTP/1.1, never `HEAD` or
//! `CONNECT`. `encode_tests.rs` compares the two on the same responses.
//!
//! hyper's rules, kept: the status line (`ReasonPhrase` honoured, `<none>` for an unknown
//! code); fields in the map's order, each value on its own line but `Connection`,
//! `Transfer-Encoding` and `Trailer`, whose values share one; the framing from the body's own
//! hints and the `Content-Length` / `Transfer-Encoding` fields (a length field the body does
//! not need is dropped, a missing one added, `chunked` appended when it is not the last
//! coding); no body for 1xx, 204 and 304; a `Date` added when the response has none; and a
//! response refused (nothing written, the connection closed) where hyper refuses it.

use super::date;
use super::parse::names_close;
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRAILER, TRANSFER_ENCODING};
use http::{HeaderName, HeaderValue, StatusCode, Version};

/// What the body's own hints announce (hyper's `Option<BodyLength>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// `is_end_stream()`: nothing to send.
    Nothing,
    /// An exact `size_hint`.
    Known(u64),
    Unknown,
}

/// How the body follows the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (more are not sent; fewer end the connection).
    Length(u64),
    Chunked,
    /// Until the connection closes (an HTTP/1.0 response of unknown length).
    UntilClose,
}

/// The head written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    pub framing: Framing,
    /// The connection closes after this response.
    pub last: bool,
}

/// hyper refuses to send this head (contradicting length fields, an unknown version): nothing
/// is written and the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

/// Appends the head of `parts` to `out`, leaving `parts.headers` empty (for the next request,
/// as hyper keeps it). `keep_alive`: the request allows another after this one.
pub fn encode(
    parts: &mut http::response::Parts,
    body: Announced,
    keep_alive: bool,
    out: &mut Vec<u8>,
) -> Result<Encoded, Refused> {
    let status = parts.status;
    if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
        // hyper sends its default head instead, a 500, and ends the connection.
        parts.headers.clear();
        out.extend_from_slice(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n");
        end_head(out, false);
        return Ok(Encoded {
            framing: Framing::Length(0),
            last: true,
        });
    }
    let last = !keep_alive || status == StatusCode::SWITCHING_PROTOCOLS;
    let start = out.len();
    status_line(parts, out)?;
    fields(parts, body, last, out).inspect_err(|_| out.truncate(start))
}

fn status_line(parts: &http::response::Parts, out: &mut Vec<u8>) -> Result<(), Refused> {
    let reason = parts.extensions.get::<hyper::ext::ReasonPhrase>();
    if parts.version == Version::HTTP_11 && parts.status == StatusCode::OK && reason.is_none() {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return Ok(());
    }
    out.extend_from_slice(match parts.version {
        Version::HTTP_10 => b"HTTP/1.0 ",
        Version::HTTP_11 | Version::HTTP_2 => b"HTTP/1.1 ",
        _ => return Err(Refused),
    });
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    match reason {
        Some(reason) => out.extend_from_slice(reason.as_bytes()),
        None => out.extend_from_slice(
            parts
                .status
                .canonical_reason()
                .unwrap_or("<none>")
                .as_bytes(),
        ),
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// The fields, the framing, `Date` and the blank line (hyper's `encode_headers`).
fn fields(
    parts: &mut http::response::Parts,
    body: Announced,
    mut last: bool,
    out: &mut Vec<u8>,
) -> Result<Encoded, Refused> {
    let status = parts.status;
    let bodiless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let can_chunk = parts.version != Version::HTTP_10 && !bodiless;
    let mut framing = Framing::Length(0);
    let mut wrote_len = false;
    let mut wrote_date = false;
    // A field whose values share one line is open until the next name.
    let mut open = false;
    let mut must_chunk = false;
    let mut previous_len = None;
    let mut current: Option<HeaderName> = None;
    for (name, value) in parts.headers.drain() {
        if let Some(name) = name {
            if open {
                close_line(out, must_chunk);
            }
            open = false;
            current = Some(name);
        }
        let name = current.as_ref().expect("drain starts with a name");
        if *name == CONTENT_LENGTH {
            if wrote_len && !open {
                return Err(Refused);
            }
            let len = match body {
                Announced::Nothing => continue,
                Announced::Known(known) => known,
                Announced::Unknown => {
                    let len = digits(value.as_bytes()).ok_or(Refused)?;
                    match previous_len {
                        Some(previous) if previous != len => return Err(Refused),
                        Some(_) => continue,
                        None => previous_len = Some(len),
                    }
                    len
                }
            };
            if !open {
                framing = Framing::Length(len);
                open_line(out, b"content-length: ", &value);
                wrote_len = true;
                open = true;
            }
        } else if *name == TRANSFER_ENCODING {
            if wrote_len && !open {
                return Err(Refused);
            }
            if !can_chunk {
                continue;
            }
            wrote_len = true;
            must_chunk = !last_coding_is_chunked(&value);
            if open {
                more(out, &value);
            } else {
                framing = Framing::Chunked;
                open_line(out, b"transfer-encoding: ", &value);
                open = true;
            }
        } else if *name == CONNECTION {
            if !last && names_close(&value) {
                last = true;
            }
            if open {
                more(out, &value);
            } else {
                open_line(out, b"connection: ", &value);
                open = true;
            }
        } else if *name == TRAILER {
            if !can_chunk {
                continue;
            }
            if open {
                more(out, &value);
            } else {
                open_line(out, b"trailer: ", &value);
                open = true;
            }
        } else {
            wrote_date |= *name == DATE;
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    if open {
        close_line(out, must_chunk);
    }
    if !wrote_len {
        framing = match body {
            Announced::Unknown if !can_chunk => Framing::UntilClose,
            Announced::Unknown => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                Framing::Chunked
            }
            Announced::Nothing | Announced::Known(0) => {
                if !bodiless {
                    out.extend_from_slice(b"content-length: 0\r\n");
                }
                Framing::Length(0)
            }
            Announced::Known(_) if bodiless => Framing::Length(0),
            Announced::Known(len) => {
                out.extend_from_slice(b"content-length: ");
                out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
                out.extend_from_slice(b"\r\n");
                Framing::Length(len)
            }
        };
    }
    if bodiless {
        framing = Framing::Length(0);
    }
    end_head(out, wrote_date);
    Ok(Encoded { framing, last })
}

fn open_line(out: &mut Vec<u8>, name: &[u8], value: &HeaderValue) {
    out.extend_from_slice(name);
    out.extend_from_slice(value.as_bytes());
}

fn more(out: &mut Vec<u8>, value: &HeaderValue) {
    out.extend_from_slice(b", ");
    out.extend_from_slice(value.as_bytes());
}

fn close_line(out: &mut Vec<u8>, must_chunk: bool) {
    out.extend_from_slice(if must_chunk {
        b", chunked\r\n"
    } else {
        b"\r\n"
    });
}

/// `Date` unless the response has one, then the blank line.
fn end_head(out: &mut Vec<u8>, wrote_date: bool) {
    if !wrote_date {
        out.extend_from_slice(b"date: ");
        date::extend(out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// hyper's `content_length_parse`: ASCII digits only, no sign, no overflow.
fn digits(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| match b {
        b'0'..=b'9' => n.checked_mul(10)?.checked_add(u64::from(b - b'0')),
        _ => None,
    })
}

/// hyper's `is_chunked_`: the last coding of the value is `chunked`.
fn last_coding_is_chunked(value: &HeaderValue) -> bool {
    value.to_str().is_ok_and(|text| {
        text.rsplit(',')
            .next()
            .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"))
    })
}
