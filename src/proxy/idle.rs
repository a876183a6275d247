//! The idle upstream connections of both clients' pools: a stack per worker, the most recently
//! used on top, and its sweep.
//!
//! A request meets the connections it passes over (closed, or idle past [`IDLE_TIMEOUT`]) and
//! drops them. Once traffic stops, no request comes, so each stack that holds connections has
//! a sweep: a task on the worker that uses the stack, every [`SWEEP_EVERY`], that closes the
//! connections the upstream has closed (the direct client's would otherwise sit in
//! `CLOSE_WAIT`) and the ones idle too long (hyper's would otherwise stay open as long as the
//! upstream keeps them). It ends when the stack is empty; the next connection put back starts
//! another. Whether a connection is closed is read from tokio's readiness: a sweep makes no
//! system call for a connection that is sound.

use crate::server::workers::Shards;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// A connection idle longer than this is closed rather than reused.
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many idle connections are kept per stack; the oldest go first. Past a burst of
/// N concurrent requests, the next such burst finds N connections (up to this) instead of
/// opening the rest at once: with 512, a 1,000-request refresh storm opened ~490 upstream
/// connections in a few ms, and once a SYN dropped at a listen backlog of 511 stalled 111 of
/// them for the 1 s retransmission (BENCHMARKS.md, the refresh storm). The RSS after such a
/// storm measured the same with either cap (66-69 MiB: the 1,000 client connections dominate).
pub(super) const MAX_IDLE: usize = 1024;
/// How often a stack holding connections is swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// An idle connection, as a sweep sees it.
pub(super) trait Idle: Send + 'static {
    /// Whether it can still carry a request: not closed by the upstream, no unasked bytes.
    fn usable(&self) -> bool;
}

/// A pool of such connections.
pub(super) trait Pooling: Send + Sync + 'static {
    type Conn: Idle;
    fn stacks(&self) -> &Shards<Stack<Self::Conn>>;
}

/// One worker's idle connections, each with the moment it went idle.
#[derive(Debug)]
pub(super) struct Stack<C> {
    pub(super) entries: VecDeque<(C, Instant)>,
    /// A sweep of this stack is scheduled.
    swept: bool,
}

impl<C> Default for Stack<C> {
    fn default() -> Self {
        Stack {
            entries: VecDeque::new(),
            swept: false,
        }
    }
}

/// Puts `conn` on top of the calling worker's stack, idle from `now`: the oldest go first past
/// [`MAX_IDLE`], and any idle past [`IDLE_TIMEOUT`]. Starts the stack's sweep if none is
/// scheduled (outside a tokio runtime there is none: the requests still meet what is closed).
pub(super) fn put<P: Pooling>(pool: &Arc<P>, conn: P::Conn, now: Instant) {
    let mut stack = pool.stacks().lock();
    while stack.entries.front().is_some_and(|(_, since)| {
        stack.entries.len() >= MAX_IDLE || now.saturating_duration_since(*since) > IDLE_TIMEOUT
    }) {
        stack.entries.pop_front();
    }
    stack.entries.push_back((conn, now));
    if !stack.swept {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            stack.swept = true;
            // On the calling worker: a per-core worker's runtime is its own thread, so the
            // sweep locks the same stack, and polls sockets its own driver registered. Not
            // subject to tokio's budget, which would otherwise cut a sweep short after 128
            // readiness checks (each after that reads as sound).
            runtime.spawn(tokio::task::unconstrained(sweep(Arc::downgrade(pool))));
        }
    }
}

async fn sweep<P: Pooling>(pool: Weak<P>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        if !sweep_once(&mut pool.stacks().lock(), Instant::now()) {
            return;
        }
    }
}

/// Drops the connections of `stack` that are no longer usable, or idle past [`IDLE_TIMEOUT`]
/// at `now`. Returns whether any are left (the sweep goes on), or else ends the sweep.
fn sweep_once<C: Idle>(stack: &mut Stack<C>, now: Instant) -> bool {
    stack.entries.retain(|(conn, since)| {
        now.saturating_duration_since(*since) <= IDLE_TIMEOUT && conn.usable()
    });
    stack.swept = !stack.entries.is_empty();
    stack.swept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct Conn(Arc<AtomicBool>);

    impl Idle for Conn {
        fn usable(&self) -> bool {
            self.0.load(Ordering::Relaxed)
        }
    }

    #[derive(Default)]
    struct Pool(Shards<Stack<Conn>>);

    impl Pooling for Pool {
        type Conn = Conn;
        fn stacks(&self) -> &Shards<Stack<Conn>> {
            &self.0
        }
    }

    #[test]
    fn a_sweep_drops_the_closed_and_the_long_idle_and_ends_with_the_last() {
        let pool = Arc::new(Pool::default());
        let start = Instant::now();
        let sound = Arc::new(AtomicBool::new(true));
        let closed = Arc::new(AtomicBool::new(true));
        put(&pool, Conn(Arc::clone(&sound)), start);
        put(
            &pool,
            Conn(Arc::clone(&closed)),
            start + Duration::from_secs(30),
        );
        // No runtime here: nothing scheduled.
        assert!(!pool.stacks().lock().swept);
        closed.store(false, Ordering::Relaxed);
        let mut stack = pool.stacks().lock();
        assert!(sweep_once(&mut stack, start + Duration::from_secs(1)));
        assert_eq!(stack.entries.len(), 1, "the closed one is gone");
        assert!(sweep_once(&mut stack, start + IDLE_TIMEOUT));
        assert_eq!(stack.entries.len(), 1, "idle for exactly the timeout: kept");
        assert!(!sweep_once(
            &mut stack,
            start + IDLE_TIMEOUT + Duration::from_millis(1)
        ));
        assert!(stack.entries.is_empty(), "idle past the timeout: gone");
        assert!(!stack.swept, "the sweep ends with the last connection");
    }

    #[test]
    fn a_full_stack_lets_the_oldest_go() {
        let pool = Arc::new(Pool::default());
        let start = Instant::now();
        let flags: Vec<_> = (0..=MAX_IDLE)
            .map(|_| Arc::new(AtomicBool::new(true)))
            .collect();
        for flag in &flags {
            put(&pool, Conn(Arc::clone(flag)), start);
        }
        let stack = pool.stacks().lock();
        assert_eq!(stack.entries.len(), MAX_IDLE);
        assert!(
            Arc::ptr_eq(&stack.entries[0].0 .0, &flags[1]),
            "the first is gone"
        );
    }

    #[tokio::test]
    async fn a_put_in_a_runtime_schedules_one_sweep() {
        let pool = Arc::new(Pool::default());
        let flag = Arc::new(AtomicBool::new(true));
        put(&pool, Conn(Arc::clone(&flag)), Instant::now());
        put(&pool, Conn(Arc::clone(&flag)), Instant::now());
        assert!(pool.stacks().lock().swept);
        // The sweep holds the pool weakly: one task, and the pool is not kept alive by it.
        assert_eq!(Arc::strong_count(&pool), 1);
        assert_eq!(Arc::weak_count(&pool), 1, "one sweep for two puts");
    }
}
