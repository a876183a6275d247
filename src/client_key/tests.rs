//! Test keys in testdata/ (made for these tests only): an RSA 2048 and an EC P-256 key, each
//! as PKCS#8 PEM and as a private JWK, plus keys that must be refused.

use super::*;
use jsonwebtoken::{DecodingKey, Validation};

const RSA_PEM: &str = include_str!("testdata/rsa.pem");
const RSA_PKCS1: &str = include_str!("testdata/rsa-pkcs1.pem");
const RSA_JWK: &str = include_str!("testdata/rsa.jwk.json");
const EC_PEM: &str = include_str!("testdata/ec.pem");
const EC_SEC1: &str = include_str!("testdata/ec-sec1.pem");
const EC_JWK: &str = include_str!("testdata/ec.jwk.json");
const P384_PEM: &str = include_str!("testdata/p384.pem");
const RSA_1024: &str = include_str!("testdata/rsa1024.pem");

fn jwk(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("json")
}

/// The public half of a test JWK, for verifying.
fn public(text: &str) -> DecodingKey {
    let j = jwk(text);
    let s = |k: &str| j[k].as_str().expect("member").to_string();
    match s("kty").as_str() {
        "RSA" => DecodingKey::from_rsa_components(&s("n"), &s("e")).expect("rsa"),
        _ => DecodingKey::from_ec_components(&s("x"), &s("y")).expect("ec"),
    }
}

fn verifies(key: &ClientKey, public_jwk: &str) -> bool {
    let token = key
        .sign(&serde_json::json!({"iss": "c", "exp": 4_000_000_000u64}))
        .expect("sign");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    assert_eq!(header.alg, key.alg());
    assert_eq!(header.kid.as_deref(), key.kid());
    let mut v = Validation::new(key.alg());
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<serde_json::Value>(&token, &public(public_jwk), &v).is_ok()
}

#[test]
fn pem_and_jwk_sign_with_each_algorithm() {
    let k = ClientKey::parse(RSA_PEM, None, Some("k1")).expect("rsa pem");
    assert_eq!((k.alg(), k.kid()), (Algorithm::RS256, Some("k1")));
    assert!(verifies(&k, RSA_JWK));
    let k = ClientKey::parse(RSA_PKCS1, Some(Algorithm::PS256), None).expect("pkcs1");
    assert_eq!((k.alg(), k.kid()), (Algorithm::PS256, None));
    assert!(verifies(&k, RSA_JWK));
    let k = ClientKey::parse(RSA_JWK, None, None).expect("rsa jwk");
    assert_eq!((k.alg(), k.kid()), (Algorithm::RS256, Some("rsa-1")));
    assert!(verifies(&k, RSA_JWK));
    let k = ClientKey::parse(RSA_JWK, Some(Algorithm::PS256), Some("config")).expect("ps256");
    assert_eq!(k.kid(), Some("rsa-1"), "the JWK's own kid wins");
    assert!(verifies(&k, RSA_JWK));

    let k = ClientKey::parse(EC_PEM, None, None).expect("ec pem");
    assert_eq!(k.alg(), Algorithm::ES256);
    assert!(verifies(&k, EC_JWK));
    let k = ClientKey::parse(EC_JWK, None, None).expect("ec jwk");
    assert_eq!((k.alg(), k.kid()), (Algorithm::ES256, Some("ec-1")));
    assert!(verifies(&k, EC_JWK));
}

#[test]
fn refusals_say_why_without_key_material() {
    let cases: Vec<(String, Option<Algorithm>, Option<&str>, ClientKeyError)> = vec![
        ("not a key".into(), None, None, ClientKeyError::Format),
        (
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----".into(),
            None,
            None,
            ClientKeyError::Format,
        ),
        (EC_SEC1.into(), None, None, ClientKeyError::Sec1),
        (
            RSA_PEM.into(),
            Some(Algorithm::ES256),
            None,
            ClientKeyError::Mismatch {
                key: "RSA",
                alg: Algorithm::ES256,
            },
        ),
        (
            EC_JWK.into(),
            Some(Algorithm::RS256),
            None,
            ClientKeyError::Mismatch {
                key: "EC",
                alg: Algorithm::RS256,
            },
        ),
        (
            P384_PEM.into(),
            None,
            None,
            ClientKeyError::Unusable {
                alg: Algorithm::ES256,
            },
        ),
        (
            RSA_1024.into(),
            None,
            None,
            ClientKeyError::Unusable {
                alg: Algorithm::RS256,
            },
        ),
    ];
    for (text, alg, kid, want) in cases {
        assert_eq!(ClientKey::parse(&text, alg, kid).expect_err(&text), want);
    }
    // A public JWK, another curve, another kty, an alg it does not know.
    let mut public_only = jwk(RSA_JWK);
    public_only.as_object_mut().expect("object").remove("d");
    let mut p384 = jwk(EC_JWK);
    p384["crv"] = "P-384".into();
    let mut oct = jwk(EC_JWK);
    oct["kty"] = "oct".into();
    let mut hs = jwk(EC_JWK);
    hs["alg"] = "HS256".into();
    for (j, want) in [
        (public_only, "the JWK: no private part `d` (a public key?)"),
        (p384, "the JWK: only the P-256 curve (ES256)"),
        (oct, "the JWK: `kty` must be RSA or EC"),
        (hs, "algorithm `HS256` is not one of RS256, PS256, ES256"),
    ] {
        let e = ClientKey::parse(&j.to_string(), None, None).expect_err("refused");
        assert_eq!(e.to_string(), want);
    }
}

#[test]
fn debug_prints_no_key_material() {
    let k = ClientKey::parse(EC_JWK, None, None).expect("ec jwk");
    let d = jwk(EC_JWK)["d"].as_str().expect("d").to_string();
    let shown = format!("{k:?}");
    assert_eq!(
        shown,
        "ClientKey { alg: ES256, kid: Some(\"ec-1\"), key: \"[redacted]\" }"
    );
    assert!(!shown.contains(&d));
}
