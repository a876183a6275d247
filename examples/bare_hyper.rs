//! A bare hyper 1.x reverse proxy, the floor under token-handler's data path (issue 19): the
//! same hyper server and client, allocator and runtime, and nothing else. It forwards every
//! request to one upstream over kept-alive connections and sets the fixed `Authorization` that
//! the nginx reference proxy sets; no header rewriting, no session, no checks, no timeouts.
//! `bench/run.sh --hyper` measures it in every data-path scenario next to token-handler, and
//! `bench/callgrind.sh bare-hyper` counts its instructions per request. Not for production.
//!
//!   bare_hyper LISTEN_ADDR UPSTREAM_ADDR WORKERS   (the bearer in BENCH_PINGORA_BEARER)
//!
//! With `BARE_HYPER_CLIENT=own`, the upstream hop goes through a minimal hand-written client
//! (`bare_hyper_parts/own_client.rs`: bodies with `Content-Length` only, in the request's own
//! task) instead of hyper's, to measure what hyper's client costs (BENCHMARKS.md). With
//! `BARE_HYPER_SERVER=own` as well, the client side is a minimal hand-written server loop too
//! (`bare_hyper_parts/own_server.rs`: requests without a body), to measure what hyper's server
//! costs; it needs `BARE_HYPER_CLIENT=own`.

#[path = "bare_hyper_parts/own_client.rs"]
mod own_client;
#[path = "bare_hyper_parts/own_server.rs"]
mod own_server;

use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self as client, SendRequest};
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static ALLOCATOR: token_handler_alloc::Mimalloc = token_handler_alloc::Mimalloc;

type Pool = Arc<Mutex<Vec<SendRequest<Incoming>>>>;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, upstream, workers] = &args[..] else {
        panic!("usage: bare_hyper LISTEN_ADDR UPSTREAM_ADDR WORKERS");
    };
    let listen: SocketAddr = listen.parse().expect("listen address");
    let upstream: SocketAddr = upstream.parse().expect("upstream address");
    let workers: usize = workers.parse().expect("workers");
    let token = std::env::var("BENCH_PINGORA_BEARER").expect("BENCH_PINGORA_BEARER");
    let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("bearer");
    // As token-handler builds its runtime: current-thread for one worker.
    let runtime = match workers {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    }
    .enable_all()
    .build()
    .expect("runtime");
    runtime.block_on(serve(listen, upstream, bearer));
}

async fn serve(listen: SocketAddr, upstream: SocketAddr, bearer: HeaderValue) {
    let listener = TcpListener::bind(listen).await.expect("bind");
    let pool: Pool = Arc::default();
    let own: own_client::Pool = Arc::default();
    let own_client = std::env::var("BARE_HYPER_CLIENT").is_ok_and(|v| v == "own");
    let own_server = std::env::var("BARE_HYPER_SERVER").is_ok_and(|v| v == "own");
    assert!(
        own_client || !own_server,
        "BARE_HYPER_SERVER=own needs BARE_HYPER_CLIENT=own"
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        if own_server {
            let (own, bearer) = (Arc::clone(&own), bearer.clone());
            tokio::spawn(async move {
                let _ = own_server::serve(stream, |mut request| {
                    let (own, bearer) = (Arc::clone(&own), bearer.clone());
                    async move { own_client::exchange(&mut request, upstream, &own, bearer).await }
                })
                .await;
            });
            continue;
        }
        if own_client {
            let (own, bearer) = (Arc::clone(&own), bearer.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    own_client::forward(request, upstream, Arc::clone(&own), bearer.clone())
                });
                let _ = server::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            continue;
        }
        let (pool, bearer) = (Arc::clone(&pool), bearer.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                forward(request, upstream, Arc::clone(&pool), bearer.clone())
            });
            let _ = server::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn forward(
    mut request: Request<Incoming>,
    upstream: SocketAddr,
    pool: Pool,
    bearer: HeaderValue,
) -> Result<Response<Incoming>, hyper::Error> {
    request.headers_mut().insert(AUTHORIZATION, bearer);
    let mut sender = match take(&pool) {
        Some(sender) => sender,
        None => connect(upstream).await?,
    };
    let response = sender.send_request(request).await?;
    // Back at the response head: taken again only once hyper says it is ready (its body read).
    pool.lock().expect("pool").push(sender);
    Ok(response)
}

/// The most recently used connection that is ready; closed ones are dropped.
fn take(pool: &Pool) -> Option<SendRequest<Incoming>> {
    let mut idle = pool.lock().expect("pool");
    let mut i = idle.len();
    while i > 0 {
        i -= 1;
        if idle[i].is_closed() {
            idle.swap_remove(i);
        } else if idle[i].is_ready() {
            return Some(idle.swap_remove(i));
        }
    }
    None
}

async fn connect(upstream: SocketAddr) -> Result<SendRequest<Incoming>, hyper::Error> {
    let stream = TcpStream::connect(upstream)
        .await
        .expect("upstream connect");
    let _ = stream.set_nodelay(true);
    let (sender, connection) = client::Builder::new()
        .writev(false)
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(connection);
    Ok(sender)
}
