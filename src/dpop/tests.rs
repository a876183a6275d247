use super::*;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

fn part(jws: &str, i: usize) -> Value {
    let text = jws.split('.').nth(i).expect("part");
    serde_json::from_slice(&crate::b64::url_decode(text).expect("b64")).expect("json")
}

#[test]
fn a_proof_verifies_with_the_public_jwk_of_its_header() {
    let key = DpopKey::generate().expect("key");
    let proof = key
        .proof(
            "POST",
            "https://api.example.com/orders",
            Some("at-1"),
            Some("n-1"),
            1_000,
        )
        .expect("proof");
    let header = part(&proof, 0);
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    let jwk = &header["jwk"];
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert!(jwk.get("d").is_none(), "no private member: {jwk}");
    // An independent verifier (jsonwebtoken) checks the signature against the header's key.
    let decoding = DecodingKey::from_ec_components(
        jwk["x"].as_str().expect("x"),
        jwk["y"].as_str().expect("y"),
    )
    .expect("public key");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<Value>(&proof, &decoding, &validation)
        .expect("signature verifies")
        .claims;
    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["htu"], "https://api.example.com/orders");
    assert_eq!(claims["iat"], 1_000);
    assert_eq!(claims["nonce"], "n-1");
    let ath = crate::b64::url_encode(ring::digest::digest(&ring::digest::SHA256, b"at-1"));
    assert_eq!(claims["ath"], ath.as_str());
    assert_eq!(claims["jti"].as_str().expect("jti").len(), 22);

    // RFC 7638: the thumbprint is the SHA-256 of the required members in order.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().expect("x"),
        jwk["y"].as_str().expect("y")
    );
    let expected = crate::b64::url_encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ));
    assert_eq!(key.thumbprint(), expected);
}

#[test]
fn each_proof_is_new_and_optional_claims_are_left_out() {
    let key = DpopKey::generate().expect("key");
    let a = key
        .proof("GET", "https://idp/token", None, None, 5)
        .expect("a");
    let b = key
        .proof("GET", "https://idp/token", None, None, 5)
        .expect("b");
    assert_ne!(part(&a, 1)["jti"], part(&b, 1)["jti"]);
    let claims = part(&a, 1);
    assert!(
        claims.get("ath").is_none() && claims.get("nonce").is_none(),
        "{claims}"
    );
    assert_ne!(
        DpopKey::generate().expect("other").thumbprint(),
        key.thumbprint()
    );
}

#[test]
fn the_key_survives_sealing_in_both_encodings() {
    let key = DpopKey::generate().expect("key");
    let bytes = postcard::to_allocvec(&key).expect("postcard");
    assert!(bytes.len() <= 97, "{} bytes", bytes.len());
    let back: DpopKey = postcard::from_bytes(&bytes).expect("back");
    assert_eq!(back.thumbprint(), key.thumbprint());
    // The decoded key signs (its pair is rebuilt from the 96 bytes) and verifies as the same.
    let proof = back
        .proof("GET", "https://x/", None, None, 1)
        .expect("proof");
    assert_eq!(
        part(&proof, 0)["jwk"],
        part(
            &key.proof("GET", "https://x/", None, None, 1).expect("p"),
            0
        )["jwk"]
    );

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Record {
        #[serde(with = "optional_text", default)]
        k: Option<DpopKey>,
    }
    let text = serde_json::to_string(&Record {
        k: Some(key.clone()),
    })
    .expect("json");
    let back: Record = serde_json::from_str(&text).expect("json back");
    assert_eq!(back.k.expect("key").thumbprint(), key.thumbprint());
    let none: Record = serde_json::from_str("{}").expect("absent");
    assert!(none.k.is_none());
    assert!(serde_json::from_str::<Record>(r#"{"k":"AAAA"}"#).is_err());
}

#[test]
fn bytes_that_are_not_a_key_pair_sign_nothing() {
    let key = DpopKey::generate().expect("key");
    let mut raw = key.inner.raw;
    raw[5] ^= 0x01; // the private scalar no longer matches the public point
    let broken = DpopKey::from_raw(raw);
    assert_eq!(
        broken.proof("GET", "https://x/", None, None, 1),
        Err(DpopError::BadKey)
    );
}

#[test]
fn debug_shows_no_key_material() {
    let key = DpopKey::generate().expect("key");
    let shown = format!("{key:?}");
    assert!(shown.contains(key.thumbprint()));
    let private = crate::b64::url_encode(&key.inner.raw[..32]);
    assert!(!shown.contains(&private), "{shown}");
    assert!(
        !shown.contains(&format!("{:?}", &key.inner.raw[..32])),
        "{shown}"
    );
}

#[test]
fn the_cache_serves_only_the_same_bytes_and_stays_bounded() {
    let key = DpopKey::generate().expect("key");
    let decoded = DpopKey::from_raw(key.inner.raw);
    // A decoded key finds its pair ready (the one `generate` made).
    let found = cache::get(&key.inner.raw).expect("cached at generation");
    assert!(std::ptr::eq(
        decoded.pair().expect("pair"),
        std::sync::Arc::as_ptr(&found)
    ));
    // Other bytes (same public half, another private scalar) never get that pair.
    let mut raw = key.inner.raw;
    raw[0] ^= 0x80;
    assert!(cache::get(&raw).is_none());
    assert_eq!(
        DpopKey::from_raw(raw).proof("GET", "https://x/", None, None, 1),
        Err(DpopError::BadKey)
    );
    for _ in 0..1100 {
        DpopKey::generate().expect("key");
    }
    assert!(cache::len() <= 1024, "{}", cache::len());
}
