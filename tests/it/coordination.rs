//! Many replicas, one refresh: three proxies sharing keys and a real Redis, in front of the real
//! oidc-provider (rotation on; reusing a refresh token revokes the whole grant).

use crate::support::cluster::{newest, Cluster};
use crate::support::redis_server::RedisServer;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_at_expiry_make_one_token_call_and_keep_the_grant() {
    let redis = RedisServer::start().await;
    let c = Cluster::start(Some(&redis.url())).await;
    let jar = c.login().await;
    let old = c.session(&jar);
    c.wait_for_expiry(&jar).await;
    let results = c.storm(&jar, 300).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "300 successes");
    assert_eq!(
        c.refreshes(),
        1.0,
        "exactly one /token call across the three replicas"
    );
    assert_eq!(
        c.count(r#"token_handler_refreshes_total{outcome="remote"}"#),
        2.0,
        "the other two used its result"
    );
    assert_eq!(c.count("token_handler_coordination_fallbacks_total"), 0.0);

    // Redis holds no token: keys are keyed hashes, values sealed.
    let jar = newest(&jar, &results);
    let new = c.session(&jar);
    let dump = redis.dump().await;
    assert!(!dump.is_empty(), "the result is shared through Redis");
    for (key, value) in &dump {
        for token in [
            old.refresh_token.expose(),
            old.access_token.expose(),
            new.refresh_token.expose(),
            new.access_token.expose(),
        ] {
            assert!(
                !key.contains(token) && !value.contains(token),
                "a token reached Redis"
            );
        }
    }

    // The grant survived: a further refresh works.
    c.wait_for_expiry(&jar).await;
    let r = c
        .http
        .get(format!("{}/api/after", c.proxies[1].url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    assert_eq!(c.refreshes(), 2.0);
    let mut latest = jar.clone();
    latest.update(&r);
    assert!(
        c.grant_alive(c.session(&latest).refresh_token.expose())
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_coordination_the_same_storm_loses_the_grant() {
    let c = Cluster::start(None).await;
    let jar = c.login().await;
    c.wait_for_expiry(&jar).await;
    let results = c.storm(&jar, 300).await;
    // Each replica spent the same refresh token: the provider saw reuse and revoked the grant.
    assert!(c.refreshes() + c.count(r#"token_handler_refreshes_total{outcome="rejected"}"#) >= 2.0);
    assert!(
        results.iter().any(|(s, _)| *s == 401),
        "some replica's refresh was refused"
    );
    let (_, lines) = results
        .iter()
        .find(|(s, lines)| *s == 200 && !lines.is_empty())
        .expect("the first replica's refresh succeeded");
    let mut jar = jar.clone();
    for line in lines {
        jar.set(line);
    }
    assert!(
        !c.grant_alive(c.session(&jar).refresh_token.expose()).await,
        "the whole grant is revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_and_coordination_resumes_after_restart() {
    let mut redis = RedisServer::start().await;
    let c = Cluster::start(Some(&redis.url())).await;
    let jar = c.login().await;

    redis.stop();
    // Two refresh cycles through the outage, each falling back and keeping the session: the
    // outage lasts several seconds (a reconnecting client that backs off exponentially would
    // be asleep for a minute by then).
    let mut jar = jar.clone();
    for cycle in 1..=2 {
        c.wait_for_expiry(&jar).await;
        let started = std::time::Instant::now();
        let r = c
            .http
            .get(format!("{}/api/a", c.proxies[cycle].url))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status(), 200, "Redis down: the request still succeeds");
        // Redis is waited for up to `wait_timeout` (2 s here): a pause is not an outage.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "bounded wait, no hang"
        );
        assert!(c.count("token_handler_coordination_fallbacks_total") >= cycle as f64);
        jar.update(&r);
    }

    redis.restart().await;
    // The very next refresh cycle coordinates again, and so does the one after it.
    for cycle in 0..2 {
        c.wait_for_expiry(&jar).await;
        let fallbacks = c.count("token_handler_coordination_fallbacks_total");
        let refreshes = c.refreshes();
        let results = c.storm(&jar, 30).await;
        let statuses: Vec<u16> = results.iter().map(|(s, _)| *s).collect();
        assert!(
            statuses.iter().all(|s| *s == 200),
            "cycle {cycle} after the restart: {statuses:?}"
        );
        jar = newest(&jar, &results);
        assert_eq!(
            c.count("token_handler_coordination_fallbacks_total"),
            fallbacks,
            "cycle {cycle} after the restart fell back: coordination did not resume"
        );
        assert_eq!(
            c.refreshes(),
            refreshes + 1.0,
            "cycle {cycle}: one /token call for three replicas again"
        );
    }
    // Every replica reads the shared record of ended sessions again: a logout on one is
    // refused by the others.
    crate::backchannel::synced(&c).await;
    c.logout(0, &jar).await;
    crate::backchannel::synced(&c).await;
    assert!(
        crate::backchannel::refused(&c, 2, &jar).await,
        "a logout after the restart reaches the other replicas"
    );
}
