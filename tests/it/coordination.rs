//! Many replicas, one refresh: three proxies sharing keys and a real Redis, in front of the real
//! oidc-provider (rotation on; reusing a refresh token revokes the whole grant).

use crate::support::echo::Echo;
use crate::support::oidc_provider::{OidcProvider, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET};
use crate::support::redis_server::RedisServer;
use crate::support::*;
use std::time::Duration;
use token_handler::refresh::unix_now;
use token_handler::session::ReadOutcome;

struct Cluster {
    provider: OidcProvider,
    _echo: Echo,
    proxies: Vec<Proxy>,
    http: reqwest::Client,
}

impl Cluster {
    /// Three proxies; the first one's callback is registered at the provider (logins go there).
    async fn start(redis_url: Option<&str>) -> Cluster {
        let listeners: Vec<tokio::net::TcpListener> = futures_util::future::join_all(
            (0..3).map(|_| tokio::net::TcpListener::bind("127.0.0.1:0")),
        )
        .await
        .into_iter()
        .map(|l| l.expect("bind"))
        .collect();
        let first = format!("http://{}", listeners[0].local_addr().expect("addr"));
        let provider =
            OidcProvider::start(&format!("{first}/auth/callback"), &format!("{first}/"), 2).await;
        let echo = Echo::start().await;
        let coordination = redis_url
            .map(|url| format!("[coordination]\nredis_url = \"{url}\"\nwait_timeout = \"2s\"\n"))
            .unwrap_or_default();
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
[upstream]
url = "{upstream}"
[idp]
dialect = "oauth2"
timeout = "3s"
issuer = "{issuer}"
client_id = "{OIDC_CLIENT_ID}"
client_auth = "client_secret_basic"
scope = "openid offline_access profile email"
redirect_uri = "{first}/auth/callback"
extra_authorize_params = {{ prompt = "consent" }}
[session]
refresh_skew = "5s"
{coordination}"#,
            upstream = echo.url(),
            issuer = provider.issuer,
        );
        let env = |name: &str| match name {
            "TOKEN_HANDLER_COOKIE_KEYS" => Some(KEY1.to_string()),
            "TOKEN_HANDLER_CLIENT_SECRET" => Some(OIDC_CLIENT_SECRET.to_string()),
            _ => None,
        };
        let mut proxies = Vec::new();
        for listener in listeners {
            proxies.push(Proxy::start_with_env(listener, &toml, &env).await);
        }
        Cluster {
            provider,
            _echo: echo,
            proxies,
            http: client(),
        }
    }

    async fn login(&self) -> Jar {
        let mut jar = Jar::default();
        let r = self
            .http
            .get(format!("{}/auth/login", self.proxies[0].url))
            .send()
            .await
            .expect("login");
        jar.update(&r);
        let callback = self.provider.login(&location(&r)).await;
        let r = self
            .http
            .get(&callback)
            .header("cookie", jar.header())
            .send()
            .await
            .expect("callback");
        assert_eq!(r.status(), 200);
        jar.update(&r);
        jar
    }

    fn session(&self, jar: &Jar) -> token_handler::session::Session {
        let mut headers = http::HeaderMap::new();
        headers.insert("cookie", jar.header().parse().expect("hv"));
        let codec = &self.proxies[0].app.codec;
        match codec.read(&codec.incoming(&headers), unix_now()) {
            ReadOutcome::Valid { session, .. } => session,
            other => panic!("no session: {other:?}"),
        }
    }

    /// Waits for the access token to fall due (a time window, not an event).
    async fn wait_for_expiry(&self, jar: &Jar) {
        let s = self.session(jar);
        let due = s.access_expires_at - (s.access_expires_at - s.access_issued_at) / 2;
        while unix_now() < due {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `n` requests at once, round-robin over the three proxies; (status, Set-Cookie lines).
    async fn storm(&self, jar: &Jar, n: usize) -> Vec<(u16, Vec<String>)> {
        let mut tasks = Vec::new();
        for i in 0..n {
            let url = format!("{}/api/storm/{i}", self.proxies[i % 3].url);
            let (http, cookie) = (self.http.clone(), jar.header());
            tasks.push(tokio::spawn(async move {
                let r = http
                    .get(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .expect("answered");
                (r.status().as_u16(), session_set_cookies(&r))
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("task"));
        }
        out
    }

    fn count(&self, sample: &str) -> f64 {
        self.proxies
            .iter()
            .map(|p| {
                p.app
                    .metrics
                    .encode()
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix(sample)
                            .and_then(|v| v.trim().parse::<f64>().ok())
                    })
                    .unwrap_or(0.0)
            })
            .sum()
    }

    fn refreshes(&self) -> f64 {
        self.count(r#"token_handler_refreshes_total{outcome="refreshed"}"#)
    }

    async fn grant_alive(&self, refresh_token: &str) -> bool {
        let r = self
            .http
            .post(format!("{}/token", self.provider.issuer))
            .basic_auth(OIDC_CLIENT_ID, Some(OIDC_CLIENT_SECRET))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .expect("token endpoint");
        r.status() == 200
    }
}

fn newest(jar: &Jar, results: &[(u16, Vec<String>)]) -> Jar {
    let mut next = jar.clone();
    for line in results.iter().flat_map(|(_, lines)| lines).take(1) {
        next.set(line);
    }
    next
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_at_expiry_make_one_token_call_and_keep_the_grant() {
    let redis = RedisServer::start().await;
    let c = Cluster::start(Some(&redis.url())).await;
    let jar = c.login().await;
    let old = c.session(&jar);
    c.wait_for_expiry(&jar).await;
    let results = c.storm(&jar, 300).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "300 successes");
    assert_eq!(
        c.refreshes(),
        1.0,
        "exactly one /token call across the three replicas"
    );
    assert_eq!(
        c.count(r#"token_handler_refreshes_total{outcome="remote"}"#),
        2.0,
        "the other two used its result"
    );
    assert_eq!(c.count("token_handler_coordination_fallbacks_total"), 0.0);

    // Redis holds no token: keys are keyed hashes, values sealed.
    let jar = newest(&jar, &results);
    let new = c.session(&jar);
    let dump = redis.dump().await;
    assert!(!dump.is_empty(), "the result is shared through Redis");
    for (key, value) in &dump {
        for token in [
            old.refresh_token.expose(),
            old.access_token.expose(),
            new.refresh_token.expose(),
            new.access_token.expose(),
        ] {
            assert!(
                !key.contains(token) && !value.contains(token),
                "a token reached Redis"
            );
        }
    }

    // The grant survived: a further refresh works.
    c.wait_for_expiry(&jar).await;
    let r = c
        .http
        .get(format!("{}/api/after", c.proxies[1].url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    assert_eq!(c.refreshes(), 2.0);
    let mut latest = jar.clone();
    latest.update(&r);
    assert!(
        c.grant_alive(c.session(&latest).refresh_token.expose())
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_coordination_the_same_storm_loses_the_grant() {
    let c = Cluster::start(None).await;
    let jar = c.login().await;
    c.wait_for_expiry(&jar).await;
    let results = c.storm(&jar, 300).await;
    // Each replica spent the same refresh token: the provider saw reuse and revoked the grant.
    assert!(c.refreshes() + c.count(r#"token_handler_refreshes_total{outcome="rejected"}"#) >= 2.0);
    assert!(
        results.iter().any(|(s, _)| *s == 401),
        "some replica's refresh was refused"
    );
    let (_, lines) = results
        .iter()
        .find(|(s, lines)| *s == 200 && !lines.is_empty())
        .expect("the first replica's refresh succeeded");
    let mut jar = jar.clone();
    for line in lines {
        jar.set(line);
    }
    assert!(
        !c.grant_alive(c.session(&jar).refresh_token.expose()).await,
        "the whole grant is revoked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_falls_back_and_coordination_resumes_after_restart() {
    let mut redis = RedisServer::start().await;
    let c = Cluster::start(Some(&redis.url())).await;
    let jar = c.login().await;

    redis.stop();
    c.wait_for_expiry(&jar).await;
    let started = std::time::Instant::now();
    let r = c
        .http
        .get(format!("{}/api/a", c.proxies[1].url))
        .header("cookie", jar.header())
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200, "Redis down: the request still succeeds");
    // Redis is waited for up to `wait_timeout` (2 s here): a pause is not an outage.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "bounded wait, no hang"
    );
    assert!(c.count("token_handler_coordination_fallbacks_total") >= 1.0);
    let mut jar = jar.clone();
    jar.update(&r);

    redis.restart().await;
    // The first refresh after the restart may still find the old connection broken; the
    // connection manager reconnects. From the next cycle on, replicas coordinate again.
    for _ in 0..3 {
        c.wait_for_expiry(&jar).await;
        let fallbacks = c.count("token_handler_coordination_fallbacks_total");
        let refreshes = c.refreshes();
        let results = c.storm(&jar, 30).await;
        assert!(results.iter().all(|(s, _)| *s == 200));
        jar = newest(&jar, &results);
        if c.count("token_handler_coordination_fallbacks_total") == fallbacks {
            assert_eq!(
                c.refreshes(),
                refreshes + 1.0,
                "one /token call for three replicas again"
            );
            return;
        }
    }
    panic!("coordination did not resume after Redis came back");
}
