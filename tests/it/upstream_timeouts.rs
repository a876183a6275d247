//! `upstream.response_header_timeout` on kept-alive connections: each request waits its own
//! full timeout for the response head, on a new connection and on a pooled one, whether the
//! pooled connection's timer was set by a request a moment ago or fired while it sat idle.
//! Real proxy, emulator and echo upstream (`/hang` never answers).

use crate::support::*;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_millis(400);

/// `/hang` through the proxy: a 504 `upstream_timeout`, not before `TIMEOUT`.
async fn times_out(h: &Harness, jar: &Jar, what: &str) {
    let started = Instant::now();
    let response = h.get("/hang", jar).await;
    let waited = started.elapsed();
    assert_eq!(response.status(), 504, "{what}");
    assert_eq!(json(response).await["error"], "upstream_timeout", "{what}");
    assert!(
        waited >= TIMEOUT,
        "{what}: answered after {waited:?}, before the {TIMEOUT:?} a response head may take"
    );
}

#[tokio::test]
async fn every_request_waits_its_own_response_head_timeout_on_pooled_connections() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("upstream", "response_header_timeout = \"400ms\"")],
        KEY1,
    )
    .await;
    let (jar, _) = h.login(false);
    let connection = |h: &Harness| h.echo.last().connection;

    // A new connection.
    times_out(&h, &jar, "first request, new connection").await;
    assert_eq!(connection(&h), 0);

    // A pooled connection right after a request on it: the timer that request set is still
    // pending, and is moved to this request's deadline, not left where it was.
    assert_eq!(h.get("/api/a", &jar).await.status(), 200);
    let pooled = connection(&h);
    tokio::time::sleep(TIMEOUT / 2).await;
    times_out(&h, &jar, "pooled connection, its last deadline half gone").await;
    assert_eq!(connection(&h), pooled, "went out on the pooled connection");

    // A pooled connection idle past its last deadline: that timer has fired with no request
    // waiting; the next request gets a new one.
    assert_eq!(h.get("/api/b", &jar).await.status(), 200);
    let pooled = connection(&h);
    tokio::time::sleep(TIMEOUT * 2).await;
    times_out(&h, &jar, "pooled connection, idle past its last deadline").await;
    assert_eq!(connection(&h), pooled, "went out on the pooled connection");

    // A timed-out connection is not reused; the next request is answered.
    assert_eq!(h.get("/api/c", &jar).await.status(), 200);
    assert_ne!(connection(&h), pooled);
}
