//! Security at the edges, one corpus per class of attack, against the real proxy in front of
//! the TokenIDP emulator and a recording upstream: path spellings, spoofed forwarding headers
//! and Host values, methods (post-login redirects: `edges_return_to.rs`).

use crate::support::*;

/// What each path spelling becomes with `protected_paths = ["/api"]` and
/// `public_paths = ["/api/public"]`, without a session.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Refused,
    LoginRequired,
    Forwarded(&'static str),
}

const PATHS: &[(&str, Fate)] = &[
    ("/api/public/../admin", Fate::Refused),
    ("/api/public/./admin", Fate::Refused),
    ("/api/public/%2e%2e/admin", Fate::Refused),
    ("/api/public/.%2E/admin", Fate::Refused),
    ("/api/public%2F..%2Fadmin", Fate::Refused),
    ("/api/public%2f..%2fadmin", Fate::Refused),
    ("/api/public/..;/admin", Fate::Refused),
    ("/api/public;/../admin", Fate::Refused),
    ("/api/public/%252e%252e/admin", Fate::Refused),
    ("/api/public/%25%32%65%25%32%65/admin", Fate::Refused),
    ("/api/public%5C..%5Cadmin", Fate::Refused),
    ("/api/public/%00/x", Fate::Refused),
    ("/api/public/%zz", Fate::Refused),
    ("//api/admin", Fate::Refused),
    ("/api//public/x", Fate::Refused),
    ("/%61pi/admin", Fate::LoginRequired),
    ("/API/admin", Fate::LoginRequired),
    ("/api;v=1/admin", Fate::LoginRequired),
    ("/api/publicity", Fate::LoginRequired),
    ("/api/PUBLIC/x", Fate::LoginRequired),
    ("/api", Fate::LoginRequired),
    ("/api/public", Fate::Forwarded("/api/public")),
    ("/api/public/x?y=1", Fate::Forwarded("/api/public/x?y=1")),
    ("/api/%70ublic/x", Fate::Forwarded("/api/public/x")),
    (
        "/api/public/a%20b/%C3%A9",
        Fate::Forwarded("/api/public/a%20b/%C3%A9"),
    ),
    ("/api/public/", Fate::Forwarded("/api/public/")),
    ("/apix", Fate::Forwarded("/apix")),
];

#[tokio::test]
async fn path_spellings_are_decided_on_the_path_the_upstream_routes() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("proxy", "protected_paths = [\"/api\"]"),
            ("proxy", "public_paths = [\"/api/public\"]"),
        ],
        KEY1,
    )
    .await;
    for (path, fate) in PATHS {
        let before = h.echo.records().len();
        let request = format!("GET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n");
        let answer = raw(h.proxy.addr, request.as_bytes()).await;
        let seen: Vec<_> = h.echo.records().into_iter().skip(before).collect();
        match fate {
            Fate::Refused => {
                assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
                assert!(answer.contains("bad_request"), "{path}: {answer}");
            }
            Fate::LoginRequired => {
                assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}")
            }
            Fate::Forwarded(expected) => {
                assert!(answer.starts_with("HTTP/1.1 200"), "{path}: {answer}");
                assert_eq!(seen.len(), 1, "{path}");
                assert_eq!(seen[0].uri, *expected, "{path}");
            }
        }
        if !matches!(fate, Fate::Forwarded(_)) {
            assert!(seen.is_empty(), "{path} reached the upstream: {seen:?}");
        }
    }
    // A backslash in the request target never reaches the upstream either.
    let before = h.echo.records().len();
    let answer = raw(
        h.proxy.addr,
        b"GET /api/public\\..\\admin HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(h.echo.records().len(), before);
    // The proxy's own endpoints are found by the same rule.
    let answer = raw(
        h.proxy.addr,
        b"GET /%61uth/session HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.contains("\"authenticated\":false"), "{answer}");
    assert_eq!(h.echo.records().len(), before);
}

const SPOOFED: &[&str] = &[
    "Forwarded: for=1.2.3.4;proto=https;host=evil.example",
    "X-Forwarded-For: 1.2.3.4",
    "X-Forwarded-Proto: https",
    "X-Forwarded-Host: evil.example",
    "X-Forwarded-Port: 443",
    "X-Forwarded-Prefix: /admin",
    "X-Forwarded-Client-Cert: Hash=abc;Subject=\"CN=admin\"",
    "X-Real-IP: 1.2.3.4",
    "X-Client-IP: 1.2.3.4",
    "True-Client-IP: 1.2.3.4",
    "X-Original-URL: /admin",
    "X-Rewrite-URL: /admin",
    "X-Original-Forwarded-For: 1.2.3.4",
    "X_Forwarded_For: 1.2.3.4",
    "X-Real_IP: 1.2.3.4",
];

fn spoofing_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: app.example.com\r\n{}\r\nConnection: close\r\n\r\n",
        SPOOFED.join("\r\n")
    )
}

#[tokio::test]
async fn forwarding_headers_are_the_proxys_own_unless_a_trusted_proxy_sent_them() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public\"]")],
        KEY1,
    )
    .await;
    let answer = raw(h.proxy.addr, spoofing_request("/public/a").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = h.echo.last();
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("app.example.com")
    );
    let names: Vec<&str> = seen.headers.keys().map(|n| n.as_str()).collect();
    for name in &names {
        assert!(!name.contains('_'), "{name} reached the upstream");
        assert!(
            !["forwarded", "x-real-ip", "x-client-ip", "true-client-ip"].contains(name)
                && !name.starts_with("x-original-")
                && !name.starts_with("x-rewrite-")
                && (!name.starts_with("x-forwarded-")
                    || ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"].contains(name)),
            "{name} reached the upstream from an untrusted client"
        );
    }

    // From a listed proxy they are kept (the address is appended); underscores never are.
    let trusted = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("proxy", "public_paths = [\"/public\"]"),
            ("server", "trusted_proxies = [\"127.0.0.0/8\"]"),
        ],
        KEY1,
    )
    .await;
    let answer = raw(trusted.proxy.addr, spoofing_request("/public/a").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = trusted.echo.last();
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("1.2.3.4, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.header("x-real-ip").as_deref(), Some("1.2.3.4"));
    assert!(seen.header("forwarded").is_some());
    assert!(seen.headers.keys().all(|n| !n.as_str().contains('_')));
}

#[tokio::test]
async fn one_valid_host_or_400() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public\"]")],
        KEY1,
    )
    .await;
    for (case, head) in [
        ("missing", "GET /public/a HTTP/1.1\r\n"),
        (
            "duplicate",
            "GET /public/a HTTP/1.1\r\nHost: app\r\nHost: evil.example\r\n",
        ),
        (
            "userinfo",
            "GET /public/a HTTP/1.1\r\nHost: evil.example@app\r\n",
        ),
        ("path", "GET /public/a HTTP/1.1\r\nHost: app/x\r\n"),
        ("bad port", "GET /public/a HTTP/1.1\r\nHost: app:99999\r\n"),
        ("empty", "GET /public/a HTTP/1.1\r\nHost: \r\n"),
        (
            "comma",
            "GET /public/a HTTP/1.1\r\nHost: app,evil.example\r\n",
        ),
    ] {
        let before = h.echo.records().len();
        let answer = raw(
            h.proxy.addr,
            format!("{head}Connection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{case}: {answer}");
        assert_eq!(h.echo.records().len(), before, "{case}");
    }
    // An absolute-form target's authority wins over Host (RFC 9112 §3.2.2).
    let answer = raw(
        h.proxy.addr,
        b"GET http://app.example.com/public/a HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        h.echo.last().header("host").as_deref(),
        Some("app.example.com")
    );
    assert_eq!(
        h.echo.last().header("x-forwarded-host").as_deref(),
        Some("app.example.com")
    );
}

#[tokio::test]
async fn http2_authority_wins_over_a_host_header() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public\"]")],
        KEY1,
    )
    .await;
    let tcp = tokio::net::TcpStream::connect(h.proxy.addr)
        .await
        .expect("connect");
    let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2c");
    tokio::spawn(connection);
    let request = http::Request::builder()
        .uri("http://app.example.com/public/h2")
        .header("host", "evil.example")
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("sent");
    let response = response.await.expect("answered");
    assert_eq!(response.status(), 200);
    let seen = h.echo.last();
    assert_eq!(seen.header("host").as_deref(), Some("app.example.com"));
}

#[tokio::test]
async fn every_state_changing_method_needs_the_csrf_header_and_trace_connect_are_refused() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(false);
    let send = |method: &'static [u8], csrf: bool, extra: Option<(&'static str, &'static str)>| {
        let mut request = h
            .http
            .request(
                reqwest::Method::from_bytes(method).expect("method"),
                format!("{}/api/things", h.proxy.url),
            )
            .header("cookie", jar.header());
        if csrf {
            request = request.header("x-csrf", "1");
        }
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        async move { request.send().await.expect("answered").status().as_u16() }
    };
    for method in [
        b"POST".as_slice(),
        b"post",
        b"PUT",
        b"PATCH",
        b"DELETE",
        b"PROPFIND",
        b"MKCOL",
        b"LOCK",
        b"FOO",
    ] {
        let method: &'static [u8] = method;
        let name = String::from_utf8_lossy(method);
        assert_eq!(
            send(method, false, None).await,
            403,
            "{name} without x-csrf"
        );
        assert_eq!(send(method, true, None).await, 200, "{name} with x-csrf");
    }
    for override_header in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        assert_eq!(
            send(b"GET", false, Some((override_header, "DELETE"))).await,
            403,
            "{override_header}"
        );
    }
    assert_eq!(send(b"GET", false, None).await, 200);
    assert_eq!(send(b"OPTIONS", false, None).await, 200);
    let before = h.echo.records().len();
    assert_eq!(send(b"TRACE", true, None).await, 405);
    let answer = raw(
        h.proxy.addr,
        format!(
            "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\nCookie: {}\r\nConnection: close\r\n\r\n",
            jar.header()
        )
        .as_bytes(),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert_eq!(
        h.echo.records().len(),
        before,
        "neither reached the upstream"
    );
}

/// What the upstream gets of a public request's `Cookie` fields (the proxy's own cookies never,
/// stray names of theirs included; the app's exactly, HTTP/1.1 style in one field) and of the
/// headers its `Connection` names (removed, even after a token that is not text).
#[tokio::test]
async fn the_upstream_gets_the_apps_cookies_only_and_no_connection_named_header() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public\"]")],
        KEY1,
    )
    .await;
    let stray = format!("{COOKIE}.9=stray");
    let cases: [(&str, String, Option<&str>); 6] = [
        ("no Cookie", String::new(), None),
        (
            "the app's only",
            "Cookie: app=1; b=2\r\n".into(),
            Some("app=1; b=2"),
        ),
        (
            "two fields",
            "Cookie: app=1\r\nCookie: b=2\r\n".into(),
            Some("app=1; b=2"),
        ),
        (
            "a stray name of ours",
            format!("Cookie: {stray}; app=1\r\n"),
            Some("app=1"),
        ),
        (
            "only a stray name of ours",
            format!("Cookie: {stray}\r\n"),
            None,
        ),
        (
            "a broken session",
            format!("Cookie: {COOKIE}=garbage\r\n"),
            None,
        ),
    ];
    for (case, cookies, expected) in cases {
        let request = format!(
            "GET /public/a HTTP/1.1\r\nHost: app.example.com\r\n{cookies}Connection: close\r\n\r\n"
        );
        let answer = raw(h.proxy.addr, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{case}: {answer}");
        let want: Vec<&[u8]> = expected.iter().map(|v| v.as_bytes()).collect();
        assert_eq!(fields(&h.echo.last(), "cookie"), want, "{case}");
    }

    let mut request =
        b"GET /public/a HTTP/1.1\r\nHost: app.example.com\r\nConnection: x-caf".to_vec();
    request.extend_from_slice(
        b"\xc3\xa9, x-hop\r\nX-Hop: 1\r\nX-Kept: 1\r\nConnection: close\r\n\r\n",
    );
    let answer = raw(h.proxy.addr, &request).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = h.echo.last();
    assert_eq!(seen.header("x-hop"), None, "a header Connection names");
    assert_eq!(seen.header("x-kept").as_deref(), Some("1"));
    assert_eq!(seen.header("host").as_deref(), Some("app.example.com"));

    // `Host` named in `Connection` is taken away with the others, and set again, checked.
    let request = "GET /public/a HTTP/1.1\r\nHost: app.example.com\r\nConnection: host\r\n\
                   Connection: close\r\n\r\n";
    let answer = raw(h.proxy.addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(fields(&h.echo.last(), "host"), [b"app.example.com"]);
}

/// Every value of the header `name` the upstream received, as bytes.
fn fields(seen: &echo::Recorded, name: &str) -> Vec<Vec<u8>> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.as_bytes().to_vec())
        .collect()
}
