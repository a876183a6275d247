//! Client authentication at /token: Basic vs body secret, public vs confidential clients.

use super::common::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use token_handler::demo::tokenidp::{Client, Options};

#[tokio::test]
async fn basic_and_body_secret_at_once_is_400() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let (status, body) = post_form(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &issued.refresh_token),
            ("client_secret", SECRET),
        ],
        Some(&basic(CLIENT, SECRET)),
    )
    .await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "Use only one client authentication method.");
}

#[tokio::test]
async fn body_client_id_differing_from_basic_is_400() {
    let idp = start(options_with_more_clients()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let (status, body) = post_form(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &issued.refresh_token),
            ("client_id", "other-app"),
        ],
        Some(&basic(CLIENT, SECRET)),
    )
    .await;
    assert_eq!(status, 400);
    assert_tokenidp_error(&body, "client_id does not match the Authorization header.");
}

#[tokio::test]
async fn public_client_sending_a_secret_is_401() {
    let idp = start(options_with_more_clients()).await;
    let issued = idp.issue("spa-public", "demo", FULL_SCOPE);
    let (status, body) = post_json(
        &idp,
        json!({"grant_type": "refresh_token", "client_id": "spa-public",
               "client_secret": "anything", "refresh_token": issued.refresh_token}),
    )
    .await;
    assert_eq!(status, 401);
    assert_tokenidp_error(&body, "Client authentication failed.");
    // Without the secret it works.
    let (status, _) = post_json(
        &idp,
        json!({"grant_type": "refresh_token", "client_id": "spa-public",
               "refresh_token": issued.refresh_token}),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn confidential_client_may_refresh_without_secret() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let (status, body) = post_form(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("refresh_token", &issued.refresh_token),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn wrong_secret_is_401_in_basic_and_body() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let (status, body) = post_form(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &issued.refresh_token),
        ],
        Some(&basic(CLIENT, "wrong")),
    )
    .await;
    assert_eq!(status, 401);
    assert_tokenidp_error(&body, "Client authentication failed.");
    let (status, _) = post_json(
        &idp,
        json!({"grantType": "refresh_token", "clientId": CLIENT, "clientSecret": "wrong",
               "refreshToken": issued.refresh_token}),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = post_json(
        &idp,
        json!({"grantType": "refresh_token", "clientId": "no-such-client",
               "refreshToken": issued.refresh_token}),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded_per_rfc6749_2_3_1() {
    let mut options = Options::default();
    options.clients.push(Client {
        client_id: "app:one".into(),
        secret: Some("s3cr+t/with %&".into()),
        ..Client::default()
    });
    let idp = start(options).await;
    let issued = idp.issue("app:one", "demo", FULL_SCOPE);
    let id = "app%3Aone";
    let secret = "s3cr%2Bt%2Fwith+%25%26";
    let header = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let (status, body) = post_form(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &issued.refresh_token),
        ],
        Some(&header),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let recorded = idp.requests().last().expect("recorded").clone();
    assert_eq!(recorded.authorization.as_deref(), Some(header.as_str()));
}

#[tokio::test]
async fn field_names_match_without_case_in_both_spellings() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let (status, body) = post_json(
        &idp,
        json!({"GRANT_TYPE": "refresh_token", "ClientID": CLIENT,
               "Refresh_Token": issued.refresh_token}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The same field twice (in two spellings) is refused.
    let (status, _) = post_json(
        &idp,
        json!({"grant_type": "refresh_token", "grantType": "refresh_token", "clientId": CLIENT,
               "refreshToken": server_refresh_token(&body)}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn code_exchange_needs_the_confidential_clients_secret() {
    let idp = start(Options::default()).await;
    let (code, verifier) = authorize(&idp, FULL_SCOPE).await;
    let (status, body) = post_json(
        &idp,
        json!({"grantType": "authorization_code", "clientId": CLIENT, "code": code,
               "codeVerifier": verifier, "redirectUri": REDIRECT}),
    )
    .await;
    assert_eq!(status, 401);
    assert_tokenidp_error(&body, "Client authentication failed.");
}
