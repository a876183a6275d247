//! Secrets from the environment or from mounted files (`*_FILE`, as Kubernetes Secrets are).

use crate::crypto::{KeyError, KeyRing};
use crate::secret::ClientSecret;

pub const CLIENT_SECRET_ENV: &str = "TOKEN_HANDLER_CLIENT_SECRET";
/// The private key that signs `private_key_jwt` client assertions (PEM PKCS#8 or a JWK).
pub const CLIENT_KEY_ENV: &str = "TOKEN_HANDLER_CLIENT_KEY";
pub const COOKIE_KEYS_ENV: &str = "TOKEN_HANDLER_COOKIE_KEYS";
pub const REDIS_URL_ENV: &str = "TOKEN_HANDLER_REDIS_URL";
/// The Redis data nodes' ACL user and password (any topology).
pub const REDIS_USERNAME_ENV: &str = "TOKEN_HANDLER_REDIS_USERNAME";
pub const REDIS_PASSWORD_ENV: &str = "TOKEN_HANDLER_REDIS_PASSWORD";
/// The Sentinels' own user and password, when they require one (often not the data nodes').
pub const REDIS_SENTINEL_USERNAME_ENV: &str = "TOKEN_HANDLER_REDIS_SENTINEL_USERNAME";
pub const REDIS_SENTINEL_PASSWORD_ENV: &str = "TOKEN_HANDLER_REDIS_SENTINEL_PASSWORD";

/// Why a secret could not be read. Each names the variable (and the path), never the value:
/// the messages end up in `token-handler check` output and in logs.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("set {name} or {name}_FILE, not both")]
    Both { name: &'static str },
    #[error("{name}_FILE: cannot read {path}: {source}")]
    Unreadable {
        name: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{COOKIE_KEYS_ENV} (or {COOKIE_KEYS_ENV}_FILE) is not set: generate a key with `token-handler keygen`"
    )]
    NoCookieKeys,
    #[error("{COOKIE_KEYS_ENV}: {0}")]
    CookieKeys(#[from] KeyError),
}

/// Reads `NAME` or `NAME_FILE` (not both): `Ok(None)` when neither is set.
fn read(
    name: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, SecretError> {
    match (env(name), env(&format!("{name}_FILE"))) {
        (Some(_), Some(_)) => Err(SecretError::Both { name }),
        (Some(value), None) => Ok(Some(value.trim().to_string())),
        (None, Some(path)) => match std::fs::read_to_string(&path) {
            Ok(value) => Ok(Some(value.trim().to_string())),
            Err(source) => Err(SecretError::Unreadable { name, path, source }),
        },
        (None, None) => Ok(None),
    }
}

/// The `NAME_FILE` path, when the secret is mounted (watched for changes).
pub fn file_path(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    env(&format!("{name}_FILE")).map(Into::into)
}

/// The OAuth client secret; `Ok(None)` (a public client) when unset or empty.
pub fn client_secret(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<ClientSecret>, SecretError> {
    Ok(read(CLIENT_SECRET_ENV, env)?
        .filter(|s| !s.is_empty())
        .map(ClientSecret::new))
}

/// The cookie key ring; required, since without it no session can be sealed.
pub fn cookie_keys(env: &dyn Fn(&str) -> Option<String>) -> Result<KeyRing, SecretError> {
    let spec = read(COOKIE_KEYS_ENV, env)?.ok_or(SecretError::NoCookieKeys)?;
    Ok(KeyRing::parse(&spec)?)
}

/// A Redis URL from the environment or a mounted file (it may carry a password).
pub fn redis_url(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, SecretError> {
    optional(REDIS_URL_ENV, env)
}

/// An optional secret (`NAME` or `NAME_FILE`): `Ok(None)` when unset or empty.
pub fn optional(
    name: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, SecretError> {
    Ok(read(name, env)?.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::env_with;

    #[test]
    fn messages_name_the_variable_and_path_never_the_value() {
        let both = env_with(&[
            (CLIENT_SECRET_ENV, "s3cr3t"),
            ("TOKEN_HANDLER_CLIENT_SECRET_FILE", "/run/secret"),
        ]);
        let err = client_secret(&both).expect_err("both set");
        assert_eq!(
            err.to_string(),
            "set TOKEN_HANDLER_CLIENT_SECRET or TOKEN_HANDLER_CLIENT_SECRET_FILE, not both"
        );
        let missing = env_with(&[("TOKEN_HANDLER_REDIS_URL_FILE", "/nonexistent/redis")]);
        let err = redis_url(&missing).expect_err("unreadable");
        assert!(
            err.to_string().starts_with(
                "TOKEN_HANDLER_REDIS_URL_FILE: cannot read /nonexistent/redis: No such file"
            ),
            "{err}"
        );
        let err = cookie_keys(&env_with(&[])).expect_err("required");
        assert_eq!(
            err.to_string(),
            "TOKEN_HANDLER_COOKIE_KEYS (or TOKEN_HANDLER_COOKIE_KEYS_FILE) is not set: generate \
             a key with `token-handler keygen`"
        );
        let short = env_with(&[(COOKIE_KEYS_ENV, "k1:c2VjcmV0LWJ5dGVz")]);
        let err = cookie_keys(&short).expect_err("short key");
        assert_eq!(
            err.to_string(),
            "TOKEN_HANDLER_COOKIE_KEYS: cookie key #1: must decode to exactly 32 bytes, got 12"
        );
    }

    #[test]
    fn values_are_trimmed_and_empty_ones_are_unset() {
        let env = env_with(&[(CLIENT_SECRET_ENV, "  s3cr3t\n"), (REDIS_URL_ENV, "")]);
        let secret = client_secret(&env).expect("readable").expect("set");
        assert_eq!(secret.expose(), "s3cr3t");
        assert!(redis_url(&env).expect("readable").is_none());
        let empty = env_with(&[(CLIENT_SECRET_ENV, " ")]);
        assert!(client_secret(&empty).expect("readable").is_none());
    }
}
