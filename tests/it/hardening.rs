//! Hardening: refresh on an upstream 401, the fault matrix (with connections and tasks back to
//! their baseline after each case), a lost response, limits, and hostile input.

use crate::support::*;
use std::time::Duration;
use token_handler::demo::tokenidp::Fault;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Waits until the proxy's open connections and the runtime's live tasks are back to what they
/// were (cleanup is asynchronous: it is awaited, bounded, not assumed).
async fn back_to_baseline(h: &Harness, connections: f64, tasks: usize, case: &str) {
    let metrics = tokio::runtime::Handle::current().metrics();
    for _ in 0..250 {
        if h.metric("token_handler_connections_active") <= connections
            && metrics.num_alive_tasks() <= tasks
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{case}: connections {} (baseline {connections}), tasks {} (baseline {tasks})",
        h.metric("token_handler_connections_active"),
        metrics.num_alive_tasks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_invalid_token_refreshes_once_and_retries() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, issued) = h.login(false);
    h.echo.reject_token(&issued.access_token);

    // GET: refreshed and retried; the browser gets the new session.
    let r = h.get("/api/orders", &jar).await;
    assert_eq!(r.status(), 200);
    assert_eq!(session_set_cookies(&r).len(), 1);
    assert_eq!(h.idp.refresh_calls(), 1);
    let tries: Vec<_> = h
        .echo
        .records()
        .into_iter()
        .filter(|r| r.uri == "/api/orders")
        .collect();
    assert_eq!(tries.len(), 2);
    assert_ne!(
        tries[0].header("authorization"),
        tries[1].header("authorization")
    );

    // POST with a small body: replayed byte for byte.
    let (jar, issued) = h.login(false);
    h.echo.reject_token(&issued.access_token);
    let r = h
        .http
        .post(format!("{}/api/orders", h.proxy.url))
        .header("cookie", jar.header())
        .header("x-csrf", "1")
        .body(r#"{"item":42}"#)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let posts: Vec<_> = h
        .echo
        .records()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].body, br#"{"item":42}"#);

    // A body over retry_body_bytes is streamed, not held: the 401 is passed on as is.
    let (jar, issued) = h.login(false);
    h.echo.reject_token(&issued.access_token);
    let calls = h.idp.refresh_calls();
    let r = h
        .http
        .post(format!("{}/api/upload-big", h.proxy.url))
        .header("cookie", jar.header())
        .header("x-csrf", "1")
        .body(vec![b'x'; 100 * 1024])
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .contains("invalid_token"));
    assert_eq!(
        h.idp.refresh_calls(),
        calls,
        "no refresh without a possible retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_token_retry_never_loops_and_is_shared_by_concurrent_requests() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, issued) = h.login(false);
    h.echo.reject_token(&issued.access_token);
    // Five requests hit the 401 together: one refresh between them.
    let mut tasks = Vec::new();
    for i in 0..5 {
        let http = h.http.clone();
        let url = format!("{}/api/p{i}", h.proxy.url);
        let cookie = jar.header();
        tasks.push(tokio::spawn(async move {
            http.get(url).header("cookie", cookie).send().await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("answer").status(), 200);
    }
    assert_eq!(h.idp.refresh_calls(), 1);

    // An upstream that rejects every token: one refresh, one retry, then its 401 — no loop.
    let (jar, _) = h.login(false);
    let before = h.idp.refresh_calls();
    h.echo.reject_every_token();
    let r = h.get("/api/loop", &jar).await;
    assert_eq!(r.status(), 401, "the upstream's answer is passed on");
    assert!(r.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .contains("invalid_token"));
    assert_eq!(
        session_set_cookies(&r).len(),
        1,
        "with the refreshed session"
    );
    assert_eq!(h.idp.refresh_calls(), before + 1, "exactly one refresh");
    assert_eq!(
        h.echo
            .records()
            .iter()
            .filter(|r| r.uri == "/api/loop")
            .count(),
        2,
        "exactly one retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_fault_matrix_keeps_the_session_and_cleans_up() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    // Warm up: pooled upstream connection, JWKS, everything that legitimately stays.
    let (warm, _) = h.login(false);
    assert_eq!(h.get("/api/warm", &warm).await.status(), 200);
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let connections = h.metric("token_handler_connections_active");
    let cases: Vec<(&str, Fault, Option<&str>)> = vec![
        ("IdP drops the connection", Fault::Down, None),
        (
            "IdP hangs past the timeout",
            Fault::Slow(Duration::from_secs(3)),
            None,
        ),
        (
            "IdP 429 with Retry-After",
            Fault::RateLimited {
                retry_after_secs: 7,
            },
            Some("7"),
        ),
        ("TokenIDP PascalCase 500", Fault::PascalCase500, None),
        ("HTML 502", Fault::Html502, None),
        ("truncated JSON", Fault::TruncatedJson, None),
        ("10 MB body", Fault::HugeBody(10 * 1024 * 1024), None),
    ];
    for (case, fault, retry_after) in cases {
        let (jar, _) = h.login(true);
        h.idp.set_fault(fault);
        let http = client();
        let r = http
            .get(format!("{}/api/a", h.proxy.url))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), 503, "{case}");
        assert!(
            session_set_cookies(&r).is_empty(),
            "{case}: the session cookie is unchanged"
        );
        if let Some(expected) = retry_after {
            assert_eq!(r.headers()["retry-after"], expected, "{case}");
        } else {
            assert!(r.headers().contains_key("retry-after"), "{case}");
        }
        assert_eq!(json(r).await["error"], "idp_unavailable", "{case}");
        h.idp.set_fault(Fault::None);
        drop(http);
        back_to_baseline(&h, connections, tasks, case).await;
    }
    // The IdP refuses connections (process gone).
    let (jar, _) = h.login(true);
    h.idp.shutdown().await;
    let r = h.get("/api/a", &jar).await;
    assert_eq!(r.status(), 503);
    assert!(session_set_cookies(&r).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_fault_matrix() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(false);
    assert_eq!(h.get("/api/warm", &jar).await.status(), 200);
    let tasks = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let connections = h.metric("token_handler_connections_active");

    // Resets mid-body: the client sees the body end in an error, not a hang.
    let http = client();
    let mut r = http
        .get(format!("{}/reset", h.proxy.url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), 200);
    assert!(session_set_cookies(&r).is_empty());
    assert_eq!(
        &r.chunk().await.expect("first chunk").expect("data")[..],
        b"partial"
    );
    h.echo.release.notify_one();
    let mut failed = false;
    for _ in 0..4 {
        match r.chunk().await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        failed,
        "a truncated upstream body is a truncated client body"
    );
    drop(r);
    drop(http);
    back_to_baseline(&h, connections, tasks, "reset mid-body").await;

    // Hangs: 504 after the response-header timeout.
    let http = client();
    let r = http
        .get(format!("{}/hang", h.proxy.url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 504);
    assert!(session_set_cookies(&r).is_empty());
    drop(http);
    back_to_baseline(&h, connections, tasks, "hang").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_lost_after_a_refresh_is_recovered_through_the_grace_window() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (old, _) = h.login(true);
    h.idp.set_fault(Fault::Slow(Duration::from_millis(300)));
    // The client gives up while the refresh is in flight: its response, with the new cookie,
    // is never read.
    let lost = tokio::time::timeout(Duration::from_millis(100), h.get("/api/a", &old)).await;
    assert!(lost.is_err(), "the client disconnected before the answer");
    // The refresh is not cancelled with the request.
    while h.metric(r#"token_handler_refreshes_total{outcome="refreshed"}"#) < 1.0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.idp.set_fault(Fault::None);
    let r = h.get("/api/a", &old).await;
    assert_eq!(r.status(), 200, "the old cookie still works");
    assert_eq!(session_set_cookies(&r).len(), 1, "and gets the new one");
    assert_eq!(
        h.idp.refresh_calls(),
        1,
        "without spending the old refresh token again"
    );
}

#[tokio::test]
async fn hostile_cookies_headers_and_smuggling_shapes() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(false);
    let good = jar.session().expect("cookie").clone();
    let statuses = |cookie: String| {
        let http = h.http.clone();
        let url = format!("{}/api/a", h.proxy.url);
        async move {
            http.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("answered")
                .status()
                .as_u16()
        }
    };
    // Oversized Cookie header: JSON 431.
    let big = format!("{COOKIE}={good}; junk={}", "x".repeat(40 * 1024));
    let r = h
        .http
        .get(format!("{}/api/a", h.proxy.url))
        .header("cookie", big)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 431);
    assert_eq!(json(r).await["error"], "request_too_large");
    // Thousands of chunk cookies, malformed pairs, duplicates: never a 500.
    let many: Vec<String> = (1..1000).map(|i| format!("{COOKIE}.{i}=a")).collect();
    assert_eq!(
        statuses(format!("{COOKIE}=3.abc; {}", many.join("; "))).await,
        401
    );
    for malformed in [
        "=;;;==;",
        ";;",
        "=",
        COOKIE,
        &format!("{COOKIE}=="),
        &format!("{COOKIE}=."),
    ] {
        assert_eq!(statuses(malformed.to_string()).await, 401, "{malformed:?}");
    }
    assert_eq!(
        statuses(format!("{COOKIE}={good}; {COOKIE}=garbage")).await,
        200,
        "the first cookie wins"
    );
    assert_eq!(
        statuses(format!("{COOKIE}=garbage; {COOKIE}={good}")).await,
        401
    );
    // Invalid UTF-8 in the Cookie header.
    let response = raw(
        h.proxy.addr,
        &[
            b"GET /api/a HTTP/1.1\r\nHost: x\r\nCookie: a=\xff\xfe; ".as_slice(),
            COOKIE.as_bytes(),
            b"=\xc3(\r\nConnection: close\r\n\r\n",
        ]
        .concat(),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");

    let before = h.echo.records().len();
    // CR inside a header value (an injection attempt): refused before reaching anyone.
    let response = raw(
        h.proxy.addr,
        b"GET /api/a HTTP/1.1\r\nHost: x\r\nX-A: 1\rX-Injected: 1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert_eq!(
        h.echo.records().len(),
        before,
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn request_smuggling_shapes_never_reach_the_upstream_as_two_requests() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public/\"]")],
        KEY1,
    )
    .await;
    // CL + TE (RFC 9112 §6.3): read as chunked, Content-Length dropped, connection closed after
    // one answer: the smuggled second request is never parsed.
    let response = raw(
        h.proxy.addr,
        b"POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /public/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{response}");
    let seen = h.echo.records();
    assert!(
        seen.iter().all(|r| r.uri != "/public/smuggled"),
        "the smuggled request never ran"
    );
    assert!(seen
        .iter()
        .all(|r| r.header("content-length").is_none() || r.header("transfer-encoding").is_none()));
    // Two different Content-Lengths, and a non-final chunked coding: refused outright.
    for smuggle in [
        "POST /public/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        "POST /public/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    ] {
        let before = h.echo.records().len();
        let response = raw(h.proxy.addr, smuggle.as_bytes()).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{smuggle:?} → {response}");
        assert_eq!(h.echo.records().len(), before);
    }
}

#[tokio::test]
async fn slow_headers_and_idle_keep_alive_connections_are_closed() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("server", "header_read_timeout = \"300ms\"")],
        KEY1,
    )
    .await;
    // Slowloris: headers never finish.
    let mut slow = tokio::net::TcpStream::connect(h.proxy.addr)
        .await
        .expect("connect");
    slow.write_all(b"GET /api/a HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), slow.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "the proxy closed a connection whose headers never finished"
    );
    // Slowloris that trickles: a byte of header every 50 ms keeps no connection alive (the
    // limit counts from accept, not from the last byte).
    let trickle = tokio::net::TcpStream::connect(h.proxy.addr)
        .await
        .expect("connect");
    let (mut reader, mut writer) = trickle.into_split();
    let trickling = tokio::spawn(async move {
        let _ = writer
            .write_all(b"GET /api/a HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        while writer.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), reader.read_to_end(&mut buf)).await;
    trickling.abort();
    assert!(
        closed.is_ok(),
        "the proxy closed a connection trickling a header that never ends"
    );
    // Idle keep-alive: one request, then silence.
    let mut idle = tokio::net::TcpStream::connect(h.proxy.addr)
        .await
        .expect("connect");
    idle.write_all(b"GET /auth/session HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(3), idle.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "an idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

/// An upstream that closes a kept-alive connection on its second request without answering,
/// as one whose idle timeout races the proxy's reuse of the connection. It keeps every request
/// head it read, in order.
async fn closing_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = std::sync::Arc::clone(&heads);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let seen = std::sync::Arc::clone(&seen);
            tokio::spawn(async move {
                let mut served = 0;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = buf.drain(..end + 4).collect::<Vec<u8>>();
                        seen.lock()
                            .expect("heads")
                            .push(String::from_utf8_lossy(&head).into_owned());
                        served += 1;
                        if served == 2 {
                            return; // read the request, close without a word
                        }
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                    }
                }
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn an_idempotent_request_is_sent_again_when_a_kept_alive_upstream_connection_closes() {
    let (upstream, heads) = closing_upstream().await;
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let proxy = Proxy::start(
        &config_toml(
            &idp.url(),
            &format!("http://{upstream}"),
            "tokenidp",
            &[("proxy", "public_paths = [\"/\"]")],
        ),
        KEY1,
    )
    .await;
    let http = client();
    let get = |path: &'static str| http.get(format!("{}{path}", proxy.url)).send();
    assert_eq!(get("/first").await.expect("answered").status(), 200);
    // Reuses the pooled connection, which the upstream closes: sent again on a new one.
    let r = get("/second").await.expect("answered");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ok");
    // The request sent again is the one sent first, head for head (the direct client sends
    // the very request it lent; hyper's pool, one rebuilt from the prepared head).
    {
        let heads = heads.lock().expect("heads");
        let second: Vec<&String> = heads
            .iter()
            .filter(|h| h.starts_with("GET /second "))
            .collect();
        assert_eq!(second.len(), 2, "sent, then sent again: {heads:?}");
        assert_eq!(second[0], second[1]);
        assert!(
            second[0]
                .to_ascii_lowercase()
                .contains("\r\nx-forwarded-for: 127.0.0.1\r\n"),
            "{}",
            second[0]
        );
    }
    // A POST is not idempotent: it may have been processed; never sent twice. One client
    // connection (so one worker, and its pool, with `per_core`), one write: a `GET` that
    // leaves a pooled connection having served one request, the `POST` (head and body
    // together: the direct server reads the body whole, and the direct client writes it on
    // that connection), then a request that closes. A body read by hyper's server is
    // streamed, through hyper's pool: a first `POST` gives that pool such a connection.
    let prime: &[u8] =
        if upstream_client() == "direct" && http1_server().as_deref() == Some("hyper") {
            b"POST /prime HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
        } else {
            b""
        };
    let pipeline = [
        &b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        prime,
        b"POST /fourth HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
        b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    .concat();
    let answers = raw(proxy.addr, &pipeline).await;
    let statuses: Vec<&str> = answers
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &answers[at + 9..at + 12])
        .collect();
    let expected: &[&str] = if prime.is_empty() {
        &["200", "502", "200"]
    } else {
        &["200", "200", "502", "200"]
    };
    assert_eq!(statuses, expected, "{answers}");
    assert!(answers.contains("\"upstream_unavailable\""), "{answers}");
    let fourth = heads
        .lock()
        .expect("heads")
        .iter()
        .filter(|h| h.contains("POST /fourth "))
        .count();
    // (This upstream reads no body: a body's bytes lead the next head it records.)
    assert_eq!(fourth, 1, "sent once, never again");
}
