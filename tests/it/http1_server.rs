//! Who reads HTTP/1.1 requests (`server.http1`): whichever it is, one kept-alive connection
//! carries requests without a body, with a `Content-Length` body, with a chunked one, and an
//! error, in order. With the default direct server (`src/server/h1/`) the first three requests
//! are its own (the body came with its head), and the chunked `POST` hands the connection and
//! the bytes already read (the rest of the pipeline) to hyper, which serves the rest.

use crate::support::*;

#[tokio::test]
async fn one_connection_carries_bodiless_requests_a_body_and_an_error_in_order() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public/\"]")],
        KEY1,
    )
    .await;
    // One write: the proxy reads the whole pipeline at once.
    let response = raw(
        h.proxy.addr,
        b"GET /public/one?x=1 HTTP/1.1\r\nHost: x\r\nAccept: a/b\r\n\r\n\
          GET /public/two HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /public/three HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
          PUT /public/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n\
          GET /public/four HTTP/1.1\r\nHost: x\r\n\r\n\
          GET /public/../five HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let statuses: Vec<&str> = response
        .match_indices("HTTP/1.1 ")
        .map(|(at, _)| &response[at + 9..at + 12])
        .collect();
    assert_eq!(
        statuses,
        ["200", "200", "200", "200", "200", "400"],
        "{response}"
    );
    let seen = h.echo.records();
    let uris: Vec<&str> = seen.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "/public/one?x=1",
            "/public/two",
            "/public/three",
            "/public/chunked",
            "/public/four"
        ]
    );
    assert_eq!(seen[0].header("accept").as_deref(), Some("a/b"));
    assert_eq!(seen[2].method, "POST");
    assert_eq!(seen[2].body, b"abc");
    assert_eq!(seen[3].method, "PUT");
    assert_eq!(seen[3].body, b"de");
    assert!(seen[4].body.is_empty());
}

/// A head larger than the direct server's first read (8 KiB), within the limit, is served;
/// one past `max_header_bytes` gets the JSON 431.
#[tokio::test]
async fn large_heads_are_served_and_oversized_ones_refused() {
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[("proxy", "public_paths = [\"/public/\"]")],
        KEY1,
    )
    .await;
    let large = format!(
        "GET /public/large HTTP/1.1\r\nHost: x\r\nX-Large: {}\r\nConnection: close\r\n\r\n",
        "v".repeat(20 * 1024)
    );
    let response = raw(h.proxy.addr, large.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert_eq!(
        h.echo.records()[0].header("x-large").map(|v| v.len()),
        Some(20 * 1024)
    );
    let oversized = format!(
        "GET /public/huge HTTP/1.1\r\nHost: x\r\nX-Large: {}\r\n\r\n",
        "v".repeat(40 * 1024)
    );
    let response = raw(h.proxy.addr, oversized.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 431 "), "{response}");
    assert!(response.contains("request_too_large"), "{response}");
    assert_eq!(h.echo.records().len(), 1);
}
