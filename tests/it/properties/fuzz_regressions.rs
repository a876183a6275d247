//! Inputs found by the fuzz targets (fuzz/regressions/<target>/), replayed here: the
//! `idp_response` inputs and the non-ASCII app cookie. The `config_parse` inputs are replayed
//! in `config`.

use super::fuzz_seeds::seed_spec;
use super::idp_answers::check_classification;
use super::{build_session, codec, pair, regression, NOW};
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use token_handler::config::Dialect;
use token_handler::idp::parse_token_response;
use token_handler::refresh::expires_at;
use token_handler::session::ReadOutcome;

/// Splits an `idp_response` fuzz input: dialect byte, big-endian status, body.
fn idp_input(data: &[u8]) -> (Dialect, u16, &[u8]) {
    let dialect = if data[0] & 1 == 0 {
        Dialect::TokenIdp
    } else {
        Dialect::OAuth2
    };
    (dialect, u16::from_be_bytes([data[1], data[2]]), &data[3..])
}

#[test]
fn idp_regressions_obey_the_classification() {
    // Every idp_response regression input, present and future: whatever else it breaks, the
    // parser's classification holds.
    let dir = format!(
        "{}/fuzz/regressions/idp_response",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("regressions directory") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("regression input");
        if data.len() < 3 {
            continue;
        }
        let (dialect, status, body) = idp_input(&data);
        let result = parse_token_response(dialect, status, body);
        check_classification(status, &result).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen > 0, "no inputs in {dir}");
}

/// fuzz/regressions/idp_response/expires_in_overflow (`{"access_token":"x","expires_in":1e300}`)
/// and found_by_fuzzer_expires_in_1e300 (the same in TokenIDP's envelope, found by the
/// `idp_response` target): expires_in saturates to u64::MAX and `refresh::expires_at` computes
/// `now + u64::MAX`: a panic in debug builds, a wrapped expiry in the past in release (every
/// request then refreshes).
#[test]
fn regression_expires_in_overflow() {
    for name in ["expires_in_overflow", "found_by_fuzzer_expires_in_1e300"] {
        let data = regression("idp_response", name);
        let (dialect, status, body) = idp_input(&data);
        let tokens = parse_token_response(dialect, status, body).expect("a success answer");
        let expiry = expires_at(&tokens, NOW);
        assert!(expiry >= NOW, "{name}: expiry {expiry} is before now");
    }
}

/// One `Cookie` header with an app cookie whose value is UTF-8 (`user=Jürgen`, as browsers
/// send it) next to a valid session. `HeaderValue::to_str` refuses any byte over 0x7f, so
/// `cookie_pairs` skips the whole header: the session is not seen (the user looks logged out)
/// and `strip_own` drops every app cookie of that header instead of passing it through.
#[test]
fn regression_non_ascii_app_cookie() {
    let c = codec("th_session", true);
    let ours: Vec<String> = c
        .seal(&build_session(&seed_spec(30)), NOW)
        .iter()
        .map(pair)
        .collect();
    let line = format!("user=Jürgen; {}; lang=en", ours.join("; "));
    let mut h = HeaderMap::new();
    h.append(
        COOKIE,
        HeaderValue::from_bytes(line.as_bytes()).expect("obs-text is a valid header value"),
    );
    assert!(
        matches!(c.read(&c.incoming(&h), NOW), ReadOutcome::Valid { .. }),
        "the session next to a non-ASCII app cookie is not seen"
    );
    let kept = c.strip_own(&h).expect("the app's cookies go upstream");
    assert_eq!(kept.as_bytes(), "user=Jürgen; lang=en".as_bytes());
}

/// A `direct_response` input (a GET): the head the direct client parses, and the bytes after it.
fn direct_head(name: &str) -> (token_handler::proxy::direct::head::Head, bytes::BytesMut) {
    let data = regression("direct_response", name);
    assert_eq!(data[0] % 2, 0, "a GET");
    let mut read = bytes::BytesMut::from(&data[1..]);
    let head =
        token_handler::proxy::direct::head::parse_response_head(&mut read, &http::Method::GET)
            .expect("the head parses")
            .expect("complete");
    (head, read)
}

/// `direct_response`: the direct client's reading of `cr_before_chunk_extension`, an upstream
/// answer whose last chunk-size line is `0\r\r;...`. A CR there was taken for the whitespace
/// allowed before `;`, so the body read as complete (and empty) where hyper's client refuses
/// it. The fuzz target found it comparing the two; the body must fail.
#[test]
fn regression_direct_response_cr_before_chunk_extension() {
    use token_handler::proxy::direct::decode::{Decoder, Step};
    use token_handler::proxy::direct::head::Framing;
    let (head, mut read) = direct_head("cr_before_chunk_extension");
    assert_eq!(head.framing, Framing::Chunked);
    let mut decoder = Decoder::new(head.framing);
    let step = decoder.step(&mut read);
    assert!(matches!(step, Step::Fail(_)), "{step:?}");
}

/// `direct_response`: `connection_fields_named_and_plain`, an answer with a `Connection:
/// keep-alive` field and, after another field, a second `Connection` naming a token. The
/// direct client had left the plain one out of the map and kept the other, so `connection`
/// moved after the field between them, where hyper's map has it at its first place. Every
/// `Connection` field is now kept when any of them names something (and all are left out only
/// when none does).
#[test]
fn regression_direct_response_connection_fields_named_and_plain() {
    let (head, _) = direct_head("connection_fields_named_and_plain");
    let names: Vec<&str> = head.headers.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["connmction", "connection", "connecti+on"]);
    let connection: Vec<&[u8]> = head
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    assert_eq!(connection, [&b"keep-alive"[..], b"Trueth:"]);
}
