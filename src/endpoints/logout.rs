//! `POST /auth/logout` (CSRF-checked): revoke the refresh token at the IdP, delete every proxy
//! cookie, and hand the SPA the IdP's logout URL for RP-initiated logout.
//!
//! A failed revocation still logs out locally (and is logged): the browser loses the cookie,
//! and the session's id goes into the record of ended sessions, so no copy of its cookies is
//! honoured again, on any replica (the record is shared through Redis with `[coordination]`). The logout URL carries `client_id` and `post_logout_redirect_uri`; the ID token
//! (`id_token_hint`) only when `idp.logout_id_token_hint` is on, since it would put a token in
//! the browser and in a URL.

use super::flow;
use crate::app::App;
use crate::body::{full, Body};
use crate::config::Dialect;
use crate::csrf;
use crate::ended::Entry;
use crate::refresh::unix_now;
use crate::request_session::{self, freshen, with_cookies, Freshened};
use crate::session::{ReadOutcome, Session};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response};
use serde_json::json;
use std::sync::Arc;
use tracing::{info, warn};

pub async fn logout<B>(app: &App, request: &Request<B>, authority: &HeaderValue) -> Response<Body> {
    if let Some(refusal) = csrf::refusal(
        &app.config.csrf,
        &app.metrics,
        request.method(),
        request.headers(),
        authority.to_str().ok(),
        false,
    ) {
        return refusal;
    }
    let now = unix_now();
    let (presence, outcome) = request_session::read(app, request.headers(), now);
    let mut id_token_hint = None;
    if let ReadOutcome::Valid {
        session,
        retired_key,
    } = outcome
    {
        id_token_hint = session.id_token.clone();
        // Every copy of this session's cookies is refused from now on (a copy taken before
        // logout, another tab, a pre-refresh cookie inside the grace window), and the tokens
        // the grace window kept for it are dropped.
        let lifetime = app.config.session.lifetime.as_secs();
        let entry = Entry::session(&session.id, session.started_at, lifetime, now);
        // One try: the browser's logout is not held while Redis is down.
        if let Err(e) = app.ended.end(entry, now, false).await {
            // Logged out here; the others refuse it once Redis takes the entry.
            warn!(event = "logout", error = %e, "logged out on this replica only for now");
        }
        app.refresher.forget_session(&session.id);
        let outcome = revoke(app, session, retired_key, &presence, now).await;
        app.metrics.logout(outcome);
    } else {
        app.metrics.logout("no_session");
    }
    let mut cookies = app.codec.clear(&presence);
    cookies.extend(flow::clear_all(&app.codec, request.headers()));
    let body = json!({ "logout_url": logout_url(app, id_token_hint.as_ref().map(|t| t.expose())) });
    let mut response = Response::new(full(body.to_string()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    with_cookies(response, cookies)
}

/// Revokes the session's refresh token; returns the metric outcome.
async fn revoke(
    app: &App,
    session: Arc<Session>,
    retired_key: bool,
    presence: &crate::session::Presence,
    now: u64,
) -> &'static str {
    // TokenIDP's revocation authenticates with the access token, so it must be fresh.
    let session = match app.config.idp.dialect {
        Dialect::OAuth2 => session,
        Dialect::TokenIdp => match freshen(app, session, retired_key, presence, now).await {
            Freshened::Ready { fresh, .. } => fresh.shared(),
            Freshened::Ended { .. } => {
                info!(
                    event = "logout",
                    revoked = false,
                    "logged out; the grant was already over"
                );
                return "not_revoked";
            }
            Freshened::Unavailable { .. } => {
                warn!(
                    event = "logout",
                    revoked = false,
                    "logged out locally; the IdP was unavailable for revocation"
                );
                return "revocation_failed";
            }
        },
    };
    match app
        .idp
        .revoke(&session.refresh_token, &session.access_token)
        .await
    {
        Ok(true) => {
            info!(
                event = "logout",
                revoked = true,
                "logged out; refresh token revoked"
            );
            "revoked"
        }
        Ok(false) => {
            info!(
                event = "logout",
                revoked = false,
                "logged out; the IdP has no revocation endpoint"
            );
            "not_revoked"
        }
        Err(e) => {
            warn!(event = "logout", revoked = false, error = %e, "logged out locally; revocation failed");
            "revocation_failed"
        }
    }
}

fn logout_url(app: &App, id_token_hint: Option<&str>) -> Option<String> {
    let mut url = app.idp.metadata()?.end_session_endpoint.clone()?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("client_id", &app.config.idp.client_id);
        if let Some(uri) = &app.config.idp.post_logout_redirect_uri {
            query.append_pair("post_logout_redirect_uri", uri);
        }
        if let (Some(hint), true) = (id_token_hint, app.config.idp.logout_id_token_hint) {
            query.append_pair("id_token_hint", hint);
        }
    }
    Some(url.into())
}
