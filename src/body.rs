//! The one body type of the data path, and constructors for the proxy's own small bodies.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A streaming body: upstream and client bodies pass through without buffering.
pub type Body = BoxBody<Bytes, BoxError>;

/// No bytes: [`empty`], which allocates nothing (`Full` would box its empty buffer).
pub fn full(bytes: impl Into<Bytes>) -> Body {
    let bytes = bytes.into();
    if bytes.is_empty() {
        return empty();
    }
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Boxes any body whose errors convert into [`BoxError`] (e.g. hyper's `Incoming`).
pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}
