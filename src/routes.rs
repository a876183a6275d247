//! Where a request may go: the routes of the configuration (`[[routes]]`, or `[upstream]` as
//! the one route for `/`), each with its own upstream connection pool, and the identity headers
//! a route's upstream gets from the session.
//!
//! Matching is by whole segments of the normalised, decoded path (`edge::path`), in any ASCII
//! case (an upstream may route `/API` as `/api`: the route that protects `/api` must see it
//! too), the longest prefix first. With `[[routes]]` a path no route matches gets 404 and a
//! method a route does not allow 405, before any upstream is touched.

use crate::config::{Access, Config, ProxyConfig};
use crate::edge::path::under;
use crate::proxy::{Upstream, UpstreamSetupError};
use crate::session::Session;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::Value;

#[derive(Debug)]
pub struct Route {
    /// No trailing `/`; empty for `/`.
    prefix: String,
    /// `None` in forward-auth mode for a route without a URL: inline, it answers 404.
    pub upstream: Option<Upstream>,
    methods: Option<Vec<Method>>,
    access: Access,
    identity: Vec<(HeaderName, String)>,
}

#[derive(Debug)]
pub struct Routes {
    list: Vec<Route>,
    explicit: bool,
    /// Every identity header of every route: removed from every request the browser sends.
    identity_names: Vec<HeaderName>,
}

/// What the routes say about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Route `route` takes it, with this session rule; `None`: there is no upstream here (a
    /// forward-auth deployment without routes), only the session rule of `proxy.*_paths`.
    Forward {
        route: Option<usize>,
        access: Access,
    },
    /// No route (with `[[routes]]`), or no upstream at all: 404.
    NotFound,
    /// The route does not allow the method: 405 with `Allow`.
    MethodNotAllowed { allow: HeaderValue },
}

impl Routes {
    pub fn new(config: &Config) -> Result<Routes, UpstreamSetupError> {
        let mut list = Vec::new();
        let mut identity_names: Vec<HeaderName> = Vec::new();
        for route in &config.routes {
            for (name, _) in &route.identity_headers {
                if !identity_names.contains(name) {
                    identity_names.push(name.clone());
                }
            }
            list.push(Route {
                prefix: route.prefix.clone(),
                upstream: match route.upstream.url {
                    Some(_) => Some(Upstream::new(&route.upstream)?),
                    None => None,
                },
                methods: route.methods.clone(),
                access: route.access,
                identity: route.identity_headers.clone(),
            });
        }
        Ok(Routes {
            list,
            explicit: config.explicit_routes,
            identity_names,
        })
    }

    pub fn get(&self, route: usize) -> &Route {
        &self.list[route]
    }

    /// Which route takes `method` on `decoded` (the normalised, percent-decoded path).
    pub fn decide(&self, decoded: &[u8], method: &Method, proxy: &ProxyConfig) -> Decision {
        if !self.explicit {
            return Decision::Forward {
                route: (!self.list.is_empty()).then_some(0),
                access: if proxy.is_protected(decoded) {
                    Access::Required
                } else {
                    Access::Optional
                },
            };
        }
        let best = self
            .list
            .iter()
            .enumerate()
            .filter(|(_, r)| under(decoded, r.prefix.as_bytes(), true))
            .max_by_key(|(_, r)| r.prefix.len());
        let Some((i, route)) = best else {
            return Decision::NotFound;
        };
        match &route.methods {
            Some(allowed) if !allowed.contains(method) => {
                let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
                Decision::MethodNotAllowed {
                    allow: HeaderValue::from_str(&names.join(", "))
                        .unwrap_or(HeaderValue::from_static("")),
                }
            }
            _ => Decision::Forward {
                route: Some(i),
                access: route.access,
            },
        }
    }

    /// Every identity header name of every route.
    pub fn identity_names(&self) -> &[HeaderName] {
        &self.identity_names
    }

    /// Removes every identity header of every route: the browser cannot send one.
    pub fn strip_identity(&self, headers: &mut HeaderMap) {
        for name in &self.identity_names {
            headers.remove(name);
        }
    }
}

impl Route {
    /// This route's identity headers for `session` (claims it does not have are left out).
    pub fn identity(&self, session: &Session) -> Vec<(HeaderName, HeaderValue)> {
        self.identity
            .iter()
            .filter_map(|(name, claim)| Some((name.clone(), claim_value(session, claim)?)))
            .collect()
    }
}

/// A claim as a header value: strings as they are, numbers and booleans as JSON writes them,
/// arrays of those joined with `,`; controls and non-ASCII percent-encoded (UTF-8), so a
/// value can never end a header or start another.
fn claim_value(session: &Session, claim: &str) -> Option<HeaderValue> {
    let text = match claim {
        "sub" => session
            .sub
            .clone()
            .or_else(|| session.claims.get("sub")?.as_str().map(str::to_string))?,
        "sid" => session.sid.clone()?,
        other => scalar_or_list(session.claims.get(other)?)?,
    };
    let encoded =
        percent_encoding::utf8_percent_encode(&text, percent_encoding::CONTROLS).to_string();
    HeaderValue::from_str(&encoded).ok()
}

fn scalar_or_list(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|v| match v {
                    Value::Array(_) => None,
                    other => scalar_or_list(other),
                })
                .collect();
            Some(parts?.join(","))
        }
        Value::Null | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{AccessToken, RefreshToken};
    use serde_json::json;

    #[test]
    fn claims_become_header_values_that_cannot_break_a_header() {
        let mut claims = serde_json::Map::new();
        claims.insert("email".into(), "zoë@example.com".into());
        claims.insert("groups".into(), json!(["a", "b", 3]));
        claims.insert("evil".into(), "x\r\nSet-Cookie: a=b".into());
        claims.insert("nested".into(), json!({"a": 1}));
        let session = Session {
            id: "i".into(),
            refresh_token: RefreshToken::new("r"),
            access_token: AccessToken::new("a"),
            access_expires_at: 0,
            access_issued_at: 0,
            scope: String::new(),
            claims: claims.into(),
            id_token: None,
            started_at: 0,
            sub: Some("user-1".into()),
            sid: None,
            last_used_at: 0,
            dpop: None,
            dpop_bound: false,
        };
        let value = |c: &str| claim_value(&session, c).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(value("sub").as_deref(), Some("user-1"));
        assert_eq!(value("email").as_deref(), Some("zo%C3%AB@example.com"));
        assert_eq!(value("groups").as_deref(), Some("a,b,3"));
        assert_eq!(value("evil").as_deref(), Some("x%0D%0ASet-Cookie: a=b"));
        assert_eq!(value("nested"), None);
        assert_eq!(value("sid"), None);
    }
}
