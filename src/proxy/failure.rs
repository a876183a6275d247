//! What the browser gets when a request got no answer from the upstream: the client's fault
//! when its own body broke the exchange (400, or 408 when it was too slow; logged at debug, no
//! upstream alert), else the upstream's (502, 504; logged at warn).

use super::client_body::{BodyFailure, Watch};
use super::UpstreamError;
use crate::body::Body;
use crate::error::{error_response, ErrorCode};
use http::Response;
use tracing::{debug, warn};

/// A request that got no answer: the client's fault when its own body broke the exchange
/// (400, or 408 when it was too slow; logged at debug, no upstream alert), else the upstream's.
pub fn failure(e: UpstreamError, watch: &Watch) -> Response<Body> {
    match watch.failure() {
        Some(failure) => client_body_error(failure),
        None => upstream_error(e),
    }
}

pub fn client_body_error(failure: BodyFailure) -> Response<Body> {
    debug!(?failure, "the client's request body failed");
    match failure {
        BodyFailure::TimedOut => error_response(
            ErrorCode::RequestTimeout,
            "the request body did not arrive in time",
        ),
        BodyFailure::Malformed => {
            error_response(ErrorCode::BadRequest, "the request body is malformed")
        }
        BodyFailure::Disconnected => error_response(
            ErrorCode::BadRequest,
            "the request body ended before it was complete",
        ),
    }
}

fn upstream_error(e: UpstreamError) -> Response<Body> {
    match e {
        UpstreamError::Unavailable(reason) => {
            warn!(%reason, "upstream unavailable");
            error_response(
                ErrorCode::UpstreamUnavailable,
                "the upstream API is unavailable",
            )
        }
        UpstreamError::Closed => {
            warn!("upstream closed the connection without answering");
            error_response(
                ErrorCode::UpstreamUnavailable,
                "the upstream API closed the connection",
            )
        }
        UpstreamError::Timeout(after) => {
            warn!(?after, "upstream timed out");
            error_response(
                ErrorCode::UpstreamTimeout,
                "the upstream API did not answer in time",
            )
        }
    }
}
