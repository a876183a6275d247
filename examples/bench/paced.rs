//! Latency at a fixed offered load (`--paced RATE`): both proxies are sent the same number of
//! requests per second, below what either can serve, and their latencies are compared.
//!
//! wrk's rounds drive each proxy as hard as it goes (a closed loop: 50 connections, each sending
//! its next request when the last answer is in). The proxies then share two saturated cores with
//! wrk and the upstream, and a two-worker p99 is mostly how long the kernel left one of them
//! waiting for a core: a ratio that swings either side of 1.0 from one round to the next. Here
//! each of the connections sends on a schedule (`connections / RATE` seconds apart, staggered),
//! so both proxies do the same work and the machine keeps spare time.
//!
//! Latency is taken as wrk2 takes it, against coordinated omission: a request whose connection
//! was still waiting for the previous answer at its scheduled time is timed from that scheduled
//! time (the proxy's slowness held it back); one whose connection was free is timed from when it
//! was written (a late wake-up of this generator's timer, which ticks in milliseconds, is not the
//! proxy's). The generator is one thread, as wrk's `-t1`.

use super::sample::{median, ms, switches, Outcome, Target};
use super::{procfs, Args};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A paced round in which either proxy had this much of the machine's CPU time stolen, or more,
/// is left out of the quiet rounds' medians: half of wrk's threshold (`sample::QUIET_STEAL_PCT`).
/// Here a stall of the proxy delays every request scheduled during it, not only the 50 in
/// flight, so a stall of 1 % of the round makes the p99 alone; 1 % of one core is 0.5 % of the
/// machine's two.
pub const PACED_QUIET_STEAL_PCT: f64 = 0.5;

/// What a scenario sends: wrk's request (method, path, `Host`, then the scenario's headers),
/// cycling through `cookies` (none: no `Cookie` header).
pub struct Shape {
    pub path: &'static str,
    pub cookies: Vec<String>,
    /// A JSON body, sent as the `POST` scenario's Lua script has wrk send it.
    pub body: Option<String>,
}

impl Shape {
    pub fn get(path: &'static str, cookies: Vec<String>) -> Shape {
        Shape {
            path,
            cookies,
            body: None,
        }
    }

    /// The request bytes for a proxy on `port`, one per cookie.
    fn requests(&self, port: u16) -> Vec<Vec<u8>> {
        let cookies: Vec<Option<&str>> = if self.cookies.is_empty() {
            vec![None]
        } else {
            self.cookies.iter().map(|c| Some(c.as_str())).collect()
        };
        cookies
            .into_iter()
            .map(|cookie| {
                let method = if self.body.is_some() { "POST" } else { "GET" };
                let mut r = format!("{method} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n", self.path);
                if let Some(cookie) = cookie {
                    r.push_str(&format!("Cookie: {cookie}\r\n"));
                }
                if let Some(body) = &self.body {
                    r.push_str(&format!(
                        "Content-Type: application/json\r\nX-CSRF: 1\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    ));
                } else {
                    r.push_str("\r\n");
                }
                r.into_bytes()
            })
            .collect()
    }
}

/// One paced round against one proxy.
pub struct Paced {
    /// Answers per second (`200`s) from the first request's schedule to the last answer: under
    /// the offered rate when the proxy fell behind and answered a queue after the round.
    pub achieved: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub cpu_us_per_request: f64,
    pub errors: u64,
    pub steal_pct: f64,
    /// Context switches per answer, summed over the proxy's threads: (voluntary, involuntary).
    pub switches_per_request: (f64, f64),
}

/// `rate` requests per second for `duration` over `connections` connections to `port`; CPU
/// summed over `pids`.
pub fn round(
    pids: &[u32],
    port: u16,
    shape: &Shape,
    connections: u32,
    rate: f64,
    duration: Duration,
) -> Paced {
    let requests = Arc::new(shape.requests(port));
    let window = procfs::Window::start(pids);
    let (mut latencies, errors, elapsed) = std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(drive(port, requests, connections, rate, duration))
        })
        .join()
        .expect("paced generator")
    });
    let usage = window.finish();
    latencies.sort_unstable();
    let at = |q: f64| {
        let i = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        Duration::from_micros(latencies.get(i).copied().unwrap_or(0))
    };
    let (cpu_us_per_request, switches_per_request) = usage.per_request(latencies.len() as u64);
    Paced {
        achieved: latencies.len() as f64 / elapsed.max(duration).as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        cpu_us_per_request,
        errors,
        steal_pct: usage.steal_pct,
        switches_per_request,
    }
}

/// Every connection's latencies (µs), the failed requests, and the time from the first request's
/// schedule to the last answer.
async fn drive(
    port: u16,
    requests: Arc<Vec<Vec<u8>>>,
    connections: u32,
    rate: f64,
    duration: Duration,
) -> (Vec<u64>, u64, Duration) {
    let mut streams = Vec::new();
    for _ in 0..connections {
        streams.push(connect(port).await);
    }
    // Every connection open before the first request is due.
    let start = Instant::now() + Duration::from_millis(100);
    let tasks: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(c, stream)| {
            let schedule = Schedule {
                first: start + Duration::from_secs_f64(c as f64 / rate),
                period: Duration::from_secs_f64(connections as f64 / rate),
                end: start + duration,
            };
            tokio::spawn(connection(
                port,
                stream,
                Arc::clone(&requests),
                c,
                connections as usize,
                schedule,
            ))
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (latencies, failed) = t.await.expect("connection task");
        all.extend(latencies);
        errors += failed;
    }
    (all, errors, start.elapsed())
}

struct Schedule {
    first: Instant,
    period: Duration,
    end: Instant,
}

async fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the proxy");
    s.set_nodelay(true).expect("nodelay");
    s
}

/// One connection's requests: the `c`-th, `c + n`-th, ... of `requests` (cycled), each at its
/// scheduled time or as soon as the previous answer is in.
async fn connection(
    port: u16,
    mut stream: TcpStream,
    requests: Arc<Vec<Vec<u8>>>,
    c: usize,
    n: usize,
    s: Schedule,
) -> (Vec<u64>, u64) {
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut buf = Vec::with_capacity(8192);
    let (mut next, mut i) = (s.first, c);
    let mut free_since = s.first;
    while next < s.end {
        if Instant::now() < next {
            tokio::time::sleep_until(next.into()).await;
        }
        let written = Instant::now();
        // Held back by the previous answer: timed from the schedule (coordinated omission).
        let from = if free_since > next { next } else { written };
        let request = &requests[i % requests.len()];
        match exchange(&mut stream, request, &mut buf).await {
            Ok(200) => latencies.push(from.elapsed().as_micros() as u64),
            Ok(_) => failed += 1,
            Err(_) => {
                failed += 1;
                stream = connect(port).await;
            }
        }
        free_since = Instant::now();
        next += s.period;
        i += n;
    }
    (latencies, failed)
}

/// Writes `request` and reads one answer with a `Content-Length` (the fixed upstream's, passed
/// on by every proxy measured); its status.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> std::io::Result<u16> {
    stream.write_all(request).await?;
    buf.clear();
    loop {
        if let Some(head) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = std::str::from_utf8(&buf[..head]).map_err(std::io::Error::other)?;
            let status = text
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other("no status"))?;
            let length: usize = text
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .ok_or_else(|| std::io::Error::other("no Content-Length"))?;
            let total = head + 4 + length;
            while buf.len() < total {
                if stream.read_buf(buf).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
            return if buf.len() == total {
                Ok(status)
            } else {
                Err(std::io::Error::other("bytes after the answer"))
            };
        }
        buf.reserve(4096);
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

/// `rounds` paced rounds of every scenario, nginx then token-handler, each sent `rate`
/// requests per second: a row per round and the medians per scenario (of every round, and of
/// the rounds under [`PACED_QUIET_STEAL_PCT`] stolen on both sides).
pub fn compare(
    scenarios: &[(&str, Shape)],
    nginx: Target,
    th: Target,
    a: &Args,
    rate: f64,
) -> Outcome {
    println!(
        "\ntoken-handler vs nginx proxy_pass at a fixed load: {rate:.0} req/s offered{}, {} rounds x {} s, {} connections, {} worker(s) each\n",
        if a.together {
            " to each proxy at once"
        } else {
            ""
        },
        a.rounds,
        a.duration.as_secs(),
        a.connections,
        a.workers
    );
    println!("| scenario | round | nginx answers/s | th answers/s | nginx p50/p99/p99.9 ms | th p50/p99/p99.9 ms | p99 ratio | p99.9 ratio | nginx CPU µs/req | th CPU µs/req | CPU ratio | switches/req, vol+invol, nginx / th | errors | steal % |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut out = Outcome {
        th_errors: 0,
        worst_steal: 0.0,
        quiet_below: PACED_QUIET_STEAL_PCT,
    };
    let mut summary = Vec::new();
    // `--rounds 0`: only the refresh storm.
    for (name, shape) in scenarios.iter().filter(|_| a.rounds > 0) {
        let (mut p99s, mut p999s, mut cpus) = (Vec::new(), Vec::new(), Vec::new());
        let (mut quiet_p99s, mut quiet_p999s) = (Vec::new(), Vec::new());
        for r in 1..=a.rounds {
            let run = |t: &Target| round(t.pids, t.port, shape, a.connections, rate, a.duration);
            let (n, t) = if a.together {
                std::thread::scope(|s| {
                    let n = s.spawn(|| run(&nginx));
                    let t = run(&th);
                    (n.join().expect("paced round"), t)
                })
            } else {
                (run(&nginx), run(&th))
            };
            let ratio = |t: Duration, n: Duration| t.as_secs_f64() / n.as_secs_f64().max(1e-9);
            let (p99, p999) = (ratio(t.p99, n.p99), ratio(t.p999, n.p999));
            let cpu = t.cpu_us_per_request / n.cpu_us_per_request.max(1e-9);
            // An answer rate under the offered one: that proxy could not keep up, and the
            // round measured a queue, not a latency.
            let answered = |p: &Paced| {
                let behind = if p.achieved < rate * 0.97 {
                    " (behind)"
                } else {
                    ""
                };
                format!("{:.0}{behind}", p.achieved)
            };
            let times = |p: &Paced| format!("{}/{}/{}", ms(p.p50), ms(p.p99), ms(p.p999));
            println!(
                "| {name} | {r} | {} | {} | {} | {} | {p99:.2} | {p999:.2} | {:.1} | {:.1} | {cpu:.2} | {} / {} | {}/{} | {:.1}/{:.1} |",
                answered(&n),
                answered(&t),
                times(&n),
                times(&t),
                n.cpu_us_per_request,
                t.cpu_us_per_request,
                switches(n.switches_per_request),
                switches(t.switches_per_request),
                n.errors,
                t.errors,
                n.steal_pct,
                t.steal_pct,
            );
            out.th_errors += t.errors;
            out.worst_steal = out.worst_steal.max(n.steal_pct).max(t.steal_pct);
            if n.steal_pct.max(t.steal_pct) < PACED_QUIET_STEAL_PCT {
                quiet_p99s.push(p99);
                quiet_p999s.push(p999);
            }
            p99s.push(p99);
            p999s.push(p999);
            cpus.push(cpu);
        }
        let quiet = match quiet_p99s.len() {
            0 => "none".to_string(),
            q => format!(
                "{q}: {:.2} / {:.2}",
                median(quiet_p99s),
                median(quiet_p999s)
            ),
        };
        summary.push(format!(
            "| {name} | {:.2} | {:.2} | {:.2} | {quiet} |",
            median(p99s),
            median(p999s),
            median(cpus)
        ));
    }
    println!("\n| scenario | median p99 ratio (th / nginx) | median p99.9 ratio | median CPU per request ratio | rounds under {PACED_QUIET_STEAL_PCT} % steal: how many, median p99 / p99.9 ratio |");
    println!("|---|---|---|---|---|");
    for line in summary {
        println!("{line}");
    }
    out
}
