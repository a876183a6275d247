//! The OTLP/HTTP span exporter: batches sent from a task on the tokio runtime, posted as
//! protobuf with the same reqwest client type the IdP calls use (opentelemetry-otlp's own
//! would bring a second reqwest major).
//!
//! Sampling is parent-based: a request that carries a valid `traceparent` follows its sampled
//! flag (a browser can opt its own requests in or out, no more), a new trace is sampled at
//! `sample_ratio` of its trace id. Headers for the collector (an API key) come from
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS` or `OTEL_EXPORTER_OTLP_HEADERS` (`key=value,...`),
//! read by the exporter: a mounted Secret as environment, never the TOML file.

use crate::config::TelemetryConfig;
use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry_http::{HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::runtime;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{BatchConfigBuilder, Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// Largest collector answer read (an OTLP answer is a few bytes, or a partial-success note).
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot start the trace exporter: {0}")]
    Http(#[source] reqwest::Error),
    #[error("cannot start the trace exporter: {0}")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// The tracer provider exporting to `config.otlp_endpoint`. Must run inside a tokio runtime.
pub(super) fn provider(config: &TelemetryConfig) -> Result<SdkTracerProvider, TelemetryError> {
    let http = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("token-handler/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(TelemetryError::Http)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Collector(http))
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(config.otlp_endpoint.as_str())
        .with_timeout(config.timeout)
        .build()
        .map_err(TelemetryError::Exporter)?;
    let batches = BatchSpanProcessor::builder(exporter, runtime::Tokio)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(config.batch_delay)
                .with_max_export_timeout(config.timeout)
                .build(),
        )
        .build();
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The collector, reached with reqwest 0.12.
#[derive(Debug)]
struct Collector(reqwest::Client);

impl HttpClient for Collector {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            let request = reqwest::Request::try_from(request)?;
            let mut response = self.0.execute(request).await?;
            let mut answer = Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err("the collector's answer is too large".into());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(answer.body(Bytes::from(body))?)
        })
    }
}
