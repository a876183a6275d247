//! CSRF defence for cookie-authenticated calls.
//!
//! Every method but GET, HEAD and OPTIONS needs a custom header (`x-csrf: 1` by default): a
//! cross-site form cannot set one, and a cross-site `fetch` that does triggers a CORS
//! preflight we never approve. Method names are compared exactly (they are case-sensitive,
//! RFC 9110 §9.1): `post`, `PROPFIND` or `FOO` are unsafe like `POST`. A request carrying a
//! method-override header (`X-HTTP-Method-Override` and kin, which frameworks honour to turn
//! a GET into a DELETE) counts as unsafe too.
//! When the browser sends `Origin`, it must be the request's own origin or an allowed one.
//! WebSocket handshakes cannot carry custom headers, so they need an allowed `Origin`.

use crate::config::CsrfConfig;
use http::header::{HeaderName, ORIGIN};
use http::{HeaderMap, Method};

/// Why a request failed the check (for the log line and the message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfFailure {
    MissingHeader,
    OriginNotAllowed,
    MissingOrigin,
}

impl CsrfFailure {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            CsrfFailure::MissingHeader => "missing_header",
            CsrfFailure::OriginNotAllowed => "origin_not_allowed",
            CsrfFailure::MissingOrigin => "missing_origin",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            CsrfFailure::MissingHeader => "state-changing requests need the CSRF header",
            CsrfFailure::OriginNotAllowed => "the request's Origin is not allowed",
            CsrfFailure::MissingOrigin => "upgrade requests need an allowed Origin",
        }
    }
}

/// Checks a request; when it fails, logs, counts and returns the 403 `csrf_check_failed`.
pub fn refusal(
    config: &CsrfConfig,
    metrics: &crate::metrics::Metrics,
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&str>,
    upgrade: bool,
) -> Option<http::Response<crate::body::Body>> {
    let failure = check(config, method, headers, authority, upgrade).err()?;
    tracing::warn!(reason = failure.label(), "CSRF check failed");
    metrics.csrf_refusal(failure.label());
    Some(crate::error::error_response(
        crate::error::ErrorCode::CsrfCheckFailed,
        failure.message(),
    ))
}

/// Headers through which frameworks let a request claim another method (parsed once: a
/// lookup by `&str` would parse the name on every request).
static METHOD_OVERRIDES: [HeaderName; 3] = [
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// Whether a request may change state: any method but GET, HEAD and OPTIONS, or a
/// method-override header.
pub fn is_unsafe(method: &Method, headers: &HeaderMap) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) || overrides_method(headers)
}

/// Whether a method-override header is there. A head holds a few fields: one pass comparing
/// their names (a standard name differs from these at once) costs less than hashing the three
/// names, as `proxy::headers::has` does for one; a large map is hashed.
fn overrides_method(headers: &HeaderMap) -> bool {
    if headers.keys_len() > 8 {
        return METHOD_OVERRIDES.iter().any(|h| headers.contains_key(h));
    }
    headers.keys().any(|key| METHOD_OVERRIDES.contains(key))
}

/// Checks a request; `authority` is the request's own host (Host header or URI authority).
pub fn check(
    config: &CsrfConfig,
    method: &Method,
    headers: &HeaderMap,
    authority: Option<&str>,
    upgrade: bool,
) -> Result<(), CsrfFailure> {
    let origin = || headers.get(ORIGIN).and_then(|v| v.to_str().ok());
    if upgrade {
        let origin = origin().ok_or(CsrfFailure::MissingOrigin)?;
        return allowed(config, origin, authority)
            .then_some(())
            .ok_or(CsrfFailure::OriginNotAllowed);
    }
    if !is_unsafe(method, headers) {
        return Ok(());
    }
    if headers.get(&config.header).map(|v| v.as_bytes()) != Some(b"1") {
        return Err(CsrfFailure::MissingHeader);
    }
    match origin() {
        Some(origin) if !allowed(config, origin, authority) => Err(CsrfFailure::OriginNotAllowed),
        _ => Ok(()),
    }
}

fn allowed(config: &CsrfConfig, origin: &str, authority: Option<&str>) -> bool {
    if config
        .allowed_origins
        .iter()
        .any(|o| o.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    // Same origin: the Origin's host[:port] is the Host the browser sent this request to.
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let (Some(host), Some(authority)) = (url.host_str(), authority) else {
        return false;
    };
    let own = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let default_port = url.port_or_known_default().map(|p| format!("{host}:{p}"));
    authority.eq_ignore_ascii_case(&own)
        || default_port.is_some_and(|d| authority.eq_ignore_ascii_case(&d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderName;

    fn config(allowed: &[&str]) -> CsrfConfig {
        CsrfConfig {
            header: HeaderName::from_static("x-csrf"),
            allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("hv"));
        }
        h
    }

    #[test]
    fn safe_methods_pass_unsafe_need_the_header() {
        let c = config(&[]);
        assert_eq!(
            check(&c, &Method::GET, &headers(&[]), Some("app"), false),
            Ok(())
        );
        for m in [
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::from_bytes(b"post").expect("method"),
            Method::from_bytes(b"PROPFIND").expect("method"),
            Method::from_bytes(b"MKCOL").expect("method"),
            Method::from_bytes(b"FOO").expect("method"),
        ] {
            assert_eq!(
                check(&c, &m, &headers(&[]), Some("app"), false),
                Err(CsrfFailure::MissingHeader)
            );
            assert_eq!(
                check(&c, &m, &headers(&[("x-csrf", "0")]), Some("app"), false),
                Err(CsrfFailure::MissingHeader)
            );
            assert_eq!(
                check(&c, &m, &headers(&[("x-csrf", "1")]), Some("app"), false),
                Ok(())
            );
        }
    }

    #[test]
    fn a_method_override_needs_the_header_too() {
        let c = config(&[]);
        for name in [
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
        ] {
            // Alone, among a few fields (compared) and among many (hashed).
            for others in [0, 3, 12] {
                let mut h = HeaderMap::new();
                for i in 0..others {
                    h.insert(
                        HeaderName::from_bytes(format!("x-other-{i}").as_bytes()).expect("name"),
                        "v".parse().expect("hv"),
                    );
                }
                h.insert(http::header::ACCEPT, "*/*".parse().expect("hv"));
                h.insert(name, "DELETE".parse().expect("hv"));
                assert_eq!(
                    check(&c, &Method::GET, &h, Some("app"), false),
                    Err(CsrfFailure::MissingHeader),
                    "{name} among {others}"
                );
                h.remove(name);
                assert_eq!(check(&c, &Method::GET, &h, Some("app"), false), Ok(()));
            }
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(check(&c, &m, &headers(&[]), Some("app"), false), Ok(()));
        }
    }

    #[test]
    fn origin_must_be_same_or_allowed() {
        let c = config(&["https://spa.example.com"]);
        let post = |origin: &'static str, host: &str| {
            check(
                &c,
                &Method::POST,
                &headers(&[("x-csrf", "1"), ("origin", origin)]),
                Some(host),
                false,
            )
        };
        assert_eq!(post("http://localhost:8080", "localhost:8080"), Ok(()));
        assert_eq!(post("https://app.example.com", "app.example.com"), Ok(()));
        assert_eq!(
            post("https://app.example.com", "app.example.com:443"),
            Ok(())
        );
        assert_eq!(post("https://spa.example.com", "api.example.com"), Ok(()));
        assert_eq!(
            post("https://evil.example", "app.example.com"),
            Err(CsrfFailure::OriginNotAllowed)
        );
        assert_eq!(
            post("null", "app.example.com"),
            Err(CsrfFailure::OriginNotAllowed)
        );
        assert_eq!(
            post("http://localhost:9999", "localhost:8080"),
            Err(CsrfFailure::OriginNotAllowed)
        );
    }

    #[test]
    fn upgrades_need_an_allowed_origin() {
        let c = config(&[]);
        assert_eq!(
            check(&c, &Method::GET, &headers(&[]), Some("a"), true),
            Err(CsrfFailure::MissingOrigin)
        );
        assert_eq!(
            check(
                &c,
                &Method::GET,
                &headers(&[("origin", "http://evil")]),
                Some("a"),
                true
            ),
            Err(CsrfFailure::OriginNotAllowed)
        );
        assert_eq!(
            check(
                &c,
                &Method::GET,
                &headers(&[("origin", "http://a")]),
                Some("a"),
                true
            ),
            Ok(())
        );
    }
}
