//! The TokenIDP emulator (the tests' and the demo's IdP) checked against the wire contract of
//! shared/tokenidp-protocol.md over real HTTP: if it drifts from TokenIDP, every other suite
//! would test the proxy against the wrong thing.

mod common;

mod authorize;
mod client_auth;
mod endpoints;
mod faults;
mod refresh;
mod styles;
