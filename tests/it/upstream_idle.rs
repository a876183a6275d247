//! Idle upstream connections once traffic stops: a kept-alive connection the upstream closes
//! while no request comes is closed on the proxy's side too, not left in `CLOSE_WAIT` until a
//! request meets it. Real proxy (with each upstream client: `scripts/test.sh` runs the suite
//! with both); the upstream is a socket that answers once, half-closes, and waits for the
//! proxy's close.

use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// Far longer than the sweep's second, far shorter than the 60 s idle timeout (which would
/// close the connection anyway, on the next request).
const CLOSED_WITHIN: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_kept_alive_connection_the_upstream_closes_while_idle_is_closed_without_traffic() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (closed_tx, closed_rx) = oneshot::channel::<Vec<u8>>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.expect("read the request");
            assert!(n > 0, "the proxy closed before its request");
            got.extend_from_slice(&chunk[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .expect("answer");
        // The upstream's idle timeout: it closes its side of the kept-alive connection.
        stream.shutdown().await.expect("half-close");
        // Whatever the proxy sends from here on, then its close.
        let mut after = Vec::new();
        let _ = stream.read_to_end(&mut after).await;
        let _ = closed_tx.send(after);
    });
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let proxy = Proxy::start(
        &config_toml(
            &idp.url(),
            &format!("http://{addr}"),
            "tokenidp",
            &[("proxy", "public_paths = [\"/\"]")],
        ),
        KEY1,
    )
    .await;
    let response = client()
        .get(format!("{}/idle", proxy.url))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "ok");
    // No other request: only the pool's own upkeep can close the connection now.
    let after = tokio::time::timeout(CLOSED_WITHIN, closed_rx)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the proxy kept the connection the upstream closed for over {CLOSED_WITHIN:?} \
                 ({} client)",
                upstream_client()
            )
        })
        .expect("the upstream task reported");
    assert!(
        after.is_empty(),
        "nothing was sent on the closed connection"
    );
}
