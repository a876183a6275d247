//! `[forward_auth]`: a listener for gateways (nginx `auth_request`, Traefik ForwardAuth,
//! Envoy/Istio `ext_authz`, Gateway API `ExternalAuth`) to ask before they route a request.
//!
//! A listener of its own, not a path of the browser-facing one: its answers carry the Bearer
//! token for the gateway to copy upstream, and on the browser's listener (which a gateway
//! routes `/auth` to) a same-origin script could call it and read that token.

use super::raw;
use super::validate::Problems;
use std::net::SocketAddr;

#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    pub listen: SocketAddr,
}

pub(super) fn forward_auth(
    r: Option<raw::ForwardAuth>,
    server_listen: SocketAddr,
    admin_listen: Option<SocketAddr>,
    p: &mut Problems,
) -> Option<ForwardAuthConfig> {
    let r = r?;
    let listen = p.addr("forward_auth.listen", r.listen, "0.0.0.0:4181");
    let same_port = |other: SocketAddr| {
        other.port() == listen.port() && listen.port() != 0 && other.port() != 0
    };
    if same_port(server_listen) || admin_listen.is_some_and(same_port) {
        p.push("forward_auth.listen: must be a port of its own (not server.listen's or server.admin_listen's): browsers must never reach it");
    }
    Some(ForwardAuthConfig { listen })
}
