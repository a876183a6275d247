//! Request bodies in the direct server: a `Content-Length` body that came with its head is read
//! here and given to the handler as hyper gives it; any other body is hyper's, and so is the
//! rest of the connection. A body's bytes are never read as a request, read or not.

use super::{direct, ok, same};
use crate::server::h1::differential::Pending;
use crate::server::h1::{serve, Ended};
use crate::server::RequestBody;
use bytes::Bytes;
use http::Request;
use std::sync::atomic::AtomicBool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FIRST: &[u8] = b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n";
const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
const LAST: &[u8] = b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn with(head: &str, body: &[u8]) -> Vec<u8> {
    let mut request = head.as_bytes().to_vec();
    request.extend_from_slice(body);
    request
}

/// The bodies it reads: what the handler gets is what hyper gives it, and the requests behind
/// are served on the same connection by the direct server.
#[tokio::test]
async fn bodies_that_came_with_their_head_are_its_own() {
    // Head and body that fill the 8 KiB buffer exactly, behind the first request.
    let head = "PUT /fill HTTP/1.1\r\nHost: x\r\nContent-Length: 8000\r\n\r\n";
    let fill = 8192 - FIRST.len() - head.len();
    let fill_head = format!("PUT /fill HTTP/1.1\r\nHost: x\r\nContent-Length: {fill}\r\n\r\n");
    let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (
            with(
                "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
                b"a=b&c",
            ),
            b"a=b&c".to_vec(),
        ),
        (
            with(
                "POST /none HTTP/1.1\r\nHost: x\r\ncontent-length: 0\r\n\r\n",
                b"",
            ),
            Vec::new(),
        ),
        (
            with(
                "GET /get HTTP/1.1\r\nHost: x\r\nContent-Length: 003\r\n\r\n",
                b"\x00\xff\r",
            ),
            b"\x00\xff\r".to_vec(),
        ),
        // A space after the value: `httparse` trims it, for hyper as here.
        (
            with(
                "PUT /space HTTP/1.1\r\nHost: x\r\nContent-Length: 3 \r\n\r\n",
                b"abc",
            ),
            b"abc".to_vec(),
        ),
        // A body that reads like a request is a body.
        (
            with(
                "PATCH /p HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\n",
                b"GET /smuggled HTTP/1.1\r\nHost: x\r\n",
            ),
            b"GET /smuggled HTTP/1.1\r\nHost: x\r\n".to_vec(),
        ),
        (with(&fill_head, &vec![b'f'; fill]), vec![b'f'; fill]),
    ];
    for (request, body) in cases {
        let label = String::from_utf8_lossy(&request[..request.len().min(60)]).into_owned();
        let pipeline = [FIRST, &request, NEXT].concat();
        let (seen, read, kept) = direct(&pipeline, true).await;
        assert!(kept, "the direct server kept the connection: {label}");
        assert_eq!(seen.len(), 3, "{label}: {seen:?}");
        assert_eq!(seen[1].1.as_deref(), Some(&body[..]), "{label}");
        assert_eq!(seen[2].0, "/next", "{label}");
        assert_eq!(read.matches("HTTP/1.1 200 OK").count(), 3, "{label}");
        // The same bytes to the handler and to the client as from hyper's server.
        let both = same(ok, &[FIRST, &request, LAST].concat()).await;
        assert_eq!(both.seen.len(), 3, "{label}");
        assert_eq!(both.seen[1].4, body, "{label}");
    }
}

/// A body the handler does not read (a refused request, a 404): its bytes are skipped, never
/// parsed as the next request, and the connection goes on.
#[tokio::test]
async fn an_unread_body_is_skipped_not_parsed() {
    let smuggler = with(
        "POST /refused HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\n\r\n",
        b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n\r\n",
    );
    let (seen, read, kept) = direct(&[&smuggler[..], NEXT].concat(), false).await;
    assert!(kept);
    let targets: Vec<&str> = seen.iter().map(|(target, _)| target.as_str()).collect();
    assert_eq!(targets, ["/refused", "/next"]);
    assert_eq!(read.matches("HTTP/1.1 200 OK").count(), 2, "{read}");
}

/// Every other length field, and a body not all there yet, are hyper's: it decides what it
/// accepts and answers the rest, and serves what follows.
#[tokio::test]
async fn other_lengths_and_bodies_on_their_way_are_hyper_s() {
    let heads: &[&[u8]] = &[
        b"POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /differ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /cases HTTP/1.1\r\nHost: x\r\ncontent-length: 3\r\nCONTENT-LENGTH: 3\r\n\r\nabc",
        b"POST /te-case HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ntransfer-ENCODING: chunked\r\n\r\n0\r\n\r\n",
        b"POST /upgrade HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\nabc",
        b"POST /sign HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
        b"POST /list HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc",
        b"POST /hex HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc",
        b"POST /empty HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n",
        b"POST /huge HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST /te HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc",
    ];
    for head in heads {
        let label = String::from_utf8_lossy(head);
        let (seen, _, kept) = direct(&[FIRST, head].concat(), true).await;
        assert!(!kept, "handed to hyper: {label}");
        assert_eq!(
            seen.len(),
            1,
            "only the first is the direct server's: {label}"
        );
        let both = same(ok, &[FIRST, head, LAST].concat()).await;
        assert!(both.read.starts_with("HTTP/1.1 200 OK"), "{}", both.read);
    }
    // Past the buffer: hyper reads it, and it reaches the handler whole.
    let large = with(
        "POST /large HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n\r\n",
        &[b'l'; 9000],
    );
    let (_, _, kept) = direct(&[FIRST, &large].concat(), true).await;
    assert!(!kept, "handed to hyper");
    let seen = same(ok, &[FIRST, &large, LAST].concat()).await;
    assert_eq!(seen.seen[1].4.len(), 9000);
}

/// A body still on its way when the head is read: the connection is hyper's at once (its
/// body timing and 408 apply), with the bytes read so far.
#[tokio::test]
async fn a_body_still_on_its_way_hands_the_connection_over() {
    let (mut client, io) = tokio::io::duplex(1 << 16);
    let respond = |_request: Request<RequestBody>| -> Pending {
        unreachable!("the direct server handles no request here")
    };
    let task = tokio::spawn(async move {
        let closing = AtomicBool::new(false);
        match serve(io, &closing, &respond).await {
            Ended::Hand(mut handed) => {
                let mut read = vec![0; 64];
                let n = handed.read(&mut read).await.unwrap();
                read.truncate(n);
                Some(read)
            }
            Ended::Closed => None,
        }
    });
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    let handed = task.await.unwrap().expect("handed to hyper");
    assert!(handed.starts_with(b"POST / HTTP/1.1\r\n"), "{handed:?}");
}

#[test]
fn a_body_s_debug_shows_its_length_not_its_bytes() {
    let body = RequestBody::Full(Bytes::from_static(b"password=hunter2"));
    let shown = format!("{body:?}");
    assert_eq!(shown, "Full(16 bytes)");
}
