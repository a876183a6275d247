//! `[upstream]`: the API this proxy fronts and how long it may take to answer; with
//! `[[routes]]`, the defaults of every route (and the upstream of those that name none).

use super::raw;
use super::validate::Problems;
use std::path::PathBuf;
use std::time::Duration;
use url::Url;

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Absent only with `[[routes]]` that each name theirs, or in forward-auth mode.
    pub url: Option<Url>,
    pub connect_timeout: Duration,
    pub response_header_timeout: Duration,
    /// Extra CA certificates (PEM) for an `https://` upstream, besides the system roots.
    pub ca_file: Option<PathBuf>,
    /// Which HTTP/1.1 client carries bodiless requests to a plain `http://` upstream.
    pub client: UpstreamClient,
}

/// `upstream.client`: the direct client (`proxy::direct`, the default) for requests without a
/// body to an `http://` upstream, the rest staying on hyper's; or hyper's HTTP/1.1 client for
/// every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamClient {
    Hyper,
    Direct,
}

/// `required`: no `[[routes]]` and no `[forward_auth]` stand in for `upstream.url`.
pub(super) fn upstream(r: raw::Upstream, required: bool, p: &mut Problems) -> UpstreamConfig {
    let url = p.url("upstream.url", r.url.clone());
    if r.url.is_none() && required {
        p.push(
            "upstream.url: required (the API this proxy fronts, e.g. \"http://127.0.0.1:3000\")",
        );
    }
    UpstreamConfig {
        url,
        connect_timeout: p.duration(
            "upstream.connect_timeout",
            r.connect_timeout,
            Duration::from_secs(2),
        ),
        response_header_timeout: p.duration(
            "upstream.response_header_timeout",
            r.response_header_timeout,
            Duration::from_secs(60),
        ),
        ca_file: p.ca_file("upstream.ca_file", r.ca_file),
        client: p.one_of(
            "upstream.client",
            r.client,
            UpstreamClient::Direct,
            &[
                ("hyper", UpstreamClient::Hyper),
                ("direct", UpstreamClient::Direct),
            ],
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::{checked, valid};

    #[test]
    fn only_the_url_is_required() {
        let c = valid(|p| {
            let url = Some("http://127.0.0.1:3000".into());
            upstream(
                raw::Upstream {
                    url,
                    ..raw::Upstream::default()
                },
                true,
                p,
            )
        });
        assert_eq!(c.url.expect("url").as_str(), "http://127.0.0.1:3000/");
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.response_header_timeout, Duration::from_secs(60));
        assert!(c.ca_file.is_none());
        assert_eq!(c.client, UpstreamClient::Direct);

        let (_, problems) = checked(|p| upstream(raw::Upstream::default(), true, p));
        assert_eq!(
            problems,
            ["upstream.url: required (the API this proxy fronts, e.g. \"http://127.0.0.1:3000\")"]
        );
    }

    #[test]
    fn refusals_name_the_key_and_the_value() {
        let r = raw::Upstream {
            url: Some("ftp://127.0.0.1".into()),
            connect_timeout: Some("soon".into()),
            response_header_timeout: Some("1 fortnight".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            client: Some("curl".into()),
        };
        let (_, problems) = checked(|p| upstream(r, true, p));
        assert_eq!(problems.len(), 5, "{problems:?}");
        assert_eq!(
            problems[0],
            "upstream.url: `ftp://127.0.0.1` must be an http(s) URL with a host"
        );
        assert!(problems[1].starts_with(
            "upstream.connect_timeout: `soon` is not a duration like \"30s\" or \"5m\""
        ));
        assert!(problems[2].starts_with("upstream.response_header_timeout: `1 fortnight`"));
        assert!(problems[3].starts_with("upstream.ca_file: cannot read /nonexistent/ca.pem"));
        assert_eq!(
            problems[4],
            "upstream.client: `curl` is not one of hyper, direct"
        );
    }

    #[test]
    fn each_client_is_chosen_by_name() {
        for (name, client) in [
            ("direct", UpstreamClient::Direct),
            ("hyper", UpstreamClient::Hyper),
        ] {
            let c = valid(|p| {
                upstream(
                    raw::Upstream {
                        url: Some("http://127.0.0.1:3000".into()),
                        client: Some(name.into()),
                        ..raw::Upstream::default()
                    },
                    true,
                    p,
                )
            });
            assert_eq!(c.client, client, "{name}");
        }
    }
}
