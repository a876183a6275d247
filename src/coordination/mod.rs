//! Cross-replica refresh coordination on Redis: many replicas, one `/token` call per refresh
//! token, and the rotation grace and reuse windows held by all of them.
//!
//! In Kubernetes a browser's parallel calls at expiry land on different pods. With refresh-token
//! rotation, two pods refreshing one session spend the same refresh token twice, and providers
//! that revoke the whole grant on reuse (oidc-provider does) log the user out. So, per refresh
//! of refresh token `t` (keys `th:{h}:…`, `h` a hash of `t`, one hash slot for Redis Cluster):
//!
//! 1. `MGET th:{h}:result th:{h}:spent`: a result newer than what the request holds is another
//!    replica's refresh: use it (the rotation grace window, across replicas). No result but a
//!    spent marker: `t` was rotated away longer ago than the grace window: refuse it
//!    (`reuse_suspected`), whichever replica refreshed it, instead of spending it again.
//! 2. Otherwise `SET th:{h}:lease <fence> NX PX lease_ttl`; the winner reads (1.) again (the
//!    lease was perhaps freed by a publish), then calls `/token` (the lease outlives that call
//!    by construction: `lease_ttl` > `idp.timeout`; it is renewed too),
//!    then stores the result for the grace window and, when the IdP rotated `t`, the spent
//!    marker for the reuse window, and releases the lease, in one script.
//! 3. The others poll for the result (bounded by `wait_timeout`).
//!
//! A result counts only when it is newer than the request's own session: with an IdP that does
//! not rotate, the next refresh of a session has the same `t` and must not follow the last one.
//! Values are sealed with the cookie key ring, their associated data naming their key and the
//! session they belong to: copied under another session's key, a value does not open. Redis
//! slow: every operation is retried until the wait deadline, so a pause does not make replicas
//! refresh one token each; only a Redis unreachable for the whole wait makes this replica refresh
//! alone (counted in `coordination_fallbacks`, logged): never a hang.
//!
//! `h` is SHA-256 over a fixed label and `t`: the same on every replica whatever its cookie keys
//! (they change at different moments on different pods during a rotation), and useless without
//! `t` (refresh tokens are long random strings). No key or value holds a plaintext token.

mod connect;
mod redis;

pub use self::redis::{CoordinationSetupError, Redis, RedisError};
use crate::config::CoordinationConfig;
use crate::crypto::KeyRing;
use crate::metrics::Metrics;
use crate::secret::RefreshToken;
use crate::session::Session;
use ::redis::Script;
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

/// Between two polls for another replica's result, and two tries of a slow Redis.
const POLL: Duration = Duration::from_millis(20);

/// Compare-and-expire on the fencing value (only the holder may renew).
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
    )
});
/// Compare-and-delete on the fencing value.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
    )
});
/// Stores the result (and the spent marker when `ARGV[4]` is not empty), then releases the
/// lease if it is still ours: one round trip, nothing half-done.
static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1",
    )
});

/// What a replica should do about one refresh.
#[derive(Debug)]
pub enum Claim {
    /// Another replica refreshed this token: here is the newer session.
    Done(Session),
    /// This replica holds the lease: call `/token`, then [`Coordinator::publish`] or
    /// [`Coordinator::abandon`].
    Won(Lease),
    /// This token was rotated away (by any replica) longer ago than the grace window.
    Spent,
    /// Redis unreachable for the whole wait: do it alone.
    Fallback,
    /// Another replica holds the lease past `wait_timeout`: keep the session, answer 503.
    Busy,
}

/// A held refresh lease, renewed in the background until published or abandoned.
pub struct Lease {
    keys: Keys,
    fence: String,
    renewer: JoinHandle<()>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lease")
    }
}

/// The Redis keys of one refresh token.
#[derive(Debug, Clone)]
struct Keys {
    hash: String,
    lease: String,
    result: String,
    spent: String,
}

impl Keys {
    fn of(refresh_token: &RefreshToken) -> Keys {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"token-handler refresh token v2\0");
        ctx.update(refresh_token.expose_bytes());
        let digest = ctx.finish();
        let hash: String = digest.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Keys {
            lease: format!("th:{{{hash}}}:lease"),
            result: format!("th:{{{hash}}}:result"),
            spent: format!("th:{{{hash}}}:spent"),
            hash,
        }
    }

    /// Associated data of a sealed value: what it is, its key, and the session it belongs to.
    fn aad(&self, what: &str, session_id: &str) -> String {
        format!("th-{what}|{}|{session_id}", self.hash)
    }
}

pub struct Coordinator {
    redis: Redis,
    config: CoordinationConfig,
    metrics: Arc<Metrics>,
    traces: crate::trace::Traces,
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("config", &self.config)
            .finish()
    }
}

impl Coordinator {
    pub fn new(
        config: &CoordinationConfig,
        metrics: Arc<Metrics>,
        traces: crate::trace::Traces,
    ) -> Result<Coordinator, CoordinationSetupError> {
        Ok(Coordinator {
            redis: Redis::new(config)?,
            config: config.clone(),
            metrics,
            traces,
        })
    }

    /// Runs `op` until it succeeds or `deadline` passes: a slow or restarting Redis is waited
    /// for, not taken as absent (that would make every replica refresh on its own).
    async fn patiently<T, F, Fut>(&self, deadline: Instant, mut op: F) -> Result<T, RedisError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if Instant::now() + POLL >= deadline => return Err(e),
                Err(e) => {
                    debug!(error = %e, "Redis slow or unreachable; trying again");
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    fn fallback(&self, e: RedisError) -> Claim {
        self.metrics.coordination_fallbacks.inc();
        warn!(error = %e, "Redis unavailable for the whole wait: refreshing without cross-replica coordination");
        Claim::Fallback
    }

    /// Decides who refreshes `old` (see the module docs).
    pub async fn claim(self: &Arc<Self>, ring: &KeyRing, old: &Session) -> Claim {
        let keys = Keys::of(&old.refresh_token);
        let deadline = Instant::now() + self.config.wait_timeout;
        // From the first lease found taken to the end of the claim: `refresh.wait` (traces).
        let mut waiting = tracing::Span::none();
        loop {
            match self.found(ring, &keys, old, deadline).await {
                Ok(Some(found)) => return found,
                Ok(None) => {}
                Err(e) => return self.fallback(e),
            }
            let fence = crate::crypto::random_token(16);
            let ttl = self.config.lease_ttl.as_millis().to_string();
            let set = ::redis::cmd("SET")
                .arg(&keys.lease)
                .arg(&fence)
                .arg("NX")
                .arg("PX")
                .arg(&ttl)
                .clone();
            match self
                .patiently(deadline, || self.redis.run::<Option<String>>(&set))
                .await
            {
                Ok(Some(_)) => {
                    // The lease may be free because its holder published between our read and
                    // our SET (the script stores the result before it deletes the lease): look
                    // again before spending a token that may be rotated away already.
                    if let Ok(Some(found)) = self.found(ring, &keys, old, deadline).await {
                        self.release(&keys.lease, &fence).await;
                        return found;
                    }
                    let renewer = self.spawn_renewer(keys.lease.clone(), fence.clone());
                    return Claim::Won(Lease {
                        keys,
                        fence,
                        renewer,
                    });
                }
                Ok(None) if waiting.is_none() => waiting = self.traces.refresh_wait("replica"),
                Ok(None) => {}
                Err(e) => return self.fallback(e),
            }
            if Instant::now() >= deadline {
                warn!("another replica holds this refresh past the wait timeout");
                return Claim::Busy;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Another replica's newer result for `old` ([`Claim::Done`]), or its spent marker
    /// ([`Claim::Spent`]), or nothing yet.
    async fn found(
        &self,
        ring: &KeyRing,
        keys: &Keys,
        old: &Session,
        deadline: Instant,
    ) -> Result<Option<Claim>, RedisError> {
        let mget = ::redis::cmd("MGET")
            .arg(&keys.result)
            .arg(&keys.spent)
            .clone();
        let (result, spent) = self
            .patiently(deadline, || {
                self.redis.run::<(Option<String>, Option<String>)>(&mget)
            })
            .await?;
        if let Some(newer) = result.and_then(|r| open_result(ring, keys, old, &r)) {
            return Ok(Some(Claim::Done(newer)));
        }
        let spent_marker = spent.is_some_and(|s| {
            ring.open(&keys.aad("spent", &old.id), s.as_bytes())
                .is_some()
        });
        Ok(spent_marker.then_some(Claim::Spent))
    }

    /// Keeps the lease alive while the `/token` call runs. A failed renewal is tried again at
    /// the next period (the lease outlives the call anyway); only a lease found to be someone
    /// else's stops it.
    fn spawn_renewer(self: &Arc<Self>, key: String, fence: String) -> JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let period = this.config.lease_ttl / 3;
            let ttl = this.config.lease_ttl.as_millis().to_string();
            loop {
                tokio::time::sleep(period).await;
                match this
                    .redis
                    .script::<i64>(&RENEW, &[&key], &[&fence, &ttl])
                    .await
                {
                    Ok(1) => {}
                    Ok(_) => {
                        warn!("a refresh lease was lost before its /token call ended");
                        return;
                    }
                    Err(e) => debug!(error = %e, "lease renewal failed; trying again"),
                }
            }
        })
    }

    /// Shares the new session (for `grace`) and, when the IdP rotated the old refresh token,
    /// the marker that it is spent (for `reuse_window`), then releases the lease. `old_id` is
    /// the session's id (unchanged by refreshes): the values are bound to it.
    pub async fn publish(
        &self,
        ring: &KeyRing,
        lease: Lease,
        new: &Session,
        rotated: bool,
        grace: Duration,
        reuse_window: Duration,
    ) {
        lease.renewer.abort();
        let keys = &lease.keys;
        let result = ring.seal(&keys.aad("result", &new.id), &new.to_bytes());
        let spent = if rotated {
            ring.seal(&keys.aad("spent", &new.id), b"1")
        } else {
            String::new()
        };
        let grace = grace.as_millis().max(1).to_string();
        let reuse = reuse_window.as_millis().max(1).to_string();
        // Until the lease would expire: past it, another replica may be refreshing already.
        let deadline = Instant::now() + self.config.lease_ttl;
        let redis_keys = [keys.lease.as_str(), &keys.result, &keys.spent];
        let args = [lease.fence.as_str(), &result, &grace, &spent, &reuse];
        let published = self
            .patiently(deadline, || {
                self.redis.script::<i64>(&PUBLISH, &redis_keys, &args)
            })
            .await;
        if let Err(e) = published {
            self.metrics.coordination_fallbacks.inc();
            warn!(error = %e, "could not share a refresh result in Redis; other replicas may not see it");
        }
    }

    /// Releases the lease after a failed refresh: another replica may try.
    pub async fn abandon(&self, lease: Lease) {
        lease.renewer.abort();
        self.release(&lease.keys.lease, &lease.fence).await;
    }

    async fn release(&self, key: &str, fence: &str) {
        if let Err(e) = self.redis.script::<i64>(&RELEASE, &[key], &[fence]).await {
            debug!(error = %e, "lease release failed; it expires by itself");
        }
    }
}

/// Another replica's result for `old`, if it opens for this key and this session and is newer
/// than what the request holds.
fn open_result(ring: &KeyRing, keys: &Keys, old: &Session, sealed: &str) -> Option<Session> {
    let opened = ring.open(&keys.aad("result", &old.id), sealed.as_bytes())?;
    let session = Session::from_bytes(&opened.plaintext)?;
    (session.id == old.id && session.succeeds(old)).then_some(session)
}

#[cfg(test)]
mod tests;
