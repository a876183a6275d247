//! A minimal hand-written HTTP/1.1 client for the upstream hop of the bare hyper proxy
//! (`BARE_HYPER_CLIENT=own`), to size one lever of issue 19: what the upstream hop costs
//! without hyper's client (its connection task, the channel and wake-ups between the two
//! tasks, its `HeaderMap` building), the way nginx does it, in the request's own task. The
//! request head is written and the response head parsed by token-handler's direct client
//! (`proxy::direct::head`); the body is read only when framed by `Content-Length`, with no pool
//! rules, timeouts or replay. A measurement of the floor, never for production: the product's
//! client is `upstream.client = "direct"`.

use bytes::{Bytes, BytesMut};
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use std::io::{Error, ErrorKind};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use token_handler::proxy::direct::head::{parse_response_head, write_request_head, Framing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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
/// `Authorization` (set as the hyper variant sets it), and returns the upstream's response with its body read whole.
pub async fn forward(
    mut request: Request<hyper::body::Incoming>,
    upstream: SocketAddr,
    pool: Pool,
    bearer: HeaderValue,
) -> Result<Response<Full<Bytes>>, Error> {
    let (status, headers, body) = exchange(&mut request, upstream, &pool, bearer).await?;
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The exchange itself, for any request type (also `own_server`'s): the fixed `Authorization`
/// set, the head written, the response's head and whole body read.
pub async fn exchange<B>(
    request: &mut Request<B>,
    upstream: SocketAddr,
    pool: &Pool,
    bearer: HeaderValue,
) -> Result<(StatusCode, HeaderMap, Bytes), Error> {
    let taken = pool.lock().expect("pool").pop();
    let mut conn = match taken {
        Some(conn) => conn,
        None => connect(upstream).await?,
    };
    request.headers_mut().insert(AUTHORIZATION, bearer);
    write_request_head(&mut conn.write, request, None);
    conn.stream.write_all(&conn.write).await?;
    let (status, headers, length) = read_head(&mut conn, request).await?;
    while conn.read.len() < length {
        conn.read.reserve(length - conn.read.len());
        if conn.stream.read_buf(&mut conn.read).await? == 0 {
            return Err(broken("upstream closed in the body"));
        }
    }
    let body = conn.read.split_to(length).freeze();
    pool.lock().expect("pool").push(conn);
    Ok((status, headers, body))
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

/// Reads and parses the response head (token-handler's direct client's parser: the values are
/// slices of the buffer it was read into, as hyper's are).
async fn read_head<B>(
    conn: &mut Conn,
    request: &Request<B>,
) -> Result<(StatusCode, HeaderMap, usize), Error> {
    loop {
        let parsed = parse_response_head(&mut conn.read, request.method())
            .map_err(|_| broken("bad response head"))?;
        if let Some(head) = parsed {
            let length = match head.framing {
                Framing::Empty => 0,
                Framing::Length(n) => usize::try_from(n).map_err(|_| broken("too long"))?,
                _ => return Err(broken("only Content-Length bodies here")),
            };
            return Ok((head.status, head.headers, length));
        }
        conn.read.reserve(4096);
        if conn.stream.read_buf(&mut conn.read).await? == 0 {
            return Err(broken("upstream closed before answering"));
        }
    }
}
