//! Reading the `Cookie` request header (RFC 6265 §5.4; HTTP/2 may split it over several
//! fields) as bytes: browsers send UTF-8 (even other) bytes in the app's cookie values, and one
//! such cookie must neither hide the session nor be dropped on its way upstream.

use http::header::GetAll;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

/// Every `name=value` pair of every `Cookie` header, trimmed, as the browser sent it.
pub(super) fn raw_pairs(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    pairs_of(headers.get_all(COOKIE))
}

/// [`raw_pairs`] of `Cookie` fields already looked up.
pub(super) fn pairs_of(fields: GetAll<'_, HeaderValue>) -> impl Iterator<Item = &[u8]> {
    fields
        .into_iter()
        .flat_map(|v| Semicolons(Some(v.as_bytes())))
        .map(<[u8]>::trim_ascii)
        .filter(|pair| !pair.is_empty())
}

/// A pair's name and value. A bare name (no `=`) is still a cookie someone set: it is kept,
/// with an empty value, never dropped silently.
pub(super) fn split_pair(pair: &[u8]) -> (&[u8], &[u8]) {
    match memchr::memchr(b'=', pair) {
        Some(i) => (pair[..i].trim_ascii(), pair[i + 1..].trim_ascii()),
        None => (pair, &[]),
    }
}

/// Every pair of every `Cookie` header, split into name and value.
fn cookie_pair_bytes(headers: &HeaderMap) -> impl Iterator<Item = (&[u8], &[u8])> {
    raw_pairs(headers).map(split_pair)
}

/// The pairs whose name and value are text (the proxy's own cookies always are).
pub fn cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    cookie_pair_bytes(headers).filter_map(|(name, value)| {
        Some((
            std::str::from_utf8(name).ok()?,
            std::str::from_utf8(value).ok()?,
        ))
    })
}

/// `bytes.split(|&b| b == b';')`, with memchr: a session cookie is a kilobyte or more, and a
/// byte-at-a-time split of it was an eighth of a proxied request (BENCHMARKS.md).
struct Semicolons<'a>(Option<&'a [u8]>);

impl<'a> Iterator for Semicolons<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.0?;
        match memchr::memchr(b';', rest) {
            Some(i) => {
                self.0 = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.0 = None;
                Some(rest)
            }
        }
    }
}
