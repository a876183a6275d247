//! The request as it goes upstream: its head rewritten once (hop-by-hop, spoofable and
//! `X-Forwarded-*` headers, our cookies, the checked Host and normalised path), then built for
//! each send with the user's credential: `Authorization: Bearer`, or for a DPoP-bound session
//! `Authorization: DPoP` and a new proof for the URL the API receives.

use crate::app::App;
use crate::body::{full, Body};
use crate::dpop::nonce::{NonceCache, DPOP};
use crate::dpop::DpopKey;
use crate::edge::spoofable;
use crate::proxy::bearer::set_bearer;
use crate::proxy::forwarded::{self, Forwarded};
use crate::proxy::{headers, maps, own_bytes, ConnInfo, Upstream};
use crate::secret::AccessToken;
use crate::server::RequestBody;
use crate::session::Presence;
use bytes::Bytes;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version};
use hyper::upgrade::OnUpgrade;
use tracing::{info, warn};

/// A request rewritten for the upstream, minus body and token: can be sent again.
pub(super) struct Prepared {
    pub(super) method: Method,
    pub(super) uri: Uri,
    /// Taken by [`Prepared::first`] when the request is lent: then left with no capacity.
    pub(super) headers: maps::Fields,
    /// `X-Forwarded-*`, when they are not in `headers` (the peer is not a trusted proxy): for
    /// the sender to write or insert.
    forwarded: Option<Forwarded>,
    /// The header fields went with the request [`Prepared::first`] made: the ones after it
    /// are made from that request, handed back.
    lent: bool,
}

impl Prepared {
    /// The first request, with `credential`. When the upstream's client lends it back
    /// ([`Upstream::lends`]: the direct client, a request without a body or whose body's bytes
    /// are `ready`), the header fields go with it rather than a copy, and any request after it
    /// is made from the one handed back ([`Prepared::again`]).
    pub(super) fn first(
        &mut self,
        body: Body,
        ready: Option<&Bytes>,
        credential: Option<&Credential<'_>>,
        upstream: &Upstream,
    ) -> Option<Request<Body>> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = Version::HTTP_11;
        maps::replace(request.headers_mut(), self.headers.take());
        if upstream.lends(&request, ready) {
            self.lent = true;
        } else {
            maps::replace(&mut self.headers, request.headers().clone());
        }
        self.authorized(request, credential)
    }

    /// The request again, with `body` and `credential` (a new DPoP proof, or another token):
    /// from `lent`, the request the upstream's client handed back, or else from the prepared
    /// head. `None` when the credential cannot be sent, or the head went with a request that
    /// was not handed back.
    pub(super) fn again(
        &self,
        lent: Option<Request<Body>>,
        body: Body,
        credential: Option<&Credential<'_>>,
    ) -> Option<Request<Body>> {
        match lent {
            Some(mut request) => {
                *request.body_mut() = body;
                self.authorized(request, credential)
            }
            None if self.lent => None,
            None => self.request(body, credential),
        }
    }

    /// The request again after the upstream closed a kept-alive connection without answering
    /// (RFC 9110 §9.2.2): only for idempotent methods, whose repetition is harmless. `lent` as
    /// for [`Prepared::again`].
    pub(super) fn replay(
        &self,
        lent: Option<Request<Body>>,
        body: &Bytes,
        credential: Option<&Credential<'_>>,
    ) -> Option<Request<Body>> {
        let idempotent = matches!(
            self.method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        );
        if !idempotent {
            return None;
        }
        let again = self.again(lent, full(body.clone()), credential);
        if again.is_some() {
            info!("the upstream closed a kept-alive connection before answering; sending again");
        }
        again
    }

    /// A request from the prepared head (which must not have been lent), with `credential`.
    fn request(&self, body: Body, credential: Option<&Credential<'_>>) -> Option<Request<Body>> {
        let mut request = Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = Version::HTTP_11;
        maps::replace(request.headers_mut(), self.headers.clone());
        self.authorized(request, credential)
    }

    /// `request` with `credential` set (whatever credential it carried replaced).
    fn authorized(
        &self,
        mut request: Request<Body>,
        credential: Option<&Credential<'_>>,
    ) -> Option<Request<Body>> {
        let Some(credential) = credential else {
            return Some(request);
        };
        // A proof is the proxy's to make: none from the browser goes along. Looked for before
        // the hashed removal: a browser almost never sends one.
        if headers::has(request.headers(), &DPOP) {
            request.headers_mut().remove(&DPOP);
        }
        let set = match (credential.dpop, credential.bearer) {
            (None, Some(ready)) => {
                request.headers_mut().insert(AUTHORIZATION, ready.clone());
                true
            }
            (None, None) => {
                set_bearer(request.headers_mut(), credential.token.expose_bytes()).is_ok()
            }
            // A new proof for this method and URL, with the API's latest nonce.
            (Some((key, nonces)), _) => {
                let htu = self.htu(request.headers());
                crate::dpop::authorize(
                    request.headers_mut(),
                    key,
                    credential.token.expose(),
                    self.method.as_str(),
                    &htu,
                    nonces.current().as_deref().map(String::as_str),
                )
            }
        };
        if !set {
            warn!("the access token is not a valid header value; not forwarding");
            return None;
        }
        Some(request)
    }

    /// The request's `X-Forwarded-*` fields when they are not in its header map.
    pub(super) fn forwarded(&self) -> Option<&Forwarded> {
        self.forwarded.as_ref()
    }

    /// The URL the API receives, as it reconstructs it: the scheme it is told
    /// (`X-Forwarded-Proto`), the `Host` it is sent (in `headers`, the request's) and the path,
    /// without the query (RFC 9449 §4.2 `htu`).
    fn htu(&self, headers: &HeaderMap) -> String {
        let proto = match &self.forwarded {
            Some(forwarded) => Some(forwarded.proto().to_string()),
            None => headers
                .get(&forwarded::X_FORWARDED_PROTO)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_ascii_lowercase()),
        }
        .filter(|v| v == "https" || v == "http")
        .unwrap_or_else(|| "http".to_string());
        let host = headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        format!("{proto}://{host}{}", self.uri.path())
    }
}

/// What proves the user upstream: the session's access token, and for a DPoP-bound one the
/// session's key and the API's nonces (a new proof is signed for every send).
pub(super) struct Credential<'a> {
    pub(super) token: &'a AccessToken,
    pub(super) dpop: Option<(&'a DpopKey, &'a NonceCache)>,
    /// `Bearer <token>` ready (from the cache of opened sessions).
    pub(super) bearer: Option<&'a HeaderValue>,
}

impl<'a> Credential<'a> {
    pub(super) fn of(
        session: &'a crate::session::Session,
        upstream: &'a Upstream,
    ) -> Credential<'a> {
        Credential {
            token: &session.access_token,
            dpop: session
                .dpop
                .as_ref()
                .filter(|_| session.dpop_bound)
                .map(|key| (key, upstream.dpop_nonce())),
            bearer: None,
        }
    }
}

/// Where a request goes upstream, as checked at the edge: the authority it addressed and,
/// when normalisation changed it, its path.
#[derive(Debug)]
pub struct Target {
    /// The route that takes it (`app.routes`).
    pub route: usize,
    pub authority: HeaderValue,
    pub path: Option<String>,
}

/// The upstream of the request's route (the handler routes only to routes that have one).
pub(super) fn upstream_of<'a>(app: &'a App, target: &Target) -> &'a Upstream {
    app.routes
        .get(target.route)
        .upstream
        .as_ref()
        .expect("routed only to a route with an upstream")
}

/// Rewrites the request's head for the upstream (hop-by-hop, spoofable and X-Forwarded-*
/// headers, our cookies, the checked Host and normalised path). Inlined in its two callers:
/// its result, a request's whole head, is then built where they keep it, not copied there.
#[inline(always)]
pub(super) fn prepare(
    app: &App,
    mut request: Request<RequestBody>,
    conn: ConnInfo,
    upgrade: bool,
    target: Target,
    presence: &Presence,
) -> (Prepared, RequestBody, Option<OnUpgrade>) {
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    // Rebuilding `Cookie` without ours costs a pass over it: skip it when only ours are there.
    let kept_cookies = if presence.foreign_cookies() {
        app.codec.strip_own(&headers)
    } else {
        None
    };
    let named_removed = headers::strip_hop_by_hop(&mut headers, upgrade);
    spoofable::strip(&mut headers, conn.trusted);
    app.routes.strip_identity(&mut headers);
    let forwarded = forwarded::forwarded(
        &mut headers,
        &conn.client_ip,
        if conn.tls { "https" } else { "http" },
        Some(&target.authority),
        conn.trusted,
    );
    if presence.cookie_sent() {
        headers::set_cookies(&mut headers, kept_cookies);
    }
    let mut uri = upstream_of(app, &target).target(&parts.uri, target.path.as_deref());
    // The Host the browser addressed (HTTP/2 sends it as :authority only), checked. Without a
    // target authority it was the request's own Host field (`edge::host`), which already says
    // it, unless a `Connection` token named it (and the strip took it away).
    if parts.uri.authority().is_some() || named_removed {
        headers.insert(HOST, target.authority);
    }
    // Large cookies (a chunked session) made hyper read this head into a buffer of 24 KiB or
    // more, which the values left (and the target) would keep allocated until the upstream has
    // answered: they get bytes of their own, and it goes now (BENCHMARKS.md, "What the RSS is
    // made of"). A head the direct server read has its own bytes already.
    if presence.large_cookies() && !body.head_has_own_bytes() {
        own_bytes::own_values(&mut headers);
        uri = own_bytes::own_uri(uri);
    }
    let prepared = Prepared {
        method: parts.method,
        uri,
        headers: maps::Fields::new(headers),
        forwarded,
        lent: false,
    };
    (prepared, body, client_upgrade)
}
