//! Proxy behaviour around the refresh path: sessions, CSRF, headers, failures, streaming,
//! upgrades, cookie chunking and key rotation. Real proxy, emulator and echo upstream.

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use token_handler::crypto::KeyRing;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn no_session_gets_a_401_json_never_a_redirect() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let response = h.get("/api/a", &Jar::default()).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().get("location").is_none());
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = json(response).await;
    assert_eq!(body["error"], "login_required");
    assert!(body["message"].is_string());
    assert!(h.echo.records().is_empty());
}

#[tokio::test]
async fn public_paths_are_forwarded_anonymously() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public/\"]")],
        KEY1,
    )
    .await;
    let response = h.get("/public/logo.png", &Jar::default()).await;
    assert_eq!(response.status(), 200);
    assert!(h.echo.last().header("authorization").is_none());
    let protected = h.get("/api/a", &Jar::default()).await;
    assert_eq!(protected.status(), 401);
}

#[tokio::test]
async fn tampered_truncated_and_forged_cookies_are_no_session_unknown_keys_are_left_alone() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, issued) = h.login(false);
    let good = jar.session().expect("session cookie").clone();
    // A value forged under our key id with another key: invalid.
    let forged = {
        let other = KeyRing::parse(&KEY2.replace("k2:", "k1:")).expect("key");
        other.seal(
            COOKIE,
            format!(
                r#"{{"r":"{}","a":"x","e":0,"n":0,"t":0}}"#,
                issued.refresh_token
            )
            .as_bytes(),
        )
    };
    let mut flipped = good.clone().into_bytes();
    let mid = flipped.len() / 2;
    flipped[mid] = if flipped[mid] == b'A' { b'B' } else { b'A' };
    let cases = [
        String::from_utf8(flipped).expect("ascii"),
        good[..good.len() / 2].to_string(),
        forged,
        "garbage".to_string(),
        "5.abc".to_string(),
        String::new(),
    ];
    for value in cases {
        let mut bad = Jar::default();
        bad.0.insert(COOKIE.into(), value.clone());
        let response = h.get("/api/a", &bad).await;
        assert_eq!(response.status(), 401, "cookie {value:?}");
        let cleared = session_set_cookies(&response);
        assert!(
            cleared
                .iter()
                .any(|l| l.starts_with(&format!("{COOKIE}=;")) && l.contains("Max-Age=0")),
            "{cleared:?}"
        );
        assert_eq!(json(response).await["error"], "login_required");
    }
    // Sealed with a key id this replica does not hold (a rotation that has not reached it
    // yet): not judged, not cleared, 503 so that the SPA retries.
    let from_the_future = KeyRing::parse(KEY2)
        .expect("key")
        .seal(COOKIE, b"a session this replica cannot read yet");
    let mut ahead = Jar::default();
    ahead.0.insert(COOKIE.into(), from_the_future);
    let response = h.get("/api/a", &ahead).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(session_set_cookies(&response).is_empty(), "never cleared");
    assert_eq!(json(response).await["error"], "key_unavailable");
    assert_eq!(h.idp.token_calls(), 0);
    assert!(h.echo.records().is_empty());
}

#[tokio::test]
async fn key_rotation_keeps_sessions_and_reseals_with_the_new_key() {
    let old = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = old.login(false);
    // Same IdP and upstream, new proxy whose ring is "k2 (new, seals), k1 (old, opens)".
    let rotated = Proxy::start(
        &config_toml(&old.idp.url(), &old.echo.url(), "tokenidp", &[]),
        &format!("{KEY2},{KEY1}"),
    )
    .await;
    let response = old
        .http
        .get(format!("{}/api/a", rotated.url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200, "the old key still opens");
    let mut new_jar = jar.clone();
    new_jar.update(&response);
    assert_ne!(
        new_jar.session(),
        jar.session(),
        "re-sealed on this response"
    );
    let only_new = KeyRing::parse(KEY2).expect("k2");
    assert!(
        only_new
            .open(COOKIE, new_jar.session().expect("cookie"))
            .is_some(),
        "sealed with k2"
    );
    assert_eq!(old.idp.token_calls(), 0, "no refresh needed for a re-seal");
}

#[tokio::test]
async fn csrf_is_checked_before_any_refresh() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(true);
    let post = |extra: Vec<(&'static str, String)>| {
        let mut r = h
            .http
            .post(format!("{}/api/orders", h.proxy.url))
            .header("cookie", jar.header())
            .body("{}");
        for (k, v) in extra {
            r = r.header(k, v);
        }
        r.send()
    };
    let refused = post(vec![]).await.expect("answered");
    assert_eq!(refused.status(), 403);
    assert_eq!(json(refused).await["error"], "csrf_check_failed");
    let evil = post(vec![
        ("x-csrf", "1".into()),
        ("origin", "https://evil.example".into()),
    ])
    .await
    .expect("answered");
    assert_eq!(evil.status(), 403);
    assert_eq!(
        h.idp.token_calls(),
        0,
        "a forged request never spends the refresh token"
    );
    for method in ["PUT", "PATCH", "DELETE"] {
        let r = h
            .http
            .request(
                method.parse().expect("method"),
                format!("{}/api/orders/1", h.proxy.url),
            )
            .header("cookie", jar.header())
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), 403, "{method}");
    }
    let same_origin = post(vec![
        ("x-csrf", "1".into()),
        ("origin", h.proxy.url.clone()),
    ])
    .await
    .expect("answered");
    assert_eq!(same_origin.status(), 200);
    let no_origin = post(vec![("x-csrf", "1".into())]).await.expect("answered");
    assert_eq!(no_origin.status(), 200);
    assert_eq!(h.echo.last().method, "POST");
}

#[tokio::test]
async fn browser_authorization_is_replaced_or_rejected() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, issued) = h.login(false);
    let response = h
        .http
        .get(format!("{}/api/a", h.proxy.url))
        .header("cookie", jar.header())
        .header("authorization", "Bearer stolen")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(
        h.echo.last().header("authorization"),
        Some(format!("Bearer {}", issued.access_token))
    );

    let strict = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "browser_authorization = \"reject\"")],
        KEY1,
    )
    .await;
    let (jar, _) = strict.login(false);
    let refused = strict
        .http
        .get(format!("{}/api/a", strict.proxy.url))
        .header("cookie", jar.header())
        .header("authorization", "Bearer stolen")
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 400);
    assert_eq!(json(refused).await["error"], "bad_request");
}

#[tokio::test]
async fn hop_by_hop_headers_go_and_forwarded_headers_are_set() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(false);
    let response = h
        .http
        .get(format!("{}/api/a", h.proxy.url))
        .header("cookie", jar.header())
        .header("connection", "x-hop")
        .header("x-hop", "secret-hop")
        .header("proxy-authorization", "Basic eDp5")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-end-to-end", "kept")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let seen = h.echo.last();
    assert!(seen.header("x-hop").is_none(), "named in Connection");
    assert!(seen.header("proxy-authorization").is_none());
    assert_eq!(seen.header("x-end-to-end").as_deref(), Some("kept"));
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("127.0.0.1"),
        "untrusted XFF is replaced"
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host"),
        Some(h.proxy.addr.to_string())
    );
    assert_eq!(
        seen.header("host"),
        Some(h.proxy.addr.to_string()),
        "the browser's Host is kept"
    );
}

#[tokio::test]
async fn upstream_failures_never_touch_the_session() {
    // An upstream that refuses connections: bind a port, then free it.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let proxy = Proxy::start(&config_toml(&idp.url(), &dead, "tokenidp", &[]), KEY1).await;
    let issued = idp.issue(CLIENT_ID, "demo", SCOPE);
    let fresh = seal(&proxy.app, &issued, false);
    let http = client();
    let response = http
        .get(format!("{}/api/a", proxy.url))
        .header("cookie", fresh.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 502);
    assert!(
        session_set_cookies(&response).is_empty(),
        "session unchanged"
    );
    assert_eq!(json(response).await["error"], "upstream_unavailable");

    // A refresh that happened before the upstream failed still reaches the browser.
    let issued = idp.issue(CLIENT_ID, "demo", SCOPE);
    let expired = seal(&proxy.app, &issued, true);
    let response = http
        .get(format!("{}/api/a", proxy.url))
        .header("cookie", expired.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 502);
    let lines = session_set_cookies(&response);
    assert_eq!(
        lines.len(),
        1,
        "the rotated session is delivered with the 502"
    );
    assert!(!lines[0].contains("Max-Age=0"));

    // A hanging upstream: 504 after response_header_timeout.
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(false);
    let response = h.get("/hang", &jar).await;
    assert_eq!(response.status(), 504);
    assert!(session_set_cookies(&response).is_empty());
    assert_eq!(json(response).await["error"], "upstream_timeout");
}

#[tokio::test]
async fn websocket_tunnels_through_after_the_session_and_origin_checks() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, issued) = h.login(true);
    let url = format!("ws://{}/ws", h.proxy.addr);

    let mut no_origin = url.as_str().into_client_request().expect("request");
    no_origin
        .headers_mut()
        .insert("cookie", jar.header().parse().expect("hv"));
    assert!(
        tokio_tungstenite::connect_async(no_origin).await.is_err(),
        "Origin is required"
    );

    let mut request = url.as_str().into_client_request().expect("request");
    request
        .headers_mut()
        .insert("cookie", jar.header().parse().expect("hv"));
    request
        .headers_mut()
        .insert("origin", h.proxy.url.parse().expect("hv"));
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade through the proxy");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("ping through the proxy"))
        .await
        .expect("send");
    let echoed = ws.next().await.expect("a message").expect("ok");
    assert_eq!(
        echoed.into_text().expect("text").as_str(),
        "ping through the proxy"
    );
    ws.close(None).await.ok();

    let seen = h
        .echo
        .records()
        .into_iter()
        .find(|r| r.uri == "/ws")
        .expect("upstream saw the handshake");
    let bearer = seen.header("authorization").expect("bearer");
    assert!(
        bearer.starts_with("Bearer ") && !bearer.ends_with(&issued.access_token),
        "refreshed first"
    );
    assert!(seen.header("cookie").is_none());
    assert_eq!(h.idp.refresh_calls(), 1);

    let mut anonymous = url.as_str().into_client_request().expect("request");
    anonymous
        .headers_mut()
        .insert("origin", h.proxy.url.parse().expect("hv"));
    assert!(
        tokio_tungstenite::connect_async(anonymous).await.is_err(),
        "no session, no tunnel"
    );
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_a_busy_one_is_not_reused() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(false);
    for _ in 0..3 {
        assert_eq!(h.get("/api/a", &jar).await.status(), 200);
    }
    let connections = |records: &[crate::support::echo::Recorded]| {
        records.iter().map(|r| r.connection).collect::<Vec<_>>()
    };
    assert_eq!(
        connections(&h.echo.records()),
        [0, 0, 0],
        "one kept-alive connection"
    );

    // While a response body is still streaming on that connection, the next request goes out
    // on a new one (and is answered), rather than queueing behind the stream.
    let mut streaming = h.get("/stream", &jar).await;
    assert_eq!(
        &streaming.chunk().await.expect("read").expect("chunk")[..],
        b"first;"
    );
    assert_eq!(h.get("/api/b", &jar).await.status(), 200);
    h.echo.release.notify_one();
    while streaming.chunk().await.expect("read").is_some() {}
    // A connection goes back to the pool when its response has been read to the end: the
    // streaming one came back last and is taken first.
    assert_eq!(h.get("/api/c", &jar).await.status(), 200);
    let records = h.echo.records();
    assert_eq!(connections(&records), [0, 0, 0, 0, 1, 0]);
    assert_eq!(records[5].uri, "/api/c", "origin-form request target");
}

#[tokio::test]
async fn responses_and_uploads_stream_without_buffering() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(false);

    // Download: the first chunk arrives while the upstream still holds the second.
    let mut response = h.get("/stream", &jar).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.expect("read").expect("a chunk");
    assert_eq!(&first[..], b"first;");
    h.echo.release.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.expect("read") {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"second");

    // Upload: the upstream sees the first chunk before the client sends the second.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let request = h
        .http
        .post(format!("{}/upload", h.proxy.url))
        .header("cookie", jar.header())
        .header("x-csrf", "1")
        .body(body)
        .send();
    let pending = tokio::spawn(request);
    tx.send(Ok(bytes::Bytes::from_static(b"part-one")))
        .await
        .expect("send");
    let seen = h.echo.next_upload_chunk().await.expect("chunk");
    assert_eq!(&seen[..], b"part-one", "streamed before the body ended");
    tx.send(Ok(bytes::Bytes::from_static(b"part-two")))
        .await
        .expect("send");
    drop(tx);
    let response = pending.await.expect("task").expect("answered");
    assert_eq!(response.text().await.expect("body"), "received 16 bytes");
}

#[tokio::test]
async fn large_sessions_are_chunked_and_stale_chunks_cleared_after_refresh() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let issued = h.idp.issue(CLIENT_ID, "demo", SCOPE);
    let now = token_handler::refresh::unix_now();
    let session = token_handler::session::Session {
        id: "big".into(),
        refresh_token: token_handler::secret::RefreshToken::new(issued.refresh_token.clone()),
        access_token: token_handler::secret::AccessToken::new(issued.access_token.clone()),
        access_expires_at: now - 10,
        access_issued_at: now - 310,
        scope: SCOPE.into(),
        claims: Default::default(),
        // A huge ID token (some IdPs put group lists in them): the refresh replaces it.
        id_token: Some(token_handler::secret::IdToken::new("x".repeat(9000))),
        started_at: now,
        sub: None,
        sid: None,
        last_used_at: 0,
        dpop: None,
        dpop_bound: false,
    };
    let mut jar = Jar::default();
    for line in h.proxy.app.codec.seal(&session, now) {
        jar.set(line.to_str().expect("ascii"));
    }
    assert!(jar.0.len() >= 3, "chunked into {} cookies", jar.0.len());
    jar.0.insert("app".into(), "1".into());
    let response = h.get("/api/a?q=1", &jar).await;
    assert_eq!(response.status(), 200);
    // The head's other fields and its target were copied off the large read buffer: intact.
    let seen = h.echo.last();
    assert_eq!(seen.uri, "/api/a?q=1");
    assert_eq!(
        seen.header("cookie").as_deref(),
        Some("app=1"),
        "no chunk reaches upstream"
    );
    // The refreshed token (the sealed one had expired).
    assert!(seen
        .header("authorization")
        .is_some_and(|v| v.starts_with("Bearer ") && v.len() > 20));
    assert!(seen
        .header("x-forwarded-host")
        .is_some_and(|v| !v.is_empty()));
    jar.update(&response);
    let names: Vec<&String> = jar.0.keys().collect();
    assert!(jar.session().is_some(), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with(&format!("{COOKIE}."))),
        "stale chunks cleared: {names:?}"
    );
    let again = h.get("/api/a", &jar).await;
    assert_eq!(again.status(), 200, "the shrunk session opens");
    assert_eq!(h.idp.refresh_calls(), 1);
}
