//! DPoP (RFC 9449) end to end: the real `oidc-provider` requiring DPoP-bound tokens and nonces
//! for a client with no secret (`private_key_jwt`), and a resource server verifying every proof
//! with `jose` (tests/oidc/resource-server.js) as the proxies' upstream. The provider's records
//! show what it bound the tokens to; the resource server's show what it accepted and refused.

use crate::support::cluster::{Cluster, Credential, Options};
use crate::support::oidc_provider::DpopOptions;
use crate::support::*;
use serde_json::Value;
use token_handler::dpop::DpopKey;

const AUDIENCE: &str = "http://resource.test/api";

async fn start(replicas: usize, rs_nonce: bool, idp: &str) -> Cluster {
    Cluster::build(Options {
        replicas,
        access_ttl: 4,
        credential: Credential::KeyFile {
            kid: "client-es256",
            jwk: true,
        },
        idp: format!("timeout = \"3s\"\ndpop = true\n{idp}"),
        dpop: DpopOptions {
            required: true,
            nonce: true,
            resource: Some(AUDIENCE.to_string()),
        },
        resource_server: Some(rs_nonce),
        ..Options::default()
    })
    .await
}

fn rs(o: &Cluster) -> &crate::support::resource_server::ResourceServer {
    o.resource_server.as_ref().expect("the resource server")
}

/// The provider's token-endpoint requests as `(status, error)`, oldest first.
async fn token_requests(o: &Cluster) -> Vec<(u64, String)> {
    o.provider.test_view().await["token_requests"]
        .as_array()
        .expect("token_requests")
        .iter()
        .map(|r| {
            (
                r["status"].as_u64().unwrap_or(0),
                r["error"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Every `use_dpop_nonce` refusal of the provider was followed by the same call succeeding:
/// answered, and only once.
fn each_challenge_answered_once(requests: &[(u64, String)]) {
    for (i, (status, error)) in requests.iter().enumerate() {
        if error == "use_dpop_nonce" {
            assert_eq!(status, &400);
            assert_eq!(
                requests.get(i + 1).map(|r| r.0),
                Some(200),
                "a nonce challenge is answered by one retry that succeeds: {requests:?}"
            );
        } else {
            assert_eq!(status, &200, "{requests:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refresh_api_calls_and_logout_with_dpop_bound_tokens_and_no_secret() {
    let o = start(2, true, "").await;
    let mut jar = o.login().await;
    let session = o.session(&jar);
    let key = session.dpop.clone().expect("the session has a DPoP key");
    assert!(session.dpop_bound, "the provider issued a DPoP token");
    // The code exchange met the provider's nonce challenge once, then succeeded.
    let requests = token_requests(&o).await;
    assert_eq!(
        requests,
        [(400, "use_dpop_nonce".to_string()), (200, String::new())],
        "the code exchange: challenged, answered once"
    );
    assert_eq!(
        o.provider.issued_jkts().await,
        [Some(key.thumbprint().to_string())],
        "the provider bound the access token to the session's key (cnf.jkt)"
    );

    // The resource server asks for its nonce first: answered once, then accepted.
    let r = o.get(0, "/api/orders?page=2", &jar).await;
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["jkt"], key.thumbprint());
    assert_eq!(body["method"], "GET");
    assert_eq!(
        body["htu"],
        format!("{}/api/orders", o.proxies[0].url),
        "htu: the URL the API receives (scheme, Host, path), without the query"
    );
    assert_eq!(body["nonce"], true);
    let stats = rs(&o).stats().await;
    assert_eq!(
        (&stats["accepted"], &stats["nonce_challenges"]),
        (&Value::from(1), &Value::from(1)),
        "{stats}"
    );

    // A POST with a body: the second replica meets the nonce challenge itself (nonces are
    // per replica), and replays the body with the retry.
    let payload = "x".repeat(3000);
    let r = o
        .http
        .post(format!("{}/api/orders", o.proxies[1].url))
        .header("cookie", jar.header())
        .header("x-csrf", "1")
        .body(payload.clone())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["method"], "POST");
    assert_eq!(body["body_length"], payload.len());
    let stats = rs(&o).stats().await;
    assert_eq!(stats["nonce_challenges"], 2, "{stats}");
    assert_eq!(stats["accepted"], 2, "{stats}");

    // The API rotates its nonce: the next call is challenged and answered once more.
    rs(&o).rotate_nonce().await;
    assert_eq!(o.get(0, "/api/orders", &jar).await.status(), 200);
    let stats = rs(&o).stats().await;
    assert_eq!(
        (&stats["accepted"], &stats["nonce_challenges"]),
        (&Value::from(3), &Value::from(3)),
        "{stats}"
    );
    assert!(
        stats["refused"].as_object().is_none_or(|r| r.is_empty()),
        "no proof refused: {stats}"
    );

    // A refresh carries a proof with the same key: the new token is bound to it too.
    let before = o.session(&jar).access_token.expose().to_owned();
    o.wait_for_expiry(&jar).await;
    let r = o.get(0, "/api/orders", &jar).await;
    assert_eq!(r.status(), 200);
    jar.update(&r);
    let refreshed = o.session(&jar);
    assert_ne!(refreshed.access_token.expose(), before, "refreshed");
    assert!(refreshed.dpop_bound);
    assert_eq!(
        refreshed.dpop.expect("key").thumbprint(),
        key.thumbprint(),
        "the key is the session's for its whole life"
    );
    let jkts = o.provider.issued_jkts().await;
    assert_eq!(jkts.len(), 2, "{jkts:?}");
    assert!(jkts.iter().all(|j| j.as_deref() == Some(key.thumbprint())));
    each_challenge_answered_once(&token_requests(&o).await);

    // Logout revokes the refresh token (with a client assertion; no secret anywhere).
    let refresh_token = refreshed.refresh_token.expose().to_owned();
    o.logout(0, &jar).await;
    assert!(!o.provider.grant_alive(&refresh_token).await, "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_access_token_is_refused_without_the_proof_for_its_exact_call() {
    let o = start(1, false, "").await;
    let jar = o.login().await;
    assert_eq!(o.get(0, "/api/orders", &jar).await.status(), 200);
    // What an attacker copies from an upstream's logs: the access token.
    let session = o.session(&jar);
    let token = session.access_token.expose().to_owned();
    let url = format!("{}/api/orders", rs(&o).url());
    let call = |authorization: String, proof: Option<String>| {
        let mut request = o.http.get(&url).header("authorization", authorization);
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        request.send()
    };
    let now = token_handler::refresh::unix_now();
    let reason = |r: Value| r["reason"].as_str().unwrap_or("").to_string();

    let r = call(format!("Bearer {token}"), None).await.expect("bearer");
    assert_eq!(r.status(), 401);
    assert_eq!(reason(json(r).await), "bearer_scheme");

    let r = call(format!("DPoP {token}"), None).await.expect("no proof");
    assert_eq!(r.status(), 401);
    assert_eq!(reason(json(r).await), "missing_dpop_proof");

    // A proof of the attacker's own key: the token is bound to another one.
    let own = DpopKey::generate().expect("key");
    let proof = own
        .proof("GET", &url, Some(&token), None, now)
        .expect("proof");
    let r = call(format!("DPoP {token}"), Some(proof))
        .await
        .expect("own key");
    assert_eq!(r.status(), 401);
    assert_eq!(reason(json(r).await), "token_jkt_mismatch");

    // Even with the session's key, a proof made for another URL or method does not pass.
    let key = session.dpop.expect("key");
    let other = format!("{}/api/admin", rs(&o).url());
    let proof = key
        .proof("GET", &other, Some(&token), None, now)
        .expect("proof");
    let r = call(format!("DPoP {token}"), Some(proof))
        .await
        .expect("htu");
    assert_eq!(r.status(), 401);
    assert_eq!(reason(json(r).await), "proof_htu");
    let proof = key
        .proof("DELETE", &url, Some(&token), None, now)
        .expect("proof");
    let r = call(format!("DPoP {token}"), Some(proof))
        .await
        .expect("htm");
    assert_eq!(r.status(), 401);
    assert_eq!(reason(json(r).await), "proof_htm");

    // The proxy's own calls were all accepted (and this test's control call with the right
    // proof is too: the refusals above are about the proof, not the token).
    let proof = key
        .proof("GET", &url, Some(&token), None, now)
        .expect("proof");
    let r = call(format!("DPoP {token}"), Some(proof))
        .await
        .expect("right");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_provider_that_issues_bearer_tokens_fails_the_login_visibly() {
    // The emulator speaks OAuth 2.0 and knows no DPoP: it answers `token_type: Bearer`.
    let h = Harness::with(Flavor::OAuth2, &[("idp", "dpop = true")], KEY1).await;
    let mut jar = Jar::default();
    let authorize = h.start_login(&mut jar, "/").await;
    let jkt = url::Url::parse(&authorize)
        .expect("authorize URL")
        .query_pairs()
        .find(|(k, _)| k == "dpop_jkt")
        .map(|(_, v)| v.into_owned());
    assert_eq!(
        jkt.map(|j| j.len()),
        Some(43),
        "the code is bound to the key (dpop_jkt)"
    );
    let callback = h.follow_idp(&authorize).await;
    let r = h.finish_login(&mut jar, &callback).await;
    assert_eq!(r.status(), 400);
    let page = r.text().await.expect("page");
    assert!(page.contains("did not bind the tokens"), "{page}");
    assert!(jar.session().is_none(), "no session with an unbound token");
}

#[tokio::test]
async fn without_dpop_nothing_changes_and_a_browser_proof_never_reaches_the_api() {
    let h = Harness::with(Flavor::OAuth2, &[], KEY1).await;
    let mut jar = Jar::default();
    let authorize = h.start_login(&mut jar, "/").await;
    assert!(!authorize.contains("dpop_jkt"), "{authorize}");
    let callback = h.follow_idp(&authorize).await;
    assert_eq!(h.finish_login(&mut jar, &callback).await.status(), 200);
    let r = h
        .http
        .get(format!("{}/api/echo", h.proxy.url))
        .header("cookie", jar.header())
        .header("dpop", "eyJ0eXAiOiJkcG9wK2p3dCJ9.e30.c2ln")
        .send()
        .await
        .expect("api");
    assert_eq!(r.status(), 200);
    let seen = h.echo.last();
    assert!(
        seen.header("authorization")
            .is_some_and(|a| a.starts_with("Bearer ")),
        "{seen:?}"
    );
    assert!(
        seen.header("dpop").is_none(),
        "the browser's DPoP header was dropped"
    );
}

#[tokio::test]
async fn no_dpop_key_or_proof_in_logs_or_answers() {
    let capture = crate::support::logs::capture();
    let o = start(1, true, "").await;
    let mut jar = o.login().await;
    let mut seen = String::new();
    let r = o.get(0, "/api/orders", &jar).await;
    assert_eq!(r.status(), 200);
    seen.push_str(&format!("{:?}", r.headers()));
    seen.push_str(&r.text().await.expect("body"));
    o.wait_for_expiry(&jar).await;
    let r = o.get(0, "/api/orders", &jar).await;
    assert_eq!(r.status(), 200);
    jar.update(&r);
    seen.push_str(&format!("{:?}", r.headers()));
    let r = o.get(0, "/auth/session", &jar).await;
    seen.push_str(&r.text().await.expect("session"));
    let session = o.session(&jar);
    let key = session.dpop.clone().expect("key");
    seen.push_str(&format!("{session:?}{key:?}{:?}", o.proxies[0].app));
    o.logout(0, &jar).await;

    // The private scalar as sealed (after postcard's length byte), in base64url and hex.
    let sealed = postcard::to_allocvec(&key).expect("key bytes");
    let private = &sealed[sealed.len() - 96..][..32];
    let hex: String = private.iter().map(|b| format!("{b:02x}")).collect();
    let secrets = [
        token_handler::b64::url_encode(private),
        hex,
        // Every proof starts with its header: `{"typ":"dpop+jwt",` in base64url.
        token_handler::b64::url_encode(br#"{"typ":"dpop+jwt","#),
        session.access_token.expose().to_string(),
        session.refresh_token.expose().to_string(),
    ];
    let logs = capture.text();
    assert!(
        logs.contains("token endpoint answered"),
        "IdP calls captured"
    );
    assert!(
        logs.contains("the token endpoint asked for a DPoP nonce")
            && logs.contains("the upstream asked for a DPoP nonce"),
        "both nonce retries were captured"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a DPoP secret reached the logs"
        );
        assert!(
            !seen.contains(secret.as_str()),
            "a DPoP secret reached an answer or Debug"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_gateway_the_answer_carries_a_proof_for_the_original_call() {
    let o = Cluster::build(Options {
        replicas: 1,
        credential: Credential::KeyFile {
            kid: "client-es256",
            jwk: true,
        },
        idp: "timeout = \"3s\"\ndpop = true\n".into(),
        dpop: DpopOptions {
            required: true,
            nonce: true,
            resource: Some(AUDIENCE.to_string()),
        },
        resource_server: Some(false),
        tail: "[forward_auth]\nlisten = \"127.0.0.1:0\"\ngateway = \"nginx\"\n".into(),
        ..Options::default()
    })
    .await;
    let jar = o.login().await;
    let key = o.session(&jar).dpop.expect("key");
    let verify = o.proxies[0]
        .verify_url
        .clone()
        .expect("forward-auth listener");
    let public_host = "app.example.test";
    let answer = o
        .http
        .get(format!("{verify}/verify"))
        .header("x-original-method", "PUT")
        .header("x-original-uri", "/api/orders/7?draft=1")
        .header("x-forwarded-host", public_host)
        .header("x-forwarded-proto", "https")
        .header("cookie", jar.header())
        .header("x-csrf", "1")
        .send()
        .await
        .expect("verify");
    assert_eq!(answer.status(), 200);
    let authorization = answer.headers()["authorization"]
        .to_str()
        .expect("ascii")
        .to_string();
    let proof = answer.headers()["dpop"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(authorization.starts_with("DPoP "), "{authorization}");
    let claims: Value = serde_json::from_slice(
        &token_handler::b64::url_decode(proof.split('.').nth(1).expect("payload")).expect("b64"),
    )
    .expect("claims");
    assert_eq!(claims["htm"], "PUT");
    assert_eq!(claims["htu"], format!("https://{public_host}/api/orders/7"));

    // The gateway's call upstream with those headers, as nginx makes it (Host and scheme of
    // the browser's request): the resource server accepts the proof made for it.
    let send = |method: reqwest::Method, path: &str, proof: &str| {
        o.http
            .request(method, format!("{}{path}", rs(&o).url()))
            .header("host", public_host)
            .header("x-forwarded-proto", "https")
            .header("authorization", authorization.as_str())
            .header("dpop", proof)
            .send()
    };
    let r = send(reqwest::Method::PUT, "/api/orders/7?draft=1", &proof)
        .await
        .expect("upstream");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    // The same answer replayed for another call is refused.
    let token = authorization.trim_start_matches("DPoP ");
    let now = token_handler::refresh::unix_now();
    let fresh = key
        .proof(
            "PUT",
            &format!("https://{public_host}/api/orders/7"),
            Some(token),
            None,
            now,
        )
        .expect("proof");
    let r = send(reqwest::Method::DELETE, "/api/orders/7", &fresh)
        .await
        .expect("upstream");
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["reason"], "proof_htm");
    let r = send(reqwest::Method::PUT, "/api/orders/7", &proof)
        .await
        .expect("upstream");
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["reason"], "proof_jti_replay");
}
