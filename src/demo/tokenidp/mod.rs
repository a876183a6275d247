//! TokenIDP emulator — DEVELOPMENT AND TEST ONLY: an in-process identity provider that speaks
//! TokenIDP's real wire contract (quirks included) for the tests and `token-handler demo`.
//!
//! It signs with a private key that is published in this source tree, logs users in without
//! real checks (`LoginMode::Auto`), and keeps everything in memory. Never point a production
//! proxy at it. It depends on nothing else in the crate, so the production path can never
//! come to depend on it.
//!
//! The contract it reproduces is TokenIDP's real wire behaviour: JSON *or* form bodies with
//! field names in both spellings, the `value`/`data` envelopes, `error.code` always empty,
//! PascalCase 500s for bad codes, 88-character standard-Base64 refresh tokens with rotation
//! always on, `DELETE /revoke` with a Bearer token, discovery's non-standard keys, tokens with
//! no or a wrong `kid`, and an ID token that expires in ten years.
//!
//! Layout (each file imports only the ones below it):
//!
//! ```text
//! mod.rs         TokenIdp: start, test controls and observations, shutdown
//! http.rs        accept loop, reading and recording requests, Fault::Down, routing
//! authorize.rs   GET/POST /authorize: checks, login (auto or form), code, redirect
//! login_page.rs  the HTML login form
//! logout.rs      GET /logout
//! revoke.rs      DELETE /revoke (TokenIDP), POST /revoke (RFC 7009, OAuth2 style only)
//! userinfo.rs    GET /userinfo, POST /introspect
//! discovery.rs   /.well-known/openid-configuration and /.well-known/jwks.json
//! token.rs       POST /token: client authentication, refresh and code grants
//! request.rs     one request read in full; lenient JSON-or-form field parsing
//! faults.rs      canned answers of injected /token faults
//! reply.rs       response helpers and the /token success and failure shapes per style
//! grant.rs       claims, signing, refresh-token storage for one grant
//! state.rs       clients, users, refresh tokens, codes, sessions, records; spending rules
//! jwt.rs         the embedded development key, RS256 signing and checking, JWKS
//! ids.rs         UUIDs and 64-byte standard-Base64 refresh tokens
//! options.rs     Options, Client, User, ResponseStyle, KidMode, LoginMode, Fault
//! ```

mod authorize;
mod discovery;
mod faults;
mod grant;
mod http;
mod ids;
mod jwt;
mod login_page;
mod logout;
mod options;
mod reply;
mod request;
mod revoke;
mod state;
mod token;
mod userinfo;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

pub use options::{Client, Fault, KidMode, LoginMode, Options, ResponseStyle, User};
pub use state::{RecordedRequest, RefreshTokenState};

use options::words;
use state::Shared;

/// Tokens handed out by `TokenIdp::issue`, as if a login had just happened.
#[derive(Clone, Debug)]
pub struct Issued {
    pub access_token: String,
    /// Empty when the scope has no `offline_access` (TokenIDP then issues no refresh token).
    pub refresh_token: String,
    pub id_token: String,
    pub expires_in: u64,
}

/// A running emulator. Cheap to clone; every clone controls the same server.
#[derive(Clone, Debug)]
pub struct TokenIdp {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    done: watch::Receiver<bool>,
}

impl TokenIdp {
    /// Serves on `listener` in a background tokio task until `shutdown()` (dropping every
    /// handle does not stop it). Bind `127.0.0.1:0` in tests.
    pub async fn start(listener: TcpListener, options: Options) -> std::io::Result<TokenIdp> {
        let addr = listener.local_addr()?;
        // A wildcard bind is reached through loopback; the URL must be one a client can call.
        let ip = match addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let url = format!("http://{}", SocketAddr::new(ip, addr.port()));
        let shared = Arc::new(Shared::new(url, options));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        tokio::spawn(http::serve(listener, shared.clone(), shutdown_rx, done_tx));
        Ok(TokenIdp {
            inner: Arc::new(Inner {
                shared,
                shutdown: shutdown_tx,
                done: done_rx,
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// `http://127.0.0.1:PORT`, no trailing slash: the issuer (`iss`) of every token.
    pub fn url(&self) -> String {
        self.shared().url.clone()
    }

    /// Issues tokens out of band, as if `user_login` had just logged in to `client_id` with
    /// `scope` (not checked against the client). The refresh token is stored like any other.
    ///
    /// # Panics
    /// On an unknown client or user: a test set-up mistake.
    pub fn issue(&self, client_id: &str, user_login: &str, scope: &str) -> Issued {
        let shared = self.shared();
        let mut st = shared.lock();
        let client = st
            .client(client_id)
            .unwrap_or_else(|| panic!("tokenidp emulator: unknown client {client_id:?}"))
            .clone();
        let user = st
            .user_by_login(user_login)
            .unwrap_or_else(|| panic!("tokenidp emulator: unknown user {user_login:?}"))
            .clone();
        let scopes = words(scope);
        let refresh = grant::wants_refresh_token(&scopes).then_some(scopes.as_slice());
        let minted = grant::mint(shared, &mut st, &client, &user, &scopes, refresh, None)
            .expect("tokenidp emulator: minting tokens failed");
        Issued {
            access_token: minted.access_token,
            refresh_token: minted.refresh_token.unwrap_or_default(),
            id_token: minted.id_token,
            expires_in: minted.expires_in,
        }
    }

    /// Injects a fault: on `/token` only, except `Down`, which drops every connection.
    pub fn set_fault(&self, fault: Fault) {
        self.shared().lock().fault = fault;
    }

    pub fn set_style(&self, style: ResponseStyle) {
        self.shared().lock().style = style;
    }

    /// Signs arbitrary claims with the emulator's key and current `kid` mode: lets tests build
    /// ID tokens with a wrong `aud`, `iss`, `nonce` or `exp`.
    pub fn sign(&self, claims: &serde_json::Value) -> String {
        let shared = self.shared();
        let kid_mode = shared.lock().kid_mode;
        let claims = claims.as_object().cloned().unwrap_or_default();
        shared
            .signer
            .sign(&claims, kid_mode)
            .expect("signing with the development key")
    }

    /// Addition: changes the `kid` header of tokens issued from now on.
    pub fn set_kid_mode(&self, kid_mode: KidMode) {
        self.shared().lock().kid_mode = kid_mode;
    }

    /// Enables or disables a client (a disabled one gets 401 on every refresh).
    ///
    /// # Panics
    /// On an unknown client.
    pub fn set_client_enabled(&self, client_id: &str, enabled: bool) {
        self.client_mut(client_id, |c| c.enabled = enabled);
    }

    /// Rotates a client's secret (`None` makes it public).
    ///
    /// # Panics
    /// On an unknown client.
    pub fn set_client_secret(&self, client_id: &str, secret: Option<String>) {
        self.client_mut(client_id, |c| c.secret = secret);
    }

    /// Replaces a client's allowed scopes; refreshes are checked against the new list.
    ///
    /// # Panics
    /// On an unknown client.
    pub fn set_client_scopes(&self, client_id: &str, scopes: Vec<String>) {
        self.client_mut(client_id, |c| c.scopes = scopes);
    }

    fn client_mut(&self, client_id: &str, change: impl FnOnce(&mut Client)) {
        let mut st = self.shared().lock();
        let client = st
            .client_mut(client_id)
            .unwrap_or_else(|| panic!("tokenidp emulator: unknown client {client_id:?}"));
        change(client);
    }

    /// Revokes every live refresh token, as a policy change invalidating all sessions would.
    /// Already consumed tokens stay `Consumed`.
    pub fn revoke_all(&self) {
        let mut st = self.shared().lock();
        for record in st.refresh_tokens.values_mut() {
            if record.status == RefreshTokenState::Active {
                record.status = RefreshTokenState::Revoked;
            }
        }
    }

    /// How many `/token` requests arrived (every grant, every fault, `Down` included).
    pub fn token_calls(&self) -> usize {
        self.shared().lock().token_calls
    }

    /// How many `/token` requests asked for the `refresh_token` grant (faults included).
    pub fn refresh_calls(&self) -> usize {
        self.shared().lock().refresh_calls
    }

    /// Every request received, on every path, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared().lock().requests.clone()
    }

    /// Every access, refresh and ID token and every code ever issued (to scan logs for).
    pub fn issued_secrets(&self) -> Vec<String> {
        self.shared().lock().issued_secrets.clone()
    }

    pub fn refresh_token_state(&self, refresh_token: &str) -> RefreshTokenState {
        self.shared()
            .lock()
            .refresh_state(refresh_token, Instant::now())
    }

    /// Refresh tokens that `/revoke` actually revoked (live ones), in order.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.shared().lock().revoked_via_endpoint.clone()
    }

    /// Addition: consumed refresh tokens that were presented again (reuse), in order. A proxy
    /// that coalesces its refreshes leaves this empty.
    pub fn replayed_refresh_tokens(&self) -> Vec<String> {
        self.shared().lock().replayed.clone()
    }

    /// The `kid` of the JWKS key (tokens carry it only with `KidMode::Match`).
    pub fn jwks_kid(&self) -> String {
        jwt::JWKS_KID.to_owned()
    }

    /// Stops accepting, closes the open connections, and returns once the server task ended.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let mut done = self.inner.done.clone();
        // An error means the task is gone already (it dropped its sender): done either way.
        let _ = done.wait_for(|done| *done).await;
    }
}
