//! Logging and tracing set-up: log lines human-readable by default, JSON on request
//! (`RUST_LOG` overrides the level); OpenTelemetry traces exported over OTLP when
//! `[telemetry]` names a collector (`otlp.rs`).
//!
//! With traces on, two layers share the registry, each with its own filter: the log layer
//! (the `[log]` level, and never a span of [`crate::trace::TARGET`]) and the OpenTelemetry layer
//! (only those spans). Log lines therefore read the same with traces on or off, and the spans'
//! attributes (`url.path` among them) never reach a log line.

mod otlp;

use crate::config::{LogConfig, LogFormat, TelemetryConfig};
use crate::trace::TARGET;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::io::IsTerminal;
use tracing::Subscriber;
use tracing_subscriber::filter::{Directive, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

pub use otlp::TelemetryError;

/// The tracer provider while traces are exported: [`Telemetry::shutdown`] sends the spans
/// still batched (call it once serving has stopped).
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Installs the global subscriber. Call once, from `main`, inside the tokio runtime when
/// `telemetry` is given (the exporter's batches are sent from a task of that runtime).
pub fn init(
    log: &LogConfig,
    telemetry: Option<&TelemetryConfig>,
) -> Result<Telemetry, TelemetryError> {
    let ansi = std::io::stdout().is_terminal();
    let Some(telemetry) = telemetry else {
        // Colours only for a human at a terminal; pipes and log collectors get plain text.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(env_filter(log))
            .with_target(false)
            .with_ansi(ansi);
        match log.format {
            LogFormat::Json => builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .init(),
            LogFormat::Text => builder.init(),
        }
        return Ok(Telemetry::default());
    };
    let (subscriber, guard) = traced(log, telemetry, std::io::stdout, ansi)?;
    subscriber.init();
    Ok(guard)
}

/// The subscriber with traces on: the log layer writing to `writer`, and the OpenTelemetry
/// layer exporting to `telemetry.otlp_endpoint`. `main` installs it globally; a test may make
/// it its thread's default. Must run inside a tokio runtime.
pub fn traced<W>(
    log: &LogConfig,
    telemetry: &TelemetryConfig,
    writer: W,
    ansi: bool,
) -> Result<(impl Subscriber + Send + Sync, Telemetry), TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let provider = otlp::provider(telemetry)?;
    let tracer = provider.tracer("token-handler");
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE));
    let hidden: Directive = format!("{TARGET}=off").parse().expect("a valid directive");
    let logs = log_layer(log, writer, ansi).with_filter(env_filter(log).add_directive(hidden));
    let subscriber = Registry::default().with(logs).with(otel);
    Ok((
        subscriber,
        Telemetry {
            provider: Some(provider),
        },
    ))
}

fn env_filter(log: &LogConfig) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The log lines' layer, as `init` builds it without traces.
fn log_layer<S, W>(log: &LogConfig, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(writer);
    match log.format {
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
        LogFormat::Text => layer.boxed(),
    }
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn is_on(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends every span finished so far, now (tests; `shutdown` does it on the way out).
    pub async fn flush(&self) {
        if let Some(provider) = self.provider.clone() {
            // The processor blocks its caller until its task (on this runtime) has exported.
            match tokio::task::spawn_blocking(move || provider.force_flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "flushing the trace exporter failed"),
                Err(e) => tracing::warn!(error = %e, "flushing the trace exporter failed"),
            }
        }
    }

    /// Sends the spans still batched and stops the exporter (graceful shutdown).
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            match tokio::task::spawn_blocking(move || provider.shutdown()).await {
                Ok(Ok(())) => tracing::debug!("trace exporter flushed and stopped"),
                Ok(Err(e)) => tracing::warn!(error = %e, "stopping the trace exporter failed"),
                Err(e) => tracing::warn!(error = %e, "stopping the trace exporter failed"),
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        // Dropped without `shutdown` (a panic, a test that ended early): the provider's own
        // drop blocks until the exporter task answers, which on this runtime's thread would
        // wait forever. A thread of its own waits instead, and ends when the runtime does.
        if let Some(provider) = self.provider.take() {
            let _ = std::thread::Builder::new()
                .name("otel-shutdown".into())
                .spawn(move || drop(provider));
        }
    }
}
