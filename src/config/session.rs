//! `[session]`: the session cookie's name and attributes, its lifetime, and the refresh windows.

use super::raw;
use super::validate::Problems;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Full cookie name, `__Host-` prefix included when enabled.
    pub cookie_name: String,
    pub secure: bool,
    pub same_site: SameSite,
    /// Absolute session lifetime from login; bounds the cookie's Max-Age.
    pub lifetime: Duration,
    /// Refresh this long before the access token expires.
    pub refresh_skew: Duration,
    /// After a refresh, the old cookie is still honoured (with the new tokens) this long.
    pub rotation_grace: Duration,
    /// After the grace window, a rotated refresh token is remembered this long so a replay is
    /// refused locally instead of being spent at the IdP (which may revoke the whole grant).
    pub reuse_window: Duration,
    /// Cap on remembered rotations (memory bound).
    pub max_tracked_rotations: usize,
    /// Cap on remembered logged-out sessions (memory bound; see `ended`).
    pub max_ended_sessions: usize,
    /// ID-token claims copied into the session (and shown by `/auth/session`).
    pub claims: Vec<String>,
    /// A session unused this long is ended (off: `None`).
    pub idle_timeout: Option<Duration>,
    /// The cookie's last-use time is re-sealed at most this often (with `idle_timeout`).
    pub idle_touch_interval: Duration,
}

pub(super) fn session(r: raw::Session, p: &mut Problems) -> SessionConfig {
    let base = r.cookie_name.unwrap_or_else(|| "th_session".to_string());
    if base.is_empty()
        || !base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        p.push(format!(
            "session.cookie_name: `{base}` must be letters, digits, `_` or `-`"
        ));
    }
    let host_prefix = r.host_prefix.unwrap_or(true);
    let secure = r.secure.unwrap_or(true);
    if host_prefix && !secure {
        p.push("session.host_prefix: browsers drop `__Host-` cookies without `Secure`; set secure = true or host_prefix = false");
    }
    let same_site = p.one_of(
        "session.same_site",
        r.same_site,
        SameSite::Strict,
        &[
            ("strict", SameSite::Strict),
            ("lax", SameSite::Lax),
            ("none", SameSite::None),
        ],
    );
    if same_site == SameSite::None && !secure {
        p.push("session.same_site: \"none\" requires secure = true");
    }
    let lifetime = p.duration(
        "session.lifetime",
        r.lifetime,
        Duration::from_secs(12 * 3600),
    );
    if !(Duration::from_secs(60)..=Duration::from_secs(366 * 24 * 3600)).contains(&lifetime) {
        p.push("session.lifetime: must be between 1m and 366d");
    }
    let rotation_grace = p.duration(
        "session.rotation_grace",
        r.rotation_grace,
        Duration::from_secs(60),
    );
    let reuse_window = p.duration(
        "session.reuse_window",
        r.reuse_window,
        Duration::from_secs(600),
    );
    if reuse_window < rotation_grace {
        p.push("session.reuse_window: must be at least session.rotation_grace");
    }
    let max_tracked_rotations = r.max_tracked_rotations.unwrap_or(100_000);
    if max_tracked_rotations == 0 {
        p.push("session.max_tracked_rotations: must be at least 1");
    }
    let max_ended_sessions = r.max_ended_sessions.unwrap_or(100_000);
    if max_ended_sessions == 0 {
        p.push("session.max_ended_sessions: must be at least 1");
    }
    let idle_timeout = r
        .idle_timeout
        .map(|raw| p.duration("session.idle_timeout", Some(raw), Duration::ZERO))
        .filter(|d| !d.is_zero());
    let idle_touch_interval = p.duration(
        "session.idle_touch_interval",
        r.idle_touch_interval,
        idle_timeout.map_or(Duration::from_secs(60), |idle| {
            (idle / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
        }),
    );
    if let Some(idle) = idle_timeout {
        if idle < Duration::from_secs(2) || idle > lifetime {
            p.push(
                "session.idle_timeout: must be between 2s and session.lifetime (or \"0s\": off)",
            );
        }
        if idle_touch_interval.is_zero() || idle_touch_interval * 2 > idle {
            p.push("session.idle_touch_interval: must be more than 0s and at most half of session.idle_timeout (a session in use must never look idle)");
        }
    }
    SessionConfig {
        cookie_name: if host_prefix {
            format!("__Host-{base}")
        } else {
            base
        },
        secure,
        same_site,
        lifetime,
        refresh_skew: p.duration(
            "session.refresh_skew",
            r.refresh_skew,
            Duration::from_secs(30),
        ),
        rotation_grace,
        reuse_window,
        max_tracked_rotations,
        max_ended_sessions,
        claims: r.claims.unwrap_or_else(|| {
            ["sub", "name", "email", "preferred_username"]
                .map(String::from)
                .to_vec()
        }),
        idle_timeout,
        idle_touch_interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::{checked, valid};

    #[test]
    fn defaults_are_the_strictest_cookie() {
        let c = valid(|p| session(raw::Session::default(), p));
        assert_eq!(c.cookie_name, "__Host-th_session");
        assert!(c.secure);
        assert_eq!(c.same_site, SameSite::Strict);
        assert_eq!(c.lifetime, Duration::from_secs(12 * 3600));
        assert_eq!(c.refresh_skew, Duration::from_secs(30));
        assert_eq!(c.rotation_grace, Duration::from_secs(60));
        assert_eq!(c.reuse_window, Duration::from_secs(600));
        assert_eq!(c.max_tracked_rotations, 100_000);
        assert_eq!(c.max_ended_sessions, 100_000);
        assert_eq!(c.claims, ["sub", "name", "email", "preferred_username"]);
    }

    #[test]
    fn the_host_prefix_can_be_left_off_for_plain_http() {
        let r = raw::Session {
            cookie_name: Some("app-session".into()),
            host_prefix: Some(false),
            secure: Some(false),
            same_site: Some("Lax".into()),
            ..raw::Session::default()
        };
        let c = valid(|p| session(r, p));
        assert_eq!(c.cookie_name, "app-session");
        assert_eq!(c.same_site, SameSite::Lax);
        assert_eq!(c.same_site.as_str(), "Lax");
    }

    #[test]
    fn refusals_name_the_key() {
        let r = raw::Session {
            cookie_name: Some("th session".into()),
            secure: Some(false),
            same_site: Some("none".into()),
            lifetime: Some("59s".into()),
            rotation_grace: Some("20m".into()),
            max_tracked_rotations: Some(0),
            max_ended_sessions: Some(0),
            ..raw::Session::default()
        };
        let (_, problems) = checked(|p| session(r, p));
        assert_eq!(
            problems,
            [
                "session.cookie_name: `th session` must be letters, digits, `_` or `-`",
                "session.host_prefix: browsers drop `__Host-` cookies without `Secure`; set \
                 secure = true or host_prefix = false",
                "session.same_site: \"none\" requires secure = true",
                "session.lifetime: must be between 1m and 366d",
                "session.reuse_window: must be at least session.rotation_grace",
                "session.max_tracked_rotations: must be at least 1",
                "session.max_ended_sessions: must be at least 1",
            ]
        );

        let r = raw::Session {
            cookie_name: Some(String::new()),
            same_site: Some("sometimes".into()),
            lifetime: Some("367d".into()),
            refresh_skew: Some("soon".into()),
            ..raw::Session::default()
        };
        let (_, problems) = checked(|p| session(r, p));
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert_eq!(
            problems[0],
            "session.cookie_name: `` must be letters, digits, `_` or `-`"
        );
        assert_eq!(
            problems[1],
            "session.same_site: `sometimes` is not one of strict, lax, none"
        );
        assert_eq!(problems[2], "session.lifetime: must be between 1m and 366d");
        assert!(problems[3].starts_with("session.refresh_skew: `soon` is not a duration"));
    }
}
