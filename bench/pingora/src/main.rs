//! A bare pingora reverse proxy, the third row of `bench/run.sh --pingora`: every request is
//! forwarded to one upstream over HTTP/1.1 keep-alive (pingora's connection pool), with the same
//! fixed `Authorization: Bearer …` header the nginx reference proxy sets. No TLS, no cache, no
//! logging; pingora's defaults but for the number of threads.
//!
//!   bench-pingora LISTEN UPSTREAM THREADS
//!   (the token in BENCH_PINGORA_BEARER; e.g. `bench-pingora 127.0.0.1:8080 127.0.0.1:9000 1`)
//!
//! Not part of token-handler: its own workspace and lock file, built only by the benchmark.

use async_trait::async_trait;
use pingora::http::RequestHeader;
use pingora::prelude::{HttpPeer, ProxyHttp, Result, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::net::SocketAddr;

struct Bare {
    upstream: SocketAddr,
    authorization: http::HeaderValue,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        _: &mut Session,
        request: &mut RequestHeader,
        _: &mut (),
    ) -> Result<()> {
        request.insert_header(http::header::AUTHORIZATION, self.authorization.clone())
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let usage = "usage: bench-pingora LISTEN UPSTREAM THREADS (token in BENCH_PINGORA_BEARER)";
    let [_, listen, upstream, threads] = argv.as_slice() else {
        panic!("{usage}");
    };
    let token = std::env::var("BENCH_PINGORA_BEARER").expect(usage);
    let conf = ServerConf {
        threads: threads.parse().expect(usage),
        // Not daemonized, so never written; kept out of /tmp's shared names all the same.
        pid_file: std::env::temp_dir()
            .join(format!("bench-pingora-{}.pid", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        Bare {
            upstream: upstream.parse().expect(usage),
            authorization: format!("Bearer {token}").try_into().expect("token"),
        },
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
