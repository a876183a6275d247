//! The request a gateway asks about, from what each gateway sends:
//!
//! | gateway | method | URI | host |
//! |---|---|---|---|
//! | ingress-nginx `auth-url` | `X-Original-Method` | `X-Original-URL` (absolute) | from that URL |
//! | nginx `auth_request` (our snippet) | `X-Original-Method` | `X-Original-URI` | `X-Forwarded-Host` |
//! | Traefik ForwardAuth | `X-Forwarded-Method` | `X-Forwarded-Uri` | `X-Forwarded-Host` |
//! | Envoy / Istio `ext_authz`, Gateway API `ExternalAuth` | the request's | the request's path below `/verify` | `Host` |
//!
//! The first of these that is present wins, field by field. The path is then normalised by the
//! same rule as the inline proxy's (`edge::path`: refuse or normalise), so a route decision here
//! is the one the proxy itself would make.

use crate::edge::path::{normalize, NormalPath};
use http::{Method, Request};

/// Where the gateway's question arrives, and what it may have below it (Envoy style).
const VERIFY: &str = "/verify";

#[derive(Debug)]
pub struct Original {
    pub method: Method,
    pub path: NormalPath<'static>,
    /// `host[:port]` the browser addressed, for the CSRF origin check.
    pub authority: Option<String>,
}

impl Original {
    pub fn of<B>(request: &Request<B>) -> Result<Original, &'static str> {
        let headers = request.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let url = header("x-original-url")
            .map(|u| url::Url::parse(u).map_err(|_| "X-Original-URL is not an absolute URL"));
        let url = url.transpose()?;
        let method = match header("x-original-method").or(header("x-forwarded-method")) {
            Some(m) => Method::from_bytes(m.trim().as_bytes())
                .map_err(|_| "the original method is not an HTTP method")?,
            None => request.method().clone(),
        };
        if matches!(method, Method::TRACE | Method::CONNECT) {
            return Err("the original method is refused");
        }
        let uri: String = match (&url, header("x-original-uri").or(header("x-forwarded-uri"))) {
            (Some(url), _) => url.path().to_string(),
            (None, Some(uri)) => uri.to_string(),
            (None, None) => {
                let path = request.uri().path();
                let below = path.strip_prefix(VERIFY).unwrap_or(path);
                if below.is_empty() {
                    "/".to_string()
                } else {
                    below.to_string()
                }
            }
        };
        // The query plays no part in routing or the session: only the path.
        let path = uri.split(['?', '#']).next().unwrap_or_default();
        let path = normalize(path)
            .map_err(|_| "the original path is refused (see the proxy's path rules)")?
            .into_owned();
        let authority = match &url {
            Some(url) => url.host_str().map(|host| match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            }),
            None => header("x-forwarded-host")
                .or(header("host"))
                .map(|h| h.split(',').next().unwrap_or(h).trim().to_string()),
        };
        Ok(Original {
            method,
            path,
            authority,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original(uri: &str, headers: &[(&str, &str)]) -> Result<Original, &'static str> {
        let mut request = Request::builder().method("POST").uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Original::of(&request.body(()).expect("request"))
    }

    #[test]
    fn each_gateways_way_of_saying_it() {
        let nginx = original(
            "/verify",
            &[
                ("x-original-method", "DELETE"),
                ("x-original-uri", "/api/items/1?x=1"),
                ("x-forwarded-host", "app.example.com"),
            ],
        )
        .expect("nginx");
        assert_eq!(nginx.method, Method::DELETE);
        assert_eq!(&nginx.path.decoded[..], b"/api/items/1");
        assert_eq!(nginx.authority.as_deref(), Some("app.example.com"));

        let ingress = original(
            "/verify",
            &[
                ("x-original-method", "GET"),
                ("x-original-url", "https://app.example.com:8443/api/%61?q"),
                ("host", "token-handler"),
            ],
        )
        .expect("ingress-nginx");
        assert_eq!(&ingress.path.decoded[..], b"/api/a");
        assert_eq!(ingress.authority.as_deref(), Some("app.example.com:8443"));

        let traefik = original(
            "/verify",
            &[
                ("x-forwarded-method", "PUT"),
                ("x-forwarded-uri", "/api/x"),
                ("x-forwarded-host", "app.example.com"),
            ],
        )
        .expect("traefik");
        assert_eq!(traefik.method, Method::PUT);

        let envoy = original("/verify/api/x?y", &[("host", "app.example.com")]).expect("envoy");
        assert_eq!(envoy.method, Method::POST);
        assert_eq!(&envoy.path.decoded[..], b"/api/x");
        assert_eq!(envoy.authority.as_deref(), Some("app.example.com"));

        for refused in [
            original("/verify", &[("x-original-uri", "/api/../admin")]),
            original("/verify", &[("x-original-uri", "/api/%2e%2e/admin")]),
            original("/verify", &[("x-original-method", "TRACE")]),
            original("/verify", &[("x-original-url", "/relative")]),
            original("/verify/api/..%2fadmin", &[]),
        ] {
            assert!(refused.is_err(), "{refused:?}");
        }
    }
}
