//! `[coordination]`: the Redis that lets replicas share one refresh per session (optional).

use super::raw;
use super::secrets;
use super::validate::Problems;
use std::time::Duration;

/// Cross-replica refresh coordination on Redis (optional).
#[derive(Clone)]
pub struct CoordinationConfig {
    /// `redis://` or `rediss://` (TLS), user and password in the URL. Never logged.
    pub redis_url: String,
    /// Lease on one session's refresh: longer than `idp.timeout` (so it outlives the `/token`
    /// call it protects), and renewed while the call runs.
    pub lease_ttl: Duration,
    /// Longest a replica waits for another replica's refresh before answering 503.
    pub wait_timeout: Duration,
    /// Longest one Redis operation may take before this replica falls back to per-process
    /// behaviour.
    pub operation_timeout: Duration,
}

impl std::fmt::Debug for CoordinationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinationConfig")
            .field("redis_url", &"[redacted]")
            .field("lease_ttl", &self.lease_ttl)
            .field("wait_timeout", &self.wait_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

pub(super) fn coordination(
    r: raw::Coordination,
    env: &dyn Fn(&str) -> Option<String>,
    idp_timeout: Duration,
    p: &mut Problems,
) -> Option<CoordinationConfig> {
    // The environment (a mounted Secret) wins: a URL with a password belongs there.
    let url = p
        .secret(secrets::redis_url(env))
        .flatten()
        .or(r.redis_url)?;
    if redis::Client::open(url.as_str()).is_err() {
        // Never echo the URL: it may carry a password.
        p.push("coordination.redis_url: not a valid redis:// or rediss:// URL");
    }
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
    Some(CoordinationConfig {
        redis_url: url,
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
    })
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
        assert_eq!(c.redis_url, "redis://redis:6379/0");
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
        assert_eq!(c.redis_url, "rediss://:hunter2@redis:6380");
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
}
