//! `[coordination]`'s Redis: where it is (one URL, Sentinels, or Cluster nodes) and whom to log
//! in as. Users and passwords come from the environment or mounted files only (the TOML file
//! lands in ConfigMaps and repositories), and no problem ever quotes an address: a URL may carry
//! a password.

use super::secrets::{
    self, REDIS_PASSWORD_ENV, REDIS_SENTINEL_PASSWORD_ENV, REDIS_SENTINEL_USERNAME_ENV,
    REDIS_USERNAME_ENV,
};
use super::validate::Problems;
use crate::secret::RedisPassword;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

/// Where the coordination Redis is: exactly one of the three.
#[derive(Clone, PartialEq)]
pub enum RedisTopology {
    /// One server at a fixed address (user and password may be in the URL).
    Standalone { url: String },
    /// The primary the Sentinels know as `master`, found through them again after a failover.
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
    /// A Redis Cluster, its slots learnt from these seed nodes.
    Cluster { nodes: Vec<String> },
}

impl RedisTopology {
    /// Whether the addresses are `rediss://` (validation makes them agree).
    pub fn tls(&self) -> bool {
        let addresses = match self {
            RedisTopology::Standalone { url } => std::slice::from_ref(url),
            RedisTopology::Sentinel { sentinels, .. } => sentinels,
            RedisTopology::Cluster { nodes } => nodes,
        };
        addresses.iter().any(|a| {
            a.as_str()
                .into_connection_info()
                .is_ok_and(|i| matches!(i.addr, ConnectionAddr::TcpTls { .. }))
        })
    }
}

/// Counts and names only: an address may carry a password.
impl std::fmt::Debug for RedisTopology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisTopology::Standalone { .. } => f.write_str("Standalone { url: [redacted] }"),
            RedisTopology::Sentinel { sentinels, master } => f
                .debug_struct("Sentinel")
                .field("sentinels", &sentinels.len())
                .field("master", master)
                .finish(),
            RedisTopology::Cluster { nodes } => f
                .debug_struct("Cluster")
                .field("nodes", &nodes.len())
                .finish(),
        }
    }
}

/// An ACL user and its password (`AUTH [user] password`); the password prints redacted.
#[derive(Clone, Debug, Default)]
pub struct RedisAuth {
    pub username: Option<String>,
    pub password: Option<RedisPassword>,
}

impl RedisAuth {
    pub fn is_set(&self) -> bool {
        self.username.is_some() || self.password.is_some()
    }

    /// Logs in as this user, when one is set (else as the address says).
    pub fn apply(&self, info: &mut ConnectionInfo) {
        if let Some(password) = &self.password {
            info.redis.username.clone_from(&self.username);
            info.redis.password = Some(password.expose().to_string());
        }
    }
}

/// The data nodes' and the Sentinels' credentials, from `NAME` or `NAME_FILE`.
pub(super) fn credentials(
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> (RedisAuth, RedisAuth) {
    (
        auth(REDIS_USERNAME_ENV, REDIS_PASSWORD_ENV, env, p),
        auth(
            REDIS_SENTINEL_USERNAME_ENV,
            REDIS_SENTINEL_PASSWORD_ENV,
            env,
            p,
        ),
    )
}

fn auth(
    user_var: &'static str,
    password_var: &'static str,
    env: &dyn Fn(&str) -> Option<String>,
    p: &mut Problems,
) -> RedisAuth {
    let username = p.secret(secrets::optional(user_var, env)).flatten();
    let password = p.secret(secrets::optional(password_var, env)).flatten();
    if username.is_some() && password.is_none() {
        p.push(format!(
            "{user_var}: needs {password_var} (an ACL user logs in with a password)"
        ));
    }
    RedisAuth {
        username,
        password: password.map(RedisPassword::new),
    }
}

/// The one Redis named (`None`: coordination off, or a problem noted). `url` is `redis_url`,
/// the environment's first.
pub(super) fn topology(
    url: Option<String>,
    sentinels: Option<Vec<String>>,
    master: Option<String>,
    cluster_nodes: Option<Vec<String>>,
    p: &mut Problems,
) -> Option<RedisTopology> {
    if master.is_some() && sentinels.is_none() {
        p.push("coordination.sentinel_master: only with coordination.sentinels");
    }
    let named = [url.is_some(), sentinels.is_some(), cluster_nodes.is_some()];
    if named.iter().filter(|n| **n).count() > 1 {
        p.push(
            "coordination: name one Redis: redis_url (or TOKEN_HANDLER_REDIS_URL), sentinels or cluster_nodes, not several",
        );
        return None;
    }
    if let Some(url) = url {
        if redis::Client::open(url.as_str()).is_err() {
            p.push("coordination.redis_url: not a valid redis:// or rediss:// URL");
        }
        return Some(RedisTopology::Standalone { url });
    }
    if let Some(sentinels) = sentinels {
        let master = master.filter(|m| !m.trim().is_empty()).unwrap_or_else(|| {
            p.push("coordination.sentinel_master: required with coordination.sentinels (the name the Sentinels monitor, e.g. \"mymaster\")");
            String::new()
        });
        return Some(RedisTopology::Sentinel {
            sentinels: addresses(
                "coordination.sentinels",
                REDIS_SENTINEL_PASSWORD_ENV,
                sentinels,
                p,
            ),
            master,
        });
    }
    cluster_nodes.map(|nodes| RedisTopology::Cluster {
        nodes: addresses("coordination.cluster_nodes", REDIS_PASSWORD_ENV, nodes, p),
    })
}

/// A list of `redis://host:port` (or all `rediss://`) entries without credentials: those
/// belong in `password_var`. Problems name the entry by its index.
fn addresses(key: &str, password_var: &str, entries: Vec<String>, p: &mut Problems) -> Vec<String> {
    if entries.is_empty() {
        p.push(format!(
            "{key}: list at least one redis://host:port address"
        ));
    }
    let mut tls = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        match address(entry) {
            Ok(is_tls) => tls.push(is_tls),
            Err(Refused::Credentials) => p.push(format!(
                "{key}[{i}]: must not carry credentials (user:password@): set {password_var} (and the _USERNAME) or their _FILE"
            )),
            Err(Refused::Invalid) => p.push(format!(
                "{key}[{i}]: not a redis://host:port or rediss://host:port address"
            )),
        }
    }
    if tls.contains(&true) && tls.contains(&false) {
        p.push(format!("{key}: all redis:// or all rediss://, not both"));
    }
    entries
}

#[derive(Debug, PartialEq)]
enum Refused {
    Invalid,
    Credentials,
}

/// Whether `entry` is a TLS address; never echoed, whatever is wrong with it.
fn address(entry: &str) -> Result<bool, Refused> {
    let info = entry.into_connection_info().map_err(|_| Refused::Invalid)?;
    if info.redis.username.is_some() || info.redis.password.is_some() {
        return Err(Refused::Credentials);
    }
    match info.addr {
        ConnectionAddr::Tcp(..) => Ok(false),
        ConnectionAddr::TcpTls { .. } => Ok(true),
        ConnectionAddr::Unix(_) => Err(Refused::Invalid),
    }
}

/// Whether a standalone URL carries its own password.
pub(super) fn url_has_password(url: &str) -> bool {
    url.into_connection_info()
        .is_ok_and(|i| i.redis.password.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::checked;

    fn list(entries: &[&str]) -> Option<Vec<String>> {
        Some(entries.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn one_mode_at_a_time() {
        let (t, problems) = checked(|p| {
            topology(
                Some("redis://r:6379".into()),
                list(&["redis://s:26379"]),
                Some("mymaster".into()),
                None,
                p,
            )
        });
        assert!(t.is_none());
        assert_eq!(
            problems,
            ["coordination: name one Redis: redis_url (or TOKEN_HANDLER_REDIS_URL), sentinels or cluster_nodes, not several"]
        );
        let (t, problems) = checked(|p| topology(None, None, Some("m".into()), None, p));
        assert!(t.is_none());
        assert_eq!(
            problems,
            ["coordination.sentinel_master: only with coordination.sentinels"]
        );
    }

    #[test]
    fn sentinels_need_a_master_name_and_clean_addresses() {
        let entries = list(&[
            "redis://s0:26379",
            "rediss://:hunter2@s1:26379",
            "s2:26379",
            "rediss://s3:26379",
        ]);
        let (t, problems) = checked(|p| topology(None, entries, None, None, p));
        assert!(matches!(t, Some(RedisTopology::Sentinel { .. })));
        assert_eq!(
            problems,
            [
                "coordination.sentinel_master: required with coordination.sentinels (the name the Sentinels monitor, e.g. \"mymaster\")",
                "coordination.sentinels[1]: must not carry credentials (user:password@): set TOKEN_HANDLER_REDIS_SENTINEL_PASSWORD (and the _USERNAME) or their _FILE",
                "coordination.sentinels[2]: not a redis://host:port or rediss://host:port address",
                "coordination.sentinels: all redis:// or all rediss://, not both",
            ]
        );
        assert!(!problems.join("\n").contains("hunter2"));
    }

    #[test]
    fn cluster_nodes_are_listed_and_say_whether_they_speak_tls() {
        let nodes = list(&["rediss://r0:6379", "rediss://r1:6379"]);
        let (t, problems) = checked(|p| topology(None, None, None, nodes, p));
        assert!(problems.is_empty(), "{problems:?}");
        let t = t.expect("cluster");
        assert!(t.tls());
        assert_eq!(format!("{t:?}"), "Cluster { nodes: 2 }");
        let (_, problems) = checked(|p| topology(None, None, None, list(&[]), p));
        assert_eq!(
            problems,
            ["coordination.cluster_nodes: list at least one redis://host:port address"]
        );
    }

    #[test]
    fn an_acl_user_needs_its_password_and_neither_is_shown() {
        let env = crate::config::validate::env_with(&[
            (REDIS_USERNAME_ENV, "th"),
            (REDIS_SENTINEL_USERNAME_ENV, "watcher"),
            (REDIS_SENTINEL_PASSWORD_ENV, "hunter2"),
        ]);
        let ((data, sentinel), problems) = checked(|p| credentials(&env, p));
        assert_eq!(
            problems,
            ["TOKEN_HANDLER_REDIS_USERNAME: needs TOKEN_HANDLER_REDIS_PASSWORD (an ACL user logs in with a password)"]
        );
        assert_eq!(data.username.as_deref(), Some("th"));
        assert!(sentinel.is_set());
        assert!(!format!("{sentinel:?}").contains("hunter2"), "{sentinel:?}");
        let mut info = "redis://s:26379".into_connection_info().expect("url");
        sentinel.apply(&mut info);
        assert_eq!(info.redis.username.as_deref(), Some("watcher"));
        assert_eq!(info.redis.password.as_deref(), Some("hunter2"));
    }
}
