//! How this replica talks to Redis: one connection, established lazily (Redis may start after
//! the proxy) and re-established when lost, every call (connecting included) bounded by
//! `coordination.operation_timeout`. Standalone, Sentinel or Cluster (`connect.rs`): the
//! protocol on top (`mod.rs`) never sees which kind of deployment answers.

use super::connect::{self, Connection, Connector, PRIMARY_RECHECK};
use crate::config::CoordinationConfig;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::{debug, info};

pub use super::connect::CoordinationSetupError;

/// Why one Redis operation failed (the caller tries again until its deadline).
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis error: {0}")]
    Redis(String),
}

impl From<redis::RedisError> for RedisError {
    fn from(e: redis::RedisError) -> RedisError {
        // The kind only: a message could quote a URL with its password.
        RedisError::Redis(format!("{:?}", e.kind()))
    }
}

/// The connection in use, numbered so that a failed call drops only the one it used.
struct Established {
    connection: Connection,
    generation: u64,
    /// When the Sentinels last confirmed that this is the primary.
    confirmed: Instant,
}

/// The connection to Redis.
pub struct Redis {
    connector: Connector,
    connection: Mutex<Option<Established>>,
    generations: std::sync::atomic::AtomicU64,
    timeout: Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("kind", &self.connector.kind())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    pub fn new(config: &CoordinationConfig) -> Result<Redis, CoordinationSetupError> {
        Ok(Redis {
            connector: Connector::new(config)?,
            connection: Mutex::new(None),
            generations: std::sync::atomic::AtomicU64::new(0),
            timeout: config.operation_timeout,
        })
    }

    /// The connection to use, made when there is none; with Sentinels, first checked against
    /// them when the last check is older than [`PRIMARY_RECHECK`].
    async fn connection(&self) -> redis::RedisResult<(Connection, u64)> {
        let mut slot = self.connection.lock().await;
        if let Some(current) = slot.as_mut() {
            if let Connection::Primary(_, addr) = &current.connection {
                if current.confirmed.elapsed() >= PRIMARY_RECHECK {
                    current.confirmed = Instant::now();
                    match self.connector.still_primary(addr).await {
                        Ok(true) => {}
                        Ok(false) => {
                            info!("the Sentinels name another Redis primary: switching to it");
                            *slot = None;
                        }
                        // Sentinels unreachable: the primary we have is still the best guess.
                        Err(e) => debug!(error = ?e.kind(), "could not ask the Sentinels"),
                    }
                }
            }
        }
        if let Some(current) = slot.as_ref() {
            return Ok((current.connection.clone(), current.generation));
        }
        let connection = self.connector.connect().await?;
        let generation = self
            .generations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *slot = Some(Established {
            connection: connection.clone(),
            generation,
            confirmed: Instant::now(),
        });
        Ok((connection, generation))
    }

    /// Runs `op` on the connection within the operation timeout. A connection that failed,
    /// timed out or was answered `READONLY` is dropped (except the cluster's): the next call
    /// connects again, with Sentinels to the primary they name then (the caller retries until
    /// its deadline). No back-off of its own: every call tries, each bounded by the timeout.
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, RedisError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let mut used = None;
        let attempt = async {
            let (connection, generation) = self.connection().await?;
            used = Some(generation);
            op(connection).await
        };
        let outcome = tokio::time::timeout(self.timeout, attempt).await;
        let lost = match &outcome {
            Err(_) => true,
            Ok(Err(e)) => connect::connection_lost(e),
            Ok(Ok(_)) => false,
        };
        if let (true, true, Some(generation)) =
            (lost, self.connector.drops_lost_connections(), used)
        {
            let mut slot = self.connection.lock().await;
            if slot.as_ref().is_some_and(|c| c.generation == generation) {
                debug!("connection to Redis lost: the next call connects again");
                *slot = None;
            }
        }
        outcome
            .map_err(|_| RedisError::Timeout(self.timeout))?
            .map_err(RedisError::from)
    }

    /// Runs one command.
    pub async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        self.call(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Runs a Lua script on `keys` (all in one hash slot) with `args`.
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, RedisError> {
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(*a);
        }
        let invocation = &invocation;
        self.call(|mut conn| async move { invocation.invoke_async(&mut conn).await })
            .await
    }
}
