//! The benchmark harness (run it with `bench/run.sh`): token-handler against nginx as a
//! reference proxy, in the same run, on the same machine, one worker each.
//!
//! Scenarios: a valid session (open the cookie, inject the Bearer, forward); an anonymous
//! pass-through path; 10,000 distinct sessions cycled by a wrk Lua script; a large (chunked)
//! session; a valid session's `POST` of a 256-byte JSON body (an SPA's small API write, head
//! and body in one write, with the CSRF header); and a refresh storm: 1,000 concurrent requests on one session whose access token
//! just expired, against the TokenIDP emulator answering in 50 ms.
//! Rounds are interleaved (nginx, token-handler, nginx, ...); every figure is also given as a
//! ratio to nginx from the same round, because absolute numbers on a shared machine mean little.
//! With PINGORA_BIN (`bench/run.sh --pingora`) and HYPER_BIN (`--hyper`), a bare pingora and a
//! bare hyper proxy are measured too (bare.rs).

mod bare;
mod cookies;
mod nginx;
mod paced;
mod procfs;
mod sample;
mod storm;
mod wrk;

use cookies::{cookie_header, fake_token, session};
use paced::Shape;
use sample::{ms, Target};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use token_handler::config::Config;
use token_handler::crypto::KeyRing;
use token_handler::demo::tokenidp::{Options, TokenIdp};
use token_handler::session::CookieCodec;

const CLIENT_ID: &str = "tokenidp-react-dev";

struct Args {
    rounds: usize,
    duration: Duration,
    connections: u32,
    /// token-handler's `worker_threads` and nginx's `worker_processes` (the reference proxy).
    workers: usize,
    /// Requests per second offered in paced rounds (paced.rs) instead of wrk's; 0: wrk's.
    paced: f64,
    /// Paced rounds drive both proxies at once (each offered `paced`), so that a stall of the
    /// machine delays both alike, instead of one after the other.
    together: bool,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 3,
        duration: Duration::from_secs(10),
        connections: 50,
        workers: 1,
        paced: 0.0,
        together: false,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "--together" {
            a.together = true;
            continue;
        }
        let value = argv.next().unwrap_or_default();
        match flag.as_str() {
            "--rounds" => a.rounds = value.parse().expect("--rounds N"),
            "--duration" => {
                a.duration = Duration::from_secs(value.parse().expect("--duration SECONDS"))
            }
            "--connections" => a.connections = value.parse().expect("--connections N"),
            "--workers" => a.workers = value.parse().expect("--workers N"),
            "--paced" => a.paced = value.parse().expect("--paced REQUESTS_PER_SECOND"),
            other => panic!(
                "unknown argument {other}; use --rounds N --duration SECONDS --connections N --workers N --paced RATE [--together]"
            ),
        }
    }
    assert!(
        !a.together || a.paced > 0.0,
        "--together drives paced rounds: give --paced RATE too"
    );
    a
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn wait_for_port(port: u16) {
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {port}");
}

struct Proxy {
    child: Child,
    port: u16,
    admin: u16,
}

impl Drop for Proxy {
    /// SIGTERM, as Kubernetes stops it, so that it exits as in production (and an instrumented
    /// build writes its profile: `scripts/pgo.sh`); SIGKILL if it has not exited in 10 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_token_handler(dir: &Path, toml: &str, keys: &str, config: &Config) -> Proxy {
    let path = dir.join("token-handler.toml");
    std::fs::write(&path, toml).expect("config");
    // Next to this example's directory (`<target>/release/examples/bench`): the same build,
    // wherever CARGO_TARGET_DIR put it; or another build's, to compare (TOKEN_HANDLER_BIN).
    let bin = std::env::var_os("TOKEN_HANDLER_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            Some(
                std::env::current_exe()
                    .ok()?
                    .parent()?
                    .parent()?
                    .join("token-handler"),
            )
        })
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/token-handler")
        });
    let child = Command::new(&bin)
        .arg("--config")
        .arg(&path)
        .env("TOKEN_HANDLER_COOKIE_KEYS", keys)
        .env("TOKEN_HANDLER_CLIENT_SECRET", "dev-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e} (bench/run.sh builds it)", bin.display()));
    Proxy {
        child,
        port: config.server.listen.port(),
        admin: config.server.admin_listen.expect("admin").port(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let dir = std::env::temp_dir().join(format!("th-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");

    // The emulator (for discovery, and the storm's /token), in this process.
    let idp = TokenIdp::start(
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind"),
        Options::default(),
    )
    .await
    .expect("idp");
    let (up_port, ref_port) = (free_port(), free_port());
    let keys = KeyRing::generate_spec();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\nworker_threads = {}\n\
         scheduler = \"{}\"\nhttp1 = \"{}\"\n[upstream]\nurl = \"http://127.0.0.1:{up_port}\"\nclient = \"{}\"\n\
         [idp]\ndialect = \"tokenidp\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_auth = \"basic\"\nredirect_uri = \"http://127.0.0.1/auth/callback\"\n\
         [session]\nrefresh_skew = \"5s\"\n[proxy]\npublic_paths = [\"/public/\"]\n[log]\nlevel = \"warn\"\n",
        free_port(),
        free_port(),
        a.workers,
        // BENCH_SCHEDULER: `server.scheduler` (default `work_stealing`).
        std::env::var("BENCH_SCHEDULER").unwrap_or_else(|_| "work_stealing".into()),
        // BENCH_HTTP1: `server.http1` (default `direct`, as the product's).
        std::env::var("BENCH_HTTP1").unwrap_or_else(|_| "direct".into()),
        // BENCH_UPSTREAM_CLIENT: `upstream.client` (default `direct`, as the product's).
        std::env::var("BENCH_UPSTREAM_CLIENT").unwrap_or_else(|_| "direct".into()),
        idp.url(),
    );
    let config = Config::from_toml(&toml, &|name| match name {
        "TOKEN_HANDLER_COOKIE_KEYS" => Some(keys.clone()),
        "TOKEN_HANDLER_CLIENT_SECRET" => Some("dev-secret".into()),
        _ => None,
    })
    .expect("bench config");
    let codec = CookieCodec::new(&config.session, config.secrets.cookie_keys.clone());
    let now = token_handler::refresh::unix_now();

    let access = fake_token(0, 900);
    let one = cookie_header(
        &codec,
        &session(
            0,
            access.clone(),
            fake_token(1, 88),
            false,
            Default::default(),
            now,
        ),
        now,
    );
    let many: Vec<String> = (0..10_000)
        .map(|i| {
            let s = session(
                i,
                fake_token(i, 900),
                fake_token(i + 1_000_000, 88),
                false,
                Default::default(),
                now,
            );
            cookie_header(&codec, &s, now)
        })
        .collect();
    let many_path = dir.join("sessions.txt");
    std::fs::write(&many_path, many.join("\n") + "\n").expect("sessions");
    let script = dir.join("sessions.lua");
    std::fs::write(
        &script,
        format!(
            "local cookies = {{}}\nfor line in io.lines(\"{}\") do cookies[#cookies + 1] = line end\n\
             local i = 0\nrequest = function()\n  i = i + 1\n  \
             return wrk.format(nil, nil, {{ [\"Cookie\"] = cookies[(i % #cookies) + 1] }})\nend\n",
            many_path.display()
        ),
    )
    .expect("lua");
    // 255 bytes of JSON: the `POST` scenario's body, for wrk (Lua) and the paced rounds alike.
    let post_body = format!("{{\"note\":\"{}\"}}", "x".repeat(244));
    let post = dir.join("post.lua");
    std::fs::write(
        &post,
        format!(
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"X-CSRF\"] = \"1\"\nwrk.body = '{post_body}'\n"
        ),
    )
    .expect("lua");
    let mut big_claims = serde_json::Map::new();
    big_claims.insert("groups".into(), serde_json::Value::String("g".repeat(6000)));
    let large = cookie_header(
        &codec,
        &session(2, access.clone(), fake_token(3, 88), false, big_claims, now),
        now,
    );

    let upstream = nginx::Nginx::upstream(&dir, up_port);
    wait_for_port(up_port);
    let reference = nginx::Nginx::reference(&dir, ref_port, up_port, &access, a.workers);
    wait_for_port(ref_port);
    let mut bare: Vec<bare::Bare> = [("pingora", "PINGORA_BIN"), ("hyper", "HYPER_BIN")]
        .into_iter()
        .filter_map(|(name, var)| bare::Bare::start(name, var, up_port, &access, a.workers))
        .collect();
    let proxy = start_token_handler(&dir, &toml, &keys, &config);
    wait_for_port(proxy.port);
    let http = reqwest::Client::new();
    for _ in 0..500 {
        let ready = http
            .get(format!("http://127.0.0.1:{}/readyz", proxy.admin))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let nginx_pids = reference.workers(a.workers);
    let th_pid = proxy.child.id();
    let _ = upstream.worker();

    let scenarios: Vec<bare::Scenario> = vec![
        ("valid session", "/api/x", Some(&one), None),
        ("anonymous pass-through", "/public/x", None, None),
        ("10,000 sessions", "/api/x", None, Some(&script)),
        ("large (chunked) session", "/api/x", Some(&large), None),
        (
            "session POST, 256-byte body",
            "/api/x",
            Some(&one),
            Some(&post),
        ),
    ];
    let nginx = Target {
        pids: &nginx_pids,
        port: ref_port,
    };
    let th = Target {
        pids: &[th_pid],
        port: proxy.port,
    };
    let outcome = if a.paced > 0.0 {
        let shapes = [
            Shape::get("/api/x", vec![one.clone()]),
            Shape::get("/public/x", Vec::new()),
            Shape::get("/api/x", many),
            Shape::get("/api/x", vec![large.clone()]),
            Shape {
                path: "/api/x",
                cookies: vec![one.clone()],
                body: Some(post_body),
            },
        ];
        // The same scenarios, in the same order, as wrk's rounds send them.
        assert_eq!(shapes.len(), scenarios.len());
        let paced: Vec<_> = scenarios
            .iter()
            .zip(shapes)
            .map(|(s, shape)| {
                assert_eq!(s.1, shape.path, "{}", s.0);
                (s.0, shape)
            })
            .collect();
        paced::compare(&paced, nginx, th, &a, a.paced)
    } else {
        sample::compare(&scenarios, nginx, th, &mut bare, &a)
    };
    let (worst_steal, quiet_below) = (outcome.worst_steal, outcome.quiet_below);
    // Stolen time slows whichever proxy it falls on: a ratio from such a round is not the
    // proxies'.
    println!(
        "\nhighest steal in a round: {worst_steal:.1} % of the machine's CPU time{}",
        if worst_steal >= quiet_below {
            format!(" (rounds at {quiet_below} % or more measured the hypervisor's other guests too: run again)")
        } else {
            String::new()
        }
    );
    println!(
        "token-handler peak RSS: {:.1} MiB",
        procfs::peak_rss_kib(th_pid) as f64 / 1024.0
    );
    for bare in &bare {
        bare.print();
    }

    let storm_kept = storm::run(storm::Storm {
        idp: &idp,
        codec: &codec,
        proxy_port: proxy.port,
        admin_port: proxy.admin,
        th_pid,
        upstream_pid: upstream.worker(),
        http: &http,
    })
    .await;
    drop(proxy);
    drop(bare);
    drop(reference);
    drop(upstream);
    let _ = std::fs::remove_dir_all(&dir);
    // Figures of a proxy that failed requests are not a measurement (and scripts/pgo.sh must
    // not train on, or ship, a build that fails them).
    let th_errors = outcome.th_errors;
    if th_errors > 0 || !storm_kept {
        eprintln!(
            "bench: token-handler failed {th_errors} request(s), or the storm did not \
             have one /token call and every answer 200 (above)"
        );
        std::process::exit(1);
    }
}
