//! The refresh storm: 1,000 concurrent requests on one session whose access token has just
//! expired, against the TokenIDP emulator answering `/token` after 50 ms; one `/token` call
//! expected. Besides the latencies, where the time goes: when the client had handed every
//! request over, when the answers came (per 10 ms after the IdP's answer could first be
//! back), and the CPU each process spent, the client's own included (this process: the
//! requests' client and the IdP emulator), on a machine whose two cores all of them share.
//!
//! `BENCH_BEFORE_STORM='perf record -g -p {pid} -o storm.perf'` runs that command (in the
//! background, `{pid}` the proxy's) 500 ms before the storm: a profile of the storm alone.

use super::{cookie_header, ms, procfs, session, CLIENT_ID};
use std::time::{Duration, Instant};
use token_handler::demo::tokenidp::{Fault, TokenIdp};
use token_handler::session::CookieCodec;

pub struct Storm<'a> {
    pub idp: &'a TokenIdp,
    pub codec: &'a CookieCodec,
    pub proxy_port: u16,
    pub admin_port: u16,
    pub th_pid: u32,
    pub upstream_pid: u32,
    pub http: &'a reqwest::Client,
}

/// One request of the storm: when its task began sending and when its answer was in, from
/// the storm's start.
struct Timing {
    status: u16,
    sent: Duration,
    done: Duration,
}

/// Whether the storm went as the proxy promises: one `/token` call, and every request answered
/// `200`.
pub async fn run(s: Storm<'_>) -> bool {
    let Storm {
        idp,
        codec,
        proxy_port,
        admin_port,
        th_pid,
        upstream_pid,
        http,
    } = s;
    idp.set_fault(Fault::Slow(Duration::from_millis(50)));
    let issued = idp.issue(
        CLIENT_ID,
        "demo",
        "openid profile email offline_access api.read",
    );
    let storm_now = token_handler::refresh::unix_now();
    let expired = cookie_header(
        codec,
        &session(
            9,
            issued.access_token,
            issued.refresh_token,
            true,
            Default::default(),
            storm_now,
        ),
        storm_now,
    );
    let before = idp.refresh_calls();
    // 1,000 browsers with their connections already open (and the proxy's upstream pool
    // warmed by them): the storm measures the refresh path, not 1,000 TCP handshakes.
    let client = reqwest::Client::new();
    let warm = format!("http://127.0.0.1:{proxy_port}/public/warm");
    let warming: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(client.get(warm.clone()).send()))
        .collect();
    for w in warming {
        let _ = w.await.expect("task").and_then(|r| r.error_for_status());
    }
    let profiler = before_storm(th_pid).await;
    let url = format!("http://127.0.0.1:{proxy_port}/api/storm");
    let cpu = || [th_pid, upstream_pid, std::process::id()].map(procfs::cpu_time);
    let cpu_before = cpu();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (client, url, cookie) = (client.clone(), url.clone(), expired.clone());
        tasks.push(tokio::spawn(async move {
            let sent = started.elapsed();
            let status = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            Timing {
                status,
                sent,
                done: started.elapsed(),
            }
        }));
    }
    let mut timings = Vec::new();
    for t in tasks {
        timings.push(t.await.expect("task"));
    }
    let wall = started.elapsed();
    let cpu_after = cpu();
    drop(profiler);
    let failures = timings.iter().filter(|t| t.status != 200).count();
    let calls = idp.refresh_calls() - before;
    let mut latencies: Vec<Duration> = timings.iter().map(|t| t.done - t.sent).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let metrics = http
        .get(format!("http://127.0.0.1:{admin_port}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    };
    let idp_latency = sample("token_handler_idp_token_seconds_sum{grant=\"refresh_token\"}")
        / sample("token_handler_idp_token_seconds_count{grant=\"refresh_token\"}").max(1.0);
    let spent = |i: usize| (cpu_after[i] - cpu_before[i]).as_millis();
    println!(
        "\nrefresh storm: 1000 concurrent requests, one expired session, IdP answering in ~50 ms\n\
         /token calls: {calls}  failures: {failures}  wall: {} ms\n\
         latency p50 {} ms, p99 {} ms, max {} ms; the IdP's own /token latency {:.2} ms\n\
         (target: p99 <= IdP latency + 5 ms = {:.2} ms)\n\
         CPU spent in the storm: token-handler {} ms, upstream nginx {} ms, the client and the IdP emulator (this process) {} ms",
        wall.as_millis(),
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(*latencies.last().expect("latencies")),
        idp_latency * 1e3,
        idp_latency * 1e3 + 5.0,
        spent(0),
        spent(1),
        spent(2),
    );
    timeline(&timings, Duration::from_secs_f64(idp_latency));
    println!(
        "token-handler RSS after the storm: {:.1} MiB (peak {:.1} MiB)",
        procfs::rss_kib(th_pid) as f64 / 1024.0,
        procfs::peak_rss_kib(th_pid) as f64 / 1024.0
    );
    calls == 1 && failures == 0
}

/// When the requests went out and the answers came in.
fn timeline(timings: &[Timing], idp: Duration) {
    let last_sent = timings.iter().map(|t| t.sent).max().unwrap_or_default();
    let first_sent = timings.iter().map(|t| t.sent).min().unwrap_or_default();
    let mut done: Vec<Duration> = timings.iter().map(|t| t.done).collect();
    done.sort();
    // The earliest the refreshed answer can be back: the first request sent + the IdP's time.
    let earliest = first_sent + idp;
    let by = |d: Duration| done.iter().filter(|t| **t <= d).count();
    println!(
        "where the time goes: the client handed the 1000 requests over from {} to {} ms; the \
         refresh could be back at {} ms (first request + IdP latency); answers: first {} ms, \
         half {} ms, last {} ms; answered by then + 5 ms: {}",
        ms(first_sent),
        ms(last_sent),
        ms(earliest),
        ms(done[0]),
        ms(done[done.len() / 2]),
        ms(done[done.len() - 1]),
        by(earliest + Duration::from_millis(5)),
    );
    let mut buckets = Vec::new();
    let mut from = earliest;
    while from < done[done.len() - 1] {
        let to = from + Duration::from_millis(10);
        buckets.push(
            done.iter()
                .filter(|t| **t > from && **t <= to)
                .count()
                .to_string(),
        );
        from = to;
    }
    println!(
        "answers per 10 ms from then: {} (before it: {})",
        buckets.join(" "),
        by(earliest)
    );
}

/// Starts `BENCH_BEFORE_STORM` (see the module docs), if set, and gives it 500 ms to attach;
/// it is stopped (SIGINT, as perf expects) when the returned guard drops.
async fn before_storm(pid: u32) -> Option<Profiler> {
    let command = std::env::var("BENCH_BEFORE_STORM").ok()?;
    let command = command.replace("{pid}", &pid.to_string());
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("exec {command}"))
        .spawn()
        .expect("BENCH_BEFORE_STORM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    Some(Profiler(child))
}

struct Profiler(std::process::Child);

impl Drop for Profiler {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}
