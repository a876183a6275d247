//! Header values and a request target given bytes of their own. hyper parses a request's header
//! values and target as slices of the buffer its head was read into, so any one of them keeps
//! that whole buffer allocated; `forward::prepared` copies them when the head was large (a
//! chunked session's cookies grow the buffer to 24 KiB) and the request waits on the upstream.

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Uri};

/// Gives every value bytes of its own: those hyper parsed share the buffer the head was read
/// into, which they keep allocated for as long as any of them lives.
pub fn own_values(headers: &mut HeaderMap) {
    for value in headers.values_mut() {
        if let Ok(mut owned) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.set_sensitive(value.is_sensitive());
            *value = owned;
        }
    }
}

/// The same for an origin-form request target (what the upstream is sent).
pub fn own_uri(uri: Uri) -> Uri {
    uri.path_and_query()
        .and_then(|p| {
            PathAndQuery::from_maybe_shared(Bytes::copy_from_slice(p.as_str().as_bytes())).ok()
        })
        .map_or(uri, Uri::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_values_and_target_leave_the_read_buffer() {
        // As hyper parses a head: every value a slice of the one buffer it was read into.
        let head = Bytes::from(b"app.example/api/v1?q=1 secret-ish".repeat(300));
        let within = |p: *const u8| head.as_ptr_range().contains(&p);
        let mut h = HeaderMap::new();
        h.insert(
            "host",
            HeaderValue::from_maybe_shared(head.slice(0..11)).expect("v"),
        );
        let mut sensitive = HeaderValue::from_maybe_shared(head.slice(23..33)).expect("v");
        sensitive.set_sensitive(true);
        h.insert("x-app", sensitive);
        h.append("x-app", HeaderValue::from_static("static"));
        let uri = Uri::from(PathAndQuery::from_maybe_shared(head.slice(11..22)).expect("p"));
        assert!(within(h["host"].as_bytes().as_ptr()));
        own_values(&mut h);
        let uri = own_uri(uri);
        let values: Vec<&HeaderValue> = h.values().collect();
        assert_eq!(values, ["app.example", "secret-ish", "static"]);
        assert!(values.iter().all(|v| !within(v.as_bytes().as_ptr())));
        assert!(values[1].is_sensitive() && !values[0].is_sensitive());
        assert_eq!(uri, "/api/v1?q=1");
        assert!(!within(uri.path().as_ptr()));
    }
}
