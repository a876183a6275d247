//! The proxy's own endpoints under `/auth` (the "OAuth agent" half of a token handler):
//! login, callback, session and logout. An SPA never touches a token from the first click on
//! "Log in" to the last on "Log out".

mod callback;
mod flow;
mod login;
mod logout;
mod page;
mod return_to;
mod session;

use crate::app::App;
use crate::body::Body;
use crate::error::{error_response, ErrorCode};
use http::header::ALLOW;
use http::{HeaderValue, Method, Request, Response, Uri};

/// Handles `request`, whose path is `rest` below the configured prefix.
pub async fn handle<B>(app: &App, request: &Request<B>, rest: &str) -> Response<Body> {
    let method = request.method();
    match (rest, method) {
        ("/login", &Method::GET) => login::login(app, request),
        ("/callback", &Method::GET) => callback::callback(app, request).await,
        ("/session", &Method::GET) => session::session(app, request).await,
        ("/logout", &Method::POST) => logout::logout(app, request).await,
        ("/login" | "/callback" | "/session", _) => not_allowed("GET"),
        ("/logout", _) => not_allowed("POST"),
        _ => error_response(ErrorCode::NotFound, "no such endpoint"),
    }
}

/// The metric/log route class of an endpoint path (below the prefix).
pub fn route_class(rest: &str) -> &'static str {
    match rest {
        "/login" => "auth_login",
        "/callback" => "auth_callback",
        "/session" => "auth_session",
        "/logout" => "auth_logout",
        _ => "auth_other",
    }
}

fn not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error_response(ErrorCode::MethodNotAllowed, "method not allowed here");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// The first value of a query parameter, percent-decoded.
fn query_param(uri: &Uri, name: &str) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The callback URL registered at the IdP: `idp.redirect_uri`, or (development) derived
/// from the request's Host.
fn redirect_uri<B>(app: &App, request: &Request<B>) -> String {
    if let Some(uri) = &app.config.idp.redirect_uri {
        return uri.to_string();
    }
    let host = crate::csrf::authority(request.headers(), request.uri()).unwrap_or("localhost");
    let proto = match request
        .headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some(p) if app.config.server.trust_forwarded_headers && (p == "https" || p == "http") => p,
        _ => "http",
    };
    format!("{proto}://{host}{}/callback", app.config.proxy.auth_prefix)
}
