//! Signing and checking the emulator's JWTs (RS256) with its one embedded development key, and
//! the JWKS that publishes it.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};

use super::options::KidMode;

// ============================================================================================
// DEVELOPMENT ONLY — never use outside the demo/tests.
// This RSA private key is public (it is in the source tree). Anything signed with it proves
// nothing. It exists so the emulator starts instantly and its JWKS is a fixed, checkable value.
// Generated with `openssl genrsa -traditional 2048` (PKCS#1, which ring reads directly).
// ============================================================================================
const DEV_KEY_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEogIBAAKCAQEAhlx/ztLljBVq6gTRJfhYLyBST17dt18DfeUCND5Rz8pzjf8h\n\
ElEP4NAfylsJU+XaeqfRP/e6p9eUCpxRZR7T+20u4KTSkUWzDZ2O5VP8/xyFfeLN\n\
W5zk63l9fbmingW2PDA73GyyeaHMioNiwMjjc4EfZ5NwLMEN+7KHdjMBcmJEfSRG\n\
naoRG8e6m8j4FMB5pltmvvUTywoQJFpPtjQx/5ZWIGuGTJpjo11fpt/3zj2ZFCE+\n\
v2HZJoGq0YmW6Se/nftJyS17jMeok0+TnJnxmymiLbhqDvqWXUhE8uN9XQxtGmeE\n\
X1Kr8++kPn08tzh6dYq8aqR9KMlupP/IXcGdGwIDAQABAoIBAC7DnxBDQvXAtpeA\n\
2bKXf0nXvA43/H9IKJT20g+Q6TSjSBjSBZa0dAxRI99wVAzJYYNzSVc0R9kHJVWU\n\
FphVZH6L/9bcRxWc5rcEcanL07CPIr8v4z3Rm7OBc3YA2GKbplPIje0oP+4prGFB\n\
XWuv/8pB1MZeAJrzDoTeHFu9YPGIVSG1I1hC662TQpxmnSedzp2f6bqcgluztref\n\
dpAZldi4z8OfMhGhsMef9UY9zeJIzPXQ2LBKBqHAIZoxWgFDPCAKVetypKLkd4+s\n\
VHmM5Uh4L+gnjRgJe+FbegtlpkyzQGGmTeJf04anlfe/TWuXwEVBUKZtN7fzX1Ue\n\
kXCyx6ECgYEAvSI7gngfMvbgx7j6zuas/iGelBUp90QEHLE0I1E8LSETnoM363k/\n\
iMVrWhSMXn1EO9l1Gh54Bw0j8bAJnui/ybnztxIeaMx4f6Wi4tQSnYNrkwzPxTL4\n\
scspdurTzidlo8lNby9xPe5ZJ89WhV3q+p9Csi6gcq+lFda2taD7JIMCgYEAtd0H\n\
AxIC3ceJl7DCPzJ8uwaEIX0fYuqpWvUFd5JrwLJC9tzktaO/vxYNh+R9hvRJH9Tn\n\
MZE84lSMZXKK8VnAOelBIDgNKhP/wyIFQxExwPyiG/bIfKPoWZLpxVt/YW3ib774\n\
A7dY49wG+tv05Q/YZgjyhUm1omYpoTwGyHLKMYkCgYBcml44y0e7VFVKdK+Yjik1\n\
ZJCYQKSDhLHeuoSkpimojwFkIytGB9+rv72IJXd07DB0fUxwtWpfSXfH5kFPpPYC\n\
dyF1CVIKTdLR7O+Lz/otVSNepG82Rnat1qM+rkt2LKP/RZi8T6ZKhGDytPnP4uQi\n\
QcgOJfY5MPbLco2S8HcGsQKBgBt8cV/cbAR68Oe1NlZ42fMmU/f/wiugDcKKf64H\n\
ujNgfdBzqDlvqz5FJfxg4zvvVdHyypJqQgpu/t0iR6+cgfn+r/IfppWyehhS3vq4\n\
8Y0aYaHaVYjI+Qf4tU43uvPNuMhs0200W8Hscj2d2tB36ZvaRFUyw7nsuOP+f4Py\n\
HW8JAoGARzz2f6jwTXICSNZQB1jzpZPI3/wmLDVt1jyxnDycXehLYt9gsoI3Aqg9\n\
kIb1IQ7oDQaLTUE2+15k5lO9pLyTWDLcAbslYC4vsejZNms+OPoc2XizSGNyqUIQ\n\
Dg8chcgW0uta7l76lwhT5ZX1qLVmSdp+hTLXRAm9LAt7lbV+eao=\n\
-----END RSA PRIVATE KEY-----\n";

/// JWKS `n`: the key's modulus, base64url without padding (computed offline from the PEM
/// with `openssl rsa -noout -modulus`; the `signed_tokens_verify_with_published_n_e` test
/// checks it matches).
pub(super) const JWKS_N: &str = concat!(
    "hlx_ztLljBVq6gTRJfhYLyBST17dt18DfeUCND5Rz8pzjf8hElEP4NAfylsJU-XaeqfRP_e6p9eUCpxRZR7T-2",
    "0u4KTSkUWzDZ2O5VP8_xyFfeLNW5zk63l9fbmingW2PDA73GyyeaHMioNiwMjjc4EfZ5NwLMEN-7KHdjMBcmJE",
    "fSRGnaoRG8e6m8j4FMB5pltmvvUTywoQJFpPtjQx_5ZWIGuGTJpjo11fpt_3zj2ZFCE-v2HZJoGq0YmW6Se_nf",
    "tJyS17jMeok0-TnJnxmymiLbhqDvqWXUhE8uN9XQxtGmeEX1Kr8--kPn08tzh6dYq8aqR9KMlupP_IXcGdGw",
);

/// JWKS `e`: 65537.
pub(super) const JWKS_E: &str = "AQAB";

/// JWKS `kid`: the RFC 7638 SHA-256 thumbprint of the public key (computed offline).
pub(super) const JWKS_KID: &str = "OC-nKb9g332C-4SyfWhUf0C5E4cySejeWX-NjqdCqPk";

/// The `kid` of `KidMode::Mismatch`: plausible (a rotated-away key), but in no JWKS.
const MISMATCH_KID: &str = "tokenidp-2019-retired";

/// The emulator's signing key, parsed once at start-up.
pub(super) struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { kid: ")?;
        f.write_str(JWKS_KID)?;
        f.write_str(", key: [development key] }")
    }
}

impl Signer {
    /// Parses the embedded key. Start-up only: the constants are fixed, so a failure is a bug.
    pub(super) fn new() -> Signer {
        Signer {
            encoding: EncodingKey::from_rsa_pem(DEV_KEY_PEM.as_bytes())
                .expect("embedded development RSA key must parse"),
            decoding: DecodingKey::from_rsa_components(JWKS_N, JWKS_E)
                .expect("embedded JWKS n/e must parse"),
        }
    }

    /// Signs `claims` as an RS256 JWT, with the `kid` header the mode asks for.
    pub(super) fn sign(
        &self,
        claims: &Map<String, Value>,
        kid_mode: KidMode,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = match kid_mode {
            KidMode::None => None,
            KidMode::Mismatch => Some(MISMATCH_KID.to_owned()),
            KidMode::Match => Some(JWKS_KID.to_owned()),
        };
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Checks a Bearer token presented to `/revoke`, `/userinfo` or `/introspect`: our
    /// signature (whatever its `kid`), our issuer, not expired (no leeway: tests use short
    /// TTLs), and an *access* token — ID tokens are signed by the same key but carry no
    /// `client_id`, and their `exp` is years away, so they must not pass as Bearer tokens.
    pub(super) fn verify_access(&self, token: &str, issuer: &str) -> Option<Map<String, Value>> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &validation).ok()?;
        data.claims.get("client_id")?.as_str()?;
        Some(data.claims)
    }
}

/// The JWKS document: one RSA signing key.
pub(super) fn jwks() -> Value {
    json!({
        "keys": [{
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": JWKS_KID,
            "n": JWKS_N,
            "e": JWKS_E,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_offset: i64) -> Map<String, Value> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        let v =
            json!({"iss": "http://x", "sub": "usr:1", "client_id": "c", "exp": now + exp_offset});
        v.as_object().expect("object").clone()
    }

    #[test]
    fn signed_tokens_verify_with_published_n_e() {
        let signer = Signer::new();
        for mode in [KidMode::None, KidMode::Mismatch, KidMode::Match] {
            let token = signer.sign(&claims(60), mode).expect("sign");
            assert!(signer.verify_access(&token, "http://x").is_some());
            let header = jsonwebtoken::decode_header(&token).expect("header");
            match mode {
                KidMode::None => assert_eq!(header.kid, None),
                KidMode::Mismatch => assert_ne!(header.kid.as_deref(), Some(JWKS_KID)),
                KidMode::Match => assert_eq!(header.kid.as_deref(), Some(JWKS_KID)),
            }
        }
    }

    #[test]
    fn expired_foreign_issuer_or_id_tokens_are_refused() {
        let signer = Signer::new();
        let expired = signer.sign(&claims(-1), KidMode::None).expect("sign");
        assert!(signer.verify_access(&expired, "http://x").is_none());
        let fresh = signer.sign(&claims(60), KidMode::None).expect("sign");
        assert!(signer.verify_access(&fresh, "http://y").is_none());
        let mut id = claims(60);
        id.remove("client_id");
        let id = signer.sign(&id, KidMode::None).expect("sign");
        assert!(signer.verify_access(&id, "http://x").is_none());
    }
}
