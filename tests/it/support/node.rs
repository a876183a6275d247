//! The test peers written for Node (tests/oidc: the OpenID provider, the DPoP resource
//! server): each announces itself with one JSON line on its stdout.

use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// The first stdout line of `child` that is a JSON object with `key`, within `timeout`; other
/// lines are echoed. Then stdout is drained for good, so the child can never block on a full
/// pipe. `what` names the peer in messages.
pub async fn announcement(
    child: &mut Child,
    key: &str,
    what: &str,
    timeout: Duration,
) -> serde_json::Value {
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
    .unwrap_or_else(|_| panic!("{what} announced no `{key}` within {timeout:?}"));
    let what = what.to_string();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{what} stdout: {line}");
        }
    });
    first
}
