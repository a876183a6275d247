//! Fuzzes token-endpoint answer parsing and classification in both dialects, and the expiry
//! the proxy derives from a successful answer (what a refresh stores in the session).
//!
//! Input: `dialect (1 byte: even = TokenIDP, odd = OAuth2) | status (2 bytes, big endian) |
//! body`.
//!
//! Invariants (design habit 8): never a panic; `Ok` only for a 2xx with a non-empty access
//! token; 5xx and 429 are always `Transient`; `Rejected` only ever for 400/401; and the
//! expiry computed from an `Ok` answer is neither in the past nor wrapped around.

#![no_main]

use libfuzzer_sys::fuzz_target;
use token_handler::config::Dialect;
use token_handler::idp::{parse_token_response, IdpError};
use token_handler::refresh::{expires_at, needs_refresh};

/// A fixed "now" (Unix seconds) for the expiry arithmetic.
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let dialect = if data[0] & 1 == 0 {
        Dialect::TokenIdp
    } else {
        Dialect::OAuth2
    };
    let status = u16::from_be_bytes([data[1], data[2]]);
    let body = &data[3..];
    let result = parse_token_response(dialect, status, body);
    match &result {
        Ok(tokens) => {
            assert!((200..300).contains(&status), "Ok for status {status}");
            assert!(
                !tokens.access_token.expose().is_empty(),
                "empty access token"
            );
            // The session keeps `expires_at(..)` as the access token's expiry.
            let expiry = expires_at(tokens, NOW);
            assert!(expiry >= NOW, "expiry {expiry} before now {NOW}");
            let _ = needs_refresh(NOW, expiry, NOW, 30);
        }
        Err(IdpError::Rejected { .. }) => {
            assert!(matches!(status, 400 | 401), "Rejected for status {status}")
        }
        Err(IdpError::Transient { .. }) => {}
    }
    if status == 429 || (500..600).contains(&status) {
        assert!(
            matches!(result, Err(IdpError::Transient { .. })),
            "status {status} must be transient: {result:?}"
        );
    }
});
