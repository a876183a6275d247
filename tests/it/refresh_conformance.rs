//! The refresh conformance suite, run against every IdP dialect and answer shape:
//! TokenIDP (guide `data`/camelCase and server `value`/snake_case answers) and OAuth 2.0.

use crate::support::*;
use std::time::Duration;
use token_handler::demo::tokenidp::{Fault, RefreshTokenState};
use token_handler::session::ReadOutcome;

macro_rules! suite_for {
    ($module:ident, $flavor:expr, [$($case:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($flavor).await
                }
            )*
        }
    };
}

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        suite_for!(tokenidp_guide, super::Flavor::TokenIdpGuide, [$($case),*]);
        suite_for!(tokenidp_server, super::Flavor::TokenIdpServer, [$($case),*]);
        suite_for!(oauth2, super::Flavor::OAuth2, [$($case),*]);
    };
}

suite!(
    valid_session_reaches_upstream_with_bearer_and_without_our_cookies,
    expired_token_triggers_exactly_one_refresh_in_the_dialects_format,
    parallel_requests_at_expiry_share_one_refresh_and_one_cookie,
    old_cookie_inside_the_grace_window_gets_the_new_tokens,
    old_cookie_after_the_grace_window_is_refused_without_spending_it,
    rejected_grant_ends_the_session,
    a_refused_client_keeps_the_session,
    transient_faults_keep_the_session_and_recover,
);

fn bearer_of(h: &Harness) -> String {
    h.echo
        .last()
        .header("authorization")
        .expect("upstream got Authorization")
}

async fn valid_session_reaches_upstream_with_bearer_and_without_our_cookies(flavor: Flavor) {
    let h = Harness::start(flavor).await;
    let (mut jar, issued) = h.login(false);
    jar.0.insert("app".into(), "1".into());
    let response = h.get("/api/orders?x=1", &jar).await;
    assert_eq!(response.status(), 200);
    assert!(
        session_set_cookies(&response).is_empty(),
        "a fresh session is not re-sent"
    );
    let seen = h.echo.last();
    assert_eq!(seen.uri, "/api/orders?x=1");
    assert_eq!(
        seen.header("authorization").expect("bearer"),
        format!("Bearer {}", issued.access_token)
    );
    assert_eq!(
        seen.header("cookie").as_deref(),
        Some("app=1"),
        "our cookies are stripped, the app's kept"
    );
    assert_eq!(h.idp.token_calls(), 0);
}

async fn expired_token_triggers_exactly_one_refresh_in_the_dialects_format(flavor: Flavor) {
    let h = Harness::start(flavor).await;
    let (mut jar, issued) = h.login(true);
    let response = h.get("/api/me", &jar).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.idp.refresh_calls(), 1);

    let sent = h
        .idp
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .expect("a /token request");
    match flavor.dialect() {
        "tokenidp" => {
            assert_eq!(sent.content_type.as_deref(), Some("application/json"));
            let body: serde_json::Value = serde_json::from_str(&sent.body).expect("JSON body");
            assert_eq!(
                body,
                serde_json::json!({"grantType": "refresh_token", "clientId": CLIENT_ID,
                                   "refreshToken": issued.refresh_token, "scope": SCOPE})
            );
        }
        _ => {
            assert_eq!(
                sent.content_type.as_deref(),
                Some("application/x-www-form-urlencoded")
            );
            let form: Vec<(String, String)> =
                serde_urlencoded::from_str(&sent.body).expect("form body");
            assert!(form.contains(&("grant_type".into(), "refresh_token".into())));
            assert!(
                form.contains(&("refresh_token".into(), issued.refresh_token.clone())),
                "{form:?}"
            );
        }
    }
    assert!(sent
        .authorization
        .expect("client authenticated")
        .starts_with("Basic "));

    // The upstream saw the new token, and the browser got the rotated session.
    let bearer = bearer_of(&h);
    assert_ne!(bearer, format!("Bearer {}", issued.access_token));
    let lines = session_set_cookies(&response);
    assert_eq!(lines.len(), 1, "{lines:?}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(lines[0].contains(attr), "{attr} in {}", lines[0]);
    }
    jar.update(&response);
    let headers = cookie_headers(&jar);
    let new_rt = match h.proxy.app.codec.read(
        &h.proxy.app.codec.incoming(&headers),
        token_handler::refresh::unix_now(),
    ) {
        ReadOutcome::Valid { session, .. } => session.refresh_token.expose().to_string(),
        other => panic!("new cookie does not open: {other:?}"),
    };
    assert_ne!(
        new_rt, issued.refresh_token,
        "rotation: the cookie holds the new refresh token"
    );
    assert_eq!(
        h.idp.refresh_token_state(&issued.refresh_token),
        RefreshTokenState::Consumed
    );
    assert_eq!(
        h.idp.refresh_token_state(&new_rt),
        RefreshTokenState::Active
    );

    // With the new cookie: no further refresh, same new Bearer.
    let again = h.get("/api/me", &jar).await;
    assert_eq!(again.status(), 200);
    assert!(session_set_cookies(&again).is_empty());
    assert_eq!(h.idp.refresh_calls(), 1);
    assert_eq!(bearer_of(&h), bearer);
}

async fn parallel_requests_at_expiry_share_one_refresh_and_one_cookie(flavor: Flavor) {
    let h = Harness::start(flavor).await;
    let (jar, _) = h.login(true);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let http = h.http.clone();
        let url = format!("{}/api/item/{i}", h.proxy.url);
        let cookie = jar.header();
        tasks.push(tokio::spawn(async move {
            let r = http
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .expect("answered");
            (r.status().as_u16(), session_set_cookies(&r))
        }));
    }
    let mut cookies = std::collections::BTreeSet::new();
    for task in tasks {
        let (status, set) = task.await.expect("task");
        assert_eq!(status, 200);
        assert_eq!(set.len(), 1, "every response carries the new cookie");
        cookies.insert(set[0].clone());
    }
    assert_eq!(h.idp.refresh_calls(), 1, "one /token call for 100 requests");
    assert_eq!(cookies.len(), 1, "all responses carry the very same cookie");
    let bearers: std::collections::BTreeSet<String> = h
        .echo
        .records()
        .iter()
        .filter_map(|r| r.header("authorization"))
        .collect();
    assert_eq!(
        bearers.len(),
        1,
        "every request went upstream with the one new token"
    );
}

async fn old_cookie_inside_the_grace_window_gets_the_new_tokens(flavor: Flavor) {
    let h = Harness::start(flavor).await;
    let (old_jar, _) = h.login(true);
    let first = h.get("/api/a", &old_jar).await;
    assert_eq!(first.status(), 200);
    let first_cookie = session_set_cookies(&first);
    let first_bearer = bearer_of(&h);
    // The browser lost that response and retries with the old cookie.
    let retry = h.get("/api/a", &old_jar).await;
    assert_eq!(retry.status(), 200);
    assert_eq!(
        h.idp.refresh_calls(),
        1,
        "the old refresh token is never spent twice"
    );
    assert_eq!(
        session_set_cookies(&retry),
        first_cookie,
        "the same new cookie again"
    );
    assert_eq!(bearer_of(&h), first_bearer);
}

async fn old_cookie_after_the_grace_window_is_refused_without_spending_it(flavor: Flavor) {
    let h = Harness::with(flavor, &[("session", "rotation_grace = \"1s\"")], KEY1).await;
    let (old_jar, issued) = h.login(true);
    let first = h.get("/api/a", &old_jar).await;
    assert_eq!(first.status(), 200);
    let mut new_jar = old_jar.clone();
    new_jar.update(&first);
    // A time window, not an event: wait it out.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let replay = h.get("/api/a", &old_jar).await;
    assert_eq!(replay.status(), 401);
    assert_eq!(json(replay).await["error"], "login_required");
    assert_eq!(
        h.idp.refresh_calls(),
        1,
        "the replayed token never reached the IdP"
    );
    assert_eq!(
        h.idp.refresh_token_state(&issued.refresh_token),
        RefreshTokenState::Consumed
    );
    let still = h.get("/api/a", &new_jar).await;
    assert_eq!(still.status(), 200, "the current session is unharmed");
}

async fn rejected_grant_ends_the_session(flavor: Flavor) {
    let h = Harness::start(flavor).await;
    let (jar, _) = h.login(true);
    h.idp.revoke_all();
    let response = h.get("/api/a", &jar).await;
    assert_eq!(response.status(), 401);
    let cleared = session_set_cookies(&response);
    assert!(
        !cleared.is_empty() && cleared.iter().all(|l| l.contains("Max-Age=0")),
        "{cleared:?}"
    );
    let body = json(response).await;
    assert_eq!(body["error"], "login_required");
    assert_eq!(h.idp.refresh_calls(), 1);
    assert!(h.echo.records().is_empty(), "nothing reached the upstream");
}

/// `invalid_client` refuses the client, not the grant (a client secret rotating across pods, a
/// client disabled by mistake): the session is kept (503) and works again once it is fixed.
async fn a_refused_client_keeps_the_session(flavor: Flavor) {
    let h = Harness::start(flavor).await;
    let (jar, _) = h.login(true);
    h.idp.set_client_enabled(CLIENT_ID, false);
    let response = h.get("/api/a", &jar).await;
    assert_eq!(response.status(), 503);
    assert!(session_set_cookies(&response).is_empty(), "cookies kept");
    assert_eq!(json(response).await["error"], "idp_unavailable");
    assert_eq!(
        h.metric(r#"token_handler_refreshes_total{outcome="client_refused"}"#),
        1.0
    );
    h.idp.set_client_enabled(CLIENT_ID, true);
    let response = h.get("/api/a", &jar).await;
    assert_eq!(
        response.status(),
        200,
        "the same session, once the client is fixed"
    );
    assert_eq!(session_set_cookies(&response).len(), 1);
}

async fn transient_faults_keep_the_session_and_recover(flavor: Flavor) {
    let h = Harness::start(flavor).await;
    let faults = [
        (Fault::Down, None),
        (Fault::Slow(Duration::from_secs(3)), None),
        (
            Fault::RateLimited {
                retry_after_secs: 7,
            },
            Some("7"),
        ),
        (Fault::PascalCase500, None),
        (Fault::Html502, None),
        (Fault::TruncatedJson, None),
        (Fault::InnerFailure, None),
        (Fault::HugeBody(2 * 1024 * 1024), None),
    ];
    for (fault, retry_after) in faults {
        let (jar, issued) = h.login(true);
        h.idp.set_fault(fault.clone());
        let response = h.get("/api/a", &jar).await;
        assert_eq!(response.status(), 503, "{fault:?}");
        assert!(
            session_set_cookies(&response).is_empty(),
            "{fault:?}: the cookie is unchanged"
        );
        let header = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii").to_string());
        assert!(header.is_some(), "{fault:?}: Retry-After");
        if let Some(expected) = retry_after {
            assert_eq!(
                header.as_deref(),
                Some(expected),
                "{fault:?}: the IdP's Retry-After"
            );
        }
        assert_eq!(json(response).await["error"], "idp_unavailable");
        assert_ne!(
            h.idp.refresh_token_state(&issued.refresh_token),
            RefreshTokenState::Revoked
        );

        h.idp.set_fault(Fault::None);
        let recovered = h.get("/api/a", &jar).await;
        assert_eq!(
            recovered.status(),
            200,
            "{fault:?}: the next request after recovery works without re-login"
        );
        assert_eq!(session_set_cookies(&recovered).len(), 1, "{fault:?}");
    }
}

fn cookie_headers(jar: &Jar) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert("cookie", jar.header().parse().expect("hv"));
    headers
}
