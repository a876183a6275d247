//! The Redis deployments users run, started by the tests (real processes, no mocks): Sentinel
//! with a failover in the middle of a refresh storm, a manual failover followed without a
//! restart, Redis Cluster, and a standalone server with an ACL user. Every data node requires
//! an ACL user and password, delivered as in production: through the environment or a mounted
//! file. Three in-process replicas in front of the real `oidc-provider`, which revokes the whole
//! grant when a refresh token is spent twice.

use crate::backchannel::{refused, synced};
use crate::support::cluster::{newest, Cluster};
use crate::support::redis_cluster::RedisCluster;
use crate::support::redis_nodes::{
    data_node_config, eventually, free_port, RedisNode, TempDir, ADMIN_PASSWORD, USER,
    USER_PASSWORD,
};
use crate::support::redis_sentinel::{SentinelSet, MASTER, SENTINEL_PASSWORD};
use crate::support::Jar;
use std::time::Duration;

const REMOTE: &str = r#"token_handler_refreshes_total{outcome="remote"}"#;
const FALLBACKS: &str = "token_handler_coordination_fallbacks_total";

fn list(urls: &[String]) -> String {
    let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Access tokens live this long (seconds) where no failover happens in a storm: a refresh is
/// due half-way, and expiry times are whole seconds, so a session a storm hands out must not
/// fall due before the storm ends (that would be a second, legitimate, refresh).
const ACCESS_TTL: u64 = 6;
/// The same across a failover in the middle of a storm, which can take three seconds here.
const ACCESS_TTL_FAILOVER: u64 = 12;

/// The proxies' `[coordination]` for these Sentinels; the waits cover a failover (one to three
/// seconds here) with room to spare.
async fn on_sentinels(set: &SentinelSet, access_ttl: u64) -> Cluster {
    let section = format!(
        "[coordination]\nsentinels = {}\nsentinel_master = \"{MASTER}\"\nwait_timeout = \"10s\"\n",
        list(&set.sentinel_urls())
    );
    let env = [
        ("TOKEN_HANDLER_REDIS_USERNAME", USER.to_string()),
        ("TOKEN_HANDLER_REDIS_PASSWORD", USER_PASSWORD.to_string()),
        (
            "TOKEN_HANDLER_REDIS_SENTINEL_PASSWORD",
            SENTINEL_PASSWORD.to_string(),
        ),
    ];
    Cluster::start_with(&section, &env, access_ttl).await
}

/// `n` requests at expiry: every one answered 200, and one `/token` call more in all.
async fn one_refresh_for_all(c: &Cluster, jar: &Jar, n: usize) -> Jar {
    c.wait_for_expiry(jar).await;
    let before = c.refreshes();
    let started = std::time::Instant::now();
    let results = c.storm(jar, n).await;
    println!("storm of {n}: {:?}", started.elapsed());
    let failed: Vec<u16> = results
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s != 200)
        .collect();
    assert!(
        failed.is_empty(),
        "{n} successes: {failed:?}\n{}",
        c.outcomes()
    );
    assert_eq!(
        c.refreshes(),
        before + 1.0,
        "one /token call across the replicas:\n{}",
        c.outcomes()
    );
    newest(jar, &results)
}

/// Redis was there for every refresh, and the newest refresh token still works at the IdP.
async fn no_fallback_and_the_grant_alive(c: &Cluster, jar: &Jar) {
    assert_eq!(c.count(FALLBACKS), 0.0, "{}", c.outcomes());
    assert!(c.grant_alive(c.session(jar).refresh_token.expose()).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_in_the_middle_of_a_storm_keeps_every_call_and_the_grant() {
    let mut set = SentinelSet::start().await;
    let c = on_sentinels(&set, ACCESS_TTL_FAILOVER).await;
    let jar = c.login().await;
    let old = set.agreed_primary().await.expect("a primary");
    let replica = set
        .data
        .iter()
        .position(|n| n.port != old)
        .expect("replica");
    c.wait_for_expiry(&jar).await;

    // The primary dies once a refresh's lease has reached the replica: some requests are
    // waiting for that refresh, others have not asked yet.
    let started = std::time::Instant::now();
    let failover = async {
        eventually(
            "a refresh lease reaches the replica",
            Duration::from_secs(10),
            || async { !set.data[replica].dump().await.is_empty() },
        )
        .await;
        set.node_mut(old).kill();
    };
    let (results, ()) = tokio::join!(c.storm(&jar, 300), failover);
    println!("storm through the failover: {:?}", started.elapsed());
    let statuses: Vec<u16> = results
        .iter()
        .map(|(s, _)| *s)
        .filter(|s| *s != 200)
        .collect();
    assert!(
        statuses.is_empty(),
        "300 successes: {statuses:?}\n{}",
        c.outcomes()
    );
    assert_eq!(
        c.refreshes(),
        1.0,
        "one /token call, before and after the failover:\n{}",
        c.outcomes()
    );
    assert_eq!(c.count(FALLBACKS), 0.0, "the failover was waited out");
    let new = set.wait_for_new_primary(old).await;

    // The replicas found the new primary by themselves: coordination goes on there.
    let jar = one_refresh_for_all(&c, &newest(&jar, &results), 30).await;
    assert!(
        !set.node(new).dump().await.is_empty(),
        "keys on the new primary"
    );
    no_fallback_and_the_grant_alive(&c, &jar).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_sentinel_failover_is_followed_without_a_restart() {
    let set = SentinelSet::start().await;
    let c = on_sentinels(&set, ACCESS_TTL).await;
    let jar = c.login().await;
    let jar = one_refresh_for_all(&c, &jar, 30).await;
    let old = set.agreed_primary().await.expect("a primary");

    // The old primary stays up and writable until the Sentinels reconfigure it (seconds
    // later): the replicas must move because the Sentinels say so, not because it fails.
    let _: String = set.sentinels[0]
        .query(redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER))
        .await
        .expect("SENTINEL FAILOVER");
    let new = set.wait_for_new_primary(old).await;
    let before = set.node(new).dump().await.len();
    let jar = one_refresh_for_all(&c, &jar, 30).await;
    assert!(
        set.node(new).dump().await.len() > before,
        "the refresh after the failover was coordinated on the new primary"
    );
    no_fallback_and_the_grant_alive(&c, &jar).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_storm_makes_one_token_call_and_keeps_the_grant() {
    let cluster = RedisCluster::start().await;
    // The password as a mounted Secret would give it: a file.
    let dir = TempDir::new("cluster-secret");
    let password_file = dir.0.join("redis-password");
    std::fs::write(&password_file, format!("{USER_PASSWORD}\n")).expect("write");
    let section = format!(
        "[coordination]\ncluster_nodes = {}\nwait_timeout = \"5s\"\n",
        list(&cluster.urls())
    );
    let env = [
        ("TOKEN_HANDLER_REDIS_USERNAME", USER.to_string()),
        (
            "TOKEN_HANDLER_REDIS_PASSWORD_FILE",
            password_file.display().to_string(),
        ),
    ];
    let c = Cluster::start_with(&section, &env, ACCESS_TTL).await;
    let jar = c.login().await;
    let old = c.session(&jar);
    let jar = one_refresh_for_all(&c, &jar, 300).await;
    assert_eq!(
        c.count(REMOTE),
        2.0,
        "the other two used its result:\n{}",
        c.outcomes()
    );

    // One hash slot: every key of the refresh on one node; no token in any key or value.
    let dump = cluster.dump().await;
    assert!(!dump.is_empty(), "the result is shared through the cluster");
    assert!(
        dump.iter().all(|(port, _, _)| *port == dump[0].0),
        "{dump:?}"
    );
    let new = c.session(&jar);
    for (_, key, value) in &dump {
        for token in [old.refresh_token.expose(), new.refresh_token.expose()] {
            assert!(
                !key.contains(token) && !value.contains(token),
                "a token reached Redis"
            );
        }
    }
    let jar = one_refresh_for_all(&c, &jar, 30).await;
    no_fallback_and_the_grant_alive(&c, &jar).await;
    ends_reach_every_replica(&c).await;
}

/// A logout on one replica is refused on all three, through this Redis, with its ACL user: the
/// end written (`XADD`, `SET NX`) and read (`XREAD`) with no failed Redis call. Failures are
/// counted from here on: a read that took longer than `operation_timeout` while a storm held
/// the test's runtime (or while the cluster connection was first made) is a slow read, not a
/// permission the ACL lacks, and a `NOPERM` would fail every call from here on.
async fn ends_reach_every_replica(c: &Cluster) {
    const SYNC_ERRORS: &str = "token_handler_ended_sync_errors_total";
    let before = c.count(SYNC_ERRORS);
    println!("ended-sessions record: {before} failed Redis calls before the logout");
    let jar = c.login().await;
    c.logout(0, &jar).await;
    synced(c).await;
    for r in 0..3 {
        assert!(refused(c, r, &jar).await, "replica {r}");
    }
    assert_eq!(
        c.count(SYNC_ERRORS),
        before,
        "a Redis call of the ended-sessions record failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_redis_with_an_acl_user_from_the_environment() {
    let dir = TempDir::new("standalone-acl");
    let redis = RedisNode::start(
        &dir.0,
        free_port(),
        &data_node_config(),
        false,
        ADMIN_PASSWORD,
    )
    .await;
    // The URL names no user: the user and password come from the environment.
    let section = format!(
        "[coordination]\nredis_url = \"redis://127.0.0.1:{}/\"\nwait_timeout = \"5s\"\n",
        redis.port
    );
    let env = [
        ("TOKEN_HANDLER_REDIS_USERNAME", USER.to_string()),
        ("TOKEN_HANDLER_REDIS_PASSWORD", USER_PASSWORD.to_string()),
    ];
    let c = Cluster::start_with(&section, &env, ACCESS_TTL).await;
    let jar = c.login().await;
    // The ACL user may do all the protocol needs: no fallback.
    let jar = one_refresh_for_all(&c, &jar, 30).await;
    assert!(!redis.dump().await.is_empty());
    no_fallback_and_the_grant_alive(&c, &jar).await;
    ends_reach_every_replica(&c).await;
}
