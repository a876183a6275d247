//! `GET /auth/login?return_to=/path`: start an authorization-code flow with PKCE (RFC 7636,
//! S256), a random `state` and a `nonce`, and redirect the browser to the IdP.

use super::flow::{self, Flow};
use super::return_to;
use crate::app::App;
use crate::body::{empty, Body};
use crate::crypto::random_token;
use crate::dpop::DpopKey;
use crate::error::{error_response, idp_unavailable, ErrorCode};
use crate::refresh::unix_now;
use crate::request_session::with_cookies;
use crate::secret::CodeVerifier;
use http::header::{CACHE_CONTROL, LOCATION};
use http::{HeaderValue, Request, Response, StatusCode};
use tracing::info;

pub fn login<B>(app: &App, request: &Request<B>) -> Response<Body> {
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
    let Some(mut location) = metadata.authorization_endpoint.clone() else {
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
    {
        let mut query = location.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", &flow.redirect_uri)
            .append_pair("scope", &config.scope)
            .append_pair("state", &flow.state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            // OpenID providers bind the ID token to this login with it; TokenIDP ignores it.
            .append_pair("nonce", &flow.nonce);
        if let Some(key) = &flow.dpop {
            query.append_pair("dpop_jkt", key.thumbprint());
        }
        for (key, value) in &config.extra_authorize_params {
            query.append_pair(key, value);
        }
    }
    let cookies = flow::start(&app.codec, request.headers(), &flow, flow.created_at);
    info!(event = "login_started", "redirecting to the IdP");
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
