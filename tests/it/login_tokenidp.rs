//! Login, callback, session and logout against the TokenIDP emulator: the whole life of a
//! session through the proxy's own endpoints, and every way a login can go wrong.

use crate::support::*;
use std::time::Duration;
use token_handler::demo::tokenidp::{Fault, KidMode, RefreshTokenState};
use token_handler::refresh::unix_now;
use token_handler::session::ReadOutcome;

fn session_refresh_token(h: &Harness, jar: &Jar) -> String {
    let mut headers = http::HeaderMap::new();
    headers.insert("cookie", jar.header().parse().expect("hv"));
    match h
        .proxy
        .app
        .codec
        .read(&h.proxy.app.codec.incoming(&headers), unix_now())
    {
        ReadOutcome::Valid { session, .. } => session.refresh_token.expose().to_string(),
        other => panic!("no session in the jar: {other:?}"),
    }
}

fn flow_cookies(jar: &Jar) -> usize {
    jar.0
        .keys()
        .filter(|k| k.starts_with(&format!("{COOKIE}_flow_")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_api_call_refresh_and_logout() {
    let h = Harness::build(Flavor::TokenIdpServer, &[], KEY1, |o| {
        o.access_token_ttl = Duration::from_secs(2)
    })
    .await;
    let mut jar = Jar::default();

    // /auth/login: PKCE S256, state, nonce, a Lax flow cookie.
    let authorize = h.start_login(&mut jar, "/dashboard?tab=1").await;
    let url = url::Url::parse(&authorize).expect("authorize URL");
    assert!(authorize.starts_with(&format!("{}/authorize?", h.idp.url())));
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["state"].len() >= 32 && q.contains_key("nonce"));
    assert_eq!(q["redirect_uri"], format!("{}/auth/callback", h.proxy.url));
    assert_eq!(flow_cookies(&jar), 1);

    // The IdP logs the demo user in and redirects to the callback.
    let callback = h.follow_idp(&authorize).await;
    let response = h.finish_login(&mut jar, &callback).await;
    assert_eq!(response.status(), 200);
    let lines = set_cookies(&response);
    let session_line = lines
        .iter()
        .find(|l| l.starts_with(&format!("{COOKIE}=")))
        .expect("session cookie");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session_line.contains(attr), "{attr}: {session_line}");
    }
    let page = response.text().await.expect("page");
    assert!(
        page.contains("url=/dashboard?tab=1"),
        "continues to return_to: {page}"
    );
    assert_eq!(
        flow_cookies(&jar),
        0,
        "the flow cookie is deleted after use"
    );

    // An API call carries a Bearer the IdP issued.
    let r = h.get("/api/me", &jar).await;
    assert_eq!(r.status(), 200);
    let first_bearer = h.echo.last().header("authorization").expect("bearer");
    let issued = h.idp.issued_secrets();
    assert!(issued.iter().any(|t| first_bearer == format!("Bearer {t}")));

    // /auth/session: claims, expiry, never a token.
    let r = h.get("/auth/session", &jar).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("body");
    let body: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(body["authenticated"], true);
    assert_eq!(body["claims"]["name"], "Demo User");
    assert_eq!(body["claims"]["email"], "demo@example.com");
    assert!(body["expires_at"].as_u64().expect("expires_at") > unix_now());
    for secret in h.idp.issued_secrets() {
        assert!(!text.contains(&secret), "no token in /auth/session");
    }

    // Expiry: wait for the access token to fall due, then a transparent refresh.
    let due = body["access_expires_at"].as_u64().expect("access expiry") - 1;
    while unix_now() < due {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = h.get("/api/me", &jar).await;
    assert_eq!(r.status(), 200);
    jar.update(&r);
    assert_eq!(h.idp.refresh_calls(), 1);
    assert_ne!(
        h.echo.last().header("authorization").expect("bearer"),
        first_bearer
    );

    // Logout: CSRF-checked, revokes the refresh token, clears every cookie, gives the IdP URL.
    let current_rt = session_refresh_token(&h, &jar);
    let refused = h
        .http
        .post(format!("{}/auth/logout", h.proxy.url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(refused.status(), 403);
    let r = h
        .http
        .post(format!("{}/auth/logout", h.proxy.url))
        .header("cookie", jar.header())
        .header("x-csrf", "1")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    jar.update(&r);
    assert!(jar.session().is_none(), "session cookie deleted");
    let body = json(r).await;
    let logout_url = body["logout_url"].as_str().expect("logout_url").to_string();
    assert!(
        logout_url.starts_with(&format!("{}/logout?client_id={CLIENT_ID}", h.idp.url())),
        "{logout_url}"
    );
    assert!(logout_url.contains("post_logout_redirect_uri="));
    assert!(h.idp.revoked_tokens().contains(&current_rt));
    assert_eq!(
        h.idp.refresh_token_state(&current_rt),
        RefreshTokenState::Revoked
    );
    let at_idp = h.http.get(&logout_url).send().await.expect("idp logout");
    assert_eq!(at_idp.status(), 302);
    assert!(location(&at_idp).contains("logged_out=1"));
    let after = h.get("/api/me", &jar).await;
    assert_eq!(after.status(), 401);
    assert_eq!(json(after).await["error"], "login_required");
}

#[tokio::test]
async fn wrong_state_and_missing_flow_cookie_are_refused() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let mut jar = Jar::default();
    let authorize = h.start_login(&mut jar, "/").await;
    let callback = h.follow_idp(&authorize).await;
    let tampered = {
        let mut u = url::Url::parse(&callback).expect("url");
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    if k == "state" {
                        "forged".to_string()
                    } else {
                        v.to_string()
                    },
                )
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
        u.to_string()
    };
    let r = h.finish_login(&mut jar.clone(), &tampered).await;
    assert_eq!(r.status(), 400);
    assert!(session_set_cookies(&r)
        .iter()
        .all(|l| !l.starts_with(&format!("{COOKIE}="))));
    assert!(r.text().await.expect("page").contains("bad_request"));
    // The right state but without the flow cookie (another browser).
    let r = h.finish_login(&mut Jar::default(), &callback).await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        h.idp.token_calls(),
        0,
        "no code exchange without a matching flow"
    );
}

#[tokio::test]
async fn replayed_callback_is_refused() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let mut jar = Jar::default();
    let authorize = h.start_login(&mut jar, "/").await;
    let before_callback = jar.clone();
    let callback = h.follow_idp(&authorize).await;
    assert_eq!(h.finish_login(&mut jar, &callback).await.status(), 200);
    // Back button: the flow cookie is gone.
    let r = h.finish_login(&mut jar.clone(), &callback).await;
    assert_eq!(r.status(), 400);
    // A replay with the saved flow cookie reaches the IdP, which refuses the used code.
    let r = h
        .finish_login(&mut before_callback.clone(), &callback)
        .await;
    assert_eq!(r.status(), 400);
    assert!(set_cookies(&r)
        .iter()
        .all(|l| !l.starts_with(&format!("{COOKIE}=")) || l.contains("Max-Age=0")));
    assert_eq!(h.idp.token_calls(), 2, "one exchange, one refused replay");
}

#[tokio::test]
async fn open_redirect_return_to_values_are_refused() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    for evil in [
        "//evil.example",
        "https://evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "/x\r\nSet-Cookie: a=b",
        "/.//evil.example",
        "/%2e//evil.example",
    ] {
        let r = h
            .http
            .get(format!("{}/auth/login", h.proxy.url))
            .query(&[("return_to", evil)])
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), 400, "{evil:?}");
        assert!(r.headers().get("location").is_none());
        assert_eq!(json(r).await["error"], "bad_request");
    }
}

#[tokio::test]
async fn provider_error_answer_shows_a_clear_page() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let mut jar = Jar::default();
    let authorize = h.start_login(&mut jar, "/").await;
    let callback = h
        .follow_idp(&format!("{authorize}&test_error=access_denied"))
        .await;
    let r = h.finish_login(&mut jar, &callback).await;
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let page = r.text().await.expect("page");
    assert!(page.contains("access_denied"), "{page}");
    assert!(page.contains("/auth/login"), "offers a way back in");
    assert_eq!(flow_cookies(&jar), 0);
    assert!(jar.session().is_none());
}

#[tokio::test]
async fn a_login_without_a_refresh_token_names_offline_access_and_prompt_consent() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("idp", "scope = \"openid profile email\"")],
        KEY1,
    )
    .await;
    let mut jar = Jar::default();
    let r = h.browser_login(&mut jar, "/").await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.expect("page");
    assert!(
        page.contains("offline_access") && page.contains("prompt=consent"),
        "{page}"
    );
    assert!(jar.session().is_none());
}

#[tokio::test]
async fn parallel_logins_in_tabs_each_complete_and_flow_cookies_are_capped() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let mut jar = Jar::default();
    let first = h.start_login(&mut jar, "/one").await;
    let second = h.start_login(&mut jar, "/two").await;
    assert_eq!(flow_cookies(&jar), 2);
    let cb2 = h.follow_idp(&second).await;
    let cb1 = h.follow_idp(&first).await;
    let r = h.finish_login(&mut jar, &cb2).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.expect("page").contains("url=/two"));
    let r = h.finish_login(&mut jar, &cb1).await;
    assert_eq!(r.status(), 200, "the other tab's login completes too");
    assert!(r.text().await.expect("page").contains("url=/one"));
    for _ in 0..6 {
        h.start_login(&mut jar, "/").await;
    }
    assert_eq!(
        flow_cookies(&jar),
        3,
        "at most three logins in flight per browser"
    );
}

#[tokio::test]
async fn id_tokens_without_or_with_a_foreign_kid_verify_and_bad_claims_do_not() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    for mode in [KidMode::Mismatch, KidMode::None, KidMode::Match] {
        h.idp.set_kid_mode(mode);
        let mut jar = Jar::default();
        let r = h.browser_login(&mut jar, "/").await;
        assert_eq!(r.status(), 200, "{mode:?}");
    }
    let now = unix_now();
    let good = serde_json::json!({"iss": h.idp.url(), "aud": CLIENT_ID, "sub": "usr:42", "iat": now, "exp": now + 600});
    let idp = &h.proxy.app.idp;
    assert!(
        idp.verify_id_token(&h.idp.sign(&good), Some("n"))
            .await
            .is_ok(),
        "TokenIDP echoes no nonce"
    );
    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = "someone-else".into();
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = "https://evil.example".into();
    let mut expired = good.clone();
    expired["exp"] = (now - 3600).into();
    let mut wrong_nonce = good.clone();
    wrong_nonce["nonce"] = "other".into();
    for bad in [wrong_aud, wrong_iss, expired, wrong_nonce] {
        assert!(
            idp.verify_id_token(&h.idp.sign(&bad), Some("n"))
                .await
                .is_err(),
            "{bad}"
        );
    }
    let forged = format!("{}x", h.idp.sign(&good));
    assert!(idp.verify_id_token(&forged, None).await.is_err());
}

#[tokio::test]
async fn session_endpoint_without_a_session_and_methods() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let r = h.get("/auth/session", &Jar::default()).await;
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await, serde_json::json!({"authenticated": false}));
    let r = h
        .http
        .post(format!("{}/auth/session", h.proxy.url))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 405);
    let r = h.get("/auth/nothing", &Jar::default()).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_idp_down_at_start_up_is_retried_in_the_background() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let idp = token_handler::demo::tokenidp::TokenIdp::start(listener, Default::default())
        .await
        .expect("idp");
    idp.set_fault(Fault::Down);
    let echo = echo::Echo::start().await;
    let config = token_handler::config::Config::from_toml(
        &config_toml(&idp.url(), &echo.url(), "tokenidp", &[]),
        &env(KEY1),
    )
    .expect("config");
    let app = token_handler::app::App::start(config).expect("app starts although the IdP is down");
    assert_eq!(
        token_handler::admin::readiness(&app),
        Err("IdP metadata not discovered yet")
    );
    idp.set_fault(Fault::None);
    tokio::time::timeout(Duration::from_secs(10), app.idp.ready())
        .await
        .expect("discovery retried and succeeded");
    assert_eq!(token_handler::admin::readiness(&app), Ok(()));
}
