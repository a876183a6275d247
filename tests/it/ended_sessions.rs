//! The record of ended sessions across replicas on a real Redis: a logout on one replica, the
//! operator's kill switch (the real binary's `sessions end`), the idle timeout, and what a
//! replica does while Redis is down.

use std::process::Command;
use std::time::Duration;
use token_handler::refresh::unix_now;

use crate::backchannel::{refused, synced};
use crate::support::cluster::{Cluster, Options};
use crate::support::oidc_provider::OIDC_CLIENT_SECRET;
use crate::support::redis_server::RedisServer;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_token-handler");

/// Waits (a bounded while) for `cond`, a condition the proxies reach by themselves.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_replica_ends_every_copy_on_all_of_them() {
    let redis = RedisServer::start().await;
    let c = Cluster::build(Options {
        redis_url: Some(redis.url()),
        access_ttl: 60,
        ..Options::default()
    })
    .await;
    let jar = c.login().await;
    let copy = jar.clone();
    let other = c.login().await;
    c.logout(0, &jar).await;
    synced(&c).await;
    for r in 0..3 {
        assert!(refused(&c, r, &copy).await, "the copy on replica {r}");
        assert!(!refused(&c, r, &other).await);
    }
    // The record in Redis names no session, user or token: digests only.
    let ended = c.session(&copy);
    let dump = redis.dump().await;
    let (_, stream) = dump
        .iter()
        .find(|(k, _)| k == "th:{ended}:log")
        .expect("the record's stream");
    assert_eq!(stream.lines().count(), 1, "{stream}");
    for (key, value) in &dump {
        for secret in [
            ended.id.as_str(),
            ended.refresh_token.expose(),
            ended.sub.as_deref().expect("sub"),
        ] {
            assert!(
                !key.contains(secret) && !value.contains(secret),
                "{key}: {value}"
            );
        }
    }
}

fn run_end(toml: &str, args: &[&str]) -> (bool, String, String) {
    let dir =
        std::env::temp_dir().join(format!("th-end-{}", token_handler::crypto::random_token(6)));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("token-handler.toml");
    std::fs::write(&path, toml).expect("config");
    let out = Command::new(BIN)
        .args(["sessions", "end", "--config"])
        .arg(&path)
        .args(args)
        .env("TOKEN_HANDLER_COOKIE_KEYS", KEY1)
        .env("TOKEN_HANDLER_CLIENT_SECRET", OIDC_CLIENT_SECRET)
        .output()
        .expect("run token-handler sessions end");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kill_switch_ends_a_users_sessions_on_every_replica_and_revokes_them_once() {
    let redis = RedisServer::start().await;
    let c = Cluster::build(Options {
        redis_url: Some(redis.url()),
        access_ttl: 60,
        backchannel: true,
        ..Options::default()
    })
    .await;
    let alice = c.login_as("alice").await;
    let alice_too = c.login_as("alice").await;
    let bob = c.login_as("bob").await;
    let carol = c.login_as("carol").await;
    let (ok, out, err) = run_end(&c.toml, &["--sub", "alice"]);
    assert!(ok, "sessions end failed: {err}");
    let written: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON line");
    assert_eq!(written["ended"], "sub");
    assert!(!out.contains("alice"), "the output names no user");
    synced(&c).await;
    for r in 0..3 {
        assert!(refused(&c, r, &alice).await, "alice on replica {r}");
        assert!(refused(&c, r, &alice_too).await);
        assert!(!refused(&c, r, &bob).await, "bob lives on");
    }
    // Each replica learnt of one operator end; the refresh tokens were revoked at the IdP.
    assert_eq!(
        c.count(r#"token_handler_logouts_total{outcome="operator"}"#),
        3.0
    );
    for jar in [&alice, &alice_too] {
        let refresh = c.session(jar).refresh_token.expose().to_string();
        let mut gone = false;
        for _ in 0..200 {
            if !c.provider.active(&refresh).await {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(gone, "the ended session's refresh token is revoked");
    }
    assert!(
        c.provider
            .active(c.session(&bob).refresh_token.expose())
            .await
    );

    // By IdP session: carol's `sid`.
    let sid = c.session(&carol).sid.expect("sid");
    let (ok, _, err) = run_end(&c.toml, &["--sid", &sid]);
    assert!(ok, "{err}");
    synced(&c).await;
    assert!(refused(&c, 1, &carol).await);
    assert!(!refused(&c, 1, &bob).await);

    // Without Redis there is no shared record to write: a clear failure, nothing half-done.
    let alone = c
        .toml
        .split("[coordination]")
        .next()
        .expect("toml")
        .to_string();
    let (ok, _, err) = run_end(&alone, &["--sub", "bob"]);
    assert!(!ok);
    assert!(err.contains("[coordination]"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idle_timeout_ends_an_idle_session_and_not_an_active_one() {
    let c = Cluster::build(Options {
        replicas: 1,
        access_ttl: 60,
        session: "idle_timeout = \"4s\"\nidle_touch_interval = \"1s\"\n".into(),
        ..Options::default()
    })
    .await;
    let mut jar = c.login().await;
    // In use every 300 ms for longer than the idle timeout: never ended; its last use is
    // re-sealed about once a second, not on every response.
    let active_from = unix_now();
    let (mut calls, mut reseals) = (0, 0);
    while unix_now() < active_from + 6 {
        let r = c.get(0, "/api/busy", &jar).await;
        assert_eq!(r.status(), 200, "an active session is never idle");
        calls += 1;
        if !session_set_cookies(&r).is_empty() {
            reseals += 1;
            jar.update(&r);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        (4..=8).contains(&reseals),
        "{reseals} re-seals in {calls} calls over 6 s"
    );
    // Left alone: ended once its last use is 4 s old.
    let last = c.session(&jar).last_used_at;
    while unix_now() < last + 4 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused(&c, 0, &jar).await);
    assert_eq!(
        c.metric(
            0,
            r#"token_handler_ended_session_refusals_total{reason="idle"}"#
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_replica_serves_on_and_learns_the_ends_when_it_returns() {
    let mut redis = RedisServer::start().await;
    let c = Cluster::build(Options {
        replicas: 2,
        redis_url: Some(redis.url()),
        access_ttl: 60,
        coordination: "wait_timeout = \"1s\"\n".into(),
        ..Options::default()
    })
    .await;
    let jar = c.login().await;
    let copy = jar.clone();
    redis.stop();
    until("both replicas count failed reads", || {
        (0..2).all(|r| c.metric(r, "token_handler_ended_sync_errors_total") > 0.0)
    })
    .await;
    // Requests are not refused, nor held, for want of Redis.
    assert!(!refused(&c, 1, &copy).await);
    // A logout still logs out: on the replica that took it at once.
    c.logout(0, &jar).await;
    assert!(refused(&c, 0, &copy).await);
    assert!(
        !refused(&c, 1, &copy).await,
        "the other replica has not learnt it yet"
    );
    // Redis back (empty: no persistence in this test): the logout is written again, and read.
    redis.restart().await;
    until("the waiting end reaches Redis", || {
        c.metric(1, "token_handler_ended_sessions") >= 1.0
    })
    .await;
    assert!(refused(&c, 1, &copy).await);
}

/// A replica that starts is ready once it has read the record (it knows every earlier end), or,
/// with Redis unreachable, after `coordination.wait_timeout` (a Redis outage must not keep every
/// new pod out of the Service).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_replica_is_ready_once_it_has_read_the_record() {
    use token_handler::admin::readiness;
    let redis = RedisServer::start().await;
    let url = format!("redis_url = \"{}\"", redis.url());
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("coordination", &url),
            ("coordination", "wait_timeout = \"30s\""),
        ],
        KEY1,
    )
    .await;
    let shared = h.proxy.app.ended.shared().expect("shared");
    let mut rounds = shared.rounds();
    rounds.wait_for(|n| *n >= 1).await.expect("follower");
    assert_eq!(readiness(&h.proxy.app), Ok(()));

    // Redis unreachable from the start: not ready, then ready after wait_timeout.
    let closed = format!(
        "redis_url = \"redis://127.0.0.1:{}/\"",
        crate::support::redis_nodes::free_port()
    );
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("coordination", &closed),
            ("coordination", "wait_timeout = \"2s\""),
        ],
        KEY1,
    )
    .await;
    assert_eq!(
        readiness(&h.proxy.app),
        Err("the shared record of ended sessions is not read yet")
    );
    until("ready after wait_timeout", || {
        readiness(&h.proxy.app).is_ok()
    })
    .await;
}
