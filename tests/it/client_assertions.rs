//! `private_key_jwt` (RFC 7523, OpenID Connect Core §9) and workload identity
//! (`idp.client_assertion_file`) against the real `oidc-provider`, whose client has no secret
//! at all: the code exchange, refresh and revocation each carry a client assertion the provider
//! verifies against the client's registered public keys (it records what it accepted).

use crate::support::cluster::{Cluster, Credential, Options};
use crate::support::oidc_provider::OIDC_CLIENT_ID;
use crate::support::*;
use std::collections::HashSet;

/// Logins take the classic redirect here: these tests follow the assertions of the code
/// exchange, refreshes and revocation call by call, and a pushed login (par.rs) adds one, with a
/// second use of a platform token's `jti` that the provider refuses.
async fn start(credential: Credential, server: &str) -> Cluster {
    Cluster::build(Options {
        replicas: 1,
        access_ttl: 4,
        credential,
        server: server.to_string(),
        idp: "timeout = \"3s\"\npushed_authorization = \"never\"\n".into(),
        ..Options::default()
    })
    .await
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

async fn reloaded(rx: &mut tokio::sync::watch::Receiver<u64>) {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.changed())
        .await
        .expect("the proxy reloaded the file")
        .expect("reload channel open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refresh_and_logout_with_a_signed_assertion_and_no_secret() {
    let o = start(
        Credential::KeyFile {
            kid: "client-rs256",
            jwk: false,
        },
        "",
    )
    .await;
    let mut jar = o.login().await;
    assert_eq!(o.session(&jar).claims["sub"], "oidc-user");
    refresh(&o, &mut jar).await;
    let refresh_token = o.session(&jar).refresh_token.expose().to_owned();
    o.logout(0, &jar).await;
    assert!(
        !o.provider.grant_alive(&refresh_token).await,
        "revoked at logout, with a client assertion"
    );

    let seen = o.provider.client_assertions().await;
    // The code exchange, the refresh, the revocation; then the test's own `grant_alive`.
    let routes: Vec<&str> = seen
        .iter()
        .map(|a| a["route"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        routes,
        ["token", "token", "revocation", "token"],
        "{seen:#?}"
    );
    let token_endpoint = format!("{}/token", o.provider.issuer);
    let mut jtis = HashSet::new();
    for a in &seen[..3] {
        assert_eq!(a["alg"], "RS256", "{a}");
        assert_eq!(a["kid"], "client-rs256", "{a}");
        let c = &a["claims"];
        assert_eq!(c["iss"], OIDC_CLIENT_ID);
        assert_eq!(c["sub"], OIDC_CLIENT_ID);
        assert_eq!(c["aud"], token_endpoint.as_str(), "aud: the token endpoint");
        let (iat, exp) = (
            c["iat"].as_u64().expect("iat"),
            c["exp"].as_u64().expect("exp"),
        );
        assert_eq!(exp - iat, 60, "a minute");
        assert!(
            jtis.insert(c["jti"].as_str().expect("jti").to_owned()),
            "unique jti"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_and_ps256_keys_given_as_jwks_sign_the_code_exchange() {
    for (kid, alg) in [("client-es256", "ES256"), ("client-ps256", "PS256")] {
        let o = start(Credential::KeyFile { kid, jwk: true }, "").await;
        let jar = o.login().await;
        assert_eq!(o.get(0, "/api/me", &jar).await.status(), 200);
        // The code exchange (the API call may have refreshed too, on a slow machine).
        let seen = o.provider.client_assertions().await;
        assert_eq!(seen[0]["route"], "token", "{seen:#?}");
        assert_eq!(
            (seen[0]["alg"].as_str(), seen[0]["kid"].as_str()),
            (Some(alg), Some(kid))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_file_signs_from_the_next_call_without_a_restart() {
    let o = start(
        Credential::KeyFile {
            kid: "client-rs256",
            jwk: false,
        },
        "reload_interval = \"100ms\"",
    )
    .await;
    let mut jar = o.login().await;
    let mut reloads = o.proxies[0].app.reloads.subscribe();
    let file = o.credential_file.clone().expect("the key file");
    std::fs::write(&file, o.provider.client_key("client-es256", "jwk")).expect("rotate");
    reloaded(&mut reloads).await;
    refresh(&o, &mut jar).await;
    let seen = o.provider.client_assertions().await;
    let kids: Vec<&str> = seen
        .iter()
        .map(|a| a["kid"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kids, ["client-rs256", "client-es256"], "{seen:#?}");
    assert_eq!(seen[1]["alg"], "ES256");

    // A file that does not parse is refused; the key in use stays.
    let mut reloads = o.proxies[0].app.reloads.subscribe();
    std::fs::write(&file, "not a key").expect("break");
    reloaded(&mut reloads).await;
    refresh(&o, &mut jar).await;
    let seen = o.provider.client_assertions().await;
    assert_eq!(seen.last().expect("one more")["kid"], "client-es256");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_assertion_file_is_picked_up_without_a_restart() {
    let o = start(Credential::AssertionFile, "").await;
    let file = o.credential_file.clone().expect("the assertion file");
    let mut jar = o.login().await;
    // The provider refuses a second use of a `jti`: this refresh works only with the new file.
    std::fs::write(&file, o.provider.mint_client_assertion("rotated-1", 600)).expect("rotate");
    refresh(&o, &mut jar).await;
    std::fs::write(&file, o.provider.mint_client_assertion("rotated-2", 600)).expect("rotate");
    let refresh_token = o.session(&jar).refresh_token.expose().to_owned();
    o.logout(0, &jar).await;
    assert!(!o.provider.grant_alive(&refresh_token).await, "revoked");

    let seen = o.provider.client_assertions().await;
    let used: Vec<(&str, &str)> = seen
        .iter()
        .map(|a| {
            (
                a["route"].as_str().unwrap_or(""),
                a["claims"]["jti"].as_str().unwrap_or(""),
            )
        })
        .take(3)
        .collect();
    assert_eq!(
        used,
        [
            ("token", "cluster-start"),
            ("token", "rotated-1"),
            ("revocation", "rotated-2")
        ],
        "{seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_assertion_file_is_transient_and_keeps_the_session() {
    let o = start(Credential::AssertionFile, "").await;
    let file = o.credential_file.clone().expect("the assertion file");
    let mut jar = o.login().await;
    std::fs::write(&file, "").expect("empty, as mid-rotation");
    // Past the access token's expiry: the old one cannot stand in for a refresh.
    let expires = o.session(&jar).access_expires_at;
    while token_handler::refresh::unix_now() <= expires {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = o.get(0, "/api/me", &jar).await;
    assert_eq!(r.status(), 503, "idp_unavailable: the session stays");
    assert_eq!(json(r).await["error"], "idp_unavailable");
    std::fs::write(&file, o.provider.mint_client_assertion("back", 600)).expect("rotate");
    refresh(&o, &mut jar).await;
}

/// No private key, signed assertion or platform token reaches a log line (TRACE, every crate),
/// a browser-facing answer or the proxy's `Debug` output.
#[tokio::test]
async fn no_key_or_assertion_in_logs_answers_or_debug() {
    let capture = logs::capture();
    let mut seen = String::new();
    let o = start(
        Credential::KeyFile {
            kid: "client-es256",
            jwk: true,
        },
        "",
    )
    .await;
    let mut jar = o.login().await;
    refresh(&o, &mut jar).await;
    seen.push_str(
        &json(o.get(0, "/auth/session", &jar).await)
            .await
            .to_string(),
    );
    o.logout(0, &jar).await;
    seen.push_str(&format!("{:?}", o.proxies[0].app));
    let jwk: serde_json::Value =
        serde_json::from_str(&o.provider.client_key("client-es256", "jwk")).expect("jwk");
    let mut secrets = vec![jwk["d"].as_str().expect("d").to_owned()];
    for a in o.provider.client_assertions().await {
        secrets.push(a["claims"]["jti"].as_str().expect("jti").to_owned());
    }
    assert_eq!(secrets.len(), 4, "the key and three assertions");

    let w = start(Credential::AssertionFile, "").await;
    let file = w.credential_file.clone().expect("the assertion file");
    secrets.push(std::fs::read_to_string(&file).expect("assertion"));
    let mut jar = w.login().await;
    let rotated = w.provider.mint_client_assertion("leak-rotated", 600);
    std::fs::write(&file, &rotated).expect("rotate");
    secrets.push(rotated);
    refresh(&w, &mut jar).await;
    w.logout(0, &jar).await;
    seen.push_str(&format!("{:?}", w.proxies[0].app));

    let logs = capture.text();
    assert!(
        logs.contains("token endpoint answered"),
        "the IdP calls were captured"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a key or an assertion reached the logs"
        );
        assert!(
            !seen.contains(secret.as_str()),
            "a key or an assertion reached an answer or Debug"
        );
    }
}
