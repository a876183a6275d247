//! Process figures from /proc: resident memory, CPU time and context switches.

use std::collections::HashMap;
use std::time::Duration;

/// Resident set size in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

/// Peak resident set size in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
}

fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    field_of(&status, field)
}

/// A number field of a `status` file's text (0 when missing).
fn field_of(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time consumed so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Children of `pid` (to find nginx's single worker under its master).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        if after
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse::<u32>().ok())
            == Some(pid)
        {
            out.push(child);
        }
    }
    out
}

/// The process still exists (possibly as a zombie).
pub fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The machine's CPU time so far, from /proc/stat's `cpu` line: all of it, and the part stolen
/// by the hypervisor (given to other guests while this one wanted to run).
#[derive(Clone, Copy)]
pub struct MachineTicks {
    total: u64,
    steal: u64,
}

pub fn machine_ticks() -> MachineTicks {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .map(|l| {
            l.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is counted in
    // user already.
    MachineTicks {
        total: fields.iter().take(8).sum(),
        steal: fields.get(7).copied().unwrap_or(0),
    }
}

impl MachineTicks {
    /// Per cent of the CPU time since `earlier` that was stolen.
    pub fn steal_pct_since(&self, earlier: &MachineTicks) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        let steal = self.steal.saturating_sub(earlier.steal);
        100.0 * steal as f64 / total.max(1) as f64
    }
}

/// Context switches of each thread of `pid` so far, by thread id: (voluntary, involuntary). A
/// voluntary one is a thread going to sleep (waiting for work or a lock); an involuntary one is a
/// thread taken off its core while it wanted to run on.
fn thread_switches(pid: u32) -> HashMap<u32, (u64, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return HashMap::new();
    };
    tasks
        .flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            Some((
                tid,
                (
                    field_of(&status, "voluntary_ctxt_switches:"),
                    field_of(&status, "nonvoluntary_ctxt_switches:"),
                ),
            ))
        })
        .collect()
}

/// A measured window: the CPU time `pids` spent in it, their context switches, and the
/// machine's share stolen.
pub struct Window<'a> {
    pids: &'a [u32],
    cpu: Duration,
    switches: HashMap<u32, (u64, u64)>,
    machine: MachineTicks,
}

/// What a window measured.
pub struct Usage {
    /// CPU time summed over the processes.
    pub cpu: Duration,
    /// Per cent of the machine's CPU time stolen.
    pub steal_pct: f64,
    /// Context switches summed over the processes' threads: (voluntary, involuntary).
    pub switches: (u64, u64),
}

impl Usage {
    /// CPU µs per request and context switches per request (voluntary, involuntary), over
    /// `requests` answered in the window.
    pub fn per_request(&self, requests: u64) -> (f64, (f64, f64)) {
        let n = requests.max(1) as f64;
        (
            self.cpu.as_secs_f64() * 1e6 / n,
            (self.switches.0 as f64 / n, self.switches.1 as f64 / n),
        )
    }
}

impl<'a> Window<'a> {
    pub fn start(pids: &'a [u32]) -> Window<'a> {
        Window {
            pids,
            cpu: cpu_of(pids),
            switches: switches_of(pids),
            machine: machine_ticks(),
        }
    }

    /// What the processes used since the start. A thread started since counts from zero; one
    /// that ended takes its switches in the window with it (tokio's blocking threads, idle ones
    /// ending after 10 s, are not on the data path).
    pub fn finish(&self) -> Usage {
        let (mut v, mut i) = (0, 0);
        for (tid, (now_v, now_i)) in switches_of(self.pids) {
            let (then_v, then_i) = self.switches.get(&tid).copied().unwrap_or((0, 0));
            v += now_v.saturating_sub(then_v);
            i += now_i.saturating_sub(then_i);
        }
        Usage {
            cpu: cpu_of(self.pids).saturating_sub(self.cpu),
            steal_pct: machine_ticks().steal_pct_since(&self.machine),
            switches: (v, i),
        }
    }
}

/// Every thread's switches, over all `pids` (thread ids are unique across processes).
fn switches_of(pids: &[u32]) -> HashMap<u32, (u64, u64)> {
    pids.iter().flat_map(|&p| thread_switches(p)).collect()
}

fn cpu_of(pids: &[u32]) -> Duration {
    pids.iter().map(|&p| cpu_time(p)).sum()
}
