//! /revoke, discovery, JWKS, /userinfo, /introspect, request recording, issued secrets and
//! shutdown.

use std::time::Duration;

use super::common::*;
use serde_json::{json, Value};
use token_handler::demo::tokenidp::{Options, RefreshTokenState, ResponseStyle};

#[tokio::test]
async fn delete_revoke_with_bearer_revokes_one_token() {
    let idp = start(Options::default()).await;
    let a = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let b = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let revoke = |bearer: Option<String>, token: &str| {
        let mut req = http()
            .delete(format!("{}/revoke", idp.url()))
            .json(&json!({"token": token, "reasonRevoked": "logout"}));
        if let Some(bearer) = bearer {
            req = req.header("authorization", format!("Bearer {bearer}"));
        }
        req.send()
    };

    let (status, body) = read(
        revoke(Some(a.access_token.clone()), &a.refresh_token)
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"message": "Refresh token revoked."}));
    assert_eq!(
        idp.refresh_token_state(&a.refresh_token),
        RefreshTokenState::Revoked
    );
    assert_eq!(
        idp.refresh_token_state(&b.refresh_token),
        RefreshTokenState::Active
    );
    assert_eq!(idp.revoked_tokens(), vec![a.refresh_token.clone()]);
    let (status, _) = refresh_json(&idp, &a.refresh_token).await;
    assert_eq!(status, 400);

    // Nothing to revoke: still 200, nothing listed.
    let (status, body) = read(
        revoke(Some(a.access_token.clone()), "unknown")
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], json!("Refresh token revoked."));
    assert_eq!(idp.revoked_tokens().len(), 1);

    // No Bearer, an ID token, or garbage: 401, nothing revoked.
    for bearer in [None, Some(a.id_token.clone()), Some("garbage".to_owned())] {
        let resp = revoke(bearer, &b.refresh_token).await.expect("send");
        assert_eq!(resp.status().as_u16(), 401);
    }
    assert_eq!(
        idp.refresh_token_state(&b.refresh_token),
        RefreshTokenState::Active
    );

    // TokenIDP has no RFC 7009 POST /revoke.
    let resp = http()
        .post(format!("{}/revoke", idp.url()))
        .form(&[("token", b.refresh_token.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 405);
}

#[tokio::test]
async fn expired_access_token_cannot_revoke() {
    let idp = start(Options {
        access_token_ttl: Duration::ZERO,
        ..Options::default()
    })
    .await;
    let a = idp.issue(CLIENT, "demo", FULL_SCOPE);
    // exp == iat, and with no leeway the token is expired once the wall-clock second turns:
    // wait for that boundary (at most a second), the one sleep this suite cannot avoid.
    assert_eq!(a.expires_in, 0);
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    let to_next_second =
        Duration::from_secs(1) - Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
    tokio::time::sleep(to_next_second + Duration::from_millis(20)).await;
    let resp = http()
        .delete(format!("{}/revoke", idp.url()))
        .bearer_auth(&a.access_token)
        .json(&json!({"token": a.refresh_token, "reasonRevoked": "logout"}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);
}

#[tokio::test]
async fn rfc7009_revoke_in_oauth2_style() {
    let idp = start(Options {
        style: ResponseStyle::OAuth2,
        ..Options::default()
    })
    .await;
    let a = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let resp = http()
        .post(format!("{}/revoke", idp.url()))
        .header("authorization", basic(CLIENT, SECRET))
        .form(&[
            ("token", a.refresh_token.as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        idp.refresh_token_state(&a.refresh_token),
        RefreshTokenState::Revoked
    );
    assert_eq!(idp.revoked_tokens(), vec![a.refresh_token]);
}

#[tokio::test]
async fn discovery_document_keys() {
    let idp = start(Options::default()).await;
    let doc: Value = http()
        .get(format!("{}/.well-known/openid-configuration", idp.url()))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let url = idp.url();
    assert_eq!(doc["issuer"], json!(url));
    assert_eq!(
        doc["authorization_endpoint"],
        json!(format!("{url}/authorize"))
    );
    assert_eq!(doc["token_endpoint"], json!(format!("{url}/token")));
    assert_eq!(doc["userinfo_endpoint"], json!(format!("{url}/userinfo")));
    assert_eq!(
        doc["jwks_uri"],
        json!(format!("{url}/.well-known/jwks.json"))
    );
    assert_eq!(doc["revoke_token_endpoint"], json!(format!("{url}/revoke")));
    assert_eq!(
        doc["introspect_endpoint"],
        json!(format!("{url}/introspect"))
    );
    for absent in [
        "end_session_endpoint",
        "code_challenge_methods_supported",
        "revocation_endpoint",
    ] {
        assert!(doc.get(absent).is_none(), "{absent}");
    }

    // The issuer follows the Host header of the request.
    let port = url.rsplit(':').next().expect("port");
    let doc: Value = http()
        .get(format!(
            "http://localhost:{port}/.well-known/openid-configuration"
        ))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["issuer"], json!(format!("http://localhost:{port}")));
}

#[tokio::test]
async fn userinfo_and_introspect() {
    let idp = start(Options::default()).await;
    let a = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let resp = http()
        .get(format!("{}/userinfo", idp.url()))
        .bearer_auth(&a.access_token)
        .send()
        .await
        .expect("send");
    let (status, body) = read(resp).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"sub": 42, "name": "Demo User", "email": "demo@example.com"})
    );
    let resp = http()
        .get(format!("{}/userinfo", idp.url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);

    let introspect = |token: String| {
        http()
            .post(format!("{}/introspect", idp.url()))
            .form(&[("token", token)])
            .send()
    };
    let (_, body) = read(introspect(a.access_token.clone()).await.expect("send")).await;
    assert_eq!(
        (body["active"].clone(), body["client_id"].clone()),
        (json!(true), json!(CLIENT))
    );
    let (_, body) = read(introspect(a.refresh_token.clone()).await.expect("send")).await;
    assert_eq!(body["active"], json!(true));
    let (_, body) = read(introspect("nope".into()).await.expect("send")).await;
    assert_eq!(body, json!({"active": false}));
}

#[tokio::test]
async fn requests_and_secrets_are_recorded() {
    let idp = start(Options::default()).await;
    assert!(idp.url().starts_with("http://127.0.0.1:") && !idp.url().ends_with('/'));
    let a = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let (_, body) = post_form(
        &idp,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &a.refresh_token),
        ],
        Some(&basic(CLIENT, SECRET)),
    )
    .await;
    let resp = http()
        .get(format!("{}/nope?x=1", idp.url()))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 404);

    let requests = idp.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/token")
    );
    assert_eq!(
        requests[0].content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(requests[0].authorization, Some(basic(CLIENT, SECRET)));
    assert!(requests[0]
        .body
        .starts_with("grant_type=refresh_token&refresh_token="));
    assert_eq!(
        (requests[1].path.as_str(), requests[1].query.as_deref()),
        ("/nope", Some("x=1"))
    );
    assert!(requests[1].headers.iter().any(|(k, _)| k == "host"));

    let secrets = idp.issued_secrets();
    let value = &body["value"];
    for token in [
        &a.access_token,
        &a.refresh_token,
        &a.id_token,
        &value["access_token"].as_str().expect("at").to_owned(),
        &value["refresh_token"].as_str().expect("rt").to_owned(),
        &value["id_token"].as_str().expect("id").to_owned(),
    ] {
        assert!(secrets.contains(token));
    }
    assert_eq!(secrets.len(), 6);
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let idp = start(Options::default()).await;
    let clone = idp.clone();
    let url = format!("{}/.well-known/jwks.json", idp.url());
    let client = http();
    assert_eq!(
        client.get(&url).send().await.expect("up").status().as_u16(),
        200
    );
    clone.shutdown().await;
    idp.shutdown().await; // twice is fine
    client
        .get(&url)
        .send()
        .await
        .expect_err("down after shutdown");
    reqwest::get(&url)
        .await
        .expect_err("new connections refused");
}
