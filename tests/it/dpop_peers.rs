//! The DPoP (RFC 9449) test peers checked on their own, before the proxy is tested against them:
//! the real `oidc-provider` (tests/oidc/server.js) with [`DpopOptions`] (DPoP required, nonces,
//! a default resource: DPoP-bound JWT access tokens) and the strict resource server
//! (tests/oidc/resource-server.js, on `jose`), started through the support structs, then driven
//! by tests/oidc/selftest-dpop.js as a DPoP client (authorization code flow, refresh, revocation,
//! and every refusal of the resource server). The support helpers then read the peers' side.

use std::path::PathBuf;

use serde_json::Value;

use crate::support::oidc_provider::{DpopOptions, OidcProvider, ProviderOptions};
use crate::support::resource_server::ResourceServer;
use crate::support::*;

const AUDIENCE: &str = "http://resource.test/api";
const REDIRECT_URI: &str = "http://127.0.0.1:9/auth/callback";

async fn dpop_provider() -> OidcProvider {
    OidcProvider::start_opts(&ProviderOptions {
        dpop: DpopOptions {
            required: true,
            nonce: true,
            resource: Some(AUDIENCE.to_owned()),
        },
        redirect_uri: REDIRECT_URI.into(),
        post_logout_redirect_uri: "http://127.0.0.1:9/".into(),
        access_token_ttl_secs: 60,
        rotate: true,
        backchannel_logout_uri: None,
        expose_signing_key: false,
        private_key_jwt: false,
        require_par: false,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dpop_peers_accept_a_dpop_client_and_refuse_every_broken_proof() {
    let provider = dpop_provider().await;
    let rs = ResourceServer::start(&provider.issuer, AUDIENCE, false).await;
    let rs_nonce = ResourceServer::start(&provider.issuer, AUDIENCE, true).await;
    assert_eq!(provider.issued_jkts().await, Vec::<Option<String>>::new());
    assert_eq!(provider.nonce_refusals().await, 0);

    let output = tokio::process::Command::new("node")
        .arg("selftest-dpop.js")
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oidc"))
        .env("SELFTEST_ISSUER", &provider.issuer)
        .env("SELFTEST_RS", rs.url())
        .env("SELFTEST_RS_NONCE", rs_nonce.url())
        .env("SELFTEST_AUDIENCE", AUDIENCE)
        .env("SELFTEST_REDIRECT_URI", REDIRECT_URI)
        .output()
        .await
        .expect("run node selftest-dpop.js");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "selftest-dpop.js failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().expect("a summary line"))
        .expect("the summary line is JSON");
    assert_eq!(summary["selftest"], "passed", "{stdout}");
    let jkt = summary["jkt"]
        .as_str()
        .expect("the client's jkt")
        .to_owned();

    // The provider's side: two access tokens (code exchange, refresh), both bound to the
    // client's key; two use_dpop_nonce refusals (one per grant).
    assert_eq!(
        provider.issued_jkts().await,
        vec![Some(jkt.clone()), Some(jkt.clone())]
    );
    assert_eq!(provider.nonce_refusals().await, 2);
    let view = provider.test_view().await;
    assert!(
        view["access_tokens"]
            .as_array()
            .expect("access tokens")
            .iter()
            .all(|t| t["format"] == "jwt" && t["aud"] == AUDIENCE && t["token_type"] == "DPoP"),
        "{view}"
    );

    // The resource servers' side.
    let stats = rs.stats().await;
    assert_eq!(stats["accepted"], 4, "{stats}");
    assert_eq!(stats["refused"]["proof_jti_replay"], 1, "{stats}");
    assert_eq!(stats["refused"]["bearer_scheme"], 2, "{stats}");
    let stats = rs_nonce.stats().await;
    assert_eq!(
        (
            stats["accepted"].as_u64(),
            stats["nonce_challenges"].as_u64()
        ),
        (Some(2), Some(2)),
        "{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resource_server_challenges_requests_without_a_token_and_rotates_its_nonce() {
    let provider = dpop_provider().await;
    let rs = ResourceServer::start(&provider.issuer, AUDIENCE, true).await;
    let response = client()
        .get(format!("{}/api/things", rs.url()))
        .send()
        .await
        .expect("resource server");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"DPoP algs="ES256 PS256 RS256""#
    );
    let body = json(response).await;
    assert_eq!(body["reason"], "missing_authorization", "{body}");
    let stats = rs.stats().await;
    assert_eq!(stats["refused"]["missing_authorization"], 1, "{stats}");
    assert_eq!(stats["accepted"], 0, "{stats}");

    let before = rs.nonce().await.expect("a nonce with require_nonce");
    let after = rs.rotate_nonce().await;
    assert_ne!(before, after);
    assert_eq!(rs.nonce().await, Some(after));
    let plain = ResourceServer::start(&provider.issuer, AUDIENCE, false).await;
    assert_eq!(plain.nonce().await, None);
}
