//! The Helm chart's Grafana dashboard (helm/token-handler/dashboards/token-handler.json) and
//! alerts (helm/token-handler/rules/token-handler.rules.yaml) name only metrics the proxy
//! exports: every series selector of every panel, variable and alert expression is checked
//! against the /metrics of a proxy driven through a login, a refresh, refusals and a logout.

use crate::support::promql::{parse, selectors, variable_selectors, Exposition, Query};
use crate::support::*;
use std::path::PathBuf;

fn chart_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("helm/token-handler")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// (where, expression) for each panel target and each query variable of the dashboard.
fn dashboard_queries() -> Vec<(String, Query)> {
    let dashboard: serde_json::Value =
        serde_json::from_str(&chart_file("dashboards/token-handler.json")).expect("JSON");
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = stack.pop() {
        stack.extend(panel["panels"].as_array().into_iter().flatten());
        let title = panel["title"].as_str().expect("title");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            out.push((format!("panel {title:?}: {expr}"), parse(expr)));
        }
    }
    for var in dashboard["templating"]["list"].as_array().expect("list") {
        if var["type"] == "query" {
            let query = var["query"]["query"]
                .as_str()
                .or(var["query"].as_str())
                .expect("query");
            let selectors = variable_selectors(query);
            out.push((
                format!("variable ${}: {query}", var["name"]),
                Query {
                    selectors,
                    grouping: Vec::new(),
                },
            ));
        }
    }
    out
}

/// (alert, expression) of each rule, read from the rules file as the chart's template reads it:
/// `expr` is a block scalar (`|-`) or a one-line value; `$selector` and `$threshold` are filled
/// in as the template fills them.
fn rule_expressions() -> Vec<(String, String)> {
    let text = chart_file("rules/token-handler.rules.yaml");
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let (mut out, mut alert) = (Vec::new(), None);
    for (n, line) in lines.iter().enumerate() {
        if let Some(name) = line.trim_start().strip_prefix("- alert:") {
            alert = Some(name.trim().to_string());
        }
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let expr = if matches!(value.trim(), "|-" | "|" | ">-" | ">") {
            lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || indent(l) > indent(line))
                .map(|l| l.trim())
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            value.trim().to_string()
        };
        let expr = expr
            .replace("$selector", "namespace=\"prod\"")
            .replace("$threshold", "0");
        out.push((alert.clone().expect("expr after its alert"), expr));
    }
    let alerts = lines
        .iter()
        .filter(|l| l.trim_start().starts_with("- alert:"));
    assert_eq!(out.len(), alerts.count(), "one expr per alert");
    out
}

/// Every selector or grouping label the exposition does not have, with where it is used.
fn refused(queries: &[(String, Query)], exported: &Exposition) -> Vec<String> {
    queries
        .iter()
        .flat_map(|(place, query)| {
            exported
                .refuses_query(query)
                .into_iter()
                .map(move |why| format!("{why} ({place})"))
        })
        .collect()
}

#[test]
fn the_reader_finds_names_and_labels_and_skips_the_rest() {
    let found = selectors(
        r#"histogram_quantile(0.99, sum by (grant, le) (rate(token_handler_idp_token_seconds_bucket{namespace=~"$namespace", job=~"a|b"}[$__rate_interval]))) / on (job) group_left max(up{x="}"}) > 2 and bool offset 5m"#,
    );
    let names: Vec<(&str, Vec<&str>)> = found
        .iter()
        .map(|s| {
            let labels = s.labels.iter().map(String::as_str).collect();
            (s.metric.as_str(), labels)
        })
        .collect();
    assert_eq!(
        names,
        [
            (
                "token_handler_idp_token_seconds_bucket",
                vec!["namespace", "job"]
            ),
            ("up", vec!["x"]),
        ]
    );
    let query = parse(r#"sum by (grant, le) (x) / on(job) group_left y"#);
    assert_eq!(query.grouping, ["grant", "le", "job"]);
    assert_eq!(selectors(r#"{__name__="m", a="b"}"#)[0].metric, "m");
    let var = variable_selectors(
        r#"label_values(token_handler_requests_total{namespace=~"$namespace"}, job)"#,
    );
    assert_eq!(var[0].metric, "token_handler_requests_total");
    assert!(variable_selectors("label_values(job)").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_use_only_exported_metrics() {
    let h = Harness::with(Flavor::TokenIdpServer, &[], KEY1).await;
    let admin = crate::observability::admin(&h).await;

    // Labelled families exist once a label value was counted: drive each.
    let mut browser = Jar::default();
    let login = h.browser_login(&mut browser, "/").await; // logins, authorization_code
    assert_eq!(login.status(), 200);
    let (expired, _) = h.login(true);
    let refreshed = h.get("/api/a", &expired).await; // refreshes, refresh_token
    assert_eq!(refreshed.status(), 200);
    let forged = h
        .http
        .post(format!("{}/api/a", h.proxy.url))
        .header("cookie", browser.header())
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status(), 403, "csrf_refusals");
    let copy = browser.clone();
    let logout = h
        .http
        .post(format!("{}/auth/logout", h.proxy.url))
        .header("cookie", browser.header())
        .header("x-csrf", "1")
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status(), 200, "logouts");
    assert_eq!(
        h.get("/api/a", &copy).await.status(),
        401,
        "ended_session_refusals"
    );
    let bad_token = h
        .http
        .post(format!("{}/auth/backchannel-logout", h.proxy.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("logout_token=not.a.jwt")
        .send()
        .await
        .expect("backchannel");
    assert_eq!(bad_token.status(), 400, "logout_token_refusals");

    let scrape = h
        .http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(scrape.status(), 200);
    let exported = Exposition::parse(&scrape.text().await.expect("body"));
    for family in [
        "token_handler_refreshes_total",
        "token_handler_idp_token_seconds_bucket",
        "token_handler_logins_total",
        "token_handler_logouts_total",
        "token_handler_csrf_refusals_total",
        "token_handler_ended_session_refusals_total",
        "token_handler_logout_token_refusals_total",
    ] {
        assert!(exported.samples.contains_key(family), "{family} not driven");
    }

    let dashboard = dashboard_queries();
    let rules: Vec<(String, Query)> = rule_expressions()
        .into_iter()
        .map(|(alert, expr)| (format!("alert {alert}: {expr}"), parse(&expr)))
        .collect();
    assert!(
        dashboard.len() >= 20,
        "{} dashboard queries",
        dashboard.len()
    );
    assert!(rules.len() >= 5, "{} alerts", rules.len());
    for (place, query) in dashboard.iter().chain(&rules) {
        assert!(!query.selectors.is_empty(), "no metric read in {place}");
    }
    let missing = refused(&dashboard, &exported);
    assert!(missing.is_empty(), "dashboard:\n{}", missing.join("\n"));
    let missing = refused(&rules, &exported);
    assert!(missing.is_empty(), "alerts:\n{}", missing.join("\n"));

    // The check bites: a misspelled name, a histogram suffix on a counter, a misspelled label,
    // a grouping label the metric does not have.
    for typo in [
        "sum(rate(token_handler_refreshs_total[5m]))",
        "sum(rate(token_handler_refreshes_total_bucket[5m]))",
        "token_handler_requests_count",
        r#"rate(token_handler_refreshes_total{outcomes="rejected"}[5m])"#,
        "sum by (reason) (rate(token_handler_refreshes_total[5m]))",
        "histogram_quantile(0.5, sum by (le) (rate(token_handler_idp_token_seconds_sum[5m])))",
    ] {
        let queries = [(typo.to_string(), parse(typo))];
        assert_eq!(refused(&queries, &exported).len(), 1, "{typo} passed");
    }
}
