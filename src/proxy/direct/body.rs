//! The direct client's response body: read from the upstream connection as the client takes
//! it, de-framed by [`Decoder`] (`decode.rs`), and the connection given back to the pool once
//! the body has been read to its exact end with nothing after it. A body dropped before its end,
//! or broken, closes its connection.

use super::decode::{Decoder, Step};
use super::head::Framing;
use super::{DirectConn, DirectPool};
use crate::body::BoxError;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What `poll_frame` answers.
type Polled = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// Why a response body ended early.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("upstream response body: {0}")]
pub struct BodyError(&'static str);

/// A response body on a direct connection.
pub struct DirectBody {
    conn: Option<DirectConn>,
    pool: Arc<DirectPool>,
    decoder: Decoder,
    reusable: bool,
}

impl std::fmt::Debug for DirectBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectBody")
            .field("decoder", &self.decoder)
            .field("reusable", &self.reusable)
            .finish_non_exhaustive()
    }
}

impl DirectBody {
    pub(super) fn new(
        conn: DirectConn,
        pool: Arc<DirectPool>,
        framing: Framing,
        reusable: bool,
    ) -> DirectBody {
        let mut body = DirectBody {
            conn: Some(conn),
            pool,
            decoder: Decoder::new(framing),
            reusable,
        };
        if body.decoder.is_done() {
            body.finish();
        }
        body
    }

    /// The body ended cleanly: the connection goes back if it may carry another exchange and
    /// the upstream sent nothing past this body.
    fn finish(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.reusable && conn.io.read.is_empty() {
                self.pool.put(conn);
            }
        }
    }

    fn fail(&mut self, why: &'static str) -> Polled {
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(BodyError(why)))))
    }
}

impl hyper::body::Body for DirectBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Polled {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            let step = match this.decoder.step(&mut conn.io.read) {
                Step::More => match conn.io.poll_fill(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(0)) => {
                        // Nothing more can come on this connection.
                        this.reusable = false;
                        this.decoder.at_close()
                    }
                    Poll::Ready(Ok(_)) => continue,
                    Poll::Ready(Err(_)) => return this.fail("reading it failed"),
                },
                step => step,
            };
            return match step {
                Step::Data(data) => {
                    if this.decoder.is_done() {
                        this.finish();
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Step::End => {
                    this.finish();
                    Poll::Ready(None)
                }
                Step::Fail(why) => this.fail(why),
                Step::More => continue,
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
