//! Running wrk and reading its `--latency` report.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    pub errors: u64,
}

/// `wrk -t1 -c{connections} -d{duration} --latency` against `url`, with a `Cookie` header or
/// a Lua script.
pub fn run(
    url: &str,
    connections: u32,
    duration: Duration,
    cookie: Option<&str>,
    script: Option<&Path>,
) -> WrkResult {
    let mut cmd = Command::new("wrk");
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{}s", duration.as_secs()),
        "--latency",
    ]);
    if let Some(cookie) = cookie {
        cmd.args(["-H", &format!("Cookie: {cookie}")]);
    }
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    cmd.arg(url);
    let output = cmd
        .output()
        .expect("run wrk (is it installed? bench/run.sh installs it)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    parse(&text)
}

fn parse(text: &str) -> WrkResult {
    let mut r = WrkResult::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse().unwrap_or(0.0),
            ["50%", v] => r.p50 = duration(v),
            ["99%", v] => r.p99 = duration(v),
            [n, "requests", "in", ..] => r.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>().unwrap_or(0),
            ["Socket", "errors:", ..] => {
                r.errors += line
                    .split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    r
}

fn duration(v: &str) -> Duration {
    let (number, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = number.parse().unwrap_or(0.0);
    Duration::from_secs_f64(match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => 0.0,
    })
}
