//! The direct server against hyper's, on the same bytes: the requests the handler receives and
//! the bytes the client receives must be the same, whichever server read them.

use super::differential::{exchange, Exchange, Pending, Server};
use super::{serve, Ended};
use crate::body::{boxed, full, Body};
use crate::server::conn::{Activity, Tracked};
use crate::server::RequestBody;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Both servers, the same bytes in: the same bytes out and the same requests handled.
async fn same(make: fn() -> Response<Body>, requests: &[u8]) -> Exchange {
    let direct = exchange(Server::Direct, make, requests).await;
    let hyper = exchange(Server::Hyper, make, requests).await;
    assert_eq!(direct.read, hyper.read, "the client read differently");
    assert_eq!(
        direct.seen, hyper.seen,
        "the handler saw different requests"
    );
    direct
}

const TWO: &[u8] = b"GET /a?x=1 HTTP/1.1\r\nHost: example.com\r\nCookie: a=b\r\n\r\n\
GET /b HTTP/1.1\r\nhost: example.com\r\nconnection: close\r\n\r\n";

fn ok() -> Response<Body> {
    Response::new(full("hello"))
}

/// A body of `chunks` whose length is unknown (or `known`), one chunk per poll.
struct Chunks {
    chunks: std::collections::VecDeque<&'static [u8]>,
    known: Option<u64>,
    fail_at_end: bool,
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        std::task::Poll::Ready(match self.chunks.pop_front() {
            Some(chunk) => Some(Ok(http_body::Frame::data(Bytes::from_static(chunk)))),
            None if self.fail_at_end => Some(Err(std::io::Error::other("broken"))),
            None => None,
        })
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.known
            .map_or_else(http_body::SizeHint::new, http_body::SizeHint::with_exact)
    }
}

fn chunks(chunks: &[&'static [u8]]) -> Body {
    boxed(Chunks {
        chunks: chunks.iter().copied().collect(),
        known: None,
        fail_at_end: false,
    })
}

#[tokio::test]
async fn a_plain_answer_and_the_next_request() {
    let seen = same(ok, TWO).await;
    assert_eq!(seen.seen.len(), 2);
    assert!(seen
        .read
        .starts_with("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: <date>\r\n\r\nhello"));
    // The second request asked to close: hyper's.
    assert!(seen.handed);
}

#[tokio::test]
async fn fields_values_and_status_lines_as_hyper_writes_them() {
    fn make() -> Response<Body> {
        let mut response = Response::new(full("{}"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        let h = response.headers_mut();
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("x-one", HeaderValue::from_static("1"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        h.append("connection", HeaderValue::from_static("x-one"));
        h.append("connection", HeaderValue::from_static("keep-alive"));
        h.append("trailer", HeaderValue::from_static("x-sum"));
        h.append("content-type", HeaderValue::from_static("application/json"));
        response
    }
    same(make, TWO).await;
    fn reason() -> Response<Body> {
        let mut response = Response::new(full("x"));
        response
            .extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b"Fine Thanks"));
        response
    }
    let seen = same(reason, TWO).await;
    assert!(
        seen.read.starts_with("HTTP/1.1 200 Fine Thanks\r\n"),
        "{}",
        seen.read
    );
    fn unknown_status() -> Response<Body> {
        let mut response = Response::new(full("x"));
        *response.status_mut() = StatusCode::from_u16(599).unwrap();
        response
    }
    let seen = same(unknown_status, TWO).await;
    assert!(
        seen.read.starts_with("HTTP/1.1 599 <none>\r\n"),
        "{}",
        seen.read
    );
    fn dated() -> Response<Body> {
        let mut response = Response::new(full("x"));
        let date = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        response.headers_mut().insert("date", date);
        response
    }
    same(dated, TWO).await;
}

#[tokio::test]
async fn bodiless_statuses_and_length_fields() {
    fn no_content() -> Response<Body> {
        let mut response = Response::new(crate::body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let zero = HeaderValue::from_static("0");
        response.headers_mut().insert("content-length", zero);
        response
    }
    same(no_content, TWO).await;
    fn not_modified() -> Response<Body> {
        let mut response = Response::new(crate::body::empty());
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let ten = HeaderValue::from_static("10");
        response.headers_mut().insert("content-length", ten);
        response
    }
    same(not_modified, TWO).await;
    fn declared() -> Response<Body> {
        let mut response = Response::new(chunks(&[b"abc", b"de"]));
        let five = HeaderValue::from_static("5");
        response.headers_mut().insert("content-length", five);
        response
    }
    same(declared, TWO).await;
    fn empty_with_length() -> Response<Body> {
        let mut response = Response::new(crate::body::empty());
        let zero = HeaderValue::from_static("0");
        response.headers_mut().insert("content-length", zero);
        response
    }
    same(empty_with_length, TWO).await;
}

#[tokio::test]
async fn bodies_of_unknown_length_are_chunked_and_codings_end_in_chunked() {
    fn streamed() -> Response<Body> {
        Response::new(chunks(&[
            b"hello ",
            b"",
            b"world, a longer chunk of seventeen+",
        ]))
    }
    let seen = same(streamed, TWO).await;
    assert!(
        seen.read.contains("transfer-encoding: chunked\r\n"),
        "{}",
        seen.read
    );
    assert!(
        seen.read.contains("\r\n6\r\nhello \r\n23\r\n"),
        "{}",
        seen.read
    );
    fn gzip() -> Response<Body> {
        let mut response = Response::new(chunks(&[b"zz"]));
        let coding = HeaderValue::from_static("gzip");
        response.headers_mut().insert("transfer-encoding", coding);
        response
    }
    let seen = same(gzip, TWO).await;
    assert!(
        seen.read.contains("transfer-encoding: gzip, chunked\r\n"),
        "{}",
        seen.read
    );
    fn http10() -> Response<Body> {
        let mut response = Response::new(chunks(&[b"until", b" close"]));
        *response.version_mut() = Version::HTTP_10;
        response
    }
    let seen = same(http10, TWO).await;
    assert_eq!(seen.seen.len(), 1, "a body until close ends the connection");
}

#[tokio::test]
async fn bodies_longer_or_shorter_than_declared() {
    fn longer() -> Response<Body> {
        let mut response = Response::new(chunks(&[b"abc", b"defgh"]));
        let four = HeaderValue::from_static("4");
        response.headers_mut().insert("content-length", four);
        response
    }
    let seen = same(longer, TWO).await;
    assert!(
        seen.read.contains("\r\n\r\nabcdHTTP/1.1 200 OK"),
        "{}",
        seen.read
    );
    fn shorter() -> Response<Body> {
        let mut response = Response::new(chunks(&[b"abc"]));
        let nine = HeaderValue::from_static("9");
        response.headers_mut().insert("content-length", nine);
        response
    }
    let seen = same(shorter, TWO).await;
    assert_eq!(seen.seen.len(), 1, "a short body ends the connection");
    fn broken() -> Response<Body> {
        Response::new(boxed(Chunks {
            chunks: [b"abc" as &[u8]].into_iter().collect(),
            known: None,
            fail_at_end: true,
        }))
    }
    let seen = exchange(Server::Direct, broken, TWO).await;
    assert_eq!(seen.seen.len(), 1);
    assert!(
        !seen.read.contains("0\r\n\r\n"),
        "a failed body is not ended: {}",
        seen.read
    );
    fn contradicting() -> Response<Body> {
        let mut response = Response::new(chunks(&[b"abc"]));
        let h = response.headers_mut();
        h.append("content-length", HeaderValue::from_static("3"));
        h.append("content-length", HeaderValue::from_static("4"));
        response
    }
    let seen = same(contradicting, TWO).await;
    assert_eq!(seen.read, "", "refused: nothing written");
}

#[tokio::test]
async fn a_response_that_closes_ends_the_connection() {
    fn closing() -> Response<Body> {
        let mut response = Response::new(full("bye"));
        let close = HeaderValue::from_static("close");
        response.headers_mut().insert("connection", close);
        response
    }
    let seen = same(closing, TWO).await;
    assert_eq!(seen.seen.len(), 1);
    assert!(!seen.handed);
}

/// Heads the direct server takes: the handler sees what hyper would have given it.
#[tokio::test]
async fn the_requests_it_takes_are_the_ones_hyper_builds() {
    let heads: &[&[u8]] = &[
        b"GET http://example.com:8080/p?q HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\nGET /leading-crlf HTTP/1.1\r\nHost: x\r\n\r\n",
        b"DELETE /x/../%2e%2e/y HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\nX-Empty:\r\nX-Spaced:   v  \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xc3\xa9 \xff\r\nConnection: keep-alive, x-a\r\n\r\n",
        b"POST /no-body HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",
        b"PATCH /p HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",
    ];
    for head in heads {
        let mut requests = head.to_vec();
        requests.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let seen = same(ok, &requests).await;
        assert_eq!(seen.seen.len(), 2, "{}", String::from_utf8_lossy(head));
    }
}

/// Heads it leaves to hyper, which then serves the connection: the same answers, errors
/// included, and the request before them served directly.
#[tokio::test]
async fn what_it_does_not_take_goes_to_hyper_with_the_bytes_read() {
    let heads: &[&[u8]] = &[
        b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\na=b&c",
        b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /both HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\nz",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ];
    for head in heads {
        let mut requests = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
        requests.extend_from_slice(head);
        requests.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let seen = same(ok, &requests).await;
        assert!(seen.handed, "{}", String::from_utf8_lossy(head));
        assert!(!seen.seen.is_empty());
    }
}

/// A head that does not fit in the direct server's 8 KiB buffer is hyper's (which reads up to
/// its `max_buf_size`), and so is the rest of the connection; one past that limit gets
/// hyper's 431. Pipelined heads that straddle the buffer's end are moved to its front.
#[tokio::test]
async fn heads_past_the_buffer_are_hyper_s() {
    let cookie = "c".repeat(20 * 1024);
    let large = format!("GET / HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\nGET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let seen = same(ok, large.as_bytes()).await;
    assert!(seen.handed);
    assert_eq!(seen.seen.len(), 2);
    assert_eq!(seen.seen[0].3[1].1.len(), 20 * 1024);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "c".repeat(60 * 1024)
    );
    let seen = same(ok, huge.as_bytes()).await;
    assert!(seen.handed);
    assert!(seen.read.starts_with("HTTP/1.1 431 "), "{}", seen.read);
    // 3 KiB heads, pipelined: the third straddles the end of the first 8 KiB read.
    let mut pipeline = Vec::new();
    for i in 0..5 {
        let value = "v".repeat(3 * 1024);
        pipeline.extend_from_slice(
            format!("GET /{i} HTTP/1.1\r\nHost: x\r\nX-V: {value}\r\n\r\n").as_bytes(),
        );
    }
    pipeline.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let seen = same(ok, &pipeline).await;
    assert_eq!(seen.seen.len(), 6);
    assert!(seen.handed, "only the last, which closes, is hyper's");
}

/// A client that goes away while its request is in flight: the request is dropped (its
/// upstream exchange with it), as hyper drops it.
#[tokio::test]
async fn a_client_that_goes_away_drops_its_request() {
    let (mut client, io) = tokio::io::duplex(1 << 16);
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Count(Arc<AtomicUsize>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Mutex::new(Some(started_tx));
    let count = Arc::clone(&dropped);
    let respond = move |_request: Request<RequestBody>| -> Pending {
        let guard = Count(Arc::clone(&count));
        if let Some(tx) = started_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
        Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            unreachable!()
        })
    };
    let task = tokio::spawn(async move {
        let closing = AtomicBool::new(false);
        matches!(serve(io, &closing, &respond).await, Ended::Closed)
    });
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    started.await.unwrap();
    drop(client);
    assert!(task.await.unwrap(), "the connection closed");
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the request was dropped");
}

/// A graceful close: the request in flight is answered, then the connection closes, without
/// the request pipelined behind it.
#[tokio::test]
async fn a_graceful_close_finishes_the_request_in_flight() {
    let (mut client, io) = tokio::io::duplex(1 << 16);
    let closing = Arc::new(AtomicBool::new(false));
    let (release_tx, release) = tokio::sync::oneshot::channel::<()>();
    let release = Arc::new(Mutex::new(Some(release)));
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Mutex::new(Some(started_tx));
    let respond = move |_request: Request<RequestBody>| -> Pending {
        let busy = Activity::new().begin();
        let release = release.lock().unwrap().take();
        if let Some(tx) = started_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
        Box::pin(async move {
            if let Some(release) = release {
                let _ = release.await;
            }
            ok().map(|body| Tracked::new(body, busy))
        })
    };
    let flag = Arc::clone(&closing);
    let task =
        tokio::spawn(async move { matches!(serve(io, &flag, &respond).await, Ended::Closed) });
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    started.await.unwrap();
    closing.store(true, Ordering::Release);
    release_tx.send(()).unwrap();
    let mut read = Vec::new();
    client.read_to_end(&mut read).await.unwrap();
    let text = String::from_utf8_lossy(&read);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
    assert!(read.ends_with(b"\r\n\r\nhello"), "{text}");
    assert!(task.await.unwrap());
}

#[test]
fn chunk_sizes_are_upper_case_hex() {
    for (len, text) in [
        (1, "1"),
        (15, "F"),
        (16, "10"),
        (255, "FF"),
        (4096, "1000"),
        (0xABCDE, "ABCDE"),
    ] {
        let mut out = Vec::new();
        super::chunk_size(&mut out, len);
        assert_eq!(out, format!("{text}\r\n").into_bytes());
    }
}
