//! Forwarding to the upstream API: one pooled HTTP/1.1 client, streamed bodies, upgrades.
//!
//! Bodies stream both ways (no buffering: uploads and server-sent events pass as they come).
//! Timeouts: connect (`upstream.connect_timeout`) and response headers
//! (`upstream.response_header_timeout`); a body may take as long as it likes.
//! Upgrades (WebSocket) are forwarded as a normal request; on `101` both sides are upgraded
//! and spliced with `copy_bidirectional` in a task tracked for graceful shutdown.

pub mod headers;

use crate::body::{boxed, Body};
use crate::config::UpstreamConfig;
use crate::metrics::Metrics;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// What the data path knows about the client connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: std::net::SocketAddr,
    /// The client connected over TLS (sets `X-Forwarded-Proto: https`).
    pub tls: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream closed the connection before answering")]
    Closed,
}

/// The upstream API.
#[derive(Debug, Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    base_path: String,
    header_timeout: Duration,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, String> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        // `https://` upstreams are verified against the system roots and `upstream.ca_file`;
        // plain `http://` (the usual loopback sidecar case) goes through unchanged.
        http.enforce_http(false);
        let tls = crate::tls::client_config(config.ca_file.as_deref())?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let uri: Uri = config
            .url
            .as_str()
            .parse()
            .map_err(|e| format!("upstream.url: {e}"))?;
        Ok(Upstream {
            client,
            scheme: uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP),
            authority: uri.authority().cloned().expect("validated URL has a host"),
            base_path: uri.path().trim_end_matches('/').to_string(),
            header_timeout: config.response_header_timeout,
        })
    }

    /// The upstream URI for a client request: base path + the request's path and query.
    pub fn target(&self, uri: &Uri) -> Uri {
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let full = format!("{}{}", self.base_path, path_and_query);
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(full)
            .build()
            .unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// Sends a prepared request (headers already rewritten) and returns the upstream response.
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Incoming>, UpstreamError> {
        match tokio::time::timeout(self.header_timeout, self.client.request(request)).await {
            Err(_) => Err(UpstreamError::Timeout(self.header_timeout)),
            Ok(Err(e)) => {
                debug!(error = %describe(&e), "upstream request failed");
                if e.is_connect() {
                    return Err(UpstreamError::Unavailable("connect failed".into()));
                }
                // A kept-alive connection the upstream closed just as the request went out
                // (its idle timeout raced ours): no answer came, the request may be replayed
                // if it is idempotent.
                let closed = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<hyper::Error>())
                    .is_some_and(|h| h.is_incomplete_message() || h.is_canceled());
                Err(if closed {
                    UpstreamError::Closed
                } else {
                    UpstreamError::Unavailable("connection failed".into())
                })
            }
            Ok(Ok(response)) => Ok(response),
        }
    }
}

/// Turns an upstream response into the client's, stripping hop-by-hop headers. For a `101`
/// the two upgraded connections are spliced in a task on `tunnels`.
pub fn relay_response(
    mut response: Response<Incoming>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    tunnels: &TaskTracker,
    metrics: &Arc<Metrics>,
) -> Response<Body> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    headers::strip_hop_by_hop(response.headers_mut(), switching);
    if switching {
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        if let Some(client_upgrade) = client_upgrade {
            let metrics = Arc::clone(metrics);
            tunnels.spawn(async move {
                let (Ok(client), Ok(upstream)) = (client_upgrade.await, upstream_upgrade.await)
                else {
                    debug!("upgrade handshake did not complete");
                    return;
                };
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                metrics.tunnels_active.inc();
                match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    Ok((up, down)) => debug!(up, down, "tunnel closed"),
                    Err(e) => debug!(error = %e, "tunnel ended with an error"),
                }
                metrics.tunnels_active.dec();
            });
        }
    }
    response.map(boxed)
}

fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
