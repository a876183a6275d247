//! ID-token verification against the provider's JWKS: signature, `iss`, `aud`, `exp`, `nonce`.
//!
//! TokenIDP signs with no `kid`, or a `kid` that is not in its JWKS: so we try the key whose
//! `kid` matches first, then every other key we have, and accept the first valid signature.
//! Keys are cached; a token no cached key verifies triggers one re-fetch (at most every
//! 30 s), which follows a provider's key rotation. Only asymmetric algorithms are accepted.

use super::IdpClient;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{decode, decode_header, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

const REFETCH_AFTER: Duration = Duration::from_secs(30);
const ALLOWED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("the ID token is not a JWT")]
    Malformed,
    #[error("the ID token uses an algorithm we do not accept")]
    UnsupportedAlgorithm,
    #[error("no key of the provider's JWKS verifies the ID token's signature")]
    BadSignature,
    #[error("the ID token's claims are not valid: {0}")]
    Claims(String),
    #[error("the ID token's nonce does not match this login")]
    NonceMismatch,
    #[error("the ID token carries no nonce although one was sent")]
    MissingNonce,
    #[error("cannot load the provider's JWKS: {0}")]
    Jwks(String),
}

struct Keys {
    fetched: Instant,
    keys: Vec<(Option<String>, DecodingKey)>,
}

/// Cached JWKS keys.
#[derive(Default)]
pub struct JwksCache {
    keys: RwLock<Option<Arc<Keys>>>,
    refetch: tokio::sync::Mutex<()>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self
            .keys
            .read()
            .ok()
            .and_then(|k| k.as_ref().map(|k| k.keys.len()));
        f.debug_struct("JwksCache").field("keys", &count).finish()
    }
}

impl IdpClient {
    /// Verifies an ID token; returns its claims. `nonce`: the one sent at login. A provider
    /// that does not echo nonces is accepted only for the TokenIDP dialect (which documents
    /// that it ignores them).
    pub async fn verify_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<Map<String, Value>, IdTokenError> {
        let claims = self
            .verify_jwt(token, |validation| {
                validation.set_audience(&[self.config().client_id.as_str()]);
            })
            .await?
            .1;
        match (nonce, claims.get("nonce").and_then(Value::as_str)) {
            // The nonce is single-use and bound to a sealed flow cookie: no timing oracle.
            (Some(expected), Some(got)) if expected != got => Err(IdTokenError::NonceMismatch),
            (Some(_), None) if self.config().dialect != crate::config::Dialect::TokenIdp => {
                Err(IdTokenError::MissingNonce)
            }
            _ => Ok(claims),
        }
    }

    /// Verifies a JWT signed by the provider (a key of its JWKS; `iss` when known) and the
    /// claims `validation` is set up for; returns its header and claims.
    pub(super) async fn verify_jwt(
        &self,
        token: &str,
        set_up: impl FnOnce(&mut Validation),
    ) -> Result<(jsonwebtoken::Header, Map<String, Value>), IdTokenError> {
        let header = decode_header(token).map_err(|_| IdTokenError::Malformed)?;
        if !ALLOWED.contains(&header.alg) {
            return Err(IdTokenError::UnsupportedAlgorithm);
        }
        let mut validation = Validation::new(header.alg);
        if let Some(issuer) = self.metadata().and_then(|m| m.issuer.as_deref()) {
            validation.set_issuer(&[issuer]);
        }
        validation.leeway = 60;
        set_up(&mut validation);
        let keys = self.jwks_keys(false).await?;
        let claims = match try_keys(token, header.kid.as_deref(), &keys, &validation) {
            Err(IdTokenError::BadSignature) if keys.fetched.elapsed() >= REFETCH_AFTER => {
                let keys = self.jwks_keys(true).await?;
                try_keys(token, header.kid.as_deref(), &keys, &validation)?
            }
            other => other?,
        };
        Ok((header, claims))
    }

    async fn jwks_keys(&self, refetch: bool) -> Result<Arc<Keys>, IdTokenError> {
        let cached = || self.jwks.keys.read().expect("jwks lock").clone();
        if let Some(keys) = cached() {
            if !refetch {
                return Ok(keys);
            }
        }
        // One fetch at a time; whoever waited uses what the winner fetched, and a re-fetch
        // happens at most every REFETCH_AFTER (a flood of bad tokens cannot hammer the IdP).
        let _guard = self.jwks.refetch.lock().await;
        if let Some(keys) = cached() {
            if !refetch || keys.fetched.elapsed() < REFETCH_AFTER {
                return Ok(keys);
            }
        }
        let uri = self
            .metadata()
            .and_then(|m| m.jwks_uri.clone())
            .ok_or_else(|| IdTokenError::Jwks("no jwks_uri configured or discovered".into()))?;
        let response = self
            .http()
            .get(uri.clone())
            .send()
            .await
            .map_err(|e| IdTokenError::Jwks(format!("GET {uri}: {e}")))?;
        if !response.status().is_success() {
            return Err(IdTokenError::Jwks(format!(
                "GET {uri}: HTTP {}",
                response.status()
            )));
        }
        let body = super::response::read_limited(response, self.config().max_response_bytes)
            .await
            .map_err(|kind| IdTokenError::Jwks(format!("GET {uri}: {kind}")))?;
        let keys = Arc::new(Keys {
            fetched: Instant::now(),
            keys: parse_jwks(&body),
        });
        *self.jwks.keys.write().expect("jwks lock") = Some(Arc::clone(&keys));
        Ok(keys)
    }
}

/// Every usable key of a JWKS document; keys we cannot use (symmetric, unknown types) are skipped.
fn parse_jwks(body: &[u8]) -> Vec<(Option<String>, DecodingKey)> {
    let Ok(doc) = serde_json::from_slice::<Map<String, Value>>(body) else {
        return Vec::new();
    };
    let Some(Value::Array(keys)) = doc.get("keys") else {
        return Vec::new();
    };
    keys.iter()
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .filter(|jwk| {
            !matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            )
        })
        .filter_map(|jwk| Some((jwk.common.key_id.clone(), DecodingKey::from_jwk(&jwk).ok()?)))
        .collect()
}

fn try_keys(
    token: &str,
    kid: Option<&str>,
    keys: &Keys,
    validation: &Validation,
) -> Result<Map<String, Value>, IdTokenError> {
    let (matching, others): (Vec<_>, Vec<_>) = keys
        .keys
        .iter()
        .partition(|(k, _)| kid.is_some() && k.as_deref() == kid);
    for (_, key) in matching.into_iter().chain(others) {
        match decode::<Map<String, Value>>(token, key, validation) {
            Ok(data) => return Ok(data.claims),
            // Wrong key (or a key of another type): try the next one.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::InvalidSignature
                        | ErrorKind::InvalidKeyFormat
                        | ErrorKind::InvalidAlgorithm
                        | ErrorKind::InvalidRsaKey(_)
                        | ErrorKind::InvalidEcdsaKey
                ) =>
            {
                continue
            }
            // The signature verified; a claim did not.
            Err(e) => return Err(IdTokenError::Claims(claim_error(e.kind()))),
        }
    }
    Err(IdTokenError::BadSignature)
}

fn claim_error(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "expired (exp)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".into(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".into(),
        ErrorKind::ImmatureSignature => "not yet valid (nbf)".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
        other => format!("{other:?}"),
    }
}
