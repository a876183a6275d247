//! What `token-handler check` reports of a configuration that loads: the cookie keys' roles,
//! when logins use PAR, the client authentication in force, and the kind of tokens.

use super::Config;

/// The report's body, after "FILE: OK": one line.
pub fn summary(config: &Config) -> String {
    // Which key seals matters during a rotation across pods (README: "Key rotation").
    let roles: Vec<String> = config
        .secrets
        .cookie_keys
        .roles()
        .iter()
        .map(|(kid, role)| format!("{kid} {role}"))
        .collect();
    let tokens = if config.idp.dpop {
        "DPoP-bound (ES256 key per session)"
    } else {
        "Bearer"
    };
    format!(
        "cookie keys: {}; pushed authorization requests: {}; client authentication: {}; \
         tokens: {tokens}",
        roles.join(", "),
        pushed_authorization(config),
        client_authentication(config)
    )
}

/// Which client authentication is in force, for `check` (what an operator migrating away from
/// a client secret wants to see confirmed).
fn client_authentication(config: &Config) -> String {
    use super::{ClientAuth, CLIENT_KEY_ENV, CLIENT_SECRET_ENV};
    let idp = &config.idp;
    let secret_unused = if config.secrets.client_secret.is_some() {
        format!("; the client secret in {CLIENT_SECRET_ENV} is not used")
    } else {
        String::new()
    };
    match idp.client_auth {
        ClientAuth::None => "none (a public client)".to_string(),
        ClientAuth::Basic => "client_secret_basic".to_string(),
        ClientAuth::Body => "client_secret_post".to_string(),
        ClientAuth::PrivateKeyJwt => match (&idp.client_assertion_file, &config.secrets.client_key) {
            (Some(path), _) => {
                let expiry = crate::client_key::read_assertion(path)
                    .ok()
                    .and_then(|a| crate::client_key::assertion_expiry(&a));
                let now = crate::refresh::unix_now();
                let expiry = match expiry {
                    Some(exp) if exp > now => format!(", expires in {} s", exp - now),
                    Some(_) => ", EXPIRED now: the platform has not renewed it".to_string(),
                    None => String::new(),
                };
                format!(
                    "private_key_jwt with the platform's assertion from {}{expiry}{secret_unused}",
                    path.display()
                )
            }
            (None, Some(key)) => format!(
                "private_key_jwt signed {:?} with the key in {CLIENT_KEY_ENV} (kid {}){secret_unused}",
                key.alg(),
                key.kid().unwrap_or("none")
            ),
            (None, None) => "private_key_jwt".to_string(),
        },
    }
}

/// When logins use PAR (RFC 9126), as far as the config tells: discovery may add the endpoint.
fn pushed_authorization(config: &Config) -> String {
    use super::{Dialect, PushedAuthorization};
    let idp = &config.idp;
    let endpoint = idp.pushed_authorization_request_endpoint.as_ref();
    if idp.dialect == Dialect::TokenIdp {
        return "none (TokenIDP has no PAR endpoint)".to_string();
    }
    match (idp.pushed_authorization, endpoint) {
        (PushedAuthorization::Never, _) => {
            "never (unless the IdP advertises that it requires them)".to_string()
        }
        (PushedAuthorization::Auto, None) if crate::idp::needs_discovery(idp) => {
            "when the IdP's discovery document advertises its endpoint".to_string()
        }
        (PushedAuthorization::Auto, None) => {
            "none (no endpoint configured, and every other one is: nothing is discovered)"
                .to_string()
        }
        (PushedAuthorization::Auto, Some(url)) => format!("yes, at {url}"),
        (PushedAuthorization::Always, None) => {
            "always, at the endpoint discovery must advertise".to_string()
        }
        (PushedAuthorization::Always, Some(url)) => format!("always, at {url}"),
    }
}
