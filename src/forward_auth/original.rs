//! The request a gateway asks about, from the headers *that* gateway sets itself
//! (`forward_auth.gateway`). Only those: gateways pass the browser's other headers on, so a
//! browser could otherwise send `X-Original-URI: /api/public` with a request for `/api/admin`
//! and have the allowlist decide on the wrong path (Traefik passes every header).
//!
//! | `gateway` | method | URI | host (CSRF origin check) |
//! |---|---|---|---|
//! | `nginx` (our `auth_request` config) | `X-Original-Method` | `X-Original-URI` | `X-Forwarded-Host` |
//! | `ingress-nginx` (`auth-url`) | `X-Original-Method` | `X-Original-URL` (absolute) | from that URL |
//! | `traefik` (ForwardAuth) | `X-Forwarded-Method` | `X-Forwarded-Uri` | `X-Forwarded-Host` |
//! | `envoy` (Envoy, Istio, Gateway API) | the call's | its path below `/verify` | `Host` |
//!
//! A header the gateway always sets that is missing means a misconfigured gateway: 400, never a
//! guess. The path is then normalised by the same rule as the inline proxy's (`edge::path`:
//! refuse or normalise), so a route decision here is the one the proxy itself would make.

use crate::config::Gateway;
use crate::edge::path::{normalize, NormalPath};
use http::{HeaderMap, Method, Request};

/// Where the gateway's question arrives, and what it may have below it (Envoy style).
const VERIFY: &str = "/verify";

#[derive(Debug)]
pub struct Original {
    pub method: Method,
    pub path: NormalPath<'static>,
    /// `host[:port]` the browser addressed, for the CSRF origin check.
    pub authority: Option<String>,
    /// The scheme the browser used, as the gateway reports it (ingress-nginx's
    /// `X-Original-URL`, else the gateway's `X-Forwarded-Proto`); `http` when it does not say.
    pub scheme: &'static str,
    /// The path as the gateway passes it on (not normalised, no query): what the API receives.
    pub raw_path: String,
}

impl Original {
    /// The URL the API receives, as a DPoP proof names it (RFC 9449 §4.2 `htu`): when the
    /// gateway forwards the browser's Host and path unchanged (the configurations in the
    /// README do).
    pub fn htu(&self) -> Option<String> {
        let authority = self.authority.as_deref()?;
        Some(format!("{}://{authority}{}", self.scheme, self.raw_path))
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?.to_str().ok()?;
    // Two values: not one the gateway set alone.
    values.next().is_none().then_some(first)
}

fn required<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, &'static str> {
    header(headers, name).ok_or(match name {
        "x-original-method" => {
            "X-Original-Method is missing (or repeated): is forward_auth.gateway right?"
        }
        "x-original-uri" => {
            "X-Original-URI is missing (or repeated): is forward_auth.gateway right?"
        }
        "x-original-url" => {
            "X-Original-URL is missing (or repeated): is forward_auth.gateway right?"
        }
        "x-forwarded-method" => {
            "X-Forwarded-Method is missing (or repeated): is forward_auth.gateway right?"
        }
        "x-forwarded-uri" => {
            "X-Forwarded-Uri is missing (or repeated): is forward_auth.gateway right?"
        }
        _ => "a header the gateway sets is missing (or repeated): is forward_auth.gateway right?",
    })
}

impl Original {
    pub fn of<B>(request: &Request<B>, gateway: Gateway) -> Result<Original, &'static str> {
        let headers = request.headers();
        let mut scheme = header(headers, "x-forwarded-proto");
        let (method, uri, authority): (&str, String, Option<String>) = match gateway {
            Gateway::Nginx => (
                required(headers, "x-original-method")?,
                required(headers, "x-original-uri")?.to_string(),
                header(headers, "x-forwarded-host").map(str::to_string),
            ),
            Gateway::IngressNginx => {
                let url = url::Url::parse(required(headers, "x-original-url")?)
                    .map_err(|_| "X-Original-URL is not an absolute URL")?;
                scheme = Some(if url.scheme() == "https" {
                    "https"
                } else {
                    "http"
                });
                let authority = url.host_str().map(|host| match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                });
                (
                    required(headers, "x-original-method")?,
                    url.path().to_string(),
                    authority,
                )
            }
            Gateway::Traefik => (
                required(headers, "x-forwarded-method")?,
                required(headers, "x-forwarded-uri")?.to_string(),
                header(headers, "x-forwarded-host").map(str::to_string),
            ),
            Gateway::Envoy => {
                let path = request.uri().path();
                let below = path
                    .strip_prefix(VERIFY)
                    .ok_or("the question must be asked at /verify<original path>")?;
                let uri = if below.is_empty() { "/" } else { below };
                (
                    request.method().as_str(),
                    uri.to_string(),
                    header(headers, "host").map(str::to_string),
                )
            }
        };
        let method = Method::from_bytes(method.trim().as_bytes())
            .map_err(|_| "the original method is not an HTTP method")?;
        if matches!(method, Method::TRACE | Method::CONNECT) {
            return Err("the original method is refused");
        }
        // The query plays no part in routing or the session: only the path.
        let raw_path = uri.split(['?', '#']).next().unwrap_or_default();
        let path = normalize(raw_path)
            .map_err(|_| "the original path is refused (see the proxy's path rules)")?
            .into_owned();
        let authority = authority.map(|a| a.split(',').next().unwrap_or(&a).trim().to_string());
        let scheme = match scheme.map(|s| s.split(',').next().unwrap_or(s).trim()) {
            Some(s) if s.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        Ok(Original {
            method,
            raw_path: raw_path.to_string(),
            path,
            authority,
            scheme,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn original(
        gateway: Gateway,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<Original, &'static str> {
        let mut request = Request::builder().method("POST").uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Original::of(&request.body(()).expect("request"), gateway)
    }

    #[test]
    fn each_gateway_is_read_from_its_own_headers_only() {
        let browser_says = [
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/public"),
            ("x-original-url", "http://evil.example/api/public"),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/api/public"),
        ];
        let nginx = original(
            Gateway::Nginx,
            "/verify",
            &[
                ("x-original-method", "DELETE"),
                ("x-original-uri", "/api/items/1?x=1"),
                ("x-forwarded-host", "app.example.com"),
                // Traefik-style headers from the browser are not read.
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/api/public"),
                ("x-original-url", "http://evil.example/api/public"),
            ],
        )
        .expect("nginx");
        assert_eq!(nginx.method, Method::DELETE);
        assert_eq!(&nginx.path.decoded[..], b"/api/items/1");
        assert_eq!(nginx.authority.as_deref(), Some("app.example.com"));

        let ingress = original(
            Gateway::IngressNginx,
            "/verify",
            &[
                ("x-original-method", "GET"),
                ("x-original-url", "https://app.example.com:8443/api/%61?q"),
                ("x-original-uri", "/api/public"),
                ("host", "token-handler"),
            ],
        )
        .expect("ingress-nginx");
        assert_eq!(&ingress.path.decoded[..], b"/api/a");
        assert_eq!(ingress.authority.as_deref(), Some("app.example.com:8443"));

        let traefik = original(
            Gateway::Traefik,
            "/verify",
            &[
                ("x-forwarded-method", "PUT"),
                ("x-forwarded-uri", "/api/x"),
                ("x-forwarded-host", "app.example.com"),
                ("x-original-method", "GET"),
                ("x-original-uri", "/api/public"),
            ],
        )
        .expect("traefik");
        assert_eq!(traefik.method, Method::PUT);
        assert_eq!(&traefik.path.decoded[..], b"/api/x");

        let mut envoy_headers = vec![("host", "app.example.com")];
        envoy_headers.extend(browser_says);
        let envoy = original(Gateway::Envoy, "/verify/api/x?y", &envoy_headers).expect("envoy");
        assert_eq!(envoy.method, Method::POST);
        assert_eq!(&envoy.path.decoded[..], b"/api/x");
        assert_eq!(envoy.authority.as_deref(), Some("app.example.com"));

        let refused = [
            original(Gateway::Nginx, "/verify", &[("x-original-method", "GET")]),
            original(Gateway::Traefik, "/verify", &browser_says[..3]),
            original(
                Gateway::IngressNginx,
                "/verify",
                &[("x-original-method", "GET")],
            ),
            original(
                Gateway::Nginx,
                "/verify",
                &[
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/api/../admin"),
                ],
            ),
            original(
                Gateway::Nginx,
                "/verify",
                &[
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/api/%2e%2e/admin"),
                ],
            ),
            original(
                Gateway::Nginx,
                "/verify",
                &[("x-original-method", "TRACE"), ("x-original-uri", "/api")],
            ),
            original(
                Gateway::IngressNginx,
                "/verify",
                &[
                    ("x-original-method", "GET"),
                    ("x-original-url", "/relative"),
                ],
            ),
            original(Gateway::Envoy, "/verify/api/..%2fadmin", &[]),
            original(Gateway::Envoy, "/elsewhere/api", &[]),
            original(
                Gateway::Nginx,
                "/verify",
                &[
                    ("x-original-method", "GET"),
                    ("x-original-uri", "/api/x"),
                    ("x-original-uri", "/api/public"),
                ],
            ),
        ];
        for r in refused {
            assert!(r.is_err(), "{r:?}");
        }
    }
}
