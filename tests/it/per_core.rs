//! `server.scheduler = "per_core"` (two workers), in process: connections take turns over the
//! workers and keep to theirs, each worker with its own upstream connections; the drain
//! reaches the connections of every worker. (`scripts/test.sh` also runs the whole proxy suite
//! with `TOKEN_HANDLER_TEST_SCHEDULER=per_core`: refreshes shared across workers included.)

use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PER_CORE: [(&str, &str); 2] = [
    ("server", "scheduler = \"per_core\""),
    ("server", "worker_threads = 2"),
];

#[tokio::test]
async fn connections_take_turns_over_the_workers_each_with_its_own_upstream_connections() {
    let h = Harness::with(Flavor::TokenIdpServer, &PER_CORE, KEY1).await;
    let (jar, _) = h.login(false);
    let cookie = jar.header();
    // Two browsers, each with one kept-alive connection, one request at a time.
    let browsers = [reqwest::Client::new(), reqwest::Client::new()];
    for turn in [0, 1, 0, 1] {
        let response = browsers[turn]
            .get(format!("{}/api/a", h.proxy.url))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 200);
        response.bytes().await.expect("the whole answer");
    }
    let connections: Vec<usize> = h.echo.records().iter().map(|r| r.connection).collect();
    assert_eq!(connections.len(), 4);
    // One after the other, the second browser connection's request did not reuse the upstream
    // connection the first had just put back: it is on the other worker, whose pool is its
    // own (with one shared pool, as with work stealing, all four go on connection 0).
    assert_ne!(connections[0], connections[1], "{connections:?}");
    // And each browser connection stays on its worker, whose pool keeps its connection.
    assert_eq!(connections[2], connections[0], "{connections:?}");
    assert_eq!(connections[3], connections[1], "{connections:?}");
}

#[tokio::test]
async fn the_drain_reaches_the_connections_of_every_worker() {
    let mut tweaks = PER_CORE.to_vec();
    tweaks.push(("server", "header_read_timeout = \"60s\""));
    tweaks.push(("server", "shutdown_grace = \"60s\""));
    let h = Harness::with(Flavor::TokenIdpServer, &tweaks, KEY1).await;
    let (jar, _) = h.login(false);
    let cookie = jar.header();
    // Two connections in turn: one on each worker. The first goes idle after a request; the
    // second has a request in flight when the drain begins.
    let mut idle = TcpStream::connect(h.proxy.addr).await.expect("connect");
    let mut busy = TcpStream::connect(h.proxy.addr).await.expect("connect");
    idle.write_all(
        format!("GET /api/a HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.expect("answered");
    assert_eq!(&head, b"HTTP/1.1 200");
    let started = h.echo.started.notified();
    busy.write_all(
        format!("GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    started.await;

    let Harness { proxy, echo, .. } = h;
    drop(proxy);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection is closed by the drain");
    // The request in flight on the other worker still gets its answer, then its connection
    // closes too.
    echo.release.notify_one();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), busy.read_to_end(&mut answer))
        .await
        .expect("answered and closed within the grace")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
