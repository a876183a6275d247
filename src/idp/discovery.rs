//! The IdP's endpoints: from the config, filled in from `<issuer>/.well-known/openid-configuration`.
//!
//! TokenIDP quirks: the revocation endpoint is called `revoke_token_endpoint`, there is no
//! `end_session_endpoint` (its logout lives at `<issuer>/logout`) and no PAR. Values in the
//! config always win over discovered ones.
//!
//! Pushed authorization (RFC 9126) is decided here, once: `par_endpoint` is the endpoint a
//! login pushes to, or `None` for the classic redirect.

use super::response::{field, string_field};
use crate::config::{Dialect, IdpConfig, PushedAuthorization};
use serde_json::{Map, Value};
use url::Url;

/// Resolved endpoints of the IdP.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Expected `iss` of ID tokens (when known).
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<Url>,
    pub token_endpoint: Url,
    pub revocation_endpoint: Option<Url>,
    pub end_session_endpoint: Option<Url>,
    pub jwks_uri: Option<Url>,
    /// Where logins push their authorization request (RFC 9126); `None`: the classic redirect.
    pub par_endpoint: Option<Url>,
    /// The provider advertises `require_pushed_authorization_requests` (RFC 9126 §5): it
    /// refuses classic authorization requests, so PAR is used even with `never`.
    pub par_required: bool,
}

/// Whether the config leaves endpoints to discover.
pub fn needs_discovery(config: &IdpConfig) -> bool {
    config.issuer.is_some()
        && (config.token_endpoint.is_none()
            || config.authorization_endpoint.is_none()
            || config.jwks_uri.is_none()
            || (config.pushed_authorization == PushedAuthorization::Always
                && config.pushed_authorization_request_endpoint.is_none()))
}

/// Why discovery did not give usable metadata (the proxy stays unready and retries).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no token_endpoint in the config or the discovery document")]
    NoTokenEndpoint,
    #[error(
        "idp.pushed_authorization = \"always\", but neither the config nor the discovery \
         document names a pushed_authorization_request_endpoint (RFC 9126)"
    )]
    NoParEndpoint,
    #[error("GET {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("GET {url}: HTTP {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("GET {url}: {kind}")]
    Body { url: String, kind: super::Transient },
    #[error("GET {url}: not a JSON object: {source}")]
    NotJson {
        url: String,
        source: serde_json::Error,
    },
}

/// Metadata from the config and (optionally) a discovery document; `Err` names what is missing.
pub fn resolve(
    config: &IdpConfig,
    document: Option<&Map<String, Value>>,
) -> Result<Metadata, DiscoveryError> {
    let discovered = |key: &str| -> Option<Url> {
        let doc = document?;
        Url::parse(&string_field(doc, key)?).ok()
    };
    let issuer_path = |path: &str| -> Option<Url> {
        let issuer = config.issuer.as_ref()?;
        Url::parse(&format!("{}{path}", issuer.as_str().trim_end_matches('/'))).ok()
    };
    let token_endpoint = config
        .token_endpoint
        .clone()
        .or_else(|| discovered("tokenendpoint"))
        .ok_or(DiscoveryError::NoTokenEndpoint)?;
    let tokenidp = config.dialect == Dialect::TokenIdp;
    let revocation_endpoint = config
        .revocation_endpoint
        .clone()
        .or_else(|| discovered("revocationendpoint"))
        .or_else(|| discovered("revoketokenendpoint"))
        .or_else(|| {
            if tokenidp {
                issuer_path("/revoke")
            } else {
                None
            }
        });
    let end_session_endpoint = config
        .end_session_endpoint
        .clone()
        .or_else(|| discovered("endsessionendpoint"))
        .or_else(|| {
            if tokenidp {
                issuer_path("/logout")
            } else {
                None
            }
        });
    let issuer = document
        .and_then(|d| string_field(d, "issuer"))
        .or_else(|| {
            config
                .issuer
                .as_ref()
                .map(|i| i.as_str().trim_end_matches('/').to_string())
        });
    // RFC 9126 §5: server-wide; a client registered with the same flag is not visible here.
    let par_required = !tokenidp
        && document
            .and_then(|d| field(d, "requirepushedauthorizationrequests"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let known_par = config
        .pushed_authorization_request_endpoint
        .clone()
        .or_else(|| discovered("pushedauthorizationrequestendpoint"));
    let par_endpoint = match (config.pushed_authorization, tokenidp) {
        // TokenIDP has no PAR (validation refuses `always` and an explicit endpoint with it).
        (_, true) => None,
        (PushedAuthorization::Auto, false) => known_par,
        (PushedAuthorization::Always, false) => {
            Some(known_par.ok_or(DiscoveryError::NoParEndpoint)?)
        }
        (PushedAuthorization::Never, false) => known_par.filter(|_| par_required),
    };
    Ok(Metadata {
        issuer,
        authorization_endpoint: config
            .authorization_endpoint
            .clone()
            .or_else(|| discovered("authorizationendpoint")),
        token_endpoint,
        revocation_endpoint,
        end_session_endpoint,
        jwks_uri: config.jwks_uri.clone().or_else(|| discovered("jwksuri")),
        par_endpoint,
        par_required,
    })
}

/// Fetches and parses the discovery document.
pub async fn fetch(
    http: &reqwest::Client,
    issuer: &Url,
    max_bytes: usize,
) -> Result<Map<String, Value>, DiscoveryError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    );
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| DiscoveryError::Unreachable {
            url: url.clone(),
            reason: super::response::describe(&e),
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(DiscoveryError::Status { url, status });
    }
    let body = match super::response::read_limited(response, max_bytes).await {
        Ok(body) => body,
        Err(kind) => return Err(DiscoveryError::Body { url, kind }),
    };
    serde_json::from_slice(&body).map_err(|source| DiscoveryError::NotJson { url, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientAuth;
    use std::time::Duration;

    fn config(dialect: Dialect) -> IdpConfig {
        IdpConfig {
            dialect,
            issuer: Some(Url::parse("https://idp.example.com").expect("url")),
            token_endpoint: None,
            authorization_endpoint: None,
            revocation_endpoint: None,
            end_session_endpoint: None,
            jwks_uri: None,
            client_id: "c".into(),
            client_auth: ClientAuth::None,
            client_key_id: None,
            client_key_alg: None,
            client_assertion_file: None,
            client_assertion_audience: crate::config::AssertionAudience::TokenEndpoint,
            dpop: false,
            scope: "openid".into(),
            send_scope_on_refresh: false,
            redirect_uri: "https://app.example.com/auth/callback"
                .parse()
                .expect("url"),
            post_logout_redirect_uri: None,
            extra_authorize_params: vec![],
            pushed_authorization: PushedAuthorization::Auto,
            pushed_authorization_request_endpoint: None,
            logout_id_token_hint: false,
            timeout: Duration::from_secs(1),
            max_response_bytes: 1024,
            ca_file: None,
        }
    }

    #[test]
    fn tokenidp_discovery_with_its_nonstandard_keys() {
        let doc: Map<String, Value> = serde_json::from_str(
            r#"{"issuer":"https://idp.example.com","authorization_endpoint":"https://idp.example.com/authorize",
                "token_endpoint":"https://idp.example.com/token","jwks_uri":"https://idp.example.com/.well-known/jwks.json",
                "revoke_token_endpoint":"https://idp.example.com/revoke","introspect_endpoint":"https://idp.example.com/introspect"}"#,
        )
        .expect("json");
        let c = config(Dialect::TokenIdp);
        assert!(needs_discovery(&c));
        let m = resolve(&c, Some(&doc)).expect("resolves");
        assert_eq!(
            m.revocation_endpoint.expect("revoke").as_str(),
            "https://idp.example.com/revoke"
        );
        assert_eq!(
            m.end_session_endpoint.expect("logout").as_str(),
            "https://idp.example.com/logout"
        );
        assert_eq!(m.issuer.as_deref(), Some("https://idp.example.com"));
    }

    #[test]
    fn config_wins_and_missing_token_endpoint_is_an_error() {
        let mut c = config(Dialect::OAuth2);
        c.token_endpoint = Some(Url::parse("https://other/token").expect("url"));
        let doc: Map<String, Value> =
            serde_json::from_str(r#"{"token_endpoint":"https://idp.example.com/token"}"#)
                .expect("json");
        assert_eq!(
            resolve(&c, Some(&doc)).expect("ok").token_endpoint.as_str(),
            "https://other/token"
        );
        assert!(resolve(&config(Dialect::OAuth2), None).is_err());
        assert!(resolve(&config(Dialect::OAuth2), Some(&doc))
            .expect("ok")
            .end_session_endpoint
            .is_none());
    }

    #[test]
    fn pushed_authorization_follows_the_mode_and_the_metadata() {
        let doc = |extra: &str| -> Map<String, Value> {
            serde_json::from_str(&format!(
                r#"{{"issuer":"https://idp.example.com","token_endpoint":"https://idp.example.com/token",
                    "authorization_endpoint":"https://idp.example.com/auth"{extra}}}"#
            ))
            .expect("json")
        };
        let with_par =
            doc(r#","pushed_authorization_request_endpoint":"https://idp.example.com/request""#);
        let required = doc(
            r#","pushed_authorization_request_endpoint":"https://idp.example.com/request",
               "require_pushed_authorization_requests":true"#,
        );
        let without = doc("");
        let par = |mode, explicit: Option<&str>, d: &Map<String, Value>| {
            let mut c = config(Dialect::OAuth2);
            c.pushed_authorization = mode;
            c.pushed_authorization_request_endpoint = explicit.map(|u| Url::parse(u).expect("url"));
            resolve(&c, Some(d)).map(|m| (m.par_endpoint.map(String::from), m.par_required))
        };
        let advertised = Some("https://idp.example.com/request".to_string());
        use PushedAuthorization::{Always, Auto, Never};
        assert_eq!(
            par(Auto, None, &with_par).expect("ok"),
            (advertised.clone(), false)
        );
        assert_eq!(par(Auto, None, &without).expect("ok"), (None, false));
        assert_eq!(
            par(Always, None, &with_par).expect("ok"),
            (advertised.clone(), false)
        );
        assert!(matches!(
            par(Always, None, &without),
            Err(DiscoveryError::NoParEndpoint)
        ));
        assert_eq!(par(Never, None, &with_par).expect("ok"), (None, false));
        assert_eq!(
            par(Never, None, &required).expect("ok"),
            (advertised.clone(), true),
            "the provider refuses anything else"
        );
        // The config wins over the document, and stands in for it.
        let explicit = Some("https://par.example.com/x".to_string());
        assert_eq!(
            par(Always, explicit.as_deref(), &without).expect("ok"),
            (explicit.clone(), false)
        );
        assert_eq!(
            par(Auto, explicit.as_deref(), &with_par).expect("ok"),
            (explicit, false)
        );
        // TokenIDP has no PAR, whatever a document says.
        let mut c = config(Dialect::TokenIdp);
        c.pushed_authorization = Auto;
        let m = resolve(&c, Some(&required)).expect("ok");
        assert_eq!((m.par_endpoint, m.par_required), (None, false));
        // `always` without the endpoint needs discovery even when the rest is configured.
        let mut c = config(Dialect::OAuth2);
        c.token_endpoint = Some(Url::parse("https://idp.example.com/token").expect("url"));
        c.authorization_endpoint = Some(Url::parse("https://idp.example.com/auth").expect("url"));
        c.jwks_uri = Some(Url::parse("https://idp.example.com/jwks").expect("url"));
        assert!(
            !needs_discovery(&c),
            "auto: configured endpoints are enough"
        );
        c.pushed_authorization = Always;
        assert!(needs_discovery(&c));
    }
}
