//! `[idp]` client authentication: how this proxy proves who it is at the IdP (a secret, a
//! signed client assertion, a platform-minted one, or nothing), checked against the secrets and
//! key actually given.

use super::idp::Dialect;
use super::secrets;
use super::validate::Problems;
use std::path::PathBuf;
use url::Url;

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (RFC 6749 §2.3.1, `client_secret_basic`).
    Basic,
    /// Secret in the request body (`client_secret_post`; TokenIDP's `clientSecret`).
    Body,
    /// Public client: `client_id` only.
    None,
    /// A client assertion (RFC 7523 §2.2, OpenID Connect Core §9 `private_key_jwt`): signed
    /// here with the key in `TOKEN_HANDLER_CLIENT_KEY[_FILE]`, or minted by the platform and
    /// read from `idp.client_assertion_file` (workload identity). No secret at all.
    PrivateKeyJwt,
}

/// What a signed client assertion names as its audience (`aud`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAudience {
    /// The token endpoint's URL (RFC 7523 §3; every provider accepts it), also when revoking.
    TokenEndpoint,
    /// The issuer identifier (what FAPI 2.0 and RFC 7523bis ask for).
    Issuer,
}

/// The `[idp]` keys of client authentication, as written.
pub(super) struct Raw {
    pub client_auth: Option<String>,
    pub client_key_id: Option<String>,
    pub client_key_alg: Option<String>,
    pub client_assertion_file: Option<String>,
    pub client_assertion_audience: Option<String>,
}

/// Client authentication, checked.
pub(super) struct Checked {
    pub client_auth: ClientAuth,
    pub client_key_id: Option<String>,
    pub client_key_alg: Option<jsonwebtoken::Algorithm>,
    pub client_assertion_file: Option<PathBuf>,
    pub client_assertion_audience: AssertionAudience,
}

pub(super) fn client_auth(
    r: Raw,
    dialect: Dialect,
    issuer: Option<&Url>,
    has_secret: bool,
    has_key: bool,
    p: &mut Problems,
) -> Checked {
    let assertion_file = r.client_assertion_file.map(PathBuf::from);
    let key_env = secrets::CLIENT_KEY_ENV;
    let assertion = has_key || assertion_file.is_some();
    let default_auth = if assertion {
        ClientAuth::PrivateKeyJwt
    } else if has_secret {
        ClientAuth::Basic
    } else {
        ClientAuth::None
    };
    if r.client_auth.is_none() && has_secret && assertion {
        p.push(format!(
            "idp.client_auth: required when both a client secret and a client key ({key_env}) or \
             idp.client_assertion_file are given: say which one authenticates the client"
        ));
    }
    let client_auth = p.one_of(
        "idp.client_auth",
        r.client_auth,
        default_auth,
        &[
            ("basic", ClientAuth::Basic),
            ("client_secret_basic", ClientAuth::Basic),
            ("body", ClientAuth::Body),
            ("client_secret_post", ClientAuth::Body),
            ("none", ClientAuth::None),
            ("private_key_jwt", ClientAuth::PrivateKeyJwt),
        ],
    );
    match client_auth {
        ClientAuth::PrivateKeyJwt => {
            if dialect == Dialect::TokenIdp {
                p.push(
                    "idp.client_auth: private_key_jwt is not accepted by TokenIDP (its /token \
                     takes HTTP Basic, a client_secret in the body, or no secret); use the \
                     oauth2 dialect with a provider that supports it",
                );
            }
            match (has_key, &assertion_file) {
                (false, None) => p.push(format!(
                    "idp.client_auth: private_key_jwt needs a signing key in {key_env} (or \
                     {key_env}_FILE), or a platform-minted assertion in idp.client_assertion_file"
                )),
                (true, Some(_)) => p.push(format!(
                    "idp.client_assertion_file: a signing key is given too ({key_env}): one \
                     or the other"
                )),
                _ => {}
            }
        }
        other => {
            if other != ClientAuth::None && !has_secret {
                p.push(format!(
                    "idp.client_auth: {other:?} needs a client secret in {} (or {}_FILE)",
                    secrets::CLIENT_SECRET_ENV,
                    secrets::CLIENT_SECRET_ENV
                ));
            }
            if assertion {
                p.push(format!(
                    "idp.client_auth: {other:?} sends no client assertion, yet {} is given: \
                     set client_auth = \"private_key_jwt\" (or remove it)",
                    if has_key {
                        key_env
                    } else {
                        "idp.client_assertion_file"
                    }
                ));
            }
        }
    }
    if !has_key {
        for (key, given) in [
            ("client_key_id", r.client_key_id.is_some()),
            ("client_key_alg", r.client_key_alg.is_some()),
        ] {
            if given {
                p.push(format!(
                    "idp.{key}: only with a signing key in {key_env} (or {key_env}_FILE)"
                ));
            }
        }
    }
    let client_key_alg = r.client_key_alg.and_then(|name| {
        crate::client_key::parse_algorithm(&name)
            .map_err(|e| p.push(format!("idp.client_key_alg: {e}")))
            .ok()
    });
    if let Some(path) = &assertion_file {
        if let Err(e) = crate::client_key::read_assertion(path) {
            p.push(format!("idp.client_assertion_file: {e}"));
        }
    }
    let client_assertion_audience = p.one_of(
        "idp.client_assertion_audience",
        r.client_assertion_audience,
        AssertionAudience::TokenEndpoint,
        &[
            ("token_endpoint", AssertionAudience::TokenEndpoint),
            ("issuer", AssertionAudience::Issuer),
        ],
    );
    if client_assertion_audience == AssertionAudience::Issuer && issuer.is_none() {
        p.push("idp.client_assertion_audience: `issuer` needs idp.issuer");
    }
    Checked {
        client_auth,
        client_key_id: r.client_key_id,
        client_key_alg,
        client_assertion_file: assertion_file,
        client_assertion_audience,
    }
}

#[cfg(test)]
mod tests {
    use super::super::idp::{idp, tests::minimal};
    use super::super::raw;
    use super::*;
    use crate::config::validate::{checked, valid};

    #[test]
    fn private_key_jwt_is_the_default_with_a_key_or_an_assertion_file() {
        let c = valid(|p| idp(minimal("oauth2"), false, true, p));
        assert_eq!(c.client_auth, ClientAuth::PrivateKeyJwt);
        assert_eq!(
            c.client_assertion_audience,
            AssertionAudience::TokenEndpoint
        );
        let dir = std::env::temp_dir().join(format!("th-idp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("assertion.jwt");
        std::fs::write(&file, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzcGEifQ.c2ln\n").expect("write");
        let r = raw::Idp {
            client_assertion_file: Some(file.to_string_lossy().into_owned()),
            client_assertion_audience: Some("issuer".into()),
            ..minimal("oauth2")
        };
        let c = valid(|p| idp(r, false, false, p));
        assert_eq!(c.client_auth, ClientAuth::PrivateKeyJwt);
        assert_eq!(c.client_assertion_file.as_deref(), Some(file.as_path()));
        assert_eq!(c.client_assertion_audience, AssertionAudience::Issuer);
        // Explicit, with a secret still mounted (a migration): the secret is not used.
        let r = raw::Idp {
            client_auth: Some("private_key_jwt".into()),
            client_key_alg: Some("PS256".into()),
            client_key_id: Some("k2".into()),
            ..minimal("oauth2")
        };
        let c = valid(|p| idp(r, true, true, p));
        assert_eq!(c.client_key_alg, Some(jsonwebtoken::Algorithm::PS256));
        assert_eq!(c.client_key_id.as_deref(), Some("k2"));
    }

    #[test]
    fn private_key_jwt_refusals() {
        let pkjwt = |dialect: &str| raw::Idp {
            client_auth: Some("private_key_jwt".into()),
            ..minimal(dialect)
        };
        let (_, problems) = checked(|p| idp(pkjwt("tokenidp"), false, true, p));
        assert_eq!(
            problems,
            [
                "idp.client_auth: private_key_jwt is not accepted by TokenIDP (its /token takes \
              HTTP Basic, a client_secret in the body, or no secret); use the oauth2 dialect \
              with a provider that supports it"
            ]
        );
        let (_, problems) = checked(|p| idp(pkjwt("oauth2"), true, false, p));
        assert_eq!(
            problems,
            [
                "idp.client_auth: private_key_jwt needs a signing key in TOKEN_HANDLER_CLIENT_KEY \
              (or TOKEN_HANDLER_CLIENT_KEY_FILE), or a platform-minted assertion in \
              idp.client_assertion_file"
            ]
        );
        let r = raw::Idp {
            client_assertion_file: Some("/nonexistent/token".into()),
            ..pkjwt("oauth2")
        };
        let (_, problems) = checked(|p| idp(r, false, true, p));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0],
            "idp.client_assertion_file: a signing key is given too (TOKEN_HANDLER_CLIENT_KEY): \
             one or the other"
        );
        assert!(
            problems[1].starts_with("idp.client_assertion_file: cannot read /nonexistent/token"),
            "{problems:?}"
        );
        // A secret and a key, and nothing says which.
        let (_, problems) = checked(|p| idp(minimal("oauth2"), true, true, p));
        assert_eq!(
            problems,
            [
                "idp.client_auth: required when both a client secret and a client key \
              (TOKEN_HANDLER_CLIENT_KEY) or idp.client_assertion_file are given: say which one \
              authenticates the client"
            ]
        );
        let r = raw::Idp {
            client_auth: Some("basic".into()),
            client_key_id: Some("k".into()),
            client_key_alg: Some("HS256".into()),
            ..minimal("oauth2")
        };
        let (_, problems) = checked(|p| idp(r, true, false, p));
        assert_eq!(
            problems,
            [
                "idp.client_key_id: only with a signing key in TOKEN_HANDLER_CLIENT_KEY (or \
                 TOKEN_HANDLER_CLIENT_KEY_FILE)",
                "idp.client_key_alg: only with a signing key in TOKEN_HANDLER_CLIENT_KEY (or \
                 TOKEN_HANDLER_CLIENT_KEY_FILE)",
                "idp.client_key_alg: algorithm `HS256` is not one of RS256, PS256, ES256",
            ]
        );
        let r = raw::Idp {
            client_auth: Some("none".into()),
            ..minimal("oauth2")
        };
        let (_, problems) = checked(|p| idp(r, false, true, p));
        assert_eq!(
            problems,
            [
                "idp.client_auth: None sends no client assertion, yet TOKEN_HANDLER_CLIENT_KEY is \
              given: set client_auth = \"private_key_jwt\" (or remove it)"
            ]
        );
    }
}
