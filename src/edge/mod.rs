//! What the proxy decides about a raw request before anything else: its method, the authority
//! it addresses and its path, each checked and normalised once, so that every later decision
//! (own endpoint or upstream, protected or public, same origin) and the upstream itself act on
//! the same values. Also the headers only a trusted proxy may send.

pub mod host;
pub mod path;
pub mod spoofable;

use http::{HeaderValue, Method, Request};
use path::NormalPath;

/// A request that may go on: its checked authority and normalised path.
#[derive(Debug)]
pub struct Admitted<'a> {
    pub authority: HeaderValue,
    pub path: NormalPath<'a>,
}

/// Why a request was refused at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `TRACE` (it would echo the proxy's own headers, Bearer included, back to a script) and
    /// `CONNECT` (a tunnel to anywhere): 405.
    Method,
    /// A missing, duplicated or invalid `Host`: 400.
    Host(host::HostRefusal),
    /// A path outside the rule of [`path`]: 400.
    Path(path::PathRefusal),
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Method => "TRACE and CONNECT are not forwarded",
            Refusal::Host(why) => why.message(),
            Refusal::Path(why) => why.message(),
        }
    }
}

/// Checks a request's method, authority and path.
pub fn admit<B>(request: &Request<B>) -> Result<Admitted<'_>, Refusal> {
    if matches!(*request.method(), Method::TRACE | Method::CONNECT) {
        return Err(Refusal::Method);
    }
    let authority = host::authority(request.version(), request.headers(), request.uri())
        .map_err(Refusal::Host)?;
    let path = path::normalize(request.uri().path()).map_err(Refusal::Path)?;
    Ok(Admitted { authority, path })
}
