//! Which requests the direct client writes itself ([`eligible`]).

use crate::body::Body;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, EXPECT, TRANSFER_ENCODING, UPGRADE};
use http::{Method, Request};
use hyper::body::Body as _;

/// Whether `request` may go through the direct client: no upgrade, not `CONNECT`, and no body
/// or one it carries itself, behind the head: `ready` holds the whole of it (the caller has
/// every byte), and one `Content-Length` of their length announces it, with nothing else about
/// its framing or sending (`Transfer-Encoding`, `Expect`), so that the head it writes is the
/// request's as it is. One pass over the fields (called twice a request: `Upstream::lends`,
/// then `Upstream::send`).
pub fn eligible(request: &Request<Body>, ready: Option<&Bytes>) -> bool {
    if request.method() == Method::CONNECT {
        return false;
    }
    let body = if request.body().is_end_stream() {
        None
    } else {
        match ready {
            Some(bytes) if request.body().size_hint().exact() == Some(bytes.len() as u64) => {
                Some(bytes.len())
            }
            _ => return false,
        }
    };
    let Some(len) = body else {
        return !crate::proxy::headers::has(request.headers(), &UPGRADE);
    };
    let mut lengths = 0;
    for (name, value) in request.headers() {
        if name == UPGRADE || name == TRANSFER_ENCODING || name == EXPECT {
            return false;
        }
        if name == CONTENT_LENGTH {
            lengths += 1;
            if lengths > 1 || value.as_bytes() != itoa::Buffer::new().format(len).as_bytes() {
                return false;
            }
        }
    }
    lengths == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{empty, full};

    fn request(body: Body, fields: &[(&'static str, &'static str)]) -> Request<Body> {
        let mut request = Request::post("/p").body(body).expect("request");
        for (name, value) in fields {
            request
                .headers_mut()
                .append(*name, value.parse().expect("value"));
        }
        request
    }

    #[test]
    fn a_body_goes_direct_only_whole_and_announced_by_one_length_of_its_size() {
        let bytes = Bytes::from_static(b"payload");
        let body = || full(bytes.clone());
        let one = [("content-length", "7")];
        assert!(eligible(&request(body(), &one), Some(&bytes)));
        assert!(eligible(&request(empty(), &[]), None), "no body");
        let refused: [(Request<Body>, Option<&Bytes>); 7] = [
            (request(body(), &one), None),
            (request(body(), &[]), Some(&bytes)),
            (request(body(), &[("content-length", "8")]), Some(&bytes)),
            (request(body(), &[("content-length", "07")]), Some(&bytes)),
            (
                request(body(), &[("content-length", "7"), ("content-length", "7")]),
                Some(&bytes),
            ),
            (
                request(
                    body(),
                    &[("content-length", "7"), ("transfer-encoding", "chunked")],
                ),
                Some(&bytes),
            ),
            (
                request(
                    body(),
                    &[("content-length", "7"), ("expect", "100-continue")],
                ),
                Some(&bytes),
            ),
        ];
        for (request, ready) in &refused {
            assert!(!eligible(request, *ready), "{:?}", request.headers());
        }
        // Bytes that are not the body's (another length than its size).
        let other = Bytes::from_static(b"payload!");
        let eight = request(body(), &[("content-length", "8")]);
        assert!(!eligible(&eight, Some(&other)));
        let mut upgrade = request(empty(), &[("upgrade", "websocket")]);
        assert!(!eligible(&upgrade, None));
        *upgrade.method_mut() = Method::CONNECT;
        upgrade.headers_mut().clear();
        assert!(!eligible(&upgrade, None));
    }
}
