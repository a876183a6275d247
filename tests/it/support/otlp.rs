//! A test OTLP/HTTP receiver: takes `POST /v1/traces` on 127.0.0.1:0, decodes each body as an
//! `ExportTraceServiceRequest` (protobuf, with the `opentelemetry-proto` types) and hands its
//! spans to the test through a channel, so a test awaits the exporter's batches, never sleeps.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use token_handler::config::{LogConfig, LogFormat, TelemetryConfig};
use token_handler::telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::subscriber::DefaultGuard;

/// Makes the proxy's traced subscriber (the one `main` installs, built by
/// `telemetry::traced`) this thread's default: its log lines go to the returned buffer. The
/// caller runs on a current-thread runtime, so every task of an in-process proxy runs under it
/// (see `logs.rs`).
pub fn install(config: &TelemetryConfig) -> (Telemetry, DefaultGuard, Arc<Mutex<Vec<u8>>>) {
    super::logs::process_defaults();
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let sink = super::logs::Sink(Arc::clone(&buffer));
    let log = LogConfig {
        format: LogFormat::Text,
        // The test proxies log each request at debug (no `access_log`).
        level: "token_handler=debug".into(),
        access_log: false,
    };
    let (subscriber, telemetry) =
        token_handler::telemetry::traced(&log, config, move || sink.clone(), false)
            .expect("exporter");
    (
        telemetry,
        tracing::subscriber::set_default(subscriber),
        buffer,
    )
}

/// One exported span, flattened for assertions (ids in lowercase hex).
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP `SpanKind`: 1 internal, 2 server, 3 client.
    pub kind: i32,
    pub attributes: Vec<(String, String)>,
    /// OTLP `StatusCode`: 0 unset, 1 ok, 2 error.
    pub status: i32,
    /// The resource's `service.name`.
    pub service: String,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Receiver {
    /// `http://127.0.0.1:PORT/v1/traces`
    pub url: String,
    batches: mpsc::UnboundedReceiver<Vec<Span>>,
    received: Vec<Span>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind otlp");
        let url = format!("http://{}/v1/traces", listener.local_addr().expect("addr"));
        let (tx, batches) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let tx = tx.clone();
                let service = service_fn(move |request| receive(request, tx.clone()));
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            url,
            batches,
            received: Vec::new(),
        }
    }

    /// Waits for batches until the spans received so far satisfy `done`; returns them all.
    /// Panics after 10 s (the exporter never sent what the test expects).
    pub async fn until(&mut self, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(&self.received) {
            match tokio::time::timeout_at(deadline, self.batches.recv()).await {
                Ok(Some(batch)) => self.received.extend(batch),
                _ => panic!("the expected spans never came; got {:#?}", self.received),
            }
        }
        self.received.clone()
    }
}

async fn receive(
    request: Request<Incoming>,
    tx: mpsc::UnboundedSender<Vec<Span>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let answer = |status| {
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = status;
        Ok(response)
    };
    let protobuf = request
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/x-protobuf");
    if request.method() != "POST" || request.uri().path() != "/v1/traces" || !protobuf {
        return answer(StatusCode::NOT_FOUND);
    }
    let Ok(body) = request.into_body().collect().await else {
        return answer(StatusCode::BAD_REQUEST);
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST);
    };
    let mut spans = Vec::new();
    for resource_spans in export.resource_spans {
        let service = resource_spans
            .resource
            .map(|r| text_of(&r.attributes, "service.name"))
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                spans.push(Span {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|kv| (kv.key.clone(), value(kv)))
                        .collect(),
                    status: span.status.map_or(0, |s| s.code),
                    service: service.clone(),
                });
            }
        }
    }
    let _ = tx.send(spans);
    // An empty `ExportTraceServiceResponse`: full success.
    let mut response = Response::new(Full::new(Bytes::new()));
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/x-protobuf"),
    );
    Ok(response)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text_of(attributes: &[KeyValue], key: &str) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(value)
        .unwrap_or_default()
}

fn value(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
