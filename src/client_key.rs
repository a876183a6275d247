//! The client's own signing key for `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9):
//! a PEM private key (PKCS#8, or PKCS#1 for RSA) or a private JWK; RS256, PS256 or ES256.
//!
//! The key is proven by one signature when it is loaded, so a key that cannot sign (too short,
//! the wrong curve, an algorithm that does not fit it) is a configuration problem at start-up or
//! a refused reload, never a failed login. `Debug` never prints key material, and no error
//! carries any.
//!
//! Workload identity: the platform (a Kubernetes projected ServiceAccount token) mints the
//! assertion instead, in a file it rewrites; [`read_assertion`] reads it before each use.

use crate::b64;
use crate::secret::ClientAssertion;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use std::fmt;
use std::path::Path;

/// A loaded signing key with its algorithm and `kid`.
#[derive(Clone)]
pub struct ClientKey {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<String>,
}

impl fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Why a key was refused. Never carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientKeyError {
    #[error("neither a PEM private key (PKCS#8) nor a private JWK (JSON)")]
    Format,
    #[error(
        "an `EC PRIVATE KEY` (SEC1) PEM: convert it to PKCS#8 (`openssl pkcs8 -topk8 -nocrypt`)"
    )]
    Sec1,
    #[error("the JWK: {0}")]
    Jwk(&'static str),
    #[error("algorithm `{0}` is not one of RS256, PS256, ES256")]
    Algorithm(String),
    #[error("a {key} key cannot sign {alg:?}")]
    Mismatch { key: &'static str, alg: Algorithm },
    #[error("the key cannot sign {alg:?} (RSA needs at least 2048 bits, EC the P-256 curve)")]
    Unusable { alg: Algorithm },
}

/// The algorithms a client assertion may be signed with, by their JOSE names.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, ClientKeyError> {
    match name {
        "RS256" => Ok(Algorithm::RS256),
        "PS256" => Ok(Algorithm::PS256),
        "ES256" => Ok(Algorithm::ES256),
        other => Err(ClientKeyError::Algorithm(other.to_string())),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Rsa => "RSA",
            Family::Ec => "EC",
        }
    }
}

impl ClientKey {
    /// Parses `text` (PEM or JWK). `alg`: from `idp.client_key_alg`, else the JWK's `alg`,
    /// else RS256 for RSA and ES256 for EC. `kid`: the JWK's own, else `idp.client_key_id` (a
    /// PEM carries none): a rotated JWK brings its new `kid` along without a config change.
    pub fn parse(
        text: &str,
        alg: Option<Algorithm>,
        kid: Option<&str>,
    ) -> Result<ClientKey, ClientKeyError> {
        let text = text.trim();
        let (key, family, jwk_alg, jwk_kid) = if text.starts_with("-----BEGIN") {
            if text.contains("BEGIN EC PRIVATE KEY") {
                return Err(ClientKeyError::Sec1);
            }
            // PKCS#8 says which kind of key it holds: an EC reading fails on an RSA key.
            match EncodingKey::from_ec_pem(text.as_bytes()) {
                Ok(key) => (key, Family::Ec, None, None),
                Err(_) => match EncodingKey::from_rsa_pem(text.as_bytes()) {
                    Ok(key) => (key, Family::Rsa, None, None),
                    Err(_) => return Err(ClientKeyError::Format),
                },
            }
        } else if text.starts_with('{') {
            let jwk: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(text).map_err(|_| ClientKeyError::Format)?;
            let (key, family) = jwk_key(&jwk)?;
            let s = |k: &str| jwk.get(k).and_then(|v| v.as_str()).map(str::to_string);
            (key, family, s("alg"), s("kid"))
        } else {
            return Err(ClientKeyError::Format);
        };
        let alg = match (alg, jwk_alg) {
            (Some(alg), _) => alg,
            (None, Some(name)) => parse_algorithm(&name)?,
            (None, None) if family == Family::Rsa => Algorithm::RS256,
            (None, None) => Algorithm::ES256,
        };
        let fits = match alg {
            Algorithm::RS256 | Algorithm::PS256 => family == Family::Rsa,
            _ => family == Family::Ec,
        };
        if !fits {
            return Err(ClientKeyError::Mismatch {
                key: family.name(),
                alg,
            });
        }
        let kid = jwk_kid.or_else(|| kid.map(str::to_string));
        let key = ClientKey { key, alg, kid };
        // Proof that it signs: ring checks the key only when it is used.
        key.sign(&serde_json::json!({}))
            .map_err(|_| ClientKeyError::Unusable { alg })?;
        Ok(key)
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// A compact JWS over `claims`, with `typ: JWT`, this key's `alg` and `kid`.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.alg);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, claims, &self.key)
    }
}

/// Why the platform's assertion file cannot be used (never its content).
#[derive(Debug, thiserror::Error)]
pub enum AssertionFileError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no JWT (three base64url parts, a JSON header with `alg`)", path.display())]
    NotJwt { path: std::path::PathBuf },
}

/// The client assertion the platform wrote to `path`, read now (the platform rotates it), and
/// checked to be JWT-shaped: its signature and claims are the IdP's to judge.
pub fn read_assertion(path: &Path) -> Result<ClientAssertion, AssertionFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| AssertionFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    let header = jsonwebtoken::decode_header(token);
    let shaped = token.split('.').count() == 3 && header.is_ok();
    if !shaped {
        return Err(AssertionFileError::NotJwt {
            path: path.to_path_buf(),
        });
    }
    Ok(ClientAssertion::new(token))
}

/// The `exp` of an assertion, unverified (for `token-handler check`).
pub fn assertion_expiry(assertion: &ClientAssertion) -> Option<u64> {
    let payload = assertion.expose().split('.').nth(1)?;
    let claims: serde_json::Value = serde_json::from_slice(&b64::url_decode(payload)?).ok()?;
    claims.get("exp")?.as_u64()
}

/// A private JWK as a key ring can load: RSA as PKCS#1 DER, EC P-256 as PKCS#8 DER.
fn jwk_key(
    jwk: &serde_json::Map<String, serde_json::Value>,
) -> Result<(EncodingKey, Family), ClientKeyError> {
    let part = |name: &'static str| -> Result<Vec<u8>, ClientKeyError> {
        let value = jwk
            .get(name)
            .and_then(|v| v.as_str())
            .ok_or(ClientKeyError::Jwk(match name {
                "d" => "no private part `d` (a public key?)",
                _ => "a member of the key is missing",
            }))?;
        b64::url_decode(value).ok_or(ClientKeyError::Jwk("a member is not base64url"))
    };
    match jwk.get("kty").and_then(|v| v.as_str()) {
        Some("RSA") => {
            // RFC 8017 A.1.2 RSAPrivateKey; ring needs the CRT parameters too.
            let mut body = der::integer(&[0]);
            for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
                body.extend(der::integer(&part(name)?));
            }
            Ok((
                EncodingKey::from_rsa_der(&der::tlv(0x30, &body)),
                Family::Rsa,
            ))
        }
        Some("EC") => {
            if jwk.get("crv").and_then(|v| v.as_str()) != Some("P-256") {
                return Err(ClientKeyError::Jwk("only the P-256 curve (ES256)"));
            }
            let (d, x, y) = (part("d")?, part("x")?, part("y")?);
            if d.len() != 32 || x.len() != 32 || y.len() != 32 {
                return Err(ClientKeyError::Jwk("P-256 members are 32 bytes"));
            }
            Ok((
                EncodingKey::from_ec_der(&der::p256_pkcs8(&d, &x, &y)),
                Family::Ec,
            ))
        }
        _ => Err(ClientKeyError::Jwk("`kty` must be RSA or EC")),
    }
}

/// Just enough DER to wrap JWK members as the structures ring reads.
mod der {
    pub(super) fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = body.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|b| *b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(body);
        out
    }

    /// A non-negative INTEGER from big-endian bytes (minimal, with a 0 byte before a high bit).
    pub(super) fn integer(bytes: &[u8]) -> Vec<u8> {
        let trimmed: &[u8] = match bytes.iter().position(|b| *b != 0) {
            Some(i) => &bytes[i..],
            None => &[0],
        };
        let mut body = Vec::with_capacity(trimmed.len() + 1);
        if trimmed[0] & 0x80 != 0 {
            body.push(0);
        }
        body.extend_from_slice(trimmed);
        tlv(0x02, &body)
    }

    /// RFC 5208 PrivateKeyInfo around an RFC 5915 ECPrivateKey (with its public key, which
    /// ring requires, and without the parameters, which it refuses inside PKCS#8).
    pub(super) fn p256_pkcs8(d: &[u8], x: &[u8], y: &[u8]) -> Vec<u8> {
        const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
        const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
        let mut point = vec![0x00, 0x04];
        point.extend_from_slice(x);
        point.extend_from_slice(y);
        let mut ec = integer(&[1]);
        ec.extend(tlv(0x04, d));
        ec.extend(tlv(0xa1, &tlv(0x03, &point)));
        let mut algorithm = tlv(0x06, EC_PUBLIC_KEY);
        algorithm.extend(tlv(0x06, PRIME256V1));
        let mut info = integer(&[0]);
        info.extend(tlv(0x30, &algorithm));
        info.extend(tlv(0x04, &tlv(0x30, &ec)));
        tlv(0x30, &info)
    }
}

#[cfg(test)]
mod tests;
