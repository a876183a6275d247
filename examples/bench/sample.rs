//! One measured round (a wrk run against one proxy) and how rounds are summed up.

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
}

/// One wrk round against `url`; CPU and RSS summed over `pids` (nginx's workers).
pub fn measure(
    pids: &[u32],
    url: &str,
    a: &Args,
    cookie: Option<&str>,
    script: Option<&Path>,
) -> Sample {
    let cpu_of = || pids.iter().map(|&p| procfs::cpu_time(p)).sum::<Duration>();
    let cpu0 = cpu_of();
    let machine0 = procfs::machine_ticks();
    let r = wrk::run(url, a.connections, a.duration, cookie, script);
    let cpu = cpu_of().saturating_sub(cpu0);
    Sample {
        rps: r.rps,
        p50: r.p50,
        p99: r.p99,
        rss_kib: pids.iter().map(|&p| procfs::rss_kib(p)).sum(),
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64,
        errors: r.errors,
        steal_pct: procfs::machine_ticks().steal_pct_since(&machine0),
    }
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

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}
