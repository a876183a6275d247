//! `[server]`: the browser-facing listener, its limits, and who may speak for the client.

use super::raw;
use super::validate::Problems;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: Option<SocketAddr>,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Proxies (CIDRs) whose `X-Forwarded-*`, `Forwarded` and client-address headers are
    /// kept; from any other peer they are removed. Empty: trust no one.
    pub trusted_proxies: Vec<IpNet>,
    pub max_connections: usize,
    /// Longest a connection may go without a request in flight, counted from accept and from
    /// the end of its last response: bounds the first request's headers (slowloris), idle
    /// keep-alive and HTTP/2 connections, and TLS handshakes.
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    /// Longest a request body may keep the proxy waiting, plus a second per `body_min_rate`
    /// bytes received.
    pub body_read_timeout: Duration,
    pub body_min_rate: u64,
    /// Longest a write to the client may make no progress before the connection is ended.
    pub write_timeout: Duration,
    pub h2_max_concurrent_streams: u32,
    /// HTTP/2 keep-alive pings (`None`: off) and how long an answer may take.
    pub h2_keepalive_interval: Option<Duration>,
    pub h2_keepalive_timeout: Duration,
    /// TLS on the listener (PEM files, re-read when they change).
    pub tls: Option<TlsFiles>,
    /// How often mounted files (TLS, cookie keys, client secret) are checked for changes.
    pub reload_interval: Duration,
    /// Runtime worker threads; 0 = one per CPU core.
    pub worker_threads: usize,
    /// How connections are spread over the worker threads.
    pub scheduler: Scheduler,
    /// Who reads HTTP/1.1 requests first.
    pub http1: Http1Server,
    /// Once serving, unmap the start-up code pages of the executable and its libraries
    /// (`token_handler_alloc::pages`): 3 MiB less RSS, measured.
    pub release_start_up_pages: bool,
}

impl ServerConfig {
    /// Worker threads in force: `worker_threads`, or one per CPU core for 0.
    pub fn workers(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// Whether a peer is one of `trusted_proxies` (IPv4-mapped IPv6 peers as IPv4).
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

/// How connections are spread over `worker_threads` (BENCHMARKS.md measured both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    /// One tokio multi-threaded runtime: any worker may poll any connection's task (work
    /// stealing), so a worker the OS deschedules holds up nobody else's requests.
    WorkStealing,
    /// One single-threaded runtime per worker; each accepted connection is handed to the next
    /// worker in turn and stays there, with that worker's own upstream pools (the process
    /// model of nginx). Less CPU per request, a longer tail when a worker is descheduled.
    PerCore,
}

/// Who reads a connection's HTTP/1.1 requests (BENCHMARKS.md measured both; `Direct` is the
/// default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http1Server {
    /// The direct server (`server::h1`) reads the requests without a body, and hands the
    /// connection to hyper at the first other one (a body, an upgrade, HTTP/1.0, HTTP/2...).
    Direct,
    /// hyper's server reads every request.
    Hyper,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub(super) fn server(r: raw::Server, p: &mut Problems) -> ServerConfig {
    let trusted_proxies = trusted_proxies(&r, p);
    let max_connections = r.max_connections.unwrap_or(10_000);
    if !(1..=1_000_000).contains(&max_connections) {
        p.push("server.max_connections: must be between 1 and 1000000");
    }
    let max_header_bytes = r.max_header_bytes.unwrap_or(32 * 1024);
    if !(1024..=1024 * 1024).contains(&max_header_bytes) {
        p.push("server.max_header_bytes: must be between 1024 and 1048576");
    }
    let reload_interval = p.duration_at_least(
        "server.reload_interval",
        r.reload_interval,
        Duration::from_secs(10),
        Duration::from_millis(100),
    );
    let mut positive = |key: &str, raw: Option<String>, default: u64| {
        let d = p.duration(key, raw, Duration::from_secs(default));
        if d.is_zero() {
            p.push(format!("{key}: must be more than 0s"));
            return Duration::from_secs(default);
        }
        d
    };
    let header_read_timeout = positive("server.header_read_timeout", r.header_read_timeout, 30);
    let body_read_timeout = positive("server.body_read_timeout", r.body_read_timeout, 30);
    let write_timeout = positive("server.write_timeout", r.write_timeout, 30);
    let h2_keepalive_timeout = positive("server.h2_keepalive_timeout", r.h2_keepalive_timeout, 20);
    let keepalive = p.duration(
        "server.h2_keepalive_interval",
        r.h2_keepalive_interval,
        Duration::from_secs(30),
    );
    let body_min_rate = r.body_min_rate.unwrap_or(500);
    if body_min_rate == 0 {
        p.push("server.body_min_rate: must be at least 1 (bytes per second)");
    }
    let h2_max_concurrent_streams = r.h2_max_concurrent_streams.unwrap_or(100);
    if !(1..=1000).contains(&h2_max_concurrent_streams) {
        p.push("server.h2_max_concurrent_streams: must be between 1 and 1000");
    }
    ServerConfig {
        listen: p.addr("server.listen", r.listen, "0.0.0.0:8080"),
        admin_listen: Some(p.addr("server.admin_listen", r.admin_listen, "0.0.0.0:9090")),
        shutdown_grace: p.duration(
            "server.shutdown_grace",
            r.shutdown_grace,
            Duration::from_secs(20),
        ),
        trusted_proxies,
        max_connections,
        header_read_timeout,
        max_header_bytes,
        body_read_timeout,
        body_min_rate,
        write_timeout,
        h2_max_concurrent_streams,
        h2_keepalive_interval: (!keepalive.is_zero()).then_some(keepalive),
        h2_keepalive_timeout,
        tls: tls_files(r.tls_cert_file, r.tls_key_file, p),
        reload_interval,
        worker_threads: r.worker_threads.unwrap_or(0),
        scheduler: p.one_of(
            "server.scheduler",
            r.scheduler,
            Scheduler::WorkStealing,
            &[
                ("work_stealing", Scheduler::WorkStealing),
                ("per_core", Scheduler::PerCore),
            ],
        ),
        http1: p.one_of(
            "server.http1",
            r.http1,
            Http1Server::Direct,
            &[
                ("direct", Http1Server::Direct),
                ("hyper", Http1Server::Hyper),
            ],
        ),
        release_start_up_pages: r.release_start_up_pages.unwrap_or(true),
    }
}

/// `trusted_proxies` as CIDRs (a bare address is a /32 or /128). `trust_forwarded_headers =
/// true` alone is refused: it used to trust every peer, which lets any client forge its
/// address, scheme and host.
fn trusted_proxies(r: &raw::Server, p: &mut Problems) -> Vec<IpNet> {
    let mut nets = Vec::new();
    for text in r.trusted_proxies.iter().flatten() {
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => nets.push(net.trunc()),
            Err(_) => p.push(format!(
                "server.trusted_proxies: `{text}` is not an address or CIDR like \"10.0.0.0/8\""
            )),
        }
    }
    match r.trust_forwarded_headers {
        Some(true) if nets.is_empty() => p.push(
            "server.trust_forwarded_headers: trusting forwarded headers from every client lets \
             anyone forge them; list the ingress addresses in server.trusted_proxies (CIDRs) instead",
        ),
        Some(false) if !nets.is_empty() => p.push(
            "server.trust_forwarded_headers = false contradicts server.trusted_proxies; remove one",
        ),
        _ => {}
    }
    nets
}

fn tls_files(cert: Option<String>, key: Option<String>, p: &mut Problems) -> Option<TlsFiles> {
    match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let files = TlsFiles {
                cert: cert.into(),
                key: key.into(),
            };
            if let Err(e) = crate::tls::load_certified_key(&files.cert, &files.key) {
                p.push(format!("server.tls_cert_file / tls_key_file: {e}"));
            }
            Some(files)
        }
        _ => {
            p.push("server.tls_cert_file and server.tls_key_file go together");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn load(server: &str) -> Result<Config, String> {
        let text = format!(
            "[server]\n{server}\n[upstream]\nurl = \"http://127.0.0.1:3000\"\n[idp]\ndialect = \"oauth2\"\n\
             issuer = \"https://idp.example.com\"\nclient_id = \"spa\"\n\
             redirect_uri = \"https://app.example.com/auth/callback\"\n"
        );
        let env = |k: &str| {
            (k == "TOKEN_HANDLER_COOKIE_KEYS")
                .then(|| "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_string())
        };
        Config::from_toml(&text, &env).map_err(|e| e.to_string())
    }

    #[test]
    fn the_scheduler_is_work_stealing_unless_per_core_is_asked() {
        use super::Scheduler;
        assert_eq!(
            load("").expect("valid").server.scheduler,
            Scheduler::WorkStealing
        );
        let per_core = load("scheduler = \"per_core\"\nworker_threads = 2").expect("valid");
        assert_eq!(per_core.server.scheduler, Scheduler::PerCore);
        let e = load("scheduler = \"per_thread\"").expect_err("refused");
        assert!(
            e.contains("server.scheduler") && e.contains("work_stealing, per_core"),
            "{e}"
        );
    }

    #[test]
    fn http1_is_read_by_the_direct_server_unless_hyper_is_asked() {
        use super::Http1Server;
        assert_eq!(load("").expect("valid").server.http1, Http1Server::Direct);
        let hyper = load("http1 = \"hyper\"").expect("valid");
        assert_eq!(hyper.server.http1, Http1Server::Hyper);
        let e = load("http1 = \"fast\"").expect_err("refused");
        assert!(
            e.contains("server.http1") && e.contains("direct, hyper"),
            "{e}"
        );
    }

    #[test]
    fn forwarded_headers_are_trusted_from_listed_proxies_only() {
        let c = load("trusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\", \"fd00::/8\"]")
            .expect("valid");
        for ip in ["10.1.2.3", "192.168.1.7", "::ffff:10.0.0.1", "fd00::1"] {
            assert!(c.server.is_trusted_proxy(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["11.0.0.1", "192.168.1.8", "::1", "127.0.0.1"] {
            assert!(!c.server.is_trusted_proxy(ip.parse().expect("ip")), "{ip}");
        }
        let none = load("").expect("valid");
        assert!(!none
            .server
            .is_trusted_proxy("127.0.0.1".parse().expect("ip")));
        let err = load("trust_forwarded_headers = true").expect_err("everyone trusted");
        assert!(err.contains("server.trusted_proxies"), "{err}");
        let err = load("trusted_proxies = [\"10.0.0.0/33\"]").expect_err("bad CIDR");
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }

    #[test]
    fn limits_have_safe_defaults_and_refuse_zero() {
        let c = load("").expect("valid");
        assert_eq!(c.server.h2_max_concurrent_streams, 100);
        assert_eq!(c.server.body_min_rate, 500);
        assert!(c.server.h2_keepalive_interval.is_some());
        let err = load("write_timeout = \"0s\"\nbody_read_timeout = \"0s\"").expect_err("zero");
        assert!(err.contains("server.write_timeout"), "{err}");
        assert!(err.contains("server.body_read_timeout"), "{err}");
    }
}
