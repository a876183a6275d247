//! Many replicas, the hard cases: each test runs real replicas on a real `redis-server` in front
//! of the real `oidc-provider` and proves one promise of "Many replicas: one refresh on Redis"
//! (README) that a simple storm at expiry does not reach. Here: a replay after the grace window
//! on a replica that never saw the refresh, an IdP that does not rotate, Redis paused in the
//! middle of a refresh, a forged Redis value. Beside this file: a cookie-key rotation that
//! reaches the replicas at different moments (`key_rotation.rs`), the replica holding the lease
//! killed with SIGKILL in the middle of its `/token` call (`lease_holder_killed.rs`), and forced
//! refreshes on an IdP that does not rotate (`forced_refresh.rs`).

mod forced_refresh;
mod key_rotation;
mod lease_holder_killed;

use crate::support::cluster::{newest, Cluster, Options};
use crate::support::redis_server::RedisServer;
use crate::support::*;
use std::time::{Duration, Instant};

const REFRESHED: &str = r#"token_handler_refreshes_total{outcome="refreshed"}"#;
const REJECTED: &str = r#"token_handler_refreshes_total{outcome="rejected"}"#;
const TRANSIENT: &str = r#"token_handler_refreshes_total{outcome="transient"}"#;
const FALLBACKS: &str = "token_handler_coordination_fallbacks_total";

/// The Redis key `what` (`result`, `spent`, `lease`) of a refresh token, computed as
/// src/coordination/mod.rs does, independently: SHA-256 over a fixed label and the token, the
/// first 16 bytes in hex, in braces (one hash slot).
fn redis_key(refresh_token: &str, what: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"token-handler refresh token v2\0");
    ctx.update(refresh_token.as_bytes());
    let hash: String = ctx.finish().as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("th:{{{hash}}}:{what}")
}

async fn redis_connection(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis-server")
}

/// Whether the answer told the browser to drop its session cookie.
fn clears_session(r: &reqwest::Response) -> bool {
    session_set_cookies(r).iter().any(|l| {
        l.split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("Max-Age=0"))
    })
}

/// The statuses of a storm's answers (their cookies are too long for a failure message).
fn statuses(results: &[(u16, Vec<String>)]) -> Vec<u16> {
    results.iter().map(|(s, _)| *s).collect()
}

/// The access token the upstream received last.
pub(super) fn last_bearer(c: &Cluster) -> String {
    let auth = c.echo.last().header("authorization").expect("a Bearer");
    auth.strip_prefix("Bearer ").expect("Bearer").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_cookie_past_the_grace_window_is_refused_on_a_replica_that_never_saw_the_refresh() {
    let redis = RedisServer::start().await;
    let c = Cluster::build(Options {
        redis_url: Some(redis.url()),
        session: "rotation_grace = \"2s\"\nreuse_window = \"60s\"\n".into(),
        ..Options::default()
    })
    .await;
    let old = c.login().await;
    let spent = c.session(&old).refresh_token.expose().to_string();
    c.wait_for_expiry(&old).await;

    // The refresh happens through replicas 0 and 1 only: replica 2 never sees it locally.
    let results = c.storm_on(&old, 20, &[0, 1]).await;
    assert!(
        results.iter().all(|(s, _)| *s == 200),
        "{:?}",
        statuses(&results)
    );
    assert_eq!(c.refreshes(), 1.0, "one /token call");
    let current = newest(&old, &results);

    // The grace window ends when the shared result expires in Redis: wait for that (bounded),
    // while the spent marker stays for the reuse window.
    let mut conn = redis_connection(&redis).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (result, marker): (bool, bool) = redis::pipe()
            .exists(redis_key(&spent, "result"))
            .exists(redis_key(&spent, "spent"))
            .query_async(&mut conn)
            .await
            .expect("EXISTS");
        assert!(marker, "the spent marker outlives the grace window");
        if !result {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the result outlived rotation_grace"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The old cookie (a copy, a lost response) reaches replica 2 after the window.
    let r = c.get(2, "/api/replay", &old).await;
    assert_eq!(r.status(), 401);
    assert_eq!(json(r).await["error"], "login_required");
    // A /token call with the spent token would count as refreshed, rejected or transient.
    assert_eq!(c.refreshes(), 1.0, "no /token call with the spent token");
    assert_eq!(
        c.count(REJECTED) + c.count(TRANSIENT),
        0.0,
        "no /token call"
    );
    assert_eq!(
        c.metric(
            2,
            r#"token_handler_refreshes_total{outcome="reuse_suspected_shared"}"#
        ),
        1.0,
        "replica 2 knew it from the spent marker"
    );
    assert_eq!(c.count(FALLBACKS), 0.0);
    let rt = c.session(&current).refresh_token.expose().to_string();
    assert!(c.provider.active(&rt).await, "the grant is still valid");

    // The current cookie still works on every replica (the first call refreshes it again).
    let mut jar = current.clone();
    for replica in 0..3 {
        let r = c.get(replica, "/api/current", &jar).await;
        assert_eq!(r.status(), 200, "replica {replica}");
        assert!(!clears_session(&r));
        jar.update(&r);
        assert_eq!(last_bearer(&c), c.session(&jar).access_token.expose());
    }
    let rt = c.session(&jar).refresh_token.expose().to_string();
    assert!(c.provider.active(&rt).await, "the grant is still valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_that_does_not_rotate_gets_one_token_call_and_a_fresh_token_per_refresh() {
    let redis = RedisServer::start().await;
    // Access tokens of 2 s, results shared for 60 s: every refresh of this session happens
    // while the previous one's result (same refresh token, same Redis key) is still there.
    let c = Cluster::build(Options {
        redis_url: Some(redis.url()),
        rotate: false,
        session: "rotation_grace = \"60s\"\n".into(),
        ..Options::default()
    })
    .await;
    let mut jar = c.login().await;
    let login = c.session(&jar);
    let mut issued = vec![login.access_token.expose().to_string()];

    // Refresh 1 through replica 0, refresh 2 through replica 1 (which finds refresh 1's result).
    for (n, replica) in [0usize, 1].into_iter().enumerate() {
        c.wait_for_expiry(&jar).await;
        let started = Instant::now();
        let r = c.get(replica, "/api/refresh", &jar).await;
        let took = started.elapsed();
        assert_eq!(r.status(), 200);
        jar.update(&r);
        let session = c.session(&jar);
        assert_eq!(
            session.refresh_token.expose(),
            login.refresh_token.expose(),
            "the provider did not rotate"
        );
        let bearer = last_bearer(&c);
        assert_eq!(
            bearer,
            session.access_token.expose(),
            "the new token forwarded"
        );
        assert!(
            !issued.contains(&bearer),
            "refresh {} forwarded an access token seen before",
            n + 1
        );
        assert!(c.provider.active(&bearer).await, "a live access token");
        assert_eq!(c.refreshes(), (n + 1) as f64, "one /token call per refresh");
        // Bounded: one /token call's time, not a wait for a lease until wait_timeout (2 s; a
        // wait past it would be a 503) nor rounds of hops between same-token sessions.
        assert!(took < Duration::from_secs(3), "took {took:?}");
        issued.push(bearer);
    }

    // Replica 0 still remembers refresh 1 for this refresh token; a request carrying the newer
    // session is not taken back to it.
    let r = c.get(0, "/api/after", &jar).await;
    assert_eq!(r.status(), 200);
    assert_eq!(&last_bearer(&c), issued.last().expect("issued"));
    assert_eq!(c.refreshes(), 2.0);
    assert_eq!(c.count(FALLBACKS), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_paused_during_a_refresh_is_waited_for_with_one_token_call() {
    const PAUSE: Duration = Duration::from_millis(1500);
    let redis = RedisServer::start().await;
    let c = Cluster::build(Options {
        redis_url: Some(redis.url()),
        // Above the pause: the replicas wait Redis out instead of refreshing alone.
        coordination: "wait_timeout = \"6s\"\n".into(),
        ..Options::default()
    })
    .await;
    let jar = c.login().await;
    // A first refresh, so every replica has its Redis connection (as in production).
    c.wait_for_expiry(&jar).await;
    let results = c.storm(&jar, 30).await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    let jar = newest(&jar, &results);
    let before = c.session(&jar);
    assert_eq!(c.refreshes(), 1.0);

    c.wait_for_expiry(&jar).await;
    let mut conn = redis_connection(&redis).await;
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(PAUSE.as_millis() as u64)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .expect("CLIENT PAUSE");
    let started = Instant::now();
    let results = c.storm(&jar, 60).await;
    let took = started.elapsed();

    assert!(
        results.iter().all(|(s, _)| *s == 200),
        "{:?}",
        statuses(&results)
    );
    assert_eq!(c.refreshes(), 2.0, "one /token call for this refresh token");
    assert_eq!(c.count(REJECTED), 0.0);
    assert_eq!(c.count(FALLBACKS), 0.0, "no replica refreshed alone");
    // The requests waited for Redis (it really was paused), and none until wait_timeout.
    assert!(took >= PAUSE - Duration::from_millis(300), "took {took:?}");
    assert!(took < Duration::from_secs(6), "took {took:?}");
    let after = c.session(&newest(&jar, &results));
    assert_ne!(after.refresh_token.expose(), before.refresh_token.expose());
    assert!(
        c.provider.active(after.refresh_token.expose()).await,
        "grant alive"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_copied_under_another_sessions_key_is_not_used() {
    let redis = RedisServer::start().await;
    let c = Cluster::start(Some(&redis.url())).await;
    let mut alice = c.login_as("alice").await;
    let mut bob = c.login_as("bob").await;
    let bob_before = c.session(&bob);
    let alice_rt = c.session(&alice).refresh_token.expose().to_string();
    c.wait_for_expiry(&alice).await;
    c.wait_for_expiry(&bob).await;

    let r = c.get(0, "/api/alice", &alice).await;
    assert_eq!(r.status(), 200);
    alice.update(&r);
    let alice_token = c.session(&alice).access_token.expose().to_string();

    // Someone with write access to Redis copies Alice's sealed result under Bob's key, before
    // Bob's refresh.
    let mut conn = redis_connection(&redis).await;
    let sealed: Option<String> = redis::cmd("GET")
        .arg(redis_key(&alice_rt, "result"))
        .query_async(&mut conn)
        .await
        .expect("GET");
    let sealed = sealed.expect("Alice's result is in Redis");
    let _: () = redis::cmd("SET")
        .arg(redis_key(bob_before.refresh_token.expose(), "result"))
        .arg(sealed)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .expect("SET");

    let r = c.get(1, "/api/bob", &bob).await;
    assert_eq!(r.status(), 200);
    bob.update(&r);
    let bob_after = c.session(&bob);
    let bearer = last_bearer(&c);
    assert_ne!(bearer, alice_token, "Bob's request carried Alice's token");
    assert_eq!(
        bearer,
        bob_after.access_token.expose(),
        "Bob's own new token"
    );
    assert_eq!(c.provider.introspect(&bearer).await["sub"], "bob");
    assert_eq!(bob_after.id, bob_before.id);
    assert_eq!(bob_after.claims["sub"], "bob");
    assert_eq!(c.refreshes(), 2.0, "Bob's refresh called /token");

    // Alice is unaffected, on any replica.
    let r = c.get(2, "/api/alice-again", &alice).await;
    assert_eq!(r.status(), 200);
    alice.update(&r);
    let bearer = last_bearer(&c);
    assert_eq!(bearer, c.session(&alice).access_token.expose());
    assert_eq!(c.provider.introspect(&bearer).await["sub"], "alice");
}
