//! Several in-process replicas of the proxy in front of the real `oidc-provider`, sharing cookie
//! keys and (optionally) a Redis: the set-up of the cross-replica tests (`coordination.rs`,
//! `coordination_scenarios`).

use super::echo::Echo;
use super::oidc_provider::{
    DpopOptions, OidcProvider, ProviderOptions, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
};
use super::provider_browser::ProviderBrowser;
use super::resource_server::ResourceServer;
use super::*;
use std::path::PathBuf;
use std::time::Duration;
use token_handler::refresh::{needs_refresh, unix_now};
use token_handler::session::{ReadOutcome, Session};

/// What a cluster is made of. `Default`: three replicas, no Redis, access tokens of 2 s, a
/// rotating provider without Back-Channel Logout, the shared key `KEY1` from the environment.
#[derive(Debug, Clone)]
pub struct Options {
    pub replicas: usize,
    pub redis_url: Option<String>,
    /// The provider's access-token lifetime, in seconds.
    pub access_ttl: u64,
    /// Whether the provider rotates refresh tokens (reusing a consumed one revokes the grant).
    pub rotate: bool,
    /// Extra lines of each section (a key given here must not be among the defaults).
    pub server: String,
    pub idp: String,
    pub session: String,
    /// The `[coordination]` lines after `redis_url` (only with a Redis).
    pub coordination: String,
    /// One cookie-keys file per replica (`TOKEN_HANDLER_COOKIE_KEYS_FILE`); empty: `KEY1` for all.
    pub key_files: Vec<PathBuf>,
    /// A whole `[coordination]` section (Sentinel, Cluster), instead of `redis_url` +
    /// `coordination`.
    pub coordination_section: Option<String>,
    /// More environment variables (Redis credentials).
    pub env: Vec<(&'static str, String)>,
    /// Back-Channel Logout at the provider, to the first replica's
    /// `/auth/backchannel-logout`.
    pub backchannel: bool,
    /// The provider's back-channel logout URI instead (enables Back-Channel Logout on its own):
    /// a capture server, for tests of the provider itself.
    pub backchannel_uri: Option<String>,
    /// Whether the provider exposes its signing key (`OidcProvider::sign`).
    pub expose_key: bool,
    /// How the proxies authenticate as the client.
    pub credential: Credential,
    /// The provider's DPoP and resource options.
    pub dpop: DpopOptions,
    /// Whole sections after the others (`[forward_auth]`).
    pub tail: String,
    /// The upstream is the DPoP resource server (`Some(require_nonce)`) for the audience
    /// `dpop.resource`, instead of the echo server.
    pub resource_server: Option<bool>,
    /// The provider's client must use pushed authorization requests (RFC 9126).
    pub require_par: bool,
}

/// How the proxies authenticate at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `client_secret_basic` with the provider's client secret.
    Secret,
    /// `private_key_jwt` (the provider has no secret for the client), signed with the client
    /// key `kid` (`OidcProvider::client_key`) in a file `TOKEN_HANDLER_CLIENT_KEY_FILE` names,
    /// as a JWK (`jwk: true`) or a PKCS#8 PEM; no secret in the environment.
    KeyFile { kid: &'static str, jwk: bool },
    /// `private_key_jwt` with `idp.client_assertion_file`: an assertion minted by the test (as a
    /// platform would) and written to `Cluster::credential_file`; no secret, no key.
    AssertionFile,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            replicas: 3,
            redis_url: None,
            access_ttl: 2,
            rotate: true,
            server: String::new(),
            idp: "timeout = \"3s\"\n".into(),
            session: String::new(),
            coordination: "wait_timeout = \"2s\"\n".into(),
            key_files: Vec::new(),
            coordination_section: None,
            env: Vec::new(),
            backchannel: false,
            backchannel_uri: None,
            expose_key: false,
            credential: Credential::Secret,
            dpop: DpopOptions::default(),
            resource_server: None,
            tail: String::new(),
            require_par: false,
        }
    }
}

pub struct Cluster {
    pub provider: OidcProvider,
    pub echo: Echo,
    /// The upstream when `Options::resource_server` asked for it.
    pub resource_server: Option<ResourceServer>,
    pub proxies: Vec<Proxy>,
    pub http: reqwest::Client,
    /// The replicas' configuration (the same for all), for more replicas as child processes.
    pub toml: String,
    /// The client key or client assertion file (`Credential::KeyFile`, `AssertionFile`).
    pub credential_file: Option<PathBuf>,
}

/// A fresh path in a directory of this test process's own.
fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "th-cluster-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

impl Cluster {
    /// Three replicas with the defaults, on `redis_url` when given.
    pub async fn start(redis_url: Option<&str>) -> Cluster {
        Cluster::build(Options {
            redis_url: redis_url.map(str::to_string),
            ..Options::default()
        })
        .await
    }

    /// Three replicas with this whole `[coordination]` section and these extra environment
    /// variables, the provider's access tokens living `access_ttl` seconds.
    pub async fn start_with(
        coordination: &str,
        env: &[(&'static str, String)],
        access_ttl: u64,
    ) -> Cluster {
        Cluster::build(Options {
            coordination_section: Some(coordination.to_string()),
            env: env.to_vec(),
            access_ttl,
            ..Options::default()
        })
        .await
    }

    /// The replicas of `options`; the first one's callback is registered at the provider
    /// (logins go there).
    pub async fn build(options: Options) -> Cluster {
        let listeners: Vec<tokio::net::TcpListener> = futures_util::future::join_all(
            (0..options.replicas).map(|_| tokio::net::TcpListener::bind("127.0.0.1:0")),
        )
        .await
        .into_iter()
        .map(|l| l.expect("bind"))
        .collect();
        let first = format!("http://{}", listeners[0].local_addr().expect("addr"));
        let backchannel_logout_uri = match (&options.backchannel_uri, options.backchannel) {
            (Some(uri), _) => Some(uri.clone()),
            (None, true) => Some(format!("{first}/auth/backchannel-logout")),
            (None, false) => None,
        };
        let provider = OidcProvider::start_opts(&ProviderOptions {
            dpop: options.dpop.clone(),
            redirect_uri: format!("{first}/auth/callback"),
            post_logout_redirect_uri: format!("{first}/"),
            access_token_ttl_secs: options.access_ttl,
            rotate: options.rotate,
            backchannel_logout_uri,
            expose_signing_key: options.expose_key,
            private_key_jwt: options.credential != Credential::Secret,
            require_par: options.require_par,
        })
        .await;
        let credential_file = match &options.credential {
            Credential::Secret => None,
            Credential::KeyFile { kid, jwk } => {
                let file = temp_file(&format!("client-key-{kid}"));
                let form = if *jwk { "jwk" } else { "pem" };
                std::fs::write(&file, provider.client_key(kid, form)).expect("write the key");
                Some(file)
            }
            Credential::AssertionFile => {
                let file = temp_file("client-assertion.jwt");
                let assertion = provider.mint_client_assertion("cluster-start", 600);
                std::fs::write(&file, assertion).expect("write the assertion");
                Some(file)
            }
        };
        let client_auth = match (&options.credential, &credential_file) {
            (Credential::Secret, _) => "client_auth = \"client_secret_basic\"".to_string(),
            // A PEM has no `kid` of its own: the config names it (a JWK's own wins).
            (Credential::KeyFile { kid, .. }, _) => {
                format!("client_auth = \"private_key_jwt\"\nclient_key_id = \"{kid}\"")
            }
            (Credential::AssertionFile, Some(file)) => format!(
                "client_auth = \"private_key_jwt\"\nclient_assertion_file = \"{}\"",
                file.display()
            ),
            (Credential::AssertionFile, None) => unreachable!("written above"),
        };
        let echo = Echo::start().await;
        let resource_server = match options.resource_server {
            Some(require_nonce) => Some(
                ResourceServer::start(
                    &provider.issuer,
                    options
                        .dpop
                        .resource
                        .as_deref()
                        .expect("dpop.resource: the audience"),
                    require_nonce,
                )
                .await,
            ),
            None => None,
        };
        let upstream = resource_server
            .as_ref()
            .map_or_else(|| echo.url(), |rs| rs.url().to_string());
        let coordination = match (&options.coordination_section, &options.redis_url) {
            (Some(section), _) => section.clone(),
            (None, Some(url)) => format!(
                "[coordination]\nredis_url = \"{url}\"\n{}",
                options.coordination
            ),
            (None, None) => String::new(),
        };
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
{server}
[upstream]
url = "{upstream}"
client = "{client}"
[idp]
dialect = "oauth2"
issuer = "{issuer}"
client_id = "{OIDC_CLIENT_ID}"
{client_auth}
scope = "openid offline_access profile email"
redirect_uri = "{first}/auth/callback"
post_logout_redirect_uri = "{first}/"
extra_authorize_params = {{ prompt = "consent" }}
{idp}
[session]
refresh_skew = "5s"
{session}
{coordination}
{tail}"#,
            server = options.server,
            upstream = upstream,
            client = upstream_client(),
            issuer = provider.issuer,
            idp = options.idp,
            session = options.session,
            tail = options.tail,
        );
        let mut proxies = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let file = options
                .key_files
                .get(i)
                .map(|p| p.to_string_lossy().into_owned());
            let secret = options.credential == Credential::Secret;
            let key_file = match options.credential {
                Credential::KeyFile { .. } => credential_file.clone(),
                _ => None,
            };
            let env = |name: &str| match (name, &file) {
                ("TOKEN_HANDLER_COOKIE_KEYS_FILE", Some(file)) => Some(file.clone()),
                ("TOKEN_HANDLER_COOKIE_KEYS", None) => Some(KEY1.to_string()),
                ("TOKEN_HANDLER_CLIENT_SECRET", _) if secret => {
                    Some(OIDC_CLIENT_SECRET.to_string())
                }
                ("TOKEN_HANDLER_CLIENT_KEY_FILE", _) => {
                    key_file.as_ref().map(|p| p.to_string_lossy().into_owned())
                }
                _ => options
                    .env
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone()),
            };
            proxies.push(Proxy::start_with_env(listener, &toml, &env).await);
        }
        Cluster {
            provider,
            echo,
            resource_server,
            proxies,
            http: client(),
            toml,
            credential_file,
        }
    }

    /// A browser logged in as the provider's default user.
    pub async fn login(&self) -> Jar {
        self.login_as("oidc-user").await
    }

    /// A browser logged in as `user` (any login id is an account at the test provider), with
    /// a provider session of its own.
    pub async fn login_as(&self, user: &str) -> Jar {
        self.login_in(&ProviderBrowser::new(), user).await
    }

    /// A new proxy session (a fresh jar) logged in as `user` through `browser`: a second login
    /// in the same browser reuses its provider session (the same `sid`), as a second tab would.
    pub async fn login_in(&self, browser: &ProviderBrowser, user: &str) -> Jar {
        let mut jar = Jar::default();
        let r = self
            .http
            .get(format!("{}/auth/login", self.proxies[0].url))
            .send()
            .await
            .expect("login");
        jar.update(&r);
        let callback = browser.login(&self.provider, &location(&r), user).await;
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

    /// The session `jar` carries, opened by the first replica whose keys open it.
    pub fn session(&self, jar: &Jar) -> Session {
        let mut headers = http::HeaderMap::new();
        headers.insert("cookie", jar.header().parse().expect("hv"));
        let mut seen = Vec::new();
        for proxy in &self.proxies {
            let codec = &proxy.app.codec;
            match codec.read(&codec.incoming(&headers), unix_now()) {
                ReadOutcome::Valid { session, .. } => return session,
                other => seen.push(format!("{other:?}")),
            }
        }
        panic!("no session: {seen:?}")
    }

    /// Waits for the access token to fall due (a time window, not an event), as the proxies
    /// decide it (`refresh_skew` 5 s).
    pub async fn wait_for_expiry(&self, jar: &Jar) {
        let s = self.session(jar);
        let due = |now| needs_refresh(s.access_issued_at, s.access_expires_at, now, 5);
        while !due(unix_now()) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One `GET` to replica `replica` with `jar`'s cookies.
    pub async fn get(&self, replica: usize, path: &str, jar: &Jar) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.proxies[replica].url))
            .header("cookie", jar.header())
            .send()
            .await
            .expect("answered")
    }

    /// `POST /auth/logout` on replica `replica` with `jar` (and the CSRF header): 200.
    pub async fn logout(&self, replica: usize, jar: &Jar) {
        let response = self
            .http
            .post(format!("{}/auth/logout", self.proxies[replica].url))
            .header("cookie", jar.header())
            .header("x-csrf", "1")
            .send()
            .await
            .expect("logout");
        assert_eq!(response.status(), 200);
    }

    /// `n` requests at once, round-robin over the replicas; (status, Set-Cookie lines).
    pub async fn storm(&self, jar: &Jar, n: usize) -> Vec<(u16, Vec<String>)> {
        let replicas: Vec<usize> = (0..self.proxies.len()).collect();
        self.storm_on(jar, n, &replicas).await
    }

    /// `n` requests at once, round-robin over `replicas`; (status, Set-Cookie lines).
    pub async fn storm_on(
        &self,
        jar: &Jar,
        n: usize,
        replicas: &[usize],
    ) -> Vec<(u16, Vec<String>)> {
        let mut tasks = Vec::new();
        for i in 0..n {
            let url = format!(
                "{}/api/storm/{i}",
                self.proxies[replicas[i % replicas.len()]].url
            );
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

    /// A metric sample of replica `replica` (0 when absent).
    pub fn metric(&self, replica: usize, sample: &str) -> f64 {
        self.proxies[replica]
            .app
            .metrics
            .encode()
            .lines()
            .find_map(|l| {
                l.strip_prefix(sample)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    }

    /// A metric sample summed over the replicas.
    pub fn count(&self, sample: &str) -> f64 {
        (0..self.proxies.len())
            .map(|i| self.metric(i, sample))
            .sum()
    }

    /// Every refresh outcome and the fallbacks, summed over the replicas (failure messages).
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

    /// `/token` calls the replicas made that the provider answered with new tokens.
    pub fn refreshes(&self) -> f64 {
        self.count(r#"token_handler_refreshes_total{outcome="refreshed"}"#)
    }

    /// Whether `refresh_token` still refreshes at the provider (spends it: a last check).
    pub async fn grant_alive(&self, refresh_token: &str) -> bool {
        self.provider.grant_alive(refresh_token).await
    }
}

/// The jar after the first session `Set-Cookie` lines found in `results`.
pub fn newest(jar: &Jar, results: &[(u16, Vec<String>)]) -> Jar {
    let mut next = jar.clone();
    for line in results.iter().flat_map(|(_, lines)| lines).take(1) {
        next.set(line);
    }
    next
}
