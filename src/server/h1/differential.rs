//! Both servers on the same bytes, for the tests and the `direct_server` fuzz target: the
//! direct server (handing over to hyper as in production) and hyper's alone, each over an
//! in-memory pipe, with a handler that records each request it receives and answers `make()`.

use super::{serve, Ended};
use crate::body::Body;
use crate::server::conn::{Activity, Tracked};
use crate::server::RequestBody;
use http::{Request, Response, Version};
use http_body_util::BodyExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// hyper's `max_buf_size` in these exchanges (the proxy's default: 32 KiB + 16 KiB).
const LIMIT: usize = 48 * 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Server {
    Direct,
    Hyper,
}

pub type Pending = Pin<Box<dyn Future<Output = Response<Tracked<Body>>> + Send>>;

/// What the handler saw of a request: method, target, version, fields, body bytes.
pub type Seen = (String, String, Version, Vec<(String, Vec<u8>)>, Vec<u8>);

/// Serves `io` with `server`; the handler records each request and answers `make()`.
fn spawn(
    server: Server,
    io: DuplexStream,
    make: fn() -> Response<Body>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> tokio::task::JoinHandle<bool> {
    let respond = move |request: Request<RequestBody>| -> Pending {
        let busy = Activity::new().begin();
        let seen = Arc::clone(&seen);
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let fields = parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
                .collect();
            let body = body.collect().await.map(|b| b.to_bytes().to_vec());
            seen.lock().expect("not poisoned").push((
                parts.method.to_string(),
                parts.uri.to_string(),
                parts.version,
                fields,
                body.unwrap_or_else(|_| b"<error>".to_vec()),
            ));
            make().map(|body| Tracked::new(body, busy))
        })
    };
    tokio::spawn(async move {
        match server {
            Server::Direct => {
                let closing = AtomicBool::new(false);
                match serve(io, &closing, &respond).await {
                    Ended::Closed => false,
                    Ended::Hand(io) => {
                        hyper_serve(io, respond).await;
                        true
                    }
                }
            }
            Server::Hyper => {
                hyper_serve(io, respond).await;
                false
            }
        }
    })
}

async fn hyper_serve<I>(io: I, respond: impl Fn(Request<RequestBody>) -> Pending + Send + 'static)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let pending = respond(request.map(RequestBody::Hyper));
        async move { Ok::<_, std::convert::Infallible>(pending.await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .max_buf_size(LIMIT)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades()
        .await;
}

#[derive(Debug)]
pub struct Exchange {
    /// What the client read, `Date` values blanked.
    pub read: String,
    pub seen: Vec<Seen>,
    /// The direct server handed the connection to hyper.
    pub handed: bool,
}

/// Sends `requests` (the last should close the connection), reads until the server closes, or
/// for an hour: on a runtime whose clock is paused (the fuzz target's), that is as soon as
/// both sides wait for bytes that never come (a body cut short, a partial head).
pub async fn exchange(server: Server, make: fn() -> Response<Body>, requests: &[u8]) -> Exchange {
    let (mut client, io) = tokio::io::duplex(1 << 20);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let task = spawn(server, io, make, Arc::clone(&seen));
    let mut read = Vec::new();
    let talk = async {
        client.write_all(requests).await?;
        client.read_to_end(&mut read).await
    };
    let handed = match tokio::time::timeout(Duration::from_secs(3600), talk).await {
        Ok(_) => task.await.unwrap_or(false),
        Err(_) => {
            task.abort();
            false
        }
    };
    let seen = seen.lock().expect("not poisoned").clone();
    Exchange {
        read: blank_dates(&String::from_utf8_lossy(&read)),
        seen,
        handed,
    }
}

fn blank_dates(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("date: ") {
        out.push_str(&rest[..at + 6]);
        out.push_str("<date>");
        rest = &rest[(at + 6 + 29).min(rest.len())..];
    }
    out.push_str(rest);
    out
}
