//! `/revoke`: TokenIDP's own `DELETE` (Bearer access token + JSON body, one refresh token,
//! always "revoked"), and, in `ResponseStyle::OAuth2` only, an RFC 7009 `POST` for the proxy's
//! `oauth2` dialect.

use http::{Method, StatusCode};
use serde_json::json;

use super::options::ResponseStyle;
use super::reply::{self, bearer_unauthorized, method_not_allowed, Failure, Response};
use super::request::{parse_params, Request};
use super::state::Shared;
use super::token::authenticated_client;

pub(super) fn handle(shared: &Shared, req: &Request) -> Response {
    let style = shared.lock().style;
    match req.method {
        Method::DELETE => tokenidp_revoke(shared, req),
        Method::POST if style == ResponseStyle::OAuth2 => rfc7009_revoke(shared, req),
        _ => method_not_allowed(),
    }
}

/// Not RFC 7009: `DELETE /revoke`, `Authorization: Bearer <access token>`, JSON
/// `{"token":"<refresh token>","reasonRevoked":"logout"}`. Answers 200 even when nothing was
/// revoked, so a client cannot learn whether a token existed.
fn tokenidp_revoke(shared: &Shared, req: &Request) -> Response {
    let authorized = req
        .bearer()
        .and_then(|t| shared.signer.verify_access(t, &shared.url))
        .is_some();
    if !authorized {
        return bearer_unauthorized();
    }
    let mut st = shared.lock();
    let style = st.style;
    let token = match parse_params(req) {
        Ok(params) => params
            .get("token")
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        Err(failure) => return reply::failure(style, &failure),
    };
    let Some(token) = token else {
        return reply::failure(style, &Failure::invalid_request("token is required."));
    };
    if st.revoke(&token) {
        st.revoked_via_endpoint.push(token);
    }
    reply::json(
        StatusCode::OK,
        &json!({"message": "Refresh token revoked."}),
    )
}

/// RFC 7009 §2: form `token` (+ optional `token_type_hint`), client authentication, and 200
/// whether or not the token was valid. A token of another client is left alone (§2.1).
fn rfc7009_revoke(shared: &Shared, req: &Request) -> Response {
    let mut st = shared.lock();
    let style = st.style;
    let params = match parse_params(req) {
        Ok(params) => params,
        Err(failure) => return reply::failure(style, &failure),
    };
    let client = match authenticated_client(&st, req, &params, "revocation") {
        Ok(client) => client,
        Err(failure) => return reply::failure(style, &failure),
    };
    let Some(token) = params.get("token").filter(|t| !t.is_empty()) else {
        return reply::failure(style, &Failure::invalid_request("token is required."));
    };
    let owned = st
        .refresh_tokens
        .get(token)
        .is_some_and(|r| r.client_id == client.client_id);
    if owned && st.revoke(token) {
        st.revoked_via_endpoint.push(token.to_owned());
    }
    reply::empty(StatusCode::OK)
}
