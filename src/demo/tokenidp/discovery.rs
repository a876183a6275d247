//! `GET /.well-known/openid-configuration` (TokenIDP's non-standard keys) and
//! `GET /.well-known/jwks.json` (its one RS256 key).

use http::header::HOST;
use http::{Method, StatusCode};
use serde_json::json;

use super::jwt;
use super::reply::{self, method_not_allowed, Response};
use super::request::Request;
use super::state::Shared;

/// The discovery document. The issuer is the scheme and host of the *incoming request* (the
/// `Host` header), as TokenIDP does: reached as `localhost`, it says `localhost`, while tokens
/// keep the emulator's own URL as `iss`. Uses `revoke_token_endpoint` and
/// `introspect_endpoint`, and has no `end_session_endpoint` and no
/// `code_challenge_methods_supported`, on purpose.
pub(super) fn configuration(shared: &Shared, req: &Request) -> Response {
    if req.method != Method::GET {
        return method_not_allowed();
    }
    let issuer = match req.header(HOST.as_str()) {
        Some(host) if !host.is_empty() => format!("http://{host}"),
        _ => shared.url.clone(),
    };
    let body = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "revoke_token_endpoint": format!("{issuer}/revoke"),
        "introspect_endpoint": format!("{issuer}/introspect"),
        "response_types_supported": ["code"],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials", "password",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:openid:params:grant-type:ciba",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "claims_supported": ["sub", "name", "email", "iss", "aud", "iat", "exp"],
    });
    reply::json(StatusCode::OK, &body)
}

pub(super) fn jwks(req: &Request) -> Response {
    if req.method != Method::GET {
        return method_not_allowed();
    }
    reply::json(StatusCode::OK, &jwt::jwks())
}
