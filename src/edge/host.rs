//! The authority a request is addressed to: exactly one valid value, or the request is refused.
//!
//! RFC 9112 §3.2: an HTTP/1.1 request without `Host`, with more than one, or with an invalid
//! one gets 400; the authority of an absolute-form target wins over `Host` (§3.2.2). RFC 9113
//! §8.3.1: in HTTP/2 `:authority` wins; `Host` is used only when it is absent. The value that
//! comes out is what the proxy uses everywhere after (the upstream `Host`, `X-Forwarded-Host`,
//! the CSRF same-origin check), so none of them can disagree.

use http::header::HOST;
use http::{HeaderMap, HeaderValue, Uri, Version};

/// Why the authority was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRefusal {
    Missing,
    Duplicate,
    Invalid,
}

impl HostRefusal {
    pub fn message(self) -> &'static str {
        match self {
            HostRefusal::Missing => "the request has no Host",
            HostRefusal::Duplicate => "the request has more than one Host",
            HostRefusal::Invalid => "the request's Host is not a valid host[:port]",
        }
    }
}

/// The request's authority (`host[:port]`), checked.
pub fn authority(
    version: Version,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<HeaderValue, HostRefusal> {
    let host = the_host(headers)?;
    if let Some(authority) = uri.authority() {
        // h2 `:authority`, or an HTTP/1.1 absolute-form target.
        if version < Version::HTTP_2 && host.is_none() {
            return Err(HostRefusal::Missing);
        }
        let value = authority.as_str().as_bytes();
        if !valid(value) {
            return Err(HostRefusal::Invalid);
        }
        return HeaderValue::from_bytes(value).map_err(|_| HostRefusal::Invalid);
    }
    match host {
        // The header itself, shared rather than copied.
        Some(value) if valid(value.as_bytes()) => Ok(value.clone()),
        Some(_) => Err(HostRefusal::Invalid),
        None => Err(HostRefusal::Missing),
    }
}

/// The request's one `Host` value, if any. A head holds a few fields: comparing their names
/// (a standard name is one byte) costs less than hashing `Host` (as `proxy::headers::has`);
/// a large map is hashed.
fn the_host(headers: &HeaderMap) -> Result<Option<&HeaderValue>, HostRefusal> {
    let mut found = None;
    if headers.len() <= 8 {
        for (name, value) in headers {
            if name == HOST && found.replace(value).is_some() {
                return Err(HostRefusal::Duplicate);
            }
        }
        return Ok(found);
    }
    let mut hosts = headers.get_all(HOST).iter();
    found = hosts.next();
    if hosts.next().is_some() {
        return Err(HostRefusal::Duplicate);
    }
    Ok(found)
}

/// Bytes of a DNS-style host name: letters, digits, `-`, `.`, `_`.
static NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
        c += 1;
    }
    table
};

/// `host[:port]` where host is a DNS-style name, an IPv4 address or a bracketed IPv6 literal
/// and port is 1–5 digits up to 65535. No userinfo, no escapes, no sub-delims: nothing that
/// two parsers could read as different hosts.
pub fn valid(value: &[u8]) -> bool {
    if value.is_empty() || value.len() > 261 {
        return false;
    }
    let (host, port) = if value[0] == b'[' {
        let Some(end) = memchr::memchr(b']', value) else {
            return false;
        };
        let literal = &value[1..end];
        let ipv6 = std::str::from_utf8(literal)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok());
        if ipv6.is_none() {
            return false;
        }
        match &value[end + 1..] {
            [] => (&value[..=end], None),
            [b':', port @ ..] => (&value[..=end], Some(port)),
            _ => return false,
        }
    } else {
        // One pass: the name's bytes up to the first other byte, which must be the port's `:`.
        match value.iter().position(|&c| !NAME_BYTE[usize::from(c)]) {
            None => (value, None),
            Some(colon) if value[colon] == b':' => (&value[..colon], Some(&value[colon + 1..])),
            Some(_) => return false,
        }
    };
    let host_ok = host.first() == Some(&b'[') || (!host.is_empty() && host.len() <= 253);
    let port_ok = match port {
        None => true,
        Some(p) => {
            (1..=5).contains(&p.len())
                && p.iter()
                    .try_fold(0u32, |n, &c| {
                        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
                    })
                    .is_some_and(|n| n <= 65535)
        }
    };
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h1(hosts: &[&str], target: &str) -> Result<String, HostRefusal> {
        let mut headers = HeaderMap::new();
        for h in hosts {
            headers.append(HOST, HeaderValue::from_str(h).expect("value"));
        }
        let uri: Uri = target.parse().expect("uri");
        authority(Version::HTTP_11, &headers, &uri).map(|v| v.to_str().expect("ascii").to_string())
    }

    #[test]
    fn one_valid_host_or_400() {
        assert_eq!(
            h1(&["app.example.com"], "/").as_deref(),
            Ok("app.example.com")
        );
        assert_eq!(
            h1(&["127.0.0.1:8080"], "/").as_deref(),
            Ok("127.0.0.1:8080")
        );
        assert_eq!(h1(&["[::1]:8080"], "/").as_deref(), Ok("[::1]:8080"));
        assert_eq!(h1(&[], "/"), Err(HostRefusal::Missing));
        assert_eq!(h1(&["a", "b"], "/"), Err(HostRefusal::Duplicate));
        for bad in [
            "",
            "evil.example@app",
            "app/x",
            "app:",
            "app:99999",
            "app:80:80",
            "a pp",
            "app%2e",
            "[::1",
            "[zz]:1",
            "app,evil",
            "app\\evil",
        ] {
            assert_eq!(h1(&[bad], "/"), Err(HostRefusal::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn the_target_authority_wins() {
        assert_eq!(
            h1(&["other"], "http://app.example.com/x").as_deref(),
            Ok("app.example.com")
        );
        let uri: Uri = "https://app.example.com/x".parse().expect("uri");
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("evil.example"));
        let v = authority(Version::HTTP_2, &headers, &uri).expect("h2");
        assert_eq!(v, "app.example.com");
        assert_eq!(
            authority(
                Version::HTTP_2,
                &HeaderMap::new(),
                &"/x".parse().expect("uri")
            ),
            Err(HostRefusal::Missing)
        );
    }

    /// The rule as written before the one-pass check: split at the first `:`, the name all
    /// DNS-style bytes, the port 1–5 digits up to 65535.
    fn reference(value: &[u8]) -> bool {
        if value.is_empty() || value.len() > 261 || value[0] == b'[' {
            return false;
        }
        let (host, port) = match value.iter().position(|&c| c == b':') {
            Some(colon) => (&value[..colon], Some(&value[colon + 1..])),
            None => (value, None),
        };
        let name = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_');
        let port_ok = port.is_none_or(|p| {
            (1..=5).contains(&p.len())
                && p.iter().all(u8::is_ascii_digit)
                && std::str::from_utf8(p).unwrap().parse::<u32>().unwrap() <= 65535
        });
        !host.is_empty() && host.len() <= 253 && host.iter().all(|&c| name(c)) && port_ok
    }

    /// Every string of up to four bytes over the bytes that matter, and ports around the
    /// limits: the one-pass check agrees with the rule.
    #[test]
    fn names_and_ports_as_the_rule_says() {
        let alphabet = b"a9-._:%@ /\\\x80";
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new()];
        for len in 1..=4 {
            let mut next = Vec::new();
            for input in inputs.iter().filter(|i| i.len() == len - 1) {
                for &c in alphabet {
                    let mut longer = input.clone();
                    longer.push(c);
                    next.push(longer);
                }
            }
            inputs.extend(next);
        }
        for port in [
            "", "0", "1", "65535", "65536", "99999", "123456", "8a", ":1", "00080",
        ] {
            inputs.push(format!("app.example:{port}").into_bytes());
        }
        inputs.push("a".repeat(253).into_bytes());
        inputs.push("a".repeat(254).into_bytes());
        for input in &inputs {
            assert_eq!(
                valid(input),
                reference(input),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
