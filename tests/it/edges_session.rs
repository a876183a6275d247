//! Security at the edges, on what the proxy sends back: logout ends every copy of a session,
//! cookie-setting answers are never cacheable, the upstream cannot plant the proxy's cookies,
//! only requested upgrades are tunnelled, and a client's broken body is the client's error.

use crate::support::*;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn logout_ends_every_copy_of_the_session() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (before_refresh, _) = h.login(true);
    let (other, _) = h.login(false);
    // A refresh: the browser now holds `current`; `before_refresh` is a copy taken earlier.
    let r = h.get("/api/a", &before_refresh).await;
    assert_eq!(r.status(), 200);
    let mut current = before_refresh.clone();
    current.update(&r);
    assert_ne!(current, before_refresh);
    let stolen = current.clone();

    let r = h
        .http
        .post(format!("{}/auth/logout", h.proxy.url))
        .header("cookie", current.header())
        .header("x-csrf", "1")
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    let calls = h.idp.refresh_calls();
    let grace_hits = h.metric(r#"token_handler_refreshes_total{outcome="grace_hit"}"#);
    for (copy, jar) in [
        ("taken before logout", &stolen),
        ("pre-refresh, in grace", &before_refresh),
    ] {
        let r = h.get("/api/a", jar).await;
        assert_eq!(r.status(), 401, "{copy}");
        let set = session_set_cookies(&r);
        assert!(
            set.iter().all(|l| l.contains("Max-Age=0")),
            "{copy}: only clearing cookies, never a new session: {set:?}"
        );
        assert_eq!(json(r).await["error"], "login_required", "{copy}");
        let r = h
            .http
            .get(format!("{}/auth/session", h.proxy.url))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("session");
        assert_eq!(json(r).await["authenticated"], false, "{copy}");
    }
    assert_eq!(
        h.idp.refresh_calls(),
        calls,
        "no token was spent for a logged-out session"
    );
    assert_eq!(
        h.metric(r#"token_handler_refreshes_total{outcome="grace_hit"}"#),
        grace_hits,
        "the grace window does not undo the logout"
    );
    assert_eq!(
        h.get("/api/a", &other).await.status(),
        200,
        "other sessions live on"
    );
}

#[tokio::test]
async fn answers_that_set_a_session_cookie_and_auth_answers_are_never_stored() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    // The upstream says `public, max-age=600`; the refreshed session's cookie rides along.
    let (expired, _) = h.login(true);
    let r = h.get("/cacheable", &expired).await;
    assert_eq!(r.status(), 200);
    assert_eq!(session_set_cookies(&r).len(), 1);
    assert_eq!(r.headers()["cache-control"], "no-store");
    // Nothing of ours set: the upstream's caching stands.
    let (fresh, _) = h.login(false);
    let r = h.get("/cacheable", &fresh).await;
    assert!(session_set_cookies(&r).is_empty());
    assert_eq!(r.headers()["cache-control"], "public, max-age=600");

    for (method, path) in [
        ("GET", "/auth/session"),
        ("GET", "/auth/login?return_to=/x"),
        ("GET", "/auth/login?return_to=//evil.example"),
        ("GET", "/auth/callback?state=nope&code=x"),
        ("POST", "/auth/logout"),
        ("POST", "/auth/session"),
        ("GET", "/auth/nothing-here"),
    ] {
        let r = h
            .http
            .request(
                method.parse().expect("method"),
                format!("{}{path}", h.proxy.url),
            )
            .header("x-csrf", "1")
            .send()
            .await
            .expect("answered");
        assert_eq!(r.headers()["cache-control"], "no-store", "{method} {path}");
    }
}

#[tokio::test]
async fn the_upstream_cannot_set_the_proxys_own_cookies() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(false);
    let r = h.get("/plant", &jar).await;
    assert_eq!(r.status(), 200);
    assert_eq!(set_cookies(&r), ["app_cookie=1; Path=/"]);
}

/// An upstream that answers every request with `101 Switching Protocols` to `upgrade` (and a
/// given `Sec-WebSocket-Accept`), recording each request head it read.
async fn switching_upstream(
    upgrade: &'static str,
    accept: &'static str,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {upgrade}\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                // Whatever comes next would be tunnelled raw: record it too.
                let mut rest = Vec::new();
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    stream.read_to_end(&mut rest),
                )
                .await;
                if !rest.is_empty() {
                    let _ = tx.send(String::from_utf8_lossy(&rest).into_owned());
                }
            });
        }
    });
    (addr, rx)
}

async fn proxy_in_front_of(
    upstream: SocketAddr,
) -> (Proxy, token_handler::demo::tokenidp::TokenIdp) {
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let toml = config_toml(
        &idp.url(),
        &format!("http://{upstream}"),
        "tokenidp",
        &[("proxy", "public_paths = [\"/public\"]")],
    );
    (Proxy::start(&toml, KEY1).await, idp)
}

#[tokio::test]
async fn only_requested_websocket_upgrades_are_tunnelled_and_the_101_is_checked() {
    // An h2c (or any other) upgrade is not forwarded; a 101 the client did not ask for is
    // refused, and what the client sends next is not tunnelled raw to the upstream.
    let (upstream, mut heads) = switching_upstream("h2c", "x").await;
    let (proxy, _idp) = proxy_in_front_of(upstream).await;
    for request in [
        "GET /public/a HTTP/1.1\r\nHost: app\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /admin HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer forged\r\nConnection: close\r\n\r\n",
        "GET /public/a HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
        "GET /public/a HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: TLS/1.0\r\n\r\nGET /admin HTTP/1.1\r\nHost: app\r\nAuthorization: Bearer forged\r\nConnection: close\r\n\r\n",
    ] {
        let answer = raw(proxy.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 502"), "{request:?} → {answer}");
        assert!(!answer.contains("101"), "{answer}");
        let head = heads.recv().await.expect("the upstream saw the request");
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("upgrade:"), "the Upgrade header was dropped: {head}");
        assert!(!lower.contains("http2-settings"), "{head}");
    }
    // Nothing but request heads reached the upstream: no raw bytes behind a 101.
    while let Ok(seen) = heads.try_recv() {
        assert!(seen.starts_with("GET /"), "tunnelled: {seen}");
        assert!(
            !seen.contains("forged") || seen.starts_with("GET /admin"),
            "{seen}"
        );
    }

    // A WebSocket 101 whose accept value does not match the client's key: refused.
    let (upstream, _heads) = switching_upstream("websocket", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=").await;
    let (proxy, _idp) = proxy_in_front_of(upstream).await;
    let answer = raw(
        proxy.addr,
        b"GET /public/ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    // The matching accept value (RFC 6455 §1.3's example) is tunnelled.
    let (upstream, _heads) = switching_upstream("websocket", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=").await;
    let (proxy, _idp) = proxy_in_front_of(upstream).await;
    let answer = raw(
        proxy.addr,
        b"GET /public/ws HTTP/1.1\r\nHost: app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
}

#[tokio::test]
async fn a_malformed_request_body_is_the_clients_error_not_the_upstreams() {
    let capture = logs::capture();
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public\"]")],
        KEY1,
    )
    .await;
    for (case, body) in [
        ("bare LF after a chunk size", "5\nhello\r\n0\r\n\r\n"),
        ("junk after chunk data", "3\r\nabcXYZ\r\n0\r\n\r\n"),
        (
            "overflowing chunk size",
            "FFFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n",
        ),
        ("not hex", "zz\r\nx\r\n0\r\n\r\n"),
    ] {
        let request = format!(
            "POST /public/upload-{} HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
            case.len()
        );
        let answer = raw(h.proxy.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{case}: {answer}");
        assert!(answer.contains("bad_request"), "{case}: {answer}");
    }
    let log = capture.text();
    assert!(
        log.lines()
            .any(|l| l.contains("request{method=POST route=\"public\"") && l.contains("status=400")),
        "the proxy's answers were captured:\n{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("upstream")),
        "no upstream alert for a client's framing error:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_tunnels_count_against_the_connection_limit() {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("server", "max_connections = 2"),
            ("proxy", "public_paths = [\"/ws\"]"),
        ],
        KEY1,
    )
    .await;
    let url = format!("ws://{}/ws", h.proxy.addr);
    let (first, _) = tokio_tungstenite::connect_async(&url).await.expect("first");
    let (_second, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("second");
    match tokio_tungstenite::connect_async(&url).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("a third tunnel was opened: {:?}", other.map(|_| ())),
    }
    drop(first);
    let reopened = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            if tokio_tungstenite::connect_async(&url).await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "a closed tunnel frees its slot");
}
