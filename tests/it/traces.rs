//! OpenTelemetry traces (`[telemetry]`): the real proxy in-process exports to a test OTLP
//! receiver (support/otlp.rs). One trace per request under the browser's `traceparent`, with
//! its children (session.open, refresh, idp.token, upstream) linked right; the upstream and
//! the IdP receive `traceparent` naming the span that called them; no token, cookie value or
//! query in any span; a request waiting on another's refresh shows `refresh.wait`; with
//! `[telemetry]` absent, the browser's `traceparent` goes upstream untouched.
//!
//! The OpenTelemetry layer is the test thread's own subscriber (built by the same
//! `telemetry::traced` that `main` installs), so the tests run on the current-thread runtime
//! and every task of the proxy runs under it (see support/logs.rs).

use crate::support::otlp::{self, Receiver, Span};
use crate::support::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use token_handler::demo::tokenidp::Fault;
use token_handler::telemetry::Telemetry;
use tracing::subscriber::DefaultGuard;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BROWSER_SPAN: &str = "00f067aa0ba902b7";

/// A proxy exporting to a fresh receiver, its subscriber this thread's default, and its logs.
async fn traced() -> (
    Harness,
    Receiver,
    Telemetry,
    DefaultGuard,
    Arc<Mutex<Vec<u8>>>,
) {
    let receiver = Receiver::start().await;
    let endpoint = format!("otlp_endpoint = \"{}\"", receiver.url);
    let h = Harness::with(
        Flavor::TokenIdpServer,
        &[
            ("telemetry", &endpoint),
            ("telemetry", "service_name = \"th-under-test\""),
            ("telemetry", "batch_delay = \"20ms\""),
        ],
        KEY1,
    )
    .await;
    let config = h.proxy.app.config.telemetry.clone().expect("[telemetry]");
    let (telemetry, guard, buffer) = otlp::install(&config);
    (h, receiver, telemetry, guard, buffer)
}

fn named<'a>(spans: &'a [Span], trace: &str, name: &str) -> &'a Span {
    spans
        .iter()
        .find(|s| s.trace_id == trace && s.name == name)
        .unwrap_or_else(|| panic!("no `{name}` span in trace {trace}: {spans:#?}"))
}

fn has(spans: &[Span], trace: &str, names: &[&str]) -> bool {
    names
        .iter()
        .all(|n| spans.iter().any(|s| s.trace_id == trace && s.name == *n))
}

/// The `traceparent` a peer received names `span` in its trace, sampled.
fn names_span(traceparent: Option<String>, span: &Span) {
    assert_eq!(
        traceparent.as_deref(),
        Some(format!("00-{}-{}-01", span.trace_id, span.span_id).as_str()),
        "the peer's traceparent names the `{}` span",
        span.name
    );
}

#[tokio::test]
async fn a_refreshed_request_is_one_trace_under_the_browsers_traceparent() {
    let (h, mut receiver, telemetry, _guard, logs) = traced().await;
    let (jar, issued) = h.login(true);
    let response = h
        .http
        .get(format!("{}/api/traced?q=query-secret", h.proxy.url))
        .header("cookie", jar.header())
        .header("traceparent", format!("00-{TRACE}-{BROWSER_SPAN}-01"))
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200);
    let new_cookies = set_cookies(&response);
    assert!(!new_cookies.is_empty(), "the refreshed session is set");
    let all = [
        "request",
        "session.open",
        "refresh",
        "idp.token",
        "upstream",
    ];
    let spans = receiver.until(|s| has(s, TRACE, &all)).await;

    let request = named(&spans, TRACE, "request");
    assert_eq!(request.parent_span_id, BROWSER_SPAN, "the browser's span");
    assert_eq!(request.kind, 2, "server");
    assert_eq!(request.service, "th-under-test");
    assert_eq!(request.attr("http.request.method"), Some("GET"));
    assert_eq!(request.attr("url.path"), Some("/api/traced"));
    assert_eq!(request.attr("http.response.status_code"), Some("200"));
    assert_eq!(request.attr("token_handler.route"), Some("protected"));
    assert_eq!(request.status, 0, "unset: not an error");
    let open = named(&spans, TRACE, "session.open");
    assert_eq!(open.parent_span_id, request.span_id);
    assert_eq!(open.attr("token_handler.session"), Some("valid"));
    let refresh = named(&spans, TRACE, "refresh");
    assert_eq!(refresh.parent_span_id, request.span_id);
    assert_eq!(
        refresh.attr("token_handler.refresh.outcome"),
        Some("refreshed")
    );
    let token = named(&spans, TRACE, "idp.token");
    assert_eq!(token.parent_span_id, refresh.span_id, "the /token call");
    assert_eq!(token.kind, 3, "client");
    assert_eq!(token.attr("http.response.status_code"), Some("200"));
    let upstream = named(&spans, TRACE, "upstream");
    assert_eq!(upstream.parent_span_id, request.span_id);
    assert_eq!(upstream.kind, 3, "client");
    assert_eq!(upstream.attr("http.response.status_code"), Some("200"));

    // The peers were told which span called them, in the browser's trace.
    let forwarded = h.echo.last();
    names_span(forwarded.header("traceparent"), upstream);
    assert_eq!(
        forwarded.header("tracestate").as_deref(),
        Some("vendor=opaque")
    );
    let token_call = h
        .idp
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .expect("a /token call");
    let header = |r: &token_handler::demo::tokenidp::RecordedRequest, name: &str| {
        r.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    names_span(header(&token_call, "traceparent"), token);

    // A malformed traceparent (uppercase hex) is no parent: a new trace, the proxy's own.
    let mut jar = jar;
    jar.update(&response);
    let bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01";
    let r = h
        .http
        .get(format!("{}/api/again", h.proxy.url))
        .header("cookie", jar.header())
        .header("traceparent", bad)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let sent = h.echo.last().header("traceparent").expect("a traceparent");
    assert_ne!(sent, bad);
    let own_trace = sent.split('-').nth(1).expect("trace id").to_string();
    let spans = receiver
        .until(|s| has(s, &own_trace, &["upstream", "request"]))
        .await;
    assert!(
        named(&spans, &own_trace, "request")
            .parent_span_id
            .is_empty(),
        "a root"
    );
    names_span(Some(sent), named(&spans, &own_trace, "upstream"));

    // Logout revokes at the IdP, in the request's trace.
    const LOGOUT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    let r = h
        .http
        .post(format!("{}/auth/logout", h.proxy.url))
        .header("cookie", jar.header())
        .header("x-csrf", "1")
        .header(
            "traceparent",
            format!("00-{LOGOUT_TRACE}-b7ad6b7169203331-01"),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let spans = receiver
        .until(|s| has(s, LOGOUT_TRACE, &["request", "idp.revoke"]))
        .await;
    let revoke = named(&spans, LOGOUT_TRACE, "idp.revoke");
    assert_eq!(
        revoke.parent_span_id,
        named(&spans, LOGOUT_TRACE, "request").span_id
    );
    let revocation = h
        .idp
        .requests()
        .into_iter()
        .find(|r| r.path == "/revoke")
        .expect("a revocation");
    names_span(header(&revocation, "traceparent"), revoke);

    // Nothing secret in any span: no token the IdP issued, no cookie value, no query.
    let mut secrets = h.idp.issued_secrets();
    secrets.extend([issued.access_token, issued.refresh_token, issued.id_token]);
    secrets.extend(jar.0.values().cloned());
    for line in new_cookies {
        let value = line.split(';').next().and_then(|p| p.split_once('='));
        secrets.extend(value.map(|(_, v)| v.to_string()));
    }
    secrets.retain(|s| s.len() >= 8);
    for span in &spans {
        let texts =
            std::iter::once(&span.name).chain(span.attributes.iter().flat_map(|(k, v)| [k, v]));
        for text in texts {
            assert!(
                !text.contains("query-secret") && !text.contains('?'),
                "{span:?}"
            );
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "a secret in {span:?}");
            }
        }
    }
    // The log lines are those of a proxy without traces: no OpenTelemetry span, no path.
    let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(logged.contains("route=\"protected\""), "{logged}");
    assert!(
        !logged.contains("url.path") && !logged.contains("/api/traced"),
        "{logged}"
    );
    telemetry.shutdown().await;
}

#[tokio::test]
async fn a_request_waiting_on_anothers_refresh_shows_the_wait() {
    let (h, mut receiver, telemetry, _guard, _logs) = traced().await;
    let (jar, _) = h.login(true);
    // Hold the IdP's answer: the second request arrives while the first refreshes.
    h.idp.set_fault(Fault::Slow(Duration::from_millis(500)));
    let traces = [
        "11111111111111111111111111111111",
        "22222222222222222222222222222222",
    ];
    let calls: Vec<_> = traces
        .iter()
        .map(|trace| {
            let request = h
                .http
                .get(format!("{}/api/storm", h.proxy.url))
                .header("cookie", jar.header())
                .header("traceparent", format!("00-{trace}-{BROWSER_SPAN}-01"));
            tokio::spawn(request.send())
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.expect("task").expect("answer").status(), 200);
    }
    let spans = receiver
        .until(|s| {
            s.iter().any(|x| x.name == "refresh.wait") && s.iter().any(|x| x.name == "refresh")
        })
        .await;
    let wait = spans
        .iter()
        .find(|s| s.name == "refresh.wait")
        .expect("wait");
    let refresh = spans.iter().find(|s| s.name == "refresh").expect("refresh");
    assert_ne!(
        wait.trace_id, refresh.trace_id,
        "one leads, the other waits"
    );
    assert!(traces.contains(&wait.trace_id.as_str()));
    assert!(traces.contains(&refresh.trace_id.as_str()));
    assert_eq!(
        wait.attr("token_handler.refresh.waited_on"),
        Some("request")
    );
    let spans = receiver
        .until(|s| has(s, &wait.trace_id, &["request"]))
        .await;
    assert_eq!(
        wait.parent_span_id,
        named(&spans, &wait.trace_id, "request").span_id
    );
    h.idp.set_fault(Fault::None);
    telemetry.shutdown().await;
}

/// The binary, SIGTERM'd with a span batched and the next scheduled export an hour away: the
/// span reaches the collector before the process exits.
#[tokio::test]
async fn sigterm_sends_the_batched_spans_before_exiting() {
    let mut receiver = Receiver::start().await;
    let idp = start_idp(Flavor::TokenIdpServer.style()).await;
    let echo = echo::Echo::start().await;
    let endpoint = format!("otlp_endpoint = \"{}\"", receiver.url);
    let config = config_toml(
        &idp.url(),
        &echo.url(),
        "tokenidp",
        &[
            ("server", "admin_listen = \"127.0.0.1:0\""),
            ("telemetry", &endpoint),
            ("telemetry", "batch_delay = \"1h\""),
        ],
    );
    let child = child::Running::start(&config, KEY1).await;
    let issued = idp.issue(CLIENT_ID, "demo", SCOPE);
    let local = Proxy::start(&config, KEY1).await;
    let jar = seal(&local.app, &issued, false);
    let r = client()
        .get(format!("http://{}/api/last", child.addr))
        .header("cookie", jar.header())
        .header("traceparent", format!("00-{TRACE}-{BROWSER_SPAN}-01"))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert_eq!(child.exit_code().await, Some(0));
    let spans = receiver
        .until(|s| has(s, TRACE, &["request", "upstream"]))
        .await;
    names_span(
        echo.last().header("traceparent"),
        named(&spans, TRACE, "upstream"),
    );
}

#[tokio::test]
async fn without_telemetry_the_browsers_traceparent_goes_upstream_untouched() {
    let h = Harness::start(Flavor::TokenIdpServer).await;
    let (jar, _) = h.login(true);
    let traceparent = format!("00-{TRACE}-{BROWSER_SPAN}-01");
    let r = h
        .http
        .get(format!("{}/api/plain", h.proxy.url))
        .header("cookie", jar.header())
        .header("traceparent", &traceparent)
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let forwarded = h.echo.last();
    assert_eq!(forwarded.header("traceparent"), Some(traceparent));
    assert_eq!(
        forwarded.header("tracestate").as_deref(),
        Some("vendor=opaque")
    );
    let token_call = h
        .idp
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .expect("a refresh");
    assert!(
        !token_call.headers.iter().any(|(n, _)| n == "traceparent"),
        "nothing injected into the IdP call"
    );
}
