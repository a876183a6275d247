//! The same end-to-end suite against a real OpenID provider: the `oidc-provider` npm package
//! (tests/oidc), with PKCE, `client_secret_basic`, rotating refresh tokens where a reused one
//! revokes the whole grant, RFC 7009 revocation and RP-initiated logout.

use crate::support::cluster::{Cluster, Options};
use crate::support::oidc_provider::OIDC_CLIENT_ID;
use crate::support::*;

/// One proxy in front of the provider (access tokens of 4 s: a refresh is due half-way, on whole
/// seconds; with 2 s it was due at the next second boundary after the login, so the first API
/// call, which must carry the login's token, refreshed whenever the login ended late in its
/// second, seen under load).
async fn start() -> Cluster {
    Cluster::build(Options {
        replicas: 1,
        access_ttl: 4,
        ..Options::default()
    })
    .await
}

/// A login through the proxy's endpoints, checking what the authorize URL carries.
async fn login(o: &Cluster) -> Jar {
    let mut jar = Jar::default();
    let r = o
        .http
        .get(format!("{}/auth/login?return_to=/home", o.proxies[0].url))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 302);
    jar.update(&r);
    let authorize = location(&r);
    // oidc-provider advertises PAR and `pushed_authorization = "auto"` uses it: the browser
    // carries a reference only. `prompt=consent` went in the pushed request (no refresh token
    // without it), and so did the `nonce` (checked in the ID token).
    let url = url::Url::parse(&authorize).expect("url");
    let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(keys, ["client_id", "request_uri"], "{authorize}");
    let callback = o.provider.login(&authorize).await;
    let r = o
        .http
        .get(&callback)
        .header("cookie", jar.header())
        .send()
        .await
        .expect("callback");
    let status = r.status();
    jar.update(&r);
    assert_eq!(status, 200, "{}", r.text().await.unwrap_or_default());
    assert!(jar.session().is_some());
    jar
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_api_call_refresh_with_rotation_and_logout_with_revocation() {
    let o = start().await;
    let mut jar = login(&o).await;
    let first = o.session(&jar);
    assert_eq!(first.claims["sub"], "oidc-user");
    assert_eq!(first.claims["name"], "OIDC Test User");

    let r = o.get(0, "/api/me", &jar).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        o.echo.last().header("authorization"),
        Some(format!("Bearer {}", first.access_token.expose()))
    );
    let session = json(o.get(0, "/auth/session", &jar).await).await;
    assert_eq!(session["authenticated"], true);
    assert_eq!(session["claims"]["email"], "oidc-user@example.com");

    o.wait_for_expiry(&jar).await;
    let r = o.get(0, "/api/me", &jar).await;
    assert_eq!(r.status(), 200);
    jar.update(&r);
    let second = o.session(&jar);
    assert_ne!(
        second.access_token.expose(),
        first.access_token.expose(),
        "refreshed"
    );
    assert_ne!(
        second.refresh_token.expose(),
        first.refresh_token.expose(),
        "rotated"
    );
    assert_eq!(
        o.echo.last().header("authorization"),
        Some(format!("Bearer {}", second.access_token.expose()))
    );

    let r = o
        .http
        .post(format!("{}/auth/logout", o.proxies[0].url))
        .header("cookie", jar.header())
        .header("x-csrf", "1")
        .send()
        .await
        .expect("logout");
    assert_eq!(r.status(), 200);
    jar.update(&r);
    assert!(jar.session().is_none());
    let logout_url = json(r).await["logout_url"]
        .as_str()
        .expect("logout_url")
        .to_string();
    assert!(
        logout_url.starts_with(&format!(
            "{}/session/end?client_id={OIDC_CLIENT_ID}",
            o.provider.issuer
        )),
        "{logout_url}"
    );
    assert!(
        !logout_url.contains("id_token_hint"),
        "no token in a URL by default"
    );
    assert!(
        !o.grant_alive(second.refresh_token.expose()).await,
        "RFC 7009 revocation at logout"
    );
    assert_eq!(o.get(0, "/api/me", &jar).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_parallel_requests_at_expiry_keep_the_grant() {
    let o = start().await;
    let jar = login(&o).await;
    o.wait_for_expiry(&jar).await;
    let mut new_jar = jar.clone();
    for (status, cookies) in o.storm_on(&jar, 50, &[0]).await {
        assert_eq!(status, 200, "no request lost the session");
        for line in cookies {
            new_jar.set(&line);
        }
    }
    // This provider revokes the whole grant when a refresh token is spent twice: a further
    // refresh through the proxy proves it was spent once.
    o.wait_for_expiry(&new_jar).await;
    let r = o.get(0, "/api/after", &new_jar).await;
    assert_eq!(r.status(), 200, "the grant survived the storm");
    let mut latest = new_jar.clone();
    latest.update(&r);
    assert!(
        o.grant_alive(o.session(&latest).refresh_token.expose())
            .await
    );
}
