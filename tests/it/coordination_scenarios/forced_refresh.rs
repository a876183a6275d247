//! Forced refreshes (the upstream answered `invalid_token`) on an IdP that does not rotate:
//! two of them on two replicas within one second leave two sessions with the same refresh
//! token and access tokens issued in the same second. A replica that remembers the first must
//! not take a request carrying the second back to it.

use super::last_bearer;
use crate::support::cluster::{Cluster, Options};
use crate::support::redis_server::RedisServer;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_never_takes_a_request_back_to_an_older_session() {
    let redis = RedisServer::start().await;
    let c = Cluster::build(Options {
        redis_url: Some(redis.url()),
        rotate: false,
        // Long-lived access tokens: only the upstream's invalid_token makes a refresh.
        access_ttl: 60,
        replicas: 2,
        ..Options::default()
    })
    .await;
    let mut jar = c.login().await;
    let first = c.session(&jar);
    // The upstream rejects s0: replica 0 refreshes (s1); then it rejects s1: replica 1
    // refreshes (s2).
    for replica in [0usize, 1] {
        c.echo.reject_token(c.session(&jar).access_token.expose());
        let r = c.get(replica, "/api/forced", &jar).await;
        assert_eq!(r.status(), 200);
        jar.update(&r);
    }
    let newest = c.session(&jar);
    assert_eq!(newest.refresh_token.expose(), first.refresh_token.expose());
    let calls = c.refreshes();
    assert_eq!(calls, 2.0, "one /token call per forced refresh");
    // The browser, holding s2, calls replica 0 (which remembers s1 for this refresh token).
    let r = c.get(0, "/api/after", &jar).await;
    assert_eq!(r.status(), 200);
    assert!(
        session_set_cookies(&r).is_empty(),
        "no cookie back to an older session"
    );
    assert_eq!(
        last_bearer(&c),
        newest.access_token.expose(),
        "s2 forwarded"
    );
    assert_eq!(c.refreshes(), calls, "no further /token call");
}
