//! `GET /auth/callback`: finish the login: check `state` against the flow cookie, exchange the
//! code (with the PKCE verifier), verify the ID token, insist on a refresh token, seal the
//! session and continue to `return_to`.

use super::flow;
use super::page::{continue_to, error_page};
use crate::app::App;
use crate::body::Body;
use crate::crypto::random_token;
use crate::error::ErrorCode;
use crate::idp::{Grant, IdpError, Transient};
use crate::refresh::{expires_at, unix_now};
use crate::secret::AuthCode;
use crate::session::Session;
use crate::sessions::with_cookies;
use http::{Request, Response, StatusCode};
use serde_json::{Map, Value};
use tracing::{info, warn};

pub async fn callback<B>(app: &App, request: &Request<B>) -> Response<Body> {
    let login_path = format!("{}/login", app.config.proxy.auth_prefix);
    let fail = |code: ErrorCode, status: StatusCode, message: &str| {
        error_page(code, status, message, &login_path)
    };
    let uri = request.uri();
    let Some(state) = super::query_param(uri, "state") else {
        return fail(
            ErrorCode::BadRequest,
            StatusCode::BAD_REQUEST,
            "The answer from the identity provider has no state.",
        );
    };
    let now = unix_now();
    let (flow, clear_flow) = flow::take(&app.codec, request.headers(), &state, now);
    let Some(flow) = flow else {
        warn!(
            event = "login_failed",
            reason = "unknown_state",
            "callback without a matching login flow"
        );
        let response = fail(
            ErrorCode::BadRequest,
            StatusCode::BAD_REQUEST,
            "No login is in progress for this answer: it expired, was already used, or started in another browser.",
        );
        return with_cookies(response, vec![clear_flow]);
    };
    if let Some(error) = super::query_param(uri, "error") {
        // The provider's words, reduced to what is safe to show.
        let error: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        let description: String = super::query_param(uri, "error_description")
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect();
        warn!(event = "login_failed", reason = "provider_error", error = %error, "the IdP answered the login with an error");
        let message = format!("The identity provider refused the login: {error}. {description}");
        return with_cookies(
            fail(ErrorCode::BadRequest, StatusCode::BAD_REQUEST, &message),
            vec![clear_flow],
        );
    }
    let Some(code) = super::query_param(uri, "code").map(AuthCode::new) else {
        return with_cookies(
            fail(
                ErrorCode::BadRequest,
                StatusCode::BAD_REQUEST,
                "The answer from the identity provider has no code.",
            ),
            vec![clear_flow],
        );
    };
    let grant = Grant::AuthorizationCode {
        code: &code,
        verifier: &flow.verifier,
        redirect_uri: &flow.redirect_uri,
    };
    let tokens = match app.idp.token(&grant).await {
        Ok(tokens) => tokens,
        Err(IdpError::Transient {
            kind:
                kind @ (Transient::Connect
                | Transient::Timeout
                | Transient::NotDiscovered
                | Transient::RateLimited),
            ..
        }) => {
            warn!(event = "login_failed", reason = %kind, "code exchange failed transiently");
            return with_cookies(
                fail(
                    ErrorCode::IdpUnavailable,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The identity provider is unavailable. Try again in a moment.",
                ),
                vec![clear_flow],
            );
        }
        // A code cannot be retried: any other answer means this login is over. (TokenIDP
        // answers a used code or a PKCE mismatch with a 500.)
        Err(e) => {
            warn!(event = "login_failed", reason = %e, "the IdP refused the authorization code");
            return with_cookies(
                fail(
                    ErrorCode::BadRequest,
                    StatusCode::BAD_REQUEST,
                    "The identity provider refused the authorization code; start the login again.",
                ),
                vec![clear_flow],
            );
        }
    };
    let Some(refresh_token) = tokens.refresh_token.clone() else {
        warn!(
            event = "login_failed",
            reason = "no_refresh_token",
            "the IdP issued no refresh token"
        );
        let message =
            "The identity provider issued no refresh token. Ask for the `offline_access` scope \
                       (idp.scope), and for providers that need it set `prompt=consent` \
                       (idp.extra_authorize_params).";
        return with_cookies(
            fail(ErrorCode::BadRequest, StatusCode::BAD_REQUEST, message),
            vec![clear_flow],
        );
    };
    let wants_openid = app
        .config
        .idp
        .scope
        .split_whitespace()
        .any(|s| s == "openid");
    let claims = match (&tokens.id_token, wants_openid) {
        (Some(id_token), _) => match app
            .idp
            .verify_id_token(id_token.expose(), Some(&flow.nonce))
            .await
        {
            Ok(claims) => claims,
            Err(e) => {
                warn!(event = "login_failed", reason = %e, "ID token rejected");
                return with_cookies(
                    fail(
                        ErrorCode::BadRequest,
                        StatusCode::BAD_REQUEST,
                        &format!("The ID token is not valid: {e}."),
                    ),
                    vec![clear_flow],
                );
            }
        },
        (None, true) => {
            warn!(
                event = "login_failed",
                reason = "no_id_token",
                "the IdP issued no ID token for an openid login"
            );
            return with_cookies(
                fail(
                    ErrorCode::BadRequest,
                    StatusCode::BAD_REQUEST,
                    "The identity provider issued no ID token.",
                ),
                vec![clear_flow],
            );
        }
        (None, false) => Map::new(),
    };
    let kept: Map<String, Value> = app
        .config
        .session
        .claims
        .iter()
        .filter_map(|name| claims.get(name).map(|v| (name.clone(), v.clone())))
        .collect();
    let session = Session {
        id: random_token(12),
        access_expires_at: expires_at(&tokens, now),
        access_issued_at: now,
        access_token: tokens.access_token,
        refresh_token,
        scope: tokens.scope.unwrap_or_else(|| app.config.idp.scope.clone()),
        claims: kept,
        id_token: tokens
            .id_token
            .filter(|_| app.config.idp.logout_id_token_hint),
        started_at: now,
    };
    let incoming = app.codec.incoming(request.headers());
    let mut cookies = app.codec.seal(&session, now);
    cookies.extend(app.codec.clear_stale(cookies.len(), &incoming));
    cookies.push(clear_flow);
    info!(event = "login", "session created");
    with_cookies(continue_to(&flow.return_to), cookies)
}
