//! The three /token response styles, their failure shapes, and the tokens themselves: claims,
//! `kid` modes, and verification against the published JWKS.

use std::collections::HashMap;

use super::common::*;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use token_handler::demo::tokenidp::{KidMode, Options, ResponseStyle, TokenIdp};

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn server_style_shape() {
    let idp = start(Options::default()).await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let (status, body) = refresh_json(&idp, &issued.refresh_token).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body), ["isSuccess", "value"]);
    let value = &body["value"];
    assert_eq!(
        keys(value),
        [
            "access_token",
            "expireAt",
            "expires_in",
            "id_token",
            "isSuccess",
            "refresh_token",
            "token_type",
            "userId"
        ]
    );
    assert_eq!(value["token_type"], json!("Bearer"));
    assert_eq!(value["expires_in"], json!(300));
    assert_eq!(value["isSuccess"], json!(true));
    assert_eq!(value["userId"], json!(42));
    let expire_at = value["expireAt"].as_str().expect("expireAt");
    assert!(expire_at.len() == 20 && expire_at.ends_with('Z') && expire_at.contains('T'));
}

#[tokio::test]
async fn guide_style_shape() {
    let idp = start(Options::default()).await;
    idp.set_style(ResponseStyle::Guide);
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let (status, body) = refresh_json(&idp, &issued.refresh_token).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body), ["data", "isSuccess"]);
    assert_eq!(
        keys(&body["data"]),
        [
            "accessToken",
            "expiresIn",
            "idToken",
            "refreshToken",
            "tokenType"
        ]
    );
    assert_eq!(body["data"]["tokenType"], json!("Bearer"));
    assert_eq!(body["data"]["expiresIn"], json!(300));
}

#[tokio::test]
async fn oauth2_style_shape_and_errors() {
    let idp = start(Options {
        style: ResponseStyle::OAuth2,
        ..Options::default()
    })
    .await;
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);
    let resp = http()
        .post(format!("{}/token", idp.url()))
        .header("authorization", basic(CLIENT, SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &issued.refresh_token),
        ])
        .send()
        .await
        .expect("send");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, body) = read(resp).await;
    assert_eq!(status, 200);
    assert_eq!(
        keys(&body),
        [
            "access_token",
            "expires_in",
            "id_token",
            "refresh_token",
            "scope",
            "token_type"
        ]
    );
    assert_eq!(body["scope"], json!(FULL_SCOPE));

    // Reuse: RFC 6749 §5.2 invalid_grant, 400.
    let (status, body) = refresh_json(&idp, &issued.refresh_token).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], json!("invalid_grant"));
    assert!(body["error_description"].is_string());

    // Wrong secret: invalid_client, 401, with WWW-Authenticate.
    let resp = http()
        .post(format!("{}/token", idp.url()))
        .header("authorization", basic(CLIENT, "wrong"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .expect("send");
    assert!(resp.headers().contains_key("www-authenticate"));
    let (status, body) = read(resp).await;
    assert_eq!(
        (status, body["error"].clone()),
        (401, json!("invalid_client"))
    );

    // No grant_type: invalid_request; unknown grant: unsupported_grant_type (when enabled).
    let (status, body) = post_json(&idp, json!({"client_id": CLIENT})).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_request"))
    );

    // Bad code: invalid_grant 400 instead of TokenIDP's PascalCase 500.
    let (status, body) = exchange(&idp, "no-such-code", "verifier").await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_grant"))
    );
}

#[tokio::test]
async fn unsupported_grant_type_when_enabled_for_the_client() {
    let mut options = Options::default();
    options.clients[0].grants.push("password".into());
    options.style = ResponseStyle::OAuth2;
    let idp = start(options).await;
    let (status, body) = post_form(
        &idp,
        &[
            ("grant_type", "password"),
            ("username", "demo"),
            ("password", "demo"),
        ],
        Some(&basic(CLIENT, SECRET)),
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
}

async fn jwks_key(idp: &TokenIdp) -> (DecodingKey, String) {
    let jwks: Value = http()
        .get(format!("{}/.well-known/jwks.json", idp.url()))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        (key["kty"].as_str(), key["use"].as_str()),
        (Some("RSA"), Some("sig"))
    );
    assert_eq!(key["alg"], json!("RS256"));
    let n = key["n"].as_str().expect("n");
    let e = key["e"].as_str().expect("e");
    let kid = key["kid"].as_str().expect("kid").to_owned();
    (DecodingKey::from_rsa_components(n, e).expect("key"), kid)
}

#[tokio::test]
async fn tokens_verify_against_jwks_with_the_documented_claims() {
    let idp = start(Options::default()).await;
    let (key, kid) = jwks_key(&idp).await;
    assert_eq!(kid, idp.jwks_kid());
    let issued = idp.issue(CLIENT, "demo", FULL_SCOPE);

    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&["api"]);
    validation.set_issuer(&[idp.url()]);
    let access = decode::<HashMap<String, Value>>(&issued.access_token, &key, &validation)
        .expect("access token verifies")
        .claims;
    assert_eq!(access["sub"], json!("usr:42"));
    assert_eq!(access["client_id"], json!(CLIENT));
    assert_eq!(access["scope"], json!(FULL_SCOPE));
    assert_eq!(access["unique_name"], json!("demo"));
    assert_eq!(access["aud"], json!("api"));
    assert_eq!(access["jti"].as_str().map(str::len), Some(36));
    for claim in ["tenant_id", "user_id", "role", "iat", "nbf"] {
        assert!(access.contains_key(claim), "{claim}");
    }
    let iat = access["iat"].as_u64().expect("iat");
    assert_eq!(access["exp"].as_u64(), Some(iat + 300));
    assert_eq!(issued.expires_in, 300);
    assert!(decode_header(&issued.access_token)
        .expect("header")
        .kid
        .is_none());

    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[CLIENT]);
    let id = decode::<HashMap<String, Value>>(&issued.id_token, &key, &validation)
        .expect("id token verifies")
        .claims;
    assert_eq!(id["name"], json!("Demo User"));
    assert_eq!(id["email"], json!("demo@example.com"));
    assert_eq!(id["iss"], json!(idp.url()));
    assert!(!id.contains_key("nonce") && !id.contains_key("auth_time"));
    // Quirk: the ID token "expires" about ten years out.
    let id_iat = id["iat"].as_u64().expect("iat");
    assert!(id["exp"].as_u64().expect("exp") > id_iat + 9 * 365 * 24 * 3600);

    // No API scope requested: no `aud` in the access token.
    let plain = idp.issue(CLIENT, "demo", "openid profile");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    let claims = decode::<HashMap<String, Value>>(&plain.access_token, &key, &validation)
        .expect("verifies")
        .claims;
    assert!(!claims.contains_key("aud"));
}

#[tokio::test]
async fn kid_modes() {
    let idp = start(Options {
        kid_mode: KidMode::Mismatch,
        ..Options::default()
    })
    .await;
    let (key, kid) = jwks_key(&idp).await;
    let issued = idp.issue(CLIENT, "demo", "openid");
    let header_kid = decode_header(&issued.access_token).expect("header").kid;
    assert!(header_kid.is_some() && header_kid.as_deref() != Some(kid.as_str()));
    // Still verifies with the one key we have: a verifier must try it.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    decode::<Value>(&issued.id_token, &key, &validation).expect("verifies");

    idp.set_kid_mode(KidMode::Match);
    let issued = idp.issue(CLIENT, "demo", "openid");
    assert_eq!(
        decode_header(&issued.id_token).expect("header").kid,
        Some(kid)
    );
}
