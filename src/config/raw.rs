//! The TOML file as written: every key optional, unknown keys refused per section.
//!
//! Each section is deserialized on its own (see `super::load`), so one typo per section is
//! reported together with every other problem instead of stopping at the first.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub shutdown_grace: Option<String>,
    pub trust_forwarded_headers: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub max_connections: Option<usize>,
    pub header_read_timeout: Option<String>,
    pub max_header_bytes: Option<usize>,
    pub body_read_timeout: Option<String>,
    pub body_min_rate: Option<u64>,
    pub write_timeout: Option<String>,
    pub h2_max_concurrent_streams: Option<u32>,
    pub h2_keepalive_interval: Option<String>,
    pub h2_keepalive_timeout: Option<String>,
    pub tls_cert_file: Option<String>,
    pub tls_key_file: Option<String>,
    pub reload_interval: Option<String>,
    pub worker_threads: Option<usize>,
    pub scheduler: Option<String>,
    pub http1: Option<String>,
    pub release_start_up_pages: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upstream {
    pub url: Option<String>,
    pub connect_timeout: Option<String>,
    pub response_header_timeout: Option<String>,
    pub ca_file: Option<String>,
    pub client: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Idp {
    pub dialect: Option<String>,
    pub issuer: Option<String>,
    pub token_endpoint: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub revocation_endpoint: Option<String>,
    pub end_session_endpoint: Option<String>,
    pub jwks_uri: Option<String>,
    pub client_id: Option<String>,
    pub client_auth: Option<String>,
    pub client_key_id: Option<String>,
    pub client_key_alg: Option<String>,
    pub client_assertion_file: Option<String>,
    pub client_assertion_audience: Option<String>,
    pub scope: Option<String>,
    pub send_scope_on_refresh: Option<bool>,
    pub redirect_uri: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub extra_authorize_params: Option<toml::Table>,
    pub pushed_authorization: Option<String>,
    pub pushed_authorization_request_endpoint: Option<String>,
    pub logout_id_token_hint: Option<bool>,
    pub dpop: Option<bool>,
    pub timeout: Option<String>,
    pub max_response_bytes: Option<usize>,
    pub ca_file: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    pub cookie_name: Option<String>,
    pub host_prefix: Option<bool>,
    pub secure: Option<bool>,
    pub same_site: Option<String>,
    pub lifetime: Option<String>,
    pub refresh_skew: Option<String>,
    pub rotation_grace: Option<String>,
    pub reuse_window: Option<String>,
    pub max_tracked_rotations: Option<usize>,
    pub max_ended_sessions: Option<usize>,
    pub claims: Option<Vec<String>>,
    pub idle_timeout: Option<String>,
    pub idle_touch_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Proxy {
    pub protected_paths: Option<Vec<String>>,
    pub public_paths: Option<Vec<String>>,
    pub browser_authorization: Option<String>,
    pub auth_prefix: Option<String>,
    pub retry_body_bytes: Option<usize>,
    pub upgrades: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Csrf {
    pub header: Option<String>,
    pub allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    pub format: Option<String>,
    pub level: Option<String>,
    pub access_log: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coordination {
    pub redis_url: Option<String>,
    pub sentinels: Option<Vec<String>>,
    pub sentinel_master: Option<String>,
    pub cluster_nodes: Option<Vec<String>>,
    pub ca_file: Option<String>,
    pub lease_ttl: Option<String>,
    pub wait_timeout: Option<String>,
    pub operation_timeout: Option<String>,
    pub ended_sync_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub path: Option<String>,
    pub upstream: Option<String>,
    pub methods: Option<Vec<String>>,
    pub session: Option<String>,
    pub connect_timeout: Option<String>,
    pub response_header_timeout: Option<String>,
    pub ca_file: Option<String>,
    pub identity_headers: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAuth {
    pub listen: Option<String>,
    pub gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Telemetry {
    pub otlp_endpoint: Option<String>,
    pub protocol: Option<String>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
    pub timeout: Option<String>,
    pub batch_delay: Option<String>,
}
