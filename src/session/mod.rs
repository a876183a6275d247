//! The session the browser carries (sealed) and its cookie encoding. No I/O here.
//!
//! A session is what the proxy needs to act for the user: the refresh token, the current
//! access token and its expiry, the granted scope, a few ID-token claims for `/auth/session`,
//! and when it started (for the absolute lifetime). Field names are one letter because the
//! whole thing travels in a cookie on every request.

mod cookies;

pub use cookies::{cookie_pairs, CookieCodec, Incoming, Presence, ReadOutcome, MAX_CHUNKS};

use crate::secret::{AccessToken, IdToken, RefreshToken};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Session {
    /// Random id fixed at login; survives refreshes, so logs can follow one session by a
    /// keyed hash of it. Not a credential.
    #[serde(rename = "d", default)]
    pub id: String,
    #[serde(rename = "r")]
    pub refresh_token: RefreshToken,
    #[serde(rename = "a")]
    pub access_token: AccessToken,
    /// Unix seconds at which the access token expires (local clock).
    #[serde(rename = "e")]
    pub access_expires_at: u64,
    /// Unix seconds at which the access token was obtained (local clock).
    #[serde(rename = "n")]
    pub access_issued_at: u64,
    #[serde(rename = "s", default)]
    pub scope: String,
    #[serde(rename = "c", default)]
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Kept only where the IdP's logout wants it back as `id_token_hint`.
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<IdToken>,
    /// Unix seconds of the login that created this session.
    #[serde(rename = "t")]
    pub started_at: u64,
}

impl Session {
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and numbers into a Vec cannot fail.
        serde_json::to_vec(self).expect("session serializes")
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Session> {
        serde_json::from_slice(bytes).ok()
    }
}
