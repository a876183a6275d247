//! Prometheus metrics (served on the admin listener's `/metrics`).
//!
//! Label values are bounded by construction: `&'static str` outcomes and route classes, and
//! HTTP status codes. Never a path, a user, a session or a token.

use http::HeaderValue;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::OnceLock;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    pub peer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GrantLabel {
    pub grant: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The route classes of [`Metrics::request`]'s resolved counters.
const HOT_ROUTES: [&str; 2] = ["protected", "public"];
/// Statuses 100-599.
const STATUSES: std::ops::Range<u16> = 100..600;

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    /// The `requests` counters of the routes every proxied request counts under, by status
    /// (100-599), each resolved on first use: `Family::get_or_create` takes a lock and hashes
    /// the labels on every call (~360 instructions per request, BENCHMARKS.md).
    hot_requests: [Box<[OnceLock<Counter>]>; HOT_ROUTES.len()],
    pub upstream_seconds: Histogram,
    pub refreshes: Family<OutcomeLabel, Counter>,
    pub token_seconds: HistogramFamily<GrantLabel>,
    pub par_seconds: HistogramFamily<OutcomeLabel>,
    pub logins: Family<OutcomeLabel, Counter>,
    pub logouts: Family<OutcomeLabel, Counter>,
    pub csrf_refusals: Family<ReasonLabel, Counter>,
    pub cookie_bytes: Histogram,
    pub retired_key_sessions: Counter,
    pub tunnels_active: Gauge,
    pub connections_active: Gauge,
    pub coordination_fallbacks: Counter,
    pub ended_refusals: Family<ReasonLabel, Counter>,
    pub ended_entries: Gauge,
    pub ended_sync_errors: Counter,
    pub logout_token_refusals: Family<ReasonLabel, Counter>,
    pub dpop_nonce_challenges: Family<PeerLabel, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("token_handler");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route class and status",
            requests.clone(),
        );
        let upstream_seconds = latency_histogram();
        registry.register(
            "upstream_response_seconds",
            "Time from forwarding a request to the upstream's response headers",
            upstream_seconds.clone(),
        );
        let refreshes = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "refreshes",
            "Refresh outcomes: refreshed, rejected, transient (one per /token call); coalesced (waited on another request's call), grace_hit (old cookie served from the rotation window), reuse_suspected (rotated token refused locally), remote (another replica's result), panicked (a bug in the refresh task)",
            refreshes.clone(),
        );
        let token_seconds: HistogramFamily<GrantLabel> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "idp_token_seconds",
            "Latency of the IdP's /token endpoint, by grant",
            token_seconds.clone(),
        );
        let par_seconds: HistogramFamily<OutcomeLabel> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "idp_par_seconds",
            "Latency of the IdP's pushed authorization request endpoint (RFC 9126, one call per login with PAR), by outcome: pushed, refused, unavailable",
            par_seconds.clone(),
        );
        let logins = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "logins",
            "Completed or failed logins (callbacks), by outcome",
            logins.clone(),
        );
        let logouts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "logouts",
            "Logouts: by the browser (revoked, not_revoked, revocation_failed, no_session), backchannel (a valid logout token from the IdP), operator (a `sessions end` this replica learned of)",
            logouts.clone(),
        );
        let csrf_refusals = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "csrf_refusals",
            "Requests refused by the CSRF check, by reason",
            csrf_refusals.clone(),
        );
        let cookie_bytes = Histogram::new(exponential_buckets(256.0, 2.0, 9));
        registry.register(
            "session_cookie_bytes",
            "Total size of the session cookies set (all chunks)",
            cookie_bytes.clone(),
        );
        let retired_key_sessions = Counter::default();
        registry.register(
            "retired_key_sessions",
            "Sessions opened with a retired cookie key (re-sealed with the current one)",
            retired_key_sessions.clone(),
        );
        let tunnels_active = Gauge::default();
        registry.register(
            "websocket_tunnels_active",
            "Upgraded connections (WebSocket) open now",
            tunnels_active.clone(),
        );
        let connections_active = Gauge::default();
        registry.register(
            "connections_active",
            "Client connections open now",
            connections_active.clone(),
        );
        let coordination_fallbacks = Counter::default();
        registry.register(
            "coordination_fallbacks",
            "Refreshes done without cross-replica coordination because Redis was slow or down",
            coordination_fallbacks.clone(),
        );
        let ended_refusals = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "ended_session_refusals",
            "Requests refused because their session was ended: logout, backchannel, operator, idle",
            ended_refusals.clone(),
        );
        let ended_entries = Gauge::default();
        registry.register(
            "ended_sessions",
            "Entries in this replica's copy of the record of ended sessions",
            ended_entries.clone(),
        );
        let ended_sync_errors = Counter::default();
        registry.register(
            "ended_sync_errors",
            "Failed reads or writes of the shared record of ended sessions in Redis",
            ended_sync_errors.clone(),
        );
        let logout_token_refusals = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "logout_token_refusals",
            "Back-channel logout tokens refused, by reason",
            logout_token_refusals.clone(),
        );
        let dpop_nonce_challenges = Family::<PeerLabel, Counter>::default();
        registry.register(
            "dpop_nonce_challenges",
            "DPoP nonce challenges answered with a retry, by peer (idp, upstream)",
            dpop_nonce_challenges.clone(),
        );
        Metrics {
            hot_requests: std::array::from_fn(|_| STATUSES.map(|_| OnceLock::new()).collect()),
            dpop_nonce_challenges,
            ended_refusals,
            ended_entries,
            ended_sync_errors,
            logout_token_refusals,
            coordination_fallbacks,
            connections_active,
            registry,
            requests,
            upstream_seconds,
            refreshes,
            token_seconds,
            par_seconds,
            logins,
            logouts,
            csrf_refusals,
            cookie_bytes,
            retired_key_sessions,
            tunnels_active,
        }
    }

    /// Counts a request answered with `status` under route class `route`.
    pub fn request(&self, route: &'static str, status: u16) {
        let hot = HOT_ROUTES.iter().position(|r| *r == route);
        if let (Some(r), true) = (hot, STATUSES.contains(&status)) {
            let slot = &self.hot_requests[r][usize::from(status - STATUSES.start)];
            slot.get_or_init(|| {
                self.requests
                    .get_or_create(&RequestLabels { route, status })
                    .clone()
            })
            .inc();
            return;
        }
        self.requests
            .get_or_create(&RequestLabels { route, status })
            .inc();
    }

    pub fn refresh(&self, outcome: &'static str) {
        self.refreshes
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn logout(&self, outcome: &'static str) {
        self.logouts.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn ended_refusal(&self, reason: &'static str) {
        self.ended_refusals
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    pub fn logout_token_refusal(&self, reason: &'static str) {
        self.logout_token_refusals
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// A `use_dpop_nonce` challenge from `peer` ("idp" or "upstream"), answered once.
    pub fn dpop_nonce_challenge(&self, peer: &'static str) {
        self.dpop_nonce_challenges
            .get_or_create(&PeerLabel { peer })
            .inc();
    }

    pub fn csrf_refusal(&self, reason: &'static str) {
        self.csrf_refusals
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Records the size of a sealed session (its `Set-Cookie` lines).
    pub fn session_cookies(&self, lines: &[HeaderValue]) {
        let bytes: usize = lines.iter().map(HeaderValue::len).sum();
        self.cookie_bytes.observe(bytes as f64);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_counted_through_the_resolved_counters_are_the_family_s_series() {
        let m = Metrics::new();
        m.request("protected", 200);
        m.request("protected", 200);
        // The same series, reached through the family: one counter, not two.
        m.requests
            .get_or_create(&RequestLabels {
                route: "protected",
                status: 200,
            })
            .inc();
        m.request("public", 502);
        m.request("refused", 403);
        m.request("public", 999);
        let text = m.encode();
        for line in [
            "token_handler_requests_total{route=\"protected\",status=\"200\"} 3",
            "token_handler_requests_total{route=\"public\",status=\"502\"} 1",
            "token_handler_requests_total{route=\"refused\",status=\"403\"} 1",
            "token_handler_requests_total{route=\"public\",status=\"999\"} 1",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert_eq!(
            text.matches("token_handler_requests_total{route=\"protected\",status=\"200\"}")
                .count(),
            1
        );
    }

    #[test]
    fn counters_and_histograms_are_exported() {
        let m = Metrics::new();
        m.refresh("refreshed");
        m.refresh("coalesced");
        m.refresh("coalesced");
        m.requests
            .get_or_create(&RequestLabels {
                route: "protected",
                status: 200,
            })
            .inc();
        m.token_seconds
            .get_or_create(&GrantLabel {
                grant: "refresh_token",
            })
            .observe(0.01);
        let text = m.encode();
        assert!(
            text.contains("token_handler_refreshes_total{outcome=\"coalesced\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("token_handler_requests_total{route=\"protected\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("token_handler_idp_token_seconds_count{grant=\"refresh_token\"} 1"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }
}
