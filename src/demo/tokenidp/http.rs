//! Server plumbing: the accept loop, reading and recording every request, `Fault::Down`, routing
//! to the endpoint handlers, and shutdown.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::StatusCode;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::options::Fault;
use super::reply::{self, Response};
use super::request::Request;
use super::state::{RecordedRequest, Shared};
use super::{authorize, discovery, logout, revoke, token, userinfo};

/// Request bodies above this are refused with 413; no endpoint needs more.
const MAX_BODY: usize = 1024 * 1024;

/// Returned by the service to make hyper close the connection without writing a response:
/// that is how `Fault::Down` looks to a client (the request was sent, nothing came back).
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("tokenidp emulator is down (injected fault)")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections until `shutdown` turns true, then closes the listener, aborts the
/// open connections (a `Fault::Slow` answer must not hold shutdown up), and reports `done`.
pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    done: watch::Sender<bool>,
) {
    let mut connections = JoinSet::new();
    let stop = async {
        // Dropping every handle does not stop the server (only `shutdown()` does), so a
        // closed channel waits forever instead of counting as a stop.
        if shutdown.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let shared = shared.clone();
                            async move { handle(&shared, req).await }
                        });
                        // Errors here are clients going away and our own DropConnection.
                        if let Err(err) = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                        {
                            tracing::trace!(%err, "tokenidp emulator connection ended");
                        }
                    });
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "tokenidp emulator accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    connections.shutdown().await;
    let _ = done.send(true);
}

/// Reads the whole request, records it, then drops the connection (`Fault::Down`) or answers.
async fn handle(
    shared: &Shared,
    req: hyper::Request<Incoming>,
) -> Result<Response, DropConnection> {
    let (parts, body) = req.into_parts();
    let (body, too_large) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => (collected.to_bytes(), false),
        Err(_) => (Bytes::new(), true),
    };
    let req = Request {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body,
    };
    let down = {
        let mut st = shared.lock();
        // Every /token request counts, whatever the fault (Down included).
        if req.path == "/token" {
            st.token_calls += 1;
            if token::is_refresh(&req) {
                st.refresh_calls += 1;
            }
        }
        st.requests.push(record(&req));
        st.fault == Fault::Down
    };
    if down {
        return Err(DropConnection);
    }
    if too_large {
        return Ok(reply::text(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request body too large.",
        ));
    }
    Ok(route(shared, &req).await)
}

fn record(req: &Request) -> RecordedRequest {
    let header = |name: &str| req.header(name).map(str::to_owned);
    RecordedRequest {
        method: req.method.to_string(),
        path: req.path.clone(),
        content_type: header(CONTENT_TYPE.as_str()),
        authorization: header(AUTHORIZATION.as_str()),
        body: String::from_utf8_lossy(&req.body).into_owned(),
        query: req.query.clone(),
        headers: req
            .headers
            .iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), v)
            })
            .collect(),
    }
}

async fn route(shared: &Shared, req: &Request) -> Response {
    match req.path.as_str() {
        "/token" => token::handle(shared, req).await,
        "/authorize" => authorize::handle(shared, req),
        "/revoke" => revoke::handle(shared, req),
        "/logout" => logout::handle(shared, req),
        "/userinfo" => userinfo::userinfo(shared, req),
        "/introspect" => userinfo::introspect(shared, req),
        "/.well-known/openid-configuration" => discovery::configuration(shared, req),
        "/.well-known/jwks.json" => discovery::jwks(req),
        _ => reply::json(StatusCode::NOT_FOUND, &json!({"error": "not_found"})),
    }
}
