//! How this client proves who it is at each call to the IdP: nothing (a public client), its
//! secret (HTTP Basic or in the body, RFC 6749 §2.3.1), or a client assertion (RFC 7523 §2.2,
//! OpenID Connect Core §9 `private_key_jwt`): a JWT signed here with the client's key, or one
//! the platform minted and keeps fresh in a file (workload identity), read before each use.
//!
//! A signed assertion is made for one call: `iss` = `sub` = the client id, `aud` the token
//! endpoint (or the issuer, `idp.client_assertion_audience`), a random `jti` (providers keep
//! the ones they saw and refuse a second use), `iat` now and `exp` a minute later.

use super::discovery::Metadata;
use super::{IdpClient, IdpError, Transient};
use crate::config::{AssertionAudience, ClientAuth};
use crate::secret::{ClientAssertion, ClientSecret};
use std::sync::Arc;
use tracing::error;

/// RFC 7523 §2.2.
pub(super) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Lifetime of a signed assertion: long enough for clock skew, short against replay.
const ASSERTION_LIFETIME_SECS: u64 = 60;

/// What one call sends to authenticate the client.
#[derive(Debug)]
pub(super) enum Credentials {
    None,
    Basic(Arc<ClientSecret>),
    Body(Arc<ClientSecret>),
    Assertion(ClientAssertion),
}

impl Credentials {
    /// The parameters of a form body (OAuth 2.0 token and revocation requests). With Basic the
    /// client is identified by the header alone (RFC 6749 §2.3.1); with an assertion, by its
    /// `sub`, and `client_id` is sent too (RFC 7521 §4.2 allows it; some providers want it).
    pub(super) fn append_to_form(
        &self,
        client_id: &str,
        form: &mut url::form_urlencoded::Serializer<'_, String>,
    ) {
        if !matches!(self, Credentials::Basic(_)) {
            form.append_pair("client_id", client_id);
        }
        self.append_proof(form);
    }

    /// The proof alone (a secret, or an assertion and its type), for a form that names the
    /// client already (a pushed authorization request carries `client_id` as a parameter).
    pub(super) fn append_proof(&self, form: &mut url::form_urlencoded::Serializer<'_, String>) {
        match self {
            Credentials::Basic(_) | Credentials::None => {}
            Credentials::Body(secret) => {
                form.append_pair("client_secret", secret.expose());
            }
            Credentials::Assertion(assertion) => {
                form.append_pair("client_assertion_type", ASSERTION_TYPE);
                form.append_pair("client_assertion", assertion.expose());
            }
        }
    }

    /// The `Authorization` header value, for Basic.
    pub(super) fn basic_header(&self, client_id: &str) -> Option<String> {
        match self {
            Credentials::Basic(secret) => Some(super::response::basic_auth(client_id, secret)),
            _ => None,
        }
    }
}

/// The claims of one signed assertion.
pub(super) fn assertion_claims(
    client_id: &str,
    audience: &str,
    now: u64,
    jti: &str,
) -> serde_json::Value {
    serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": jti,
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECS,
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// 128 random bits, base64url.
fn random_jti() -> String {
    let mut bytes = [0u8; 16];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    crate::b64::url_encode(bytes)
}

impl IdpClient {
    /// The credentials for one call. An assertion that cannot be had (the platform's file
    /// unreadable mid-rotation, a key that stopped signing) is transient: the session stays,
    /// the caller retries.
    pub(super) fn credentials(&self, metadata: &Metadata) -> Result<Credentials, IdpError> {
        let config = self.config();
        let unavailable = || IdpError::transient(Transient::ClientCredentials);
        Ok(match config.client_auth {
            ClientAuth::None => Credentials::None,
            ClientAuth::Basic | ClientAuth::Body => match self.secret() {
                None => Credentials::None,
                Some(s) if config.client_auth == ClientAuth::Basic => Credentials::Basic(s),
                Some(s) => Credentials::Body(s),
            },
            ClientAuth::PrivateKeyJwt => {
                if let Some(path) = &config.client_assertion_file {
                    let assertion = crate::client_key::read_assertion(path).map_err(|e| {
                        error!(error = %e, "the client assertion file cannot be used");
                        unavailable()
                    })?;
                    return Ok(Credentials::Assertion(assertion));
                }
                let key = self.client_key().ok_or_else(unavailable)?;
                let audience = match (config.client_assertion_audience, &config.issuer) {
                    (AssertionAudience::Issuer, Some(issuer)) => issuer_string(issuer),
                    _ => metadata.token_endpoint.to_string(),
                };
                let claims =
                    assertion_claims(&config.client_id, &audience, unix_now(), &random_jti());
                let signed = key.sign(&claims).map_err(|e| {
                    error!(error = %e, "signing the client assertion failed");
                    unavailable()
                })?;
                Credentials::Assertion(ClientAssertion::new(signed))
            }
        })
    }
}

/// The issuer as configured: `Url` adds a `/` to a bare origin, which an exact `aud`
/// comparison would refuse.
fn issuer_string(issuer: &url::Url) -> String {
    let s = issuer.as_str();
    match (issuer.path(), s.strip_suffix('/')) {
        ("/", Some(bare)) => bare.to_string(),
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assertion_claims_follow_rfc_7523() {
        let c = assertion_claims("spa", "https://idp.example.com/token", 1_000, "j1");
        assert_eq!(
            c,
            serde_json::json!({"iss": "spa", "sub": "spa", "aud": "https://idp.example.com/token",
                "jti": "j1", "iat": 1_000, "exp": 1_060})
        );
        assert_ne!(random_jti(), random_jti());
        assert_eq!(random_jti().len(), 22);
    }

    #[test]
    fn assertions_go_in_the_form_with_their_type() {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        Credentials::Assertion(ClientAssertion::new("a.b.c")).append_to_form("spa", &mut form);
        assert_eq!(
            form.finish(),
            "client_id=spa&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c"
        );
        let shown = format!(
            "{:?}",
            Credentials::Assertion(ClientAssertion::new("a.b.c"))
        );
        assert!(!shown.contains("a.b.c"), "{shown}");
    }

    #[test]
    fn the_issuer_audience_is_written_as_configured() {
        let u = |s: &str| url::Url::parse(s).expect("url");
        assert_eq!(
            issuer_string(&u("http://127.0.0.1:9000")),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            issuer_string(&u("https://idp.example/realms/a")),
            "https://idp.example/realms/a"
        );
    }
}
