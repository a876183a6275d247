//! `GET /auth/login?return_to=/path`: start an authorization-code flow with PKCE (RFC 7636,
//! S256), a random `state` and a `nonce`, and redirect the browser to the IdP.
//!
//! The authorization parameters are built once, in order. With pushed authorization (RFC 9126,
//! `idp.pushed_authorization`, decided in `idp/discovery.rs`) they are POSTed to the IdP first
//! and the browser carries only `client_id` and the `request_uri` it answered; otherwise they
//! go in the redirect's query (the classic request).

use super::flow::{self, Flow};
use super::page::error_page;
use super::return_to;
use crate::app::App;
use crate::body::{empty, Body};
use crate::config::IdpConfig;
use crate::crypto::random_token;
use crate::dpop::DpopKey;
use crate::error::{error_response, idp_unavailable, ErrorCode};
use crate::idp::{IdpError, Rejection};
use crate::refresh::unix_now;
use crate::request_session::with_cookies;
use crate::secret::CodeVerifier;
use http::header::{CACHE_CONTROL, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use tracing::{info, warn};
use url::Url;

pub async fn login<B>(app: &App, request: &Request<B>) -> Response<Body> {
    let return_to = super::query_param(request.uri(), "return_to");
    let redirect_uri = &app.config.idp.redirect_uri;
    // The callback's origin is the proxy's public origin: the destination must stay on it.
    let Some(return_to) = return_to::validate(return_to.as_deref(), redirect_uri) else {
        return error_response(
            ErrorCode::BadRequest,
            "return_to must be a URL on this site, like /dashboard",
        );
    };
    let Some(metadata) = app.idp.metadata() else {
        return idp_unavailable(None);
    };
    let Some(authorization_endpoint) = metadata.authorization_endpoint.clone() else {
        return error_response(
            ErrorCode::IdpUnavailable,
            "login is not available: the IdP has no authorization endpoint",
        );
    };
    let config = &app.config.idp;
    let verifier = random_token(32);
    let challenge = crate::b64::url_encode(ring::digest::digest(
        &ring::digest::SHA256,
        verifier.as_bytes(),
    ));
    // DPoP: the session's key is made now, and the code bound to it (RFC 9449 §10).
    let dpop = match config.dpop.then(DpopKey::generate).transpose() {
        Ok(key) => key,
        Err(e) => {
            tracing::error!(error = %e, "no DPoP key for a new login");
            return error_response(ErrorCode::KeyUnavailable, "cannot make a DPoP key");
        }
    };
    let flow = Flow {
        state: random_token(32),
        verifier: CodeVerifier::new(verifier),
        nonce: random_token(16),
        return_to,
        redirect_uri: redirect_uri.to_string(),
        created_at: unix_now(),
        dpop,
    };
    let params = authorization_params(config, &flow, &challenge);
    let (location, pushed) = if metadata.par_endpoint.is_some() {
        match app.idp.push_authorization(&params).await {
            Ok(pushed) => {
                let browser = [
                    ("client_id".to_string(), config.client_id.clone()),
                    ("request_uri".to_string(), pushed.request_uri),
                ];
                (with_query(authorization_endpoint, &browser), true)
            }
            Err(IdpError::Transient { kind, retry_after }) => {
                warn!(event = "login_failed", reason = %kind, "pushed authorization request failed");
                return idp_unavailable(retry_after);
            }
            Err(IdpError::Rejected { reason, detail }) => {
                warn!(event = "login_failed", %reason, %detail, "the IdP refused the pushed authorization request");
                return refused(app, reason);
            }
        }
    } else {
        (with_query(authorization_endpoint, &params), false)
    };
    let cookies = flow::start(&app.codec, request.headers(), &flow, flow.created_at);
    info!(
        event = "login_started",
        pushed_authorization = pushed,
        "redirecting to the IdP"
    );
    let mut response = Response::new(empty());
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match HeaderValue::from_str(location.as_str()) {
        Ok(value) => {
            headers.insert(LOCATION, value);
        }
        Err(_) => {
            return error_response(ErrorCode::BadRequest, "cannot build the authorization URL")
        }
    }
    with_cookies(response, cookies)
}

/// The authorization request's parameters (RFC 6749 §4.1.1, RFC 7636 §4.3, OpenID Connect
/// Core §3.1.2.1), in the order they are sent, whether in a URL or a pushed request.
fn authorization_params(config: &IdpConfig, flow: &Flow, challenge: &str) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", config.client_id.as_str()),
        ("redirect_uri", flow.redirect_uri.as_str()),
        ("scope", config.scope.as_str()),
        ("state", flow.state.as_str()),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
        // OpenID providers bind the ID token to this login with it; TokenIDP ignores it.
        ("nonce", flow.nonce.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // DPoP: the code is bound to the session's key-to-be (RFC 9449 §10), pushed or not.
    if let Some(key) = &flow.dpop {
        params.push(("dpop_jkt".to_string(), key.thumbprint().to_string()));
    }
    params.extend(config.extra_authorize_params.iter().cloned());
    params
}

fn with_query(mut endpoint: Url, params: &[(String, String)]) -> Url {
    endpoint.query_pairs_mut().extend_pairs(params);
    endpoint
}

/// The IdP refused the pushed request (RFC 9126 §2.3): a page, as for a refused login at the
/// callback; the IdP's own words stay in the log.
fn refused(app: &App, reason: Rejection) -> Response<Body> {
    let message = match reason {
        Rejection::InvalidClient => {
            "The identity provider did not accept this application's client authentication \
             (invalid_client) for the login request. The operator has to fix the client's \
             registration or credentials."
        }
        _ => {
            "The identity provider refused the login request. The operator can find the \
             provider's reason in the proxy's log."
        }
    };
    let login_path = format!("{}/login", app.config.proxy.auth_prefix);
    error_page(
        ErrorCode::BadRequest,
        StatusCode::BAD_REQUEST,
        message,
        &login_path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_keep_their_order_and_extras_come_last() {
        let key = format!("k1:{}", crate::b64::std_encode([7u8; 32]));
        let env = |name: &str| (name == crate::config::COOKIE_KEYS_ENV).then(|| key.clone());
        let config = crate::config::Config::from_toml(
            r#"
[upstream]
url = "http://127.0.0.1:1"
[idp]
dialect = "oauth2"
issuer = "https://idp.example.com"
client_id = "spa"
scope = "openid offline_access"
redirect_uri = "https://app.example.com/auth/callback"
extra_authorize_params = { prompt = "consent" }
"#,
            &env,
        )
        .expect("valid");
        let flow = Flow {
            state: "st".into(),
            verifier: CodeVerifier::new("v"),
            nonce: "n".into(),
            return_to: "/".into(),
            redirect_uri: "https://app.example.com/auth/callback".into(),
            created_at: 0,
            dpop: None,
        };
        let params = authorization_params(&config.idp, &flow, "ch");
        let keys: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "response_type",
                "client_id",
                "redirect_uri",
                "scope",
                "state",
                "code_challenge",
                "code_challenge_method",
                "nonce",
                "prompt"
            ]
        );
        let url = with_query(
            Url::parse("https://idp.example.com/auth?tenant=a").expect("url"),
            &params,
        );
        assert_eq!(
            url.as_str(),
            "https://idp.example.com/auth?tenant=a&response_type=code&client_id=spa&redirect_uri=\
             https%3A%2F%2Fapp.example.com%2Fauth%2Fcallback&scope=openid+offline_access&state=st\
             &code_challenge=ch&code_challenge_method=S256&nonce=n&prompt=consent"
        );
        // With DPoP, the key's thumbprint before the operator's own parameters.
        let key = crate::dpop::DpopKey::generate().expect("key");
        let flow = Flow {
            dpop: Some(key.clone()),
            ..flow
        };
        let params = authorization_params(&config.idp, &flow, "ch");
        assert_eq!(
            params[params.len() - 2],
            ("dpop_jkt".to_string(), key.thumbprint().to_string())
        );
    }
}
