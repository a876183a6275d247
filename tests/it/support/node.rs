//! The test peers written for Node (tests/oidc: the OpenID provider, the DPoP resource
//! server): each announces itself with one JSON line on its stdout.

use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long one start of a peer may take to announce itself. It takes under a second here; a
/// start that has not announced by then is stuck, and a fresh process is started once. The stuck
/// starts seen so far were a Node 20 deadlock when a freshly generated key is exported, which
/// `tests/oidc/keys.js` now avoids; this stays for whatever else could hang a start.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Spawns `command` (stdin and stdout piped: the peer exits when its stdin closes, so no orphan
/// outlives a test; stderr inherited; killed on drop) and waits for its announcement: the first
/// stdout line that is a JSON object with a string `key`. A process that has not announced within
/// [`ATTEMPT_TIMEOUT`] is described on stderr (its state from /proc, for the record), killed and
/// replaced once. `what` names the peer in messages.
pub async fn start(command: &mut Command, key: &str, what: &str) -> (Child, serde_json::Value) {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for attempt in 1..=2 {
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!("cannot start `node` for {what} (Node.js is needed; run ./scripts/test.sh): {e}")
        });
        match announcement(&mut child, key, what, ATTEMPT_TIMEOUT).await {
            Some(first) => return (child, first),
            None => {
                eprintln!(
                    "{what}: attempt {attempt} announced no `{key}` within {ATTEMPT_TIMEOUT:?}; {}",
                    describe(&mut child)
                );
                let _ = child.kill().await;
            }
        }
    }
    panic!("{what} announced no `{key}` in two starts of {ATTEMPT_TIMEOUT:?} each (see above)")
}

/// The first stdout line of `child` that is a JSON object with `key`, or `None` after `timeout`;
/// other lines are echoed. Then stdout is drained for good, so the child can never block on a
/// full pipe.
async fn announcement(
    child: &mut Child,
    key: &str,
    what: &str,
    timeout: Duration,
) -> Option<serde_json::Value> {
    let stdout = child.stdout.take().expect("child stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(timeout, async {
        loop {
            let line = lines
                .next_line()
                .await
                .unwrap_or_else(|e| panic!("read {what} stdout: {e}"))
                .unwrap_or_else(|| {
                    panic!(
                        "{what} exited before announcing its `{key}` (see its stderr above; run \
                         ./scripts/test.sh if modules are missing)"
                    )
                });
            match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(v) if v[key].is_string() => break v,
                // Not ours (the servers route notices to stderr, but be lenient).
                _ => eprintln!("{what} stdout: {line}"),
            }
        }
    })
    .await
    .ok()?;
    let what = what.to_string();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{what} stdout: {line}");
        }
    });
    Some(first)
}

/// What a stuck child is doing: whether it exited, else each thread's state and kernel wait
/// channel, from /proc.
fn describe(child: &mut Child) -> String {
    if let Ok(Some(status)) = child.try_wait() {
        return format!("it exited: {status}");
    }
    let Some(pid) = child.id() else {
        return "its pid is gone".into();
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return format!("pid {pid}, no /proc entry");
    };
    let threads: Vec<String> = tasks
        .flatten()
        .map(|task| {
            let path = task.path();
            let read = |file: &str| {
                std::fs::read_to_string(path.join(file))
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_default()
            };
            let state = read("status")
                .lines()
                .find_map(|l| l.strip_prefix("State:").map(|s| s.trim().to_owned()))
                .unwrap_or_default();
            format!(
                "{} {state} wchan={} syscall={}",
                read("comm"),
                read("wchan"),
                read("syscall")
            )
        })
        .collect();
    format!("pid {pid} threads: [{}]", threads.join("; "))
}
