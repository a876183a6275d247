//! DPoP (RFC 9449): sender-constrained tokens. Each session has its own P-256 key pair, made
//! at login and kept only inside the sealed cookie (and, sealed the same way, in Redis while a
//! refresh result is shared). Every call that uses the session's tokens carries a fresh proof,
//! a JWT signed with that key naming the call's method (`htm`) and URL (`htu`), and for a
//! resource server the hash of the access token (`ath`): a token copied from an upstream's
//! logs is worthless without the key, which never leaves the proxy.
//!
//! The key is 96 bytes in the session: the private scalar and the public point's coordinates.
//! Turning them into a signing key pair costs one scalar multiplication (ring checks that the
//! two belong together), as much as a third of a proof: every request decodes its session
//! afresh, so the ready pairs of the sessions in use are kept in a small bounded cache
//! (`cache.rs`), found by the full 96 bytes.

mod cache;
pub mod nonce;

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The `typ` of a proof (RFC 9449 §4.2).
const TYP: &str = "dpop+jwt";
/// Private scalar (32 bytes), then the public point's x and y (32 bytes each).
const RAW_LEN: usize = 96;

/// Why a proof could not be made. Never carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DpopError {
    #[error("the session's DPoP key is not a valid P-256 key pair")]
    BadKey,
    #[error("signing the DPoP proof failed")]
    Signing,
}

/// A session's DPoP key pair. Cloning shares it. `Debug` shows only the public thumbprint.
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<Inner>,
}

struct Inner {
    raw: [u8; RAW_LEN],
    /// Built from `raw` (or found in the cache) at the first signature (`None`: the bytes are
    /// not a key pair).
    pair: OnceLock<Option<Arc<EcdsaKeyPair>>>,
    /// What the public half gives, made when first needed.
    public: OnceLock<Public>,
}

struct Public {
    /// The proof header, base64url-encoded: the same for every proof of this key.
    header: String,
    /// RFC 7638 JWK SHA-256 thumbprint, base64url (`cnf.jkt`, `dpop_jkt`).
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("jkt", &self.thumbprint())
            .field("private", &"[redacted]")
            .finish()
    }
}

/// The claims of one proof (RFC 9449 §4.2), in the order written.
#[derive(Serialize)]
struct Claims<'a> {
    jti: &'a str,
    htm: &'a str,
    htu: &'a str,
    iat: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

impl DpopKey {
    /// A new random key pair.
    pub fn generate() -> Result<DpopKey, DpopError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| DpopError::BadKey)?;
        let raw = raw_from_pkcs8(pkcs8.as_ref()).ok_or(DpopError::BadKey)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| DpopError::BadKey)?;
        let key = DpopKey::from_raw(raw);
        // The public point read from the document must be the one ring derived.
        if pair.public_key().as_ref()[1..] != key.inner.raw[32..] {
            return Err(DpopError::BadKey);
        }
        let pair = Arc::new(pair);
        cache::put(&key.inner.raw, &pair);
        let _ = key.inner.pair.set(Some(pair));
        Ok(key)
    }

    /// The key from its 96 sealed bytes. Whether they form a key pair is checked when the
    /// first proof is signed, and the public JWK is written when first needed: decoding a
    /// cookie stays cheap for requests that sign nothing.
    fn from_raw(raw: [u8; RAW_LEN]) -> DpopKey {
        DpopKey {
            inner: Arc::new(Inner {
                raw,
                pair: OnceLock::new(),
                public: OnceLock::new(),
            }),
        }
    }

    fn public(&self) -> &Public {
        self.inner.public.get_or_init(|| {
            let raw = &self.inner.raw;
            let (x, y) = (
                crate::b64::url_encode(&raw[32..64]),
                crate::b64::url_encode(&raw[64..]),
            );
            // RFC 7638 §3.2: the required members, lexicographic order, no white space.
            let jwk = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
            let thumbprint =
                crate::b64::url_encode(ring::digest::digest(&ring::digest::SHA256, jwk.as_bytes()));
            let header = format!(r#"{{"typ":"{TYP}","alg":"ES256","jwk":{jwk}}}"#);
            Public {
                header: crate::b64::url_encode(header.as_bytes()),
                thumbprint,
            }
        })
    }

    /// The JWK thumbprint of the public key (`dpop_jkt`; what the IdP writes as `cnf.jkt`).
    pub fn thumbprint(&self) -> &str {
        &self.public().thumbprint
    }

    fn pair(&self) -> Result<&EcdsaKeyPair, DpopError> {
        self.inner
            .pair
            .get_or_init(|| {
                if let Some(pair) = cache::get(&self.inner.raw) {
                    return Some(pair);
                }
                let mut public = [0u8; 65];
                public[0] = 0x04;
                public[1..].copy_from_slice(&self.inner.raw[32..]);
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &self.inner.raw[..32],
                    &public,
                    &SystemRandom::new(),
                )
                .ok()
                .map(Arc::new)?;
                cache::put(&self.inner.raw, &pair);
                Some(pair)
            })
            .as_deref()
            .ok_or(DpopError::BadKey)
    }

    /// A proof for one request: `htm` its method, `htu` its URL without query or fragment,
    /// `access_token` for a resource server (its hash goes in `ath`), `nonce` the server's.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: u64,
    ) -> Result<String, DpopError> {
        let pair = self.pair()?;
        let ath = access_token.map(|token| {
            crate::b64::url_encode(ring::digest::digest(
                &ring::digest::SHA256,
                token.as_bytes(),
            ))
        });
        let mut jti = [0u8; 16];
        rand::Rng::fill(&mut rand::thread_rng(), &mut jti);
        let claims = Claims {
            jti: &crate::b64::url_encode(jti),
            htm,
            htu,
            iat: now,
            ath: ath.as_deref(),
            nonce,
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| DpopError::Signing)?;
        let header = &self.public().header;
        let mut jws = String::with_capacity(header.len() + payload.len() * 4 / 3 + 90);
        jws.push_str(header);
        jws.push('.');
        jws.push_str(&crate::b64::url_encode(&payload));
        let signature = pair
            .sign(&SystemRandom::new(), jws.as_bytes())
            .map_err(|_| DpopError::Signing)?;
        jws.push('.');
        jws.push_str(&crate::b64::url_encode(signature.as_ref()));
        Ok(jws)
    }
}

/// `Authorization: DPoP <token>` and a new proof for `htm` and `htu` with the server's `nonce`
/// (RFC 9449 §7.1), both marked sensitive. False, and logged, when no proof could be made or
/// the token is not a header value: the caller refuses to forward.
pub fn authorize(
    headers: &mut http::HeaderMap,
    key: &DpopKey,
    token: &str,
    htm: &str,
    htu: &str,
    nonce: Option<&str>,
) -> bool {
    let proof = match key.proof(htm, htu, Some(token), nonce, crate::refresh::unix_now()) {
        Ok(proof) => proof,
        Err(e) => {
            tracing::warn!(error = %e, "no DPoP proof for the upstream");
            return false;
        }
    };
    let (Ok(mut authorization), Ok(mut proof)) = (
        http::HeaderValue::from_str(&format!("DPoP {token}")),
        http::HeaderValue::from_str(&proof),
    ) else {
        return false;
    };
    authorization.set_sensitive(true);
    proof.set_sensitive(true);
    headers.insert(http::header::AUTHORIZATION, authorization);
    headers.insert(nonce::DPOP.clone(), proof);
    true
}

/// The private scalar and public coordinates of a P-256 PKCS#8 document as ring writes it
/// (RFC 5208 around an RFC 5915 ECPrivateKey with its public key): checked, not assumed.
fn raw_from_pkcs8(doc: &[u8]) -> Option<[u8; RAW_LEN]> {
    // ECPrivateKey: version 1, then the 32-byte private key as an OCTET STRING.
    const PRIVATE_PREFIX: &[u8] = &[0x02, 0x01, 0x01, 0x04, 0x20];
    // The public key: [1] BIT STRING, no unused bits, an uncompressed point.
    const PUBLIC_PREFIX: &[u8] = &[0xa1, 0x44, 0x03, 0x42, 0x00, 0x04];
    let start = doc
        .windows(PRIVATE_PREFIX.len())
        .position(|w| w == PRIVATE_PREFIX)?
        + PRIVATE_PREFIX.len();
    let private = doc.get(start..start + 32)?;
    let rest = doc.get(start + 32..)?;
    let public = rest.strip_prefix(PUBLIC_PREFIX)?;
    if public.len() != 64 {
        return None;
    }
    let mut raw = [0u8; RAW_LEN];
    raw[..32].copy_from_slice(private);
    raw[32..].copy_from_slice(public);
    Some(raw)
}

/// Sealed in the session as its 96 bytes.
impl Serialize for DpopKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.inner.raw)
    }
}

impl<'de> Deserialize<'de> for DpopKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DpopKey, D::Error> {
        let bytes = serde_bytes_visitor::Bytes(d).read()?;
        let raw: [u8; RAW_LEN] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a DPoP key is 96 bytes"))?;
        Ok(DpopKey::from_raw(raw))
    }
}

/// An optional key as base64url text, for JSON records (the login flow's sealed cookie).
pub mod optional_text {
    use super::{DpopKey, RAW_LEN};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &Option<DpopKey>, s: S) -> Result<S::Ok, S::Error> {
        match key {
            Some(key) => s.serialize_some(&crate::b64::url_encode(key.inner.raw)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DpopKey>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        let raw: [u8; RAW_LEN] = crate::b64::url_decode(text)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| serde::de::Error::custom("a DPoP key is 96 bytes of base64url"))?;
        Ok(Some(DpopKey::from_raw(raw)))
    }
}

/// Reads bytes whether the format hands them over as bytes (postcard) or a sequence (JSON).
mod serde_bytes_visitor {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use std::fmt;

    pub(super) struct Bytes<D>(pub D);

    impl<'de, D: Deserializer<'de>> Bytes<D> {
        pub(super) fn read(self) -> Result<Vec<u8>, D::Error> {
            self.0.deserialize_bytes(V)
        }
    }

    struct V;

    impl<'de> Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(96);
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests;
