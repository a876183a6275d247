//! `server.scheduler = "per_core"`: one single-threaded tokio runtime per worker, the process
//! model of nginx. The listener's runtime (worker 0) accepts every connection and hands each
//! to the next worker in turn; a connection stays on its worker, and each worker takes
//! upstream connections from its own shard of every pool ([`index`]), so a request's sockets
//! are all polled by one thread and no request wakes another thread. A handed-over
//! connection is tracked by its listener's `TaskTracker` and watches its `stopping` token like
//! any other, so the drain on shutdown is the same for every worker. Process-wide state
//! (sessions being refreshed, ended sessions, metrics) is shared as with work stealing.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use tokio::sync::mpsc;
use tracing::{error, Dispatch};

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// This thread's worker: 1.. on a per-core worker's thread, 0 anywhere else (the listener's
/// runtime, every thread of a work-stealing runtime).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Shards of per-worker state (the upstream pools' idle connections): each worker uses its
/// own, so a pooled socket is polled by the thread whose runtime registered it. With work
/// stealing every thread is worker 0 and there is one shard in use.
#[derive(Debug)]
pub struct Shards<T>([Mutex<T>; SHARDS]);

/// Shards per pool (a power of two): past this many per-core workers, workers share them
/// (still correct).
const SHARDS: usize = 8;

impl<T: Default> Default for Shards<T> {
    fn default() -> Self {
        Shards(std::array::from_fn(|_| Mutex::default()))
    }
}

impl<T> Shards<T> {
    /// The calling worker's shard, locked.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0[index() % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's whole life, to be run on a worker.
pub type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The per-core workers besides the listener's own runtime.
#[derive(Debug)]
pub struct Workers {
    /// Workers in all, the listener's runtime included.
    count: usize,
    /// Each worker thread's lane (`None`: it could not start), from the first hand-over on.
    lanes: OnceLock<Vec<Option<mpsc::UnboundedSender<Job>>>>,
    next: AtomicUsize,
}

impl Workers {
    /// `count` workers in all, the listener's runtime being the first; `None` for one. The
    /// `count - 1` threads, each running its own single-threaded runtime, start with the
    /// first connection handed over.
    pub fn new(count: usize) -> Option<Workers> {
        (count >= 2).then(|| Workers {
            count,
            lanes: OnceLock::new(),
            next: AtomicUsize::new(0),
        })
    }

    /// Where the next connection goes: `None` for the caller's own runtime, else a worker's
    /// lane. In turn, the caller's runtime included (and instead of a worker that could not
    /// start).
    pub fn next_lane(&self) -> Option<&mpsc::UnboundedSender<Job>> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.count;
        let worker = turn.checked_sub(1)?;
        self.lanes
            .get_or_init(|| self.start())
            .get(worker)?
            .as_ref()
    }

    fn start(&self) -> Vec<Option<mpsc::UnboundedSender<Job>>> {
        // The workers log and trace where the thread handing them connections does (the
        // global subscriber in the binary; a test's own, in process).
        let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
        (1..self.count)
            .map(|i| {
                let (tx, rx) = mpsc::unbounded_channel::<Job>();
                let dispatch = dispatch.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("token-handler-worker-{i}"))
                    .spawn(move || run(i, rx, &dispatch));
                match spawned {
                    Ok(_) => Some(tx),
                    Err(e) => {
                        error!(error = %e, worker = i, "cannot start a worker thread");
                        None
                    }
                }
            })
            .collect()
    }
}

/// A worker thread: its runtime runs the connections handed to it until the lane closes
/// (the `App` holding the senders is gone, and with it every connection).
fn run(index: usize, mut lane: mpsc::UnboundedReceiver<Job>, dispatch: &Dispatch) {
    INDEX.with(|i| i.set(index));
    let _logs = tracing::dispatcher::set_default(dispatch);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            // The lane closes with this thread: its connections go to the listener's runtime.
            error!(error = %e, worker = index, "cannot start a worker's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        while let Some(job) = lane.recv().await {
            tokio::spawn(job);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_every_worker_in_turn() {
        assert!(Workers::new(1).is_none());
        let workers = Workers::new(3).expect("three workers");
        assert_eq!(workers.count, 3);
        assert!(
            workers.next_lane().is_none(),
            "the caller's turn starts no thread"
        );
        assert!(workers.lanes.get().is_none());
        let turns: Vec<Option<usize>> = (0..7)
            .map(|_| {
                workers.next_lane().map(|lane| {
                    let lanes = workers.lanes.get().expect("started at the first hand-over");
                    lanes
                        .iter()
                        .position(|l| l.as_ref().is_some_and(|l| l.same_channel(lane)))
                        .expect("a lane")
                })
            })
            .collect();
        assert_eq!(
            turns,
            [Some(0), Some(1), None, Some(0), Some(1), None, Some(0)]
        );
    }

    #[test]
    fn a_job_runs_on_its_worker_thread() {
        let workers = Workers::new(2).expect("two workers");
        assert!(
            workers.next_lane().is_none(),
            "the first turn is the caller's"
        );
        let lane = workers.next_lane().expect("the second turn is a worker's");
        let (tx, rx) = std::sync::mpsc::channel();
        lane.send(Box::pin(async move {
            let _ = tx.send((index(), std::thread::current().name().map(String::from)));
        }))
        .expect("the worker takes it");
        let (worker, name) = rx.recv().expect("the job ran");
        assert_eq!(worker, 1);
        assert_eq!(name.as_deref(), Some("token-handler-worker-1"));
        assert_eq!(index(), 0, "this thread is no worker");
    }
}
