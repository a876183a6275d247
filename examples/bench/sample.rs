//! One measured round (a wrk run against one proxy) and how rounds are summed up.

use super::bare::{Bare, Scenario};
use super::{procfs, wrk, Args};
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Default)]
pub struct Sample {
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub rss_kib: u64,
    pub cpu_us_per_request: f64,
    pub errors: u64,
    /// The share of the machine's CPU time the hypervisor gave to other guests during the round
    /// (`steal` in /proc/stat), in per cent: a round with much of it measured a neighbour too.
    pub steal_pct: f64,
    /// Context switches per request, summed over the proxy's threads: (voluntary, involuntary).
    pub switches_per_request: (f64, f64),
}

/// One wrk round against `url`; CPU and RSS summed over `pids` (nginx's workers).
pub fn measure(
    pids: &[u32],
    url: &str,
    a: &Args,
    cookie: Option<&str>,
    script: Option<&Path>,
) -> Sample {
    let window = procfs::Window::start(pids);
    let r = wrk::run(url, a.connections, a.duration, cookie, script);
    let usage = window.finish();
    let (cpu_us_per_request, switches_per_request) = usage.per_request(r.requests);
    Sample {
        rps: r.rps,
        p50: r.p50,
        p99: r.p99,
        rss_kib: pids.iter().map(|&p| procfs::rss_kib(p)).sum(),
        cpu_us_per_request,
        errors: r.errors,
        steal_pct: usage.steal_pct,
        switches_per_request,
    }
}

/// A proxy under measurement: the processes whose CPU and RSS are counted, and its port.
pub struct Target<'a> {
    pub pids: &'a [u32],
    pub port: u16,
}

/// What a comparison found: token-handler's failed requests, the highest steal of any round, and
/// the steal from which a round was not quiet.
pub struct Outcome {
    pub th_errors: u64,
    pub worst_steal: f64,
    pub quiet_below: f64,
}

/// `a.rounds` wrk rounds of every scenario, nginx then token-handler (then the bare proxies'):
/// a row per round and the medians per scenario.
pub fn compare(
    scenarios: &[Scenario],
    nginx: Target,
    th: Target,
    bare: &mut [Bare],
    a: &Args,
) -> Outcome {
    println!(
        "\ntoken-handler vs nginx proxy_pass: {} rounds x {} s, wrk -t1 -c{}, {} worker(s) each\n",
        a.rounds,
        a.duration.as_secs(),
        a.connections,
        a.workers
    );
    println!("| scenario | round | nginx req/s | th req/s | ratio | nginx p50/p99 ms | th p50/p99 ms | p50 ratio | p99 ratio | nginx RSS MiB | th RSS MiB | RSS ratio | nginx CPU µs/req | th CPU µs/req | CPU ratio | switches/req, vol+invol, nginx / th | errors | steal % |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    let mut out = Outcome {
        th_errors: 0,
        worst_steal: 0.0,
        quiet_below: QUIET_STEAL_PCT,
    };
    // `--rounds 0`: only the refresh storm.
    for scenario in scenarios.iter().filter(|_| a.rounds > 0) {
        let (name, path, cookie, script) = scenario;
        let mut ratios = Vec::new();
        let mut p99_ratios = Vec::new();
        let mut th_rss = Vec::new();
        let (mut quiet_ratios, mut quiet_p99s) = (Vec::new(), Vec::new());
        for round in 1..=a.rounds {
            let n = measure(
                nginx.pids,
                &format!("http://127.0.0.1:{}{path}", nginx.port),
                a,
                *cookie,
                *script,
            );
            let t = measure(
                th.pids,
                &format!("http://127.0.0.1:{}{path}", th.port),
                a,
                *cookie,
                *script,
            );
            for bare in bare.iter_mut() {
                bare.round(scenario, round, a, &n, &t);
            }
            let ratio = t.rps / n.rps.max(1.0);
            let p99_ratio = t.p99.as_secs_f64() / n.p99.as_secs_f64().max(1e-9);
            ratios.push(ratio);
            p99_ratios.push(p99_ratio);
            th_rss.push(t.rss_kib as f64 / 1024.0);
            out.th_errors += t.errors;
            println!(
                "| {name} | {round} | {:.0} | {:.0} | {ratio:.2} | {}/{} | {}/{} | {:.2} | {p99_ratio:.2} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} | {:.2} | {} / {} | {}/{} | {:.1}/{:.1} |",
                n.rps,
                t.rps,
                ms(n.p50),
                ms(n.p99),
                ms(t.p50),
                ms(t.p99),
                t.p50.as_secs_f64() / n.p50.as_secs_f64().max(1e-9),
                n.rss_kib as f64 / 1024.0,
                t.rss_kib as f64 / 1024.0,
                t.rss_kib as f64 / n.rss_kib.max(1) as f64,
                n.cpu_us_per_request,
                t.cpu_us_per_request,
                t.cpu_us_per_request / n.cpu_us_per_request.max(1e-9),
                switches(n.switches_per_request),
                switches(t.switches_per_request),
                n.errors,
                t.errors,
                n.steal_pct,
                t.steal_pct,
            );
            out.worst_steal = out.worst_steal.max(n.steal_pct).max(t.steal_pct);
            if n.steal_pct.max(t.steal_pct) < QUIET_STEAL_PCT {
                quiet_ratios.push(ratio);
                quiet_p99s.push(p99_ratio);
            }
        }
        summary.push(Summary {
            name,
            ratio: median(ratios),
            p99: median(p99_ratios),
            rss: median(th_rss),
            quiet: quiet_ratios.len(),
            quiet_ratio: median(quiet_ratios),
            quiet_p99: median(quiet_p99s),
        });
    }
    print_summary(&summary);
    out
}

/// A round in which either proxy had this much of the machine's CPU time stolen, or more, is
/// left out of the quiet rounds' medians (it measured the hypervisor's other guests too). A p99
/// is the slowest 1 % of the requests: time stolen in bursts over 1 % of a round can make it
/// alone (measured: a p99 of 7.04 ms against 1.88 ms the round before, with 3 % stolen).
pub const QUIET_STEAL_PCT: f64 = 1.0;

/// One scenario's rounds, summed up: medians of token-handler's figures against nginx's, over
/// every round and over the quiet ones.
pub struct Summary<'a> {
    pub name: &'a str,
    pub ratio: f64,
    pub p99: f64,
    pub rss: f64,
    /// Rounds under [`QUIET_STEAL_PCT`] on both sides, and their medians.
    pub quiet: usize,
    pub quiet_ratio: f64,
    pub quiet_p99: f64,
}

pub fn print_summary(summary: &[Summary]) {
    println!("\n| scenario | median throughput ratio (th / nginx) | median p99 ratio | token-handler RSS MiB | rounds under {QUIET_STEAL_PCT} % steal: how many, median throughput / p99 ratio |");
    println!("|---|---|---|---|---|");
    for s in summary {
        let quiet = match s.quiet {
            0 => "none".to_string(),
            n => format!("{n}: {:.2} / {:.2}", s.quiet_ratio, s.quiet_p99),
        };
        println!(
            "| {} | {:.2} | {:.2} | {:.1} | {quiet} |",
            s.name, s.ratio, s.p99, s.rss
        );
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Context switches per request as `voluntary+involuntary`.
pub fn switches((voluntary, involuntary): (f64, f64)) -> String {
    format!("{voluntary:.2}+{involuntary:.2}")
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}
