//! The TokenIDP emulator (the tests' and the demo's IdP) checked against TokenIDP's real wire
//! contract, quirks included, over real HTTP: if it drifts from TokenIDP, every other suite
//! would test the proxy against the wrong thing.

mod common;

mod authorize;
mod client_auth;
mod endpoints;
mod faults;
mod refresh;
mod styles;
