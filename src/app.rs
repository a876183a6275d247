//! Everything a request needs, built once from a validated [`Config`].

use crate::config::Config;
use crate::ended::EndedSessions;
use crate::idp::IdpClient;
use crate::metrics::Metrics;
use crate::refresh::Refresher;
use crate::routes::Routes;
use crate::session::CookieCodec;
use crate::trace::Traces;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// Shared, immutable-after-start state of the proxy.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub codec: CookieCodec,
    pub metrics: Arc<Metrics>,
    pub idp: Arc<IdpClient>,
    pub refresher: Arc<Refresher>,
    /// OpenTelemetry spans and trace-context propagation (`[telemetry]`).
    pub traces: Traces,
    /// Ended sessions (logout, back-channel, operator), refused whatever copy of their cookies
    /// comes back; shared through Redis with `[coordination]`.
    pub ended: Arc<EndedSessions>,
    /// Where requests go: each route with its own upstream pool.
    pub routes: Routes,
    /// Upgraded connections (WebSocket tunnels), drained on shutdown.
    pub tunnels: TaskTracker,
    /// A tunnel leaves the connection it came on (and its `max_connections` slot): at most
    /// `server.max_connections` tunnels are open besides.
    pub tunnel_slots: Arc<tokio::sync::Semaphore>,
    /// The listener's certificate when TLS is on (swapped when the files change).
    pub tls: Option<Arc<crate::tls::ReloadingCert>>,
    /// Bumped after every change of a mounted file was handled, applied or refused (lets
    /// tests await a reload instead of sleeping).
    pub reloads: tokio::sync::watch::Sender<u64>,
    /// Set when shutdown begins: `/readyz` turns unready at once.
    draining: AtomicBool,
    /// `server.scheduler = "per_core"` with more than one worker: the worker threads that
    /// accepted connections are handed to (`server::workers`).
    pub workers: Option<crate::server::workers::Workers>,
}

/// Why the proxy could not start (after the configuration was accepted).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot start: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot start: {0}")]
    Upstream(#[from] crate::proxy::UpstreamSetupError),
    #[error("cannot start: {0}")]
    Coordination(#[from] crate::coordination::CoordinationSetupError),
    #[error("cannot start: the IdP client: {0}")]
    IdpClient(#[source] reqwest::Error),
}

impl App {
    /// Builds the app and starts IdP discovery in the background when endpoints are left
    /// to discover (must run inside a tokio runtime). Watching mounted files for changes
    /// starts with serving (`server::run`).
    pub fn start(config: Config) -> Result<Arc<App>, StartupError> {
        let app = Arc::new(App::new(config)?);
        if app.idp.metadata().is_none() {
            tokio::spawn(Arc::clone(&app.idp).discover_until_ready());
        }
        if app.ended.shared().is_some() {
            let started = crate::refresh::unix_now();
            tokio::spawn(crate::ended::shared::follow(
                Arc::clone(&app.ended),
                started,
            ));
        }
        Ok(app)
    }

    fn new(config: Config) -> Result<App, StartupError> {
        let http = idp_http_client(&config)?;
        let codec = CookieCodec::new(&config.session, Arc::clone(&config.secrets.cookie_keys));
        let metrics = Arc::new(Metrics::new());
        let tls = match &config.server.tls {
            Some(files) => Some(Arc::new(crate::tls::ReloadingCert::new(
                crate::tls::load_certified_key(&files.cert, &files.key)?,
            ))),
            None => None,
        };
        let traces = Traces::new(config.telemetry.is_some());
        let idp = Arc::new(IdpClient::new(
            &config.idp,
            config.secrets.client_secret.clone(),
            config.secrets.client_key.clone(),
            http,
            Arc::clone(&metrics),
            traces,
        ));
        let coordinator = match &config.coordination {
            Some(c) => Some(Arc::new(crate::coordination::Coordinator::new(
                c,
                Arc::clone(&metrics),
                traces,
            )?)),
            None => None,
        };
        let shared_ended = match &config.coordination {
            Some(c) => Some(Arc::new(crate::ended::shared::Shared::new(
                c,
                config.session.lifetime,
                Arc::clone(&metrics),
            )?)),
            None => None,
        };
        let ended = Arc::new(EndedSessions::new(
            config.session.max_ended_sessions,
            shared_ended,
            Arc::clone(&metrics),
        ));
        let refresher = Arc::new(Refresher::new(
            Arc::clone(&idp),
            Arc::clone(&metrics),
            codec.clone(),
            &config.session,
            config.idp.send_scope_on_refresh,
            coordinator,
        ));
        Ok(App {
            routes: Routes::new(&config)?,
            codec,
            metrics,
            idp,
            refresher,
            traces,
            ended,
            tunnels: TaskTracker::new(),
            tunnel_slots: Arc::new(tokio::sync::Semaphore::new(config.server.max_connections)),
            tls,
            reloads: tokio::sync::watch::channel(0).0,
            draining: AtomicBool::new(false),
            workers: match config.server.scheduler {
                crate::config::Scheduler::PerCore => {
                    crate::server::workers::Workers::new(config.server.workers())
                }
                crate::config::Scheduler::WorkStealing => None,
            },
            config,
        })
    }
}

impl App {
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}

/// The HTTP client for every IdP call: bounded time, no redirects (a token endpoint that
/// redirects is misconfigured, and following it could send a refresh token elsewhere).
pub fn idp_http_client(config: &Config) -> Result<reqwest::Client, StartupError> {
    let mut builder = reqwest::Client::builder()
        .timeout(config.idp.timeout)
        .connect_timeout(config.idp.timeout.min(std::time::Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("token-handler/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.idp.ca_file {
        for cert in crate::tls::load_ca_file(path)? {
            let cert = reqwest::Certificate::from_der(&cert).map_err(StartupError::IdpClient)?;
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(StartupError::IdpClient)
}
