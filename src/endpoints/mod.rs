//! The proxy's own endpoints under `/auth` (the "OAuth agent" half of a token handler):
//! login, callback, session and logout, and the IdP's back-channel logout. An SPA never touches
//! a token from the first click on "Log in" to the last on "Log out".

mod backchannel;
mod callback;
mod flow;
mod login;
mod logout;
mod page;
pub mod return_to;
mod session;

use crate::app::App;
use crate::body::Body;
use crate::error::{error_response, ErrorCode};
use http::header::ALLOW;
use http::{HeaderValue, Method, Request, Response, Uri};

/// Handles `request`, whose path is `rest` below the configured prefix, addressed to
/// `authority` (checked at the edge).
pub async fn handle<B>(
    app: &App,
    request: Request<B>,
    rest: &str,
    authority: &HeaderValue,
) -> Response<Body>
where
    B: http_body::Body<Data = bytes::Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if rest == "/backchannel-logout" && request.method() == Method::POST {
        // The one endpoint that reads a body.
        return backchannel::backchannel_logout(app, request).await;
    }
    let request = &request;
    match (rest, request.method()) {
        ("/login", &Method::GET) => login::login(app, request).await,
        ("/callback", &Method::GET) => callback::callback(app, request).await,
        ("/session", &Method::GET) => session::session(app, request).await,
        ("/logout", &Method::POST) => logout::logout(app, request, authority).await,
        ("/login" | "/callback" | "/session", _) => not_allowed("GET"),
        ("/logout" | "/backchannel-logout", _) => not_allowed("POST"),
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
        "/backchannel-logout" => "auth_backchannel_logout",
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
