//! Secrets from the environment or from mounted files (`*_FILE`, as Kubernetes Secrets are).

use crate::crypto::KeyRing;
use crate::secret::ClientSecret;

pub const CLIENT_SECRET_ENV: &str = "TOKEN_HANDLER_CLIENT_SECRET";
pub const COOKIE_KEYS_ENV: &str = "TOKEN_HANDLER_COOKIE_KEYS";
pub const REDIS_URL_ENV: &str = "TOKEN_HANDLER_REDIS_URL";

/// Reads `NAME` or `NAME_FILE` (not both): `Ok(None)` when neither is set. Problems name the
/// variable and the path, never the value.
fn read(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, String> {
    let file_var = format!("{name}_FILE");
    match (env(name), env(&file_var)) {
        (Some(_), Some(_)) => Err(format!("set {name} or {file_var}, not both")),
        (Some(value), None) => Ok(Some(value.trim().to_string())),
        (None, Some(path)) => std::fs::read_to_string(&path)
            .map(|value| Some(value.trim().to_string()))
            .map_err(|e| format!("{file_var}: cannot read {path}: {e}")),
        (None, None) => Ok(None),
    }
}

/// The `NAME_FILE` path, when the secret is mounted (watched for changes).
pub fn file_path(name: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    env(&format!("{name}_FILE")).map(Into::into)
}

pub fn client_secret(
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<ClientSecret> {
    match read(CLIENT_SECRET_ENV, env) {
        Ok(value) => value.filter(|s| !s.is_empty()).map(ClientSecret::new),
        Err(problem) => {
            problems.push(problem);
            None
        }
    }
}

pub fn cookie_keys(
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<KeyRing> {
    let spec = match read(COOKIE_KEYS_ENV, env) {
        Ok(Some(spec)) => spec,
        Ok(None) => {
            problems.push(format!(
                "{COOKIE_KEYS_ENV} (or {COOKIE_KEYS_ENV}_FILE) is not set: generate a key with `token-handler keygen`"
            ));
            return None;
        }
        Err(problem) => {
            problems.push(problem);
            return None;
        }
    };
    match KeyRing::parse(&spec) {
        Ok(ring) => Some(ring),
        Err(e) => {
            problems.push(format!("{COOKIE_KEYS_ENV}: {e}"));
            None
        }
    }
}

/// A Redis URL from the environment or a mounted file (it may carry a password).
pub fn redis_url(
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> Option<String> {
    match read(REDIS_URL_ENV, env) {
        Ok(value) => value.filter(|s| !s.is_empty()),
        Err(problem) => {
            problems.push(problem);
            None
        }
    }
}
