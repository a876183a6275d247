//! The emulator's configuration: clients, users, response style, key-id mode, login mode, faults.

use std::time::Duration;

/// How the emulator starts. `Options::default()` is the demo set-up: one confidential client
/// (`tokenidp-react-dev` / `dev-secret`) and one user (`demo` / `demo`).
#[derive(Clone, Debug)]
pub struct Options {
    /// Lifetime of access tokens (`exp - iat`, and `expires_in`).
    pub access_token_ttl: Duration,
    /// Sliding lifetime of refresh tokens: every rotation starts a new window, with no
    /// absolute cap, as TokenIDP does in practice. Measured on `tokio::time`, so a test with a
    /// paused clock can expire them by advancing it. `Duration::ZERO` issues them expired.
    pub refresh_token_ttl: Duration,
    /// Shape of `/token` answers (can be changed later with `TokenIdp::set_style`).
    pub style: ResponseStyle,
    /// What the JWT `kid` header says.
    pub kid_mode: KidMode,
    pub clients: Vec<Client>,
    pub users: Vec<User>,
    pub login: LoginMode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            access_token_ttl: Duration::from_secs(300),
            refresh_token_ttl: Duration::from_secs(4 * 3600),
            style: ResponseStyle::Server,
            kid_mode: KidMode::None,
            clients: vec![Client::default()],
            users: vec![User::default()],
            login: LoginMode::Auto,
        }
    }
}

/// A registered application. `secret: None` makes it a public client.
#[derive(Clone, Debug)]
pub struct Client {
    pub client_id: String,
    /// `None` = public client (PKCE only); `Some` = confidential client.
    pub secret: Option<String>,
    /// Compared byte for byte. TokenIDP allows exactly one registered URI; a `Vec` lets tests
    /// register more.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes the client may be granted; refreshes are checked against the *current* list.
    pub scopes: Vec<String>,
    /// A disabled client gets 401 "Client authentication failed." on every `/token` call.
    pub enabled: bool,
    /// Grant types enabled for the client (`authorization_code`, `refresh_token`).
    pub grants: Vec<String>,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            client_id: "tokenidp-react-dev".to_owned(),
            secret: Some("dev-secret".to_owned()),
            redirect_uris: vec!["http://localhost:8080/auth/callback".to_owned()],
            post_logout_redirect_uris: vec!["http://localhost:8080/".to_owned()],
            scopes: words("openid profile email offline_access api.read"),
            enabled: true,
            grants: words("authorization_code refresh_token"),
        }
    }
}

/// A user who can log in.
#[derive(Clone, Debug)]
pub struct User {
    pub id: u64,
    pub login: String,
    pub password: String,
    pub name: String,
    pub email: String,
}

impl Default for User {
    fn default() -> Self {
        User {
            id: 42,
            login: "demo".to_owned(),
            password: "demo".to_owned(),
            name: "Demo User".to_owned(),
            email: "demo@example.com".to_owned(),
        }
    }
}

/// The shape of `/token` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseStyle {
    /// What the published guide shows:
    /// `{"isSuccess":true,"data":{"accessToken","refreshToken","tokenType","expiresIn","idToken"}}`.
    Guide,
    /// What the server really answers:
    /// `{"isSuccess":true,"value":{"access_token",..,"expireAt","isSuccess":true,"userId":42}}`.
    Server,
    /// Plain RFC 6749 §5.1 success and §5.2 errors, to run the proxy's `oauth2` dialect
    /// against the same emulator.
    OAuth2,
}

/// What the `kid` JWT header carries. TokenIDP tokens may have no `kid`, or one that is not in
/// the JWKS; a verifier must try the keys it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KidMode {
    /// No `kid` header.
    None,
    /// A `kid` that is not the JWKS one.
    Mismatch,
    /// The JWKS `kid`.
    Match,
}

/// How `/authorize` logs a user in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginMode {
    /// Logs the first user in at once and redirects back (headless tests).
    Auto,
    /// Shows a small HTML login form; `POST /authorize` checks it, then redirects back.
    Form,
}

/// A failure injected into the emulator. All but `Down` apply to `/token` only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every connection, on every path, is closed without a response.
    Down,
    /// `/token` answers only after this delay.
    Slow(Duration),
    /// 429 `{"error":"rate_limit_exceeded",..}` with `Retry-After`.
    RateLimited {
        retry_after_secs: u64,
    },
    /// 500 with TokenIDP's PascalCase unhandled-error body.
    PascalCase500,
    /// 502 with an HTML body, as a reverse proxy in front of the IdP would answer.
    Html502,
    /// 200 `application/json` whose body stops in the middle of an object.
    TruncatedJson,
    /// 200 `{"isSuccess":true,"value":{"isSuccess":false,..}}` without an access token.
    InnerFailure,
    /// 200 `application/json` body of exactly this many bytes.
    HugeBody(usize),
    /// Addition: 404 `{"error":"tenant_unavailable"}`, TokenIDP's answer for an unknown tenant.
    TenantUnavailable,
}

/// Splits a space-separated list (scopes, grants) into owned words.
pub(super) fn words(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_owned).collect()
}
