//! A minimal hand-written HTTP/1.1 client for the upstream hop of the bare hyper proxy
//! (`BARE_HYPER_CLIENT=own`), to size one lever of issue 19: what the upstream hop costs
//! without hyper's client (its connection task, the channel and wake-ups between the two
//! tasks, its `HeaderMap` building), the way nginx does it, in the request's own task. It
//! understands only what the benchmark's upstream sends: a response head with `Content-Length`,
//! no 1xx, no chunked or close-delimited body, no upgrade. That is exactly where a real client
//! has to be careful (response framing is where proxies get smuggling wrong), so this is a
//! measurement, not a design: never for production.

use bytes::{Bytes, BytesMut};
use http::header::{AUTHORIZATION, CONTENT_LENGTH};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use std::io::{Error, ErrorKind};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most header fields a response head may have here.
const MAX_HEADERS: usize = 32;

/// One kept-alive upstream connection, with its read buffer and the buffer a request head is
/// written from.
pub struct Conn {
    stream: TcpStream,
    read: BytesMut,
    write: Vec<u8>,
}

/// Idle connections, the most recently used on top.
pub type Pool = Arc<Mutex<Vec<Conn>>>;

fn broken(what: &'static str) -> Error {
    Error::new(ErrorKind::InvalidData, what)
}

/// Forwards `request` (its body is not read: the benchmark sends none) with the fixed
/// `Authorization`, and returns the upstream's response with its body read whole.
pub async fn forward(
    request: Request<hyper::body::Incoming>,
    upstream: SocketAddr,
    pool: Pool,
    bearer: HeaderValue,
) -> Result<Response<Full<Bytes>>, Error> {
    let taken = pool.lock().expect("pool").pop();
    let mut conn = match taken {
        Some(conn) => conn,
        None => connect(upstream).await?,
    };
    write_head(&mut conn.write, &request, &bearer);
    conn.stream.write_all(&conn.write).await?;
    let (status, headers, length) = read_head(&mut conn).await?;
    while conn.read.len() < length {
        conn.read.reserve(length - conn.read.len());
        if conn.stream.read_buf(&mut conn.read).await? == 0 {
            return Err(broken("upstream closed in the body"));
        }
    }
    let body = conn.read.split_to(length).freeze();
    pool.lock().expect("pool").push(conn);
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

async fn connect(upstream: SocketAddr) -> Result<Conn, Error> {
    let stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    Ok(Conn {
        stream,
        read: BytesMut::with_capacity(8 * 1024),
        write: Vec::with_capacity(1024),
    })
}

/// The request line and header fields, the client's `Authorization` replaced by `bearer`.
fn write_head<B>(out: &mut Vec<u8>, request: &Request<B>, bearer: &HeaderValue) {
    out.clear();
    out.extend_from_slice(request.method().as_str().as_bytes());
    out.push(b' ');
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        if name == AUTHORIZATION {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"authorization: ");
    out.extend_from_slice(bearer.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Reads and parses the response head; the values are slices of the buffer it was read into
/// (as hyper's are).
async fn read_head(conn: &mut Conn) -> Result<(StatusCode, HeaderMap, usize), Error> {
    loop {
        if !conn.read.is_empty() {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut fields);
            if let httparse::Status::Complete(len) = parsed
                .parse(&conn.read)
                .map_err(|_| broken("bad response head"))?
            {
                let status = StatusCode::from_u16(parsed.code.unwrap_or(502))
                    .map_err(|_| broken("bad status"))?;
                let mut ranges: [(Option<HeaderName>, usize, usize); MAX_HEADERS] =
                    std::array::from_fn(|_| (None, 0, 0));
                let base = conn.read.as_ptr() as usize;
                for (field, range) in parsed.headers.iter().zip(ranges.iter_mut()) {
                    let name = HeaderName::from_bytes(field.name.as_bytes())
                        .map_err(|_| broken("bad header name"))?;
                    let start = field.value.as_ptr() as usize - base;
                    *range = (Some(name), start, start + field.value.len());
                }
                let count = parsed.headers.len();
                let head = conn.read.split_to(len).freeze();
                let mut headers = HeaderMap::with_capacity(count);
                let mut length = 0;
                for (name, start, end) in ranges.into_iter().take(count) {
                    let name = name.expect("parsed");
                    let value = HeaderValue::from_maybe_shared(head.slice(start..end))
                        .map_err(|_| broken("bad header value"))?;
                    if name == CONTENT_LENGTH {
                        length = value
                            .to_str()
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(|| broken("bad content-length"))?;
                    }
                    headers.append(name, value);
                }
                return Ok((status, headers, length));
            }
        }
        conn.read.reserve(4096);
        if conn.stream.read_buf(&mut conn.read).await? == 0 {
            return Err(broken("upstream closed before answering"));
        }
    }
}
