//! One request as the handlers see it: read in full, with accessors for headers, cookies,
//! Bearer tokens, query and form pairs, and TokenIDP's lenient JSON-or-form field parsing.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{AUTHORIZATION, COOKIE};
use http::{HeaderMap, Method};

use super::reply::Failure;

/// One request, read in full (every endpoint answers small forms and JSON).
#[derive(Debug)]
pub(super) struct Request {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The decoded query parameters, in order.
    pub(super) fn query_pairs(&self) -> Vec<(String, String)> {
        let query = self.query.as_deref().unwrap_or("");
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    /// The decoded `application/x-www-form-urlencoded` body, in order.
    pub(super) fn form_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }

    /// The value of one cookie from the `Cookie` header(s).
    pub(super) fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }

    /// The token of `Authorization: Bearer <token>` (scheme matched without case).
    pub(super) fn bearer(&self) -> Option<&str> {
        let value = self.header(AUTHORIZATION.as_str())?.trim();
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
            .filter(|t| !t.is_empty())
    }
}

/// Request fields, keyed without case and without underscores, so that `grant_type`,
/// `grantType` and `GRANTTYPE` all read as `granttype` (TokenIDP binds both spellings).
#[derive(Debug, Default)]
pub(super) struct Params(HashMap<String, String>);

impl Params {
    /// `name` is the canonical key: lower case, no underscores (`"granttype"`).
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

fn canonical(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Reads a JSON **or** form body. The content type decides, and without one the first byte
/// does. A field sent twice is refused (RFC 6749 §3.2).
pub(super) fn parse_params(req: &Request) -> Result<Params, Failure> {
    let bad = || Failure::invalid_request("The request body could not be read.");
    let content_type = req
        .header("content-type")
        .unwrap_or("")
        .to_ascii_lowercase();
    let first = req.body.iter().find(|b| !b.is_ascii_whitespace());
    let is_json = content_type.contains("json")
        || (!content_type.contains("x-www-form-urlencoded") && first == Some(&b'{'));
    let pairs: Vec<(String, String)> = if req.body.iter().all(u8::is_ascii_whitespace) {
        Vec::new()
    } else if is_json {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&req.body).map_err(|_| bad())?;
        let mut pairs = Vec::new();
        for (k, v) in map {
            let v = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(bad()),
            };
            pairs.push((k, v));
        }
        pairs
    } else {
        serde_urlencoded::from_bytes(&req.body).map_err(|_| bad())?
    };
    let mut params = HashMap::new();
    for (k, v) in pairs {
        if params.insert(canonical(&k), v).is_some() {
            return Err(Failure::invalid_request(
                "A parameter was sent more than once.",
            ));
        }
    }
    Ok(Params(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_match_both_spellings() {
        for name in ["grant_type", "grantType", "GrantType", "GRANT_TYPE"] {
            assert_eq!(canonical(name), "granttype");
        }
    }
}
