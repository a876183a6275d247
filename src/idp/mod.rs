//! The IdP's token endpoint: one client, two wire dialects, a typed outcome.
//!
//! What matters most is the *classification* of failures: a **rejected**
//! grant (the IdP said no to this refresh token or this client) ends the session; anything
//! **transient** (network, timeout, 5xx, 429, a body we cannot read) keeps it, so a user is
//! never logged out by an IdP hiccup. Dialect files only build requests and parse answers;
//! they are pure and tested on the exact bytes TokenIDP and RFC 6749 servers send.

mod client;
mod credentials;
mod discovery;
mod id_token;
pub mod logout_token;
mod oauth2;
mod par;
mod response;
mod revoke;
mod tokenidp;

pub use client::IdpClient;
pub use discovery::{needs_discovery, Metadata};
pub use id_token::IdTokenError;
pub use logout_token::{LogoutToken, LogoutTokenError};
pub use par::PushedRequest;
pub use response::unverified_lifetime;

use crate::secret::{AccessToken, AuthCode, CodeVerifier, IdToken, RefreshToken};
use std::fmt;
use std::time::Duration;

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
    pub(crate) fn kind(&self) -> &'static str {
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
    /// `token_type` (RFC 6749 §5.1): `Bearer`, or `DPoP` for a token bound to the proof's key.
    pub token_type: Option<String>,
}

impl TokenResponse {
    /// The access token is DPoP-bound (RFC 9449 §5: `token_type` is `DPoP`, any case).
    pub fn dpop_bound(&self) -> bool {
        self.token_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("dpop"))
    }
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
    /// The IdP's endpoints are not known yet (discovery has not succeeded).
    NotDiscovered,
    /// The client assertion could not be had (the platform's file unreadable, signing failed).
    ClientCredentials,
    /// No DPoP proof could be signed with the session's key.
    Dpop,
    /// Another replica has been refreshing this session for longer than the wait allows.
    Busy,
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
            Transient::NotDiscovered => f.write_str("IdP metadata not discovered yet"),
            Transient::ClientCredentials => f.write_str("client assertion unavailable"),
            Transient::Dpop => f.write_str("no DPoP proof could be made"),
            Transient::Busy => f.write_str("another replica is still refreshing this session"),
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

/// Parses and classifies a token-endpoint answer (status and body), as [`IdpClient::token`]
/// does; public for fuzzing and property tests.
pub fn parse_token_response(
    dialect: crate::config::Dialect,
    status: u16,
    body: &[u8],
) -> Result<TokenResponse, IdpError> {
    match dialect {
        crate::config::Dialect::TokenIdp => tokenidp::parse(status, body),
        crate::config::Dialect::OAuth2 => oauth2::parse(status, body),
    }
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
}

impl Wire {
    fn new(content_type: &'static str, body: Vec<u8>) -> Wire {
        Wire { content_type, body }
    }
}
