//! Ending sessions from the outside, with real peers: OpenID Connect Back-Channel Logout from
//! the real `oidc-provider` (its own logout tokens, and tokens signed with its key that break one
//! rule each), across replicas sharing a real Redis.

use serde_json::{json, Value};
use std::time::Duration;
use token_handler::refresh::unix_now;

use crate::support::cluster::{Cluster, Options};
use crate::support::oidc_provider::OIDC_CLIENT_ID;
use crate::support::provider_browser::ProviderBrowser;
use crate::support::redis_server::RedisServer;
use crate::support::*;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Waits until every replica has read the shared record twice since now: whatever was written
/// before this call is in each replica's copy.
pub async fn synced(c: &Cluster) {
    for p in &c.proxies {
        let shared = p.app.ended.shared().expect("the record is shared (Redis)");
        let mut rounds = shared.rounds();
        let start = *rounds.borrow_and_update();
        tokio::time::timeout(
            Duration::from_secs(20),
            rounds.wait_for(|n| *n >= start + 2),
        )
        .await
        .expect("each replica reads the record within 20 s")
        .expect("the follower runs");
    }
}

/// Whether replica `r` refuses `jar` as a login that ended: 401 `login_required`, cookies
/// cleared; panics on anything but that or a 200.
pub async fn refused(c: &Cluster, r: usize, jar: &Jar) -> bool {
    let response = c.get(r, "/api/who", jar).await;
    match response.status().as_u16() {
        200 => false,
        401 => {
            let cleared = session_set_cookies(&response)
                .iter()
                .all(|l| l.contains("Max-Age=0"));
            assert!(cleared, "the refused session's cookies are cleared");
            assert_eq!(json(response).await["error"], "login_required");
            true
        }
        other => panic!("replica {r} answered {other}"),
    }
}

async fn post_token(c: &Cluster, token: &str) -> reqwest::Response {
    c.http
        .post(format!("{}/auth/backchannel-logout", c.proxies[0].url))
        .form(&[("logout_token", token)])
        .send()
        .await
        .expect("answered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_ends_both_logins_of_its_session_on_every_replica() {
    let redis = RedisServer::start().await;
    let c = Cluster::build(Options {
        redis_url: Some(redis.url()),
        access_ttl: 60,
        backchannel: true,
        ..Options::default()
    })
    .await;
    // Two cookie jars, one provider session (one `sid`); and someone else.
    let browser = ProviderBrowser::new();
    let a = c.login_in(&browser, "oidc-user").await;
    let b = c.login_in(&browser, "oidc-user").await;
    let other = c.login_as("oidc-other").await;
    assert_eq!(c.session(&a).sid, c.session(&b).sid);
    assert!(
        c.session(&a).sid.is_some(),
        "the session keeps the ID token's sid"
    );
    for r in 0..3 {
        for jar in [&a, &b, &other] {
            assert!(!refused(&c, r, jar).await);
        }
    }

    // RP-initiated logout at the provider: it posts its logout token to replica 0 and waits
    // for the answer before it answers the browser.
    let out = browser
        .end_session(
            &c.provider,
            OIDC_CLIENT_ID,
            &format!("{}/", c.proxies[0].url),
        )
        .await;
    assert_eq!(out.status, 303, "{}", out.url);
    assert_eq!(
        c.metric(0, r#"token_handler_logouts_total{outcome="backchannel"}"#),
        1.0
    );
    synced(&c).await;
    for r in 0..3 {
        assert!(refused(&c, r, &a).await, "jar a on replica {r}");
        assert!(refused(&c, r, &b).await, "jar b on replica {r}");
        assert!(!refused(&c, r, &other).await, "another session lives on");
    }
    assert_eq!(
        c.count(r#"token_handler_ended_session_refusals_total{reason="backchannel"}"#),
        6.0
    );
}

/// The claims of a logout token the proxy accepts for `sid`/`sub`.
fn claims(c: &Cluster, sid: Option<&str>, sub: &str) -> Value {
    let now = unix_now();
    let mut claims = json!({
        "iss": c.provider.issuer, "aud": OIDC_CLIENT_ID, "iat": now, "exp": now + 120,
        "jti": token_handler::crypto::random_token(12), "sub": sub,
        "events": { EVENT: {} },
    });
    if let Some(sid) = sid {
        claims["sid"] = sid.into();
    }
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_break_a_rule_are_refused_and_end_nothing_and_replays_too() {
    let c = Cluster::build(Options {
        replicas: 1,
        access_ttl: 60,
        backchannel: true,
        expose_key: true,
        ..Options::default()
    })
    .await;
    let jar = c.login().await;
    let sid = c.session(&jar).sid.expect("sid");
    let valid = || claims(&c, Some(&sid), "oidc-user");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = valid();
        f(&mut v);
        c.provider.sign(&v, Some("logout+jwt"))
    };
    let now = unix_now();
    // A valid token with its payload swapped for another (a different jti): forged.
    let forged = {
        let good = c.provider.sign(&valid(), Some("logout+jwt"));
        let other = c.provider.sign(&valid(), Some("logout+jwt"));
        let p: Vec<&str> = good.split('.').collect();
        let q: Vec<&str> = other.split('.').collect();
        format!("{}.{}.{}", p[0], q[1], p[2])
    };
    let unsigned = {
        let b64 = |v: &Value| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&valid()))
    };
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &valid(),
        &jsonwebtoken::EncodingKey::from_secret(b"the client secret is not a signing key"),
    )
    .expect("HS256");
    let cases: Vec<(&str, String)> = vec![
        ("forged", forged),
        ("unsigned", unsigned),
        ("symmetric", hs256),
        (
            "expired",
            with(&|v| {
                v["iat"] = (now - 600).into();
                v["exp"] = (now - 480).into();
            }),
        ),
        ("issued long ago", with(&|v| v["iat"] = (now - 3600).into())),
        (
            "issued in the future",
            with(&|v| v["iat"] = (now + 600).into()),
        ),
        (
            "wrong audience",
            with(&|v| v["aud"] = "another-client".into()),
        ),
        (
            "wrong issuer",
            with(&|v| v["iss"] = "http://127.0.0.1:9".into()),
        ),
        ("nonce", with(&|v| v["nonce"] = "n-0".into())),
        (
            "no events",
            with(&|v| drop(v.as_object_mut().map(|o| o.remove("events")))),
        ),
        (
            "another event",
            with(&|v| v["events"] = json!({"urn:other": {}})),
        ),
        (
            "no sid, no sub",
            with(&|v| {
                drop(v.as_object_mut().map(|o| {
                    o.remove("sid");
                    o.remove("sub")
                }))
            }),
        ),
        (
            "no jti",
            with(&|v| drop(v.as_object_mut().map(|o| o.remove("jti")))),
        ),
        (
            "an access token's typ",
            c.provider.sign(&valid(), Some("at+jwt")),
        ),
    ];
    for (what, token) in &cases {
        let r = post_token(&c, token).await;
        assert_eq!(r.status(), 400, "{what}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{what}");
        let body = json(r).await;
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
        assert!(
            !body.to_string().contains(token.as_str()),
            "{what}: no token echoed"
        );
    }
    // Not a form, or no token in it.
    let r = c
        .http
        .post(format!("{}/auth/backchannel-logout", c.proxies[0].url))
        .json(&json!({"logout_token": with(&|_| {})}))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 400);
    assert_eq!(post_token(&c, "").await.status(), 400);
    assert!(c.proxies[0].app.ended.is_empty(), "nothing was ended");
    assert!(!refused(&c, 0, &jar).await, "the session lives on");

    // The same rules, kept: accepted, the session ends; the same token again is a replay.
    let token = with(&|_| {});
    let r = post_token(&c, &token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(refused(&c, 0, &jar).await);
    let replay = post_token(&c, &token).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(
        c.metric(
            0,
            r#"token_handler_logout_token_refusals_total{reason="replayed"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_only_sub_ends_that_users_sessions_begun_before_it() {
    let c = Cluster::build(Options {
        replicas: 1,
        access_ttl: 60,
        expose_key: true,
        ..Options::default()
    })
    .await;
    // Two provider sessions of one user, and another user.
    let first = c.login_as("oidc-user").await;
    let second = c.login_as("oidc-user").await;
    let bob = c.login_as("bob").await;
    let r = post_token(&c, &c.provider.sign(&claims(&c, None, "oidc-user"), None)).await;
    assert_eq!(r.status(), 200);
    let ended_at = unix_now();
    assert!(refused(&c, 0, &first).await);
    assert!(refused(&c, 0, &second).await);
    assert!(!refused(&c, 0, &bob).await);
    // A login after the logout lives (sessions count by the second they began).
    while unix_now() <= ended_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = c.login_as("oidc-user").await;
    assert!(!refused(&c, 0, &again).await);
}
