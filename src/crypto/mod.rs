//! Sealing and opening cookie values: AES-256-GCM under a key ring.
//!
//! Sealed value (then base64url, no padding):
//! `version (1) | kid length (1) | kid | nonce (12) | ciphertext + tag (16)`.
//! The associated data is `version | kid length | kid | cookie name`, so a value sealed for
//! one cookie cannot be replayed under another name, and the header cannot be edited.
//! The first key of the ring that is not staged seals; every key opens (rotation without
//! logging anyone out). A staged key (`staged:kid:base64`) opens but never seals: the first
//! step of a rotation across pods that receive the new key at different moments.
//! Failures are opaque: `open` returns `None` whatever went wrong, and the tag comparison
//! inside AES-GCM is constant time. AES-GCM is ring's (hardware AES and carry-less multiply):
//! the cookie is opened on every request (measured in BENCHMARKS.md); the tests check it
//! against the RustCrypto `aes-gcm` implementation on a fixed vector.

use crate::b64;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use std::fmt;

/// Format version of sealed values; bumped if the layout above ever changes.
pub const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MAX_KID_LEN: usize = 32;
/// The next [`KeyRing::generation`].
static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Why a key spec was refused. Never carries key material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("no cookie key given")]
    Empty,
    #[error("cookie key #{0}: expected `kid:base64(32 bytes)`")]
    Shape(usize),
    #[error("cookie key #{0}: the key id must be 1-32 characters of [A-Za-z0-9_-]")]
    KeyId(usize),
    #[error("cookie key #{0}: not valid base64")]
    Base64(usize),
    #[error("cookie key #{0}: must decode to exactly 32 bytes, got {1}")]
    Length(usize, usize),
    #[error("cookie key #{0}: key id `{1}` is used twice")]
    Duplicate(usize, String),
    #[error("every cookie key is staged: one must seal (list it without `staged:`)")]
    AllStaged,
}

struct Key {
    id: String,
    cipher: LessSafeKey,
    /// Opens, never seals.
    staged: bool,
}

/// Why a value did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Not a value this ring sealed (tampered, truncated, wrong name, wrong key).
    Invalid,
    /// Well-formed, but sealed with a key id this ring does not hold: on a pod that has not
    /// received a new key yet, the value is fine and the pod is behind.
    UnknownKey,
}

/// The cookie key ring. `Debug` shows key ids only.
pub struct KeyRing {
    keys: Vec<Key>,
    /// Index of the key that seals: the first one that is not staged.
    sealer: usize,
    /// Derived from the sealing key: keyed hashes for log fingerprints, the same on every
    /// replica with the same sealing key.
    fingerprint_key: ring::hmac::Key,
    /// Unique to this ring in the process (never reused): what a cache of opened values
    /// checks, so that nothing opened under another ring is served under this one.
    generation: u64,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

/// A successfully opened value.
#[derive(Debug)]
pub struct Opened {
    pub plaintext: Vec<u8>,
    /// False when a retired key (neither the sealing one nor a staged one) opened it: the
    /// caller re-seals. A staged key is the next sealing key: its values are not re-sealed
    /// backwards by a pod that has not switched yet.
    pub current_key: bool,
}

impl KeyRing {
    /// Parses `kid:base64,kid:base64,...` (standard or URL-safe base64, 32 bytes each); an
    /// entry written `staged:kid:base64` opens but does not seal.
    pub fn parse(spec: &str) -> Result<KeyRing, KeyError> {
        let mut keys: Vec<Key> = Vec::new();
        let mut sealing_key: Option<Vec<u8>> = None;
        for (i, part) in spec.split(',').map(str::trim).enumerate() {
            let n = i + 1;
            if part.is_empty() {
                continue;
            }
            let (staged, part) = match part.strip_prefix("staged:") {
                Some(rest) => (true, rest.trim()),
                None => (false, part),
            };
            let (id, b64) = part.split_once(':').ok_or(KeyError::Shape(n))?;
            if !valid_kid(id) {
                return Err(KeyError::KeyId(n));
            }
            let bytes = b64::std_decode(b64.trim())
                .or_else(|| b64::url_decode(b64.trim().trim_end_matches('=')))
                .ok_or(KeyError::Base64(n))?;
            if bytes.len() != 32 {
                return Err(KeyError::Length(n, bytes.len()));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(KeyError::Duplicate(n, id.to_string()));
            }
            let cipher = LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| KeyError::Length(n, 0))?,
            );
            if !staged {
                sealing_key.get_or_insert(bytes);
            }
            keys.push(Key {
                id: id.to_string(),
                cipher,
                staged,
            });
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        let (Some(sealer), Some(sealing_key)) = (keys.iter().position(|k| !k.staged), sealing_key)
        else {
            return Err(KeyError::AllStaged);
        };
        Ok(KeyRing {
            keys,
            sealer,
            fingerprint_key: derive(&sealing_key, b"token-handler log fingerprint v2"),
            generation: NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Every key id with its role, in order: `seals`, `opens` or `staged` (for `check` and
    /// the reload log).
    pub fn roles(&self) -> Vec<(&str, &'static str)> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let role = if i == self.sealer {
                    "seals"
                } else if k.staged {
                    "staged"
                } else {
                    "opens"
                };
                (k.id.as_str(), role)
            })
            .collect()
    }

    /// A fresh random key spec `kid:base64`, for `token-handler keygen`.
    pub fn generate_spec() -> String {
        let mut key = [0u8; 32];
        let mut id = [0u8; 4];
        fill_random(&mut key);
        fill_random(&mut id);
        let kid: String = id.iter().map(|b| format!("{b:02x}")).collect();
        format!("k{kid}:{}", b64::std_encode(key))
    }

    /// A short keyed hash of `data` (8 hex digits) for log lines: lets an operator follow one
    /// session across requests and replicas without logging anything usable.
    pub fn fingerprint(&self, data: &[u8]) -> String {
        hex(&ring::hmac::sign(&self.fingerprint_key, data).as_ref()[..4])
    }

    /// This ring's identity in the process: no two rings parsed here share it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The id of the key that seals.
    pub fn current_kid(&self) -> &str {
        &self.keys[self.sealer].id
    }

    /// Seals `plaintext` for the cookie called `name` with the current key.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> String {
        // A random 96-bit nonce from the thread's CSPRNG (ChaCha, seeded and reseeded from the
        // OS): the same unpredictability as a getrandom(2) call, without a syscall per seal.
        let mut nonce = [0u8; NONCE_LEN];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut nonce);
        self.seal_with_nonce(name, plaintext, nonce)
    }

    fn seal_with_nonce(&self, name: &str, plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> String {
        let key = &self.keys[self.sealer];
        let header = header(&key.id);
        let aad = aad(&header, name);
        let mut out = Vec::with_capacity(header.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = key
            .cipher
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad),
                &mut out[header.len() + NONCE_LEN..],
            )
            // AES-GCM encryption only fails for inputs of ~64 GiB.
            .expect("AES-GCM encryption of a cookie-sized value");
        out.extend_from_slice(tag.as_ref());
        b64::url_encode(out)
    }

    /// Opens a value sealed for the cookie called `name`. `None` for anything that is not a
    /// value this ring sealed for that name: tampered, truncated, foreign key, wrong name.
    pub fn open(&self, name: &str, value: impl AsRef<[u8]>) -> Option<Opened> {
        self.open_checked(name, value).ok()
    }

    /// Like [`KeyRing::open`], telling a value sealed with a key this ring does not hold
    /// (yet) from one that is not valid at all. The key id is read from the value's header,
    /// which anyone can write: `UnknownKey` proves nothing about the value, only that this
    /// ring cannot judge it.
    pub fn open_checked(&self, name: &str, value: impl AsRef<[u8]>) -> Result<Opened, OpenError> {
        // SIMD base64: the cookie is decoded on every request (measured in BENCHMARKS.md).
        let raw = b64::url_decode(value.as_ref()).ok_or(OpenError::Invalid)?;
        let (&version, rest) = raw.split_first().ok_or(OpenError::Invalid)?;
        let (&kid_len, rest) = rest.split_first().ok_or(OpenError::Invalid)?;
        let kid_len = kid_len as usize;
        if version != VERSION || kid_len == 0 || kid_len > MAX_KID_LEN {
            return Err(OpenError::Invalid);
        }
        if rest.len() < kid_len + NONCE_LEN + TAG_LEN {
            return Err(OpenError::Invalid);
        }
        let (kid, rest) = rest.split_at(kid_len);
        let nonce = &rest[..NONCE_LEN];
        let Some(index) = self.keys.iter().position(|k| k.id.as_bytes() == kid) else {
            let well_formed = std::str::from_utf8(kid).is_ok_and(valid_kid);
            return Err(if well_formed {
                OpenError::UnknownKey
            } else {
                OpenError::Invalid
            });
        };
        let aad = aad(&raw[..2 + kid_len], name);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Invalid)?;
        // Opened within the decoded buffer, the plaintext moved to its start: no second buffer
        // and copy of the whole value (BENCHMARKS.md, "Opening a session").
        let mut plaintext = raw;
        let sealed = 2 + kid_len + NONCE_LEN;
        let len = self.keys[index]
            .cipher
            .open_within(nonce, Aad::from(&aad), &mut plaintext, sealed..)
            .map_err(|_| OpenError::Invalid)?
            .len();
        plaintext.truncate(len);
        let key = &self.keys[index];
        Ok(Opened {
            plaintext,
            current_key: index == self.sealer || key.staged,
        })
    }
}

fn valid_kid(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn header(kid: &str) -> Vec<u8> {
    let mut h = Vec::with_capacity(2 + kid.len());
    h.push(VERSION);
    // valid_kid() bounds the length to 32.
    h.push(kid.len() as u8);
    h.extend_from_slice(kid.as_bytes());
    h
}

fn aad(header: &[u8], name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + name.len());
    aad.extend_from_slice(header);
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Fills `buf` from the OS CSPRNG. Failing to read it means the host is unusable for crypto.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random number generator is unavailable");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A MAC key for one purpose, derived from a cookie key with HKDF-SHA256 (RFC 5869): the
/// cookie key itself is never used for anything but AES-GCM, and keys for different purposes
/// are independent.
fn derive(secret: &[u8], purpose: &'static [u8]) -> ring::hmac::Key {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"token-handler");
    let info = [purpose];
    let prk = salt.extract(secret);
    let okm = prk
        .expand(&info, ring::hmac::HMAC_SHA256)
        .expect("an HMAC-SHA256 key is far below HKDF's output limit");
    ring::hmac::Key::from(okm)
}

/// `n` random bytes as base64url (no padding): for `state`, `nonce`, PKCE verifiers.
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    fill_random(&mut buf);
    b64::url_encode(buf)
}

#[cfg(test)]
mod tests;
