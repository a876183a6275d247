//! `GET /auth/callback`: finish the login: check `state` against the flow cookie, exchange the
//! code (with the PKCE verifier), verify the ID token, insist on a refresh token, seal the
//! session and continue to `return_to`.

use super::flow::{self, Flow};
use super::page::{continue_to, error_page};
use crate::app::App;
use crate::body::Body;
use crate::crypto::random_token;
use crate::error::ErrorCode;
use crate::idp::{Grant, IdpError, Transient};
use crate::refresh::{expires_at, unix_now};
use crate::request_session::with_cookies;
use crate::secret::AuthCode;
use crate::session::Session;
use http::{Request, Response, StatusCode, Uri};
use serde_json::{Map, Value};
use tracing::{info, warn};

/// Why a login did not complete: the metric outcome, what the log says, what the user sees.
struct Failure {
    outcome: &'static str,
    code: ErrorCode,
    status: StatusCode,
    log: String,
    message: String,
}

impl Failure {
    fn refused(
        outcome: &'static str,
        log: impl Into<String>,
        message: impl Into<String>,
    ) -> Failure {
        Failure {
            outcome,
            code: ErrorCode::BadRequest,
            status: StatusCode::BAD_REQUEST,
            log: log.into(),
            message: message.into(),
        }
    }
}

pub async fn callback<B>(app: &App, request: &Request<B>) -> Response<Body> {
    let now = unix_now();
    let state = super::query_param(request.uri(), "state").unwrap_or_default();
    let (flow, clear_flow) = flow::take(&app.codec, request.headers(), &state, now);
    let result = match flow {
        None => Err(Failure::refused(
            "unknown_state",
            "callback without a matching login flow",
            "No login is in progress for this answer: it expired, was already used, or started in another browser.",
        )),
        Some(flow) => complete(app, request.uri(), &flow, now).await.map(|session| (session, flow)),
    };
    match result {
        Ok((session, flow)) => {
            let incoming = app.codec.incoming(request.headers());
            let mut cookies = app.codec.seal(&session, now);
            app.metrics.session_cookies(&cookies);
            cookies.extend(app.codec.clear_stale(cookies.len(), &incoming.presence()));
            cookies.push(clear_flow);
            tracing::Span::current().record(
                "session",
                app.codec.keys().fingerprint(session.id.as_bytes()),
            );
            app.metrics.login("success");
            info!(event = "login", "session created");
            // Sealed by us at login, but checked again: the page must never send the browser off
            // this origin, whatever wrote the flow.
            let target =
                super::return_to::validate(Some(&flow.return_to), &app.config.idp.redirect_uri)
                    .unwrap_or_else(|| "/".to_string());
            with_cookies(continue_to(&target), cookies)
        }
        Err(failure) => {
            app.metrics.login(failure.outcome);
            warn!(event = "login_failed", outcome = failure.outcome, reason = %failure.log, "login did not complete");
            let login_path = format!("{}/login", app.config.proxy.auth_prefix);
            let page = error_page(failure.code, failure.status, &failure.message, &login_path);
            with_cookies(page, vec![clear_flow])
        }
    }
}

/// The callback's work once its flow is known: the new session, or why there is none.
async fn complete(app: &App, uri: &Uri, flow: &Flow, now: u64) -> Result<Session, Failure> {
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
        return Err(Failure::refused(
            "provider_error",
            format!("the IdP answered with error={error}"),
            format!("The identity provider refused the login: {error}. {description}"),
        ));
    }
    let code = super::query_param(uri, "code")
        .map(AuthCode::new)
        .ok_or_else(|| {
            Failure::refused(
                "missing_code",
                "no code",
                "The answer from the identity provider has no code.",
            )
        })?;
    let grant = Grant::AuthorizationCode {
        code: &code,
        verifier: &flow.verifier,
        redirect_uri: &flow.redirect_uri,
    };
    // A flow begun before `idp.dpop` was turned on gets its key now (its code is not bound).
    let dpop = match (&flow.dpop, app.config.idp.dpop) {
        (Some(key), _) => Some(key.clone()),
        (None, true) => Some(crate::dpop::DpopKey::generate().map_err(|e| Failure {
            outcome: "dpop_key",
            code: ErrorCode::KeyUnavailable,
            status: StatusCode::SERVICE_UNAVAILABLE,
            log: format!("no DPoP key: {e}"),
            message: "The login could not be completed; start it again.".into(),
        })?),
        (None, false) => None,
    };
    let tokens = app
        .idp
        .token(&grant, dpop.as_ref())
        .await
        .map_err(|e| match e {
            IdpError::Transient {
                kind:
                    kind @ (Transient::Connect
                    | Transient::Timeout
                    | Transient::NotDiscovered
                    | Transient::ClientCredentials
                    | Transient::Dpop
                    | Transient::RateLimited),
                ..
            } => Failure {
                outcome: "idp_unavailable",
                code: ErrorCode::IdpUnavailable,
                status: StatusCode::SERVICE_UNAVAILABLE,
                log: format!("code exchange failed: {kind}"),
                message: "The identity provider is unavailable. Try again in a moment.".into(),
            },
            // A code cannot be retried: any other answer ends this login. (TokenIDP answers a
            // used code or a PKCE mismatch with a 500.)
            other => Failure::refused(
                "code_refused",
                format!("the IdP refused the code: {other}"),
                "The identity provider refused the authorization code; start the login again.",
            ),
        })?;
    // `idp.dpop` asks for tokens no one can replay: a provider that answers with a Bearer
    // token (DPoP not enabled for this client) fails the login, where an operator sees it.
    if dpop.is_some() && !tokens.dpop_bound() {
        return Err(Failure::refused(
            "dpop_not_bound",
            "idp.dpop is on but the IdP issued a token_type other than DPoP",
            "The identity provider did not bind the tokens to this session's key (DPoP). \
             Enable DPoP for this client at the provider, or turn off idp.dpop.",
        ));
    }
    let refresh_token = tokens.refresh_token.clone().ok_or_else(|| {
        Failure::refused(
            "no_refresh_token",
            "the IdP issued no refresh token",
            "The identity provider issued no refresh token. Ask for the `offline_access` scope \
             (idp.scope), and for providers that need it set `prompt=consent` \
             (idp.extra_authorize_params).",
        )
    })?;
    let wants_openid = app
        .config
        .idp
        .scope
        .split_whitespace()
        .any(|s| s == "openid");
    let claims = match (&tokens.id_token, wants_openid) {
        (Some(id_token), _) => app
            .idp
            .verify_id_token(id_token.expose(), Some(&flow.nonce))
            .await
            .map_err(|e| {
                Failure::refused(
                    "id_token_invalid",
                    e.to_string(),
                    format!("The ID token is not valid: {e}."),
                )
            })?,
        (None, true) => {
            return Err(Failure::refused(
                "id_token_invalid",
                "no ID token for an openid login",
                "The identity provider issued no ID token.",
            ))
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
    let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
    Ok(Session {
        id: random_token(12),
        access_expires_at: expires_at(&tokens, now),
        access_issued_at: now,
        access_token: tokens.access_token,
        refresh_token,
        scope: tokens.scope.unwrap_or_else(|| app.config.idp.scope.clone()),
        claims: kept.into(),
        id_token: tokens
            .id_token
            .filter(|_| app.config.idp.logout_id_token_hint),
        started_at: now,
        sub: text("sub"),
        sid: text("sid"),
        last_used_at: now,
        dpop_bound: dpop.is_some(),
        dpop,
    })
}
