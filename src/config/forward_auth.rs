//! `[forward_auth]`: a listener for gateways (nginx `auth_request`, Traefik ForwardAuth,
//! Envoy/Istio `ext_authz`, Gateway API `ExternalAuth`) to ask before they route a request.
//!
//! A listener of its own, not a path of the browser-facing one: its answers carry the Bearer
//! token for the gateway to copy upstream, and on the browser's listener (which a gateway
//! routes `/auth` to) a same-origin script could call it and read that token.

use super::raw;
use super::validate::Problems;
use std::net::SocketAddr;

/// Which gateway asks: it decides which headers say what the original request was. Only the
/// headers that gateway sets itself are read (the others may be the browser's own, passed on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gateway {
    /// nginx `auth_request` with the documented config: `X-Original-Method`, `X-Original-URI`,
    /// `X-Forwarded-Host`, each set by `proxy_set_header` (overwriting the browser's).
    Nginx,
    /// ingress-nginx `auth-url`: `X-Original-Method` and `X-Original-URL` (absolute).
    IngressNginx,
    /// Traefik ForwardAuth: `X-Forwarded-Method`, `-Uri`, `-Host` (with `trustForwardHeader:
    /// false`, Traefik's own).
    Traefik,
    /// Envoy / Istio `ext_authz` (HTTP), Gateway API `ExternalAuth`: the call's own method,
    /// its path below `/verify` and its `Host`.
    Envoy,
}

#[derive(Debug, Clone)]
pub struct ForwardAuthConfig {
    pub listen: SocketAddr,
    pub gateway: Gateway,
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
    if r.gateway.is_none() {
        p.push("forward_auth.gateway: required: nginx, ingress-nginx, traefik or envoy (Istio and Gateway API ExternalAuth are envoy): which headers say what the original request was");
    }
    let gateway = p.one_of(
        "forward_auth.gateway",
        r.gateway,
        Gateway::Nginx,
        &[
            ("nginx", Gateway::Nginx),
            ("ingress-nginx", Gateway::IngressNginx),
            ("traefik", Gateway::Traefik),
            ("envoy", Gateway::Envoy),
        ],
    );
    Some(ForwardAuthConfig { listen, gateway })
}
