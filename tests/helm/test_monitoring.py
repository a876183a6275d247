"""The chart's monitoring: the Grafana dashboard ConfigMap and the PrometheusRule.

Run by test_chart.py (`scenarios(test_chart_module)`), which owns the harness (check, render,
refused, ...); `check_prometheus_rule` is what its validate_manifests applies to a rendered
PrometheusRule, a CRD without a schema in kubernetes-validate. tests/it/monitoring.rs checks the
metric names of the same dashboard and rules against a running proxy's /metrics.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import ModuleType

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "token-handler"
DASHBOARD = CHART / "dashboards" / "token-handler.json"
RULES = CHART / "rules" / "token-handler.rules.yaml"
CHART_README = CHART / "README.md"
README = REPO / "README.md"

# The Prometheus Operator's Duration pattern (PrometheusRule spec.groups[].rules[].for).
PROM_DURATION = re.compile(r"(0|([0-9]+y)?([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?)")
DNS_1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
METRIC = re.compile(r"\btoken_handler_[a-z0-9_]+")
BOTH_ON = {"grafanaDashboard": {"enabled": True}, "prometheusRule": {"enabled": True}}


def promtool() -> str | None:
    return os.environ.get("TOKEN_HANDLER_PROMTOOL") or shutil.which("promtool")


def check_prometheus_rule(rule: dict) -> str:
    """The structure the PrometheusRule CRD (monitoring.coreos.com/v1) admits; with promtool on
    the PATH (or TOKEN_HANDLER_PROMTOOL), `promtool check rules` parses every expression too."""
    assert rule["kind"] == "PrometheusRule" and rule["apiVersion"] == "monitoring.coreos.com/v1"
    meta = rule["metadata"]
    assert DNS_1123.fullmatch(meta["name"]) and len(meta["name"]) <= 253, meta["name"]
    for key in ("labels", "annotations"):
        assert all(isinstance(v, str) for v in meta.get(key, {}).values()), meta
    spec = rule["spec"]
    assert set(spec) == {"groups"}, spec.keys()
    names = [g["name"] for g in spec["groups"]]
    assert names and len(set(names)) == len(names), names
    for group in spec["groups"]:
        assert set(group) <= {"name", "interval", "rules", "partial_response_strategy", "limit",
                              "query_offset", "labels"}, group.keys()
        assert isinstance(group["rules"], list)
        for r in group["rules"]:
            assert set(r) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels",
                              "annotations"}, r.keys()
            assert ("alert" in r) != ("record" in r), r
            assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", r.get("alert", "x")), r["alert"]
            assert isinstance(r["expr"], str) and r["expr"].strip(), r
            assert "$selector" not in r["expr"] and "$threshold" not in r["expr"], r["expr"]
            assert PROM_DURATION.fullmatch(r.get("for", "0")), r["for"]
            for key in ("labels", "annotations"):
                assert all(isinstance(v, str) for v in r.get(key, {}).values()), r
    tool = promtool()
    if not tool:
        return "structure (promtool not found: expressions not parsed)"
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(spec, f)
        f.flush()
        proc = subprocess.run([tool, "check", "rules", f.name], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"promtool check rules:\n{proc.stdout}{proc.stderr}"
    return "structure, promtool check rules"


def rules_file() -> list[dict]:
    rules = yaml.safe_load(RULES.read_text())
    assert isinstance(rules, list) and rules, RULES
    return rules


def alert_key(alert: str) -> str:
    """prometheusRule.alerts.<key> of an alert, as templates/prometheusrule.yaml derives it."""
    assert alert.startswith("TokenHandler"), alert
    rest = alert.removeprefix("TokenHandler")
    return rest[0].lower() + rest[1:]


def number(n: float) -> str:
    """A threshold as the template writes it (Go's toString: 2, 0.05)."""
    return str(int(n)) if float(n).is_integer() else str(n)


def github_anchors(markdown: str) -> set[str]:
    anchors = set()
    for line in markdown.splitlines():
        m = re.match(r"^#+\s+(.*)$", line)
        if m:
            slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def documented_metrics() -> set[str]:
    """The metric names of the README's Observability table."""
    text = README.read_text()
    section = text[text.index("## Observability"):]
    section = section[:section.index("\n## ", 5)]
    return {m.group(1) for m in re.finditer(r"^\| `(token_handler_[a-z0-9_]+)`", section, re.M)}


def check_dashboard_json(text: str) -> str:
    dashboard = json.loads(text)
    assert dashboard == json.loads(DASHBOARD.read_text()), "the ConfigMap holds the chart's file"
    assert dashboard["uid"] == "token-handler" and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus", ds
    for name in ("namespace", "job"):
        assert variables[name]["datasource"]["uid"] == "${datasource}", variables[name]
    ids, exprs = set(), []
    for p in panels(dashboard):
        assert p["id"] not in ids, f"panel id {p['id']} twice"
        ids.add(p["id"])
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], f"panel {p['title']!r} queries nothing"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            assert 'namespace=~"$namespace"' in t["expr"] and 'job=~"$job"' in t["expr"], t["expr"]
            exprs.append(t["expr"])
    families = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in METRIC.findall(e)}
    undocumented = families - documented_metrics()
    assert not undocumented, f"not in README's metric table: {sorted(undocumented)}"
    return f"{len(ids)} panels, {len(exprs)} queries, {len(families)} metrics"


def scenarios(t: ModuleType) -> None:
    """`t` is test_chart: its harness, renderer and constants."""
    release, namespace = t.RELEASE, t.NAMESPACE
    dashboard_name = f"{release}-token-handler-dashboard"

    def off_by_default() -> None:
        for mode in ("deployment", "sidecar", "forward-auth"):
            r = t.render({"mode": mode})
            assert "PrometheusRule" not in r.kinds(), (mode, r.kinds())
            assert all(c["metadata"]["name"] != dashboard_name for c in r.all("ConfigMap")), mode

    t.check("monitoring: no dashboard and no PrometheusRule by default (every mode)", off_by_default)

    r = t.standard_checks("dashboard and PrometheusRule on", {
        **BOTH_ON, "metrics": {"serviceMonitor": {"enabled": True}}})
    if r:
        def dashboard_config_map() -> str:
            cm = r.one("ConfigMap", dashboard_name)
            labels = cm["metadata"]["labels"]
            assert labels["grafana_dashboard"] == "1", labels
            assert labels["app.kubernetes.io/instance"] == release
            assert "namespace" not in cm["metadata"] and "annotations" not in cm["metadata"]
            assert list(cm["data"]) == ["token-handler.json"], cm["data"].keys()
            return check_dashboard_json(cm["data"]["token-handler.json"])

        t.check("dashboard on: a ConfigMap labelled grafana_dashboard=1, its JSON the chart's "
                "dashboard (data source variable, every panel queried, documented metrics)", dashboard_config_map)

        def rule_matches_file() -> str:
            pr = r.one("PrometheusRule")
            assert "namespace" not in pr["metadata"]
            (group,) = pr["spec"]["groups"]
            assert group["name"] == f"{release}-token-handler"
            source, rendered = rules_file(), group["rules"]
            assert [x["alert"] for x in rendered] == [x["alert"] for x in source]
            anchors = github_anchors(CHART_README.read_text())
            with t.helm.Chart.load(str(t.CHART)) as c:
                defaults = c.values["prometheusRule"]["alerts"]
            for src, out in zip(source, rendered):
                cfg = defaults[alert_key(src["alert"])]
                want = src["expr"].replace("$selector", f'namespace="{namespace}"').replace(
                    "$threshold", number(cfg["threshold"]))
                assert out["expr"] == want, (out["expr"], want)
                assert out["for"] == cfg["for"] and out["labels"] == {"severity": cfg["severity"]}
                anchor = src["alert"].lower()
                assert anchor in anchors, f"no Runbook section {src['alert']} in the chart README"
                assert out["annotations"] == {"summary": src["summary"], "description": src["description"],
                                              "runbook": f"helm/token-handler/README.md#{anchor}"}
            return f"{len(rendered)} alerts"

        t.check("PrometheusRule on: every alert of rules/token-handler.rules.yaml, scoped to the "
                "release's namespace, defaults from values.yaml, a Runbook section each", rule_matches_file)

    def values_know_every_alert() -> None:
        with t.helm.Chart.load(str(t.CHART)) as c:
            schema = c.schema["properties"]["prometheusRule"]["properties"]["alerts"]
            defaults = c.values["prometheusRule"]["alerts"]
        keys = [alert_key(x["alert"]) for x in rules_file()]
        assert sorted(keys) == sorted(schema["properties"]) == sorted(schema["required"]) == sorted(defaults)
        for x in rules_file():
            assert set(x) == {"alert", "summary", "description", "expr"}, x.keys()
            assert "$selector" in x["expr"] and "$threshold" in x["expr"], x["alert"]

    t.check("rules file: one values.yaml entry and one schema entry per alert, each expression "
            "scoped ($selector) and thresholded ($threshold)", values_know_every_alert)

    def options() -> None:
        r = t.render({
            "grafanaDashboard": {"enabled": True, "labelName": "grafana.example.com/dashboard",
                                 "labelValue": "yes", "namespace": "monitoring",
                                 "labels": {"team": "shop"}, "annotations": {"grafana_folder": "Auth"}},
            "prometheusRule": {
                "enabled": True, "namespace": "monitoring", "labels": {"release": "prom"},
                "annotations": {"owner": "shop"}, "selector": 'job="shop-token-handler-metrics"',
                "alertLabels": {"team": "shop"},
                "runbookBaseUrl": "https://git.example.com/shop/th/blob/main/helm/token-handler/README.md",
                "alerts": {"reuseSuspected": {"enabled": False},
                           "tokenLatencyHigh": {"threshold": 1.5, "for": "15m", "severity": "critical"}},
            },
        })
        cm = r.one("ConfigMap", dashboard_name)
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["labels"]["grafana.example.com/dashboard"] == "yes"
        assert "grafana_dashboard" not in cm["metadata"]["labels"]
        assert cm["metadata"]["labels"]["team"] == "shop"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Auth"}
        pr = r.one("PrometheusRule")
        check_prometheus_rule(pr)
        assert pr["metadata"]["namespace"] == "monitoring"
        assert pr["metadata"]["labels"]["release"] == "prom"
        assert pr["metadata"]["annotations"] == {"owner": "shop"}
        alerts = {x["alert"]: x for x in pr["spec"]["groups"][0]["rules"]}
        assert "TokenHandlerReuseSuspected" not in alerts and len(alerts) == len(rules_file()) - 1
        latency = alerts["TokenHandlerTokenLatencyHigh"]
        assert latency["expr"].endswith("> 1.5") and latency["for"] == "15m"
        assert latency["labels"] == {"severity": "critical", "team": "shop"}
        for a in alerts.values():
            assert 'job="shop-token-handler-metrics"' in a["expr"] and "namespace=" not in a["expr"]
            assert a["annotations"]["runbook_url"] == (
                "https://git.example.com/shop/th/blob/main/helm/token-handler/README.md#" + a["alert"].lower())

    t.check("monitoring options: sidecar label, namespaces, labels, annotations, selector, "
            "per-alert switches and thresholds, runbook_url", options)

    def every_mode() -> None:
        for mode in ("sidecar", "forward-auth"):
            r = t.render({"mode": mode, **BOTH_ON})
            assert "PrometheusRule" in r.kinds() and r.one("ConfigMap", dashboard_name), (mode, r.kinds())
            t.validate_manifests(r)
            t.lint_clean({"mode": mode, **BOTH_ON})

    t.check('monitoring: rendered in mode "sidecar" and "forward-auth" too, valid and lint-clean', every_mode)

    bad = [
        ("a dashboard label name with a space", {"grafanaDashboard": {"labelName": "grafana dashboard"}}, ["/grafanaDashboard/labelName"]),
        ("a dashboard label value with a space", {"grafanaDashboard": {"labelValue": "a b"}}, ["/grafanaDashboard/labelValue"]),
        ("an unknown dashboard key", {"grafanaDashboard": {"folder": "Auth"}}, ["/grafanaDashboard", "folder"]),
        ("a dashboard namespace in capitals", {"grafanaDashboard": {"namespace": "Monitoring"}}, ["/grafanaDashboard/namespace"]),
        ("an alert threshold below zero", {"prometheusRule": {"alerts": {"clientRefused": {"threshold": -1}}}}, ["/prometheusRule/alerts/clientRefused/threshold"]),
        ("an alert threshold as a string", {"prometheusRule": {"alerts": {"clientRefused": {"threshold": "1"}}}}, ["/prometheusRule/alerts/clientRefused/threshold"]),
        ("an alert's for in words", {"prometheusRule": {"alerts": {"clientRefused": {"for": "10 minutes"}}}}, ["/prometheusRule/alerts/clientRefused/for"]),
        ("an alert's for with units out of order", {"prometheusRule": {"alerts": {"clientRefused": {"for": "30s5m"}}}}, ["/prometheusRule/alerts/clientRefused/for"]),
        ("an unknown alert", {"prometheusRule": {"alerts": {"refreshesRejectd": {"enabled": False}}}}, ["/prometheusRule/alerts", "refreshesRejectd"]),
        ("a selector with braces", {"prometheusRule": {"selector": '{job="x"}'}}, ["/prometheusRule/selector"]),
        ("a selector ending in a comma", {"prometheusRule": {"selector": 'job="x",'}}, ["/prometheusRule/selector"]),
        ("a runbook URL without a scheme", {"prometheusRule": {"runbookBaseUrl": "git.example.com/README.md"}}, ["/prometheusRule/runbookBaseUrl"]),
        ("a runbook URL with an anchor", {"prometheusRule": {"runbookBaseUrl": "https://x/README.md#runbook"}}, ["/prometheusRule/runbookBaseUrl"]),
        ("an alert label value with a space", {"prometheusRule": {"alertLabels": {"team": "a b"}}}, ["/prometheusRule/alertLabels/team"]),
    ]
    for label, values, needles in bad:
        t.check(f"refused: {label}", lambda v=values, n=needles: t.refused(v, *n))
