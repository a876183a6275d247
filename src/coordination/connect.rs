//! How to reach each kind of Redis deployment, through the `redis` crate's own clients:
//!
//! - standalone: one multiplexed connection to the one address, dropped when it fails or times
//!   out and made again by the next call (`super::redis`). Not the crate's connection manager:
//!   its reconnection backs off to a minute or more after a few failed attempts, so a Redis
//!   restart of a few seconds would leave replicas uncoordinated for minutes, and it never
//!   reconnects after a timeout (a Redis whose address went dark);
//! - Sentinel: a connection to the primary the Sentinels name (the crate asks them, then checks
//!   with `ROLE` that the node is a primary). It is dropped when it fails or answers `READONLY`
//!   (the node was demoted) and checked against the Sentinels at most every
//!   [`PRIMARY_RECHECK`], so a replica follows a failover by itself: see `super::redis`;
//! - Cluster: the crate's cluster connection (slot map, MOVED/ASK, reconnection). The keys of
//!   one refresh share a hash tag, so every command and script runs on one slot's primary.
//!
//! Credentials and TLS trust roots are applied here; nothing here logs an address.

use crate::config::{CoordinationConfig, RedisAuth, RedisTopology};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture,
    TlsCertificates, TlsMode, Value,
};
use std::time::Duration;
use tokio::sync::Mutex;

/// How often a replica asks the Sentinels whether its primary is still the primary, while it
/// works: a primary demoted by a manual failover keeps answering (as a replica, or as a
/// primary until the Sentinels reconfigure it), so a failing connection alone is not enough.
pub(super) const PRIMARY_RECHECK: Duration = Duration::from_secs(1);

/// Why coordination could not be set up at start-up. No variant quotes an address.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationSetupError {
    #[error("coordination.redis_url: not a valid redis:// or rediss:// URL")]
    InvalidUrl,
    #[error("coordination: the {0} client cannot be built from these addresses ({1:?})")]
    Client(&'static str, redis::ErrorKind),
    #[error("coordination.ca_file: cannot read {0}: {1}")]
    CaFile(std::path::PathBuf, std::io::Error),
}

/// Makes connections to the configured deployment.
pub(super) enum Connector {
    Standalone(redis::Client),
    /// Behind a lock: asking the Sentinels needs `&mut` (it caches their connections).
    Sentinel(Mutex<SentinelClient>),
    Cluster(ClusterClient),
}

/// One established connection, whichever the deployment: cheap to clone (multiplexed).
#[derive(Clone)]
pub(super) enum Connection {
    Standalone(MultiplexedConnection),
    /// The primary at this address, as the Sentinels named it.
    Primary(MultiplexedConnection, ConnectionAddr),
    Cluster(ClusterConnection),
}

impl Connector {
    pub(super) fn new(config: &CoordinationConfig) -> Result<Connector, CoordinationSetupError> {
        let certs = match &config.ca_file {
            Some(path) => Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(
                    std::fs::read(path)
                        .map_err(|e| CoordinationSetupError::CaFile(path.clone(), e))?,
                ),
            }),
            None => None,
        };
        let refused =
            |what| move |e: redis::RedisError| CoordinationSetupError::Client(what, e.kind());
        match &config.topology {
            RedisTopology::Standalone { url } => {
                let mut info = url
                    .as_str()
                    .into_connection_info()
                    .map_err(|_| CoordinationSetupError::InvalidUrl)?;
                config.auth.apply(&mut info);
                let client = match certs {
                    Some(certs) => redis::Client::build_with_tls(info, certs),
                    None => redis::Client::open(info),
                };
                client
                    .map(Connector::Standalone)
                    .map_err(|_| CoordinationSetupError::InvalidUrl)
            }
            RedisTopology::Sentinel { sentinels, master } => {
                sentinel(sentinels, master, config, certs)
                    .map(|c| Connector::Sentinel(Mutex::new(c)))
                    .map_err(refused("Sentinel"))
            }
            RedisTopology::Cluster { nodes } => {
                let mut builder = ClusterClient::builder(infos(nodes, &config.auth)?)
                    .connection_timeout(config.operation_timeout)
                    .response_timeout(config.operation_timeout);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                builder
                    .build()
                    .map(Connector::Cluster)
                    .map_err(refused("Cluster"))
            }
        }
    }

    /// A new connection; with Sentinels, to the primary they name now.
    pub(super) async fn connect(&self) -> redis::RedisResult<Connection> {
        match self {
            Connector::Standalone(client) => client
                .get_multiplexed_async_connection()
                .await
                .map(Connection::Standalone),
            Connector::Sentinel(sentinels) => {
                let primary = sentinels.lock().await.async_get_client().await?;
                let addr = primary.get_connection_info().addr.clone();
                let conn = primary.get_multiplexed_async_connection().await?;
                Ok(Connection::Primary(conn, addr))
            }
            Connector::Cluster(client) => {
                client.get_async_connection().await.map(Connection::Cluster)
            }
        }
    }

    /// Whether the Sentinels still name `addr` as the primary (an error: they could not say).
    pub(super) async fn still_primary(&self, addr: &ConnectionAddr) -> redis::RedisResult<bool> {
        match self {
            Connector::Sentinel(sentinels) => {
                let primary = sentinels.lock().await.async_get_client().await?;
                Ok(primary.get_connection_info().addr == *addr)
            }
            _ => Ok(true),
        }
    }

    /// Whether a connection that failed or timed out is to be dropped, so that the next call
    /// makes a new one (standalone; Sentinel, which asks the Sentinels again). The cluster
    /// connection reconnects to its nodes by itself.
    pub(super) fn drops_lost_connections(&self) -> bool {
        !matches!(self, Connector::Cluster(_))
    }

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Connector::Standalone(_) => "standalone",
            Connector::Sentinel(_) => "sentinel",
            Connector::Cluster(_) => "cluster",
        }
    }
}

/// Whether `e` means the node behind a connection is gone or no longer the primary: the
/// connection is dropped (and with Sentinels, they are asked again).
pub(super) fn connection_lost(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::ReadOnly | redis::ErrorKind::MasterDown
    ) || e.is_io_error()
        || e.is_unrecoverable_error()
}

/// The Sentinels (with their own credentials) and how to log in to the primary they name: TLS
/// when the Sentinels' addresses are `rediss://` (one CA file for both).
fn sentinel(
    sentinels: &[String],
    master: &str,
    config: &CoordinationConfig,
    certs: Option<TlsCertificates>,
) -> redis::RedisResult<SentinelClient> {
    let addrs = sentinels
        .iter()
        .map(|s| s.as_str().into_connection_info().map(|i| i.addr))
        .collect::<redis::RedisResult<Vec<_>>>()?;
    let mut builder =
        SentinelClientBuilder::new(addrs, master.to_string(), SentinelServerType::Master)?;
    if let Some(user) = &config.auth.username {
        builder = builder.set_client_to_redis_username(user.clone());
    }
    if let Some(password) = &config.auth.password {
        builder = builder.set_client_to_redis_password(password.expose().to_string());
    }
    if let Some(user) = &config.sentinel_auth.username {
        builder = builder.set_client_to_sentinel_username(user.clone());
    }
    if let Some(password) = &config.sentinel_auth.password {
        builder = builder.set_client_to_sentinel_password(password.expose().to_string());
    }
    if config.topology.tls() {
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(certs) = certs {
            builder = builder
                .set_client_to_redis_certificates(certs.clone())
                .set_client_to_sentinel_certificates(certs);
        }
    }
    builder.build()
}

/// Cluster seed nodes, each logging in as the configured user.
fn infos(
    nodes: &[String],
    auth: &RedisAuth,
) -> Result<Vec<ConnectionInfo>, CoordinationSetupError> {
    nodes
        .iter()
        .map(|n| {
            let mut info = n
                .as_str()
                .into_connection_info()
                .map_err(|e| CoordinationSetupError::Client("Cluster", e.kind()))?;
            auth.apply(&mut info);
            Ok(info)
        })
        .collect()
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Primary(c, _) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Primary(c, _) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Standalone(c) => c.get_db(),
            Connection::Primary(c, _) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}
