//! /authorize and the code exchange: PKCE S256, single-use codes, exact redirect URIs, the
//! error shapes, the test error hook, the login form, and /logout.

use super::common::*;
use serde_json::json;
use token_handler::demo::tokenidp::{LoginMode, Options, RefreshTokenState, ResponseStyle};

#[tokio::test]
async fn authorize_then_exchange_with_s256_pkce() {
    let idp = start(Options::default()).await;
    let (verifier, challenge) = pkce();
    let state = "a b+c/d=é&x";
    let resp = http()
        .get(authorize_url(&idp, &challenge, state, FULL_SCOPE))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status().as_u16(), 302);
    let (location, pairs) = location_params(&resp);
    assert!(
        location.starts_with(&format!("{REDIRECT}?code=")),
        "{location}"
    );
    assert_eq!(
        param(&pairs, "state"),
        Some(state),
        "state comes back unchanged"
    );
    let code = param(&pairs, "code").expect("code").to_owned();
    assert_eq!(code.len(), 36, "a uuid");
    assert!(idp.issued_secrets().contains(&code));

    let (status, body) = exchange(&idp, &code, &verifier).await;
    assert_eq!(status, 200, "{body}");
    let refresh = server_refresh_token(&body);
    assert_eq!(idp.refresh_token_state(&refresh), RefreshTokenState::Active);
    assert!(body["value"]["id_token"].is_string());

    // Replayed code: PascalCase 500 (quirk).
    let (status, body) = exchange(&idp, &code, &verifier).await;
    assert_eq!(status, 500);
    assert_pascal_case_500(&body);
}

#[tokio::test]
async fn wrong_verifier_is_pascal_case_500_and_spends_the_code() {
    let idp = start(Options::default()).await;
    let (code, verifier) = authorize(&idp, FULL_SCOPE).await;
    let (other_verifier, _) = pkce();
    let (status, body) = exchange(&idp, &code, &other_verifier).await;
    assert_eq!(status, 500);
    assert_pascal_case_500(&body);
    let (status, _) = exchange(&idp, &code, &verifier).await;
    assert_eq!(status, 500, "a code is never tried twice");
}

#[tokio::test]
async fn exchange_needs_the_exact_redirect_uri() {
    let idp = start(Options::default()).await;
    let (code, verifier) = authorize(&idp, FULL_SCOPE).await;
    let (status, body) = post_form(
        &idp,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &verifier),
            ("redirect_uri", "http://localhost:8080/auth/callback/"),
        ],
        Some(&basic(CLIENT, SECRET)),
    )
    .await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "Invalid redirect_uri.");
}

#[tokio::test]
async fn no_offline_access_no_refresh_token_from_the_code() {
    let idp = start(Options {
        style: ResponseStyle::OAuth2,
        ..Options::default()
    })
    .await;
    let (code, verifier) = authorize(&idp, "openid profile").await;
    let (status, body) = exchange(&idp, &code, &verifier).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body["access_token"].is_string() && body["id_token"].is_string());
}

#[tokio::test]
async fn authorize_errors() {
    let idp = start(Options::default()).await;
    let (_, challenge) = pkce();

    // Missing parameter: plain text 400.
    let url = authorize_url(&idp, &challenge, "s", FULL_SCOPE).replace("code_challenge=", "x=");
    let resp = http().get(url).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    assert!(resp.text().await.expect("text").contains("code_challenge"));

    let cases = [
        (
            "redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Fauth%2Fcallback",
            "redirect_uri=http%3A%2F%2Fevil%2Fcb",
            "invalid_request",
        ),
        (
            "client_id=tokenidp-react-dev",
            "client_id=unknown",
            "invalid_request",
        ),
        (
            "code_challenge_method=S256",
            "code_challenge_method=plain",
            "invalid_request",
        ),
        (
            "response_type=code",
            "response_type=token",
            "unsupported_response_type",
        ),
        ("scope=openid+profile", "scope=profile", "invalid_scope"),
        (
            "scope=openid+profile",
            "scope=openid+admin+profile",
            "invalid_scope",
        ),
    ];
    for (from, to, error) in cases {
        let url = authorize_url(&idp, &challenge, "s", FULL_SCOPE);
        assert!(url.contains(from), "{url} lacks {from}");
        let resp = http()
            .get(url.replace(from, to))
            .send()
            .await
            .expect("send");
        let (status, body) = read(resp).await;
        assert_eq!(status, 400, "{to}");
        assert_eq!(body["error"], json!(error), "{to}: {body}");
        assert!(body["error_description"].is_string());
    }
    assert!(
        idp.issued_secrets().is_empty(),
        "no code for a refused request"
    );
}

#[tokio::test]
async fn test_error_hook_redirects_access_denied() {
    let idp = start(Options::default()).await;
    let (_, challenge) = pkce();
    let url = format!(
        "{}&test_error=access_denied",
        authorize_url(&idp, &challenge, "xyz", FULL_SCOPE)
    );
    let resp = http().get(url).send().await.expect("send");
    assert_eq!(resp.status().as_u16(), 302);
    let (location, pairs) = location_params(&resp);
    assert!(location.starts_with(REDIRECT));
    assert_eq!(param(&pairs, "error"), Some("access_denied"));
    assert!(param(&pairs, "error_description").is_some());
    assert_eq!(param(&pairs, "state"), Some("xyz"));
    assert_eq!(param(&pairs, "code"), None);
}

#[tokio::test]
async fn form_login_mode() {
    let idp = start(Options {
        login: LoginMode::Form,
        ..Options::default()
    })
    .await;
    let (verifier, challenge) = pkce();
    let resp = http()
        .get(authorize_url(&idp, &challenge, "s\"<1>", FULL_SCOPE))
        .send()
        .await
        .expect("form");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    let page = resp.text().await.expect("html");
    assert!(page.contains("<title>TokenIDP (development)</title>"));
    assert!(page.contains("Development identity provider"));
    assert!(page.contains("name=\"code_challenge\" value=\"") && page.contains(&challenge));
    assert!(
        page.contains("s&quot;&lt;1&gt;"),
        "state escaped in its hidden field"
    );
    assert!(page.contains("<code>demo</code>"), "demo credentials hint");

    let mut form = vec![
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", FULL_SCOPE),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s\"<1>"),
        ("login", "demo"),
        ("password", "wrong"),
    ];
    let post = |form: Vec<(&str, &str)>| {
        http()
            .post(format!("{}/authorize", idp.url()))
            .form(&form)
            .send()
    };
    let resp = post(form.clone()).await.expect("post");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .text()
        .await
        .expect("html")
        .contains("Invalid login or password."));
    assert!(idp.issued_secrets().is_empty());

    form.last_mut().expect("password").1 = "demo";
    let resp = post(form).await.expect("post");
    assert_eq!(resp.status().as_u16(), 302);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("tokenidp_session=") && cookie.contains("HttpOnly"));
    let (_, pairs) = location_params(&resp);
    assert_eq!(param(&pairs, "state"), Some("s\"<1>"));
    let code = param(&pairs, "code").expect("code").to_owned();
    let (status, _) = exchange(&idp, &code, &verifier).await;
    assert_eq!(status, 200);

    // The IdP session logs in silently next time; /logout ends it.
    let session = cookie.split(';').next().expect("pair").to_owned();
    let again = http()
        .get(authorize_url(&idp, &challenge, "t", FULL_SCOPE))
        .header("cookie", &session)
        .send()
        .await
        .expect("silent");
    assert_eq!(again.status().as_u16(), 302);
    let logout = http()
        .get(format!(
            "{}/logout?client_id={CLIENT}&post_logout_redirect_uri=http%3A%2F%2Flocalhost%3A8080%2F",
            idp.url()
        ))
        .header("cookie", &session)
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status().as_u16(), 302);
    let after = http()
        .get(authorize_url(&idp, &challenge, "t", FULL_SCOPE))
        .header("cookie", &session)
        .send()
        .await
        .expect("form again");
    assert_eq!(after.status().as_u16(), 200);
}

#[tokio::test]
async fn logout_redirects_to_registered_uri_only() {
    let idp = start(Options::default()).await;
    let resp = http()
        .get(format!(
            "{}/logout?client_id={CLIENT}&post_logout_redirect_uri=http%3A%2F%2Flocalhost%3A8080%2F",
            idp.url()
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(
        resp.headers()["location"],
        "http://localhost:8080/?logged_out=1"
    );

    let resp = http()
        .get(format!(
            "{}/logout?client_id={CLIENT}&post_logout_redirect_uri=http%3A%2F%2Fevil.example%2F",
            idp.url()
        ))
        .send()
        .await
        .expect("logout");
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.headers().get("location").is_none());
}
