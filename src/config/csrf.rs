//! `[csrf]`: the header a cross-site form cannot send, and the other origins allowed.

use super::raw;
use super::validate::Problems;
use http::HeaderName;
use url::Url;

#[derive(Debug, Clone)]
pub struct CsrfConfig {
    pub header: HeaderName,
    /// Origins allowed besides the request's own (`scheme://host[:port]`).
    pub allowed_origins: Vec<String>,
}

pub(super) fn csrf(r: raw::Csrf, p: &mut Problems) -> CsrfConfig {
    let name = r.header.unwrap_or_else(|| "x-csrf".to_string());
    let header = HeaderName::from_bytes(name.as_bytes()).unwrap_or_else(|_| {
        p.push(format!("csrf.header: `{name}` is not a header name"));
        HeaderName::from_static("x-csrf")
    });
    let mut allowed_origins = Vec::new();
    for origin in r.allowed_origins.unwrap_or_default() {
        match Url::parse(&origin) {
            Ok(u) if u.host().is_some() && matches!(u.path(), "" | "/") && u.query().is_none() => {
                allowed_origins.push(u.origin().ascii_serialization())
            }
            _ => p.push(format!("csrf.allowed_origins: `{origin}` must be an origin like \"https://app.example.com\"")),
        }
    }
    CsrfConfig {
        header,
        allowed_origins,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::{checked, valid};

    #[test]
    fn defaults_allow_only_the_request_origin() {
        let c = valid(|p| csrf(raw::Csrf::default(), p));
        assert_eq!(c.header, "x-csrf");
        assert!(c.allowed_origins.is_empty());
    }

    fn section(header: &str, origins: &[&str]) -> raw::Csrf {
        raw::Csrf {
            header: Some(header.into()),
            allowed_origins: Some(origins.iter().map(|o| o.to_string()).collect()),
        }
    }

    #[test]
    fn origins_are_kept_in_their_serialised_form() {
        let r = section(
            "X-Requested-With",
            &[
                "https://App.example.com",
                "https://b.example.com:8443/",
                "https://c.example.com:443",
            ],
        );
        let c = valid(|p| csrf(r, p));
        assert_eq!(c.header, "x-requested-with");
        assert_eq!(
            c.allowed_origins,
            [
                "https://app.example.com",
                "https://b.example.com:8443",
                "https://c.example.com"
            ]
        );
    }

    #[test]
    fn refusals_name_the_key_and_the_value() {
        let bad = [
            "https://app.example.com/path",
            "https://app.example.com/?q=1",
            "app.example.com",
            "data:text/plain,hi",
        ];
        let (c, problems) = checked(|p| csrf(section("x csrf", &bad), p));
        assert_eq!(c.header, "x-csrf", "the default stands in");
        assert_eq!(problems.len(), 1 + bad.len(), "{problems:?}");
        assert_eq!(problems[0], "csrf.header: `x csrf` is not a header name");
        for (problem, origin) in problems[1..].iter().zip(bad) {
            assert_eq!(
                *problem,
                format!(
                    "csrf.allowed_origins: `{origin}` must be an origin like \"https://app.example.com\""
                )
            );
        }
    }
}
