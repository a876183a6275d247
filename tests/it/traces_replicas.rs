//! Traces across replicas (`[telemetry]` with `[coordination]`): two in-process replicas on a
//! real Redis in front of the real oidc-provider, a storm at expiry on both. One replica calls
//! `/token` (its `refresh` span: `refreshed`, with `idp.token` below it); the other's refresh
//! waits on the first one's lease (`refresh.wait`, `waited_on` = `replica`, below its own
//! `refresh` span, whose outcome is `remote`).

use crate::support::cluster::{Cluster, Options};
use crate::support::otlp::{self, Receiver, Span};
use crate::support::redis_server::RedisServer;

fn child_of<'a>(spans: &'a [Span], parent: &Span, name: &str) -> Option<&'a Span> {
    spans
        .iter()
        .find(|s| s.name == name && s.parent_span_id == parent.span_id)
}

#[tokio::test]
async fn a_replica_waiting_on_anothers_refresh_shows_the_wait_in_its_trace() {
    let mut receiver = Receiver::start().await;
    let redis = RedisServer::start().await;
    let c = Cluster::build(Options {
        replicas: 2,
        redis_url: Some(redis.url()),
        tail: format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nbatch_delay = \"20ms\"\n",
            receiver.url
        ),
        ..Options::default()
    })
    .await;
    let config = c.proxies[0]
        .app
        .config
        .telemetry
        .clone()
        .expect("[telemetry]");
    let (telemetry, _guard, _logs) = otlp::install(&config);
    let jar = c.login().await;
    c.wait_for_expiry(&jar).await;
    let results = c.storm(&jar, 40).await;
    assert!(results.iter().all(|(s, _)| *s == 200), "40 successes");
    assert_eq!(c.refreshes(), 1.0, "one /token call across the replicas");

    let outcome = |s: &Span, what: &str| {
        s.name == "refresh" && s.attr("token_handler.refresh.outcome") == Some(what)
    };
    let spans = receiver
        .until(|s| {
            s.iter().any(|x| outcome(x, "refreshed"))
                && s.iter().any(|x| outcome(x, "remote"))
                && s.iter().any(|x| x.name == "refresh.wait")
                && s.iter().any(|x| x.name == "idp.token")
        })
        .await;
    let refreshed = spans
        .iter()
        .find(|s| outcome(s, "refreshed"))
        .expect("refreshed");
    let token = child_of(&spans, refreshed, "idp.token").expect("the /token call below it");
    assert_eq!(token.trace_id, refreshed.trace_id);
    let remote = spans.iter().find(|s| outcome(s, "remote")).expect("remote");
    assert_ne!(
        remote.trace_id, refreshed.trace_id,
        "another request's trace"
    );
    let wait = child_of(&spans, remote, "refresh.wait").expect("its wait on the lease");
    assert_eq!(
        wait.attr("token_handler.refresh.waited_on"),
        Some("replica")
    );
    assert!(
        child_of(&spans, remote, "idp.token").is_none(),
        "the waiting replica made no /token call"
    );
    telemetry.shutdown().await;
}
