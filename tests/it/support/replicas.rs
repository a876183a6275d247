//! Three in-process replicas of the proxy sharing cookie keys, in front of the real
//! `oidc-provider` (rotation on; reusing a refresh token revokes the whole grant) and an echo
//! upstream, with whatever `[coordination]` a test gives them: the harness of
//! `coordination.rs` and `coordination_topologies.rs`.

use super::echo::Echo;
use super::oidc_provider::{OidcProvider, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET};
use super::*;
use std::time::Duration;
use token_handler::refresh::{needs_refresh, unix_now};
use token_handler::session::ReadOutcome;

pub struct Replicas {
    pub provider: OidcProvider,
    _echo: Echo,
    pub proxies: Vec<Proxy>,
    pub http: reqwest::Client,
}

impl Replicas {
    /// Three proxies on a standalone Redis at `redis_url` (or none: no coordination).
    pub async fn start(redis_url: Option<&str>) -> Replicas {
        let coordination = redis_url
            .map(|url| format!("[coordination]\nredis_url = \"{url}\"\nwait_timeout = \"2s\"\n"))
            .unwrap_or_default();
        Replicas::start_with(&coordination, &[], 2).await
    }

    /// Three proxies with this `[coordination]` section (TOML) and these extra environment
    /// variables (Redis credentials), the provider's access tokens living `access_ttl` seconds;
    /// the first one's callback is registered at the provider (logins go there).
    pub async fn start_with(
        coordination: &str,
        extra_env: &[(&str, String)],
        access_ttl: u64,
    ) -> Replicas {
        let listeners: Vec<tokio::net::TcpListener> = futures_util::future::join_all(
            (0..3).map(|_| tokio::net::TcpListener::bind("127.0.0.1:0")),
        )
        .await
        .into_iter()
        .map(|l| l.expect("bind"))
        .collect();
        let first = format!("http://{}", listeners[0].local_addr().expect("addr"));
        let provider = OidcProvider::start(
            &format!("{first}/auth/callback"),
            &format!("{first}/"),
            access_ttl,
        )
        .await;
        let echo = Echo::start().await;
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
            _ => extra_env
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone()),
        };
        let mut proxies = Vec::new();
        for listener in listeners {
            proxies.push(Proxy::start_with_env(listener, &toml, &env).await);
        }
        Replicas {
            provider,
            _echo: echo,
            proxies,
            http: client(),
        }
    }

    pub async fn login(&self) -> Jar {
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

    pub fn session(&self, jar: &Jar) -> token_handler::session::Session {
        let mut headers = http::HeaderMap::new();
        headers.insert("cookie", jar.header().parse().expect("hv"));
        let codec = &self.proxies[0].app.codec;
        match codec.read(&codec.incoming(&headers), unix_now()) {
            ReadOutcome::Valid { session, .. } => session,
            other => panic!("no session: {other:?}"),
        }
    }

    /// Waits for the access token to fall due (a time window, not an event).
    pub async fn wait_for_expiry(&self, jar: &Jar) {
        let s = self.session(jar);
        // As the proxies decide it, with the `refresh_skew` of `start_with`.
        let due = |now| needs_refresh(s.access_issued_at, s.access_expires_at, now, 5);
        while !due(unix_now()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `n` requests at once, round-robin over the three proxies; (status, Set-Cookie lines).
    pub async fn storm(&self, jar: &Jar, n: usize) -> Vec<(u16, Vec<String>)> {
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

    pub fn count(&self, sample: &str) -> f64 {
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

    /// Every refresh outcome and the fallbacks, summed over the replicas (for failure messages).
    pub fn outcomes(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        for p in &self.proxies {
            for l in p.app.metrics.encode().lines() {
                if l.starts_with("token_handler_refreshes_total{")
                    || l.starts_with("token_handler_coordination_fallbacks_total")
                {
                    lines.push(l.to_string());
                }
            }
        }
        lines.join("\n")
    }

    pub fn refreshes(&self) -> f64 {
        self.count(r#"token_handler_refreshes_total{outcome="refreshed"}"#)
    }

    pub async fn grant_alive(&self, refresh_token: &str) -> bool {
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

pub fn newest(jar: &Jar, results: &[(u16, Vec<String>)]) -> Jar {
    let mut next = jar.clone();
    for line in results.iter().flat_map(|(_, lines)| lines).take(1) {
        next.set(line);
    }
    next
}
