//! Injected faults: status, headers and body of each, and that every /token call counts.

use std::time::{Duration, Instant};

use super::common::*;
use serde_json::{json, Value};
use token_handler::demo::tokenidp::{Fault, Options, RefreshTokenState};

async fn raw_refresh(
    idp: &token_handler::demo::tokenidp::TokenIdp,
    token: &str,
) -> reqwest::Response {
    http()
        .post(format!("{}/token", idp.url()))
        .json(&json!({"grantType": "refresh_token", "clientId": CLIENT, "refreshToken": token}))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn rate_limited() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    idp.set_fault(Fault::RateLimited {
        retry_after_secs: 7,
    });
    let resp = raw_refresh(&idp, &issued.refresh_token).await;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/json"));
    let (_, body) = read(resp).await;
    assert_eq!(body["error"], json!("rate_limit_exceeded"));
    assert!(body["error_description"].is_string());
    // The fault answered before the grant: the token was not spent.
    assert_eq!(
        idp.refresh_token_state(&issued.refresh_token),
        RefreshTokenState::Active
    );
    assert_eq!((idp.token_calls(), idp.refresh_calls()), (1, 1));
}

#[tokio::test]
async fn pascal_case_500() {
    let idp = start(Options::default()).await;
    idp.set_fault(Fault::PascalCase500);
    let (status, body) = read(raw_refresh(&idp, "x").await).await;
    assert_eq!(status, 500);
    assert_pascal_case_500(&body);
}

#[tokio::test]
async fn html_502() {
    let idp = start(Options::default()).await;
    idp.set_fault(Fault::Html502);
    let resp = raw_refresh(&idp, "x").await;
    assert_eq!(resp.status().as_u16(), 502);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("text/html"));
    let text = resp.text().await.expect("body");
    assert!(text.contains("<title>502 Bad Gateway</title>"));
}

#[tokio::test]
async fn truncated_json() {
    let idp = start(Options::default()).await;
    idp.set_fault(Fault::TruncatedJson);
    let resp = raw_refresh(&idp, "x").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/json"));
    let text = resp.text().await.expect("whole body arrives");
    assert!(text.starts_with("{\"isSuccess\":true"));
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn inner_failure() {
    let idp = start(Options::default()).await;
    idp.set_fault(Fault::InnerFailure);
    let (status, body) = read(raw_refresh(&idp, "x").await).await;
    assert_eq!(status, 200);
    assert_eq!(body["isSuccess"], json!(true));
    assert_eq!(body["value"]["isSuccess"], json!(false));
    assert!(body["value"].get("access_token").is_none());
}

#[tokio::test]
async fn tenant_unavailable() {
    let idp = start(Options::default()).await;
    idp.set_fault(Fault::TenantUnavailable);
    let (status, body) = read(raw_refresh(&idp, "x").await).await;
    assert_eq!(
        (status, body),
        (404, json!({"error": "tenant_unavailable"}))
    );
}

#[tokio::test]
async fn huge_body() {
    let idp = start(Options::default()).await;
    idp.set_fault(Fault::HugeBody(3 * 1024 * 1024));
    let resp = raw_refresh(&idp, "x").await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.content_length(), Some(3 * 1024 * 1024));
    let bytes = resp.bytes().await.expect("body");
    assert_eq!(bytes.len(), 3 * 1024 * 1024);
    serde_json::from_slice::<Value>(&bytes).expect("valid JSON padding");
}

#[tokio::test]
async fn slow_delays_token_answers_only() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    idp.set_fault(Fault::Slow(Duration::from_millis(400)));
    let started = Instant::now();
    let resp = http()
        .get(format!("{}/.well-known/jwks.json", idp.url()))
        .send()
        .await
        .expect("jwks");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_millis(400));

    // A client that gives up early gets nothing, and the token is not spent.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    let err = client
        .post(format!("{}/token", idp.url()))
        .json(&json!({"grantType": "refresh_token", "clientId": CLIENT,
                      "refreshToken": issued.refresh_token}))
        .send()
        .await
        .expect_err("times out");
    assert!(err.is_timeout());

    let started = Instant::now();
    let (status, _) = read(raw_refresh(&idp, &issued.refresh_token).await).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(idp.token_calls(), 2);
}

#[tokio::test]
async fn down_drops_every_connection_and_still_counts() {
    let idp = start(Options::default()).await;
    idp.set_fault(Fault::Down);
    let err = http()
        .post(format!("{}/token", idp.url()))
        .json(&json!({"grantType": "refresh_token", "clientId": CLIENT, "refreshToken": "x"}))
        .send()
        .await
        .expect_err("no response");
    // The request went out and the connection closed with no answer (IncompleteMessage).
    assert!(
        err.is_request() && !err.is_status() && !err.is_timeout(),
        "{err:?}"
    );
    let err = http()
        .get(format!("{}/.well-known/openid-configuration", idp.url()))
        .send()
        .await
        .expect_err("no response");
    assert!(!err.is_status(), "{err:?}");
    assert_eq!((idp.token_calls(), idp.refresh_calls()), (1, 1));

    // Back up: a pooled client keeps working on new connections.
    idp.set_fault(Fault::None);
    let resp = http()
        .get(format!("{}/.well-known/jwks.json", idp.url()))
        .send()
        .await
        .expect("up again");
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn down_also_drops_kept_alive_connections() {
    let idp = start(Options::default()).await;
    let client = http();
    let url = format!("{}/.well-known/jwks.json", idp.url());
    assert_eq!(
        client.get(&url).send().await.expect("up").status().as_u16(),
        200
    );
    idp.set_fault(Fault::Down);
    client
        .get(&url)
        .send()
        .await
        .expect_err("pooled connection dropped");
}
