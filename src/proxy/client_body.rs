//! The browser's request body on its way upstream: bounded in time, and its failures told
//! apart from the upstream's.
//!
//! Time: like Apache's `mod_reqtimeout` (`body=…,MinRate=…`), the body may keep the proxy
//! waiting for `server.body_read_timeout`, plus one second for every `server.body_min_rate`
//! bytes it has delivered. Only time spent waiting on the client counts (not time the upstream
//! takes to read), so a slow upload on a slow link goes through, while a client trickling a
//! byte now and then, or stalling, is cut off instead of holding a connection forever.
//!
//! Failures: a body that breaks (bad chunked framing, a client that went away, the time limit)
//! also breaks the upstream request it was streaming into. [`Watch`] records why, so the
//! answer is the client's error (400, or 408 for time), not `502 upstream_unavailable` with
//! an alert about an upstream that did nothing wrong.

use crate::server::RequestBody;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Why the client's body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFailure {
    /// Malformed framing (chunk sizes, bare LF, junk after chunk data...).
    Malformed,
    /// The client stopped sending, or sent too slowly.
    TimedOut,
    /// The connection ended before the body did.
    Disconnected,
}

/// Shared between the body (which records) and the request's handler (which reads). Inert
/// (nothing allocated) for a request without a body, the usual GET.
#[derive(Debug, Clone, Default)]
pub struct Watch(Option<Arc<OnceLock<BodyFailure>>>);

impl Watch {
    pub fn failure(&self) -> Option<BodyFailure> {
        self.0.as_ref().and_then(|slot| slot.get().copied())
    }

    fn record(&self, failure: BodyFailure) {
        if let Some(slot) = &self.0 {
            let _ = slot.set(failure);
        }
    }
}

/// The time limits of one body.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub timeout: Duration,
    /// Bytes per second that earn one more second of waiting.
    pub min_rate: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body {0}")]
pub struct ClientBodyError(&'static str);

/// A timed, watched request body.
pub struct ClientBody {
    inner: RequestBody,
    pace: Pace,
    watch: Watch,
    received: u64,
    /// Time spent waiting on the client, excluding the current wait.
    waited: Duration,
    /// When the current wait began.
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl std::fmt::Debug for ClientBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBody")
            .field("received", &self.received)
            .finish_non_exhaustive()
    }
}

impl ClientBody {
    pub fn new(inner: RequestBody, pace: Pace) -> (ClientBody, Watch) {
        let watch = if inner.is_end_stream() {
            Watch(None)
        } else {
            Watch(Some(Arc::default()))
        };
        let body = ClientBody {
            inner,
            pace,
            watch: watch.clone(),
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
        };
        (body, watch)
    }

    /// The longest the client may still keep us waiting, counted from the current wait.
    fn allowance(&self) -> Duration {
        let earned = self.received / self.pace.min_rate.max(1);
        (self.pace.timeout + Duration::from_secs(earned)).saturating_sub(self.waited)
    }

    fn fail(
        &mut self,
        failure: BodyFailure,
        what: &'static str,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        self.watch.record(failure);
        self.timer = None;
        Poll::Ready(Some(Err(ClientBodyError(what))))
    }
}

impl hyper::body::Body for ClientBody {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
                    this.fail(BodyFailure::Disconnected, "ended before it was complete")
                } else {
                    this.fail(BodyFailure::Malformed, "is malformed")
                }
            }
            Poll::Ready(None) => {
                this.timer = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let now = Instant::now();
                let since = *this.waiting_since.get_or_insert(now);
                let deadline = since + this.allowance();
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    return this.fail(BodyFailure::TimedOut, "arrived too slowly");
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
