//! The browser's request body as the handler receives it: hyper's, or the one the direct
//! HTTP/1.1 server ([`super::h1`]) read whole with its head (or none).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A request's body: hyper's `Incoming` (HTTP/2, and HTTP/1.1 through hyper), or one the
/// direct server read: [`Empty`] (no `Content-Length`, or `0`), or [`Full`] (its bytes, all
/// there when the request is handled).
///
/// [`Empty`]: RequestBody::Empty
/// [`Full`]: RequestBody::Full
pub enum RequestBody {
    Hyper(Incoming),
    Empty,
    /// Never empty until its one frame is taken.
    Full(Bytes),
}

/// The body's kind and length, never its bytes (a form may carry a secret).
impl std::fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestBody::Hyper(incoming) => f.debug_tuple("Hyper").field(incoming).finish(),
            RequestBody::Empty => f.write_str("Empty"),
            RequestBody::Full(bytes) => write!(f, "Full({} bytes)", bytes.len()),
        }
    }
}

impl RequestBody {
    /// The request's head (target and field values) has bytes of its own: the direct server
    /// copies each head it reads out of its read buffer, where hyper's values are slices of its
    /// read buffer, which they keep allocated while the request is in flight.
    pub fn head_has_own_bytes(&self) -> bool {
        !matches!(self, RequestBody::Hyper(_))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            RequestBody::Hyper(incoming) => Pin::new(incoming).poll_frame(cx),
            RequestBody::Empty => Poll::Ready(None),
            RequestBody::Full(bytes) if bytes.is_empty() => Poll::Ready(None),
            RequestBody::Full(bytes) => Poll::Ready(Some(Ok(Frame::data(std::mem::take(bytes))))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(incoming) => incoming.is_end_stream(),
            RequestBody::Empty => true,
            RequestBody::Full(bytes) => bytes.is_empty(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Hyper(incoming) => incoming.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
            RequestBody::Full(bytes) => SizeHint::with_exact(bytes.len() as u64),
        }
    }
}
