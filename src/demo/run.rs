//! `token-handler demo` (DEVELOPMENT ONLY): the TokenIDP emulator with a login page, the demo
//! API with its SPA, and the real proxy in front, in one process on loopback.
//!
//! The app is served as `http://localhost:PORT` and the IdP as `http://127.0.0.1:PORT`: two
//! different *sites*, so the login's cross-site redirect behaves as in production (SameSite).

use super::api;
use super::tokenidp::{Client, LoginMode, Options, TokenIdp};
use crate::app::App;
use crate::config::Config;
use crate::crypto::KeyRing;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;

/// The emulator's demo client.
const CLIENT_ID: &str = "tokenidp-react-dev";
const CLIENT_SECRET: &str = "dev-secret";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the proxy listens; loopback only.
    pub listen: SocketAddr,
    /// Lifetime of the emulator's access tokens (short, so refreshes are visible).
    pub access_token_ttl: Duration,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo binds loopback only (its IdP is a development emulator); got {0}")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Startup(#[from] crate::app::StartupError),
}

/// Runs the demo until `shutdown` resolves.
pub async fn run(
    options: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DemoError> {
    if !options.listen.ip().is_loopback() {
        return Err(DemoError::NotLoopback(options.listen));
    }
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| DemoError::Bind {
            addr: options.listen,
            source,
        })?;
    let port = listener.local_addr()?.port();
    let app_url = format!("http://localhost:{port}");

    let idp = TokenIdp::start(
        TcpListener::bind("127.0.0.1:0").await?,
        Options {
            access_token_ttl: options.access_token_ttl,
            login: LoginMode::Form,
            clients: vec![Client {
                client_id: CLIENT_ID.into(),
                secret: Some(CLIENT_SECRET.into()),
                redirect_uris: vec![format!("{app_url}/auth/callback")],
                post_logout_redirect_uris: vec![format!("{app_url}/")],
                ..Client::default()
            }],
            ..Options::default()
        },
    )
    .await?;
    let api_listener = TcpListener::bind("127.0.0.1:0").await?;
    let api_url = format!("http://{}", api_listener.local_addr()?);
    tokio::spawn(api::serve(api_listener));

    let toml = format!(
        r#"
[server]
listen = "{listen}"
shutdown_grace = "2s"
[upstream]
url = "{api_url}"
[idp]
dialect = "tokenidp"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_auth = "basic"
scope = "openid profile email offline_access api.read"
redirect_uri = "{app_url}/auth/callback"
post_logout_redirect_uri = "{app_url}/"
[session]
refresh_skew = "2s"
[proxy]
protected_paths = ["/api/"]
"#,
        listen = options.listen,
        issuer = idp.url(),
    );
    // Fresh keys each run: the demo's sessions end with it.
    let keys = KeyRing::generate_spec();
    let env = move |name: &str| match name {
        "TOKEN_HANDLER_COOKIE_KEYS" => Some(keys.clone()),
        "TOKEN_HANDLER_CLIENT_SECRET" => Some(CLIENT_SECRET.to_string()),
        _ => None,
    };
    let config = Config::from_toml(&toml, &env)?;
    let app = App::start(config)?;
    app.idp.ready().await;

    println!(
        "\n  token-handler demo\n\n  Open {app_url} in a browser and log in as demo / demo.\n\n  \
         !! The identity provider at {} is a DEVELOPMENT emulator of TokenIDP: it signs with\n  \
         !! a key published in the source tree. Never use it for anything real.\n\n  \
         Access tokens live {}s, so you can watch the proxy refresh them. Ctrl-C stops.\n",
        idp.url(),
        options.access_token_ttl.as_secs(),
    );
    let result = crate::server::run(listener, app, shutdown).await;
    idp.shutdown().await;
    Ok(result?)
}
