//! Fuzzes `KeyRing::open` on arbitrary cookie values, and the seal → open round trip.
//!
//! Input: `mode (1 byte) | name | 0x00 | rest`.
//! - even mode: `rest` is a cookie value opened under `name`. Nothing opens except the seed
//!   values sealed with the fixed test keys below (see fuzz/README.md); anything else the
//!   fuzzer makes must be `None`. A forgery would show up as a plaintext we never sealed.
//! - odd mode: `rest` is a plaintext: sealed under `name`, it opens to itself with the current
//!   key, and under no other name, truncated, or with a flipped byte.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use token_handler::crypto::KeyRing;

/// The crate's own unit-test keys (public): K2 seals, K1 is retired.
const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/// Plaintexts of the seed values (`fuzz/seeds/cookie_open/`, and the fixed test vector of
/// src/crypto.rs): the only ones that may open.
const SEED_PLAINTEXTS: &[&[u8]] = &[b"seed plaintext", b"", b"{\"d\":\"seed\"}", b"hello"];

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| KeyRing::parse(&format!("{K2},{K1}")).expect("test keys"))
}

fn retired() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| KeyRing::parse(K1).expect("k1"))
}

fn split(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&mode, rest) = data.split_first()?;
    let zero = rest.iter().position(|&b| b == 0)?;
    Some((mode, &rest[..zero], &rest[zero + 1..]))
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, name, rest)) = split(data) else {
        return;
    };
    let name = String::from_utf8_lossy(name);
    let ring = ring();
    if mode & 1 == 0 {
        // Raw bytes, as the proxy hands a cookie value to `open`.
        if let Some(opened) = ring.open(&name, rest) {
            assert!(
                SEED_PLAINTEXTS.contains(&opened.plaintext.as_slice()),
                "opened a value we never sealed: name {name:?}, value {:?}",
                String::from_utf8_lossy(rest)
            );
        }
        return;
    }
    let sealed = ring.seal(&name, rest);
    let opened = ring.open(&name, &sealed).expect("a fresh seal opens");
    assert_eq!(opened.plaintext, rest);
    assert!(opened.current_key);
    let other = format!("{name}x");
    assert!(
        ring.open(&other, &sealed).is_none(),
        "opened under another name"
    );
    assert!(
        ring.open(&name, &sealed[..sealed.len() - 1]).is_none(),
        "opened truncated"
    );
    // Flip one bit of one character chosen by the input (stays ASCII).
    let at = rest.first().map_or(0, |&b| b as usize) % sealed.len();
    let mut bytes = sealed.clone().into_bytes();
    bytes[at] ^= 1 << (rest.len() % 7);
    if let Ok(tampered) = String::from_utf8(bytes) {
        assert!(ring.open(&name, &tampered).is_none(), "opened tampered");
    }
    // Retired-key values still open, flagged for re-sealing.
    let sealed_old = retired().seal(&name, rest);
    let opened_old = ring.open(&name, &sealed_old).expect("retired key opens");
    assert!(!opened_old.current_key);
    assert_eq!(opened_old.plaintext, rest);
});
