//! `[idp]` pushed authorization requests (RFC 9126): whether logins push their parameters to
//! the IdP first, and where, checked against the dialect and what discovery could tell.

use super::idp::Dialect;
use super::validate::Problems;
use url::Url;

/// Whether a login pushes its authorization request to the IdP first (RFC 9126, PAR) and sends
/// the browser with only `client_id` and `request_uri`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushedAuthorization {
    /// When the endpoint is known: configured, or advertised by discovery
    /// (`pushed_authorization_request_endpoint`).
    Auto,
    /// Always: without an endpoint the proxy is not ready.
    Always,
    /// Never (the classic redirect), unless the provider advertises
    /// `require_pushed_authorization_requests`: then a classic request could only fail.
    Never,
}

/// `idp.pushed_authorization` and its endpoint, checked against the dialect and what can be
/// discovered. What only discovery can tell (an `always` provider without the endpoint) keeps
/// the proxy unready instead (`idp/discovery.rs`).
pub(super) fn pushed(
    dialect: Dialect,
    has_issuer: bool,
    mode: Option<String>,
    endpoint: Option<String>,
    p: &mut Problems,
) -> (PushedAuthorization, Option<Url>) {
    let mode = p.one_of(
        "idp.pushed_authorization",
        mode,
        PushedAuthorization::Auto,
        &[
            ("auto", PushedAuthorization::Auto),
            ("always", PushedAuthorization::Always),
            ("never", PushedAuthorization::Never),
        ],
    );
    let endpoint = p.url("idp.pushed_authorization_request_endpoint", endpoint);
    if dialect == Dialect::TokenIdp {
        // shared/tokenidp-protocol.md: /authorize takes its parameters in the URL only.
        if mode == PushedAuthorization::Always {
            p.push(
                "idp.pushed_authorization: \"always\" is not possible with TokenIDP: it has no \
                 pushed authorization request endpoint (RFC 9126); use \"auto\" or \"never\"",
            );
        }
        if endpoint.is_some() {
            p.push("idp.pushed_authorization_request_endpoint: TokenIDP has none (RFC 9126)");
        }
    }
    match (mode, &endpoint) {
        (PushedAuthorization::Always, None) if !has_issuer => p.push(
            "idp.pushed_authorization: \"always\" needs \
             idp.pushed_authorization_request_endpoint, or idp.issuer to discover it from",
        ),
        (PushedAuthorization::Never, Some(_)) => p.push(
            "idp.pushed_authorization_request_endpoint: unused with pushed_authorization = \
             \"never\" (remove one of them)",
        ),
        _ => {}
    }
    (mode, endpoint)
}

#[cfg(test)]
mod tests {
    use super::super::idp::{idp, tests::minimal};
    use super::super::raw;
    use super::*;
    use crate::config::validate::{checked, valid};

    #[test]
    fn pushed_authorization_defaults_to_auto_and_is_checked() {
        let c = valid(|p| idp(minimal("oauth2"), false, false, p));
        assert_eq!(c.pushed_authorization, PushedAuthorization::Auto);
        assert!(c.pushed_authorization_request_endpoint.is_none());
        let c = valid(|p| idp(minimal("tokenidp"), false, false, p));
        assert_eq!(
            c.pushed_authorization,
            PushedAuthorization::Auto,
            "uses nothing"
        );
        let r = raw::Idp {
            issuer: None,
            token_endpoint: Some("https://idp.example.com/token".into()),
            pushed_authorization: Some("always".into()),
            pushed_authorization_request_endpoint: Some("https://idp.example.com/par".into()),
            ..minimal("oauth2")
        };
        let c = valid(|p| idp(r, false, false, p));
        assert_eq!(c.pushed_authorization, PushedAuthorization::Always);
        assert_eq!(
            c.pushed_authorization_request_endpoint.map(String::from),
            Some("https://idp.example.com/par".to_string())
        );

        let refused = |dialect: &str, issuer: bool, mode: &str, endpoint: bool| {
            let r = raw::Idp {
                issuer: issuer.then(|| "https://idp.example.com".into()),
                token_endpoint: Some("https://idp.example.com/token".into()),
                pushed_authorization: Some(mode.into()),
                pushed_authorization_request_endpoint: endpoint
                    .then(|| "https://idp.example.com/par".into()),
                ..minimal(dialect)
            };
            checked(|p| idp(r, false, false, p)).1
        };
        assert_eq!(
            refused("tokenidp", true, "always", true),
            [
                "idp.pushed_authorization: \"always\" is not possible with TokenIDP: it has no \
                 pushed authorization request endpoint (RFC 9126); use \"auto\" or \"never\"",
                "idp.pushed_authorization_request_endpoint: TokenIDP has none (RFC 9126)",
            ]
        );
        assert_eq!(
            refused("oauth2", false, "always", false),
            ["idp.pushed_authorization: \"always\" needs \
              idp.pushed_authorization_request_endpoint, or idp.issuer to discover it from"]
        );
        assert!(
            refused("oauth2", true, "always", false).is_empty(),
            "discovered"
        );
        assert_eq!(
            refused("oauth2", true, "never", true),
            [
                "idp.pushed_authorization_request_endpoint: unused with pushed_authorization = \
              \"never\" (remove one of them)"
            ]
        );
        assert_eq!(
            refused("oauth2", true, "sometimes", false),
            ["idp.pushed_authorization: `sometimes` is not one of auto, always, never"]
        );
    }
}
