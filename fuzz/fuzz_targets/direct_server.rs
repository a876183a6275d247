//! Differential fuzzing of the direct HTTP/1.1 server (`server.http1 = "direct"`) against
//! hyper's: the same client bytes go to the direct server (which hands the connection to
//! hyper at the first request it does not take, as in production) and to hyper's server
//! alone, each over an in-memory pipe, with a handler that records every request (method,
//! target, version, fields, body) and answers `200 hello`.
//!
//! Input: the client's bytes; a last `GET` with `Connection: close` is appended so that a
//! connection both servers keep open ends.
//!
//! Invariants: no panic; the handler receives the same requests, in the same order, and the
//! client reads the same bytes (`Date` values blanked), from either. Where both wait for bytes
//! that never come (a body cut short), the runtime's paused clock ends the exchange and what
//! was read so far is compared.

#![no_main]

use http::Response;
use libfuzzer_sys::fuzz_target;
use token_handler::body::{full, Body};
use token_handler::server::h1::differential::{exchange, Server};

const LAST: &[u8] = b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

fn answer() -> Response<Body> {
    Response::new(full("hello"))
}

fuzz_target!(|input: &[u8]| {
    let mut requests = input.to_vec();
    requests.extend_from_slice(LAST);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let direct = exchange(Server::Direct, answer, &requests).await;
        let hyper = exchange(Server::Hyper, answer, &requests).await;
        assert_eq!(direct.seen, hyper.seen, "the handler saw different requests");
        assert_eq!(direct.read, hyper.read, "the client read differently");
    });
});
