//! Real Redis processes for the topology tests: Debian's `redis-server` (also the Sentinel, with
//! `--sentinel`), one config file each in a temp dir, on free loopback ports, killed on drop.
//!
//! Every data node has the same users: `default` with [`ADMIN_PASSWORD`] (the tests' own reads,
//! replication, the Sentinels) and the proxy's ACL user [`USER`], allowed only the `th:*` keys
//! and the commands the coordination protocol sends ([`USER_ACL`], as README recommends).

use redis::aio::MultiplexedConnection;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::Instant;

pub const ADMIN_PASSWORD: &str = "admin-pw-for-tests";
pub const USER: &str = "token-handler";
pub const USER_PASSWORD: &str = "th-pw-for-tests";
/// The proxy's ACL: its keys, and only the commands of the coordination protocol.
pub const USER_ACL: &str = "~th:* resetchannels -@all +@connection +mget +set +get +del +pexpire +evalsha +eval +script|load +xadd +xread +role +cluster|slots";

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Polls `check` until it holds, at most `bound` (the processes give no other signal).
pub async fn eventually<F, Fut>(what: &str, bound: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + bound;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A temp dir for config files and logs, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "th-{what}-{}-{}",
            std::process::id(),
            token_handler::crypto::random_token(6)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The config lines every data node has: no persistence, the two users.
pub fn data_node_config() -> String {
    format!(
        "save \"\"\nappendonly no\nrequirepass {ADMIN_PASSWORD}\nmasterauth {ADMIN_PASSWORD}\n\
         user {USER} on >{USER_PASSWORD} {USER_ACL}\n"
    )
}

/// One `redis-server` process.
#[derive(Debug)]
pub struct RedisNode {
    pub port: u16,
    /// The `default` user's password on this node (the tests' own connections).
    password: &'static str,
    child: Option<Child>,
}

impl RedisNode {
    /// Starts `redis-server` (a Sentinel when `sentinel`) on `port` with `config` lines, its
    /// files in `dir`, and waits until it answers PING.
    pub async fn start(
        dir: &Path,
        port: u16,
        config: &str,
        sentinel: bool,
        password: &'static str,
    ) -> RedisNode {
        assert!(
            Path::new("/usr/bin/redis-server").exists() && Path::new("/usr/bin/redis-cli").exists(),
            "redis-server or redis-cli is missing: run ./scripts/test.sh, which installs them"
        );
        let file = dir.join(format!("{port}.conf"));
        std::fs::write(
            &file,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n{config}",
                dir.display()
            ),
        )
        .expect("write config");
        let log = std::fs::File::create(dir.join(format!("{port}.log"))).expect("log file");
        let mut command = Command::new("/usr/bin/redis-server");
        command.arg(&file);
        if sentinel {
            command.arg("--sentinel");
        }
        let child = command
            .stdout(log)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server");
        let node = RedisNode {
            port,
            password,
            child: Some(child),
        };
        eventually(
            &format!("redis-server on {port} answers"),
            Duration::from_secs(10),
            || async { node.try_connection().await.is_some() },
        )
        .await;
        node
    }

    /// Its address for the proxy's config (no credentials: those come from the environment).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn try_connection(&self) -> Option<MultiplexedConnection> {
        let url = format!("redis://:{}@127.0.0.1:{}/", self.password, self.port);
        let client = redis::Client::open(url).ok()?;
        let mut c = client.get_multiplexed_async_connection().await.ok()?;
        let pong: Option<String> = redis::cmd("PING").query_async(&mut c).await.ok();
        pong.map(|_| c)
    }

    /// Runs `cmd` as the `default` user; `None` when the node does not answer or refuses.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let mut c = self.try_connection().await?;
        cmd.query_async(&mut c).await.ok()
    }

    /// Every `th:*` key and its string value.
    pub async fn dump(&self) -> Vec<(String, String)> {
        let keys: Vec<String> = self
            .query(redis::cmd("KEYS").arg("th:*"))
            .await
            .expect("KEYS");
        let mut out = Vec::new();
        for key in keys {
            let value: Option<String> = self.query(redis::cmd("GET").arg(&key)).await.flatten();
            out.push((key, value.unwrap_or_default()));
        }
        out
    }

    /// Kills the process (SIGKILL: no goodbye to replicas or clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        self.kill();
    }
}
