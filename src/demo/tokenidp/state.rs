//! The emulator's memory: clients, users, refresh tokens, codes, IdP sessions, and the record
//! of what it received and issued; plus the rules for spending refresh tokens and codes.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::jwt::Signer;
use super::options::{Client, Fault, KidMode, LoginMode, Options, ResponseStyle, User};

/// The IdP's own browser-session cookie (login form mode); cleared by `/logout`.
pub(super) const SESSION_COOKIE: &str = "tokenidp_session";

/// One request as the emulator received it (`TokenIdp::requests`).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The path alone, e.g. `/token` (the query is in `query`).
    pub path: String,
    pub content_type: Option<String>,
    pub authorization: Option<String>,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
    /// Addition: the raw query string, if any.
    pub query: Option<String>,
    /// Addition: every header, name lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
}

/// What became of a refresh token (`TokenIdp::refresh_token_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefreshTokenState {
    /// Usable now.
    Active,
    /// Spent by a successful refresh (rotation). Replaying it fails and leaves it `Consumed`.
    Consumed,
    /// Revoked by `DELETE /revoke` or `revoke_all`.
    Revoked,
    /// Never used, but its sliding window has passed.
    Expired,
    /// Never issued by this emulator.
    Unknown,
}

/// What is stored per refresh token; `status` never says `Expired`, that is computed.
#[derive(Clone, Debug)]
pub(super) struct RefreshRecord {
    pub client_id: String,
    pub user_id: u64,
    /// The scopes of the original grant: rotation keeps them (RFC 6749 §6), even when one
    /// refresh asked for fewer.
    pub scopes: Vec<String>,
    pub expires_at: Instant,
    pub status: RefreshTokenState,
}

/// A pending authorization code: single-use, bound to client, redirect URI and PKCE challenge.
#[derive(Clone, Debug)]
pub(super) struct CodeRecord {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub scopes: Vec<String>,
    /// Echoed into the ID token in `ResponseStyle::OAuth2` only (TokenIDP ignores nonces).
    pub nonce: Option<String>,
    pub user_id: u64,
    pub expires_at: Instant,
    pub used: bool,
}

/// Why a refresh was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RefreshRefusal {
    /// 400 "Invalid refresh token.": unknown, revoked, other client, expired, reused, no user.
    InvalidToken,
    /// 400: a requested or stored scope the client (or the grant) no longer has.
    InvalidScope,
}

/// Why a code was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CodeRefusal {
    /// Unknown, used, expired, other client, or PKCE mismatch: TokenIDP's PascalCase 500.
    BadCode,
    /// `redirect_uri` differs from the one sent to `/authorize`.
    RedirectMismatch,
}

/// A refresh that passed every check: who, and which scopes the new access token gets.
#[derive(Debug)]
pub(super) struct RefreshGrant {
    pub user: User,
    pub access_scopes: Vec<String>,
    pub grant_scopes: Vec<String>,
}

/// Everything mutable. Behind one `std::sync::Mutex`, never held across an `.await`.
#[derive(Debug)]
pub(super) struct State {
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub style: ResponseStyle,
    pub kid_mode: KidMode,
    pub login: LoginMode,
    pub fault: Fault,
    pub clients: Vec<Client>,
    pub users: Vec<User>,
    pub refresh_tokens: HashMap<String, RefreshRecord>,
    pub codes: HashMap<String, CodeRecord>,
    /// IdP browser sessions (login form cookie) → user id.
    pub sessions: HashMap<String, u64>,
    pub requests: Vec<RecordedRequest>,
    pub token_calls: usize,
    pub refresh_calls: usize,
    pub issued_secrets: Vec<String>,
    pub revoked_via_endpoint: Vec<String>,
    pub replayed: Vec<String>,
}

/// What every handler shares: the fixed parts outside the lock, the rest inside.
#[derive(Debug)]
pub(super) struct Shared {
    /// `http://127.0.0.1:PORT`: the `iss` of every token.
    pub url: String,
    pub signer: Signer,
    state: Mutex<State>,
}

impl Shared {
    pub(super) fn new(url: String, options: Options) -> Shared {
        let state = State {
            access_token_ttl: options.access_token_ttl,
            refresh_token_ttl: options.refresh_token_ttl,
            style: options.style,
            kid_mode: options.kid_mode,
            login: options.login,
            fault: Fault::None,
            clients: options.clients,
            users: options.users,
            refresh_tokens: HashMap::new(),
            codes: HashMap::new(),
            sessions: HashMap::new(),
            requests: Vec::new(),
            token_calls: 0,
            refresh_calls: 0,
            issued_secrets: Vec::new(),
            revoked_via_endpoint: Vec::new(),
            replayed: Vec::new(),
        };
        Shared {
            url,
            signer: Signer::new(),
            state: Mutex::new(state),
        }
    }

    /// Locks the state. A panic elsewhere (a failing test helper) must not turn every later
    /// request into a second panic, so a poisoned lock is simply taken over.
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl State {
    pub(super) fn client(&self, client_id: &str) -> Option<&Client> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }

    pub(super) fn client_mut(&mut self, client_id: &str) -> Option<&mut Client> {
        self.clients.iter_mut().find(|c| c.client_id == client_id)
    }

    pub(super) fn user_by_id(&self, id: u64) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub(super) fn user_by_login(&self, login: &str) -> Option<&User> {
        self.users.iter().find(|u| u.login == login)
    }

    pub(super) fn refresh_state(&self, token: &str, now: Instant) -> RefreshTokenState {
        match self.refresh_tokens.get(token) {
            None => RefreshTokenState::Unknown,
            Some(r) if r.status == RefreshTokenState::Active && now >= r.expires_at => {
                RefreshTokenState::Expired
            }
            Some(r) => r.status,
        }
    }

    /// Checks a refresh request without spending the token (the caller consumes it only once
    /// the new tokens are minted, so a failure leaves nothing half-done).
    ///
    /// The whole check-and-consume runs under one lock: the real server has no concurrency
    /// guard (two simultaneous refreshes may both win), but a strict emulator is what lets
    /// tests catch a proxy that spends one token twice.
    pub(super) fn check_refresh(
        &mut self,
        token: &str,
        client: &Client,
        requested: Option<Vec<String>>,
        now: Instant,
    ) -> Result<RefreshGrant, RefreshRefusal> {
        let record = self
            .refresh_tokens
            .get(token)
            .ok_or(RefreshRefusal::InvalidToken)?;
        let (user_id, grant_scopes) = (record.user_id, record.scopes.clone());
        // Client binding: a token is only good for the client it was issued to.
        if record.client_id != client.client_id {
            return Err(RefreshRefusal::InvalidToken);
        }
        match self.refresh_state(token, now) {
            RefreshTokenState::Active => {}
            RefreshTokenState::Consumed => {
                // Reuse: TokenIDP revokes only this old token; the newest one of the chain
                // keeps working (node oidc-provider would revoke the whole grant). The token
                // is dead either way, so its state stays `Consumed` and the replay is listed.
                self.replayed.push(token.to_owned());
                return Err(RefreshRefusal::InvalidToken);
            }
            _ => return Err(RefreshRefusal::InvalidToken),
        }
        let user = self
            .user_by_id(user_id)
            .ok_or(RefreshRefusal::InvalidToken)?
            .clone();
        // Scopes are checked against the client's *current* list: a scope removed from the
        // client since the login fails the refresh, asked for or not.
        let access_scopes = requested.unwrap_or_else(|| grant_scopes.clone());
        let allowed = |s: &String| client.scopes.contains(s) && grant_scopes.contains(s);
        if !access_scopes.iter().all(allowed) {
            return Err(RefreshRefusal::InvalidScope);
        }
        Ok(RefreshGrant {
            user,
            access_scopes,
            grant_scopes,
        })
    }

    /// Marks a refresh token spent by rotation.
    pub(super) fn consume(&mut self, token: &str) {
        if let Some(r) = self.refresh_tokens.get_mut(token) {
            r.status = RefreshTokenState::Consumed;
        }
    }

    /// Revokes one refresh token if it is still live (`Active`, or only expired). Returns
    /// whether anything changed.
    pub(super) fn revoke(&mut self, token: &str) -> bool {
        match self.refresh_tokens.get_mut(token) {
            Some(r) if r.status == RefreshTokenState::Active => {
                r.status = RefreshTokenState::Revoked;
                true
            }
            _ => false,
        }
    }

    /// Spends an authorization code. Any presentation by its own client uses it up, right or
    /// wrong verifier, so a code can never be tried twice (RFC 6749 §10.5).
    pub(super) fn redeem_code(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        now: Instant,
    ) -> Result<(User, Vec<String>, Option<String>), CodeRefusal> {
        let record = self.codes.get_mut(code).ok_or(CodeRefusal::BadCode)?;
        if record.client_id != client_id {
            return Err(CodeRefusal::BadCode);
        }
        if record.used || now >= record.expires_at {
            record.used = true;
            return Err(CodeRefusal::BadCode);
        }
        record.used = true;
        if redirect_uri != Some(record.redirect_uri.as_str()) {
            return Err(CodeRefusal::RedirectMismatch);
        }
        // PKCE is always S256 (RFC 7636 §4.6): BASE64URL(SHA256(verifier)) == challenge.
        let verifier = code_verifier.ok_or(CodeRefusal::BadCode)?;
        if !pkce_s256_matches(verifier, &record.code_challenge) {
            return Err(CodeRefusal::BadCode);
        }
        let (user_id, scopes, nonce) =
            (record.user_id, record.scopes.clone(), record.nonce.clone());
        let user = self
            .user_by_id(user_id)
            .ok_or(CodeRefusal::BadCode)?
            .clone();
        Ok((user, scopes, nonce))
    }
}

/// RFC 7636 §4.6 S256 check, compared in constant time.
pub(super) fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    constant_time_eq(
        crate::b64::url_encode(digest).as_bytes(),
        challenge.as_bytes(),
    )
}

/// Byte comparison whose time does not depend on where the first difference is (client
/// secrets, PKCE): the emulator should not teach habits the production path must not have.
pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert!(pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_s256_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
