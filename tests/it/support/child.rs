//! The real binary as a child process, for what only a process shows: its resident memory, and
//! a replica killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_token-handler");

pub struct Running {
    /// `None` once waited for.
    child: Option<Child>,
    /// The proxy listener and the admin listener.
    pub addr: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    /// Its log lines (stdout) after start-up.
    pub logs: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Running {
    /// Starts the binary with `config` (give it `admin_listen = "127.0.0.1:0"`) and waits until
    /// it listens and knows the IdP. Its output goes to `logs` through an unbounded channel, so
    /// the pipe never fills.
    pub async fn start(config: &str, keys: &str) -> Running {
        Running::start_with_env(
            config,
            &[
                ("TOKEN_HANDLER_COOKIE_KEYS", keys),
                ("TOKEN_HANDLER_CLIENT_SECRET", super::CLIENT_SECRET),
            ],
        )
        .await
    }

    /// Like [`Running::start`] with the secrets in `env` (names and values).
    pub async fn start_with_env(config: &str, env: &[(&str, &str)]) -> Running {
        let dir = std::env::temp_dir().join(format!(
            "th-child-{}-{}",
            std::process::id(),
            token_handler::crypto::random_token(6)
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("token-handler.toml");
        std::fs::write(&path, config).expect("write config");
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&path)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the proxy");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let field = |line: &str, key: &str| {
            line.split(key)
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|a| a.parse().ok())
        };
        let (mut addr, mut admin, mut discovered) = (None, None, false);
        let mut seen = Vec::new();
        // A bound on the wait (a start-up line reworded must fail the test, not hang it); the
        // lines seen so far go into the failure.
        let started = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while addr.is_none() || admin.is_none() || !discovered {
                let line = rx.recv().await.expect("the proxy logs its start-up");
                addr = addr.or_else(|| field(&line, "proxy listening addr="));
                admin = admin.or_else(|| field(&line, "admin listening addr="));
                discovered |= line.contains("IdP metadata discovered");
                seen.push(line);
            }
        })
        .await;
        assert!(
            started.is_ok(),
            "the proxy did not log its listeners and IdP discovery within 60 s:\n{}",
            seen.join("\n")
        );
        Running {
            child: Some(child),
            addr: addr.expect("addr"),
            admin: admin.expect("admin"),
            logs: rx,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the process with SIGKILL (what `Child::kill` sends on Unix): no drain, no cleanup,
    /// and waits for it to be gone.
    pub fn sigkill(mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("wait");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    }

    /// Waits for the process to exit; its exit code.
    pub async fn exit_code(mut self) -> Option<i32> {
        let mut child = self.child.take().expect("running");
        tokio::task::spawn_blocking(move || child.wait())
            .await
            .expect("join")
            .expect("wait")
            .code()
    }

    /// Resident memory of the process, in bytes (`VmRSS` of /proc/<pid>/status).
    pub fn rss(&self) -> u64 {
        self.status_bytes("VmRSS:")
    }

    /// The file-backed part of [`Running::rss`] (`RssFile`: code, read-only data), in bytes.
    pub fn rss_file(&self) -> u64 {
        self.status_bytes("RssFile:")
    }

    fn status_bytes(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{field} in /proc/<pid>/status"))
            * 1024
    }

    /// A metric's value from the admin listener (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        let text = super::client()
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.trim().parse().ok()))
            .unwrap_or(0.0)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
