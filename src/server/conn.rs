//! One client connection's life: how long it may sit idle, and when it is closed.
//!
//! hyper's `header_read_timeout` would start only once HTTP/1.1 parsing begins, which is after
//! the HTTP/1.1-or-h2 decision, and costs a timer per request; HTTP/2 has no idle limit at all.
//! So it is off (`server::builder`), and a connection that sends nothing, only the h2c preface
//! or a SETTINGS frame, or a head byte by byte, is bounded here, by one rule for both protocols
//! counted from accept: a connection with
//! no request in flight (the first one included) for `server.header_read_timeout` is closed,
//! gracefully (HTTP/2: GOAWAY), and dropped if it has not finished a second later. A
//! request is in flight from its head until its response body has been sent or dropped
//! ([`Tracked`]), so a long download or an event stream never counts as idle.

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::debug;

/// After a graceful close of an idle connection, how long it may take to finish (HTTP/2
/// waits for the client to acknowledge a PING after the first GOAWAY; a client that never
/// does must not keep the slot).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Requests in flight on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `epoch` when the last request finished (0: since accept).
    idle_since_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// A request begins; it ends when the guard is dropped.
    pub fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }

    /// When the connection will have been idle for `timeout`; `None` while requests run.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.epoch + since + timeout)
    }
}

/// One request in flight; dropped with its response body.
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        let now = activity.epoch.elapsed().as_millis() as u64;
        activity.idle_since_ms.store(now, Ordering::Release);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request in flight until it is done or dropped.
#[derive(Debug)]
pub struct Tracked<B> {
    inner: B,
    _busy: Busy,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, busy: Busy) -> Tracked<B> {
        Tracked { inner, _busy: busy }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Drives a pinned hyper connection under its [`Watchdog`] until it ends (`Some(result)`) or
/// is dropped (`None`). A macro rather than a function: a generic async function over hyper's
/// connection types fails the `Send` proof of the task that spawns it.
macro_rules! watched {
    ($connection:ident, $watchdog:ident) => {
        loop {
            tokio::select! {
                biased;
                ended = $connection.as_mut() => break Some(ended),
                verdict = $watchdog.next_verdict() => match verdict {
                    $crate::server::conn::Verdict::Close => $connection.as_mut().graceful_shutdown(),
                    $crate::server::conn::Verdict::Drop => break None,
                },
            }
        }
    };
}
pub(crate) use watched;

/// What the connection's owner should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Close gracefully (HTTP/2: GOAWAY): idle too long, or the server is stopping.
    Close,
    /// Drop it: it did not finish within [`CLOSE_GRACE`] of going idle.
    Drop,
}

/// Decides when a connection is closed. Its owner polls the connection and
/// [`Watchdog::next_verdict`] together (a `select!`), and acts on each verdict.
#[derive(Debug)]
pub struct Watchdog {
    activity: Arc<Activity>,
    idle_timeout: Duration,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    closing: bool,
    draining: bool,
    /// Set when the timer or the shutdown signal wakes the connection's task: only then is
    /// the watchdog polled. The task is woken for every read and write of its connection, and
    /// polling the shutdown signal each time took a lock (~500 instructions per request,
    /// BENCHMARKS.md).
    wake: Arc<OwnWake>,
}

/// The watchdog's own waker: notes the wake-up, then wakes the connection's task.
#[derive(Debug, Default)]
struct OwnWake {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for OwnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Watchdog {
    pub fn new(
        activity: Arc<Activity>,
        idle_timeout: Duration,
        stopping: CancellationToken,
    ) -> Watchdog {
        Watchdog {
            activity,
            idle_timeout,
            stopping: Box::pin(stopping.cancelled_owned()),
            timer: Box::pin(tokio::time::sleep(idle_timeout)),
            closing: false,
            draining: false,
            // Woken to begin with: the first poll registers with the timer and the signal.
            wake: Arc::new(OwnWake {
                woken: AtomicBool::new(true),
                task: AtomicWaker::new(),
            }),
        }
    }

    /// The next verdict. After a shutdown's `Close`, none comes: in-flight requests finish
    /// (the caller bounds that wait).
    pub fn next_verdict(&mut self) -> impl std::future::Future<Output = Verdict> + '_ {
        std::future::poll_fn(|cx| self.poll_next(cx))
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Verdict> {
        self.wake.task.register(cx.waker());
        if !self.wake.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(Arc::clone(&self.wake));
        let verdict = self.verdict(&mut Context::from_waker(&waker));
        if verdict.is_ready() {
            // The next poll looks again (and registers the timer a verdict has just reset).
            self.wake.woken.store(true, Ordering::Release);
        }
        verdict
    }

    fn verdict(&mut self, own: &mut Context<'_>) -> Poll<Verdict> {
        loop {
            if self.draining {
                return Poll::Pending;
            }
            if self.stopping.as_mut().poll(own).is_ready() {
                self.draining = true;
                if !self.closing {
                    self.closing = true;
                    return Poll::Ready(Verdict::Close);
                }
                continue;
            }
            if self.timer.as_mut().poll(own).is_pending() {
                return Poll::Pending;
            }
            if self.closing {
                debug!("an idle connection did not close in time; dropped");
                return Poll::Ready(Verdict::Drop);
            }
            let now = Instant::now();
            match self.activity.idle_deadline(self.idle_timeout) {
                None => self.timer.as_mut().reset(now + self.idle_timeout),
                Some(deadline) if deadline > now => self.timer.as_mut().reset(deadline),
                Some(_) => {
                    debug!("closing an idle connection");
                    self.closing = true;
                    self.timer.as_mut().reset(now + CLOSE_GRACE);
                    return Poll::Ready(Verdict::Close);
                }
            }
        }
    }
}
