//! The direct server's requests and connections against hyper's: what it takes, what it hands
//! over, large heads, a client that goes away, a graceful close.

use super::{direct, ok, same};
use crate::server::conn::{Activity, Tracked};
use crate::server::h1::differential::{Exchange, Pending};
use crate::server::h1::{serve, Ended};
use crate::server::RequestBody;
use http::Request;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        let (taken, _, kept) = direct(&requests, true).await;
        assert!(!kept, "handed to hyper: {}", String::from_utf8_lossy(head));
        assert_eq!(taken.len(), 1, "{}", String::from_utf8_lossy(head));
        requests.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let seen = same(ok, &requests).await;
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
    let (taken, _, kept) = direct(large.split("GET /last").next().unwrap().as_bytes(), true).await;
    assert!(!kept && taken.is_empty(), "handed to hyper at once");
    let seen = same(ok, large.as_bytes()).await;
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
    taken_whole_and_as_hyper_takes_them(&[3, 3, 3, 3, 3]).await;
}

/// Pipelined heads each with a field of the given KiB: all the direct server's, and with a
/// closing request after them, the same as hyper's server on the same bytes.
async fn taken_whole_and_as_hyper_takes_them(kib: &[usize]) -> Exchange {
    let mut pipeline = Vec::new();
    for (i, size) in kib.iter().enumerate() {
        let value = "v".repeat(size * 1024);
        pipeline.extend_from_slice(
            format!("GET /{i} HTTP/1.1\r\nHost: x\r\nX-V: {value}\r\n\r\n").as_bytes(),
        );
    }
    let (taken, _, kept) = direct(&pipeline, true).await;
    assert!(kept, "all are the direct server's");
    assert_eq!(taken.len(), kib.len());
    pipeline.extend_from_slice(b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let seen = same(ok, &pipeline).await;
    assert_eq!(seen.seen.len(), kib.len() + 1);
    seen
}

/// Heads and bodies are split off the read buffer, not copied: values a handler keeps past
/// their request keep their bytes while later requests are read into the buffer (it is then
/// not reclaimed but replaced), and so do bodies. A head the buffer cannot reclaim room for
/// (a partial one longer than what was consumed before it) moves to a new buffer.
#[tokio::test]
async fn values_kept_past_their_request_keep_their_bytes() {
    let (mut client, io) = tokio::io::duplex(1 << 20);
    let kept = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&kept);
    let respond = move |request: Request<RequestBody>| -> Pending {
        let busy = Activity::new().begin();
        let value = request.headers().get("x-v").cloned();
        let body = match request.body() {
            RequestBody::Full(bytes) => Some(bytes.clone()),
            _ => None,
        };
        record.lock().unwrap().push((value, body));
        Box::pin(async move { ok().map(|body| Tracked::new(body, busy)) })
    };
    let task = tokio::spawn(async move {
        let closing = AtomicBool::new(false);
        matches!(serve(io, &closing, &respond).await, Ended::Closed)
    });
    // 60 requests of ~700 bytes, five times the buffer, one at a time and then pipelined.
    let request = |i: usize| {
        let value = format!("{i:03}").repeat(100);
        let body = format!("{i:03}").repeat(100);
        format!(
            "POST /{i} HTTP/1.1\r\nHost: x\r\nX-V: {value}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut read = vec![0u8; 1 << 16];
    for i in 0..30 {
        client.write_all(request(i).as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while !got.ends_with(b"hello") {
            let n = client.read(&mut read).await.unwrap();
            assert!(n > 0, "the connection closed after {i} requests");
            got.extend_from_slice(&read[..n]);
        }
    }
    let pipelined: String = (30..60).map(request).collect();
    client.write_all(pipelined.as_bytes()).await.unwrap();
    client.shutdown().await.unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(task.await.unwrap(), "all are the direct server's");
    let kept = std::mem::take(&mut *kept.lock().unwrap());
    assert_eq!(kept.len(), 60);
    for (i, (value, body)) in kept.iter().enumerate() {
        let expected = format!("{i:03}").repeat(100);
        assert_eq!(
            value.as_ref().unwrap().as_bytes(),
            expected.as_bytes(),
            "value {i}"
        );
        assert_eq!(&body.as_ref().unwrap()[..], expected.as_bytes(), "body {i}");
    }
    // 3 KiB, then 6 KiB: the first read holds the first head and most of the second, which
    // cannot be moved to the buffer's front over the 3 KiB before it.
    let seen = taken_whole_and_as_hyper_takes_them(&[3, 6]).await;
    assert_eq!(seen.seen[1].3[1].1.len(), 6 * 1024);
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
        crate::server::h1::chunk_size(&mut out, len);
        assert_eq!(out, format!("{text}\r\n").into_bytes());
    }
}
