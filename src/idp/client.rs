//! `IdpClient`: the one handle to the IdP: endpoints (configured or discovered), `/token`,
//! revocation and ID-token verification share its HTTP client and credentials.
//!
//! A provider that is down at start-up must not crash the proxy: discovery retries in the
//! background with backoff, calls fail as transient (`idp_unavailable`) meanwhile, and
//! `/readyz` reports not ready until the metadata is known.

use super::discovery::{self, Metadata};
use super::id_token::JwksCache;
use super::response;
use super::{oauth2, tokenidp, Grant, IdpError, TokenResponse, Transient};
use crate::client_key::ClientKey;
use crate::config::{ClientAuth, Dialect, IdpConfig, PushedAuthorization};
use crate::dpop::nonce::{NonceCache, DPOP, DPOP_NONCE};
use crate::dpop::DpopKey;
use crate::metrics::{GrantLabel, Metrics};
use crate::secret::ClientSecret;
use crate::trace::{self, Traces};
use arc_swap::ArcSwapOption;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, instrument, warn};

/// Longest pause between two discovery attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct IdpClient {
    http: reqwest::Client,
    config: IdpConfig,
    /// Swapped when the mounted secret file changes.
    secret: ArcSwapOption<ClientSecret>,
    /// The `private_key_jwt` signing key; swapped when its mounted file changes.
    key: ArcSwapOption<ClientKey>,
    metadata: OnceLock<Metadata>,
    /// The IdP's latest DPoP nonce (RFC 9449 §8).
    dpop_nonce: NonceCache,
    ready: watch::Sender<bool>,
    pub(super) jwks: JwksCache,
    metrics: Arc<Metrics>,
    traces: Traces,
}

impl IdpClient {
    /// A client whose endpoints are known at once when the config names them all; otherwise
    /// call [`IdpClient::discover_until_ready`] (in a task).
    pub fn new(
        config: &IdpConfig,
        secret: Option<ClientSecret>,
        key: Option<ClientKey>,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
        traces: Traces,
    ) -> IdpClient {
        let client = IdpClient {
            http,
            config: config.clone(),
            secret: ArcSwapOption::new(secret.map(Arc::new)),
            key: ArcSwapOption::new(key.map(Arc::new)),
            metadata: OnceLock::new(),
            dpop_nonce: NonceCache::default(),
            ready: watch::channel(false).0,
            jwks: JwksCache::default(),
            metrics,
            traces,
        };
        if !discovery::needs_discovery(config) {
            // Validation guarantees a token endpoint when there is no issuer to discover from.
            if let Ok(metadata) = discovery::resolve(config, None) {
                client.set_metadata(metadata);
            }
        }
        client
    }

    fn set_metadata(&self, metadata: Metadata) {
        let _ = self.metadata.set(metadata);
        self.ready.send_replace(true);
    }

    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.get()
    }

    pub fn config(&self) -> &IdpConfig {
        &self.config
    }

    pub(super) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub(super) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether the proxy makes OpenTelemetry spans (the refresher's follow the client's).
    pub fn traces(&self) -> Traces {
        self.traces
    }

    pub(super) fn secret(&self) -> Option<Arc<ClientSecret>> {
        match self.config.client_auth {
            ClientAuth::Basic | ClientAuth::Body => self.secret.load_full(),
            ClientAuth::None | ClientAuth::PrivateKeyJwt => None,
        }
    }

    pub(super) fn client_key(&self) -> Option<Arc<ClientKey>> {
        self.key.load_full()
    }

    /// Installs a new `private_key_jwt` signing key (rotation without a restart).
    pub fn set_client_key(&self, key: ClientKey) {
        self.key.store(Some(Arc::new(key)));
    }

    /// Installs a new client secret (rotation without a restart).
    pub fn set_secret(&self, secret: Option<ClientSecret>) {
        self.secret.store(secret.map(Arc::new));
    }

    /// Resolves once the IdP's endpoints are known.
    pub async fn ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// Fetches the discovery document until it works (backoff 1 s … 30 s).
    pub async fn discover_until_ready(self: Arc<Self>) {
        let Some(issuer) = self.config.issuer.clone() else {
            return;
        };
        let mut backoff = Duration::from_secs(1);
        while self.metadata().is_none() {
            let result = discovery::fetch(&self.http, &issuer, self.config.max_response_bytes)
                .await
                .and_then(|doc| discovery::resolve(&self.config, Some(&doc)));
            match result {
                Ok(metadata) => {
                    info!(
                        token_endpoint = %metadata.token_endpoint,
                        pushed_authorization = metadata.par_endpoint.is_some(),
                        "IdP metadata discovered"
                    );
                    if metadata.par_required
                        && self.config.pushed_authorization == PushedAuthorization::Never
                    {
                        warn!(
                            "idp.pushed_authorization = \"never\", but the provider requires \
                             pushed authorization requests (require_pushed_authorization_requests): \
                             logins use PAR anyway"
                        );
                    }
                    self.set_metadata(metadata);
                }
                Err(e) => {
                    warn!(error = %e, retry_in = ?backoff, "IdP discovery failed; not ready, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Posts one grant to the token endpoint and classifies the answer. With `dpop` (the
    /// session's key) the call carries a proof; a `use_dpop_nonce` challenge is answered once.
    #[instrument(skip_all, fields(grant = grant.kind()))]
    pub async fn token(
        &self,
        grant: &Grant<'_>,
        dpop: Option<&DpopKey>,
    ) -> Result<TokenResponse, IdpError> {
        let metadata = self
            .metadata()
            .ok_or(IdpError::transient(Transient::NotDiscovered))?;
        let mut answer = self.post_token(metadata, grant, dpop).await?;
        if dpop.is_some()
            && answer.body.as_ref().is_ok_and(|body| {
                crate::dpop::nonce::provider_challenge(answer.status, &answer.headers, body)
            })
        {
            self.metrics.dpop_nonce_challenge("idp");
            debug!("the token endpoint asked for a DPoP nonce; sending again with it");
            answer = self.post_token(metadata, grant, dpop).await?;
        }
        let Answer {
            status,
            retry_after,
            body,
            ..
        } = answer;
        let body = body.map_err(|kind| IdpError::Transient { kind, retry_after })?;
        let parsed = super::parse_token_response(self.config.dialect, status, &body);
        parsed.map_err(|e| match e {
            IdpError::Transient {
                kind,
                retry_after: None,
            } => IdpError::Transient { kind, retry_after },
            other => other,
        })
    }

    /// One POST to the token endpoint, with fresh client credentials and DPoP proof.
    async fn post_token(
        &self,
        metadata: &Metadata,
        grant: &Grant<'_>,
        dpop: Option<&DpopKey>,
    ) -> Result<Answer, IdpError> {
        let credentials = self.credentials(metadata)?;
        let client_id = self.config.client_id.as_str();
        let wire = match self.config.dialect {
            Dialect::TokenIdp => tokenidp::request(client_id, &credentials, grant),
            Dialect::OAuth2 => oauth2::request(client_id, &credentials, grant),
        };
        let mut request = self
            .http
            .post(metadata.token_endpoint.clone())
            .header(http::header::CONTENT_TYPE, wire.content_type)
            .header(http::header::ACCEPT, "application/json")
            .body(wire.body);
        if let Some(basic) = credentials.basic_header(client_id) {
            request = request.header(http::header::AUTHORIZATION, basic);
        }
        if let Some(key) = dpop {
            request = request.header(&DPOP, self.idp_proof(key, &metadata.token_endpoint)?);
        }
        let span = self
            .traces
            .idp("idp.token", "POST", &metadata.token_endpoint);
        let request = trace::inject_reqwest(&span, request);
        let started = tokio::time::Instant::now();
        let response = request.send().await.map_err(|e| {
            trace::record_error(&span);
            response::unreachable("token endpoint", &e)
        })?;
        let status = response.status().as_u16();
        trace::record_status(&span, status, status >= 400);
        let retry_after = response::retry_after(response.headers());
        let mut headers = http::HeaderMap::new();
        if let Some(nonce) = response.headers().get(&DPOP_NONCE) {
            headers.insert(DPOP_NONCE.clone(), nonce.clone());
            self.dpop_nonce.learn(&headers);
        }
        let body = response::read_limited(response, self.config.max_response_bytes).await;
        let elapsed = started.elapsed();
        self.metrics
            .token_seconds
            .get_or_create(&GrantLabel {
                grant: grant.kind(),
            })
            .observe(elapsed.as_secs_f64());
        debug!(
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            "token endpoint answered"
        );
        Ok(Answer {
            status,
            retry_after,
            headers,
            body,
        })
    }

    /// A DPoP proof for a POST to one of the IdP's endpoints, with the IdP's latest nonce.
    pub(super) fn idp_proof(&self, key: &DpopKey, endpoint: &url::Url) -> Result<String, IdpError> {
        let mut htu = endpoint.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let nonce = self.dpop_nonce.current();
        key.proof(
            "POST",
            htu.as_str(),
            None,
            nonce.as_deref().map(String::as_str),
            crate::refresh::unix_now(),
        )
        .map_err(|e| {
            warn!(error = %e, "no DPoP proof for the IdP");
            IdpError::transient(Transient::Dpop)
        })
    }
}

/// The token endpoint's answer before it is classified.
struct Answer {
    status: u16,
    retry_after: Option<std::time::Duration>,
    /// The headers that matter here (`DPoP-Nonce`).
    headers: http::HeaderMap,
    body: Result<Vec<u8>, Transient>,
}
