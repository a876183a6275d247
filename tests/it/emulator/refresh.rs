//! The refresh grant over HTTP: rotation, reuse, encodings, client binding, scopes, disabled
//! clients, expiry and policy revocation.

use std::time::Duration;

use super::common::*;
use serde_json::json;
use token_handler::demo::tokenidp::{Options, RefreshTokenState, ResponseStyle};

#[tokio::test]
async fn guide_json_refresh_works_and_rotates() {
    let idp = start(Options {
        style: ResponseStyle::Guide,
        ..Options::default()
    })
    .await;
    let first = idp.issue(CLIENT, "demo", FULL_SCOPE);
    assert_eq!(first.refresh_token.len(), 88);

    let (status, body) = refresh_json(&idp, &first.refresh_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["isSuccess"], json!(true));
    let second = body["data"]["refreshToken"]
        .as_str()
        .expect("rotated")
        .to_owned();
    assert_ne!(second, first.refresh_token);
    assert_eq!(second.len(), 88);
    assert!(body["data"]["accessToken"]
        .as_str()
        .is_some_and(|t| t.starts_with("ey")));
    assert_eq!(
        idp.refresh_token_state(&first.refresh_token),
        RefreshTokenState::Consumed
    );
    assert_eq!(idp.refresh_token_state(&second), RefreshTokenState::Active);

    // Reuse of the consumed token: 400, it stays Consumed, and the newest keeps working.
    let (status, body) = refresh_json(&idp, &first.refresh_token).await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "Invalid refresh token.");
    assert_eq!(
        idp.refresh_token_state(&first.refresh_token),
        RefreshTokenState::Consumed
    );
    assert_eq!(
        idp.replayed_refresh_tokens(),
        vec![first.refresh_token.clone()]
    );

    let (status, body) = refresh_json(&idp, &second).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(idp.refresh_calls(), 3);
    assert_eq!(idp.token_calls(), 3);
}

#[tokio::test]
async fn form_refresh_with_percent_encoded_base64_token_works() {
    let idp = start(Options::default()).await;
    // Find a token that has the characters a form body mangles when not encoded.
    let issued = loop {
        let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
        if issued.refresh_token.contains('+') && issued.refresh_token.contains('/') {
            break issued;
        }
    };
    assert!(issued.refresh_token.ends_with("=="));
    let (status, body) = post_form(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &issued.refresh_token),
            ("client_id", CLIENT),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body_text = idp.requests().last().expect("recorded").body.clone();
    assert!(body_text.contains("%2B") && body_text.contains("%2F") && body_text.contains("%3D"));

    assert!(server_refresh_token(&body).len() == 88);

    // A token with `+` sent raw (not percent-encoded): the `+` decodes as a space, so the
    // token is unknown. This is the bug the 88-character tokens exist to catch.
    let raw = format!(
        "grant_type=refresh_token&client_id={CLIENT}&refresh_token={}",
        issued_with_plus(&idp).refresh_token
    );
    let resp = http()
        .post(format!("{}/token", idp.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(raw)
        .send()
        .await
        .expect("send");
    let (status, body) = read(resp).await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "Invalid refresh token.");
}

fn issued_with_plus(
    idp: &token_handler::demo::tokenidp::TokenIdp,
) -> token_handler::demo::tokenidp::Issued {
    loop {
        let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
        if issued.refresh_token.contains('+') {
            return issued;
        }
    }
}

#[tokio::test]
async fn refresh_token_is_bound_to_its_client() {
    let idp = start(options_with_more_clients()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let (status, body) = post_form(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &issued.refresh_token),
        ],
        Some(&basic("other-app", "other-secret")),
    )
    .await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "Invalid refresh token.");
    // Not spent by the failed attempt.
    assert_eq!(
        idp.refresh_token_state(&issued.refresh_token),
        RefreshTokenState::Active
    );
    assert!(idp.replayed_refresh_tokens().is_empty());
}

#[tokio::test]
async fn scope_removed_from_client_fails_the_refresh() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    idp.set_client_scopes(
        CLIENT,
        vec![
            "openid".into(),
            "profile".into(),
            "email".into(),
            "offline_access".into(),
        ],
    );
    let (status, body) = refresh_json(&idp, &issued.refresh_token).await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "Invalid scope.");
    assert_eq!(
        idp.refresh_token_state(&issued.refresh_token),
        RefreshTokenState::Active
    );

    // Asking only for scopes the client still has works, and keeps the grant's scopes.
    let (status, body) = post_json(
        &idp,
        json!({"grantType": "refresh_token", "clientId": CLIENT,
               "refreshToken": issued.refresh_token, "scope": "openid offline_access"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn requested_scope_must_be_in_the_grant() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", "openid offline_access");
    let (status, body) = post_json(
        &idp,
        json!({"grantType": "refresh_token", "clientId": CLIENT,
               "refreshToken": issued.refresh_token, "scope": "openid api.read"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "Invalid scope.");
}

#[tokio::test]
async fn disabled_client_gets_401_client_authentication_failed() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    idp.set_client_enabled(CLIENT, false);
    let (status, body) = refresh_json(&idp, &issued.refresh_token).await;
    assert_eq!(status, 401);
    assert_tokenidp_error(&body, "Client authentication failed.");
    idp.set_client_enabled(CLIENT, true);
    let (status, _) = refresh_json(&idp, &issued.refresh_token).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn expired_revoked_and_unknown_tokens_fail() {
    let idp = start(Options {
        refresh_token_ttl: Duration::ZERO,
        ..Options::default()
    })
    .await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    assert_eq!(
        idp.refresh_token_state(&issued.refresh_token),
        RefreshTokenState::Expired
    );
    let (status, body) = refresh_json(&idp, &issued.refresh_token).await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "Invalid refresh token.");

    let idp = start(Options::default()).await;
    let a = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let b = idp.issue(CLIENT, "demo", FULL_SCOPE);
    idp.revoke_all();
    for token in [&a.refresh_token, &b.refresh_token] {
        assert_eq!(idp.refresh_token_state(token), RefreshTokenState::Revoked);
        let (status, _) = refresh_json(&idp, token).await;
        assert_eq!(status, 400);
    }
    assert_eq!(idp.refresh_token_state("nope"), RefreshTokenState::Unknown);
    let (status, body) = refresh_json(&idp, "8d2a5d18-b8cb-44b9-9d5c-bccaf4877baf").await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "Invalid refresh token.");
}

#[tokio::test]
async fn no_offline_access_means_no_refresh_token() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", "openid profile");
    assert!(issued.refresh_token.is_empty());
    assert!(!issued.access_token.is_empty() && !issued.id_token.is_empty());
}

#[tokio::test]
async fn missing_grant_not_enabled_and_unsupported_grants() {
    let idp = start(Options::default()).await;
    let (status, body) = post_json(&idp, json!({"clientId": CLIENT})).await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "grant_type is required.");
    let (status, body) = post_json(
        &idp,
        json!({"grantType": "client_credentials", "clientId": CLIENT, "clientSecret": SECRET}),
    )
    .await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "The grant type is not enabled for this client.");
}
