//! The integration tests, in one binary: every module below was a test binary of its own, and
//! each linked the whole crate again. `support` is the shared harness (the real proxy
//! in-process, the TokenIDP emulator, an echo upstream, child processes, log capture).
//!
//! Run one module with `cargo test --test it <module>::`, e.g. `cargo test --test it leaks::`.

mod support;

mod backchannel;
mod backchannel_peer;
mod browser_demo;
mod cli;
mod client_assertions;
mod coordination;
mod coordination_scenarios;
mod coordination_topologies;
mod direct_client;
mod dpop;
mod dpop_peers;
mod edges;
mod edges_return_to;
mod edges_session;
mod emulator;
mod ended_sessions;
mod exhaustion;
mod forward_auth;
mod forward_auth_nginx;
mod hardening;
mod helm_chart;
mod http1_server;
mod js_client;
mod leaks;
mod login_oidc_provider;
mod login_tokenidp;
mod monitoring;
mod no_demo;
mod observability;
mod par;
mod per_core;
mod properties;
mod proxy_behaviour;
mod refresh_conformance;
mod routes;
mod shutdown;
mod start_up_pages;
mod traces;
mod traces_replicas;
mod transport;
mod upstream_idle;
mod upstream_timeouts;
