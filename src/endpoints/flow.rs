//! Login-flow state (PKCE verifier, `state`, `nonce`, `return_to`) in a sealed cookie per flow.
//!
//! One cookie per flow, named after a hash of its `state`, so several tabs can log in at once
//! and the callback finds its own flow. `SameSite=Lax` because the callback is a cross-site
//! redirect from the IdP; short-lived; at most [`MAX_FLOWS`] at a time (the oldest are
//! deleted when a new one starts) and deleted once used, so they cannot pile up into a 431.

use crate::dpop::DpopKey;
use crate::secret::CodeVerifier;
use crate::session::{cookie_pairs, CookieCodec};
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

/// Most logins in progress at once per browser.
pub const MAX_FLOWS: usize = 3;
/// Seconds a login may take from `/auth/login` to the callback.
pub const FLOW_TTL: u64 = 600;

#[derive(Debug, Serialize, Deserialize)]
pub struct Flow {
    #[serde(rename = "s")]
    pub state: String,
    #[serde(rename = "v")]
    pub verifier: CodeVerifier,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "r")]
    pub return_to: String,
    /// The redirect_uri sent at login; the code exchange must repeat it exactly.
    #[serde(rename = "u")]
    pub redirect_uri: String,
    #[serde(rename = "t")]
    pub created_at: u64,
    /// The session's DPoP key-to-be (`idp.dpop`): its thumbprint went out as `dpop_jkt`, so
    /// the code is bound to it; the code exchange proves possession.
    #[serde(
        rename = "k",
        with = "crate::dpop::optional_text",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub dpop: Option<DpopKey>,
}

fn prefix(codec: &CookieCodec) -> String {
    format!("{}_flow_", codec.name())
}

/// The flow cookie's name for a `state`.
pub fn cookie_name(codec: &CookieCodec, state: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, state.as_bytes());
    format!(
        "{}{}",
        prefix(codec),
        crate::b64::url_encode(&digest.as_ref()[..9])
    )
}

fn open(codec: &CookieCodec, name: &str, value: &str) -> Option<Flow> {
    let opened = codec.keys().open(name, value)?;
    serde_json::from_slice(&opened.plaintext).ok()
}

/// `Set-Cookie` lines starting `flow`: its cookie, plus deletions of the oldest flows beyond
/// the cap (and of flow cookies that no longer open).
pub fn start(codec: &CookieCodec, headers: &HeaderMap, flow: &Flow, now: u64) -> Vec<HeaderValue> {
    let prefix = prefix(codec);
    let mut existing: Vec<(u64, &str)> = cookie_pairs(headers)
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, value)| {
            let created = open(codec, name, value).map_or(0, |f| f.created_at);
            (created, name)
        })
        .collect();
    existing.sort();
    let expired = existing
        .iter()
        .take_while(|(created, _)| now.saturating_sub(*created) >= FLOW_TTL)
        .count();
    let over_cap = (existing.len() + 1).saturating_sub(MAX_FLOWS);
    let mut out: Vec<HeaderValue> = existing
        .iter()
        .take(expired.max(over_cap))
        .map(|(_, name)| codec.set_lax_cookie(name, "", 0))
        .collect();
    let name = cookie_name(codec, &flow.state);
    let sealed = codec
        .keys()
        .seal(&name, &serde_json::to_vec(flow).expect("flow serializes"));
    out.push(codec.set_lax_cookie(&name, &sealed, FLOW_TTL));
    out
}

/// The flow for `state`, if its cookie is present, opens, matches and is not too old; and the
/// `Set-Cookie` line deleting that cookie (a flow is single-use, success or not).
pub fn take(
    codec: &CookieCodec,
    headers: &HeaderMap,
    state: &str,
    now: u64,
) -> (Option<Flow>, HeaderValue) {
    let name = cookie_name(codec, state);
    let clear = codec.set_lax_cookie(&name, "", 0);
    let flow = cookie_pairs(headers)
        .find(|(n, _)| *n == name)
        .and_then(|(_, value)| open(codec, &name, value))
        .filter(|f| f.state == state && now.saturating_sub(f.created_at) < FLOW_TTL);
    (flow, clear)
}

/// Deletions for every flow cookie the request carries (at logout).
pub fn clear_all(codec: &CookieCodec, headers: &HeaderMap) -> Vec<HeaderValue> {
    let prefix = prefix(codec);
    cookie_pairs(headers)
        .filter(|(name, _)| name.starts_with(&prefix))
        .map(|(name, _)| codec.set_lax_cookie(name, "", 0))
        .collect()
}
