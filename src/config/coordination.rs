//! `[coordination]`: the Redis that lets replicas share one refresh per session (optional).

use super::raw;
use super::redis_nodes::{self, RedisAuth, RedisTopology};
use super::secrets::{self, REDIS_PASSWORD_ENV, REDIS_SENTINEL_PASSWORD_ENV};
use super::validate::Problems;
use std::path::PathBuf;
use std::time::Duration;

/// Cross-replica refresh coordination on Redis (optional).
#[derive(Clone, Debug)]
pub struct CoordinationConfig {
    /// Standalone (`redis_url`), Sentinel or Cluster; `rediss://` for TLS. Never logged.
    pub topology: RedisTopology,
    /// The data nodes' ACL user and password, from the environment (standalone: or the URL).
    pub auth: RedisAuth,
    /// The Sentinels' own, when they require one.
    pub sentinel_auth: RedisAuth,
    /// Trust roots for `rediss://` instead of the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Lease on one session's refresh: longer than `idp.timeout` (so it outlives the `/token`
    /// call it protects), and renewed while the call runs.
    pub lease_ttl: Duration,
    /// Longest a replica waits for another replica's refresh before answering 503.
    pub wait_timeout: Duration,
    /// Longest one Redis operation may take before this replica falls back to per-process
    /// behaviour.
    pub operation_timeout: Duration,
    /// How often each replica reads the ends recorded by the others (see `ended::shared`):
    /// the longest an ended session may still be served by another replica, plus a round trip.
    pub ended_sync_interval: Duration,
}

pub(super) fn coordination(
    r: raw::Coordination,
    env: &dyn Fn(&str) -> Option<String>,
    idp_timeout: Duration,
    p: &mut Problems,
) -> Option<CoordinationConfig> {
    // The environment (a mounted Secret) wins: a URL with a password belongs there.
    let url = p.secret(secrets::redis_url(env)).flatten().or(r.redis_url);
    let (auth, sentinel_auth) = redis_nodes::credentials(env, p);
    let named = url.is_some() || r.sentinels.is_some() || r.cluster_nodes.is_some();
    let topology = redis_nodes::topology(url, r.sentinels, r.sentinel_master, r.cluster_nodes, p);
    let ca_file = p.ca_file("coordination.ca_file", r.ca_file);
    let Some(topology) = topology else {
        for (var, set) in [
            (REDIS_PASSWORD_ENV, auth.is_set()),
            (REDIS_SENTINEL_PASSWORD_ENV, sentinel_auth.is_set()),
        ] {
            if set && !named {
                p.push(format!("{var}: set, but [coordination] names no Redis"));
            }
        }
        return None;
    };
    check_together(&topology, &auth, &sentinel_auth, ca_file.is_some(), p);
    // The lease must outlive the `/token` call it protects, by construction: a renewal that
    // Redis answers late must not hand it to another replica while the call still runs.
    let lease_ttl = p.duration(
        "coordination.lease_ttl",
        r.lease_ttl,
        idp_timeout + Duration::from_secs(5),
    );
    if lease_ttl < idp_timeout + Duration::from_secs(1) {
        p.push(format!(
            "coordination.lease_ttl: must be at least idp.timeout + 1s ({}), so that the lease outlives the /token call it protects",
            humantime::format_duration(idp_timeout + Duration::from_secs(1))
        ));
    }
    let ended_sync_interval = p.duration(
        "coordination.ended_sync_interval",
        r.ended_sync_interval,
        Duration::from_millis(100),
    );
    if !(Duration::from_millis(10)..=Duration::from_secs(60)).contains(&ended_sync_interval) {
        p.push("coordination.ended_sync_interval: must be between 10ms and 60s");
    }
    Some(CoordinationConfig {
        topology,
        auth,
        sentinel_auth,
        ca_file,
        lease_ttl,
        wait_timeout: p.duration(
            "coordination.wait_timeout",
            r.wait_timeout,
            idp_timeout + Duration::from_secs(2),
        ),
        operation_timeout: p.duration(
            "coordination.operation_timeout",
            r.operation_timeout,
            Duration::from_millis(250),
        ),
        ended_sync_interval,
    })
}

/// What each setting means only with some topology.
fn check_together(
    topology: &RedisTopology,
    auth: &RedisAuth,
    sentinel_auth: &RedisAuth,
    ca_file: bool,
    p: &mut Problems,
) {
    if let RedisTopology::Standalone { url } = topology {
        if auth.is_set() && redis_nodes::url_has_password(url) {
            p.push(format!(
                "{REDIS_PASSWORD_ENV}: the Redis URL carries a password already: set one or the other"
            ));
        }
    }
    let sentinels = matches!(topology, RedisTopology::Sentinel { .. });
    if sentinel_auth.is_set() && !sentinels {
        p.push(format!(
            "{REDIS_SENTINEL_PASSWORD_ENV}: set, but coordination.sentinels is not"
        ));
    }
    if ca_file && !topology.tls() {
        p.push("coordination.ca_file: the Redis addresses are redis://, not rediss:// (TLS)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::{checked, valid};

    const IDP_TIMEOUT: Duration = Duration::from_secs(10);

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn with_url(url: &str) -> raw::Coordination {
        raw::Coordination {
            redis_url: Some(url.into()),
            ..raw::Coordination::default()
        }
    }

    #[test]
    fn off_without_a_url() {
        let c = valid(|p| coordination(raw::Coordination::default(), &no_env, IDP_TIMEOUT, p));
        assert!(c.is_none());
    }

    #[test]
    fn defaults_wait_a_little_longer_than_one_idp_call() {
        let r = with_url("redis://redis:6379/0");
        let c = valid(|p| coordination(r, &no_env, IDP_TIMEOUT, p)).expect("on");
        assert_eq!(
            c.topology,
            RedisTopology::Standalone {
                url: "redis://redis:6379/0".into()
            }
        );
        assert_eq!(c.lease_ttl, Duration::from_secs(15), "idp.timeout + 5s");
        assert_eq!(c.wait_timeout, Duration::from_secs(12));
        assert_eq!(c.operation_timeout, Duration::from_millis(250));
    }

    #[test]
    fn the_environment_wins_and_the_url_is_never_shown() {
        let env = |k: &str| {
            (k == secrets::REDIS_URL_ENV).then(|| "rediss://:hunter2@redis:6380".to_string())
        };
        let r = with_url("redis://redis:6379/0");
        let c = valid(|p| coordination(r, &env, IDP_TIMEOUT, p)).expect("on");
        assert_eq!(
            c.topology,
            RedisTopology::Standalone {
                url: "rediss://:hunter2@redis:6380".into()
            }
        );
        assert!(!format!("{c:?}").contains("hunter2"), "{c:?}");
    }

    #[test]
    fn refusals_name_the_key_never_the_url() {
        let r = raw::Coordination {
            lease_ttl: Some("10s".into()),
            wait_timeout: Some("forever".into()),
            operation_timeout: Some("1 blink".into()),
            ..with_url("http://user:hunter2@redis:6379")
        };
        let (_, problems) = checked(|p| coordination(r, &no_env, IDP_TIMEOUT, p));
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert_eq!(
            problems[0],
            "coordination.redis_url: not a valid redis:// or rediss:// URL"
        );
        assert_eq!(
            problems[1],
            "coordination.lease_ttl: must be at least idp.timeout + 1s (11s), so that the lease outlives the /token call it protects"
        );
        assert!(problems[2].starts_with("coordination.wait_timeout: `forever` is not a duration"));
        assert!(problems[3].starts_with("coordination.operation_timeout: `1 blink`"));
        assert!(!problems.join("\n").contains("hunter2"), "{problems:?}");

        let both = |k: &str| {
            k.starts_with(secrets::REDIS_URL_ENV)
                .then(|| "x".to_string())
        };
        let (c, problems) =
            checked(|p| coordination(raw::Coordination::default(), &both, IDP_TIMEOUT, p));
        assert!(c.is_none());
        assert_eq!(
            problems,
            ["set TOKEN_HANDLER_REDIS_URL or TOKEN_HANDLER_REDIS_URL_FILE, not both"]
        );
    }

    #[test]
    fn sentinels_with_credentials_from_the_environment_never_shown() {
        let r = raw::Coordination {
            sentinels: Some(vec!["redis://s0:26379".into(), "redis://s1:26379".into()]),
            sentinel_master: Some("mymaster".into()),
            ..raw::Coordination::default()
        };
        let env = crate::config::validate::env_with(&[
            (secrets::REDIS_USERNAME_ENV, "token-handler"),
            (REDIS_PASSWORD_ENV, "hunter2"),
            (REDIS_SENTINEL_PASSWORD_ENV, "swordfish"),
        ]);
        let c = valid(|p| coordination(r, &env, IDP_TIMEOUT, p)).expect("on");
        assert_eq!(c.auth.username.as_deref(), Some("token-handler"));
        assert_eq!(
            c.auth.password.as_ref().map(|p| p.expose()),
            Some("hunter2")
        );
        assert_eq!(
            c.sentinel_auth.password.as_ref().map(|p| p.expose()),
            Some("swordfish")
        );
        let shown = format!("{c:?}");
        assert!(
            shown.contains("Sentinel { sentinels: 2, master: \"mymaster\" }"),
            "{shown}"
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("swordfish"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_fit_the_topology() {
        let env = crate::config::validate::env_with(&[
            (REDIS_PASSWORD_ENV, "hunter2"),
            (REDIS_SENTINEL_PASSWORD_ENV, "swordfish"),
        ]);
        let (c, problems) =
            checked(|p| coordination(with_url("redis://:pw@redis:6379"), &env, IDP_TIMEOUT, p));
        assert!(c.is_some());
        assert_eq!(
            problems,
            [
                "TOKEN_HANDLER_REDIS_PASSWORD: the Redis URL carries a password already: set one or the other",
                "TOKEN_HANDLER_REDIS_SENTINEL_PASSWORD: set, but coordination.sentinels is not",
            ]
        );
        let (c, problems) =
            checked(|p| coordination(raw::Coordination::default(), &env, IDP_TIMEOUT, p));
        assert!(c.is_none());
        assert_eq!(
            problems,
            [
                "TOKEN_HANDLER_REDIS_PASSWORD: set, but [coordination] names no Redis",
                "TOKEN_HANDLER_REDIS_SENTINEL_PASSWORD: set, but [coordination] names no Redis",
            ]
        );
        let cluster = RedisTopology::Cluster {
            nodes: vec!["redis://r0:6379".into()],
        };
        let (_, problems) = checked(|p| {
            check_together(
                &cluster,
                &RedisAuth::default(),
                &RedisAuth::default(),
                true,
                p,
            )
        });
        assert_eq!(
            problems,
            ["coordination.ca_file: the Redis addresses are redis://, not rediss:// (TLS)"]
        );
    }
}
