//! `upstream.client = "direct"`: the framing of responses as a raw upstream writes them
//! (chunked with extensions and trailers, interim 1xx, `HEAD`, close-delimited, chunked with
//! `Content-Length`), what it refuses (disagreeing lengths, `Transfer-Encoding` on HTTP/1.0,
//! broken chunks, an oversized head), when a connection is reused, and which request bodies it
//! writes itself. The real proxy; the
//! upstream is a socket that writes exactly the bytes each test gives it. The rest of the
//! integration suite runs with this client too (`scripts/test.sh`).

use crate::support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the raw upstream writes for a request path, and whether it closes after.
type Script = fn(&str) -> (Vec<u8>, bool);

/// An upstream that answers each request head with its script's bytes.
struct RawUpstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// Every request head, as received.
    heads: Arc<Mutex<Vec<String>>>,
}

async fn raw_upstream(script: Script) -> RawUpstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (Arc::clone(&connections), Arc::clone(&heads));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let mut head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
                        // A `Content-Length` body: read whole, and recorded behind its head.
                        let length = head.to_ascii_lowercase().lines().find_map(|line| {
                            line.strip_prefix("content-length: ")?
                                .trim()
                                .parse::<usize>()
                                .ok()
                        });
                        let whole = end + 4 + length.unwrap_or(0);
                        if buf.len() < whole {
                            break;
                        }
                        head.push_str(&String::from_utf8_lossy(&buf[end + 4..whole]));
                        buf.drain(..whole);
                        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                        seen.lock().expect("heads").push(head);
                        let (bytes, close) = script(&path);
                        if stream.write_all(&bytes).await.is_err() || close {
                            return;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    RawUpstream {
        addr,
        connections,
        heads,
    }
}

async fn proxy_to(upstream: &RawUpstream) -> Proxy {
    proxy_with(upstream, &[]).await
}

/// As [`proxy_to`], with more config lines.
async fn proxy_with(upstream: &RawUpstream, more: &[(&str, &str)]) -> Proxy {
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let mut tweaks = vec![
        ("upstream", "client = \"direct\""),
        ("proxy", "public_paths = [\"/\"]"),
    ];
    tweaks.extend_from_slice(more);
    Proxy::start(
        &config_toml(
            &idp.url(),
            &format!("http://{}", upstream.addr),
            "tokenidp",
            &tweaks,
        ),
        KEY1,
    )
    .await
}

async fn get(http: &reqwest::Client, proxy: &Proxy, path: &str) -> reqwest::Response {
    let url = format!("{}{path}", proxy.url);
    http.get(url).send().await.expect("answered")
}

fn script(path: &str) -> (Vec<u8>, bool) {
    let keep = |text: &str| (text.as_bytes().to_vec(), false);
    match path {
        "/chunked" => keep(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Up: 1\r\n\r\n\
             5;ext=\"a b\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
        ),
        "/early" => keep(
            "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
             HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        ),
        "/head" => keep("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
        "/to-close" => ("HTTP/1.1 200 OK\r\n\r\nstreamed to the close".into(), true),
        "/both" => keep(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n0\r\n\r\n",
        ),
        "/two-lengths" => {
            keep("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd")
        }
        "/te-on-1.0" => keep("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        "/bad-chunk" => {
            keep("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n")
        }
        "/short" => (
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf".into(),
            true,
        ),
        "/huge" => keep(&format!(
            "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
            "a".repeat(20 * 1024)
        )),
        _ => keep("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    }
}

#[tokio::test]
async fn chunked_bodies_arrive_whole_and_the_connection_is_reused() {
    let upstream = raw_upstream(script).await;
    let proxy = proxy_to(&upstream).await;
    let http = client();
    for _ in 0..2 {
        let r = get(&http, &proxy, "/chunked").await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-up"], "1");
        assert_eq!(r.text().await.expect("body"), "hello world");
    }
    let r = get(&http, &proxy, "/early").await;
    assert_eq!(r.status(), 200, "the interim 103 is skipped");
    assert_eq!(r.text().await.expect("body"), "ok");
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "one kept-alive connection for all three"
    );
    let heads = upstream.heads.lock().expect("heads").clone();
    assert!(
        heads[0].starts_with("GET /chunked HTTP/1.1\r\n"),
        "{heads:?}"
    );
    assert!(
        heads[0].contains(&format!("host: {}", proxy.addr)),
        "{heads:?}"
    );
    assert!(
        heads[0].contains("x-forwarded-for: 127.0.0.1\r\n"),
        "{heads:?}"
    );
}

#[tokio::test]
async fn a_head_answer_has_no_body_and_a_close_delimited_one_ends_its_connection() {
    let upstream = raw_upstream(script).await;
    let proxy = proxy_to(&upstream).await;
    let http = client();
    let r = http
        .head(format!("{}/head", proxy.url))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "5");
    // The answer to HEAD had no body: the connection carries the next request.
    let r = get(&http, &proxy, "/to-close").await;
    assert_eq!(r.text().await.expect("body"), "streamed to the close");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 1);
    let r = get(&http, &proxy, "/ok").await;
    assert_eq!(r.text().await.expect("body"), "ok");
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        2,
        "a body read to the close leaves no connection to reuse"
    );
}

#[tokio::test]
async fn chunked_with_a_content_length_drops_the_length_and_the_connection() {
    let upstream = raw_upstream(script).await;
    let proxy = proxy_to(&upstream).await;
    let http = client();
    let r = get(&http, &proxy, "/both").await;
    assert_eq!(r.status(), 200);
    assert_ne!(
        r.headers().get("content-length").map(|v| v.as_bytes()),
        Some(&b"3"[..]),
        "the upstream's Content-Length does not reach the client"
    );
    assert_eq!(r.text().await.expect("body"), "hello");
    let r = get(&http, &proxy, "/ok").await;
    assert_eq!(r.text().await.expect("body"), "ok");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn ambiguous_framing_and_oversized_heads_are_refused() {
    let upstream = raw_upstream(script).await;
    let proxy = proxy_to(&upstream).await;
    let http = client();
    for path in ["/two-lengths", "/te-on-1.0", "/huge"] {
        let r = get(&http, &proxy, path).await;
        assert_eq!(r.status(), 502, "{path}");
        assert_eq!(json(r).await["error"], "upstream_unavailable", "{path}");
    }
    // A broken body: the answer is cut off (before or after its head went out, as hyper's
    // server had written it); it never looks complete.
    for path in ["/bad-chunk", "/short"] {
        if let Ok(r) = http.get(format!("{}{path}", proxy.url)).send().await {
            assert_eq!(r.status(), 200, "{path}");
            assert!(
                r.bytes().await.is_err(),
                "{path}: the body must not look complete"
            );
        }
    }
    // None of those connections is reused; the proxy still serves.
    let before = upstream.connections.load(Ordering::SeqCst);
    let r = get(&http, &proxy, "/ok").await;
    assert_eq!(r.text().await.expect("body"), "ok");
    assert_eq!(upstream.connections.load(Ordering::SeqCst), before + 1);
}

/// A body whose bytes are all at hand (here read whole with its head by the direct server,
/// whatever `TOKEN_HANDLER_TEST_HTTP1` says) is written by the direct client behind its head,
/// on the connection the `GET` before it used; a streamed (chunked) body goes through hyper's
/// client, on a connection of its own pool.
#[tokio::test]
async fn bodies_at_hand_go_direct_and_streamed_ones_through_hypers_client() {
    let upstream = raw_upstream(script).await;
    let proxy = proxy_with(&upstream, &[("server", "http1 = \"direct\"")]).await;
    // One write: the proxy reads each head with its body.
    let answers = raw(
        proxy.addr,
        b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\npayload\
          PUT /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 3, "{answers}");
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        1,
        "the bodies went on the GET's connection"
    );
    let chunked = raw(
        proxy.addr,
        b"PATCH /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nstr\r\n4\r\neamd\r\n0\r\n\r\n",
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 200 OK"), "{chunked}");
    assert_eq!(
        upstream.connections.load(Ordering::SeqCst),
        2,
        "the streamed body went on a connection of hyper's pool"
    );
    let heads = upstream.heads.lock().expect("heads").clone();
    assert!(heads[1].starts_with("POST /ok HTTP/1.1\r\n"), "{heads:?}");
    assert!(heads[1].contains("\r\ncontent-length: 7\r\n"), "{heads:?}");
    assert!(heads[1].ends_with("\r\n\r\npayload"), "{heads:?}");
    assert!(heads[2].starts_with("PUT /ok HTTP/1.1\r\n"), "{heads:?}");
    assert!(heads[2].contains("content-length: 0\r\n"), "{heads:?}");
    // hyper's client sends the streamed body as it came: chunked.
    assert!(heads[3].starts_with("PATCH /ok HTTP/1.1\r\n"), "{heads:?}");
    assert!(
        heads[3].contains("transfer-encoding: chunked\r\n"),
        "{heads:?}"
    );
}
