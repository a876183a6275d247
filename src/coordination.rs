//! Cross-replica refresh coordination on Redis: many replicas, one `/token` call per refresh.
//!
//! In Kubernetes a browser's parallel calls at expiry land on different pods. With refresh-token
//! rotation, two pods refreshing one session spend the same refresh token twice, and providers
//! that revoke the whole grant on reuse (oidc-provider does) log the user out. So, per refresh:
//!
//! 1. `GET th:result:<h>`: another replica already refreshed this token: use its result.
//! 2. `SET th:lease:<h> <fence> NX PX <lease_ttl>`: the winner calls `/token`, renewing the
//!    lease while it waits (compare-and-expire on its fencing value), then writes the result
//!    under `th:result:<h>` for the rotation grace window and releases the lease
//!    (compare-and-delete).
//! 3. The others poll for the result (bounded by `wait_timeout`); if the lease vanishes without
//!    a result (the winner failed), they race for it again.
//!
//! `<h>` is a keyed hash of the *old* refresh token (keys never contain a token); results are
//! sealed with the cookie key ring (Redis never holds a plaintext token). Every entry expires
//! on its own. Redis slow or down: this replica falls back to per-process behaviour within
//! `operation_timeout`, counts it, logs a warning: never a logout, never a hang.

use crate::config::CoordinationConfig;
use crate::crypto::KeyRing;
use crate::metrics::Metrics;
use crate::secret::RefreshToken;
use crate::session::Session;
use redis::aio::ConnectionManager;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// Associated data of sealed results: they can never be replayed as a cookie.
const RESULT_AAD: &str = "token-handler coordination result";
/// Between two polls for another replica's result.
const POLL: Duration = Duration::from_millis(20);

/// Compare-and-expire / compare-and-delete on the fencing value (only the holder may).
const RENEW: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE: &str = r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// What a replica should do about one refresh.
#[derive(Debug)]
pub enum Claim {
    /// Another replica refreshed this token: here is the new session.
    Done(Session),
    /// This replica holds the lease: call `/token`, then [`Coordinator::publish`] or
    /// [`Coordinator::abandon`].
    Won(Lease),
    /// Redis is unavailable: do it alone (per-process single flight still applies).
    Fallback,
    /// Another replica holds the lease past `wait_timeout`: keep the session, answer 503.
    Busy,
}

/// A held refresh lease, renewed in the background until published or abandoned.
pub struct Lease {
    hash: String,
    fence: String,
    renewer: JoinHandle<()>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lease")
    }
}

pub struct Coordinator {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    config: CoordinationConfig,
    metrics: Arc<Metrics>,
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("config", &self.config)
            .finish()
    }
}

/// Why coordination could not be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum CoordinationSetupError {
    /// The URL is never echoed: it may carry a password.
    #[error("coordination.redis_url: not a valid redis:// or rediss:// URL")]
    InvalidUrl,
}

#[derive(Debug, thiserror::Error)]
enum CoordError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis error: {0}")]
    Redis(String),
}

impl Coordinator {
    pub fn new(
        config: &CoordinationConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Coordinator, CoordinationSetupError> {
        let client = redis::Client::open(config.redis_url.as_str())
            .map_err(|_| CoordinationSetupError::InvalidUrl)?;
        Ok(Coordinator {
            client,
            connection: Mutex::new(None),
            config: config.clone(),
            metrics,
        })
    }

    /// A connection, established lazily (Redis may start after the proxy); the manager
    /// reconnects by itself afterwards.
    async fn connection(&self) -> Result<ConnectionManager, CoordError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let connect = self.client.get_connection_manager();
        let manager = tokio::time::timeout(self.config.operation_timeout, connect)
            .await
            .map_err(|_| CoordError::Timeout(self.config.operation_timeout))?
            .map_err(|e| CoordError::Redis(format!("{:?}", e.kind())))?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, CoordError> {
        let mut conn = self.connection().await?;
        tokio::time::timeout(self.config.operation_timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|_| CoordError::Timeout(self.config.operation_timeout))?
            .map_err(|e| CoordError::Redis(format!("{:?}", e.kind())))
    }

    async fn script(&self, script: &str, key: &str, args: &[String]) -> Result<i64, CoordError> {
        let mut conn = self.connection().await?;
        let script = redis::Script::new(script);
        let mut invocation = script.key(key);
        for a in args {
            invocation.arg(a);
        }
        tokio::time::timeout(
            self.config.operation_timeout,
            invocation.invoke_async(&mut conn),
        )
        .await
        .map_err(|_| CoordError::Timeout(self.config.operation_timeout))?
        .map_err(|e| CoordError::Redis(format!("{:?}", e.kind())))
    }

    fn fallback(&self, e: CoordError) -> Claim {
        self.metrics.coordination_fallbacks.inc();
        warn!(error = %e, "Redis unavailable: refreshing without cross-replica coordination");
        Claim::Fallback
    }

    /// Decides who refreshes `refresh_token` (see the module docs).
    pub async fn claim(self: &Arc<Self>, keys: &KeyRing, refresh_token: &RefreshToken) -> Claim {
        let hash = keys.shared_hash(refresh_token.expose().as_bytes());
        let deadline = tokio::time::Instant::now() + self.config.wait_timeout;
        loop {
            match self
                .run::<Option<String>>(redis::cmd("GET").arg(result_key(&hash)))
                .await
            {
                Ok(Some(sealed)) => {
                    if let Some(session) = open_result(keys, &sealed) {
                        return Claim::Done(session);
                    }
                    debug!("unreadable coordination result ignored");
                }
                Ok(None) => {}
                Err(e) => return self.fallback(e),
            }
            let fence = crate::crypto::random_token(16);
            let ttl = self.config.lease_ttl.as_millis().to_string();
            let set = redis::cmd("SET")
                .arg(lease_key(&hash))
                .arg(&fence)
                .arg("NX")
                .arg("PX")
                .arg(&ttl)
                .clone();
            match self.run::<Option<String>>(&set).await {
                Ok(Some(_)) => {
                    let renewer = self.spawn_renewer(hash.clone(), fence.clone());
                    return Claim::Won(Lease {
                        hash,
                        fence,
                        renewer,
                    });
                }
                Ok(None) => {}
                Err(e) => return self.fallback(e),
            }
            if tokio::time::Instant::now() >= deadline {
                warn!("another replica holds this refresh past the wait timeout");
                return Claim::Busy;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn spawn_renewer(self: &Arc<Self>, hash: String, fence: String) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let period = this.config.lease_ttl / 3;
            let ttl = this.config.lease_ttl.as_millis().to_string();
            loop {
                tokio::time::sleep(period).await;
                let renewed = this
                    .script(RENEW, &lease_key(&hash), &[fence.clone(), ttl.clone()])
                    .await;
                if !matches!(renewed, Ok(1)) {
                    debug!("lease renewal stopped");
                    return;
                }
            }
        })
    }

    /// Shares the new session for the rotation grace window, then releases the lease.
    pub async fn publish(&self, keys: &KeyRing, lease: Lease, session: &Session, grace: Duration) {
        lease.renewer.abort();
        let sealed = keys.seal(RESULT_AAD, &session.to_bytes());
        let set = redis::cmd("SET")
            .arg(result_key(&lease.hash))
            .arg(sealed)
            .arg("PX")
            .arg(grace.as_millis().max(1).to_string())
            .clone();
        if let Err(e) = self.run::<()>(&set).await {
            self.metrics.coordination_fallbacks.inc();
            warn!(error = %e, "could not share a refresh result in Redis");
        }
        self.release(&lease).await;
    }

    /// Releases the lease after a failed refresh: another replica may try.
    pub async fn abandon(&self, lease: Lease) {
        lease.renewer.abort();
        self.release(&lease).await;
    }

    async fn release(&self, lease: &Lease) {
        if let Err(e) = self
            .script(
                RELEASE,
                &lease_key(&lease.hash),
                std::slice::from_ref(&lease.fence),
            )
            .await
        {
            debug!(error = %e, "lease release failed; it expires by itself");
        }
    }
}

fn lease_key(hash: &str) -> String {
    format!("th:lease:{hash}")
}

fn result_key(hash: &str) -> String {
    format!("th:result:{hash}")
}

fn open_result(keys: &KeyRing, sealed: &str) -> Option<Session> {
    Session::from_bytes(&keys.open(RESULT_AAD, sealed)?.plaintext)
}
