//! The IdP's token endpoint: one client, two wire dialects, a typed outcome.
//!
//! What matters most is the *classification* of failures (design habit 8): a **rejected**
//! grant (the IdP said no to this refresh token or this client) ends the session; anything
//! **transient** (network, timeout, 5xx, 429, a body we cannot read) keeps it, so a user is
//! never logged out by an IdP hiccup. Dialect files only build requests and parse answers;
//! they are pure and tested on the exact bytes of tokenidp-protocol.md and RFC 6749.

mod oauth2;
mod response;
mod tokenidp;

pub use response::unverified_lifetime;

use crate::config::{ClientAuth, Dialect, IdpConfig};
use crate::secret::{AccessToken, AuthCode, ClientSecret, CodeVerifier, IdToken, RefreshToken};
use std::fmt;
use std::time::Duration;
use tracing::{debug, instrument};
use url::Url;

/// A grant sent to the token endpoint.
#[derive(Debug)]
pub enum Grant<'a> {
    Refresh {
        refresh_token: &'a RefreshToken,
        scope: Option<&'a str>,
    },
    AuthorizationCode {
        code: &'a AuthCode,
        verifier: &'a CodeVerifier,
        redirect_uri: &'a str,
    },
}

impl Grant<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Grant::Refresh { .. } => "refresh_token",
            Grant::AuthorizationCode { .. } => "authorization_code",
        }
    }
}

/// A successful token response, whatever the dialect.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: AccessToken,
    /// `None` means "keep using the one you have" (RFC 6749 §6).
    pub refresh_token: Option<RefreshToken>,
    pub id_token: Option<IdToken>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

/// Why the IdP said no, for the log line an operator reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The refresh token (or code) is invalid, expired, revoked or already used.
    InvalidGrant,
    /// Client authentication failed, or the client is disabled: an operator error.
    InvalidClient,
    /// Any other definitive refusal (bad scope, grant not allowed, malformed request).
    Other,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rejection::InvalidGrant => "invalid_grant",
            Rejection::InvalidClient => "invalid_client",
            Rejection::Other => "refused",
        })
    }
}

/// Why the IdP could not be used right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transient {
    Connect,
    Timeout,
    Status(u16),
    RateLimited,
    /// Not JSON, truncated, or JSON of an unknown shape.
    MalformedBody,
    /// A success envelope without an access token (TokenIDP's inner `isSuccess:false`).
    NoAccessToken,
    /// The body exceeded `idp.max_response_bytes`.
    TooLarge,
}

impl fmt::Display for Transient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transient::Connect => f.write_str("connect error"),
            Transient::Timeout => f.write_str("timeout"),
            Transient::Status(s) => write!(f, "HTTP {s}"),
            Transient::RateLimited => f.write_str("rate limited"),
            Transient::MalformedBody => f.write_str("malformed body"),
            Transient::NoAccessToken => f.write_str("no access token in a success answer"),
            Transient::TooLarge => f.write_str("response too large"),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum IdpError {
    /// The IdP refused the grant: the session is over.
    #[error("the IdP rejected the grant ({reason}): {detail}")]
    Rejected { reason: Rejection, detail: String },
    /// The IdP could not answer usefully: keep the session, tell the client to retry.
    #[error("the IdP is unavailable ({kind})")]
    Transient {
        kind: Transient,
        retry_after: Option<Duration>,
    },
}

impl IdpError {
    fn transient(kind: Transient) -> IdpError {
        IdpError::Transient {
            kind,
            retry_after: None,
        }
    }
}

/// The request body a dialect wants sent.
struct Wire {
    content_type: &'static str,
    body: Vec<u8>,
    /// Send the client credentials as HTTP Basic.
    basic: bool,
}

/// Client for the IdP's token endpoint.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    dialect: Dialect,
    endpoint: Url,
    client_id: String,
    secret: Option<ClientSecret>,
    auth: ClientAuth,
    max_response_bytes: usize,
}

impl TokenClient {
    pub fn new(config: &IdpConfig, endpoint: Url, secret: Option<ClientSecret>, http: reqwest::Client) -> TokenClient {
        TokenClient {
            http,
            dialect: config.dialect,
            endpoint,
            client_id: config.client_id.clone(),
            secret,
            auth: config.client_auth,
            max_response_bytes: config.max_response_bytes,
        }
    }

    /// Posts one grant to the token endpoint and classifies the answer.
    #[instrument(skip_all, fields(grant = grant.kind()))]
    pub async fn token(&self, grant: &Grant<'_>) -> Result<TokenResponse, IdpError> {
        let secret = match self.auth {
            ClientAuth::None => None,
            _ => self.secret.as_ref(),
        };
        let wire = match self.dialect {
            Dialect::TokenIdp => tokenidp::request(&self.client_id, secret, self.auth, grant),
            Dialect::OAuth2 => oauth2::request(&self.client_id, secret, self.auth, grant),
        };
        let mut request = self
            .http
            .post(self.endpoint.clone())
            .header(http::header::CONTENT_TYPE, wire.content_type)
            .header(http::header::ACCEPT, "application/json")
            .body(wire.body);
        if let (true, Some(secret)) = (wire.basic, secret) {
            request = request.header(http::header::AUTHORIZATION, response::basic_auth(&self.client_id, secret));
        }
        let started = tokio::time::Instant::now();
        let response = request.send().await.map_err(|e| {
            debug!(error = %response::describe(&e), "token endpoint unreachable");
            IdpError::transient(if e.is_timeout() { Transient::Timeout } else { Transient::Connect })
        })?;
        let status = response.status().as_u16();
        let retry_after = response::retry_after(response.headers());
        let body = response::read_limited(response, self.max_response_bytes).await;
        debug!(status, elapsed_ms = started.elapsed().as_millis() as u64, "token endpoint answered");
        let body = body.map_err(|kind| IdpError::Transient { kind, retry_after })?;
        let parsed = match self.dialect {
            Dialect::TokenIdp => tokenidp::parse(status, &body),
            Dialect::OAuth2 => oauth2::parse(status, &body),
        };
        parsed.map_err(|e| match e {
            IdpError::Transient { kind, retry_after: None } => IdpError::Transient { kind, retry_after },
            other => other,
        })
    }
}
