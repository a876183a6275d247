//! Key ring tests: fixed vectors, tampering, rotation, staged keys, key-spec errors.

use super::*;

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

#[test]
fn fixed_vector_matches_an_independent_aes_gcm() {
    // Our format with a fixed nonce, then opened with RustCrypto's AES-256-GCM: two
    // independent implementations agree on key, nonce, AAD layout and tag.
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    let ring_keys = KeyRing::parse(K1).expect("k1");
    let nonce = [7u8; 12];
    let sealed = ring_keys.seal_with_nonce("__Host-th", b"hello", nonce);
    assert_eq!(sealed, "AQJrMQcHBwcHBwcHBwcHB2cPyjAAevjcrSHZl75DfxUaEnpjQw");
    let raw = b64::url_decode(&sealed).expect("b64");
    let key_bytes: Vec<u8> = (0u8..32).collect();
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&key_bytes).expect("key");
    let mut aad = raw[..4].to_vec();
    aad.extend_from_slice(b"__Host-th");
    let plain = cipher
        .decrypt(
            aes_gcm::Nonce::from_slice(&nonce),
            Payload {
                msg: &raw[2 + 2 + 12..],
                aad: &aad,
            },
        )
        .expect("aes-gcm opens our value");
    assert_eq!(plain, b"hello");
}

#[test]
fn derived_keys_follow_rfc5869_and_are_stable() {
    // Computed independently (Python's hmac/hashlib HKDF-SHA256, salt "token-handler"):
    // replicas and versions must agree, or log fingerprints differ between pods.
    let keys = KeyRing::parse(K1).expect("k1");
    assert_eq!(keys.fingerprint(b"session-id"), "42bc3d01");
}

#[test]
fn round_trip_and_random_nonce() {
    let keys = KeyRing::parse(K1).expect("k1");
    let a = keys.seal("c", b"payload");
    let b = keys.seal("c", b"payload");
    assert_ne!(a, b, "each seal draws a fresh nonce");
    let opened = keys.open("c", &a).expect("opens");
    assert_eq!(opened.plaintext, b"payload");
    assert!(opened.current_key);
}

#[test]
fn wrong_name_tamper_truncation_and_foreign_key_fail() {
    let keys = KeyRing::parse(K1).expect("k1");
    let sealed = keys.seal("c", b"payload");
    assert!(
        keys.open("other", &sealed).is_none(),
        "name is bound as AAD"
    );
    let mut raw = b64::url_decode(&sealed).expect("b64");
    for i in 0..raw.len() {
        raw[i] ^= 1;
        assert!(keys.open("c", b64::url_encode(&raw)).is_none(), "byte {i}");
        raw[i] ^= 1;
    }
    for len in 0..raw.len() {
        assert!(keys.open("c", b64::url_encode(&raw[..len])).is_none());
    }
    let foreign = KeyRing::parse(K2).expect("k2");
    assert!(foreign.open("c", &sealed).is_none());
    assert!(keys.open("c", "not base64 !!").is_none());
    assert!(keys.open("c", "").is_none());
}

#[test]
fn rotation_first_key_seals_all_keys_open() {
    let old = KeyRing::parse(K1).expect("old");
    let sealed_old = old.seal("c", b"x");
    let rotated = KeyRing::parse(&format!("{K2},{K1}")).expect("rotated");
    let opened = rotated.open("c", &sealed_old).expect("old key still opens");
    assert!(!opened.current_key, "flagged for re-sealing");
    let resealed = rotated.seal("c", b"x");
    assert!(rotated.open("c", &resealed).expect("new").current_key);
    assert_eq!(rotated.current_kid(), "k2");
}

#[test]
fn a_staged_key_opens_but_does_not_seal_and_unknown_keys_are_told_apart() {
    let new_key = K2.replace("k2:", "staged:k2:");
    let staged = KeyRing::parse(&format!("{new_key},{K1}")).expect("staged first");
    assert_eq!(staged.current_kid(), "k1", "a staged key never seals");
    assert_eq!(staged.roles(), [("k2", "staged"), ("k1", "seals")]);
    let switched = KeyRing::parse(&format!("{K2},{K1}")).expect("switched");
    let from_switched = switched.seal("c", b"x");
    let opened = staged
        .open("c", &from_switched)
        .expect("the staged key opens");
    assert!(
        opened.current_key,
        "not re-sealed backwards by a pod that has not switched yet"
    );
    let old_only = KeyRing::parse(K1).expect("old");
    assert_eq!(
        old_only.open_checked("c", &from_switched).unwrap_err(),
        OpenError::UnknownKey
    );
    assert_eq!(
        old_only.open_checked("c", "garbage").unwrap_err(),
        OpenError::Invalid
    );
    assert_eq!(KeyRing::parse(&new_key).unwrap_err(), KeyError::AllStaged);
}

#[test]
fn key_spec_errors_name_the_key_but_not_its_bytes() {
    assert_eq!(KeyRing::parse("").unwrap_err(), KeyError::Empty);
    assert_eq!(KeyRing::parse("nocolon").unwrap_err(), KeyError::Shape(1));
    assert_eq!(
        KeyRing::parse("bad kid:AAAA").unwrap_err(),
        KeyError::KeyId(1)
    );
    assert_eq!(
        KeyRing::parse(&format!("{K1},k2:***")).unwrap_err(),
        KeyError::Base64(2)
    );
    assert_eq!(
        KeyRing::parse("k:AAAA").unwrap_err(),
        KeyError::Length(1, 3)
    );
    assert!(matches!(
        KeyRing::parse(&format!("{K1},{K1}")).unwrap_err(),
        KeyError::Duplicate(2, _)
    ));
    let spec = KeyRing::generate_spec();
    let ring = KeyRing::parse(&spec).expect("generated spec parses");
    assert!(format!("{ring:?}").contains(ring.current_kid()));
    assert!(!format!("{ring:?}").contains(spec.split(':').nth(1).expect("b64")));
}
