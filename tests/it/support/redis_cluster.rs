//! A Redis Cluster started by the test: three primaries (no replicas), their slots assigned by
//! `redis-cli --cluster create`, the users of `redis_nodes.rs` on each.

use super::redis_nodes::{
    data_node_config, eventually, free_port, RedisNode, TempDir, ADMIN_PASSWORD,
};
use std::time::Duration;

#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisNode>,
    _dir: TempDir,
}

impl RedisCluster {
    /// Starts three nodes, joins them into one cluster, and waits until every node reports
    /// `cluster_state:ok` (all 16384 slots served).
    pub async fn start() -> RedisCluster {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            // The bus port is named, not port + 10000: that one may be taken or out of range.
            let config = format!(
                "{}cluster-enabled yes\ncluster-config-file nodes-{port}.conf\n\
                 cluster-port {}\ncluster-node-timeout 2000\n",
                data_node_config(),
                free_port()
            );
            nodes.push(RedisNode::start(&dir.0, port, &config, false, ADMIN_PASSWORD).await);
        }
        let mut create = tokio::process::Command::new("/usr/bin/redis-cli");
        create.args(["--cluster", "create"]);
        for n in &nodes {
            create.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = create
            .args(["--cluster-yes", "--no-auth-warning", "-a", ADMIN_PASSWORD])
            .output()
            .await
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster { nodes, _dir: dir };
        for n in &cluster.nodes {
            eventually("the cluster is up", Duration::from_secs(30), || async {
                let info: Option<String> = n.query(redis::cmd("CLUSTER").arg("INFO")).await;
                info.is_some_and(|i| i.contains("cluster_state:ok"))
            })
            .await;
        }
        cluster
    }

    /// `redis://` addresses of the nodes, for `coordination.cluster_nodes`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisNode::url).collect()
    }

    /// Every `th:*` key and value, by the port of the node holding it.
    pub async fn dump(&self) -> Vec<(u16, String, String)> {
        let mut out = Vec::new();
        for n in &self.nodes {
            for (k, v) in n.dump().await {
                out.push((n.port, k, v));
            }
        }
        out
    }
}
