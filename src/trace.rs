//! OpenTelemetry spans of the data path, and W3C trace context (`traceparent`, `tracestate`)
//! read from the browser and passed to the upstream and the IdP.
//!
//! These spans have their own target ([`TARGET`]): only the OpenTelemetry layer sees them (the
//! log layer filters them out, so log lines read the same with traces on or off), and they are
//! made only when `[telemetry]` is configured ([`Traces`]). With traces off each helper here
//! returns a disabled span after one branch, and nothing is read from or written to headers:
//! a browser's `traceparent` then goes upstream as it came.
//!
//! Attributes follow the logs' rule: never a token, a cookie, a proof, a query or a full URL;
//! a path (`url.path`, the request's only) and the peers' host names and ports are all.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, Method};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::field::Empty;
use tracing::{info_span, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span meant for OpenTelemetry (and only for it).
pub const TARGET: &str = "token_handler::otel";

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Longest `url.path` recorded (a path is bounded by `server.max_header_bytes` only).
const MAX_PATH: usize = 512;
/// Longest `tracestate` taken from a browser (W3C trace context §3.3.1.5: 512 characters may
/// be kept and the rest dropped; all of it is dropped here).
const MAX_TRACESTATE: usize = 512;

/// Whether this proxy makes spans for OpenTelemetry (`[telemetry]` configured). Copied into
/// each part of the proxy that makes spans; off, those parts pay one branch per span.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traces {
    on: bool,
}

impl Traces {
    pub fn new(on: bool) -> Traces {
        Traces { on }
    }

    pub fn on(self) -> bool {
        self.on
    }

    /// The server span of one request (`request`), a child of the browser's `traceparent`
    /// when it sent a valid one (a new trace otherwise). `route`: the route class, as in the
    /// metrics.
    #[inline]
    pub fn request(self, method: &Method, path: &str, headers: &HeaderMap, route: &str) -> Span {
        if !self.on {
            return Span::none();
        }
        request_span(method, path, headers, route)
    }

    /// `session.open`: the session cookies read, opened and checked against ended sessions.
    #[inline]
    pub fn session_open(self) -> Span {
        if !self.on {
            return Span::none();
        }
        session_open_span()
    }

    /// `refresh`: one refresh of a session (the leader's: a replica's turn, the `/token` call,
    /// the new cookies sealed).
    pub fn refresh(self) -> Span {
        if !self.on {
            return Span::none();
        }
        info_span!(
            target: TARGET,
            "refresh",
            token_handler.refresh.outcome = Empty,
            otel.status_code = Empty,
        )
    }

    /// `refresh.wait`: waiting on a refresh that someone else runs: another `request` of this
    /// replica, or another `replica` (through Redis).
    pub fn refresh_wait(self, waited_on: &'static str) -> Span {
        if !self.on {
            return Span::none();
        }
        info_span!(
            target: TARGET,
            "refresh.wait",
            token_handler.refresh.waited_on = waited_on,
        )
    }

    /// A call to the IdP (`idp.token`, `idp.par`, `idp.revoke`): a client span naming the
    /// endpoint's host and port, never its URL.
    pub fn idp(self, name: &'static str, method: &'static str, endpoint: &url::Url) -> Span {
        if !self.on {
            return Span::none();
        }
        info_span!(
            target: TARGET,
            "idp",
            otel.name = name,
            otel.kind = "client",
            http.request.method = method,
            server.address = endpoint.host_str().unwrap_or_default(),
            server.port = endpoint.port_or_known_default().unwrap_or_default(),
            http.response.status_code = Empty,
            otel.status_code = Empty,
        )
    }

    /// `upstream`: one request sent to the upstream (a retry is another span).
    #[inline]
    pub fn upstream(self, method: &Method, uri: &http::Uri) -> Span {
        if !self.on {
            return Span::none();
        }
        upstream_span(method, uri)
    }
}

pin_project_lite::pin_project! {
    /// A request's future inside its OpenTelemetry server span and its log span, both entered
    /// on every poll (the OpenTelemetry one first, so the spans made inside find it as their
    /// parent). One wrapper, built in place like `Instrumented`: with traces off the request
    /// pays an enter and exit of a disabled span per poll, and no second wrapper's move of
    /// the whole future (measured: that move cost ~600 instructions per request).
    #[derive(Debug)]
    pub struct InSpans<F> {
        pub otel: Span,
        pub log: Span,
        #[pin]
        pub inner: F,
    }
}

impl<F: std::future::Future> std::future::Future for InSpans<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let _otel = this.otel.enter();
        let _log = this.log.enter();
        this.inner.poll(cx)
    }
}

/// The `request` span (traces on), outside the data path's fast check.
#[inline(never)]
fn request_span(method: &Method, path: &str, headers: &HeaderMap, route: &str) -> Span {
    let span = info_span!(
        target: TARGET,
        "request",
        otel.kind = "server",
        http.request.method = method.as_str(),
        url.path = truncate(path, MAX_PATH),
        token_handler.route = route,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    );
    if let Some(parent) = browser_parent(headers) {
        // Set before the span is first entered; only fails when the OpenTelemetry layer
        // is not installed (then there is nothing to join anyway).
        let _ = span.set_parent(parent);
    }
    span
}

/// The `session.open` span (traces on).
#[inline(never)]
fn session_open_span() -> Span {
    info_span!(target: TARGET, "session.open", token_handler.session = Empty)
}

/// The `upstream` span (traces on).
#[inline(never)]
fn upstream_span(method: &Method, uri: &http::Uri) -> Span {
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    info_span!(
        target: TARGET,
        "upstream",
        otel.kind = "client",
        http.request.method = method.as_str(),
        server.address = uri.host().unwrap_or_default(),
        server.port = port,
        http.response.status_code = Empty,
        otel.status_code = Empty,
    )
}

/// Records an HTTP status on a span made above; `error` marks the span failed.
#[inline]
pub fn record_status(span: &Span, status: u16, error: bool) {
    if !span.is_disabled() {
        record_status_on(span, status, error);
    }
}

#[inline(never)]
fn record_status_on(span: &Span, status: u16, error: bool) {
    span.record("http.response.status_code", status);
    if error {
        span.record("otel.status_code", "ERROR");
    }
}

/// Marks a span failed (no answer, or an outcome that is an error).
pub fn record_error(span: &Span) {
    if !span.is_disabled() {
        span.record("otel.status_code", "ERROR");
    }
}

/// Replaces `traceparent` and `tracestate` in `headers` with `span`'s trace context, for the
/// peer it calls. Nothing when `span` is disabled (traces off): the headers stay as they are.
#[inline]
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    if !span.is_disabled() {
        inject_into(span, headers);
    }
}

#[inline(never)]
fn inject_into(span: &Span, headers: &mut HeaderMap) {
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    headers.remove(&TRACEPARENT);
    headers.remove(&TRACESTATE);
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}

/// [`inject`] for a reqwest request to the IdP.
pub fn inject_reqwest(span: &Span, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if span.is_disabled() {
        return request;
    }
    let mut headers = HeaderMap::new();
    inject(span, &mut headers);
    request.headers(headers)
}

/// The browser's trace context, when its `traceparent` is exactly one well-formed header
/// (W3C trace context §3.2: version, 32 and 16 lowercase hex digits, flags; all-zero ids
/// refused by the propagator). Anything else starts a new trace: a browser can send anything.
fn browser_parent(headers: &HeaderMap) -> Option<opentelemetry::Context> {
    let mut values = headers.get_all(&TRACEPARENT).iter();
    let value = values.next()?;
    if values.next().is_some() || !well_formed(value.as_bytes()) {
        return None;
    }
    let parent = TraceContextPropagator::new().extract(&BrowserHeaders(headers));
    parent.span().span_context().is_valid().then_some(parent)
}

/// `traceparent`'s shape, stricter than the propagator's parsing (which takes short ids).
fn well_formed(v: &[u8]) -> bool {
    let hex = |b: &[u8]| b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let fields_ok = v.len() >= 55
        && hex(&v[0..2])
        && &v[0..2] != b"ff"
        && v[2] == b'-'
        && hex(&v[3..35])
        && v[35] == b'-'
        && hex(&v[36..52])
        && v[52] == b'-'
        && hex(&v[53..55]);
    // Version 00 is exactly these fields; a later version may append `-...` after them.
    fields_ok && (v.len() == 55 || (&v[0..2] != b"00" && v[55] == b'-'))
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The browser's headers as the propagator reads them: `tracestate` only when short enough.
struct BrowserHeaders<'a>(&'a HeaderMap);

impl Extractor for BrowserHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let value = self.0.get(key)?.to_str().ok()?;
        (key != TRACESTATE.as_str() || value.len() <= MAX_TRACESTATE).then_some(value)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// Sets the headers the propagator writes; an empty `tracestate` is left out.
struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_traceparents_are_taken() {
        let ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(well_formed(ok.as_bytes()));
        assert!(well_formed(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later"
        ));
        for bad in [
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-1-2-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "",
        ] {
            assert!(!well_formed(bad.as_bytes()), "{bad}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, HeaderValue::from_static(ok));
        assert!(browser_parent(&headers).is_some());
        headers.append(&TRACEPARENT, HeaderValue::from_static(ok));
        assert!(browser_parent(&headers).is_none(), "two are none");
        let mut zero = HeaderMap::new();
        zero.insert(
            &TRACEPARENT,
            HeaderValue::from_static("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        );
        assert!(browser_parent(&zero).is_none(), "an all-zero trace id");
    }

    #[test]
    fn off_makes_no_span_and_touches_no_header() {
        let off = Traces::default();
        let mut headers = HeaderMap::new();
        headers.insert(&TRACEPARENT, HeaderValue::from_static("from-the-browser"));
        let span = off.request(&Method::GET, "/api", &headers, "protected");
        assert!(span.is_none());
        inject(
            &off.upstream(&Method::GET, &"http://api/x".parse().expect("uri")),
            &mut headers,
        );
        assert_eq!(headers[&TRACEPARENT], "from-the-browser");
        assert_eq!(truncate("abcé", 4), "abc");
    }
}
