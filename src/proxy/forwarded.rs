//! The `X-Forwarded-*` fields for the upstream: `X-Forwarded-For` gets the client address
//! (appended to a trusted proxy's), `-Proto` and `-Host` are set (or kept from a peer in
//! `server.trusted_proxies`).

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use std::net::IpAddr;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// A client address as the `X-Forwarded-For` value it becomes, made once per connection: each
/// request shares it (a reference count) instead of formatting, checking and copying it anew.
#[derive(Clone)]
pub struct ClientIp(HeaderValue);

impl From<IpAddr> for ClientIp {
    fn from(ip: IpAddr) -> ClientIp {
        // An address's text is digits, hex letters, `.` and `:`: always a header value.
        ClientIp(HeaderValue::from_str(&ip.to_string()).unwrap_or(HeaderValue::from_static("")))
    }
}

impl ClientIp {
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("")
    }
}

impl std::fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `X-Forwarded-*` fields of a request from a peer that is not a trusted proxy: the
/// proxy's own, since [`crate::edge::spoofable::strip`] took the peer's away. They stay out of
/// the header map (inserting three custom names cost ~1.3k instructions a request, measured in
/// BENCHMARKS.md): the direct client writes them after the map's fields, and [`Forwarded::insert`]
/// puts them in the map for hyper's client.
#[derive(Debug)]
pub struct Forwarded {
    client: ClientIp,
    proto: &'static str,
    host: Option<HeaderValue>,
}

impl Forwarded {
    /// The scheme the upstream is told (`X-Forwarded-Proto`).
    pub fn proto(&self) -> &'static str {
        self.proto
    }

    /// Writes the fields as header lines, names in lower case as the map writes them.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"x-forwarded-for: ");
        out.extend_from_slice(self.client.0.as_bytes());
        out.extend_from_slice(b"\r\nx-forwarded-proto: ");
        out.extend_from_slice(self.proto.as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(host) = &self.host {
            out.extend_from_slice(b"x-forwarded-host: ");
            out.extend_from_slice(host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Sets the fields in `headers`, replacing any there.
    pub fn insert(&self, headers: &mut HeaderMap) {
        set_forwarded(headers, &self.client, self.proto, self.host.as_ref(), false);
    }
}

/// The `X-Forwarded-*` fields for the upstream. From a trusted proxy they are merged into
/// `headers` (its earlier values kept, see [`set_forwarded`]) and `None` is returned; from any
/// other peer, whose fields `spoofable::strip` has already removed, they are returned for the
/// sender to write.
pub fn forwarded(
    headers: &mut HeaderMap,
    client: &ClientIp,
    proto: &'static str,
    host: Option<&HeaderValue>,
    trusted: bool,
) -> Option<Forwarded> {
    if trusted {
        set_forwarded(headers, client, proto, host, true);
        return None;
    }
    debug_assert!(
        !headers
            .keys()
            .any(|name| name.as_str().starts_with("x-forwarded-")),
        "an untrusted peer's X-Forwarded-* fields are stripped first"
    );
    Some(Forwarded {
        client: client.clone(),
        proto,
        host: host.cloned(),
    })
}

/// Sets the `X-Forwarded-*` headers for the upstream.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    client: &ClientIp,
    proto: &'static str,
    host: Option<&HeaderValue>,
    trusted: bool,
) {
    // Keep what earlier proxies recorded only when they are trusted; otherwise a client could
    // claim any address (and the lookup is skipped).
    let prior = trusted
        .then(|| headers.get(&X_FORWARDED_FOR))
        .flatten()
        .and_then(|v| v.to_str().ok());
    let xff = match prior {
        Some(prior) if !prior.is_empty() => {
            HeaderValue::from_str(&format!("{prior}, {}", client.as_str()))
        }
        _ => Ok(client.0.clone()),
    };
    if let Ok(v) = xff {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_PROTO)) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !(trusted && headers.contains_key(&X_FORWARDED_HOST)) {
        match host {
            Some(h) => headers.insert(X_FORWARDED_HOST.clone(), h.clone()),
            None => headers.remove(&X_FORWARDED_HOST),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::headers::tests::map;

    #[test]
    fn client_ip_text_matches_display_for_every_form() {
        for ip in [
            "10.0.0.7",
            "255.255.255.255",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "::ffff:192.168.100.200",
            "2001:db8:85a3:8d3:1319:8a2e:370:7348",
        ] {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(ClientIp::from(ip).as_str(), ip.to_string());
        }
    }

    /// From a peer that is not trusted: nothing in the map, and the fields written as lines
    /// or inserted are the ones `set_forwarded` sets.
    #[test]
    fn an_untrusted_peers_fields_are_written_or_inserted_alike() {
        let ip: IpAddr = "2001:db8::7".parse().expect("ip");
        let host = HeaderValue::from_static("app.example.com:8443");
        let mut h = map(&[("accept", "*/*")]);
        let f = forwarded(&mut h, &ip.into(), "https", Some(&host), false).expect("returned");
        assert_eq!(h.len(), 1, "the map is left alone");
        assert_eq!(f.proto(), "https");
        let mut out = Vec::new();
        f.write(&mut out);
        assert_eq!(
            out,
            b"x-forwarded-for: 2001:db8::7\r\nx-forwarded-proto: https\r\n\
              x-forwarded-host: app.example.com:8443\r\n"
        );
        f.insert(&mut h);
        let mut expected = map(&[("accept", "*/*")]);
        set_forwarded(&mut expected, &ip.into(), "https", Some(&host), false);
        assert_eq!(h, expected);
        // No authority to tell: no `X-Forwarded-Host`.
        let f = forwarded(&mut HeaderMap::new(), &ip.into(), "http", None, false).expect("some");
        let mut out = Vec::new();
        f.write(&mut out);
        assert_eq!(
            out,
            b"x-forwarded-for: 2001:db8::7\r\nx-forwarded-proto: http\r\n"
        );
    }

    /// From a trusted proxy: merged into the map, nothing left for the sender.
    #[test]
    fn a_trusted_proxys_fields_are_merged_in_the_map() {
        let ip: IpAddr = "10.0.0.7".parse().expect("ip");
        let host = HeaderValue::from_static("app.example.com");
        let mut h = map(&[("x-forwarded-for", "1.2.3.4")]);
        assert!(forwarded(&mut h, &ip.into(), "http", Some(&host), true).is_none());
        assert_eq!(h.get("x-forwarded-for").expect("xff"), "1.2.3.4, 10.0.0.7");
        assert_eq!(h.get("x-forwarded-proto").expect("xfp"), "http");
        assert_eq!(h.get("x-forwarded-host").expect("xfh"), "app.example.com");
    }

    #[test]
    fn forwarded_headers_untrusted_and_trusted() {
        let ip: IpAddr = "10.0.0.7".parse().expect("ip");
        let host = HeaderValue::from_static("app.example.com");
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(&mut h, &ip.into(), "http", Some(&host), false);
        assert_eq!(h.get("x-forwarded-for").expect("xff"), "10.0.0.7");
        assert_eq!(h.get("x-forwarded-proto").expect("xfp"), "http");
        assert_eq!(h.get("x-forwarded-host").expect("xfh"), "app.example.com");
        let mut h = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(&mut h, &ip.into(), "http", Some(&host), true);
        assert_eq!(h.get("x-forwarded-for").expect("xff"), "1.2.3.4, 10.0.0.7");
        assert_eq!(h.get("x-forwarded-proto").expect("xfp"), "https");
    }
}
