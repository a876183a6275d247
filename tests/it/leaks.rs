//! No token byte reaches a client response or a log line, whatever the scenario.
//! Logs are captured at TRACE for every crate (hyper and reqwest included), from the test's
//! own thread: the test runs on a current-thread runtime, so the proxy, the emulator and the
//! clients all log there (see `support::logs`).

use crate::support::*;
use base64::Engine;

// The code itself travels in the callback URL the browser requests; what matters is that the
// proxy never echoes it, logs it, or leaks the verifier it exchanged it with.
use token_handler::demo::tokenidp::Fault;

#[tokio::test]
async fn no_token_or_secret_in_responses_or_logs() {
    let capture = logs::capture();
    let mut seen = String::new();
    for flavor in [
        Flavor::TokenIdpGuide,
        Flavor::TokenIdpServer,
        Flavor::OAuth2,
    ] {
        let h = Harness::start(flavor).await;
        // Refresh, coalesced refreshes, grace hit, fresh session.
        let (jar, _) = h.login(true);
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let http = h.http.clone();
            let url = format!("{}/api/a", h.proxy.url);
            let cookie = jar.header();
            tasks.push(tokio::spawn(async move {
                http.get(url).header("cookie", cookie).send().await
            }));
        }
        for t in tasks {
            seen.push_str(&everything(t.await.expect("task").expect("answer")).await);
        }
        seen.push_str(&everything(h.get("/api/a", &jar).await).await);
        // Transient faults and a rejected grant.
        for fault in [
            Fault::PascalCase500,
            Fault::RateLimited {
                retry_after_secs: 1,
            },
            Fault::TruncatedJson,
        ] {
            let (jar, _) = h.login(true);
            h.idp.set_fault(fault);
            seen.push_str(&everything(h.get("/api/a", &jar).await).await);
        }
        h.idp.set_fault(Fault::None);
        let (jar, _) = h.login(true);
        h.idp.revoke_all();
        seen.push_str(&everything(h.get("/api/a", &jar).await).await);
        // A whole login: authorize redirect, callback (code, PKCE verifier), session, logout.
        let mut browser = Jar::default();
        let authorize = h.start_login(&mut browser, "/").await;
        let callback = h.follow_idp(&authorize).await;
        seen.push_str(&everything(h.finish_login(&mut browser, &callback).await).await);
        seen.push_str(&everything(h.get("/auth/session", &browser).await).await);
        seen.push_str(&everything(h.get("/api/b", &browser).await).await);
        let logout = h
            .http
            .post(format!("{}/auth/logout", h.proxy.url))
            .header("cookie", browser.header())
            .header("x-csrf", "1")
            .send()
            .await
            .expect("logout");
        seen.push_str(&everything(logout).await);
        assert!(
            !h.idp.revoked_tokens().is_empty(),
            "the scenario revoked at logout"
        );
        seen.push_str(&format!("{:?}", h.proxy.app));
        seen.push_str(&h.proxy.app.metrics.encode());

        let logs = capture.text();
        assert!(
            logs.contains("access token refreshed"),
            "the scenario logged its refreshes"
        );
        assert!(
            logs.contains("request{method=GET route=\"protected\""),
            "the proxy's request spans were captured"
        );
        assert!(
            logs.contains("reqwest::connect"),
            "reqwest's `log` records were captured"
        );
        let mut secrets = h.idp.issued_secrets();
        // PKCE verifiers, as the proxy sent them in its code exchanges.
        for request in h.idp.requests().iter().filter(|r| r.path == "/token") {
            let body: serde_json::Value = serde_json::from_str(&request.body).unwrap_or_default();
            if let Some(v) = body.get("codeVerifier").and_then(|v| v.as_str()) {
                secrets.push(v.to_string());
            }
            for (k, v) in url::form_urlencoded::parse(request.body.as_bytes()) {
                if k == "code_verifier" {
                    secrets.push(v.into_owned());
                }
            }
        }
        assert!(
            secrets.iter().any(|s| s.len() == 43),
            "verifiers were collected"
        );
        assert!(secrets.len() > 10, "the emulator issued tokens");
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"));
        let key_material = KEY1.split(':').nth(1).expect("key").to_string();
        for secret in secrets
            .iter()
            .chain([&CLIENT_SECRET.to_string(), &basic, &key_material])
        {
            assert!(
                !logs.contains(secret.as_str()),
                "{flavor:?}: a secret reached the logs"
            );
            assert!(
                !seen.contains(secret.as_str()),
                "{flavor:?}: a secret reached a client response or Debug output"
            );
        }
    }
}

/// A response as the client sees it: status, headers, body.
async fn everything(response: reqwest::Response) -> String {
    let mut text = format!("{}\n", response.status());
    for (name, value) in response.headers() {
        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("")));
    }
    text.push_str(&response.text().await.expect("body"));
    text
}

/// The same beside a gateway and at the edges of a session's life: the forward-auth listener
/// (whose answers carry the Bearer by design, for the gateway) logs no token; routes with
/// identity headers, a back-channel logout token and the session it ends leave no token (and
/// no logout token) in a log line or a browser-facing answer.
#[tokio::test]
async fn no_token_in_logs_beside_a_gateway_or_at_a_backchannel_logout() {
    let capture = logs::capture();
    let tail = r#"
[[routes]]
path = "/api"
[routes.identity_headers]
X-Auth-Request-User = "sub"
"#;
    let h = Harness::with(
        Flavor::OAuth2,
        &[
            ("forward_auth", "listen = \"127.0.0.1:0\""),
            ("forward_auth", "gateway = \"nginx\""),
            ("tail", tail),
        ],
        KEY1,
    )
    .await;
    let mut seen = String::new();
    let verify = h.proxy.verify_url.clone().expect("listener");
    let ask = |jar: &Jar| {
        h.http
            .get(format!("{verify}/verify"))
            .header("x-original-method", "GET")
            .header("x-original-uri", "/api/x")
            .header("x-forwarded-host", h.proxy.addr.to_string())
            .header("cookie", jar.header())
            .send()
    };
    // A real login (sub from the ID token), a call inline, questions from a gateway.
    let mut browser = Jar::default();
    let authorize = h.start_login(&mut browser, "/").await;
    let callback = h.follow_idp(&authorize).await;
    seen.push_str(&everything(h.finish_login(&mut browser, &callback).await).await);
    seen.push_str(&everything(h.get("/api/b", &browser).await).await);
    assert_eq!(ask(&browser).await.expect("verify").status(), 200);
    let (expired, _) = h.login(true);
    assert_eq!(ask(&expired).await.expect("verify").status(), 200);
    assert_eq!(ask(&Jar::default()).await.expect("verify").status(), 401);

    // The IdP ends the user's sessions: a logout token signed with its key (no sid: by sub).
    let sub = h.proxy.app.codec.read(
        &h.proxy.app.codec.incoming(&{
            let mut headers = http::HeaderMap::new();
            headers.insert("cookie", browser.header().parse().expect("cookie"));
            headers
        }),
        token_handler::refresh::unix_now(),
    );
    let token_handler::session::ReadOutcome::Valid { session, .. } = sub else {
        panic!("the browser's session opens");
    };
    let now = token_handler::refresh::unix_now();
    let logout_token = h.idp.sign(&serde_json::json!({
        "iss": h.idp.url(), "aud": CLIENT_ID, "iat": now, "jti": "leak-test-1",
        "sub": session.sub.clone().expect("sub from the ID token"),
        "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
    }));
    let r = h
        .http
        .post(format!("{}/auth/backchannel-logout", h.proxy.url))
        .form(&[("logout_token", &logout_token)])
        .send()
        .await
        .expect("back-channel logout");
    assert_eq!(
        r.status(),
        200,
        "a logout token signed by the IdP's (kid-less) key"
    );
    let refused = h.get("/api/b", &browser).await;
    assert_eq!(refused.status(), 401, "the session ended");
    seen.push_str(&everything(refused).await);
    seen.push_str(&format!("{:?}", h.proxy.app));

    let logs = capture.text();
    assert!(
        logs.contains("verify"),
        "the forward-auth spans were captured"
    );
    let mut secrets = h.idp.issued_secrets();
    secrets.push(logout_token);
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a token reached the logs");
        assert!(
            !seen.contains(secret.as_str()),
            "a token reached a browser-facing answer or Debug output"
        );
    }
}
