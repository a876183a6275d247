//! The record of ended sessions shared by all replicas through Redis.
//!
//! One stream, `th:{ended}:log`: every end is an `XADD` (an entry of `Entry::encode`, digests
//! only), trimmed by `MINID` to the last `session.lifetime` (older entries name sessions that
//! cannot open anyway). Each replica reads what is new every `coordination.ended_sync_interval`
//! (one `XREAD` per interval per replica, never one per request) into its copy in memory, which
//! the request path checks. So an end reaches every replica within that interval plus a round
//! trip; a replica that starts reads the whole stream first.
//!
//! A replica that starts is ready (`/readyz`) once it has read the whole stream, or after
//! `coordination.wait_timeout` if Redis does not let it.
//!
//! Redis down: a replica keeps refusing every session it knew to be ended, and the ones ended on
//! itself; ends made elsewhere reach it once Redis answers again (the read resumes where it
//! stopped). It logs the outage once (and the recovery), counts every failed read or write in
//! `token_handler_ended_sync_errors_total`, and writes its own ends again until Redis takes them.
//! Requests are never refused, nor delayed, because Redis is down: a fail-closed record would log
//! every user out with it.
//!
//! The `revoked:` and `jti:` keys (`SET NX EX`) make one replica of all revoke an ended session's
//! refresh token, and refuse a logout token replayed to another replica.

use super::{EndedSessions, Entry, NotShared, Reason};
use crate::config::CoordinationConfig;
use crate::coordination::{CoordinationSetupError, Redis, RedisError};
use crate::metrics::Metrics;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub const STREAM: &str = "th:{ended}:log";
/// Entries read per `XREAD`; a full batch is followed by the next one at once.
const BATCH: usize = 1000;
/// Ends this replica could not write yet (beyond it, the oldest are dropped, with a warning).
const MAX_PENDING: usize = 10_000;
const RETRY: Duration = Duration::from_millis(20);

pub struct Shared {
    redis: Redis,
    wait_timeout: Duration,
    interval: Duration,
    lifetime: Duration,
    metrics: Arc<Metrics>,
    pending: Mutex<VecDeque<Entry>>,
    /// Whether the last read succeeded (the outage is logged once, when it begins).
    healthy: AtomicBool,
    /// Completed reads, each of everything Redis held when it began: a test (or anything else)
    /// that wrote an end awaits two more to know this replica has it.
    rounds: tokio::sync::watch::Sender<u64>,
    /// The whole stream has been read once (the replica knows every earlier end).
    loaded: AtomicBool,
    created: Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(
        config: &CoordinationConfig,
        lifetime: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<Shared, CoordinationSetupError> {
        Ok(Shared {
            redis: Redis::new(config)?,
            wait_timeout: config.wait_timeout,
            interval: config.ended_sync_interval,
            lifetime,
            metrics,
            pending: Mutex::new(VecDeque::new()),
            healthy: AtomicBool::new(true),
            rounds: tokio::sync::watch::channel(0).0,
            loaded: AtomicBool::new(false),
            created: Instant::now(),
        })
    }

    /// Whether this replica may take requests as far as the record goes: it has read the whole
    /// stream once, or Redis did not let it for `coordination.wait_timeout` since start (then
    /// it serves with what it has, as while Redis is down: a Redis outage must not keep every
    /// new pod out of the Service).
    pub fn ready(&self) -> bool {
        self.loaded.load(Ordering::Acquire) || self.created.elapsed() >= self.wait_timeout
    }

    /// Completed reads of the stream (see the field).
    pub fn rounds(&self) -> tokio::sync::watch::Receiver<u64> {
        self.rounds.subscribe()
    }

    /// Writes `entry` for every replica, trying until `coordination.wait_timeout` (`patient`) or
    /// once (a browser's logout does not wait for a Redis that is down); past it the entry
    /// waits in this replica's queue and is written again at every read.
    pub async fn publish(&self, entry: Entry, patient: bool) -> Result<(), NotShared> {
        let deadline = Instant::now() + if patient { self.wait_timeout } else { RETRY };
        loop {
            match self.append(&entry).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() + RETRY >= deadline => {
                    self.metrics.ended_sync_errors.inc();
                    warn!(error = %e, "could not write an end to Redis: other replicas do not refuse that session yet; writing it again in the background");
                    self.queue(entry);
                    return Err(NotShared(e.to_string()));
                }
                Err(e) => {
                    debug!(error = %e, "Redis slow or unreachable; trying again");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    async fn append(&self, entry: &Entry) -> Result<(), RedisError> {
        let horizon = crate::refresh::unix_now().saturating_sub(self.lifetime.as_secs()) * 1000;
        let cmd = ::redis::cmd("XADD")
            .arg(STREAM)
            .arg("MINID")
            .arg("~")
            .arg(horizon)
            .arg("*")
            .arg("e")
            .arg(entry.encode())
            .clone();
        self.redis.run::<String>(&cmd).await.map(drop)
    }

    fn queue(&self, entry: Entry) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.len() >= MAX_PENDING {
            pending.pop_front();
            warn!("too many ends wait for Redis: the oldest is dropped (it holds on this replica)");
        }
        pending.push_back(entry);
    }

    /// Whether this is the first `SET NX` of `name` (kept `ttl` seconds) of all replicas.
    pub async fn first(&self, name: &str, ttl: u64) -> Result<bool, RedisError> {
        let cmd = ::redis::cmd("SET")
            .arg(format!("th:{name}"))
            .arg("1")
            .arg("NX")
            .arg("EX")
            .arg(ttl.max(1))
            .clone();
        let set = self.redis.run::<Option<String>>(&cmd).await;
        if set.is_err() {
            self.metrics.ended_sync_errors.inc();
        }
        set.map(|s| s.is_some())
    }

    /// The entries after stream id `last`, at most [`BATCH`], with their ids.
    async fn read_after(&self, last: &str) -> Result<Vec<(String, String)>, RedisError> {
        type Reply = Option<Vec<(String, Vec<(String, Vec<String>)>)>>;
        let cmd = ::redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(last)
            .clone();
        let reply: Reply = self.redis.run(&cmd).await?;
        let entries = reply
            .into_iter()
            .flatten()
            .flat_map(|(_, entries)| entries)
            .map(|(id, fields)| {
                let value = fields
                    .chunks(2)
                    .find(|pair| pair[0] == "e")
                    .and_then(|pair| pair.get(1).cloned())
                    .unwrap_or_default();
                (id, value)
            })
            .collect();
        Ok(entries)
    }

    async fn flush_pending(&self) {
        loop {
            let next = self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            let Some(entry) = next else { return };
            if let Err(e) = self.append(&entry).await {
                self.metrics.ended_sync_errors.inc();
                debug!(error = %e, "an end still waits for Redis");
                self.pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_front(entry);
                return;
            }
            info!("an end that waited for Redis is now shared with every replica");
        }
    }
}

/// Keeps `record` in step with the stream, for as long as the process runs.
pub async fn follow(record: Arc<EndedSessions>, started: u64) {
    let Some(shared) = record.shared().cloned() else {
        return;
    };
    let mut last = "0-0".to_string();
    loop {
        match shared.read_after(&last).await {
            Ok(batch) => {
                if !shared.healthy.swap(true, Ordering::AcqRel) {
                    info!("the shared record of ended sessions is read from Redis again");
                }
                let now = crate::refresh::unix_now();
                let full = batch.len() >= BATCH;
                for (id, value) in batch {
                    match Entry::decode(&value) {
                        Some(entry) => {
                            // Counted once per replica that learns of it while running.
                            if entry.reason == Reason::Operator && entry.at >= started {
                                shared.metrics.logout("operator");
                            }
                            record.apply(entry, now);
                        }
                        None => warn!("an entry of the ended-sessions stream is not ours; skipped"),
                    }
                    last = id;
                }
                shared.flush_pending().await;
                shared.rounds.send_modify(|n| *n += 1);
                if full {
                    continue;
                }
                shared.loaded.store(true, Ordering::Release);
            }
            Err(e) => {
                shared.metrics.ended_sync_errors.inc();
                if shared.healthy.swap(false, Ordering::AcqRel) {
                    warn!(error = %e, "cannot read the shared record of ended sessions: sessions ended on other replicas are not refused here until Redis answers again");
                }
            }
        }
        tokio::time::sleep(shared.interval).await;
    }
}
