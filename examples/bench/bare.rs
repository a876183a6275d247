//! The bare proxies: pingora (`bench/run.sh --pingora`; bench/pingora/, its own project, built by
//! run.sh, its binary's path in PINGORA_BIN) and hyper (`bench/run.sh --hyper`;
//! examples/bare_hyper.rs, in HYPER_BIN). Each takes `LISTEN UPSTREAM WORKERS` and sets the same
//! `Authorization` header (BENCH_PINGORA_BEARER) as the nginx reference proxy. In every data-path
//! scenario each is measured right after token-handler, with the same wrk command (URL path,
//! cookie or Lua script), and compared with that round's nginx; their rows are printed after
//! token-handler's table.

use super::sample::{measure, median, ms, Sample};
use super::Args;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A data-path scenario as main.rs lists them: name, URL path, `Cookie` header, wrk Lua script.
pub type Scenario<'a> = (&'a str, &'a str, Option<&'a str>, Option<&'a Path>);

pub struct Bare {
    /// "pingora" or "hyper": the rows' labels.
    name: &'static str,
    child: Child,
    port: u16,
    rows: Vec<String>,
    /// Per scenario: its name and, per round, this proxy / nginx throughput, p99 ratio, RSS MiB,
    /// token-handler / this proxy throughput.
    summary: Vec<(String, [Vec<f64>; 4])>,
}

impl Bare {
    /// Started (and listening) when the environment variable `bin_var` names the binary; `None`
    /// without it.
    pub fn start(
        name: &'static str,
        bin_var: &str,
        upstream_port: u16,
        token: &str,
        workers: usize,
    ) -> Option<Bare> {
        let bin = std::path::PathBuf::from(std::env::var_os(bin_var)?);
        let port = super::free_port();
        let child = Command::new(&bin)
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("127.0.0.1:{upstream_port}"))
            .arg(workers.to_string())
            .env("BENCH_PINGORA_BEARER", token)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e} (bench/run.sh --{name})", bin.display()));
        super::wait_for_port(port);
        Some(Bare {
            name,
            child,
            port,
            rows: Vec::new(),
            summary: Vec::new(),
        })
    }

    /// One round of `scenario` against this proxy; `n` and `t` are that round's nginx and
    /// token-handler samples.
    pub fn round(&mut self, scenario: &Scenario, round: usize, a: &Args, n: &Sample, t: &Sample) {
        let &(name, path, cookie, script) = scenario;
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let p = measure(&[self.child.id()], &url, a, cookie, script);
        let ratio = p.rps / n.rps.max(1.0);
        let p99_ratio = p.p99.as_secs_f64() / n.p99.as_secs_f64().max(1e-9);
        let rss = p.rss_kib as f64 / 1024.0;
        let th_ratio = t.rps / p.rps.max(1.0);
        self.rows.push(format!(
            "| {name} | {round} | {:.0} | {:.0} | {ratio:.2} | {}/{} | {}/{} | {p99_ratio:.2} | {rss:.1} | {:.1} | {:.1} | {:.2} | {th_ratio:.2} | {} | {:.1} |",
            n.rps,
            p.rps,
            ms(n.p50),
            ms(n.p99),
            ms(p.p50),
            ms(p.p99),
            n.cpu_us_per_request,
            p.cpu_us_per_request,
            p.cpu_us_per_request / n.cpu_us_per_request.max(1e-9),
            p.errors,
            p.steal_pct,
        ));
        if self.summary.last().map(|(last, _)| last.as_str()) != Some(name) {
            self.summary.push((name.to_string(), Default::default()));
        }
        let figures = &mut self.summary.last_mut().expect("scenario").1;
        for (v, x) in figures.iter_mut().zip([ratio, p99_ratio, rss, th_ratio]) {
            v.push(x);
        }
    }

    /// The rows of every round, the medians per scenario, and this proxy's peak RSS.
    pub fn print(&self) {
        let p = self.name;
        println!("\nbare {p} (the same workers) against the same nginx rounds:\n");
        println!("| scenario | round | nginx req/s | {p} req/s | ratio | nginx p50/p99 ms | {p} p50/p99 ms | p99 ratio | {p} RSS MiB | nginx CPU µs/req | {p} CPU µs/req | CPU ratio | th / {p} | {p} errors | steal % ({p}'s round) |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for row in &self.rows {
            println!("{row}");
        }
        println!("\n| scenario | median throughput ratio ({p} / nginx) | median p99 ratio | {p} RSS MiB | median th / {p} |");
        println!("|---|---|---|---|---|");
        for (name, [ratio, p99, rss, th]) in &self.summary {
            let [ratio, p99, rss, th] = [ratio, p99, rss, th].map(|v| median(v.clone()));
            println!("| {name} | {ratio:.2} | {p99:.2} | {rss:.1} | {th:.2} |");
        }
        println!(
            "\n{p} peak RSS: {:.1} MiB",
            super::procfs::peak_rss_kib(self.child.id()) as f64 / 1024.0
        );
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
