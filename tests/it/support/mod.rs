//! Test harness: the real proxy on 127.0.0.1:0 in front of the TokenIDP emulator and an echo
//! upstream, plus a tiny browser-like cookie jar.

pub mod child;
pub mod cluster;
pub mod echo;
pub mod h2raw;
mod harness;
pub mod logs;
pub mod nginx;
pub mod nginx_gateway;
pub mod node;
pub mod oidc_provider;
pub mod otlp;
pub mod promql;
pub mod provider_browser;
pub mod redis_cluster;
pub mod redis_nodes;
pub mod redis_sentinel;
pub mod redis_server;
pub mod resource_server;

use futures_util::FutureExt;
pub use harness::Harness;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use token_handler::app::App;
use token_handler::config::Config;
use token_handler::demo::tokenidp::{Issued, Options, ResponseStyle, TokenIdp};
use token_handler::refresh::unix_now;
use token_handler::session::Session;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const KEY1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const KEY2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
pub const CLIENT_ID: &str = "tokenidp-react-dev";
pub const CLIENT_SECRET: &str = "dev-secret";
pub const SCOPE: &str = "openid profile email offline_access api.read";
pub const COOKIE: &str = "__Host-th_session";

/// Which IdP wire format a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// TokenIDP, answering in the guide's `data`/camelCase shape.
    TokenIdpGuide,
    /// TokenIDP, answering in the server's `value`/snake_case shape.
    TokenIdpServer,
    /// Standard OAuth 2.0.
    OAuth2,
}

impl Flavor {
    pub fn dialect(self) -> &'static str {
        match self {
            Flavor::OAuth2 => "oauth2",
            _ => "tokenidp",
        }
    }
    pub fn style(self) -> ResponseStyle {
        match self {
            Flavor::TokenIdpGuide => ResponseStyle::Guide,
            Flavor::TokenIdpServer => ResponseStyle::Server,
            Flavor::OAuth2 => ResponseStyle::OAuth2,
        }
    }
}

/// Config text: defaults for tests plus `tweaks` as (section, "key = value") lines; a tweak
/// replaces the default of the same key. `forward_auth`, `coordination` and `telemetry` are
/// written only when tweaked; lines of
/// the pseudo-section `tail` go last, as written (`[[routes]]` tables).
pub fn config_toml(
    idp_url: &str,
    upstream_url: &str,
    dialect: &str,
    tweaks: &[(&str, &str)],
) -> String {
    let mut defaults: Vec<(&str, String)> = vec![
        ("server", "listen = \"127.0.0.1:0\"".into()),
        ("server", "shutdown_grace = \"5s\"".into()),
        ("upstream", format!("url = \"{upstream_url}\"")),
        ("upstream", "connect_timeout = \"1s\"".into()),
        ("upstream", "response_header_timeout = \"2s\"".into()),
        ("upstream", format!("client = \"{}\"", upstream_client())),
        ("idp", format!("dialect = \"{dialect}\"")),
        ("idp", format!("issuer = \"{idp_url}\"")),
        ("idp", format!("client_id = \"{CLIENT_ID}\"")),
        ("idp", "client_auth = \"basic\"".into()),
        ("idp", format!("scope = \"{SCOPE}\"")),
        ("idp", "timeout = \"2s\"".into()),
        (
            "idp",
            "redirect_uri = \"http://127.0.0.1/auth/callback\"".into(),
        ),
        ("session", "refresh_skew = \"5s\"".into()),
    ];
    if let Some(http1) = http1_server() {
        defaults.push(("server", format!("http1 = \"{http1}\"")));
    }
    if let Some(scheduler) = scheduler() {
        defaults.push(("server", format!("scheduler = \"{scheduler}\"")));
        defaults.push(("server", "worker_threads = 2".into()));
    }
    let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_string();
    let mut text = String::new();
    for section in [
        "server",
        "upstream",
        "idp",
        "session",
        "proxy",
        "csrf",
        "forward_auth",
        "coordination",
        "telemetry",
    ] {
        let tweaked: Vec<&str> = tweaks
            .iter()
            .filter(|(s, _)| *s == section)
            .map(|(_, l)| *l)
            .collect();
        if matches!(section, "forward_auth" | "coordination" | "telemetry") && tweaked.is_empty() {
            continue;
        }
        text.push_str(&format!("[{section}]\n"));
        for (_, line) in defaults.iter().filter(|(s, _)| *s == section) {
            if !tweaked.iter().any(|t| key(t) == key(line)) {
                text.push_str(line);
                text.push('\n');
            }
        }
        for line in tweaked {
            text.push_str(line);
            text.push('\n');
        }
    }
    for (_, line) in tweaks.iter().filter(|(s, _)| *s == "tail") {
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// The upstream client the tests' proxies use: `TOKEN_HANDLER_TEST_UPSTREAM_CLIENT` (`hyper` or
/// `direct`; `scripts/test.sh` runs the proxy suites with each), else `direct`, the default.
pub fn upstream_client() -> String {
    std::env::var("TOKEN_HANDLER_TEST_UPSTREAM_CLIENT").unwrap_or_else(|_| "direct".into())
}

/// Who reads the tests' proxies' HTTP/1.1 requests: `TOKEN_HANDLER_TEST_HTTP1` (`direct` or
/// `hyper`; `scripts/test.sh` runs the proxy suites with each), else the default, `direct`.
pub fn http1_server() -> Option<String> {
    std::env::var("TOKEN_HANDLER_TEST_HTTP1").ok()
}

/// The scheduler the tests' proxies use: `TOKEN_HANDLER_TEST_SCHEDULER` (`per_core`, with two
/// workers: `scripts/test.sh` runs the proxy suites with it once more), else the default.
pub fn scheduler() -> Option<String> {
    std::env::var("TOKEN_HANDLER_TEST_SCHEDULER").ok()
}

pub fn env(keys: &str) -> impl Fn(&str) -> Option<String> {
    let keys = keys.to_string();
    move |name: &str| match name {
        "TOKEN_HANDLER_COOKIE_KEYS" => Some(keys.clone()),
        "TOKEN_HANDLER_CLIENT_SECRET" => Some(CLIENT_SECRET.to_string()),
        _ => None,
    }
}

/// The real proxy, served in-process on 127.0.0.1:0.
pub struct Proxy {
    pub addr: SocketAddr,
    pub url: String,
    /// `http://<forward-auth listener>` when `[forward_auth]` is configured (bound on
    /// 127.0.0.1:0 whatever the config says).
    pub verify_url: Option<String>,
    pub app: Arc<App>,
    /// Held, never sent: dropping the proxy drops it, which starts the server's drain.
    _shutdown: oneshot::Sender<()>,
}

impl Proxy {
    pub async fn start(toml: &str, keys: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        Proxy::start_on(listener, toml, keys).await
    }

    /// Starts on a listener bound beforehand (when the IdP must know the callback URL first),
    /// and returns once the IdP's metadata is known.
    pub async fn start_on(listener: TcpListener, toml: &str, keys: &str) -> Proxy {
        Proxy::start_with_env(listener, toml, &env(keys)).await
    }

    /// Like [`Proxy::start_on`] with secrets from `env`.
    pub async fn start_with_env(
        listener: TcpListener,
        toml: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Proxy {
        let config = Config::from_toml(toml, env).expect("valid test config");
        let app = App::start(config).expect("app");
        app.idp.ready().await;
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let rx = rx.shared();
        let mut verify_url = None;
        if app.config.forward_auth.is_some() {
            let verify = TcpListener::bind("127.0.0.1:0").await.expect("bind verify");
            verify_url = Some(format!("http://{}", verify.local_addr().expect("addr")));
            let rx = rx.clone();
            tokio::spawn(token_handler::server::run_forward_auth(
                verify,
                Arc::clone(&app),
                async {
                    let _ = rx.await;
                },
            ));
        }
        tokio::spawn(token_handler::server::run(
            listener,
            Arc::clone(&app),
            async {
                let _ = rx.await;
            },
        ));
        Proxy {
            addr,
            url: format!("http://{addr}"),
            verify_url,
            app,
            _shutdown: tx,
        }
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .expect("ascii")
        .to_string()
}

pub async fn start_idp(style: ResponseStyle) -> TokenIdp {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind idp");
    let options = Options {
        style,
        ..Options::default()
    };
    TokenIdp::start(listener, options)
        .await
        .expect("idp starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Seals a session for `issued` with the proxy's cookie codec, as a login would.
pub fn seal(app: &App, issued: &Issued, expired: bool) -> Jar {
    let now = unix_now();
    let (issued_at, expires_at) = if expired {
        (now - 400, now - 100)
    } else {
        (now, now + issued.expires_in)
    };
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), "usr:42".into());
    claims.insert("email".into(), "zoë@example.com".into());
    let session = Session {
        // A fresh id per session, as a login makes: logging one out must not end the others.
        id: token_handler::crypto::random_token(12),
        refresh_token: token_handler::secret::RefreshToken::new(issued.refresh_token.clone()),
        access_token: token_handler::secret::AccessToken::new(issued.access_token.clone()),
        access_expires_at: expires_at,
        access_issued_at: issued_at,
        scope: SCOPE.into(),
        claims: claims.into(),
        id_token: None,
        started_at: now,
        sub: None,
        sid: None,
        last_used_at: 0,
        dpop: None,
        dpop_bound: false,
    };
    let mut jar = Jar::default();
    for line in app.codec.seal(&session, now) {
        jar.set(line.to_str().expect("ascii"));
    }
    jar
}

/// A minimal browser cookie store for one origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Jar(pub BTreeMap<String, String>);

impl Jar {
    /// Applies one `Set-Cookie` line (Max-Age=0 deletes).
    pub fn set(&mut self, line: &str) {
        let pair = line.split(';').next().expect("pair");
        let (name, value) = pair.split_once('=').expect("name=value");
        let deleted = line
            .split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("Max-Age=0"));
        if deleted {
            self.0.remove(name.trim());
        } else {
            self.0
                .insert(name.trim().to_string(), value.trim().to_string());
        }
    }

    /// Applies every `Set-Cookie` of a response.
    pub fn update(&mut self, response: &reqwest::Response) {
        for line in set_cookies(response) {
            self.set(&line);
        }
    }

    pub fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub fn session(&self) -> Option<&String> {
        self.0.get(COOKIE)
    }
}

pub fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect()
}

/// The `Set-Cookie` lines for the session cookie (base name and chunks) only.
pub fn session_set_cookies(response: &reqwest::Response) -> Vec<String> {
    set_cookies(response)
        .into_iter()
        .filter(|l| l.starts_with(COOKIE))
        .collect()
}

/// Sends raw bytes to `addr`, returns what came back until the peer closed (or 2 s passed).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        stream.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

pub async fn json(response: reqwest::Response) -> serde_json::Value {
    response.json().await.expect("JSON body")
}
