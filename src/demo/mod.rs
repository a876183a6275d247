//! DEVELOPMENT ONLY: `token-handler demo` and its parts. The production path never imports
//! this module; it imports the production modules like any user of the library would.
//!
//! - `tokenidp/`: the TokenIDP emulator (the demo's IdP, and the tests' IdP);
//! - `api.rs`: the demo API and its SPA;
//! - `run.rs`: wires the emulator, the API and the real proxy together.

pub mod api;
pub mod run;
pub mod tokenidp;
