//! `GET /logout`: ends the IdP browser session and redirects to a registered post-logout URI
//! with `logged_out=1` (TokenIDP takes no `id_token_hint`).

use http::header::SET_COOKIE;
use http::{HeaderValue, Method, StatusCode};

use super::reply::{self, method_not_allowed, Response};
use super::request::Request;
use super::state::{Shared, SESSION_COOKIE};

pub(super) fn handle(shared: &Shared, req: &Request) -> Response {
    if req.method != Method::GET {
        return method_not_allowed();
    }
    let pairs = req.query_pairs();
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let (Some(client_id), Some(target)) = (param("client_id"), param("post_logout_redirect_uri"))
    else {
        return reply::text(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: client_id and post_logout_redirect_uri",
        );
    };
    let mut st = shared.lock();
    let Some(client) = st.client(client_id) else {
        return reply::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Unknown client_id.",
        );
    };
    // Only a registered URI, compared exactly: an open redirector otherwise.
    if !client.post_logout_redirect_uris.iter().any(|u| u == target) {
        return reply::oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "post_logout_redirect_uri is not registered for this client.",
        );
    }
    if let Some(session) = req.cookie(SESSION_COOKIE) {
        st.sessions.remove(&session);
    }
    let mut resp = reply::redirect(&reply::append_query(target, &[("logged_out", "1")]));
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static("tokenidp_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    resp
}
