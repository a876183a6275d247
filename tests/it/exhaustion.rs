//! Clients that hold resources without using them: connections that never send a request,
//! h2 streams whose body never comes, trickling bodies, unanswered PINGs, header blocks at
//! the limit on both protocols, and clients that never read (resident memory of the real
//! binary, read from /proc).

use crate::support::*;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Whether the peer closes `stream` within `within` (reading and discarding what it sends).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_without_a_request_are_closed_and_free_their_slots() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("server", "header_read_timeout = \"500ms\""),
            ("server", "max_connections = 6"),
            ("proxy", "public_paths = [\"/public\"]"),
        ],
        KEY1,
    )
    .await;
    let mut idle = Vec::new();
    for i in 0..6 {
        let mut stream = TcpStream::connect(h.proxy.addr).await.expect("connect");
        match i % 3 {
            0 => {}
            1 => stream.write_all(h2raw::PREFACE).await.expect("preface"),
            _ => stream
                .write_all(&h2raw::preface_and_settings())
                .await
                .expect("settings"),
        }
        idle.push(stream);
    }
    while h.metric("token_handler_connections_active") < 6.0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every slot is held; a real request waits for one to be freed, and gets it.
    let real = tokio::time::timeout(
        Duration::from_secs(10),
        client().get(format!("{}/public/a", h.proxy.url)).send(),
    )
    .await
    .expect("served once the idle connections were closed")
    .expect("answered");
    assert_eq!(real.status(), 200);
    for (i, stream) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(stream, Duration::from_secs(10)).await,
            "idle connection {i} was closed"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_stream_whose_body_never_comes_gets_408_then_the_idle_connection_goes() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("server", "header_read_timeout = \"500ms\""),
            ("server", "body_read_timeout = \"300ms\""),
            ("proxy", "public_paths = [\"/public\"]"),
        ],
        KEY1,
    )
    .await;
    let tcp = TcpStream::connect(h.proxy.addr).await.expect("connect");
    let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2c");
    let connection = tokio::spawn(connection);
    let request = http::Request::builder()
        .method("POST")
        .uri(format!("{}/public/upload", h.proxy.url))
        .header("content-length", "10")
        .body(())
        .expect("request");
    let (response, _body_never_sent) = client.send_request(request, false).expect("sent");
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("answered in time")
        .expect("response");
    assert_eq!(response.status(), 408);
    drop(client);
    // Idle from then on: GOAWAY, and the connection ends.
    tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("the server closed the idle h2 connection")
        .expect("task")
        .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_is_cut_off_while_a_slow_steady_one_goes_through() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("server", "body_read_timeout = \"400ms\""),
            ("proxy", "public_paths = [\"/\"]"),
        ],
        KEY1,
    )
    .await;
    let mut trickle = TcpStream::connect(h.proxy.addr).await.expect("connect");
    trickle
        .write_all(b"POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 100000\r\n\r\n")
        .await
        .expect("head");
    let writer = async {
        for _ in 0..40 {
            if trickle.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(6), writer)
        .await
        .ok();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), trickle.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // 64 KiB in 8 KiB pieces every 100 ms: slower than the timeout between pieces at first,
    // but every byte earns time.
    let mut steady = TcpStream::connect(h.proxy.addr).await.expect("connect");
    steady
        .write_all(b"POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 65536\r\nConnection: close\r\n\r\n")
        .await
        .expect("head");
    for _ in 0..8 {
        steady.write_all(&[b'y'; 8192]).await.expect("piece");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), steady.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("received 65536 bytes"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_that_never_answers_pings_is_disconnected() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("server", "h2_keepalive_interval = \"200ms\""),
            ("server", "h2_keepalive_timeout = \"300ms\""),
            ("proxy", "public_paths = [\"/\"]"),
        ],
        KEY1,
    )
    .await;
    // A request in flight (so the connection is not idle), and no PING ever acknowledged.
    let mut silent = TcpStream::connect(h.proxy.addr).await.expect("connect");
    silent
        .write_all(&[h2raw::preface_and_settings(), h2raw::get(1, "app", "/slow")].concat())
        .await
        .expect("request");
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "closed after the unanswered PING"
    );
    // A real client answers them and stays.
    let tcp = TcpStream::connect(h.proxy.addr).await.expect("connect");
    let (mut client, connection) = h2::client::handshake(tcp).await.expect("h2c");
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("{}/slow", h.proxy.url))
        .body(())
        .expect("request");
    let (response, _) = client.send_request(request, true).expect("sent");
    h.echo.started.notified().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        !connection.is_finished(),
        "a client that answers PINGs stays"
    );
    h.echo.release.notify_one();
    assert_eq!(response.await.expect("response").status(), 200);
}

#[tokio::test]
async fn header_blocks_are_limited_alike_on_http1_and_h2() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public\"]")],
        KEY1,
    )
    .await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("h2 client");
    let h1 = client();
    for http in [&h1, &h2] {
        let ok = http
            .get(format!("{}/public/a", h.proxy.url))
            .header("x-big", "a".repeat(20 * 1024))
            .send()
            .await
            .expect("answered");
        assert_eq!(ok.status(), 200, "{:?}", ok.version());
        let too_big = http
            .get(format!("{}/public/a", h.proxy.url))
            .header("x-big", "a".repeat(40 * 1024))
            .send()
            .await
            .expect("answered");
        assert_eq!(too_big.status(), 431, "{:?}", too_big.version());
        assert_eq!(json(too_big).await["error"], "request_too_large");
        // The request line counts too.
        let long_path = http
            .get(format!("{}/public/{}", h.proxy.url, "p".repeat(33 * 1024)))
            .send()
            .await
            .expect("answered");
        assert_eq!(long_path.status(), 431, "{:?}", long_path.version());
    }
}

/// Resident memory while clients that never read hold large answers, in the real binary:
/// the growth is bounded, and the write-stall limit then frees the connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_pin_bounded_memory_and_are_then_disconnected() {
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let echo = echo::Echo::start().await;
    let config = config_toml(
        &idp.url(),
        &echo.url(),
        "tokenidp",
        &[
            ("server", "admin_listen = \"127.0.0.1:0\""),
            ("server", "write_timeout = \"10s\""),
            ("server", "header_read_timeout = \"60s\""),
            // 1,100 requests open as many upstream connections at once: past the echo's
            // listen backlog, a dropped SYN is sent again after 1 s. With the suite's 1 s
            // connect timeout, a few hundred answered 502, and a connection whose answers were
            // all 502s is idle, not stalled: it stayed open past the wait below.
            ("upstream", "connect_timeout = \"15s\""),
            ("upstream", "response_header_timeout = \"20s\""),
            ("proxy", "public_paths = [\"/\"]"),
        ],
    );
    let proxy = child::Running::start(&config, KEY1).await;
    // Warm up: one large answer read to the end.
    let warm = client()
        .get(format!("http://{}/big", proxy.addr))
        .send()
        .await
        .expect("warm");
    assert_eq!(warm.bytes().await.expect("body").len(), 8 * 1024 * 1024);
    let baseline = proxy.rss();

    // Ten h2 connections of 100 streams each on the 8 MiB answer, huge windows, never read.
    let mut h2_clients = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
        let mut bytes = h2raw::preface_with_huge_windows();
        for i in 0..100 {
            bytes.extend(h2raw::get(1 + 2 * i, "app", "/big"));
        }
        stream.write_all(&bytes).await.expect("requests");
        h2_clients.push(stream);
    }
    let h2_peak = plateau(&proxy).await.saturating_sub(baseline);

    // A hundred HTTP/1.1 clients, same answer, never read.
    let mut h1_clients = Vec::new();
    for _ in 0..100 {
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
        stream
            .write_all(b"GET /big HTTP/1.1\r\nHost: app\r\n\r\n")
            .await
            .expect("request");
        h1_clients.push(stream);
    }
    let all_peak = plateau(&proxy).await.saturating_sub(baseline);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "RSS baseline {:.1} MiB; +{:.1} MiB with 10 h2 connections x 100 streams; +{:.1} MiB with 100 HTTP/1.1 clients more",
        mib(baseline),
        mib(h2_peak),
        mib(all_peak.saturating_sub(h2_peak)),
    );
    // Before the limits: ~1 GiB and +112 MiB (hyper's 400 KiB buffers on both sides).
    assert!(
        mib(h2_peak) < 120.0,
        "h2 non-readers pinned {:.1} MiB",
        mib(h2_peak)
    );
    assert!(
        mib(all_peak.saturating_sub(h2_peak)) < 30.0,
        "HTTP/1.1 non-readers pinned {:.1} MiB",
        mib(all_peak.saturating_sub(h2_peak))
    );
    // The write-stall limit ends every one of them.
    let gone = tokio::time::timeout(Duration::from_secs(40), async {
        while proxy.metric("token_handler_connections_active").await > 0.0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "stalled connections were closed");
    drop((h2_clients, h1_clients));
}

/// Waits until the process's memory stops growing (no new high for a second) and returns
/// the highest value seen.
async fn plateau(proxy: &child::Running) -> u64 {
    let mut high = proxy.rss();
    let mut since_high = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = proxy.rss();
        if now > high + 256 * 1024 {
            high = now;
            since_high = 0;
        } else {
            since_high += 1;
            if since_high >= 10 {
                break;
            }
        }
    }
    high.max(proxy.rss())
}
