//! The direct client's heads: framing, keep-alive, the fields kept, the request written.

use super::*;

fn parse(text: &str, method: &Method) -> Result<Option<Head>, HeadError> {
    let mut buf = BytesMut::from(text.as_bytes());
    parse_response_head(&mut buf, method)
}

fn head(text: &str) -> Head {
    parse(text, &Method::GET)
        .expect("parses")
        .expect("complete")
}

#[test]
fn content_length_frames_the_body_and_values_are_slices_of_the_head() {
    let mut buf =
        BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello"[..]);
    let parsed = parse_response_head(&mut buf, &Method::GET)
        .expect("parses")
        .expect("complete");
    assert_eq!(parsed.status, 200);
    assert_eq!(parsed.framing, Framing::Length(5));
    assert!(parsed.reusable);
    assert_eq!(parsed.headers["x-a"], "b");
    assert_eq!(&buf[..], b"hello", "the body is left in the buffer");
}

#[test]
fn an_incomplete_head_asks_for_more() {
    assert!(parse("HTTP/1.1 200 OK\r\nContent-Le", &Method::GET)
        .expect("no error")
        .is_none());
}

#[test]
fn bodiless_statuses_and_head_have_no_body_whatever_the_headers_say() {
    for text in [
        "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
    ] {
        assert_eq!(head(text).framing, Framing::Empty, "{text}");
    }
    let to_head = parse(
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
        &Method::HEAD,
    )
    .expect("parses")
    .expect("complete");
    assert_eq!(to_head.framing, Framing::Empty);
    assert!(to_head.reusable);
}

#[test]
fn chunked_wins_over_content_length_which_is_dropped_and_the_connection_ends() {
    let parsed = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(parsed.framing, Framing::Chunked);
    assert!(!parsed.headers.contains_key(CONTENT_LENGTH));
    assert!(!parsed.reusable);
    let plain = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
    assert_eq!(plain.framing, Framing::Chunked);
    assert!(plain.reusable);
}

#[test]
fn a_coding_that_does_not_end_in_chunked_reads_to_the_close() {
    let parsed = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n");
    assert_eq!(parsed.framing, Framing::Close);
    assert!(!parsed.reusable);
}

#[test]
fn ambiguous_or_broken_framing_is_refused() {
    for text in [
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 3 4\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n",
    ] {
        assert_eq!(
            parse(text, &Method::GET).expect_err(text),
            HeadError::Framing,
            "{text}"
        );
    }
    let same = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n");
    assert_eq!(
        same.framing,
        Framing::Length(3),
        "repeated equal values agree"
    );
}

#[test]
fn malformed_heads_are_refused() {
    for text in [
        "HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n",
    ] {
        assert_eq!(
            parse(text, &Method::GET).expect_err(text),
            HeadError::Malformed,
            "{text}"
        );
    }
}

#[test]
fn keep_alive_follows_the_version_and_connection() {
    assert!(!head("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n").reusable);
    assert!(!head("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").reusable);
    assert!(
        head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").reusable
    );
    assert!(!head("HTTP/1.1 200 OK\r\n\r\n").reusable, "close-delimited");
    assert!(!head("HTTP/1.1 101 Switching Protocols\r\n\r\n").reusable);
}

/// A `Connection` field naming no other field is read for the framing and left out of the
/// map; one that names fields stays, for the strip to remove them with it.
#[test]
fn connection_is_kept_only_when_it_names_fields() {
    for value in ["keep-alive", "close", "Keep-Alive ", "CLOSE"] {
        let text = format!("HTTP/1.1 200 OK\r\nConnection: {value}\r\nX-A: b\r\n\r\n");
        let parsed = head(&text);
        assert!(!parsed.headers.contains_key(CONNECTION), "{value}");
        assert_eq!(parsed.headers["x-a"], "b");
    }
    assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").reusable);
    // One that names a field keeps them all, the plain one too, in their place.
    let parsed = head(
        "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nX-A: b\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n",
    );
    let names: Vec<&str> = parsed.headers.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["connection", "x-a", "x-hop"]);
    assert_eq!(parsed.headers.get_all(CONNECTION).iter().count(), 2);
    let parsed = head("HTTP/1.1 200 OK\r\nConnection: keep-alive, x-hop\r\nX-Hop: 1\r\n\r\n");
    assert_eq!(parsed.headers[CONNECTION], "keep-alive, x-hop");
    let mut headers = parsed.headers;
    crate::proxy::headers::strip_hop_by_hop(&mut headers, false);
    assert!(headers.is_empty(), "{headers:?}");
}

#[test]
fn the_request_head_is_written_without_transfer_encoding() {
    let request = Request::builder()
        .method("DELETE")
        .uri("/a/b?c=d")
        .header("host", "api")
        .header("x-many", "1")
        .header("x-many", "2")
        .header("transfer-encoding", "chunked")
        .body(())
        .expect("request");
    let mut out = b"stale".to_vec();
    write_request_head(&mut out, &request, None);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "DELETE /a/b?c=d HTTP/1.1\r\nhost: api\r\nx-many: 1\r\nx-many: 2\r\n\r\n"
    );
    // `X-Forwarded-*` kept out of the map: after its fields, before the end of the head.
    let ip: std::net::IpAddr = "10.0.0.7".parse().expect("ip");
    let host = HeaderValue::from_static("api");
    let forwarded = crate::proxy::forwarded::forwarded(
        &mut HeaderMap::new(),
        &ip.into(),
        "http",
        Some(&host),
        false,
    );
    write_request_head(&mut out, &request, forwarded.as_ref());
    assert_eq!(
        String::from_utf8(out).expect("text"),
        "DELETE /a/b?c=d HTTP/1.1\r\nhost: api\r\nx-many: 1\r\nx-many: 2\r\n\
         x-forwarded-for: 10.0.0.7\r\nx-forwarded-proto: http\r\nx-forwarded-host: api\r\n\r\n"
    );
}
