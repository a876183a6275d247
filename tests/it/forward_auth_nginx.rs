//! A real nginx (Debian's) in front of the echo API, asking the proxy's forward-auth listener
//! about every `/api/` call (`auth_request`) with the config the README documents
//! (`support/nginx_forward_auth.conf`), and routing `/auth/` to the proxy's main listener:
//! a login through nginx, the token reaching the API and never the browser, refresh and its
//! cookie, refusals as the proxy's JSON, the IdP down, and 100 calls at expiry sharing one
//! refresh. Every answer nginx gives is scanned for every token the IdP issued.

use crate::support::nginx::{Nginx, StartError};
use crate::support::nginx_gateway::{gateway, gateway_with, update};
use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use token_handler::demo::tokenidp::Fault;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_login_through_nginx_and_the_token_reaches_the_api_only() {
    let g = gateway(&[]).await;
    let jar = g.browser_login().await;
    assert!(g.nginx.access_log().contains("\"GET /auth/callback?"));
    let r = g.get("/api/items?page=2", &jar).await;
    assert_eq!(r.status, 200, "{}", g.nginx.error_log());
    assert_eq!(r.json()["had_bearer"], true);
    let bearer = g.bearers("/api/items?page=2")[0].clone().expect("a Bearer");
    let token = bearer.strip_prefix("Bearer ").expect("Bearer");
    assert!(g.h.idp.issued_secrets().iter().any(|s| s == token));
    let record = g.h.echo.last();
    assert_eq!(record.header("host"), Some(g.nginx.url()[7..].to_string()));

    // /auth/session through nginx; logout checks the Origin against the Host nginx passes.
    let session = g.get("/auth/session", &jar).await;
    assert_eq!(session.json()["authenticated"], true);
    let foreign = [("origin", "http://evil.example"), ("x-csrf", "1")];
    let refused = g.send("POST", "/auth/logout", &jar, &foreign, None).await;
    refused.assert_error(403, "csrf_check_failed");
    let origin = g.nginx.url();
    let own = [("origin", origin.as_str()), ("x-csrf", "1")];
    let logout = g.send("POST", "/auth/logout", &jar, &own, None).await;
    assert_eq!(logout.status, 200, "{}", logout.body);
    assert!(logout.json()["logout_url"].is_string());

    // The logged-out cookie: 401, and the browser is told to delete it.
    let after = g.get("/api/items", &jar).await;
    after.assert_error(401, "login_required");
    let cleared = after.session_cookies();
    assert!(!cleared.is_empty() && cleared.iter().all(|l| l.contains("Max-Age=0")));
    assert_eq!(g.bearers("/api/items").len(), 0, "never forwarded");
    g.assert_no_token_reached_the_browser();
}

#[tokio::test]
async fn an_expired_token_is_refreshed_and_the_new_cookie_reaches_the_browser() {
    let g = gateway(&[]).await;
    let (mut jar, issued) = g.h.login(true);
    let r = g.get("/api/items", &jar).await;
    assert_eq!(r.status, 200, "{}", g.nginx.error_log());
    assert_eq!(g.h.idp.refresh_calls(), 1);
    let cookies = r.session_cookies();
    assert!(
        !cookies.is_empty(),
        "the refreshed session, on nginx's answer"
    );
    let before = jar.clone();
    update(&mut jar, &r);
    assert_ne!(jar, before);

    let again = g.get("/api/items", &jar).await;
    assert_eq!(again.status, 200);
    assert!(again.session_cookies().is_empty(), "nothing new to set");
    assert_eq!(
        g.h.idp.refresh_calls(),
        1,
        "the new cookie holds the new token"
    );
    let bearers = g.bearers("/api/items");
    assert_eq!(bearers.len(), 2);
    assert_eq!(bearers[0], bearers[1]);
    assert_ne!(bearers[0], Some(format!("Bearer {}", issued.access_token)));
    g.assert_no_token_reached_the_browser();
}

#[tokio::test]
async fn refusals_reach_the_browser_as_the_proxys_json() {
    let g = gateway(&[("proxy", "public_paths = [\"/api/public\"]")]).await;
    let (jar, issued) = g.h.login(false);
    let r = g.get("/api/items", &Jar::default()).await;
    r.assert_error(401, "login_required");
    let challenge = r.header("www-authenticate");
    assert_eq!(challenge.as_deref(), Some("Cookie realm=\"token-handler\""));
    // A cookie that does not open: 401, and its deletion passed on.
    let mut forged = Jar::default();
    forged.set(&format!("{COOKIE}=not-a-sealed-session; Path=/"));
    let r = g.get("/api/items", &forged).await;
    r.assert_error(401, "login_required");
    assert!(r.session_cookies().iter().any(|l| l.contains("Max-Age=0")));
    assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));

    // CSRF: an unsafe method needs the header, and a foreign Origin is refused even with it.
    let sent = "{\"name\":\"x\"}";
    let body = Some(sent);
    let r = g.send("POST", "/api/items", &jar, &[], body).await;
    r.assert_error(403, "csrf_check_failed");
    let evil = [("x-csrf", "1"), ("origin", "http://evil.example")];
    let r = g.send("POST", "/api/items", &jar, &evil, body).await;
    r.assert_error(403, "csrf_check_failed");
    assert!(
        g.h.echo.records().is_empty(),
        "nothing refused was forwarded"
    );
    let origin = g.nginx.url();
    // The browser's own X-Forwarded-Host is replaced by nginx's, not added to.
    let own = [
        ("x-csrf", "1"),
        ("origin", origin.as_str()),
        ("x-forwarded-host", "evil.example"),
    ];
    let r = g.send("POST", "/api/items", &jar, &own, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let record = g.h.echo.last();
    assert_eq!(record.method, "POST");
    assert_eq!(record.body, sent.as_bytes(), "the body reaches the API");
    assert!(record.header("authorization").is_some());

    // A path the proxy itself would refuse: 400, not nginx's 500.
    let r = g.get("/api/a%2fb", &jar).await;
    r.assert_error(400, "bad_request");
    // What the browser says the original request was changes nothing (nginx sets those
    // headers itself, replacing the browser's).
    let sneaky = [
        ("x-original-uri", "/auth/login"),
        ("x-original-method", "GET"),
        ("x-original-url", "http://127.0.0.1/auth/login"),
        ("x-forwarded-uri", "/auth/login"),
    ];
    let r = g
        .send("GET", "/api/items", &Jar::default(), &sneaky, None)
        .await;
    r.assert_error(401, "login_required");
    // The browser's own Authorization: replaced by the session's token; without a session
    // (a public path) passed on, as the inline proxy does.
    let own_token = [("authorization", "Bearer from-the-browser")];
    let r = g.send("GET", "/api/mine", &jar, &own_token, None).await;
    assert_eq!(r.status, 200);
    let bearer = format!("Bearer {}", issued.access_token);
    assert_eq!(g.h.echo.last().header("authorization"), Some(bearer));
    let anonymous = Jar::default();
    let r = g
        .send("GET", "/api/public/x", &anonymous, &own_token, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let own = Some(own_token[0].1.to_string());
    assert_eq!(g.h.echo.last().header("authorization"), own);
    let r = g.get("/api/public/y", &anonymous).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(g.h.echo.last().header("authorization"), None);
    let forwarded = g.h.echo.records().len();
    assert_eq!(forwarded, 4, "only what was allowed went through");
    g.assert_no_token_reached_the_browser();
}

#[tokio::test]
async fn the_idp_down_is_a_503_with_retry_after_and_the_session_kept() {
    let g = gateway(&[]).await;
    let (jar, _) = g.h.login(true);
    g.h.idp.set_fault(Fault::Down);
    let r = g.get("/api/items", &jar).await;
    r.assert_error(503, "idp_unavailable");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("secs");
    assert!(retry >= 1);
    assert!(
        r.header("set-cookie").is_none(),
        "the session is kept: {:?}",
        r.headers
    );
    assert!(r.header("allow").is_none());
    assert!(g.h.echo.records().is_empty());
    g.h.idp.set_fault(Fault::None);
    let r = g.get("/api/items", &jar).await;
    assert_eq!(r.status, 200, "the same cookie works again");
    assert!(!r.session_cookies().is_empty(), "refreshed now");
    g.assert_no_token_reached_the_browser();
}

#[tokio::test]
async fn a_hundred_calls_at_expiry_through_nginx_share_one_refresh() {
    let g = gateway(&[]).await;
    let (jar, issued) = g.h.login(true);
    let calls = (0..100).map(|_| g.get("/api/storm", &jar));
    let answers = futures_util::future::join_all(calls).await;
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(g.h.idp.refresh_calls(), 1, "one /token call for all");
    let bearers = g.bearers("/api/storm");
    assert_eq!(bearers.len(), 100);
    let first = bearers[0].clone().expect("a Bearer");
    assert_ne!(first, format!("Bearer {}", issued.access_token));
    assert!(bearers.iter().all(|b| b.as_deref() == Some(first.as_str())));
    g.assert_no_token_reached_the_browser();
}

/// Routes with identity headers, with the config's example lines for one of them in use.
const ROUTES: &str = r#"
[[routes]]
path = "/api/items"
methods = ["GET"]
session = "required"
[routes.identity_headers]
X-Auth-Request-User = "sub"

[[routes]]
path = "/api/public"
session = "none"
"#;

#[tokio::test]
async fn routes_decide_through_nginx_and_identity_headers_cannot_be_forged() {
    let g = gateway_with(&[("tail", ROUTES)], |_, conf| {
        conf.replace("#   auth_request_set $th_user", "auth_request_set $th_user")
            .replace("#   proxy_set_header X-Auth", "proxy_set_header X-Auth")
    })
    .await;
    let (jar, _) = g.h.login(false);
    let forged = [("x-auth-request-user", "admin")];
    let r = g.send("GET", "/api/items", &jar, &forged, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let user = g.h.echo.last().header("x-auth-request-user");
    assert_eq!(
        user.as_deref(),
        Some("usr:42"),
        "the session's, not the browser's"
    );
    let r = g.send("GET", "/api/public/x", &jar, &forged, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = g.h.echo.last();
    assert_eq!(
        seen.header("x-auth-request-user"),
        None,
        "a forged one never arrives"
    );
    assert_eq!(
        seen.header("authorization"),
        None,
        "no token on a `none` route"
    );

    // Refusals keep their status, not nginx's 500.
    g.get("/api/other", &jar)
        .await
        .assert_error(404, "not_found");
    let csrf = [("x-csrf", "1")];
    let r = g.send("DELETE", "/api/items", &jar, &csrf, None).await;
    r.assert_error(405, "method_not_allowed");
    assert!(r.header("allow").is_some_and(|a| a.contains("GET")));
    assert!(r.header("retry-after").is_none());
    assert_eq!(g.h.echo.records().len(), 2);
    g.assert_no_token_reached_the_browser();
}

#[tokio::test]
async fn token_handler_not_answering_is_a_502_json() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let g = gateway_with(&[], |h, conf| {
        let verify = h.proxy.verify_url.as_ref().expect("listener");
        let server = format!("server {};", &verify["http://".len()..]);
        conf.replace(&server, &format!("server {dead_addr};"))
    })
    .await;
    let (jar, _) = g.h.login(false);
    g.get("/api/items", &jar)
        .await
        .assert_error(502, "upstream_unavailable");
    assert!(g.h.echo.records().is_empty());
    g.assert_no_token_reached_the_browser();
}

#[tokio::test]
async fn nginx_on_a_taken_port_says_so_for_the_caller_to_try_another() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let conf = format!("server {{ listen 127.0.0.1:{port}; return 204; }}");
    let first = Nginx::start(port, &conf).await;
    let r = client().get(first.url()).send().await.expect("answered");
    assert_eq!(r.status(), 204);
    let second = Nginx::try_start(port, &conf).await;
    assert!(
        matches!(second, Err(StartError::AddressInUse)),
        "{second:?}"
    );
}

#[tokio::test]
async fn a_websocket_needs_its_own_origin_and_tunnels_with_the_token() {
    let g = gateway(&[]).await;
    let (jar, _) = g.h.login(false);
    let url = format!("ws://127.0.0.1:{}/api/ws", g.nginx.port);
    let handshake = |origin: &str| {
        let mut request = url.as_str().into_client_request().expect("request");
        let headers = request.headers_mut();
        headers.insert("cookie", jar.header().parse().expect("hv"));
        headers.insert("origin", origin.parse().expect("hv"));
        request
    };
    match tokio_tungstenite::connect_async(handshake("http://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a foreign Origin is refused: {other:?}"),
    }
    assert!(g.h.echo.records().is_empty());
    let (mut ws, response) = tokio_tungstenite::connect_async(handshake(&g.nginx.url()))
        .await
        .expect("upgrade through nginx");
    assert_eq!(response.status(), 101);
    ws.send(Message::text("ping")).await.expect("send");
    let echoed = ws.next().await.expect("a message").expect("ok");
    assert_eq!(echoed.into_text().expect("text").as_str(), "ping");
    ws.close(None).await.ok();
    assert!(
        g.bearers("/api/ws")[0].is_some(),
        "the token on the handshake"
    );
}

/// The README shows the very config these tests run (so the two cannot drift apart).
#[test]
fn the_readme_shows_the_config_these_tests_run() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("README");
    let conf = std::fs::read_to_string(dir.join("tests/it/support/nginx_forward_auth.conf"))
        .expect("config");
    assert!(
        readme.contains(&format!("```nginx\n{}\n```", conf.trim_end())),
        "README.md must show tests/it/support/nginx_forward_auth.conf verbatim"
    );
}
