//! A Redis Sentinel deployment started by the test: a primary, one replica and three Sentinels
//! (quorum 2) with short timeouts, so that a failover takes about a second or two.
//!
//! The Sentinels have a password of their own ([`SENTINEL_PASSWORD`]), as the data nodes have
//! theirs (see `redis_nodes.rs`).

use super::redis_nodes::{
    data_node_config, eventually, free_port, RedisNode, TempDir, ADMIN_PASSWORD,
};
use std::time::Duration;

pub const MASTER: &str = "mymaster";
pub const SENTINEL_PASSWORD: &str = "sentinel-pw-for-tests";

#[derive(Debug)]
pub struct SentinelSet {
    /// The data nodes: the first starts as the primary.
    pub data: Vec<RedisNode>,
    pub sentinels: Vec<RedisNode>,
    _dir: TempDir,
}

impl SentinelSet {
    /// Starts everything and waits until the replica is in sync and every Sentinel knows the
    /// replica and the other Sentinels (able to fail over).
    pub async fn start() -> SentinelSet {
        let dir = TempDir::new("sentinel");
        let primary_port = free_port();
        let primary = RedisNode::start(
            &dir.0,
            primary_port,
            &data_node_config(),
            false,
            ADMIN_PASSWORD,
        )
        .await;
        let replica_config = format!("{}replicaof 127.0.0.1 {primary_port}\n", data_node_config());
        let replica =
            RedisNode::start(&dir.0, free_port(), &replica_config, false, ADMIN_PASSWORD).await;
        eventually("the replica syncs", Duration::from_secs(20), || async {
            let info: Option<String> = replica.query(redis::cmd("INFO").arg("replication")).await;
            info.is_some_and(|i| i.contains("master_link_status:up"))
        })
        .await;
        let sentinel_config = format!(
            "sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
             sentinel auth-pass {MASTER} {ADMIN_PASSWORD}\n\
             sentinel down-after-milliseconds {MASTER} 400\n\
             sentinel failover-timeout {MASTER} 1000\n\
             requirepass {SENTINEL_PASSWORD}\n\
             sentinel sentinel-pass {SENTINEL_PASSWORD}\n"
        );
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            sentinels.push(
                RedisNode::start(&dir.0, port, &sentinel_config, true, SENTINEL_PASSWORD).await,
            );
        }
        let set = SentinelSet {
            data: vec![primary, replica],
            sentinels,
            _dir: dir,
        };
        for s in &set.sentinels {
            eventually(
                "every Sentinel can fail over (quorum, the replica known)",
                Duration::from_secs(30),
                || async {
                    let quorum: Option<String> = s
                        .query(redis::cmd("SENTINEL").arg("CKQUORUM").arg(MASTER))
                        .await;
                    let replicas: Option<Vec<redis::Value>> = s
                        .query(redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER))
                        .await;
                    let peers: Option<Vec<redis::Value>> = s
                        .query(redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER))
                        .await;
                    quorum.is_some()
                        && replicas.is_some_and(|r| r.len() == 1)
                        && peers.is_some_and(|p| p.len() == 2)
                },
            )
            .await;
        }
        set
    }

    /// `redis://` addresses of the Sentinels, for `coordination.sentinels`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisNode::url).collect()
    }

    /// The port every Sentinel names as the primary's, once they agree.
    pub async fn agreed_primary(&self) -> Option<u16> {
        let mut named = Vec::new();
        for s in &self.sentinels {
            let addr: Option<(String, String)> = s
                .query(
                    redis::cmd("SENTINEL")
                        .arg("GET-MASTER-ADDR-BY-NAME")
                        .arg(MASTER),
                )
                .await;
            named.push(addr.and_then(|(_, port)| port.parse::<u16>().ok())?);
        }
        named.dedup();
        (named.len() == 1).then(|| named[0])
    }

    /// Waits until every Sentinel names a primary other than `old` that answers as one.
    pub async fn wait_for_new_primary(&self, old: u16) -> u16 {
        eventually(
            "the Sentinels promote the replica",
            Duration::from_secs(30),
            || async {
                match self.agreed_primary().await {
                    Some(port) if port != old => {
                        let role: Option<Vec<redis::Value>> =
                            self.node(port).query(&redis::cmd("ROLE")).await;
                        role.is_some_and(|r| {
                        matches!(r.first(), Some(redis::Value::BulkString(b)) if b == b"master")
                    })
                    }
                    _ => false,
                }
            },
        )
        .await;
        self.agreed_primary().await.expect("the Sentinels agree")
    }

    pub fn node(&self, port: u16) -> &RedisNode {
        self.data
            .iter()
            .find(|n| n.port == port)
            .expect("a data node")
    }

    pub fn node_mut(&mut self, port: u16) -> &mut RedisNode {
        self.data
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a data node")
    }
}
