//! Raw TOML sections → typed [`Config`], collecting every problem before failing.

use super::secrets::{self, CLIENT_KEY_ENV, CLIENT_SECRET_ENV, COOKIE_KEYS_ENV};
use super::{coordination, csrf, forward_auth, idp, log, proxy, routes, server, session};
use super::{telemetry, upstream};
use super::{Config, ConfigError, Secrets};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Every section a config file may have; any other is a problem.
const SECTIONS: &[&str] = &[
    "server",
    "upstream",
    "idp",
    "session",
    "proxy",
    "csrf",
    "log",
    "coordination",
    "routes",
    "forward_auth",
    "telemetry",
];

/// What is wrong with a config so far, one line each, in the order found. Each section's
/// validation notes its problems here and goes on with a default, so that one run lists them
/// all.
#[derive(Debug, Default)]
pub(super) struct Problems(pub(super) Vec<String>);

impl Problems {
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[cfg(test)]
    pub(super) fn joined(&self) -> String {
        self.0.join("\n")
    }

    pub(super) fn push(&mut self, p: impl Into<String>) {
        self.0.push(p.into());
    }

    /// A secret's value, or `None` with its problem noted.
    pub(super) fn secret<T>(&mut self, read: Result<T, secrets::SecretError>) -> Option<T> {
        match read {
            Ok(value) => Some(value),
            Err(e) => {
                self.push(e.to_string());
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        key: &str,
        raw: Option<String>,
        default: Duration,
    ) -> Duration {
        match raw {
            None => default,
            Some(s) => humantime::parse_duration(&s).unwrap_or_else(|e| {
                self.push(format!(
                    "{key}: `{s}` is not a duration like \"30s\" or \"5m\": {e}"
                ));
                default
            }),
        }
    }

    /// As `duration`, and no shorter than `min`.
    pub(super) fn duration_at_least(
        &mut self,
        key: &str,
        raw: Option<String>,
        default: Duration,
        min: Duration,
    ) -> Duration {
        let d = self.duration(key, raw, default);
        if d < min {
            let min = humantime::format_duration(min);
            self.push(format!("{key}: must be at least {min}"));
        }
        d
    }

    pub(super) fn addr(&mut self, key: &str, raw: Option<String>, default: &str) -> SocketAddr {
        let s = raw.unwrap_or_else(|| default.to_string());
        s.parse().unwrap_or_else(|_| {
            self.push(format!(
                "{key}: `{s}` is not an address like \"0.0.0.0:8080\""
            ));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }

    pub(super) fn url(&mut self, key: &str, raw: Option<String>) -> Option<Url> {
        let s = raw?;
        match Url::parse(&s) {
            // Credentials in a URL would travel in Host headers, `Debug` output and error
            // messages; the proxy authenticates with its client secret, never with user:pass@.
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                self.push(format!(
                    "{key}: must not carry credentials (user:password@)"
                ));
                None
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Some(u),
            Ok(_) => {
                self.push(format!("{key}: `{s}` must be an http(s) URL with a host"));
                None
            }
            Err(e) => {
                self.push(format!("{key}: `{s}` is not a URL: {e}"));
                None
            }
        }
    }

    /// A CA file path, checked now so a bad file is a config problem, not a failure later.
    pub(super) fn ca_file(&mut self, key: &str, raw: Option<String>) -> Option<PathBuf> {
        let path = PathBuf::from(raw?);
        if let Err(e) = crate::tls::load_ca_file(&path) {
            self.push(format!("{key}: {e}"));
        }
        Some(path)
    }

    pub(super) fn one_of<T: Copy>(
        &mut self,
        key: &str,
        raw: Option<String>,
        default: T,
        choices: &[(&str, T)],
    ) -> T {
        let Some(s) = raw else { return default };
        match choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&s))
        {
            Some((_, v)) => *v,
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                self.push(format!("{key}: `{s}` is not one of {}", names.join(", ")));
                default
            }
        }
    }
}

/// Runs one section's validation on its own: what it built and the problems it noted.
#[cfg(test)]
pub(super) fn checked<T>(validate: impl FnOnce(&mut Problems) -> T) -> (T, Vec<String>) {
    let mut p = Problems::default();
    let built = validate(&mut p);
    (built, p.0)
}

/// Runs one section's validation, which must find nothing wrong: what it built.
#[cfg(test)]
#[track_caller]
pub(super) fn valid<T>(validate: impl FnOnce(&mut Problems) -> T) -> T {
    let (built, problems) = checked(validate);
    assert!(problems.is_empty(), "{problems:?}");
    built
}

/// An environment holding only `vars`, for tests.
#[cfg(test)]
pub(super) fn env_with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| {
        vars.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    }
}

/// One section deserialized on its own, so that a typo in it hides no other section's
/// problems; a section that does not deserialize is validated as if empty.
pub(super) fn section<T: DeserializeOwned + Default>(
    table: &toml::Table,
    name: &str,
    p: &mut Problems,
) -> T {
    match table.get(name) {
        None => T::default(),
        Some(value) => value.clone().try_into().unwrap_or_else(|e| {
            p.push(format!("[{name}]: {}", e.to_string().trim()));
            T::default()
        }),
    }
}

pub(super) fn validate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError(vec![format!("TOML syntax: {}", e.message())]))?;
    let mut p = Problems::default();
    for key in table.keys() {
        if !SECTIONS.contains(&key.as_str()) {
            p.push(format!(
                "unknown section [{key}] (known: {})",
                SECTIONS.join(", ")
            ));
        }
    }
    // This order is the order `check` lists problems in (pinned by a test): keep it.
    let server = server::server(section(&table, "server", &mut p), &mut p);
    let upstream = upstream::upstream(
        section(&table, "upstream", &mut p),
        routes::upstream_required(&table),
        &mut p,
    );
    let client_secret = p.secret(secrets::client_secret(env)).flatten();
    let client_key_text = p.secret(secrets::optional(CLIENT_KEY_ENV, env)).flatten();
    let idp = idp::idp(
        section(&table, "idp", &mut p),
        client_secret.is_some(),
        client_key_text.is_some(),
        &mut p,
    );
    let client_key = client_key_text.and_then(|text| {
        crate::client_key::ClientKey::parse(&text, idp.client_key_alg, idp.client_key_id.as_deref())
            .map_err(|e| p.push(format!("{CLIENT_KEY_ENV}: {e}")))
            .ok()
    });
    let session = session::session(section(&table, "session", &mut p), &mut p);
    let proxy = proxy::proxy(section(&table, "proxy", &mut p), &mut p);
    let csrf = csrf::csrf(section(&table, "csrf", &mut p), &mut p);
    let log = log::log(section(&table, "log", &mut p), &mut p);
    let coordination = coordination::coordination(
        section(&table, "coordination", &mut p),
        env,
        idp.timeout,
        &mut p,
    );
    let routes = routes::from_table(&table, &upstream, &session.claims, &mut p);
    let forward_auth = forward_auth::forward_auth(
        table
            .contains_key("forward_auth")
            .then(|| section(&table, "forward_auth", &mut p)),
        server.listen,
        server.admin_listen,
        &mut p,
    );
    let telemetry = telemetry::telemetry(section(&table, "telemetry", &mut p), &mut p);
    let cookie_keys = p.secret(secrets::cookie_keys(env));
    match cookie_keys {
        Some(keys) if p.0.is_empty() => Ok(Config {
            server,
            upstream,
            idp,
            session,
            proxy,
            csrf,
            log,
            coordination,
            routes,
            explicit_routes: table.contains_key("routes"),
            forward_auth,
            telemetry,
            secrets: Secrets {
                client_secret,
                client_key,
                cookie_keys: Arc::new(keys),
                client_secret_file: secrets::file_path(CLIENT_SECRET_ENV, env),
                client_key_file: secrets::file_path(CLIENT_KEY_ENV, env),
                cookie_keys_file: secrets::file_path(COOKIE_KEYS_ENV, env),
            },
        }),
        _ => Err(ConfigError(p.0)),
    }
}

#[cfg(test)]
mod tests;
