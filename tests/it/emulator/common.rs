//! Shared helpers for the emulator's HTTP tests: start it on 127.0.0.1:0, a client that does
//! not follow redirects, PKCE, and a full authorize + code exchange.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};
use token_handler::demo::tokenidp::{Client, Options, TokenIdp};

pub const CLIENT: &str = "tokenidp-react-dev";
pub const SECRET: &str = "dev-secret";
pub const REDIRECT: &str = "http://localhost:8080/auth/callback";
pub const FULL_SCOPE: &str = "openid profile email offline_access api.read";

pub async fn start(options: Options) -> TokenIdp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    TokenIdp::start(listener, options).await.expect("start")
}

/// The default options plus a public client `spa-public` and a second confidential client.
pub fn options_with_more_clients() -> Options {
    let mut options = Options::default();
    options.clients.push(Client {
        client_id: "spa-public".into(),
        secret: None,
        redirect_uris: vec!["http://127.0.0.1:9999/cb".into()],
        ..Client::default()
    });
    options.clients.push(Client {
        client_id: "other-app".into(),
        secret: Some("other-secret".into()),
        ..Client::default()
    });
    options
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

pub async fn post_json(idp: &TokenIdp, body: Value) -> (u16, Value) {
    let resp = http()
        .post(format!("{}/token", idp.url()))
        .json(&body)
        .send()
        .await
        .expect("send");
    read(resp).await
}

pub async fn post_form(idp: &TokenIdp, pairs: &[(&str, &str)], auth: Option<&str>) -> (u16, Value) {
    let mut req = http()
        .post(format!("{}/token", idp.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(pairs).expect("form"));
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    read(req.send().await.expect("send")).await
}

pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// A guide-shaped JSON refresh (camelCase, no secret).
pub async fn refresh_json(idp: &TokenIdp, refresh_token: &str) -> (u16, Value) {
    post_json(
        idp,
        json!({"grantType": "refresh_token", "clientId": CLIENT, "refreshToken": refresh_token}),
    )
    .await
}

/// The refresh token of a `Server`-style success.
pub fn server_refresh_token(body: &Value) -> String {
    body["value"]["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned()
}

/// Asserts TokenIDP's camelCase failure envelope with its always-empty code.
pub fn assert_tokenidp_error(body: &Value, message: &str) {
    assert_eq!(body["isSuccess"], json!(false), "{body}");
    assert_eq!(body["error"]["code"], json!(""), "{body}");
    assert_eq!(body["error"]["userId"], json!(0), "{body}");
    assert_eq!(body["error"]["error"], json!(message), "{body}");
    let correlation = body["error"]["correlationId"]
        .as_str()
        .expect("correlationId");
    assert_eq!(correlation.len(), 36, "{body}");
}

/// Asserts TokenIDP's PascalCase unhandled-error body.
pub fn assert_pascal_case_500(body: &Value) {
    assert_eq!(body["IsSuccess"], json!(false), "{body}");
    assert_eq!(body["Error"]["Code"], json!(""), "{body}");
    assert_eq!(body["Error"]["UserId"], json!(0), "{body}");
    assert_eq!(
        body["Error"]["Error"],
        json!("An error has occurred, please contact support.")
    );
    assert_eq!(
        body["Error"]["CorrelationId"].as_str().map(str::len),
        Some(36)
    );
}

/// A fresh PKCE pair (verifier, S256 challenge).
pub fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("random");
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

/// The `/authorize` URL for the default client.
pub fn authorize_url(idp: &TokenIdp, challenge: &str, state: &str, scope: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", scope),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        ("state", state),
        ("nonce", "n-0S6_WzA2Mj"),
    ])
    .expect("query");
    format!("{}/authorize?{query}", idp.url())
}

/// The query parameters of a redirect's `Location`.
pub fn location_params(resp: &reqwest::Response) -> (String, Vec<(String, String)>) {
    let location = resp
        .headers()
        .get("location")
        .expect("location")
        .to_str()
        .expect("ascii")
        .to_owned();
    let url = url::Url::parse(&location).expect("url");
    let pairs = url.query_pairs().into_owned().collect();
    (location, pairs)
}

pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Runs `/authorize` (auto login) and returns (code, verifier).
pub async fn authorize(idp: &TokenIdp, scope: &str) -> (String, String) {
    let (verifier, challenge) = pkce();
    let resp = http()
        .get(authorize_url(idp, &challenge, "st", scope))
        .send()
        .await
        .expect("authorize");
    assert_eq!(resp.status().as_u16(), 302);
    let (_, pairs) = location_params(&resp);
    (param(&pairs, "code").expect("code").to_owned(), verifier)
}

/// Exchanges a code the way the guide's clients do (JSON, camelCase, secret in the body).
pub async fn exchange(idp: &TokenIdp, code: &str, verifier: &str) -> (u16, Value) {
    post_json(
        idp,
        json!({
            "grantType": "authorization_code",
            "clientId": CLIENT,
            "clientSecret": SECRET,
            "code": code,
            "codeVerifier": verifier,
            "redirectUri": REDIRECT,
        }),
    )
    .await
}
