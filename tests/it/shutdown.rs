//! The drain, in process: when the server stops, an idle keep-alive connection is closed at
//! once (its watchdog hears the shutdown), not at its idle timeout or the end of the grace.

use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn the_drain_closes_idle_keep_alive_connections_at_once() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("server", "header_read_timeout = \"60s\""),
            ("server", "shutdown_grace = \"60s\""),
        ],
        KEY1,
    )
    .await;
    let mut idle = tokio::net::TcpStream::connect(h.proxy.addr)
        .await
        .expect("connect");
    idle.write_all(b"GET /auth/session HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut head = [0u8; 16];
    idle.read_exact(&mut head).await.expect("answered");
    assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");

    // Dropping the in-process proxy starts the server's drain.
    let Harness { proxy, .. } = h;
    drop(proxy);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "closed by the drain, not left open for its 60 s idle timeout or grace"
    );
}
