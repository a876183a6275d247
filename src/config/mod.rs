//! Configuration: one TOML file plus secrets from the environment, checked once at start-up.
//!
//! `load` reads the file, `validate` turns the raw sections into the typed [`Config`] and
//! collects *every* problem before failing, so an operator fixes a config in one round trip.
//! Secrets never come from the TOML file (it lands in ConfigMaps and repositories): only from
//! `TOKEN_HANDLER_CLIENT_SECRET[_FILE]`, `TOKEN_HANDLER_CLIENT_KEY[_FILE]`,
//! `TOKEN_HANDLER_COOKIE_KEYS[_FILE]` and the Redis ones
//! (`TOKEN_HANDLER_REDIS_*`, see `redis_nodes.rs`).

mod client_auth;
mod coordination;
mod csrf;
mod forward_auth;
mod idp;
mod log;
mod par;
mod proxy;
mod raw;
mod redis_nodes;
pub mod report;
mod routes;
pub mod secrets;
mod server;
mod session;
mod telemetry;
mod upstream;
mod validate;

use crate::client_key::ClientKey;
use crate::crypto::KeyRing;
use crate::secret::ClientSecret;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use coordination::CoordinationConfig;
pub use csrf::CsrfConfig;
pub use forward_auth::{ForwardAuthConfig, Gateway};
pub use idp::{AssertionAudience, ClientAuth, Dialect, IdpConfig, PushedAuthorization};
pub use log::{LogConfig, LogFormat};
pub use proxy::{BrowserAuthorization, ProxyConfig};
pub use redis_nodes::{RedisAuth, RedisTopology};
pub use routes::{Access, RouteConfig};
pub use secrets::{CLIENT_KEY_ENV, CLIENT_SECRET_ENV, COOKIE_KEYS_ENV};
pub use server::{Http1Server, Scheduler, ServerConfig, TlsFiles};
pub use session::{SameSite, SessionConfig};
pub use telemetry::{OtlpProtocol, TelemetryConfig};
pub use upstream::{UpstreamClient, UpstreamConfig};

/// Every problem found in a configuration, one line each.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// The validated configuration. `Debug` is safe to print: secrets are redacted newtypes.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub idp: IdpConfig,
    pub session: SessionConfig,
    pub proxy: ProxyConfig,
    pub csrf: CsrfConfig,
    pub log: LogConfig,
    pub coordination: Option<CoordinationConfig>,
    /// What the proxy forwards, and where: `[[routes]]`, or `[upstream]` as the one route for
    /// `/` (none: only `/auth` and forward-auth are served).
    pub routes: Vec<RouteConfig>,
    /// `[[routes]]` was given: a path no route matches gets 404.
    pub explicit_routes: bool,
    pub forward_auth: Option<ForwardAuthConfig>,
    /// `[telemetry]` with an `otlp_endpoint`: OpenTelemetry traces on.
    pub telemetry: Option<TelemetryConfig>,
    pub secrets: Secrets,
}

#[derive(Debug, Clone)]
pub struct Secrets {
    pub client_secret: Option<ClientSecret>,
    /// The signing key of `private_key_jwt` (`TOKEN_HANDLER_CLIENT_KEY[_FILE]`).
    pub client_key: Option<ClientKey>,
    pub cookie_keys: Arc<KeyRing>,
    /// Mounted files the secrets came from (watched for changes).
    pub client_secret_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub cookie_keys_file: Option<PathBuf>,
}

impl Config {
    /// Reads and validates `path`, taking secrets from `env` (a lookup such as `std::env::var`).
    pub fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(vec![format!("cannot read {}: {e}", path.display())]))?;
        Config::from_toml(&text, env)
    }

    /// Validates TOML text; used by `load`, the demo and the tests.
    pub fn from_toml(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        validate::validate(text, env)
    }
}
