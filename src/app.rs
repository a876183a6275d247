//! Everything a request needs, built once from a validated [`Config`].

use crate::config::Config;
use crate::idp::TokenClient;
use crate::proxy::Upstream;
use crate::refresh::Refresher;
use crate::session::CookieCodec;
use std::sync::Arc;
use tokio_util::task::TaskTracker;
use url::Url;

/// Endpoints of the IdP, from the config or its discovery document.
#[derive(Debug, Clone)]
pub struct IdpEndpoints {
    pub token: Url,
}

/// Shared, immutable-after-start state of the proxy.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub codec: CookieCodec,
    pub refresher: Arc<Refresher>,
    pub upstream: Upstream,
    /// Upgraded connections (WebSocket tunnels), drained on shutdown.
    pub tunnels: TaskTracker,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot build the HTTP client for the IdP: {0}")]
    HttpClient(String),
}

impl App {
    pub fn new(config: Config, endpoints: IdpEndpoints) -> Result<App, StartupError> {
        let http = idp_http_client(&config)?;
        let codec = CookieCodec::new(&config.session, Arc::clone(&config.secrets.cookie_keys));
        let client = TokenClient::new(&config.idp, endpoints.token, config.secrets.client_secret.clone(), http);
        let refresher = Arc::new(Refresher::new(
            client,
            codec.clone(),
            &config.session,
            config.idp.send_scope_on_refresh,
        ));
        Ok(App {
            upstream: Upstream::new(&config.upstream),
            codec,
            refresher,
            tunnels: TaskTracker::new(),
            config,
        })
    }
}

/// The HTTP client for every IdP call: bounded time, no redirects (a token endpoint that
/// redirects is misconfigured, and following it could send a refresh token elsewhere).
pub fn idp_http_client(config: &Config) -> Result<reqwest::Client, StartupError> {
    reqwest::Client::builder()
        .timeout(config.idp.timeout)
        .connect_timeout(config.idp.timeout.min(std::time::Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("token-handler/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| StartupError::HttpClient(e.to_string()))
}
