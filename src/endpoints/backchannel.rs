//! `POST /auth/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0. The IdP posts a
//! `logout_token` (form) when a user's session there ends; every session of ours that logged in
//! within that IdP session (`sid`), or with only `sub`, every session of that user begun by now,
//! is ended on its next request on any replica (401 `login_required`, cookies cleared, its
//! refresh token revoked once).
//!
//! Answers (§2.8): 200 with `Cache-Control: no-store` once the end is recorded (in Redis too,
//! with `[coordination]`); 400 `{"error": "invalid_request", "error_description": ...}` for a
//! token that is not valid or was seen before, 400 `temporarily_unavailable` when Redis did not
//! take the end in time (it holds on this replica and is written again in the background).
//! Server to server: no cookie, no CSRF header; the token's signature is the authentication.

use crate::app::App;
use crate::body::{full, Body};
use crate::ended::{Entry, Kind, Reason};
use crate::idp::logout_token::{LEEWAY, MAX_AGE};
use crate::refresh::unix_now;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use std::time::Duration;
use tracing::{info, warn};

/// A logout token is a JWT of a few hundred bytes to a few KiB.
const MAX_BODY: usize = 64 * 1024;
/// The IdP sends the whole form at once.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn backchannel_logout<B>(app: &App, request: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return refused(
            app,
            "content_type",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let body = http_body_util::Limited::new(request.into_body(), MAX_BODY);
    let bytes = match tokio::time::timeout(BODY_TIMEOUT, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => {
            return refused(
                app,
                "body",
                "the body could not be read (too large or too slow)",
            )
        }
    };
    let mut tokens = url::form_urlencoded::parse(&bytes).filter(|(k, _)| k == "logout_token");
    let token = match (tokens.next(), tokens.next()) {
        (Some((_, token)), None) => token,
        _ => return refused(app, "form", "the form must carry exactly one logout_token"),
    };
    let now = unix_now();
    let logout = match app.idp.verify_logout_token(&token, now).await {
        Ok(logout) => logout,
        Err(e) => {
            info!(event = "backchannel_logout", accepted = false, error = %e, "logout token refused");
            return refused(app, e.reason(), &e.to_string());
        }
    };
    // Replays: remembered as long as the token could be accepted at all.
    let until = logout.iat + MAX_AGE + 2 * LEEWAY;
    let issuer = app.idp.metadata().and_then(|m| m.issuer.clone());
    let name = format!("{}\0{}", issuer.unwrap_or_default(), logout.jti);
    if !app.ended.first_use(&name, until.max(now + 1), now).await {
        info!(
            event = "backchannel_logout",
            accepted = false,
            "logout token replayed"
        );
        return refused(app, "replayed", "this logout token was used before (jti)");
    }
    let lifetime = app.config.session.lifetime.as_secs();
    // `sid` names the IdP session that ended: its sessions only (the user may have others).
    let (entry, by) = match (&logout.sid, &logout.sub) {
        (Some(sid), _) => (
            Entry::named(Kind::Sid, sid, Reason::Backchannel, lifetime, now),
            "sid",
        ),
        (None, Some(sub)) => (
            Entry::named(Kind::Sub, sub, Reason::Backchannel, lifetime, now),
            "sub",
        ),
        (None, None) => unreachable!("verify_logout_token requires sid or sub"),
    };
    match app.ended.end(entry, now, true).await {
        Ok(()) => {
            app.metrics.logout("backchannel");
            info!(
                event = "backchannel_logout",
                accepted = true,
                by,
                "sessions ended by the IdP"
            );
            answer(StatusCode::OK, None)
        }
        Err(e) => {
            warn!(event = "backchannel_logout", accepted = true, by, error = %e, "sessions ended on this replica only for now");
            answer(
                StatusCode::BAD_REQUEST,
                Some(("temporarily_unavailable", "the logout is recorded on this replica only for now; the others learn of it when the shared store answers")),
            )
        }
    }
}

fn refused(app: &App, reason: &'static str, description: &str) -> Response<Body> {
    app.metrics.logout_token_refusal(reason);
    answer(
        StatusCode::BAD_REQUEST,
        Some(("invalid_request", description)),
    )
}

fn answer(status: StatusCode, error: Option<(&str, &str)>) -> Response<Body> {
    let body = match error {
        Some((error, description)) => {
            serde_json::json!({ "error": error, "error_description": description }).to_string()
        }
        None => String::new(),
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if error.is_some() {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
