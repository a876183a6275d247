//! `[idp]`: the identity provider's endpoints, who this proxy is there, and what it asks for.

pub use super::client_auth::{AssertionAudience, ClientAuth};
pub use super::par::PushedAuthorization;
use super::raw;
use super::validate::Problems;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

/// Which `/token` wire format the IdP speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// TokenIDP's JSON dialect (`idp/tokenidp.rs` lists its quirks).
    TokenIdp,
    /// Standard OAuth 2.0 (RFC 6749) / OpenID Connect.
    OAuth2,
}

#[derive(Debug, Clone)]
pub struct IdpConfig {
    pub dialect: Dialect,
    pub issuer: Option<Url>,
    pub token_endpoint: Option<Url>,
    pub authorization_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
    pub end_session_endpoint: Option<Url>,
    pub jwks_uri: Option<Url>,
    pub client_id: String,
    pub client_auth: ClientAuth,
    /// The `kid` of the assertions' signing key when the key has none of its own (a PEM).
    pub client_key_id: Option<String>,
    /// The assertions' algorithm (else the JWK's `alg`, else RS256 or ES256 by key type).
    pub client_key_alg: Option<jsonwebtoken::Algorithm>,
    /// A client assertion minted by the platform (a Kubernetes projected ServiceAccount token),
    /// re-read before each use.
    pub client_assertion_file: Option<PathBuf>,
    pub client_assertion_audience: AssertionAudience,
    pub scope: String,
    pub send_scope_on_refresh: bool,
    /// This proxy's `/auth/callback` as registered at the IdP; its origin is the proxy's
    /// public origin (post-login `return_to` must stay on it).
    pub redirect_uri: Url,
    pub post_logout_redirect_uri: Option<String>,
    pub extra_authorize_params: Vec<(String, String)>,
    pub pushed_authorization: PushedAuthorization,
    /// The PAR endpoint, for providers configured without discovery.
    pub pushed_authorization_request_endpoint: Option<Url>,
    /// Send `id_token_hint` (the ID token, in a URL) to the end-session endpoint. Off by
    /// default: it puts a token in the browser and a URL; `client_id` identifies us instead.
    pub logout_id_token_hint: bool,
    /// DPoP (RFC 9449): a key per session, tokens bound to it, proofs on every call.
    pub dpop: bool,
    pub timeout: Duration,
    pub max_response_bytes: usize,
    /// Extra CA certificates (PEM) for the IdP.
    pub ca_file: Option<PathBuf>,
}

/// Authorize parameters the proxy sets itself; `extra_authorize_params` may not override them.
const RESERVED_AUTHORIZE_PARAMS: &[&str] = &[
    "client_id",
    "dpop_jkt",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    // With PAR, the browser's only other parameter.
    "request_uri",
];

pub(super) fn idp(r: raw::Idp, has_secret: bool, has_key: bool, p: &mut Problems) -> IdpConfig {
    let dialect = match r.dialect.as_deref() {
        None => {
            p.push("idp.dialect: required, \"tokenidp\" or \"oauth2\"");
            Dialect::OAuth2
        }
        Some(_) => p.one_of(
            "idp.dialect",
            r.dialect,
            Dialect::OAuth2,
            &[("tokenidp", Dialect::TokenIdp), ("oauth2", Dialect::OAuth2)],
        ),
    };
    let issuer = p.url("idp.issuer", r.issuer);
    let token_endpoint = p.url("idp.token_endpoint", r.token_endpoint);
    if issuer.is_none() && token_endpoint.is_none() {
        p.push("idp.issuer: required unless every endpoint is given (endpoints left out are discovered from it)");
    }
    let client_id = r.client_id.unwrap_or_default();
    if client_id.is_empty() {
        p.push("idp.client_id: required");
    }
    let auth = super::client_auth::client_auth(
        super::client_auth::Raw {
            client_auth: r.client_auth,
            client_key_id: r.client_key_id,
            client_key_alg: r.client_key_alg,
            client_assertion_file: r.client_assertion_file,
            client_assertion_audience: r.client_assertion_audience,
        },
        dialect,
        issuer.as_ref(),
        has_secret,
        has_key,
        p,
    );
    let scope = r
        .scope
        .unwrap_or_else(|| "openid profile email offline_access".to_string());
    let mut extra = Vec::new();
    for (k, v) in r.extra_authorize_params.unwrap_or_default() {
        if RESERVED_AUTHORIZE_PARAMS.contains(&k.as_str()) {
            p.push(format!(
                "idp.extra_authorize_params: `{k}` is set by the proxy itself"
            ));
        }
        match v {
            toml::Value::String(s) => extra.push((k, s)),
            _ => p.push(format!("idp.extra_authorize_params.{k}: must be a string")),
        }
    }
    // Required: derived from the request's Host it would be attacker-chosen and always
    // http://, even behind TLS.
    let given = r.redirect_uri.is_some();
    let redirect_uri = match p.url("idp.redirect_uri", r.redirect_uri) {
        Some(url) => url,
        None => {
            if !given {
                p.push("idp.redirect_uri: required: this proxy's callback as registered at the IdP, like \"https://app.example.com/auth/callback\"");
            }
            Url::parse("https://redirect-uri.invalid/auth/callback").expect("static URL")
        }
    };
    let dpop = r.dpop.unwrap_or(false);
    if dpop && dialect == Dialect::TokenIdp {
        p.push(
            "idp.dpop: TokenIDP issues Bearer tokens only (its /token takes no DPoP proof); use \
             the oauth2 dialect with a provider that supports DPoP",
        );
    }
    let (pushed_authorization, pushed_authorization_request_endpoint) = super::par::pushed(
        dialect,
        issuer.is_some(),
        r.pushed_authorization,
        r.pushed_authorization_request_endpoint,
        p,
    );
    let max_response_bytes = r.max_response_bytes.unwrap_or(256 * 1024);
    if max_response_bytes < 1024 {
        p.push("idp.max_response_bytes: must be at least 1024");
    }
    IdpConfig {
        dialect,
        issuer,
        token_endpoint,
        authorization_endpoint: p.url("idp.authorization_endpoint", r.authorization_endpoint),
        revocation_endpoint: p.url("idp.revocation_endpoint", r.revocation_endpoint),
        end_session_endpoint: p.url("idp.end_session_endpoint", r.end_session_endpoint),
        jwks_uri: p.url("idp.jwks_uri", r.jwks_uri),
        client_id,
        client_auth: auth.client_auth,
        client_key_id: auth.client_key_id,
        client_key_alg: auth.client_key_alg,
        client_assertion_file: auth.client_assertion_file,
        client_assertion_audience: auth.client_assertion_audience,
        scope,
        // The TokenIDP guide sends the scope with every refresh; RFC 6749 §6 makes it optional.
        send_scope_on_refresh: r
            .send_scope_on_refresh
            .unwrap_or(dialect == Dialect::TokenIdp),
        redirect_uri,
        post_logout_redirect_uri: r.post_logout_redirect_uri,
        extra_authorize_params: extra,
        pushed_authorization,
        pushed_authorization_request_endpoint,
        logout_id_token_hint: r.logout_id_token_hint.unwrap_or(false),
        dpop,
        timeout: p.duration("idp.timeout", r.timeout, Duration::from_secs(10)),
        max_response_bytes,
        ca_file: p.ca_file("idp.ca_file", r.ca_file),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::validate::{checked, valid};

    /// The least an `[idp]` section needs.
    pub(in crate::config) fn minimal(dialect: &str) -> raw::Idp {
        raw::Idp {
            dialect: Some(dialect.into()),
            issuer: Some("https://idp.example.com".into()),
            client_id: Some("spa".into()),
            redirect_uri: Some("https://app.example.com/auth/callback".into()),
            ..raw::Idp::default()
        }
    }

    #[test]
    fn defaults_follow_the_dialect_and_the_secret() {
        let c = valid(|p| idp(minimal("tokenidp"), false, false, p));
        assert_eq!(c.dialect, Dialect::TokenIdp);
        assert_eq!(
            c.client_auth,
            ClientAuth::None,
            "no secret: a public client"
        );
        assert!(c.send_scope_on_refresh, "TokenIDP guide sends scope");
        assert_eq!(c.scope, "openid profile email offline_access");
        assert!(!c.logout_id_token_hint);
        assert!(c.extra_authorize_params.is_empty());
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.max_response_bytes, 256 * 1024);
        assert!(c.token_endpoint.is_none(), "discovered from the issuer");

        let c = valid(|p| idp(minimal("OAuth2"), true, false, p));
        assert_eq!(c.dialect, Dialect::OAuth2, "names match in any case");
        assert_eq!(
            c.client_auth,
            ClientAuth::Basic,
            "a secret defaults to Basic"
        );
        assert!(!c.send_scope_on_refresh, "optional in RFC 6749 §6");
    }

    #[test]
    fn the_issuer_may_be_left_out_when_endpoints_are_given() {
        let r = raw::Idp {
            issuer: None,
            token_endpoint: Some("https://idp.example.com/token".into()),
            client_auth: Some("client_secret_post".into()),
            ..minimal("oauth2")
        };
        let c = valid(|p| idp(r, true, false, p));
        assert_eq!(c.client_auth, ClientAuth::Body);
    }

    #[test]
    fn required_keys_are_named() {
        let (_, problems) = checked(|p| idp(raw::Idp::default(), false, false, p));
        assert_eq!(
            problems,
            [
                "idp.dialect: required, \"tokenidp\" or \"oauth2\"",
                "idp.issuer: required unless every endpoint is given (endpoints left out are \
                 discovered from it)",
                "idp.client_id: required",
                "idp.redirect_uri: required: this proxy's callback as registered at the IdP, like \
                 \"https://app.example.com/auth/callback\"",
            ]
        );
    }

    #[test]
    fn refusals_name_the_key_and_the_value() {
        let mut extra = toml::Table::new();
        extra.insert("prompt".into(), "consent".into());
        extra.insert("state".into(), "x".into());
        extra.insert("max_age".into(), 3.into());
        let r = raw::Idp {
            dialect: Some("saml".into()),
            client_auth: Some("jwt".into()),
            extra_authorize_params: Some(extra),
            max_response_bytes: Some(1023),
            ..minimal("oauth2")
        };
        let (_, problems) = checked(|p| idp(r, false, false, p));
        assert_eq!(
            problems,
            [
                "idp.dialect: `saml` is not one of tokenidp, oauth2",
                "idp.client_auth: `jwt` is not one of basic, client_secret_basic, body, \
                 client_secret_post, none, private_key_jwt",
                "idp.extra_authorize_params.max_age: must be a string",
                "idp.extra_authorize_params: `state` is set by the proxy itself",
                "idp.max_response_bytes: must be at least 1024",
            ]
        );

        let r = raw::Idp {
            client_auth: Some("basic".into()),
            ..minimal("oauth2")
        };
        let (_, problems) = checked(|p| idp(r, false, false, p));
        assert_eq!(
            problems,
            [
                "idp.client_auth: Basic needs a client secret in TOKEN_HANDLER_CLIENT_SECRET (or \
              TOKEN_HANDLER_CLIENT_SECRET_FILE)"
            ]
        );
    }

    #[test]
    fn extra_authorize_params_are_kept_as_given() {
        let mut extra = toml::Table::new();
        extra.insert("prompt".into(), "consent".into());
        let r = raw::Idp {
            extra_authorize_params: Some(extra),
            ..minimal("oauth2")
        };
        let c = valid(|p| idp(r, false, false, p));
        assert_eq!(
            c.extra_authorize_params,
            [("prompt".to_string(), "consent".to_string())]
        );
    }
}
