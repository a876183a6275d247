//! An echo upstream that records what it received: the API behind the proxy in tests.
//!
//! Routes: `/stream` (answers one chunk, then the next when the test releases it),
//! `/upload` (reports each request-body chunk as it arrives), `/ws` and `/api/ws` (WebSocket
//! echo; the second for gateways that route only `/api/`),
//! `/slow` (answers when released), `/hang` (never answers), `/big` (8 MiB, as fast as it is
//! read), `/plant` (tries to set the proxy's own cookies), `/cacheable` (200 JSON marked
//! `public, max-age=600`), anything else: 200 JSON.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

type BoxBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub uri: String,
    pub headers: HeaderMap,
    /// The body, for the default route (others stream it).
    pub body: Vec<u8>,
    /// Which upstream connection carried it: 0 for the first accepted, 1 for the next...
    pub connection: usize,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_string())
    }
}

#[derive(Clone)]
pub struct Echo {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<Recorded>>>,
    /// Released by the test: lets `/stream` send its second chunk and `/slow` answer.
    pub release: Arc<Notify>,
    /// Signalled when `/slow` or `/stream` has started answering.
    pub started: Arc<Notify>,
    upload_tx: mpsc::UnboundedSender<Bytes>,
    /// Access tokens this API treats as revoked: 401 `invalid_token`.
    rejected: Arc<Mutex<Vec<String>>>,
    upload_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Bytes>>>,
}

impl Echo {
    pub async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let (upload_tx, upload_rx) = mpsc::unbounded_channel();
        let echo = Echo {
            addr: listener.local_addr().expect("addr"),
            records: Arc::default(),
            release: Arc::new(Notify::new()),
            started: Arc::new(Notify::new()),
            upload_tx,
            rejected: Arc::default(),
            upload_rx: Arc::new(tokio::sync::Mutex::new(upload_rx)),
        };
        let server = echo.clone();
        tokio::spawn(async move {
            for connection in 0.. {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let echo = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let echo = echo.clone();
                        async move { Ok::<_, Infallible>(echo.answer(req, connection).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        echo
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.records.lock().expect("records").clone()
    }

    pub fn last(&self) -> Recorded {
        self.records()
            .last()
            .cloned()
            .expect("the upstream received a request")
    }

    /// From now on, requests bearing `access_token` get 401 `invalid_token` (revoked).
    pub fn reject_token(&self, access_token: &str) {
        self.rejected
            .lock()
            .expect("rejected")
            .push(access_token.to_string());
    }

    /// From now on, every Bearer token gets 401 `invalid_token`.
    pub fn reject_every_token(&self) {
        self.rejected
            .lock()
            .expect("rejected")
            .push("*".to_string());
    }

    /// Next request-body chunk `/upload` received.
    pub async fn next_upload_chunk(&self) -> Option<Bytes> {
        self.upload_rx.lock().await.recv().await
    }

    async fn answer(&self, mut req: Request<Incoming>, connection: usize) -> Response<BoxBody> {
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_string);
        let index = {
            let mut records = self.records.lock().expect("records");
            records.push(Recorded {
                method: req.method().to_string(),
                uri: req.uri().to_string(),
                headers: req.headers().clone(),
                body: Vec::new(),
                connection,
            });
            records.len() - 1
        };
        let rejected = bearer.as_ref().is_some_and(|t| {
            let list = self.rejected.lock().expect("rejected");
            list.contains(t) || list.iter().any(|r| r == "*")
        });
        if rejected {
            // Read the body first: a server that closes with a request body unread sends a
            // TCP reset, which can overtake its own 401 (the test would see a 502 by chance).
            let _ = req.body_mut().collect().await;
            let mut r = text(StatusCode::UNAUTHORIZED, "token revoked");
            r.headers_mut().insert(
                "www-authenticate",
                r#"Bearer realm="api", error="invalid_token", error_description="revoked""#
                    .parse()
                    .expect("hv"),
            );
            return r;
        }
        match req.uri().path() {
            "/ws" | "/api/ws" => {
                let key = req.headers().get("sec-websocket-key").cloned();
                let Some(key) = key else {
                    return text(StatusCode::BAD_REQUEST, "not a websocket request");
                };
                let upgrade = hyper::upgrade::on(&mut req);
                tokio::spawn(async move {
                    let Ok(upgraded) = upgrade.await else { return };
                    let mut ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        None,
                    )
                    .await;
                    while let Some(Ok(msg)) = ws.next().await {
                        if msg.is_text() || msg.is_binary() {
                            if ws.send(msg).await.is_err() {
                                return;
                            }
                        } else if msg.is_close() {
                            return;
                        }
                    }
                });
                Response::builder()
                    .status(StatusCode::SWITCHING_PROTOCOLS)
                    .header("connection", "upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
                    .body(empty())
                    .expect("response")
            }
            "/stream" => {
                let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
                let release = Arc::clone(&self.release);
                let started = Arc::clone(&self.started);
                tokio::spawn(async move {
                    let _ = tx
                        .send(Ok(Frame::data(Bytes::from_static(b"first;"))))
                        .await;
                    started.notify_one();
                    release.notified().await;
                    let _ = tx
                        .send(Ok(Frame::data(Bytes::from_static(b"second"))))
                        .await;
                });
                let stream = tokio_stream_from(rx);
                Response::new(BodyExt::boxed(StreamBody::new(stream)))
            }
            "/upload" => {
                let mut body = req.into_body();
                let mut total = 0usize;
                while let Some(Ok(frame)) = body.frame().await {
                    if let Ok(data) = frame.into_data() {
                        total += data.len();
                        let _ = self.upload_tx.send(data);
                    }
                }
                text(StatusCode::OK, &format!("received {total} bytes"))
            }
            "/slow" => {
                self.started.notify_one();
                self.release.notified().await;
                text(StatusCode::OK, "slow done")
            }
            "/reset" => {
                // Headers and a first chunk; when released, the connection dies mid-body.
                let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(2);
                let release = Arc::clone(&self.release);
                tokio::spawn(async move {
                    let _ = tx
                        .send(Ok(Frame::data(Bytes::from_static(b"partial"))))
                        .await;
                    release.notified().await;
                    let _ = tx.send(Err(std::io::Error::other("upstream died"))).await;
                });
                Response::new(BodyExt::boxed(StreamBody::new(tokio_stream_from(rx))))
            }
            "/big" => {
                let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
                tokio::spawn(async move {
                    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                    for _ in 0..128 {
                        if tx.send(Ok(Frame::data(chunk.clone()))).await.is_err() {
                            return;
                        }
                    }
                });
                let mut r = Response::new(BodyExt::boxed(StreamBody::new(tokio_stream_from(rx))));
                r.headers_mut()
                    .insert("content-length", (128 * 64 * 1024).into());
                r
            }
            "/plant" => {
                let mut r = text(StatusCode::OK, "planted");
                for line in [
                    "__Host-th_session=planted; Path=/; Secure; HttpOnly",
                    "__Host-th_session.1=planted; Path=/; Secure",
                    " __host-TH_session=planted; Path=/; Secure",
                    "__Host-th_session_flow_abc=planted; Path=/; Secure",
                    "app_cookie=1; Path=/",
                ] {
                    r.headers_mut()
                        .append("set-cookie", line.parse().expect("hv"));
                }
                r
            }
            "/hang" => {
                std::future::pending::<()>().await;
                unreachable!()
            }
            path => {
                let path = path.to_string();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes().to_vec())
                    .unwrap_or_default();
                self.records.lock().expect("records")[index].body = body;
                let body = serde_json::json!({ "path": path, "had_bearer": bearer.is_some() });
                let mut response = text(StatusCode::OK, &body.to_string());
                response
                    .headers_mut()
                    .insert("content-type", "application/json".parse().expect("hv"));
                response
                    .headers_mut()
                    .append("set-cookie", "app_cookie=1; Path=/".parse().expect("hv"));
                if path == "/cacheable" {
                    response
                        .headers_mut()
                        .insert("cache-control", "public, max-age=600".parse().expect("hv"));
                }
                response
            }
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<BoxBody> {
    let full = Full::new(Bytes::from(body.to_string())).map_err(|never: Infallible| match never {});
    let mut r = Response::new(BodyExt::boxed(full));
    *r.status_mut() = status;
    r
}

fn empty() -> BoxBody {
    BodyExt::boxed(Full::new(Bytes::new()).map_err(|never: Infallible| match never {}))
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
