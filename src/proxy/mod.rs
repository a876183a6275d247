//! Forwarding to the upstream API: one pooled HTTP/1.1 client, streamed bodies, upgrades.
//!
//! Bodies stream both ways (no buffering: uploads and server-sent events pass as they come).
//! Timeouts: connect (`upstream.connect_timeout`) and response headers
//! (`upstream.response_header_timeout`); a body may take as long as it likes.
//! Upgrades (WebSocket) are forwarded as a normal request; on `101` both sides are upgraded
//! and spliced with `copy_bidirectional` in a task tracked for graceful shutdown.

pub mod bearer;
pub mod client_body;
pub mod direct;
pub mod failure;
pub mod forwarded;
pub mod headers;
mod idle;
pub mod maps;
pub mod own_bytes;
mod pool;
pub mod upgrade;

use crate::body::{boxed, Body};
use crate::config::UpstreamConfig;
use crate::dpop::nonce::NonceCache;
use crate::metrics::Metrics;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use pool::Pool;
pub use pool::PooledBody;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::time::Sleep;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// What the data path knows about the client connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: std::net::SocketAddr,
    /// The peer's address as text, for `X-Forwarded-For`.
    pub client_ip: forwarded::ClientIp,
    /// The client connected over TLS (sets `X-Forwarded-Proto: https`).
    pub tls: bool,
    /// The peer is one of `server.trusted_proxies`: its forwarding headers are kept.
    pub trusted: bool,
}

impl ConnInfo {
    pub fn new(peer: std::net::SocketAddr, tls: bool, trusted: bool) -> ConnInfo {
        ConnInfo {
            peer,
            client_ip: peer.ip().to_canonical().into(),
            tls,
            trusted,
        }
    }
}

/// Why the upstream client could not be built at start-up.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error("upstream.url: {0}")]
    Url(#[from] http::uri::InvalidUri),
    #[error("upstream.url: {0}")]
    Origin(#[from] http::Error),
    #[error("a route has no upstream URL")]
    NoUrl,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream unavailable: {0}")]
    Unavailable(&'static str),
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("upstream closed the connection before answering")]
    Closed,
}

/// The upstream API.
#[derive(Debug, Clone)]
pub struct Upstream {
    pool: Arc<Pool>,
    base_path: String,
    header_timeout: Duration,
    /// This API's latest DPoP nonce (RFC 9449 §9), shared by the sessions of this replica.
    dpop_nonce: Arc<NonceCache>,
    /// Scheme and authority (what a trace names as the peer).
    origin: Uri,
    /// `upstream.client = "direct"` with an `http://` upstream: the client for requests
    /// without a body, or whose body's bytes are all at hand (`direct::eligible`).
    direct: Option<Arc<direct::DirectPool>>,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, UpstreamSetupError> {
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
        let url = config.url.as_ref().ok_or(UpstreamSetupError::NoUrl)?;
        let uri: Uri = url.as_str().parse()?;
        let authority = uri.authority().cloned().expect("validated URL has a host");
        let origin = Uri::builder()
            .scheme(uri.scheme().cloned().unwrap_or(http::uri::Scheme::HTTP))
            .authority(authority.clone())
            .path_and_query("/")
            .build()?;
        let direct = match config.client {
            crate::config::UpstreamClient::Direct => {
                direct::DirectPool::new(&origin, config.connect_timeout).map(Arc::new)
            }
            crate::config::UpstreamClient::Hyper => None,
        };
        Ok(Upstream {
            direct,
            pool: Arc::new(Pool::new(connector, origin.clone())),
            origin,
            base_path: uri.path().trim_end_matches('/').to_string(),
            header_timeout: config.response_header_timeout,
            dpop_nonce: Arc::default(),
        })
    }

    pub fn dpop_nonce(&self) -> &NonceCache {
        &self.dpop_nonce
    }

    /// `scheme://authority/` of this upstream.
    pub fn origin(&self) -> &Uri {
        &self.origin
    }

    /// The request target (origin-form) for a client request: base path + its path (or
    /// `path`, the normalised one, when normalisation changed it) and query.
    pub fn target(&self, uri: &Uri, path: Option<&str>) -> Uri {
        let path_and_query = uri.path_and_query();
        if self.base_path.is_empty() && path.is_none() {
            if let Some(p) = path_and_query {
                return Uri::from(p.clone());
            }
        }
        let full = match path {
            Some(path) => match uri.query() {
                Some(query) => format!("{}{path}?{query}", self.base_path),
                None => format!("{}{path}", self.base_path),
            },
            None => format!(
                "{}{}",
                self.base_path,
                path_and_query.map_or("/", |p| p.as_str())
            ),
        };
        full.parse().unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// Whether [`Upstream::send`] leaves `request` with the caller: the direct client writes it
    /// from a borrow, so whoever may send it again needs no copy of it. `ready` as for `send`.
    pub fn lends(&self, request: &Request<Body>, ready: Option<&Bytes>) -> bool {
        self.direct.is_some() && direct::eligible(request, ready)
    }

    /// Sends a prepared request (headers already rewritten, `Host` the checked authority: see
    /// `forward::prepared`) and returns the upstream response; its head must come within
    /// `upstream.response_header_timeout` (connecting included) from `now`, the caller's clock
    /// reading as it sends. The request is taken from `slot`, or left there when the client
    /// [lends](Upstream::lends) it. `ready`: the bytes of the request's body, when the caller
    /// holds them all (the direct client then writes them itself).
    ///
    /// Not an `async fn`, which keeps a second copy of its arguments in its state.
    #[allow(clippy::manual_async_fn)]
    pub fn send<'a>(
        &'a self,
        slot: &'a mut Option<Request<Body>>,
        forwarded: Option<&'a forwarded::Forwarded>,
        ready: Option<&'a Bytes>,
        now: tokio::time::Instant,
    ) -> impl Future<Output = Result<Response<PooledBody>, UpstreamError>> + Send + 'a {
        async move {
            let Some(lent) = slot.as_ref() else {
                return Err(UpstreamError::Unavailable("no request to send"));
            };
            // The direct client writes the request from where it is: it stays in `slot`.
            if let Some(direct) = self
                .direct
                .as_ref()
                .filter(|_| direct::eligible(lent, ready))
            {
                let response = direct
                    .send(lent, ready, forwarded, now, self.header_timeout)
                    .await?;
                return Ok(response.map(PooledBody::direct));
            }
            // Hyper's client takes it (its `slot` was checked above).
            let Some(mut request) = slot.take() else {
                return Err(UpstreamError::Unavailable("no request to send"));
            };
            if let Some(forwarded) = forwarded {
                forwarded.insert(request.headers_mut());
            }
            // Hyper's client and its pool.
            let deadline = now + self.header_timeout;
            // A kept-alive connection the upstream has just closed hands the request back
            // unsent: it then goes out on the next one, or a new one.
            while let Some(mut conn) = self.pool.take(now.into_std()) {
                conn.timer.as_mut().reset(deadline);
                let sent = conn.sender.try_send_request(request);
                match within(conn.timer.as_mut(), sent).await {
                    None => return Err(UpstreamError::Timeout(self.header_timeout)),
                    Some(Ok(response)) => return Ok(self.release(conn, response)),
                    Some(Err(mut e)) => match e.take_message() {
                        Some(unsent) => request = unsent,
                        None => return Err(failed(&e.into_error())),
                    },
                }
            }
            // Boxed: connecting (TCP, TLS, handshake) is rare next to a pooled connection;
            // inline, its state would enlarge every request's future.
            let mut timer = Box::pin(tokio::time::sleep_until(deadline));
            let sender = match within(timer.as_mut(), Box::pin(self.pool.connect())).await {
                None => return Err(UpstreamError::Timeout(self.header_timeout)),
                Some(connected) => connected?,
            };
            let mut conn = pool::Conn { sender, timer };
            match within(conn.timer.as_mut(), conn.sender.send_request(request)).await {
                None => Err(UpstreamError::Timeout(self.header_timeout)),
                Some(Ok(response)) => Ok(self.release(conn, response)),
                Some(Err(e)) => Err(failed(&e)),
            }
        }
    }

    fn release(
        &self,
        conn: pool::Conn,
        response: Response<hyper::body::Incoming>,
    ) -> Response<PooledBody> {
        // An upgraded connection belongs to its tunnel from now on, not to the pool.
        let home = (response.status() != StatusCode::SWITCHING_PROTOCOLS).then_some(conn);
        response.map(|body| PooledBody::new(&self.pool, home, body))
    }
}

/// `future`'s output, or `None` once `timer` has elapsed (polled in that order, as
/// `tokio::time::timeout` does).
async fn within<F: Future>(mut timer: Pin<&mut Sleep>, future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        timer.as_mut().poll(cx).map(|()| None)
    })
    .await
}

/// A request that went out and got no answer. When the upstream closed a kept-alive
/// connection as the request was sent (its idle timeout raced ours), the request may be
/// replayed if it is idempotent.
fn failed(e: &hyper::Error) -> UpstreamError {
    debug!(error = %describe(e), "upstream request failed");
    if e.is_incomplete_message() || e.is_canceled() {
        UpstreamError::Closed
    } else {
        UpstreamError::Unavailable("connection failed")
    }
}

/// Turns an upstream response into the client's, stripping hop-by-hop headers. For a `101`
/// the two upgraded connections are spliced in a task on `tunnels`.
pub fn relay_response(
    mut response: Response<PooledBody>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
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
                drop(slot);
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
