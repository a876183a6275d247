//! `/metrics` on the admin listener moves as the scenarios say; labels stay bounded.

use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use token_handler::demo::tokenidp::Fault;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The admin listener of `h`'s proxy, served on 127.0.0.1:0.
pub async fn admin(h: &Harness) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(token_handler::admin::run(
        listener,
        Arc::clone(&h.proxy.app),
        std::future::pending(),
    ));
    url
}

/// Every sample of the exposition: `name{labels}` → value.
async fn scrape(http: &reqwest::Client, admin: &str) -> BTreeMap<String, f64> {
    let r = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/openmetrics-text"));
    r.text()
        .await
        .expect("body")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_storm_counts_one_refresh_and_ninety_nine_coalesced() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let admin = admin(&h).await;
    let before = scrape(&h.http, &admin).await;
    let (jar, _) = h.login(true);
    // Hold the IdP's answer so every request arrives while the one refresh is in flight.
    h.idp.set_fault(Fault::Slow(Duration::from_millis(700)));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let http = h.http.clone();
        let url = format!("{}/api/storm", h.proxy.url);
        let cookie = jar.header();
        tasks.push(tokio::spawn(async move {
            http.get(url).header("cookie", cookie).send().await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task").expect("answer").status(), 200);
    }
    h.idp.set_fault(Fault::None);
    let after = scrape(&h.http, &admin).await;
    let delta = |k: &str| get(&after, k) - get(&before, k);
    assert_eq!(
        delta(r#"token_handler_refreshes_total{outcome="refreshed"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"token_handler_refreshes_total{outcome="coalesced"}"#),
        99.0
    );
    assert_eq!(
        delta(r#"token_handler_requests_total{route="protected",status="200"}"#),
        100.0
    );
    assert_eq!(
        delta(r#"token_handler_idp_token_seconds_count{grant="refresh_token"}"#),
        1.0
    );
    assert!(
        get(
            &after,
            r#"token_handler_idp_token_seconds_sum{grant="refresh_token"}"#
        ) >= 0.7
    );
    assert_eq!(delta("token_handler_session_cookie_bytes_count"), 1.0);
    assert_eq!(
        delta("token_handler_upstream_response_seconds_count"),
        100.0
    );

    // The old cookie once more: a grace hit, no new refresh.
    assert_eq!(h.get("/api/again", &jar).await.status(), 200);
    let later = scrape(&h.http, &admin).await;
    assert_eq!(
        get(
            &later,
            r#"token_handler_refreshes_total{outcome="grace_hit"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &later,
            r#"token_handler_refreshes_total{outcome="refreshed"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_of_refreshes_logins_logouts_csrf_and_tunnels() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("session", "rotation_grace = \"1s\"")],
        KEY1,
    )
    .await;
    let admin = admin(&h).await;

    let (jar, _) = h.login(true);
    h.idp.set_fault(Fault::PascalCase500);
    assert_eq!(h.get("/api/a", &jar).await.status(), 503);
    h.idp.set_fault(Fault::None);
    h.idp.revoke_all();
    assert_eq!(h.get("/api/a", &jar).await.status(), 401);

    let (old, _) = h.login(true);
    assert_eq!(h.get("/api/a", &old).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1200)).await; // past the 1 s grace window
    assert_eq!(h.get("/api/a", &old).await.status(), 401);

    let forged = h
        .http
        .post(format!("{}/api/a", h.proxy.url))
        .header("cookie", old.header())
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 403);

    let mut browser = Jar::default();
    assert_eq!(h.browser_login(&mut browser, "/").await.status(), 200);
    let mut failed = Jar::default();
    let authorize = h.start_login(&mut failed, "/").await;
    let callback = h
        .follow_idp(&format!("{authorize}&test_error=access_denied"))
        .await;
    assert_eq!(h.finish_login(&mut failed, &callback).await.status(), 400);

    // A WebSocket tunnel is counted while open.
    let mut request = format!("ws://{}/ws", h.proxy.addr)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("cookie", browser.header().parse().expect("hv"));
    request
        .headers_mut()
        .insert("origin", h.proxy.url.parse().expect("hv"));
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("tunnel");
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .expect("send");
    // The echo came back through the tunnel: it is open.
    assert!(ws.next().await.expect("echo").is_ok());
    let m = scrape(&h.http, &admin).await;
    assert_eq!(get(&m, "token_handler_websocket_tunnels_active"), 1.0);
    ws.close(None).await.ok();
    drop(ws);

    let logout = h
        .http
        .post(format!("{}/auth/logout", h.proxy.url))
        .header("cookie", browser.header())
        .header("x-csrf", "1")
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 200);

    let m = scrape(&h.http, &admin).await;
    assert_eq!(
        get(&m, r#"token_handler_refreshes_total{outcome="transient"}"#),
        1.0
    );
    assert_eq!(
        get(&m, r#"token_handler_refreshes_total{outcome="rejected"}"#),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"token_handler_refreshes_total{outcome="reuse_suspected"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"token_handler_csrf_refusals_total{reason="missing_header"}"#
        ),
        1.0
    );
    assert_eq!(
        get(&m, r#"token_handler_logins_total{outcome="success"}"#),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"token_handler_logins_total{outcome="provider_error"}"#
        ),
        1.0
    );
    assert_eq!(
        get(&m, r#"token_handler_logouts_total{outcome="revoked"}"#),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"token_handler_requests_total{route="auth_callback",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"token_handler_requests_total{route="upgrade",status="101"}"#
        ),
        1.0
    );
    // Bounded labels: no path, user or token ever appears.
    for key in m.keys() {
        assert!(
            !key.contains("/api") && !key.contains("usr:") && !key.contains("demo"),
            "{key}"
        );
    }
}
