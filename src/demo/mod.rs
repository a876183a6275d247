//! Development-only pieces: the TokenIDP emulator (the demo's IdP and the tests' IdP).
//! Nothing on the production path imports this module.

pub mod tokenidp;
