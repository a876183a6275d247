//! The endpoints that read a token back: `GET /userinfo` (bare object, integer `sub`) and a
//! minimal `POST /introspect` (advertised by discovery as `introspect_endpoint`).

use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::reply::{self, bearer_unauthorized, method_not_allowed, Response};
use super::request::{parse_params, Request};
use super::state::{RefreshTokenState, Shared};

/// `GET /userinfo` with a Bearer access token: `{"sub":42,"name":..,"email":..}`. Note the
/// integer `sub`, where the tokens say `usr:42`.
pub(super) fn userinfo(shared: &Shared, req: &Request) -> Response {
    if req.method != Method::GET {
        return method_not_allowed();
    }
    let Some(claims) = req
        .bearer()
        .and_then(|t| shared.signer.verify_access(t, &shared.url))
    else {
        return bearer_unauthorized();
    };
    let user_id = claims
        .get("user_id")
        .and_then(Value::as_str)
        .and_then(|id| id.parse::<u64>().ok());
    let st = shared.lock();
    let Some(user) = user_id.and_then(|id| st.user_by_id(id)) else {
        return bearer_unauthorized();
    };
    reply::json(
        StatusCode::OK,
        &json!({"sub": user.id, "name": user.name, "email": user.email}),
    )
}

/// `POST /introspect` with `token` (JSON or form): `{"active":..}` plus, when active, who and
/// what. Accepts our access tokens and our refresh tokens; unauthenticated (development only).
pub(super) fn introspect(shared: &Shared, req: &Request) -> Response {
    if req.method != Method::POST {
        return method_not_allowed();
    }
    let token = parse_params(req)
        .ok()
        .and_then(|p| p.get("token").map(str::to_owned))
        .unwrap_or_default();
    if let Some(claims) = shared.signer.verify_access(&token, &shared.url) {
        let mut body = json!({"active": true, "token_type": "access_token"});
        for key in ["sub", "client_id", "scope", "exp", "iat", "iss"] {
            if let Some(v) = claims.get(key) {
                body[key] = v.clone();
            }
        }
        return reply::json(StatusCode::OK, &body);
    }
    let st = shared.lock();
    let body = match st.refresh_tokens.get(&token) {
        Some(record) if st.refresh_state(&token, Instant::now()) == RefreshTokenState::Active => {
            json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": record.client_id,
                "sub": format!("usr:{}", record.user_id),
                "scope": record.scopes.join(" "),
            })
        }
        _ => json!({"active": false}),
    };
    reply::json(StatusCode::OK, &body)
}
