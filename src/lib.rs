//! token-handler: a Backend-for-Frontend token handler as a reverse-proxy sidecar.
//!
//! The browser holds only sealed, HttpOnly cookies; the proxy keeps the refresh and access
//! tokens inside them, refreshes at the IdP when needed and forwards each API call with
//! `Authorization: Bearer`. No token ever reaches the browser, a log line or a URL.
//!
//! # Layout (each module imports only those above it in this list)
//!
//! ```text
//! b64.rs        base64, one implementation (SIMD), named by alphabet
//! html.rs       HTML escaping for the pages served to browsers
//! secret.rs     AccessToken / RefreshToken / ClientSecret / ...: redacted Debug, .expose()
//! crypto/       KeyRing: seal(name, bytes) / open(name, value), AES-256-GCM, name as AAD
//! client_key.rs the client's signing key for private_key_jwt (PEM or JWK; RS256, PS256, ES256)
//! dpop/         DPoP (RFC 9449): the session's key and its proofs; nonce.rs servers' nonces;
//!               cache.rs ready key pairs of the sessions in use
//! edge/         a request's method, Host and path checked and normalised once; headers only
//!               a trusted proxy may send (pure: no I/O, no responses)
//! tls.rs        listener certificate (hot-swappable), client trust roots
//! config/       TOML + env secrets → validated Config; every problem at once (exit 64);
//!               one module per section (server.rs, upstream.rs, idp.rs, session.rs, ...),
//!               validate.rs: the shared machinery and the order problems are reported in
//! metrics.rs    Prometheus metrics (bounded labels)
//! trace.rs      OpenTelemetry spans of the data path (only with `[telemetry]`), W3C trace
//!               context from the browser and to the upstream and the IdP
//! body.rs       the data path's body type
//! error.rs      the proxy's JSON errors (login_required, idp_unavailable, ...)
//! session/      Session <-> cookies, no I/O: cookies.rs seals, chunks and clears; incoming.rs
//!               reads a request's cookies back; cookie_header.rs: the `Cookie` header as bytes
//! idp/          TokenClient + one file per dialect (tokenidp.rs, oauth2.rs); typed IdpError;
//!               credentials.rs: a secret, or a client assertion signed or read per call
//!               par.rs: pushed authorization requests (RFC 9126) for /auth/login
//! coordination/ cross-replica refresh on Redis (optional): mod.rs the protocol (leases,
//!               results, spent markers), redis.rs bounded calls, connect.rs standalone /
//!               Sentinel / Cluster
//! refresh/      ensure_fresh: flight.rs (in-process single flight, panic-safe), replicas.rs
//!               (alone or on Redis, one interface), merge.rs (IdP answer → session, pure),
//!               report.rs (each outcome's metric and log), rotations.rs, timing.rs (pure)
//! ended/        the record of ended sessions (logout, back-channel, operator): every copy of
//!               their cookies refused; entry.rs what an entry names; shared.rs Redis stream
//! csrf.rs       custom-header + Origin checks
//! proxy/        hop-by-hop strip, X-Forwarded-*, cookie strip, Bearer inject, stream, upgrade;
//!               pool.rs: keep-alive connections to the one upstream; upgrade.rs: which
//!               upgrades are tunnelled; client_body.rs: the request body, timed and watched;
//!               own_bytes.rs: a large head's values copied off hyper's read buffer
//!               direct/: the direct HTTP/1.1 client (`upstream.client = "direct"`): request
//!               head written, response framed (head.rs) and read (body.rs) in the request's task
//! routes.rs     which route takes a request (allowlist, methods, session rule, its upstream
//!               pool) and the identity headers a route's upstream gets
//! app.rs        App: everything a request needs, built once
//! reload.rs     hot reload of mounted TLS files, cookie keys, client secret and client key
//! request_session.rs   a request's session opened, made fresh, and its response cookies
//! endpoints/    /auth/login, /auth/callback, /auth/session, /auth/logout,
//!               /auth/backchannel-logout
//! forward/      one request upstream: one retry after a refresh on invalid_token or an API's
//!               DPoP nonce; prepared.rs the rewritten head, Bearer or DPoP per send
//! handler.rs    per request: session → CSRF → ensure_fresh → forward → cookies
//! forward_auth/ the gateways' listener (`[forward_auth]`): the original request from each
//!               gateway's headers (original.rs), the same route and session rules, answers
//!               with the Bearer for the gateway to copy upstream
//! server/       run(listener, app, shutdown): accept loop, HTTP/1.1 + h2c, graceful drain;
//!               conn.rs: idle limit from accept; stall.rs: write-stall limit
//! admin.rs      admin listener: /healthz, /readyz, /metrics
//! telemetry/    tracing-subscriber set-up; otlp.rs: the OTLP/HTTP span exporter
//!
//! demo/         DEVELOPMENT ONLY, cargo feature `demo` (default; production builds use
//!               `--no-default-features`): `token-handler demo` (TokenIDP emulator, demo API +
//!               SPA); uses the modules above like any library user; nothing above imports it
//! ```

// The request future (connection → handler → endpoints → Redis) nests deeper than the
// default limit of rustc's `Send` check.
#![recursion_limit = "256"]
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod b64;
pub mod body;
pub mod client_key;
pub mod config;
pub mod coordination;
pub mod crypto;
pub mod csrf;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dpop;
pub mod edge;
pub mod ended;
pub mod endpoints;
pub mod error;
pub mod forward;
pub mod forward_auth;
pub mod handler;
pub mod html;
pub mod idp;
pub mod metrics;
pub mod proxy;
pub mod refresh;
pub mod reload;
pub mod request_session;
pub mod routes;
pub mod secret;
pub mod server;
pub mod session;
pub mod telemetry;
pub mod tls;
pub mod trace;
