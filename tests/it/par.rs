//! Pushed authorization requests (RFC 9126) against the real `oidc-provider`, whose client
//! can be registered with `require_pushed_authorization_requests` (then a classic authorization
//! request is refused): the browser is sent with `client_id` and `request_uri` only, the client
//! authenticates at the PAR endpoint as at `/token` (a secret or a signed assertion),
//! `pushed_authorization = "never"` switches back to the classic redirect, and a PAR endpoint
//! that does not answer, or refuses the client, ends the login attempt cleanly.

mod failures;

use crate::support::cluster::{Cluster, Credential, Options};
use crate::support::oidc_provider::OIDC_CLIENT_ID;
use crate::support::provider_browser::ProviderBrowser;
use crate::support::*;
use std::collections::HashSet;
use url::Url;

async fn start(require_par: bool, credential: Credential, idp: &str) -> Cluster {
    Cluster::build(Options {
        replicas: 1,
        access_ttl: 4,
        require_par,
        credential,
        idp: format!("timeout = \"3s\"\n{idp}"),
        ..Options::default()
    })
    .await
}

/// `GET /auth/login` at `proxy_url`: the 302 and the authorization URL it sends the browser to.
async fn start_login(http: &reqwest::Client, proxy_url: &str, jar: &mut Jar) -> Url {
    let r = http
        .get(format!("{proxy_url}/auth/login"))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 302, "{:?}", r.headers());
    jar.update(&r);
    Url::parse(&location(&r)).expect("an absolute authorization URL")
}

/// The query's keys, in order.
fn keys(url: &Url) -> Vec<String> {
    url.query_pairs().map(|(k, _)| k.into_owned()).collect()
}

fn param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// A whole login at replica 0 through the provider's pages: the jar, and the authorization URL
/// the proxy sent the browser to.
async fn login(o: &Cluster) -> (Jar, Url) {
    let mut jar = Jar::default();
    let authorize = start_login(&o.http, &o.proxies[0].url, &mut jar).await;
    let callback = ProviderBrowser::new()
        .login(&o.provider, authorize.as_str(), "oidc-user")
        .await;
    let r = o
        .http
        .get(&callback)
        .header("cookie", jar.header())
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), 200, "{callback}");
    jar.update(&r);
    (jar, authorize)
}

/// The browser's URL names the client and the pushed request, nothing else.
fn assert_pushed(o: &Cluster, authorize: &Url) {
    assert_eq!(
        keys(authorize),
        ["client_id", "request_uri"],
        "only the reference travels through the browser: {authorize}"
    );
    assert_eq!(
        param(authorize, "client_id").as_deref(),
        Some(OIDC_CLIENT_ID)
    );
    let request_uri = param(authorize, "request_uri").expect("request_uri");
    assert!(
        request_uri.starts_with("urn:ietf:params:oauth:request_uri:"),
        "{request_uri}"
    );
    assert_eq!(
        authorize.as_str().split('?').next(),
        Some(format!("{}/auth", o.provider.issuer).as_str()),
        "the provider's authorization endpoint"
    );
}

/// An API call after the access token fell due: refreshed (200), the jar updated.
async fn refresh(o: &Cluster, jar: &mut Jar) {
    let before = o.session(jar).access_token.expose().to_owned();
    o.wait_for_expiry(jar).await;
    let r = o.get(0, "/api/me", jar).await;
    assert_eq!(r.status(), 200);
    jar.update(&r);
    assert_ne!(o.session(jar).access_token.expose(), before, "refreshed");
}

const PUSHED: &str = r#"token_handler_idp_par_seconds_count{outcome="pushed"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_requires_par_gets_pushed_requests_login_refresh_and_logout_work() {
    let o = start(true, Credential::Secret, "").await;
    let (mut jar, authorize) = login(&o).await;
    assert_pushed(&o, &authorize);
    assert_eq!(o.metric(0, PUSHED), 1.0);
    assert_eq!(o.session(&jar).claims["sub"], "oidc-user");
    refresh(&o, &mut jar).await;
    let refresh_token = o.session(&jar).refresh_token.expose().to_owned();
    o.logout(0, &jar).await;
    assert_eq!(o.get(0, "/api/me", &jar).await.status(), 401);
    assert!(
        !o.provider.grant_alive(&refresh_token).await,
        "revoked at logout"
    );
}

/// Also: no private key or assertion (its `jti`) in a log line (TRACE) or an answer.
#[tokio::test]
async fn pushed_requests_carry_a_signed_client_assertion_and_no_secret() {
    let capture = logs::capture();
    let o = start(
        true,
        Credential::KeyFile {
            kid: "client-rs256",
            jwk: false,
        },
        "",
    )
    .await;
    let (mut jar, authorize) = login(&o).await;
    assert_pushed(&o, &authorize);
    refresh(&o, &mut jar).await;
    let answers = json(o.get(0, "/auth/session", &jar).await)
        .await
        .to_string();
    let refresh_token = o.session(&jar).refresh_token.expose().to_owned();
    o.logout(0, &jar).await;
    assert!(!o.provider.grant_alive(&refresh_token).await, "revoked");

    let seen = o.provider.client_assertions().await;
    let routes: Vec<&str> = seen
        .iter()
        .map(|a| a["route"].as_str().unwrap_or(""))
        .collect();
    // The pushed request, the code exchange, the refresh, the revocation; then the test's own.
    assert_eq!(
        routes,
        [
            "pushed_authorization_request",
            "token",
            "token",
            "revocation",
            "token"
        ],
        "{seen:#?}"
    );
    // The usual audience, the token endpoint: RFC 9126 §2 has PAR endpoints accept it.
    let token_endpoint = format!("{}/token", o.provider.issuer);
    let mut jtis = HashSet::new();
    for a in &seen[..4] {
        assert_eq!(
            (a["alg"].as_str(), a["kid"].as_str()),
            (Some("RS256"), Some("client-rs256"))
        );
        assert_eq!(a["claims"]["sub"], OIDC_CLIENT_ID);
        assert_eq!(a["claims"]["aud"], token_endpoint.as_str(), "{a}");
        assert!(
            jtis.insert(a["claims"]["jti"].as_str().expect("jti").to_owned()),
            "a new assertion per call"
        );
    }
    let logs = capture.text();
    assert!(logs.contains("pushed authorization request endpoint answered"));
    let key = o.provider.client_key("client-rs256", "pem");
    let key_body = key.lines().nth(1).expect("a line of the key");
    for secret in jtis.iter().map(String::as_str).chain([key_body]) {
        assert!(
            !logs.contains(secret),
            "a key or an assertion reached the logs"
        );
        assert!(
            !answers.contains(secret),
            "a key or an assertion reached an answer"
        );
    }
}

/// Workload identity: the platform's token file is read for the pushed request and again for
/// the code exchange (the provider refuses a second use of a `jti`, so the test rotates it in
/// between, as a platform minting a token per call would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_token_authenticates_the_pushed_request() {
    let o = start(true, Credential::AssertionFile, "").await;
    let file = o.credential_file.clone().expect("the assertion file");
    let mut jar = Jar::default();
    let authorize = start_login(&o.http, &o.proxies[0].url, &mut jar).await;
    assert_pushed(&o, &authorize);
    std::fs::write(&file, o.provider.mint_client_assertion("after-par", 600)).expect("rotate");
    let callback = ProviderBrowser::new()
        .login(&o.provider, authorize.as_str(), "oidc-user")
        .await;
    let r = o
        .http
        .get(&callback)
        .header("cookie", jar.header())
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), 200);
    let seen = o.provider.client_assertions().await;
    let used: Vec<(&str, &str)> = seen
        .iter()
        .map(|a| {
            (
                a["route"].as_str().unwrap_or(""),
                a["claims"]["jti"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        used,
        [
            ("pushed_authorization_request", "cluster-start"),
            ("token", "after-par")
        ],
        "{seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_sends_the_classic_redirect_which_a_par_only_client_cannot_use() {
    // A provider that requires PAR of this client (it does not say so in its metadata: the
    // proxy cannot know) refuses the classic request; the callback shows its answer.
    let o = start(true, Credential::Secret, "pushed_authorization = \"never\"").await;
    let mut jar = Jar::default();
    let authorize = start_login(&o.http, &o.proxies[0].url, &mut jar).await;
    assert!(param(&authorize, "request_uri").is_none(), "{authorize}");
    assert!(param(&authorize, "state").is_some(), "{authorize}");
    let back = ProviderBrowser::new()
        .login(&o.provider, authorize.as_str(), "oidc-user")
        .await;
    let back = Url::parse(&back).expect("url");
    assert_eq!(
        param(&back, "error").as_deref(),
        Some("invalid_request"),
        "{back}"
    );
    let r = o
        .http
        .get(back.as_str())
        .header("cookie", jar.header())
        .send()
        .await
        .expect("callback");
    assert_eq!(r.status(), 400);
    assert_eq!(r.headers()["x-token-handler-error"], "bad_request");
    let page = r.text().await.expect("page");
    assert!(
        page.contains("The identity provider refused the login: invalid_request")
            && page.contains("Pushed Authorization Request must be used"),
        "{page}"
    );
    assert_eq!(o.metric(0, PUSHED), 0.0);

    // A provider that takes both: `never` is the classic redirect, whole, and it logs in.
    let o = start(
        false,
        Credential::Secret,
        "pushed_authorization = \"never\"",
    )
    .await;
    let (jar, authorize) = login(&o).await;
    assert_eq!(
        keys(&authorize),
        [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "code_challenge",
            "code_challenge_method",
            "nonce",
            "prompt"
        ],
        "{authorize}"
    );
    assert_eq!(
        param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(o.get(0, "/api/me", &jar).await.status(), 200);
    assert_eq!(o.metric(0, PUSHED), 0.0);
}
