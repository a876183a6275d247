//! Small HTML pages for browser navigations (the callback), never for API calls.
//!
//! Every page is static text plus escaped values, served with a CSP that forbids scripts and
//! framing, and `no-store` so a back button never replays a login.

use crate::body::{full, Body};
use crate::error::ErrorCode;
use crate::html::escape;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn html(status: StatusCode, title: &str, head_extra: &str, body: &str) -> Response<Body> {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{head_extra}<title>{title}</title>\
         <style>body{{font:16px system-ui,sans-serif;max-width:40em;margin:3em auto;padding:0 1em}}\
         code{{background:#eee;padding:0 .3em}}</style></head><body>{body}</body></html>\n",
        title = escape(title),
    );
    let mut response = Response::new(full(page));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// An error page for a login that could not complete, with the error code and a way back in.
pub fn error_page(
    code: ErrorCode,
    status: StatusCode,
    message: &str,
    login_path: &str,
) -> Response<Body> {
    let body = format!(
        "<h1>Login did not complete</h1><p>{}</p><p>Error code: <code id=\"error\">{}</code></p>\
         <p><a href=\"{}\">Log in again</a></p>",
        escape(message),
        code.as_str(),
        escape(login_path),
    );
    let mut response = html(status, "Login did not complete", "", &body);
    response.headers_mut().insert(
        "x-token-handler-error",
        HeaderValue::from_static(code.as_str()),
    );
    response
}

/// A 200 page that navigates to `target` (same-site). A `302` from the callback would load
/// `target` as the end of a chain that began on the IdP's site, *without* the new
/// `SameSite=Strict` cookies (checked on Chromium); a same-site meta refresh sends them.
pub fn continue_to(target: &str) -> Response<Body> {
    let target = escape(target);
    html(
        StatusCode::OK,
        "Logged in",
        &format!("<meta http-equiv=\"refresh\" content=\"0;url={target}\">"),
        &format!("<p>Logged in. <a id=\"continue\" href=\"{target}\">Continue</a></p>"),
    )
}
