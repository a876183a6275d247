//! The browser's request body as the handler receives it: hyper's, or none at all for a request
//! the direct HTTP/1.1 server ([`super::h1`]) read (it reads only heads that announce no body).

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A request's body: hyper's `Incoming` (HTTP/2, and HTTP/1.1 through hyper), or [`Empty`]
/// (a head without `Content-Length` or `Transfer-Encoding`, read by the direct server).
///
/// [`Empty`]: RequestBody::Empty
#[derive(Debug)]
pub enum RequestBody {
    Hyper(Incoming),
    Empty,
}

impl RequestBody {
    /// The request's head (target and field values) has bytes of its own: the direct server
    /// copies each head it reads out of its read buffer, where hyper's values are slices of its
    /// read buffer, which they keep allocated while the request is in flight.
    pub fn head_has_own_bytes(&self) -> bool {
        matches!(self, RequestBody::Empty)
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
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(incoming) => incoming.is_end_stream(),
            RequestBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Hyper(incoming) => incoming.size_hint(),
            RequestBody::Empty => SizeHint::with_exact(0),
        }
    }
}
