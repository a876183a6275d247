//! The demo's upstream API (DEVELOPMENT ONLY): serves the SPA at `/` (with the client library,
//! `clients/js/dist/index.js`, at `/token-handler-client.js`) and a JSON API under
//! `/api/` that reports which access token it received (its `jti`, `iat`, `exp`), never the
//! token itself. It decodes the Bearer's payload without verifying it: it stands for "your
//! API", which would verify it against the IdP's keys.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Map, Value};
use std::convert::Infallible;
use tokio::net::TcpListener;

const INDEX_HTML: &str = include_str!("spa/index.html");
const APP_JS: &str = include_str!("spa/app.js");
const APP_CSS: &str = include_str!("spa/app.css");
/// `@token-handler/client`, compiled (committed; `tests/it/js_client.rs` checks it is up to date).
const CLIENT_JS: &str = include_str!("../../clients/js/dist/index.js");

/// Serves the demo API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service =
                service_fn(|request| async move { Ok::<_, Infallible>(answer(&request)) });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(request: &Request<Incoming>) -> Response<Full<Bytes>> {
    match request.uri().path() {
        "/" | "/index.html" => asset(INDEX_HTML, "text/html; charset=utf-8"),
        "/app.js" => asset(APP_JS, "text/javascript; charset=utf-8"),
        "/app.css" => asset(APP_CSS, "text/css; charset=utf-8"),
        "/token-handler-client.js" => asset(CLIENT_JS, "text/javascript; charset=utf-8"),
        "/api/whoami" => match bearer_claims(request) {
            Some(claims) => json_response(
                StatusCode::OK,
                &json!({
                    "jti": claims.get("jti"),
                    "iat": claims.get("iat"),
                    "exp": claims.get("exp"),
                    "sub": claims.get("sub"),
                    "scope": claims.get("scope"),
                }),
            ),
            None => json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"error": "no_token", "message": "the API received no Bearer token"}),
            ),
        },
        path if path.starts_with("/api/") => json_response(
            StatusCode::OK,
            &json!({
                "method": request.method().as_str(),
                "path": path,
                "had_bearer": bearer_claims(request).is_some(),
            }),
        ),
        _ => json_response(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}

/// The Bearer token's payload (unverified; see the module docs).
fn bearer_claims(request: &Request<Incoming>) -> Option<Map<String, Value>> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    let payload = token.split('.').nth(1)?;
    let bytes = crate::b64::url_decode(payload)?;
    serde_json::from_slice(&bytes).ok()
}

fn asset(body: &'static str, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
