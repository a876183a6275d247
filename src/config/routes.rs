//! `[[routes]]`: the allowlist of what the proxy forwards, and where. Each route is a path
//! prefix (whole segments), an upstream, the methods allowed, whether a session is `required`,
//! `optional` or `none`, and the identity headers its upstream gets. With routes, a request
//! that matches none gets 404 without touching any upstream; without, `[upstream]` is one route
//! for `/` whose session rule is `proxy.protected_paths` / `public_paths`.

use super::raw;
use super::upstream::UpstreamConfig;
use super::validate::Problems;
use http::{HeaderName, Method};

/// Whether a route needs a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// 401 `login_required` without one.
    Required,
    /// Forwarded with the Bearer token when there is a session, without when there is none.
    Optional,
    /// Never a token, whatever the request carries (our cookies are stripped all the same).
    None,
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The prefix as configured (`/api`).
    pub path: String,
    /// The same, for matching: no trailing `/` (`/` itself is empty).
    pub prefix: String,
    /// Its `url` is absent only in forward-auth mode (the gateway forwards; inline, the route
    /// answers 404).
    pub upstream: UpstreamConfig,
    /// `None`: every method (but TRACE and CONNECT, refused at the edge).
    pub methods: Option<Vec<Method>>,
    pub access: Access,
    /// Header → the session claim it carries to this route's upstream.
    pub identity_headers: Vec<(HeaderName, String)>,
}

/// Headers an identity header must never be (they mean something else to the upstream or to
/// the hop).
const RESERVED: &[&str] = &[
    "authorization",
    "cookie",
    "host",
    "connection",
    "content-length",
    "content-type",
    "transfer-encoding",
    "te",
    "upgrade",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// `default` is `[upstream]` (its URL may be absent: then every route must name one, unless
/// `forward_auth` is on: a gateway forwards, the route only decides).
/// `claims`: what the session keeps (`session.claims`), besides `sub` and `sid`.
pub(super) fn routes(
    raw: Vec<raw::Route>,
    default: &UpstreamConfig,
    forward_auth: bool,
    claims: &[String],
    p: &mut Problems,
) -> Vec<RouteConfig> {
    let mut out: Vec<RouteConfig> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("routes[{i}].{field}");
        let Some(path) = r.path else {
            p.push(format!(
                "{}: required (a path prefix like \"/api\")",
                key("path")
            ));
            continue;
        };
        let prefix = super::proxy::prefixes(&key("path"), std::slice::from_ref(&path), p)
            .pop()
            .unwrap_or_default();
        if out.iter().any(|o| o.prefix.eq_ignore_ascii_case(&prefix)) {
            p.push(format!(
                "{}: `{path}` is already a route (prefixes match in any ASCII case)",
                key("path")
            ));
        }
        let url = match r.upstream {
            Some(raw) => p.url(&key("upstream"), Some(raw)),
            None => {
                if default.url.is_none() && !forward_auth {
                    p.push(format!(
                        "{}: required when upstream.url is not set",
                        key("upstream")
                    ));
                }
                default.url.clone()
            }
        };
        let upstream = UpstreamConfig {
            url,
            connect_timeout: p.duration(
                &key("connect_timeout"),
                r.connect_timeout,
                default.connect_timeout,
            ),
            response_header_timeout: p.duration(
                &key("response_header_timeout"),
                r.response_header_timeout,
                default.response_header_timeout,
            ),
            ca_file: match r.ca_file {
                Some(raw) => p.ca_file(&key("ca_file"), Some(raw)),
                None => default.ca_file.clone(),
            },
            // One client choice for the whole proxy: a route takes `[upstream]`'s.
            client: default.client,
        };
        let methods = r.methods.map(|names| methods(&key("methods"), names, p));
        let access = p.one_of(
            &key("session"),
            r.session,
            Access::Required,
            &[
                ("required", Access::Required),
                ("optional", Access::Optional),
                ("none", Access::None),
            ],
        );
        let identity_headers =
            identity_headers(&key("identity_headers"), r.identity_headers, claims, p);
        if access == Access::None && !identity_headers.is_empty() {
            p.push(format!(
                "{}: a route with session = \"none\" has no session to name",
                key("identity_headers")
            ));
        }
        out.push(RouteConfig {
            path,
            prefix,
            upstream,
            methods,
            access,
            identity_headers,
        });
    }
    out
}

fn methods(key: &str, names: Vec<String>, p: &mut Problems) -> Vec<Method> {
    let mut out = Vec::new();
    for name in names {
        match Method::from_bytes(name.to_ascii_uppercase().as_bytes()) {
            Ok(Method::TRACE | Method::CONNECT) => {
                p.push(format!("{key}: `{name}` is refused at the edge, always"));
            }
            Ok(method) => out.push(method),
            Err(_) => p.push(format!("{key}: `{name}` is not an HTTP method")),
        }
    }
    // A route that answers GET answers HEAD (RFC 9110 §9.3.2).
    if out.contains(&Method::GET) && !out.contains(&Method::HEAD) {
        out.push(Method::HEAD);
    }
    out
}

fn identity_headers(
    key: &str,
    raw: Option<std::collections::BTreeMap<String, String>>,
    claims: &[String],
    p: &mut Problems,
) -> Vec<(HeaderName, String)> {
    let mut out = Vec::new();
    for (name, claim) in raw.unwrap_or_default() {
        let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
            p.push(format!("{key}: `{name}` is not a header name"));
            continue;
        };
        if RESERVED.contains(&header.as_str()) || header.as_str().starts_with("sec-") {
            p.push(format!("{key}: `{name}` cannot carry an identity"));
            continue;
        }
        if claim != "sub" && claim != "sid" && !claims.contains(&claim) {
            p.push(format!(
                "{key}: `{claim}` is not kept in the session (add it to session.claims)"
            ));
            continue;
        }
        out.push((header, claim));
    }
    out
}

/// The routes of a config file: its `[[routes]]`, or `[upstream]` as the one route for `/`.
pub(super) fn from_table(
    table: &toml::Table,
    upstream: &UpstreamConfig,
    claims: &[String],
    p: &mut Problems,
) -> Vec<RouteConfig> {
    if !table.contains_key("routes") {
        return implicit(upstream).into_iter().collect();
    }
    let raw: Vec<raw::Route> = super::validate::section(table, "routes", p);
    if raw.is_empty() {
        p.push("[[routes]]: at least one route (or none of the section)");
    }
    // Their defaults may stand (a chart renders every default); anything else would be a
    // second, conflicting answer to "what needs a session".
    for (key, default) in [("protected_paths", &["/"][..]), ("public_paths", &[][..])] {
        let set = table
            .get("proxy")
            .and_then(|t| t.get(key))
            .is_some_and(|v| {
                let paths: Option<Vec<&str>> = v
                    .as_array()
                    .map(|a| a.iter().filter_map(|p| p.as_str()).collect());
                paths.as_deref() != Some(default)
            });
        if set {
            p.push(format!(
                "proxy.{key}: with [[routes]], each route's `session` says what needs one"
            ));
        }
    }
    let forward_auth = table.contains_key("forward_auth");
    routes(raw, upstream, forward_auth, claims, p)
}

/// `[upstream]` made into the one route for `/` (no `[[routes]]`).
fn implicit(upstream: &UpstreamConfig) -> Option<RouteConfig> {
    upstream.url.as_ref()?;
    Some(RouteConfig {
        path: "/".into(),
        prefix: String::new(),
        upstream: upstream.clone(),
        methods: None,
        // Decided per path by `proxy.protected_paths` / `public_paths`.
        access: Access::Optional,
        identity_headers: Vec::new(),
    })
}

/// Whether `[upstream]` must name a URL: not when routes or forward-auth stand in for it.
pub(super) fn upstream_required(table: &toml::Table) -> bool {
    !table.contains_key("routes") && !table.contains_key("forward_auth")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::upstream;
    use crate::config::validate::checked;

    fn route(path: &str) -> raw::Route {
        raw::Route {
            path: Some(path.into()),
            ..raw::Route::default()
        }
    }

    fn default_upstream() -> UpstreamConfig {
        let (u, _) = checked(|p| {
            upstream::upstream(
                raw::Upstream {
                    url: Some("http://127.0.0.1:3000".into()),
                    ..raw::Upstream::default()
                },
                true,
                p,
            )
        });
        u
    }

    #[test]
    fn routes_take_defaults_and_refuse_what_cannot_be_served() {
        let claims = vec!["email".to_string()];
        let mut ok = route("/api/");
        ok.methods = Some(vec!["get".into(), "POST".into()]);
        ok.identity_headers = Some(
            [("X-Auth-Request-User".to_string(), "sub".to_string())]
                .into_iter()
                .collect(),
        );
        let (built, problems) =
            checked(|p| routes(vec![ok], &default_upstream(), false, &claims, p));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(built[0].prefix, "/api");
        assert_eq!(built[0].access, Access::Required);
        assert_eq!(
            built[0].methods.as_deref(),
            Some(&[Method::GET, Method::POST, Method::HEAD][..])
        );
        assert_eq!(
            built[0].upstream.url.as_ref().map(|u| u.as_str()),
            Some("http://127.0.0.1:3000/")
        );

        let mut bad_header = route("/b");
        bad_header.identity_headers = Some(
            [
                ("Authorization".to_string(), "sub".to_string()),
                ("X-User".to_string(), "groups".to_string()),
            ]
            .into_iter()
            .collect(),
        );
        let mut none_with_identity = route("/c");
        none_with_identity.session = Some("none".into());
        none_with_identity.identity_headers = Some(
            [("X-User".to_string(), "sub".to_string())]
                .into_iter()
                .collect(),
        );
        let mut bad_method = route("/d");
        bad_method.methods = Some(vec!["TRACE".into(), "GE T".into()]);
        let raw = vec![
            route("/API"),
            route("/api"),
            route("/x/../y"),
            raw::Route::default(),
            bad_header,
            none_with_identity,
            bad_method,
        ];
        let (_, problems) = checked(|p| routes(raw, &default_upstream(), false, &claims, p));
        let all = problems.join("\n");
        for expected in [
            "routes[1].path: `/api` is already a route",
            "routes[2].path: `/x/../y` must be a plain path",
            "routes[3].path: required",
            "routes[4].identity_headers: `Authorization` cannot carry an identity",
            "routes[4].identity_headers: `groups` is not kept in the session",
            "routes[5].identity_headers: a route with session = \"none\"",
            "routes[6].methods: `TRACE` is refused at the edge",
            "routes[6].methods: `GE T` is not an HTTP method",
        ] {
            assert!(all.contains(expected), "missing {expected:?} in:\n{all}");
        }
    }

    #[test]
    fn without_a_default_upstream_every_route_names_one() {
        let (no_default, _) = checked(|p| upstream::upstream(raw::Upstream::default(), false, p));
        let named_route = || raw::Route {
            upstream: Some("http://127.0.0.1:4000".into()),
            ..route("/a")
        };
        let both = || vec![named_route(), route("/b")];
        let (_, problems) = checked(|p| routes(both(), &no_default, false, &[], p));
        assert_eq!(
            problems,
            ["routes[1].upstream: required when upstream.url is not set"]
        );
        // Beside a gateway, a route may only decide.
        let (built, problems) = checked(|p| routes(both(), &no_default, true, &[], p));
        assert!(problems.is_empty(), "{problems:?}");
        assert!(built[1].upstream.url.is_none());
    }
}
