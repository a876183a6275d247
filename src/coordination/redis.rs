//! How this replica talks to Redis: one connection, established lazily (Redis may start after
//! the proxy) and re-established by the connection manager, every command bounded by
//! `coordination.operation_timeout`. The protocol on top (`mod.rs`) never sees which kind of
//! Redis deployment answers.

use crate::config::CoordinationConfig;
use redis::aio::ConnectionManager;
use std::time::Duration;
use tokio::sync::Mutex;

/// Why coordination could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationSetupError {
    /// The URL is never echoed: it may carry a password.
    #[error("coordination.redis_url: not a valid redis:// or rediss:// URL")]
    InvalidUrl,
}

/// Why one Redis operation failed (the caller falls back to refreshing alone).
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

/// The connection to Redis.
pub struct Redis {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    timeout: Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    pub fn new(config: &CoordinationConfig) -> Result<Redis, CoordinationSetupError> {
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|_| CoordinationSetupError::InvalidUrl)?;
        Ok(Redis {
            client,
            connection: Mutex::new(None),
            timeout: config.operation_timeout,
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let manager = self.bounded(self.client.get_connection_manager()).await?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    async fn bounded<T>(
        &self,
        operation: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisError> {
        tokio::time::timeout(self.timeout, operation)
            .await
            .map_err(|_| RedisError::Timeout(self.timeout))?
            .map_err(RedisError::from)
    }

    /// Runs one command.
    pub async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        let mut conn = self.connection().await?;
        self.bounded(cmd.query_async(&mut conn)).await
    }

    /// Runs a Lua script on `keys` (all in one hash slot) with `args`.
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, RedisError> {
        let mut conn = self.connection().await?;
        let mut invocation = script.prepare_invoke();
        for k in keys {
            invocation.key(*k);
        }
        for a in args {
            invocation.arg(*a);
        }
        self.bounded(invocation.invoke_async(&mut conn)).await
    }
}
