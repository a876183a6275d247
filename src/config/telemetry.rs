//! `[telemetry]`: OpenTelemetry traces, exported over OTLP (off unless `otlp_endpoint` is set).

use super::raw;
use super::validate::Problems;
use std::time::Duration;
use url::Url;

/// How spans travel to the collector. Only OTLP/HTTP with protobuf bodies: gRPC would bring
/// tonic and its tower stack into every build for the same data (a Collector listens for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    HttpProtobuf,
}

/// Where and how traces are exported. `None` in [`super::Config`]: no spans are made for
/// OpenTelemetry and nothing is propagated (a browser's `traceparent` goes upstream as sent).
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// The collector's traces URL, used as written (`http://collector:4318/v1/traces`).
    pub otlp_endpoint: Url,
    pub protocol: OtlpProtocol,
    /// `service.name` of every span.
    pub service_name: String,
    /// Share of new traces sampled (0.0–1.0); a request that carries a `traceparent` follows
    /// its parent's decision (parent-based).
    pub sample_ratio: f64,
    /// Longest one export may take.
    pub timeout: Duration,
    /// How long finished spans wait to be sent in one batch.
    pub batch_delay: Duration,
}

pub(super) fn telemetry(r: raw::Telemetry, p: &mut Problems) -> Option<TelemetryConfig> {
    let endpoint = p.url("telemetry.otlp_endpoint", r.otlp_endpoint);
    if let Some("grpc") = r
        .protocol
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        p.push("telemetry.protocol: `grpc` is not supported: use http/protobuf (a Collector's OTLP/HTTP port, 4318)");
    } else {
        p.one_of(
            "telemetry.protocol",
            r.protocol,
            OtlpProtocol::HttpProtobuf,
            &[("http/protobuf", OtlpProtocol::HttpProtobuf)],
        );
    }
    if endpoint.as_ref().is_some_and(|u| u.path() == "/") {
        p.push("telemetry.otlp_endpoint: name the traces path too, e.g. http://collector:4318/v1/traces (the URL is used as written)");
    }
    let service_name = r
        .service_name
        .unwrap_or_else(|| "token-handler".to_string());
    if service_name.trim().is_empty() {
        p.push("telemetry.service_name: must not be empty");
    }
    let sample_ratio = r.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        p.push(format!(
            "telemetry.sample_ratio: {sample_ratio} is not between 0.0 and 1.0"
        ));
    }
    let timeout = p.duration_at_least(
        "telemetry.timeout",
        r.timeout,
        Duration::from_secs(10),
        Duration::from_millis(100),
    );
    let batch_delay = p.duration_at_least(
        "telemetry.batch_delay",
        r.batch_delay,
        Duration::from_secs(5),
        Duration::from_millis(10),
    );
    Some(TelemetryConfig {
        otlp_endpoint: endpoint?,
        protocol: OtlpProtocol::HttpProtobuf,
        service_name,
        sample_ratio,
        timeout,
        batch_delay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::validate::{checked, valid};

    #[test]
    fn off_without_an_endpoint_and_defaults_with_one() {
        assert!(valid(|p| telemetry(raw::Telemetry::default(), p)).is_none());
        let r = raw::Telemetry {
            otlp_endpoint: Some("http://collector:4318/v1/traces".into()),
            ..raw::Telemetry::default()
        };
        let c = valid(|p| telemetry(r, p)).expect("on");
        assert_eq!(c.otlp_endpoint.as_str(), "http://collector:4318/v1/traces");
        assert_eq!(c.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(c.service_name, "token-handler");
        assert_eq!(c.sample_ratio, 1.0);
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.batch_delay, Duration::from_secs(5));
    }

    #[test]
    fn every_mistake_is_named() {
        let r = raw::Telemetry {
            otlp_endpoint: Some("http://collector:4318".into()),
            protocol: Some("GRPC".into()),
            service_name: Some(" ".into()),
            sample_ratio: Some(1.5),
            timeout: Some("1ms".into()),
            batch_delay: Some("soon".into()),
        };
        let (_, problems) = checked(|p| telemetry(r, p));
        let starts = [
            "telemetry.protocol: `grpc` is not supported",
            "telemetry.otlp_endpoint: name the traces path",
            "telemetry.service_name",
            "telemetry.sample_ratio: 1.5",
            "telemetry.timeout: must be at least",
            "telemetry.batch_delay: `soon`",
        ];
        assert_eq!(problems.len(), starts.len(), "{problems:#?}");
        for (problem, start) in problems.iter().zip(starts) {
            assert!(
                problem.starts_with(start),
                "`{start}` expected, got `{problem}`"
            );
        }
        let r = raw::Telemetry {
            otlp_endpoint: Some("http://user:pw@collector:4318/v1/traces".into()),
            protocol: Some("http/json".into()),
            ..raw::Telemetry::default()
        };
        let (c, problems) = checked(|p| telemetry(r, p));
        assert!(c.is_none());
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[1].contains("`http/json` is not one of http/protobuf"));
        assert!(!problems.join(" ").contains("pw@"), "no credentials echoed");
    }
}
