//! `[proxy]`: which paths need a session, what is tunnelled, the proxy's own prefix.

use super::raw;
use super::validate::Problems;
use crate::edge::path::{normalize, under};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserAuthorization {
    /// Drop the browser's `Authorization` header and send ours.
    Replace,
    /// Refuse the request with 400 `bad_request`.
    Reject,
}

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Path prefixes that need a session (default `/`: everything), as configured.
    pub protected_paths: Vec<String>,
    /// Exceptions inside the protected prefixes, reachable without a session.
    pub public_paths: Vec<String>,
    /// The same prefixes, normalised for matching: no trailing `/` (`/` itself is empty).
    protected_prefixes: Vec<String>,
    public_prefixes: Vec<String>,
    pub browser_authorization: BrowserAuthorization,
    /// Prefix of the proxy's own endpoints (`/auth`).
    pub auth_prefix: String,
    /// Largest request body held in memory so the request can be retried once after a
    /// refresh when the upstream answers 401 `invalid_token`.
    pub retry_body_bytes: usize,
    /// `Upgrade` protocols tunnelled to the upstream (`websocket`); others are dropped.
    pub upgrades: Vec<String>,
}

impl ProxyConfig {
    /// Whether a request path (normalised and percent-decoded, see `edge::path`) needs a
    /// session: under a protected prefix and not under a public one, segment by segment.
    /// Errs on the safe side of case: protected prefixes match in any ASCII case (an upstream
    /// may route `/API/admin` to `/api/admin`), public ones only as written.
    pub fn is_protected(&self, decoded_path: &[u8]) -> bool {
        self.protected_prefixes
            .iter()
            .any(|p| under(decoded_path, p.as_bytes(), true))
            && !self
                .public_prefixes
                .iter()
                .any(|p| under(decoded_path, p.as_bytes(), false))
    }
}

pub(super) fn proxy(r: raw::Proxy, p: &mut Problems) -> ProxyConfig {
    let protected_paths = r.protected_paths.unwrap_or_else(|| vec!["/".to_string()]);
    let public_paths = r.public_paths.unwrap_or_default();
    let protected_prefixes = prefixes("proxy.protected_paths", &protected_paths, p);
    let public_prefixes = prefixes("proxy.public_paths", &public_paths, p);
    let auth_prefix = r.auth_prefix.unwrap_or_else(|| "/auth".to_string());
    if !auth_prefix.starts_with('/')
        || auth_prefix.ends_with('/')
        || auth_prefix.len() < 2
        || !normalize(&auth_prefix).is_ok_and(|n| n.forward == auth_prefix.as_str())
    {
        p.push(format!(
            "proxy.auth_prefix: `{auth_prefix}` must look like \"/auth\""
        ));
    }
    let upgrades = r.upgrades.unwrap_or_else(|| vec!["websocket".to_string()]);
    for protocol in &upgrades {
        let token = !protocol.is_empty()
            && protocol
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            p.push(format!(
                "proxy.upgrades: `{protocol}` is not a protocol name like \"websocket\""
            ));
        }
    }
    ProxyConfig {
        protected_paths,
        public_paths,
        protected_prefixes,
        public_prefixes,
        browser_authorization: p.one_of(
            "proxy.browser_authorization",
            r.browser_authorization,
            BrowserAuthorization::Replace,
            &[
                ("replace", BrowserAuthorization::Replace),
                ("reject", BrowserAuthorization::Reject),
            ],
        ),
        auth_prefix,
        retry_body_bytes: r.retry_body_bytes.unwrap_or(64 * 1024),
        upgrades,
    }
}

/// Configured prefixes must already be in the normal form requests are matched in: starting
/// with `/`, no escapes, dot or empty segments. A trailing `/` is dropped (`/api/` and `/api`
/// both cover `/api` and everything below it).
pub(super) fn prefixes(key: &str, paths: &[String], p: &mut Problems) -> Vec<String> {
    let mut out = Vec::new();
    for path in paths {
        let normal =
            normalize(path).is_ok_and(|n| n.forward == path.as_str() && !path.contains('%'));
        if !normal {
            p.push(format!(
                "{key}: `{path}` must be a plain path like \"/api/public\" (starting with /, \
                 no escapes, no . or .. or empty segments)"
            ));
            continue;
        }
        out.push(path.trim_end_matches('/').to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::valid;

    fn config(protected: &[&str], public: &[&str]) -> ProxyConfig {
        let mut p = Problems::default();
        let c = proxy(
            raw::Proxy {
                protected_paths: Some(protected.iter().map(|s| s.to_string()).collect()),
                public_paths: Some(public.iter().map(|s| s.to_string()).collect()),
                ..raw::Proxy::default()
            },
            &mut p,
        );
        assert!(p.is_empty(), "{:?}", p);
        c
    }

    #[test]
    fn defaults_protect_every_path_and_tunnel_websockets() {
        let c = valid(|p| proxy(raw::Proxy::default(), p));
        assert_eq!(c.protected_paths, ["/"]);
        assert!(c.public_paths.is_empty(), "every path needs a session");
        assert!(c.is_protected(b"/"));
        assert_eq!(c.browser_authorization, BrowserAuthorization::Replace);
        assert_eq!(c.auth_prefix, "/auth");
        assert_eq!(c.retry_body_bytes, 64 * 1024);
        assert_eq!(c.upgrades, ["websocket"]);
    }

    #[test]
    fn protection_is_decided_on_segments() {
        let c = config(&["/api"], &["/api/public/"]);
        assert!(c.is_protected(b"/api"));
        assert!(c.is_protected(b"/api/admin"));
        assert!(
            c.is_protected(b"/API/admin"),
            "any case of a protected prefix"
        );
        assert!(c.is_protected(b"/api;x/admin"));
        assert!(c.is_protected(b"/api/publicity"), "not inside /api/public");
        assert!(c.is_protected(b"/api/PUBLIC/x"), "public only as written");
        assert!(!c.is_protected(b"/api/public"));
        assert!(!c.is_protected(b"/api/public/x"));
        assert!(!c.is_protected(b"/apix"), "not inside /api");
        assert!(!c.is_protected(b"/"));
        let all = config(&["/"], &[]);
        assert!(all.is_protected(b"/"));
        assert!(all.is_protected(b"/anything/at/all"));
    }

    #[test]
    fn configured_prefixes_must_be_plain_paths() {
        let mut p = Problems::default();
        proxy(
            raw::Proxy {
                public_paths: Some(vec![
                    "api".into(),
                    "/a/../b".into(),
                    "/a//b".into(),
                    "/%61pi".into(),
                ]),
                upgrades: Some(vec!["web socket".into()]),
                auth_prefix: Some("/a/./b".into()),
                ..raw::Proxy::default()
            },
            &mut p,
        );
        let all = p.joined();
        for needle in [
            "`api`",
            "`/a/../b`",
            "`/a//b`",
            "`/%61pi`",
            "`web socket`",
            "auth_prefix",
        ] {
            assert!(all.contains(needle), "{needle} in {all}");
        }
    }
}
