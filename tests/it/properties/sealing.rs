//! KeyRing: seal / open. Round trips under random keys, names and plaintexts; bit flips,
//! truncations, another cookie name, retired and dropped keys.

use super::{config, K1, K2};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use proptest::prelude::*;
use token_handler::crypto::KeyRing;

fn kid() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,32}"
}

/// A ring spec `kid:base64` for a random 32-byte key.
fn key_spec() -> impl Strategy<Value = String> {
    (kid(), any::<[u8; 32]>()).prop_map(|(kid, key)| format!("{kid}:{}", STANDARD.encode(key)))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn seal_open_round_trip(
        spec in key_spec(),
        name in any::<String>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..2048),
    ) {
        let ring = KeyRing::parse(&spec).expect("generated spec parses");
        let sealed = ring.seal(&name, &plaintext);
        prop_assert!(sealed.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let opened = ring.open(&name, &sealed).expect("opens");
        prop_assert_eq!(opened.plaintext, plaintext);
        prop_assert!(opened.current_key);
    }

    #[test]
    fn any_bit_flip_or_truncation_fails(
        name in "[ -~]{0,40}",
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
        bit in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let ring = KeyRing::parse(K1).expect("k1");
        let sealed = ring.seal(&name, &plaintext);
        let raw = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
        // One bit of the decoded value (header, nonce, ciphertext or tag).
        let mut flipped = raw.clone();
        let i = bit.index(raw.len() * 8);
        flipped[i / 8] ^= 1 << (i % 8);
        prop_assert!(ring.open(&name, URL_SAFE_NO_PAD.encode(&flipped)).is_none(), "bit {}", i);
        // One bit of the text itself (stays ASCII): an invalid or a different value.
        let mut text = sealed.clone().into_bytes();
        let j = bit.index(text.len() * 7);
        text[j / 7] ^= 1 << (j % 7);
        let text = String::from_utf8(text).expect("ascii");
        prop_assert!(ring.open(&name, &text).is_none(), "text bit {}", j);
        // Truncated, in bytes and in text.
        let n = cut.index(raw.len());
        prop_assert!(ring.open(&name, URL_SAFE_NO_PAD.encode(&raw[..n])).is_none());
        let m = cut.index(sealed.len());
        prop_assert!(ring.open(&name, &sealed[..m]).is_none());
    }

    #[test]
    fn another_name_fails(
        name in any::<String>(),
        other in any::<String>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        prop_assume!(name != other);
        let ring = KeyRing::parse(K1).expect("k1");
        let sealed = ring.seal(&name, &plaintext);
        prop_assert!(ring.open(&other, &sealed).is_none());
    }

    #[test]
    fn retired_key_opens_and_is_flagged(
        old in key_spec(),
        new in key_spec(),
        name in any::<String>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let old_kid = old.split(':').next().expect("kid");
        prop_assume!(new.split(':').next() != Some(old_kid));
        let before = KeyRing::parse(&old).expect("old");
        let sealed = before.seal(&name, &plaintext);
        let rotated = KeyRing::parse(&format!("{new},{old}")).expect("rotated");
        let opened = rotated.open(&name, &sealed).expect("the retired key still opens");
        prop_assert!(!opened.current_key);
        prop_assert_eq!(opened.plaintext, plaintext);
        // Once the old key is dropped from the ring, its values no longer open.
        let only_new = KeyRing::parse(&new).expect("new");
        prop_assert!(only_new.open(&name, &sealed).is_none());
    }

    #[test]
    fn arbitrary_values_never_open(name in any::<String>(), value in any::<String>()) {
        let ring = KeyRing::parse(&format!("{K2},{K1}")).expect("ring");
        prop_assert!(ring.open(&name, &value).is_none());
    }
}

#[test]
fn every_single_bit_flip_of_a_sealed_value_fails() {
    // Exhaustive over one value, decoded bytes and text alike (the text flips include the
    // last character's unused low bits, which a lax base64 decoder would ignore).
    let ring = KeyRing::parse(K1).expect("k1");
    for plaintext in [&b""[..], b"x", b"xy", b"session bytes"] {
        let sealed = ring.seal("__Host-th_session", plaintext);
        let raw = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
        for i in 0..raw.len() * 8 {
            let mut flipped = raw.clone();
            flipped[i / 8] ^= 1 << (i % 8);
            let value = URL_SAFE_NO_PAD.encode(&flipped);
            assert!(
                ring.open("__Host-th_session", &value).is_none(),
                "byte bit {i}"
            );
        }
        for j in 0..sealed.len() * 7 {
            let mut text = sealed.clone().into_bytes();
            text[j / 7] ^= 1 << (j % 7);
            let text = String::from_utf8(text).expect("ascii");
            assert!(
                ring.open("__Host-th_session", &text).is_none(),
                "text bit {} of char {} ({:?} -> {:?}) of a {}-char value opens",
                j % 7,
                j / 7,
                sealed.as_bytes()[j / 7] as char,
                text.as_bytes()[j / 7] as char,
                sealed.len()
            );
        }
    }
}
