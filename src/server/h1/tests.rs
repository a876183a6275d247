//! The direct server against hyper's, on the same bytes: the requests the handler receives and
//! the bytes the client receives must be the same, whichever server read them. Here the
//! answers (every framing case); the requests and the connection in `connection_tests.rs`.

use super::differential::{exchange, Exchange, Pending, Server};
use super::{serve, Ended};
use crate::body::{boxed, full, Body};
use crate::server::conn::{Activity, Tracked};
use crate::server::RequestBody;
use bytes::Bytes;
use http::Request;
use http::{HeaderValue, Response, StatusCode, Version};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
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

/// A handled request: its target, and its body if the handler read it.
pub(super) type Handled = (String, Option<Vec<u8>>);

/// The direct server alone on `requests` (no hyper behind it), then the client's end of stream: what the handler
/// saw (reading bodies if `read`), what the client read, and whether the direct server served
/// the connection to its end (`false`: it handed it to hyper).
pub(super) async fn direct(requests: &[u8], read: bool) -> (Vec<Handled>, String, bool) {
    let (mut client, io) = tokio::io::duplex(1 << 20);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let respond = move |request: Request<RequestBody>| -> Pending {
        let busy = Activity::new().begin();
        let record = Arc::clone(&record);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let body = if read {
                let bytes = body.collect().await.expect("a whole body").to_bytes();
                Some(bytes.to_vec())
            } else {
                None
            };
            record.lock().unwrap().push((parts.uri.to_string(), body));
            ok().map(|body| Tracked::new(body, busy))
        })
    };
    let task = tokio::spawn(async move {
        let closing = AtomicBool::new(false);
        matches!(serve(io, &closing, &respond).await, Ended::Closed)
    });
    client.write_all(requests).await.unwrap();
    client.shutdown().await.unwrap();
    let mut read_back = Vec::new();
    client.read_to_end(&mut read_back).await.unwrap();
    let kept = task.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    (seen, String::from_utf8_lossy(&read_back).into_owned(), kept)
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

/// An answer with `status`, `body` and the fields, appended in order.
fn answer(status: u16, body: Body, fields: &[(&'static str, &'static str)]) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).expect("a status");
    for (name, value) in fields {
        let value = HeaderValue::from_static(value);
        response.headers_mut().append(*name, value);
    }
    response
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
        let fields = [
            ("set-cookie", "a=1"),
            ("x-one", "1"),
            ("set-cookie", "b=2"),
            ("connection", "x-one"),
            ("connection", "keep-alive"),
            ("trailer", "x-sum"),
            ("content-type", "application/json"),
        ];
        answer(404, full("{}"), &fields)
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
        answer(599, full("x"), &[])
    }
    let seen = same(unknown_status, TWO).await;
    assert!(
        seen.read.starts_with("HTTP/1.1 599 <none>\r\n"),
        "{}",
        seen.read
    );
    fn dated() -> Response<Body> {
        answer(200, full("x"), &[("date", "Sun, 06 Nov 1994 08:49:37 GMT")])
    }
    same(dated, TWO).await;
}

#[tokio::test]
async fn bodiless_statuses_and_length_fields() {
    fn no_content() -> Response<Body> {
        answer(204, crate::body::empty(), &[("content-length", "0")])
    }
    same(no_content, TWO).await;
    fn not_modified() -> Response<Body> {
        answer(304, crate::body::empty(), &[("content-length", "10")])
    }
    same(not_modified, TWO).await;
    fn declared() -> Response<Body> {
        answer(200, chunks(&[b"abc", b"de"]), &[("content-length", "5")])
    }
    same(declared, TWO).await;
    fn empty_with_length() -> Response<Body> {
        answer(200, crate::body::empty(), &[("content-length", "0")])
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
        answer(200, chunks(&[b"zz"]), &[("transfer-encoding", "gzip")])
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
        answer(200, chunks(&[b"abc", b"defgh"]), &[("content-length", "4")])
    }
    let seen = same(longer, TWO).await;
    assert!(
        seen.read.contains("\r\n\r\nabcdHTTP/1.1 200 OK"),
        "{}",
        seen.read
    );
    fn shorter() -> Response<Body> {
        answer(200, chunks(&[b"abc"]), &[("content-length", "9")])
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
        let lengths = [("content-length", "3"), ("content-length", "4")];
        answer(200, chunks(&[b"abc"]), &lengths)
    }
    let seen = same(contradicting, TWO).await;
    assert_eq!(seen.read, "", "refused: nothing written");
}

#[tokio::test]
async fn a_response_that_closes_ends_the_connection() {
    fn closing() -> Response<Body> {
        answer(200, full("bye"), &[("connection", "close")])
    }
    let seen = same(closing, TWO).await;
    assert_eq!(seen.seen.len(), 1);
    assert!(!seen.handed);
}

#[path = "connection_tests.rs"]
mod connection;

#[path = "body_tests.rs"]
mod body;
