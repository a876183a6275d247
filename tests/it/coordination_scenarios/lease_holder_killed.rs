//! The replica holding the refresh lease killed with SIGKILL in the middle of its `/token` call:
//! real child processes (the binary), one Redis, the real `oidc-provider` behind a gate that
//! holds the provider's answer, so the kill lands after the provider has rotated the token and
//! before the replica has the new one. README ("Many replicas", last point): the new refresh
//! token is lost with the killed replica; the lease expires after `lease_ttl`; the next refresh
//! spends the old token again, and a provider that revokes on reuse (oidc-provider) ends the
//! session. (The other half, a provider with a reuse grace where the session goes on, has no
//! test provider here: oidc-provider has no such leeway, the TokenIDP emulator refuses reuse.)

use super::{clears_session, redis_key};
use crate::support::child::Running;
use crate::support::cluster::{Cluster, Options};
use crate::support::oidc_provider::OIDC_CLIENT_SECRET;
use crate::support::redis_server::RedisServer;
use crate::support::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP relay in front of the provider's token endpoint. Requests pass at once (the provider
/// acts on them); once armed, the next answer is kept here, never relayed: the replica that
/// asked sees a slow IdP, and the test sees what the provider issued.
#[derive(Clone)]
struct Gate {
    addr: SocketAddr,
    target: Arc<OnceLock<SocketAddr>>,
    armed: Arc<AtomicBool>,
    held: watch::Sender<Vec<u8>>,
}

impl Gate {
    async fn start() -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind gate");
        let gate = Gate {
            addr: listener.local_addr().expect("addr"),
            target: Arc::default(),
            armed: Arc::default(),
            held: watch::channel(Vec::new()).0,
        };
        let server = gate.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(server.clone().relay(client));
            }
        });
        gate
    }

    async fn relay(self, client: TcpStream) {
        let target = *self.target.get().expect("the gate's target is set");
        let Ok(upstream) = TcpStream::connect(target).await else {
            return;
        };
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut upstream_rx, mut upstream_tx) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_rx, &mut upstream_tx).await;
        });
        let mut holding = false;
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = upstream_rx.read(&mut buf).await {
            holding = holding || self.armed.swap(false, Ordering::SeqCst);
            if holding {
                self.held.send_modify(|h| h.extend_from_slice(&buf[..n]));
            } else if client_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }

    /// Waits (bounded) for the whole held answer; the JSON body.
    async fn held_answer(&self) -> serde_json::Value {
        let mut rx = self.held.subscribe();
        let body = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let complete = {
                    let held = rx.borrow_and_update();
                    let text = String::from_utf8_lossy(&held);
                    text.split_once("\r\n\r\n")
                        .and_then(|(_, body)| serde_json::from_str(body).ok())
                };
                if let Some(body) = complete {
                    return body;
                }
                rx.changed().await.expect("gate alive");
            }
        })
        .await
        .expect("the provider answered the held /token call");
        body
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_holder_killed_mid_token_call_loses_the_rotation_and_the_session_ends() {
    let redis = RedisServer::start().await;
    let gate = Gate::start().await;
    // One in-process replica only for the login (its callback is the registered one); the
    // replicas under test are three child processes with the same configuration.
    let c = Cluster::build(Options {
        replicas: 1,
        redis_url: Some(redis.url()),
        server: "admin_listen = \"127.0.0.1:0\"\n".into(),
        idp: format!(
            "timeout = \"2s\"\ntoken_endpoint = \"http://{}/token\"\n",
            gate.addr
        ),
        // The lease outlives one /token call (2 s) by 1 s; the survivors wait past it.
        coordination: "lease_ttl = \"3s\"\nwait_timeout = \"6s\"\n".into(),
        ..Options::default()
    })
    .await;
    let issuer: url::Url = c.provider.issuer.parse().expect("issuer");
    let target = format!("127.0.0.1:{}", issuer.port().expect("port"));
    gate.target
        .set(target.parse().expect("addr"))
        .expect("target set once");
    let jar = c.login().await;
    let old = c.session(&jar);

    let env = [
        ("TOKEN_HANDLER_COOKIE_KEYS", KEY1),
        ("TOKEN_HANDLER_CLIENT_SECRET", OIDC_CLIENT_SECRET),
    ];
    let holder = Running::start_with_env(&c.toml, &env).await;
    let survivors = [
        Running::start_with_env(&c.toml, &env).await,
        Running::start_with_env(&c.toml, &env).await,
    ];
    c.wait_for_expiry(&jar).await;

    // Only the first replica gets a request at expiry: it takes the lease and calls /token.
    gate.armed.store(true, Ordering::SeqCst);
    let url = format!("http://{}/api/first", holder.addr);
    let (http, cookie) = (c.http.clone(), jar.header());
    let first = tokio::spawn(async move { http.get(url).header("cookie", cookie).send().await });
    let issued = gate.held_answer().await;
    let lost_rt = issued["refresh_token"]
        .as_str()
        .expect("rotated")
        .to_string();
    assert_ne!(lost_rt, old.refresh_token.expose(), "the provider rotated");
    let mut conn = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let lease: Option<String> = redis::cmd("GET")
        .arg(redis_key(old.refresh_token.expose(), "lease"))
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert!(lease.is_some(), "the first replica holds the lease");

    // SIGKILL while its /token call waits for the (held) answer.
    let killed = Instant::now();
    holder.sigkill();
    assert!(
        first.await.expect("task").is_err(),
        "its client saw no answer"
    );
    let result: Option<String> = redis::cmd("GET")
        .arg(redis_key(old.refresh_token.expose(), "result"))
        .query_async(&mut conn)
        .await
        .expect("GET");
    assert!(result.is_none(), "nobody has the new tokens");

    // The browser retries on the survivors, both at once, with the only cookie it has.
    let answers = futures_util::future::join_all(survivors.iter().map(|s| {
        let url = format!("http://{}/api/retry", s.addr);
        let (http, cookie) = (c.http.clone(), jar.header());
        async move {
            let r = http.get(url).header("cookie", cookie).send().await;
            let r = r.expect("a survivor answered");
            (r.status().as_u16(), clears_session(&r), killed.elapsed())
        }
    }))
    .await;
    let mut rejected = 0.0;
    let mut refreshed = 0.0;
    for s in &survivors {
        rejected += s
            .metric(r#"token_handler_refreshes_total{outcome="rejected"}"#)
            .await;
        refreshed += s
            .metric(r#"token_handler_refreshes_total{outcome="refreshed"}"#)
            .await;
    }
    for (i, (status, cleared, after)) in answers.iter().enumerate() {
        println!(
            "lease holder SIGKILLed mid /token call (lease_ttl 3 s): survivor {} answered {status} \
             after {} ms, cookie cleared: {cleared}",
            i + 1,
            after.as_millis()
        );
    }
    let lost_alive = c.provider.active(&lost_rt).await;
    println!(
        "replays of the spent refresh token by the survivors: {rejected}; the lost refresh token \
         still active at the provider: {lost_alive}"
    );

    // The documented behaviour, precisely: the survivors wait out the lease (no second /token
    // call while it is held), then spend the old token again; the provider sees the reuse and
    // revokes the grant, so the session ends (401 login_required, cookie cleared) on both.
    for (status, cleared, after) in &answers {
        assert_eq!(*status, 401);
        assert!(cleared, "the ended session's cookie is cleared");
        // The lease had more than 2 s left (taken, or renewed every lease_ttl / 3, less than
        // 1 s before the kill): nobody called /token before it expired.
        assert!(*after > Duration::from_millis(1900), "{after:?}");
        // Then one /token call each, well within wait_timeout: no hang.
        assert!(*after < Duration::from_secs(6), "{after:?}");
    }
    assert!((1.0..=2.0).contains(&rejected), "{rejected} replays");
    assert_eq!(refreshed, 0.0, "nobody got new tokens");
    assert!(
        !lost_alive,
        "the rotated token, lost with the killed replica, is revoked with the grant"
    );
    assert!(!c.provider.active(old.refresh_token.expose()).await);
}
