//! A minimal hand-written HTTP/1.1 server loop for the bare proxy (`BARE_HYPER_SERVER=own`), to
//! size the next lever of issue 19 the way `own_client.rs` sized the upstream client before
//! the direct client was built: what hyper's server costs over the simplest loop that does the
//! same exchange. Each connection's task reads a request head into its buffer, parses it with
//! `httparse` (hyper's parser) into an `http::Request` whose target and values are slices of
//! that buffer (as hyper's are), awaits the handler, and writes the response head and body from
//! one buffer with one `write`. It understands only what the benchmark sends: no request body,
//! no `Expect`, no upgrade, no pipelining limits, no timeouts, no `Date`, no error answers (a
//! request it does not take closes the connection). A measurement of the floor, never for
//! production: smuggling-safe request framing is hyper's job in the product.

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version};
use std::future::Future;
use std::io::{Error, ErrorKind};
use std::mem::MaybeUninit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// hyper's default limit on a request's header fields.
const MAX_FIELDS: usize = 100;

fn refused(what: &'static str) -> Error {
    Error::new(ErrorKind::InvalidData, what)
}

/// Serves `stream` until the client closes it: each request to `handle`, its answer written.
pub async fn serve<F, Fut>(mut stream: TcpStream, mut handle: F) -> Result<(), Error>
where
    F: FnMut(Request<()>) -> Fut,
    Fut: Future<Output = Result<(StatusCode, HeaderMap, Bytes), Error>>,
{
    let mut read = BytesMut::with_capacity(8 * 1024);
    let mut write = Vec::with_capacity(8 * 1024);
    loop {
        let request = loop {
            if let Some(request) = parse_request(&mut read)? {
                break request;
            }
            read.reserve(4096);
            if stream.read_buf(&mut read).await? == 0 {
                return Ok(());
            }
        };
        let (status, headers, body) = handle(request).await?;
        write_response(&mut write, status, &headers, &body);
        stream.write_all(&write).await?;
    }
}

/// A complete request head taken off the front of `buf`, or `None` for more bytes.
fn parse_request(buf: &mut BytesMut) -> Result<Option<Request<()>>, Error> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut parsed = httparse::Request::new(&mut []);
    let config = httparse::ParserConfig::default();
    let len = match config.parse_request_with_uninit_headers(&mut parsed, buf, &mut fields) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(refused("malformed request head")),
    };
    let method = Method::from_bytes(parsed.method.unwrap_or_default().as_bytes())
        .map_err(|_| refused("method"))?;
    let target_at = offset(buf, parsed.path.unwrap_or_default().as_bytes());
    let target_len = parsed.path.unwrap_or_default().len();
    let mut spans = Vec::with_capacity(parsed.headers.len());
    for field in parsed.headers.iter() {
        spans.push((
            HeaderName::from_bytes(field.name.as_bytes()).map_err(|_| refused("name"))?,
            offset(buf, field.value),
            field.value.len(),
        ));
    }
    let head = buf.split_to(len).freeze();
    let uri = Uri::from_maybe_shared(head.slice(target_at..target_at + target_len))
        .map_err(|_| refused("target"))?;
    let mut headers = HeaderMap::with_capacity(spans.len());
    for (name, at, len) in spans {
        if name == TRANSFER_ENCODING
            || (name == CONTENT_LENGTH && head.slice(at..at + len).as_ref() != b"0")
        {
            return Err(refused("a request body: not handled here"));
        }
        // Checked again (hyper trusts httparse's check here): a few instructions more than hyper.
        let value = HeaderValue::from_maybe_shared(head.slice(at..at + len))
            .map_err(|_| refused("value"))?;
        headers.append(name, value);
    }
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    Ok(Some(request))
}

/// Where `part` (a slice of `buf`) starts in `buf`.
fn offset(buf: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - buf.as_ptr() as usize
}

/// The response head and body into `out`, for one `write`.
fn write_response(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap, body: &Bytes) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}
