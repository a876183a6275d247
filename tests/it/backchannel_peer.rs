//! The test peer for OpenID Connect Back-Channel Logout 1.0: the real `oidc-provider`
//! (tests/oidc) with `BACKCHANNEL_LOGOUT_URI`, checked on its own, before any proxy endpoint
//! receives its logout tokens. Its back-channel URI points at a capture server (an [`Echo`],
//! which records each request and answers 200).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::support::cluster::{Cluster, Options};
use crate::support::echo::Echo;
use crate::support::oidc_provider::{OidcProvider, ProviderOptions, OIDC_CLIENT_ID, SIGNING_KID};
use crate::support::provider_browser::ProviderBrowser;
use crate::support::*;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A JWT's header and payload, decoded without any check.
fn parts(jwt: &str) -> (Value, Value) {
    let mut it = jwt.split('.');
    let mut next = || {
        let part = it.next().expect("a JWT has three parts");
        let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url JWT part");
        serde_json::from_slice::<Value>(&bytes).expect("JSON JWT part")
    };
    let header = next();
    (header, next())
}

/// The provider's published key for `kid` (`GET {issuer}/jwks`), as published.
async fn published_key(provider: &OidcProvider, kid: &str) -> Value {
    let jwks: Value = client()
        .get(format!("{}/jwks", provider.issuer))
        .send()
        .await
        .expect("jwks endpoint")
        .json()
        .await
        .expect("jwks JSON");
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("no key {kid} in {jwks}"));
    key.clone()
}

/// Verifies `jwt` (RS256) with the provider's JWKS, for the test client, from the provider.
async fn verify(provider: &OidcProvider, jwt: &str) -> Value {
    let jwk: Jwk =
        serde_json::from_value(published_key(provider, SIGNING_KID).await).expect("a JWK");
    let key = DecodingKey::from_jwk(&jwk).expect("RSA JWK");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[OIDC_CLIENT_ID]);
    validation.set_issuer(&[&provider.issuer]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap_or_else(|e| panic!("{jwt} does not verify with the provider's JWKS: {e}"))
        .claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_at_the_provider_posts_one_logout_token_with_the_sessions_sid() {
    let capture = Echo::start().await;
    let c = Cluster::build(Options {
        replicas: 1,
        access_ttl: 60,
        backchannel_uri: Some(format!("{}/backchannel-logout", capture.url())),
        // The proxy keeps the ID token only for `id_token_hint`: keep it, to read its `sid`.
        idp: "timeout = \"3s\"\nlogout_id_token_hint = true\n".into(),
        ..Options::default()
    })
    .await;

    // Two proxy sessions from one browser: one provider session, so one `sid`.
    let browser = ProviderBrowser::new();
    let first = c.login_in(&browser, "oidc-user").await;
    let second = c.login_in(&browser, "oidc-user").await;
    let sid_of = |jar: &Jar| {
        let session = c.session(jar);
        let id_token = session.id_token.expect("the session keeps its ID token");
        let (_, claims) = parts(id_token.expose());
        claims["sid"]
            .as_str()
            .unwrap_or_else(|| panic!("the ID token carries a sid: {claims}"))
            .to_owned()
    };
    let sid = sid_of(&first);
    assert!(!sid.is_empty());
    assert_eq!(
        sid_of(&second),
        sid,
        "both logins share the provider session"
    );
    assert!(
        capture.records().is_empty(),
        "nothing is posted before the logout"
    );

    let post_logout = format!("{}/", c.proxies[0].url);
    let ended = browser
        .end_session(&c.provider, OIDC_CLIENT_ID, &post_logout)
        .await;
    assert_eq!(ended.status, 303, "{ended:?}");
    assert_eq!(ended.url, post_logout);

    // The provider awaited its back-channel POSTs before answering the confirm.
    let records = capture.records();
    assert_eq!(records.len(), 1, "one logout token: {records:?}");
    let post = &records[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.uri, "/backchannel-logout");
    let content_type = post.header("content-type").unwrap_or_default();
    assert!(
        content_type.starts_with("application/x-www-form-urlencoded"),
        "{content_type}"
    );
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&post.body).expect("a form body");
    assert_eq!(form.len(), 1, "only logout_token: {form:?}");
    assert_eq!(form[0].0, "logout_token");
    let token = &form[0].1;

    let (header, claims) = parts(token);
    assert_eq!(header["alg"], "RS256", "{header}");
    assert_eq!(header["kid"], SIGNING_KID, "{header}");
    assert_eq!(header["typ"], "logout+jwt", "{header}");
    assert_eq!(claims["iss"], c.provider.issuer.as_str(), "{claims}");
    assert_eq!(claims["aud"], OIDC_CLIENT_ID, "{claims}");
    assert_eq!(claims["sid"], sid.as_str(), "{claims}");
    assert_eq!(claims["events"], json!({ EVENT: {} }), "{claims}");
    assert!(
        claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
        "{claims}"
    );
    assert!(claims["iat"].is_u64(), "{claims}");
    assert!(claims.get("nonce").is_none(), "{claims}");
    // A real token from the provider's key, as the proxy will verify it.
    assert_eq!(verify(&c.provider, token).await, claims);

    // The provider session is gone: a login in the same browser asks for credentials again,
    // and with another account it gets another sid.
    let again = c.login_in(&browser, "someone-else").await;
    assert_ne!(sid_of(&again), sid, "a new provider session");
    assert_eq!(capture.records().len(), 1, "no further logout token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_with_the_exposed_key_verify_with_the_published_jwks() {
    let provider = OidcProvider::start_opts(&ProviderOptions {
        dpop: Default::default(),
        redirect_uri: "http://127.0.0.1:9/auth/callback".into(),
        post_logout_redirect_uri: "http://127.0.0.1:9/".into(),
        access_token_ttl_secs: 60,
        rotate: true,
        backchannel_logout_uri: Some("http://127.0.0.1:9/auth/backchannel-logout".into()),
        expose_signing_key: true,
        private_key_jwt: false,
        require_par: false,
    })
    .await;
    let jwk = provider.signing_key.as_ref().expect("the exposed JWK");
    assert_eq!(jwk["kid"], SIGNING_KID);
    assert!(jwk["d"].is_string(), "the private part");
    let published = published_key(&provider, SIGNING_KID).await;
    assert_eq!(
        published["n"], jwk["n"],
        "the published key is the exposed one"
    );
    assert!(published.get("d").is_none(), "JWKS has no private part");

    let now = token_handler::refresh::unix_now();
    let claims = json!({
        "iss": provider.issuer,
        "aud": OIDC_CLIENT_ID,
        "iat": now,
        "exp": now + 120,
        "jti": "forged-1",
        "sid": "some-sid",
        "events": { EVENT: {} },
    });
    let token = provider.sign(&claims, Some("logout+jwt"));
    let (header, _) = parts(&token);
    assert_eq!(
        header,
        json!({ "alg": "RS256", "kid": SIGNING_KID, "typ": "logout+jwt" })
    );
    assert_eq!(verify(&provider, &token).await, claims);

    let untyped = provider.sign(&claims, None);
    let (header, _) = parts(&untyped);
    assert!(header.get("typ").is_none(), "{header}");
    assert_eq!(verify(&provider, &untyped).await, claims);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_provider_has_no_back_channel_and_keeps_its_key() {
    let provider = OidcProvider::start_with(
        "http://127.0.0.1:9/auth/callback",
        "http://127.0.0.1:9/",
        60,
        true,
    )
    .await;
    assert!(provider.signing_key.is_none() && provider.signing_key_pem.is_none());
    let discovery: Value = client()
        .get(format!(
            "{}/.well-known/openid-configuration",
            provider.issuer
        ))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("discovery JSON");
    assert!(
        discovery.get("backchannel_logout_supported").is_none(),
        "{discovery}"
    );
    assert!(published_key(&provider, SIGNING_KID)
        .await
        .get("d")
        .is_none());
}
