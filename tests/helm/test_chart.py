#!/usr/bin/env python3
"""Tests of the Helm chart helm/token-handler, with the real Helm engine.

Lints the chart, renders it (helm-python-sdk: Helm v4's Go SDK, no helm binary) for the
default values and for each option, validates every manifest against the Kubernetes schemas
(kubernetes-validate, strict), runs `token-handler check` on each rendered config, and checks
that bad values are refused, the shutdown timing adds up, the config checksum rolls the pods and
the sidecar's securityContext is locked down. Also renders tests/helm/example-parent, a chart that
includes the sidecar through the named templates.

Run from anywhere, inside a venv with tests/helm/requirements.txt installed:

    TOKEN_HANDLER_BIN=target/debug/token-handler python3 tests/helm/test_chart.py

TOKEN_HANDLER_BIN defaults to target/debug/token-handler (under CARGO_TARGET_DIR when set).
Prints one line per check and `N passed, N failed`; exits 1 when anything failed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import traceback
from pathlib import Path
from typing import Any, Callable

sys.dont_write_bytecode = True  # no __pycache__ beside the tests (client_auth_checks)
import client_auth_checks  # noqa: E402 - the chart's client authentication, beside this file

try:
    import helm_python as helm
    import kubernetes_validate
    import yaml

    import test_monitoring  # tests/helm/test_monitoring.py: the dashboard and the alerts
except ImportError as e:  # pragma: no cover - environment problem, not a test failure
    sys.exit(f"missing Python package ({e}): pip install -r tests/helm/requirements.txt")

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "token-handler"
PARENT = REPO / "tests" / "helm" / "example-parent"
FORWARD_AUTH_EXAMPLE = REPO / "tests" / "helm" / "forward-auth-values.yaml"
EXAMPLE_CONFIG = REPO / "config" / "token-handler.toml"

# The chart's kubeVersion floor (lifecycle sleep hooks) and the newest schemas the pinned
# kubernetes-validate ships: every manifest must be valid for both.
KUBE_VERSIONS = ["1.30.0", "1.37.0"]
RELEASE, NAMESPACE = "shop", "prod"
SIDECAR = "token-handler"
SECRET_DIR = "/var/run/secrets/token-handler"
CONFIG_DIR = "/etc/token-handler"


# ---------------------------------------------------------------------------------------------
# A tiny harness: one line per check, every failure reported, a closing count.

PASSED: list[str] = []
FAILED: list[str] = []
def check(name: str, fn: Callable[[], Any]) -> Any:
    try:
        result = fn()
    except Exception as e:  # noqa: BLE001 - a failed check is reported, the run goes on
        detail = str(e).strip() or type(e).__name__
        if not isinstance(e, AssertionError):
            detail = f"{type(e).__name__}: {detail}\n{traceback.format_exc(limit=3)}"
        FAILED.append(name)
        print(f"FAIL {name}\n     " + detail.replace("\n", "\n     "), flush=True)
        return None
    PASSED.append(name)
    print(f"ok   {name}", flush=True)
    return result


# ---------------------------------------------------------------------------------------------
# Rendering

def deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


class Rendered:
    """A chart rendered with some values: its manifests as parsed objects, plus the files."""

    def __init__(self, files: dict[str, str]):
        self.files = files
        self.objects: list[dict] = []
        for path, text in sorted(files.items()):
            if not path.endswith((".yaml", ".yml")):
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    doc.setdefault("__source", path)
                    self.objects.append(doc)

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    def all(self, kind: str) -> list[dict]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}: {self.kinds()}"
        return found[0]

    def toml_text(self) -> str:
        # The proxy's ConfigMap, not the Grafana dashboard's (grafanaDashboard.enabled).
        (config,) = [c for c in self.all("ConfigMap") if "token-handler.toml" in c.get("data", {})]
        return config["data"]["token-handler.toml"]

    def toml(self) -> dict:
        return tomllib.loads(self.toml_text())

    def pod_spec(self) -> dict:
        return self.one("Deployment")["spec"]["template"]["spec"]

    def sidecar(self) -> dict:
        return container(self.pod_spec(), SIDECAR)


def container(pod: dict, name: str) -> dict:
    found = [c for c in pod["containers"] if c["name"] == name]
    assert len(found) == 1, f"expected one container {name!r}, found {[c['name'] for c in pod['containers']]}"
    return found[0]


def render(values: dict | None = None, chart: Path = CHART) -> Rendered:
    with helm.Chart.load(str(chart)) as c:
        return Rendered(c.render(values or {}, name=RELEASE, namespace=NAMESPACE))


def refused(values: dict, *needles: str, chart: Path = CHART) -> None:
    """Rendering `values` must fail, with every needle in the message."""
    try:
        render(values, chart)
    except helm.HelmError as e:
        message = str(e)
        for needle in needles:
            assert needle in message, f"refused, but the message lacks {needle!r}:\n{message}"
        return
    raise AssertionError(f"accepted: {json.dumps(values)}")


def keygen() -> str:
    return "k1:" + base64.b64encode(os.urandom(32)).decode()


# ---------------------------------------------------------------------------------------------
# Checks shared by every scenario

def validate_manifests(r: Rendered) -> str:
    checked = []
    for obj in r.objects:
        data = {k: v for k, v in obj.items() if k != "__source"}
        if data["kind"] == "PrometheusRule":
            checked.append(f"PrometheusRule({test_monitoring.check_prometheus_rule(data)})")
            continue
        if data["apiVersion"] == "monitoring.coreos.com/v1":
            check_service_monitor(r, data)
            checked.append(f"{data['kind']}(structure)")
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(data, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                raise AssertionError(
                    f"{obj['__source']}: {data['kind']}/{data['metadata']['name']} invalid for "
                    f"Kubernetes {version} at {path}: {e.message}"
                ) from None
            except kubernetes_validate.SchemaNotFoundError as e:
                raise AssertionError(f"{obj['__source']}: {e.message}") from None
        checked.append(data["kind"])
    assert checked, "nothing rendered"
    return ", ".join(checked)


def check_service_monitor(r: Rendered, sm: dict) -> None:
    """No schema ships for the CRD: check what makes it scrape the right port."""
    assert sm["kind"] == "ServiceMonitor"
    spec = sm["spec"]
    assert set(spec) <= {"selector", "namespaceSelector", "endpoints", "jobLabel"}, spec.keys()
    selector = spec["selector"]["matchLabels"]
    matching = [s for s in r.all("Service") if selector.items() <= s["metadata"]["labels"].items()]
    assert len(matching) == 1, f"the ServiceMonitor selects {len(matching)} Services"
    svc = matching[0]
    assert svc["metadata"]["name"].endswith("-metrics"), "it must select the metrics Service only"
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["endpoints"]
    (port,) = svc["spec"]["ports"]
    assert endpoint["port"] == port["name"] and endpoint["path"] == "/metrics"
    assert port["targetPort"] == "proxy-admin"
    for key in ("interval", "scrapeTimeout"):
        assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", endpoint[key]), endpoint


def check_security_context(c: dict) -> None:
    sc = c["securityContext"]
    want = {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for key, value in want.items():
        assert sc.get(key) == value, f"securityContext.{key} = {sc.get(key)!r}, want {value!r}"
    assert "add" not in sc["capabilities"]


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def seconds(duration: str) -> int:
    m = re.fullmatch(r"([0-9]+)s", duration)
    assert m, f"shutdown_grace {duration!r} is not in whole seconds"
    return int(m.group(1))


def check_pod(pod: dict, toml_cfg: dict, services: list[dict], secret_name: str, config_map: str) -> None:
    """The wiring between the pod, the config file, the Secret and the Services."""
    th = container(pod, SIDECAR)
    check_security_context(th)
    ports = {p["name"]: p["containerPort"] for p in th["ports"]}
    assert ports["proxy"] == port_of(toml_cfg["server"]["listen"]), (ports, toml_cfg["server"])
    assert ports["proxy-admin"] == port_of(toml_cfg["server"]["admin_listen"])
    forward_auth = toml_cfg.get("forward_auth")
    if forward_auth:
        assert ports["proxy-verify"] == port_of(forward_auth["listen"]), (ports, forward_auth)
        assert len(set(ports.values())) == 3, f"three listeners, three ports: {ports}"
    else:
        assert "proxy-verify" not in ports, "the verify port exists in mode forward-auth only"
    assert th["args"] == ["--config", f"{CONFIG_DIR}/token-handler.toml"]

    # Probes on the admin port.
    assert th["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "proxy-admin"}
    assert th["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "proxy-admin"}

    # Shutdown: preStop sleep + drain grace < terminationGracePeriodSeconds, for every container.
    grace = seconds(toml_cfg["server"]["shutdown_grace"])
    pre_stop = th.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    tgps = pod["terminationGracePeriodSeconds"]
    assert tgps > pre_stop + grace, f"terminationGracePeriodSeconds {tgps} <= preStop {pre_stop} + drain {grace}"
    for c in pod["containers"]:
        hook = c.get("lifecycle", {}).get("preStop", {})
        assert "exec" not in hook, f"{c['name']}: exec hooks need a shell; use sleep"
        if "sleep" in hook:
            assert 0 < hook["sleep"]["seconds"] < tgps, f"{c['name']}: preStop sleep {hook} vs {tgps}"

    # Secrets: only as files from the whole-Secret mount, never literal values.
    env = {e["name"]: e for e in th.get("env", [])}
    for name in ("TOKEN_HANDLER_COOKIE_KEYS", "TOKEN_HANDLER_CLIENT_SECRET"):
        assert name not in env, f"{name} must come from a file"
    assert env["TOKEN_HANDLER_COOKIE_KEYS_FILE"]["value"].startswith(SECRET_DIR + "/")
    mounts = {m["name"]: m for m in th["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    secret_mount = mounts["token-handler-secrets"]
    assert secret_mount["mountPath"] == SECRET_DIR and secret_mount["readOnly"] is True
    assert "subPath" not in secret_mount, "subPath mounts never see Secret updates"
    assert volumes["token-handler-secrets"]["secret"]["secretName"] == secret_name
    assert volumes["token-handler-secrets"]["secret"]["defaultMode"] == 0o444
    assert mounts["token-handler-config"]["mountPath"] == CONFIG_DIR
    assert volumes["token-handler-config"]["configMap"]["name"] == config_map
    for c in pod["containers"]:
        if c["name"] != SIDECAR:
            names = {m["name"] for m in c.get("volumeMounts", [])}
            assert "token-handler-secrets" not in names, f"{c['name']} must not see the cookie keys"

    # Services reach the proxy port only, never the API's.
    api_ports = {p["containerPort"] for c in pod["containers"] if c["name"] != SIDECAR for p in c.get("ports", [])}
    api_names = {p["name"] for c in pod["containers"] if c["name"] != SIDECAR for p in c.get("ports", [])}
    for svc in services:
        for p in svc["spec"]["ports"]:
            target = p.get("targetPort", p["port"])
            assert target not in api_ports and target not in api_names, f"Service {svc['metadata']['name']} exposes the API"
            allowed = ("proxy", "proxy-admin", "proxy-verify") if forward_auth else ("proxy", "proxy-admin")
            assert target in allowed, f"Service {svc['metadata']['name']} targets {target!r}"


def token_handler_bin() -> Path:
    given = os.environ.get("TOKEN_HANDLER_BIN")
    if given:
        path = Path(given)
    else:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
        path = target / "debug" / "token-handler"
    assert path.is_file(), f"no token-handler binary at {path}: build it, or set TOKEN_HANDLER_BIN"
    return path


def run_check(config_text: str, env: dict[str, str], workdir: Path) -> str:
    config_path = workdir / "token-handler.toml"
    config_path.write_text(config_text)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TOKEN_HANDLER_")}
    proc = subprocess.run(
        [str(token_handler_bin()), "check", "--config", str(config_path)],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 0, f"token-handler check exited {proc.returncode}:\n{output}\n--- config ---\n{config_text}"
    return output


def check_config_with_binary(r: Rendered, pod: dict) -> str:
    """`token-handler check` on the rendered TOML: with secrets in the environment, and as the
    pod would run it (the rendered Secret's files, or stand-ins for an existing Secret)."""
    with tempfile.TemporaryDirectory(prefix="th-helm-") as tmp:
        tmp_path = Path(tmp)
        run_check(
            r.toml_text(),
            {"TOKEN_HANDLER_COOKIE_KEYS": keygen(), "TOKEN_HANDLER_CLIENT_SECRET": "test-client-secret"},
            tmp_path,
        )
        secret_files = tmp_path / "secret"
        secret_files.mkdir()
        secrets = r.all("Secret")
        if secrets:
            for key, value in secrets[0]["data"].items():
                (secret_files / key).write_bytes(base64.b64decode(value))
        pod_env = {}
        for e in container(pod, SIDECAR).get("env", []):
            value = e.get("value", "")
            if e["name"].endswith("_FILE") and value.startswith(SECRET_DIR + "/"):
                local = secret_files / value[len(SECRET_DIR) + 1:]
                if not secrets:  # existingSecret: stand-in contents
                    stand_in = {"COOKIE": keygen(), "REDIS": "redis://redis:6379/0"}
                    local.write_text(next((v for k, v in stand_in.items() if k in e["name"]), "test-client-secret"))
                value = str(local)
            pod_env[e["name"]] = value
        return run_check(r.toml_text(), pod_env, tmp_path)


def standard_checks(label: str, values: dict) -> Rendered | None:
    """Render (mode "deployment" unless `values` says otherwise) and run every shared check."""
    r = check(f"{label}: renders", lambda: render(values))
    if r is None:
        return None
    check(f"{label}: lint --strict", lambda: lint_clean(values))
    check(f"{label}: manifests valid (Kubernetes {', '.join(KUBE_VERSIONS)}, strict)", lambda: validate_manifests(r))
    secret_name = (values.get("secrets") or {}).get("existingSecret") or f"{RELEASE}-token-handler"
    check(
        f"{label}: pod wiring, probes, shutdown timing, securityContext",
        lambda: check_pod(r.pod_spec(), r.toml(), r.all("Service"), secret_name, f"{RELEASE}-token-handler"),
    )
    check(f"{label}: token-handler check accepts the rendered config",
          lambda: check_config_with_binary(r, r.pod_spec()))
    return r


def lint_clean(values: dict | None = None, chart: Path = CHART) -> None:
    report = helm.lint(str(chart), values or None, strict=True, kube_version="v1.30.0", namespace=NAMESPACE)
    problems = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]
    assert not problems, "\n".join(str(p) for p in problems)


# ---------------------------------------------------------------------------------------------
# Scenarios

def main() -> int:
    print(f"helm-python-sdk {helm.__version__} (Helm SDK {helm.helm_sdk_version()}), "
          f"kubernetes-validate {kubernetes_validate.__version__}")
    try:
        print(f"token-handler binary: {token_handler_bin()}")
    except AssertionError as e:
        print(f"token-handler binary: {e}")

    with helm.Chart.load(str(CHART)) as c:
        defaults = c.values
        metadata = c.metadata

    def app_version_matches_cargo() -> None:
        cargo = tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]
        assert metadata["appVersion"] == cargo, f"Chart.yaml appVersion {metadata['appVersion']} != Cargo.toml {cargo}"

    def chart_metadata() -> None:
        assert metadata["apiVersion"] == "v2", metadata["apiVersion"]
        app_version_matches_cargo()

    check("Chart.yaml: apiVersion v2, appVersion is Cargo.toml's version", chart_metadata)
    check("chart: lint --strict with the default values (Kubernetes 1.30)", lint_clean)

    def schema_knows_every_config_key() -> str:
        """Every key of config/token-handler.toml, set or commented out, is accepted by the
        schema (or owned by the chart): a new proxy key needs a line in values.schema.json."""
        with helm.Chart.load(str(CHART)) as c:
            schema = c.schema
        config_schema = schema["properties"]["config"]["properties"]
        chart_owned = {("server", "listen"), ("server", "admin_listen"), ("server", "shutdown_grace"),
                       ("forward_auth", "listen")}
        section, missing, seen = None, [], 0
        for line in EXAMPLE_CONFIG.read_text().splitlines():
            m = re.match(r"^#?\s*(\[\[?)([a-z_]+)\]\]?\s*$", line)
            if m:
                section = m.group(2)
                continue
            m = re.match(r"^#?\s?([a-z][a-z0-9_]*)\s*=\s*\S", line)
            if m and section:
                seen += 1
                if (section, m.group(1)) in chart_owned:
                    continue
                table = config_schema.get(section, {})
                props = table.get("items", table).get("properties", {})  # [[routes]]: its items
                if m.group(1) not in props:
                    missing.append(f"[{section}] {m.group(1)}")
        assert seen > 30, f"read only {seen} keys from {EXAMPLE_CONFIG}"
        assert not missing, "values.schema.json (config) lacks: " + ", ".join(missing)
        return f"{seen} keys"

    check("schema: accepts every key of config/token-handler.toml", schema_knows_every_config_key)

    # -- default values --------------------------------------------------------------------------
    r = standard_checks("defaults", {})
    if r:
        def defaults_shape() -> None:
            assert r.kinds() == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"], r.kinds()
            dep = r.one("Deployment")
            assert dep["spec"]["replicas"] == defaults["replicas"]
            pod = r.pod_spec()
            assert pod["automountServiceAccountToken"] is False
            assert pod["securityContext"]["runAsNonRoot"] is True
            th = r.sidecar()
            assert th["image"] == f"token-handler:{metadata['appVersion']}", th["image"]
            assert th["lifecycle"]["preStop"]["sleep"]["seconds"] == 5
            assert pod["terminationGracePeriodSeconds"] == 5 + 20 + 5
            api = container(pod, "api")
            assert api["lifecycle"]["preStop"]["sleep"]["seconds"] == 25, "the API outlives the drain"
            assert th["resources"]["limits"]["memory"]
            cfg = r.toml()
            assert cfg["server"]["listen"] == "0.0.0.0:8080" and cfg["server"]["admin_listen"] == "0.0.0.0:9090"
            assert cfg["server"]["shutdown_grace"] == "20s"
            assert cfg["upstream"]["url"] == "http://127.0.0.1:3000"
            assert "TOKEN_HANDLER_CLIENT_SECRET_FILE" not in {e["name"] for e in th["env"]}
            svc = r.one("Service")
            assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["proxy"]
            assert [p["name"] for p in th["ports"]] == ["proxy", "proxy-admin"], "no verify port"
            assert "forward_auth" not in cfg
            pdb = r.one("PodDisruptionBudget")
            assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]

        check("defaults: Deployment + Service + ConfigMap + Secret + PDB, computed grace 30s", defaults_shape)

        def generated_key() -> None:
            keys = base64.b64decode(r.one("Secret")["data"]["cookie-keys"]).decode()
            kid, b64 = keys.split(":")
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", kid) and len(base64.b64decode(b64)) == 32, keys

        check("defaults: a cookie key is generated (kid:base64 of 32 bytes)", generated_key)

        def config_round_trip() -> None:
            cfg = r.toml()
            want = copy.deepcopy(defaults["config"])
            for section, table in want.items():
                assert cfg[section] | table == cfg[section], f"[{section}] {cfg[section]} vs values {table}"
            assert isinstance(cfg["server"]["max_connections"], int), "integers must stay integers"

        check("defaults: the TOML holds exactly the `config` values (types kept)", config_round_trip)

    # -- a different config: every TOML shape the writer has to get right -----------------------
    tricky = {
        "config": {
            "server": {"trust_forwarded_headers": True, "trusted_proxies": ["10.0.0.0/8", "fd00::/8"],
                       "max_connections": 250000, "max_header_bytes": 65536},
            "upstream": {"url": "http://127.0.0.1:8000", "connect_timeout": "500ms"},
            "idp": {
                "dialect": "oauth2",
                "issuer": None,
                "token_endpoint": "https://login.example.com/oauth2/token",
                "authorization_endpoint": "https://login.example.com/oauth2/authorize",
                "client_id": 'spa "quoted" \\ back\\slash é ✓ \x01\x7f\u2028 {{ x }}',
                "client_auth": "body",
                "scope": "openid offline_access api:read",
                "send_scope_on_refresh": False,
                "extra_authorize_params": {"prompt": "consent", "ui_locales": "de en", "acr-values": "x\ty"},
                "redirect_uri": "https://shop.example.com/auth/callback",
                "post_logout_redirect_uri": "https://shop.example.com/bye?x=<1>&y=2",
                "max_response_bytes": 1048576,
            },
            "session": {
                "cookie_name": "shop_sess",
                "same_site": "lax",
                "lifetime": "8h",
                "claims": ["sub", "email"],
                "max_tracked_rotations": 1000000,
            },
            "proxy": {"protected_paths": ["/api", "/graphql"], "public_paths": ["/api/health", "/api/docs"],
                      "browser_authorization": "reject", "auth_prefix": "/bff"},
            "csrf": {"header": "x-requested-by", "allowed_origins": ["https://admin.example.com"]},
            "log": {"format": "text", "level": "token_handler=debug,info"},
        },
        "secrets": {"cookieKeys": [keygen().replace("k1", "k2"), keygen()], "clientSecret": "s3cr3t"},
        "ports": {"http": 8443, "admin": 9443, "bindAddress": "::"},
        "lifecycle": {"preStopSleepSeconds": 10, "shutdownGraceSeconds": 45, "terminationMarginSeconds": 15},
        "app": {"port": 8000, "preStopSleepSeconds": 0, "resources": {"requests": {"cpu": "100m"}}},
        "sidecar": {"extraVolumeMounts": [{"name": "idp-ca", "mountPath": "/etc/token-handler-ca", "readOnly": True}]},
        "extraVolumes": [{"name": "idp-ca", "configMap": {"name": "corp-ca"}}],
        "image": {"digest": "sha256:" + "a" * 64},
    }
    r = standard_checks("custom config (oauth2, lists, inline table, escapes, IPv6, digest)", tricky)
    if r:
        def tricky_round_trip() -> None:
            cfg = r.toml()
            idp = cfg["idp"]
            assert "issuer" not in idp, "null leaves the key out"
            assert idp["client_id"] == tricky["config"]["idp"]["client_id"], idp["client_id"]
            assert idp["extra_authorize_params"] == tricky["config"]["idp"]["extra_authorize_params"]
            assert idp["post_logout_redirect_uri"] == tricky["config"]["idp"]["post_logout_redirect_uri"]
            assert idp["send_scope_on_refresh"] is False
            assert cfg["session"]["max_tracked_rotations"] == 1000000
            assert cfg["server"]["trusted_proxies"] == ["10.0.0.0/8", "fd00::/8"]
            assert cfg["proxy"]["public_paths"] == ["/api/health", "/api/docs"]
            assert cfg["server"]["listen"] == "[::]:8443" and cfg["server"]["admin_listen"] == "[::]:9443"
            assert cfg["server"]["shutdown_grace"] == "45s"
            assert cfg["log"]["level"] == "token_handler=debug,info"
            pod = r.pod_spec()
            assert pod["terminationGracePeriodSeconds"] == 10 + 45 + 15
            assert "lifecycle" not in container(pod, "api"), "app.preStopSleepSeconds 0 means no hook"
            th = r.sidecar()
            assert th["image"] == "token-handler@sha256:" + "a" * 64
            assert th["volumeMounts"][-1]["mountPath"] == "/etc/token-handler-ca", th["volumeMounts"]
            assert pod["volumes"][-1] == {"name": "idp-ca", "configMap": {"name": "corp-ca"}}
            env = {e["name"]: e["value"] for e in th["env"]}
            assert env["TOKEN_HANDLER_CLIENT_SECRET_FILE"] == f"{SECRET_DIR}/client-secret"
            data = r.one("Secret")["data"]
            assert base64.b64decode(data["client-secret"]) == b"s3cr3t"
            keys = base64.b64decode(data["cookie-keys"]).decode()
            assert keys == ",".join(tricky["secrets"]["cookieKeys"]), "keys joined in order, newest first"

        check("custom config: TOML round-trips (strings, escapes, null, inline table, arrays, ints)", tricky_round_trip)

    # -- existing Secret ---------------------------------------------------------------------------
    existing = {"secrets": {"existingSecret": "shop-bff-keys", "clientSecretKey": "oauth-client-secret"},
                "config": {"idp": {"client_auth": "basic"}}}
    r = standard_checks("existingSecret (confidential client)", existing)
    if r:
        def existing_secret() -> None:
            assert not r.all("Secret"), "no Secret is created"
            env = {e["name"]: e["value"] for e in r.sidecar()["env"]}
            assert env["TOKEN_HANDLER_COOKIE_KEYS_FILE"] == f"{SECRET_DIR}/cookie-keys"
            assert env["TOKEN_HANDLER_CLIENT_SECRET_FILE"] == f"{SECRET_DIR}/oauth-client-secret"

        check("existingSecret: no Secret rendered, files read from the given one", existing_secret)
    public = {"secrets": {"existingSecret": "shop-bff-keys", "clientSecretKey": ""}}
    r = standard_checks("existingSecret (public client)", public)
    if r:
        def no_client_secret() -> None:
            names = {e["name"] for e in r.sidecar()["env"]}
            assert "TOKEN_HANDLER_CLIENT_SECRET_FILE" not in names, names

        check("existingSecret (public client): no client secret file", no_client_secret)

    # -- HPA -----------------------------------------------------------------------------------
    hpa_values = {"autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 12,
                                  "targetMemoryUtilizationPercentage": 80},
                  "app": {"resources": {"requests": {"cpu": "200m", "memory": "128Mi"}}}}
    r = standard_checks("autoscaling on", hpa_values)
    if r:
        def hpa() -> None:
            h = r.one("HorizontalPodAutoscaler")
            assert h["apiVersion"] == "autoscaling/v2"
            assert h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": f"{RELEASE}-token-handler"}
            assert (h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) == (3, 12)
            assert [m["resource"]["name"] for m in h["spec"]["metrics"]] == ["cpu", "memory"]
            assert "replicas" not in r.one("Deployment")["spec"], "the HPA owns the replica count"

        check("autoscaling on: HPA on the Deployment, replicas left to it", hpa)

    # -- ServiceMonitor ------------------------------------------------------------------------
    r = standard_checks("ServiceMonitor on", {"metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}})
    if r:
        def service_monitor() -> None:
            sm = r.one("ServiceMonitor")
            assert sm["metadata"]["labels"]["release"] == "prom"
            main = r.one("Service", f"{RELEASE}-token-handler")
            assert [p["targetPort"] for p in main["spec"]["ports"]] == ["proxy"], "admin port stays off the main Service"
            assert not sm["spec"]["selector"]["matchLabels"].items() <= main["metadata"]["labels"].items()

        check("ServiceMonitor on: scrapes the metrics Service only", service_monitor)

    # -- NetworkPolicy -------------------------------------------------------------------------
    np_values = {"networkPolicy": {
        "enabled": True,
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "egress": [{"ports": [{"port": 53, "protocol": "UDP"}, {"port": 443, "protocol": "TCP"}]}],
    }}
    r = standard_checks("NetworkPolicy on", np_values)
    if r:
        def network_policy() -> None:
            np = r.one("NetworkPolicy")
            spec = np["spec"]
            assert spec["podSelector"]["matchLabels"] == r.one("Deployment")["spec"]["selector"]["matchLabels"]
            assert spec["policyTypes"] == ["Ingress", "Egress"]
            allowed = sorted(p["port"] for rule in spec["ingress"] for p in rule["ports"])
            assert allowed == [8080, 9090], f"only the proxy and admin ports, got {allowed}"
            assert all(rule.get("from") for rule in spec["ingress"])

        check("NetworkPolicy on: ingress to the proxy (and admin for metrics) only", network_policy)

        def network_policy_default() -> None:
            np = render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")
            assert np["spec"]["policyTypes"] == ["Ingress"]
            assert [[p["port"] for p in rule["ports"]] for rule in np["spec"]["ingress"]] == [[8080]]

        check("NetworkPolicy defaults: proxy port only, egress unrestricted", network_policy_default)

    # -- cross-replica coordination ---------------------------------------------------------------
    coord_values = {"replicas": 3, "coordination": {"enabled": True},
                    "secrets": {"redisUrl": "redis://:s3cret@redis-master:6379/0"},
                    "config": {"coordination": {"lease_ttl": "15s"}}}
    r = standard_checks("coordination on", coord_values)
    if r:
        def coordination() -> None:
            env = {e["name"]: e.get("value") for e in r.sidecar()["env"]}
            assert env["TOKEN_HANDLER_REDIS_URL_FILE"] == f"{SECRET_DIR}/redis-url", env
            secret = r.one("Secret")["data"]
            assert base64.b64decode(secret["redis-url"]).decode().startswith("redis://")
            assert "s3cret" not in r.toml_text(), "the Redis password stays in the Secret"
            assert r.toml()["coordination"]["lease_ttl"] == "15s"

        check("coordination on: Redis URL from the Secret, tuning in the config", coordination)

    sentinel_values = {"replicas": 3, "coordination": {"enabled": True},
                       "secrets": {"redisUsername": "token-handler", "redisPassword": "s3cret-data",
                                   "redisSentinelPassword": "s3cret-sentinel"},
                       "config": {"coordination": {"sentinels": ["redis://redis-sentinel:26379"],
                                                   "sentinel_master": "mymaster"}}}
    r = standard_checks("coordination on Sentinel", sentinel_values)
    if r:
        def sentinel() -> None:
            env = {e["name"]: e.get("value") for e in r.sidecar()["env"]}
            assert "TOKEN_HANDLER_REDIS_URL_FILE" not in env, "the addresses are in the config"
            assert env["TOKEN_HANDLER_REDIS_USERNAME_FILE"] == f"{SECRET_DIR}/redis-username", env
            assert env["TOKEN_HANDLER_REDIS_PASSWORD_FILE"] == f"{SECRET_DIR}/redis-password", env
            assert env["TOKEN_HANDLER_REDIS_SENTINEL_PASSWORD_FILE"] == f"{SECRET_DIR}/redis-sentinel-password", env
            assert "TOKEN_HANDLER_REDIS_SENTINEL_USERNAME_FILE" not in env, "not set, not mounted"
            secret = r.one("Secret")["data"]
            assert base64.b64decode(secret["redis-password"]).decode() == "s3cret-data"
            assert base64.b64decode(secret["redis-sentinel-password"]).decode() == "s3cret-sentinel"
            assert "s3cret" not in r.toml_text(), "the passwords stay in the Secret"
            assert r.toml()["coordination"]["sentinel_master"] == "mymaster"

        check("coordination on Sentinel: addresses in the config, credentials from the Secret", sentinel)

    cluster_values = {"coordination": {"enabled": True},
                      "secrets": {"existingSecret": "shop-bff-secrets", "redisPasswordKey": "redis-pw"},
                      "config": {"coordination": {"cluster_nodes": ["rediss://redis-cluster:6379"]}}}
    r = standard_checks("coordination on Cluster, existing Secret", cluster_values)
    if r:
        def cluster() -> None:
            env = {e["name"]: e.get("value") for e in r.sidecar()["env"]}
            redis_env = sorted(k for k in env if "REDIS" in k)
            assert redis_env == ["TOKEN_HANDLER_REDIS_PASSWORD_FILE"], redis_env
            assert env["TOKEN_HANDLER_REDIS_PASSWORD_FILE"] == f"{SECRET_DIR}/redis-pw", env
            assert "Secret" not in r.kinds()

        check("coordination on Cluster: only the named key of the existing Secret is mounted", cluster)

    # -- [[routes]] --------------------------------------------------------------------------------
    routes = [
        {"path": "/api", "methods": ["GET", "POST"], "session": "required",
         "identity_headers": {"X-Auth-Request-User": "sub", "X-Auth-Request-Email": "email"}},
        {"path": "/api/public", "session": "none", "upstream": "https://public-api.prod.svc:8443",
         "connect_timeout": "1s", "response_header_timeout": "15s"},
        {"path": "/search", "session": "optional", "methods": ["GET", "HEAD"]},
    ]
    r = standard_checks("routes", {"config": {"routes": routes}})
    if r:
        def routes_round_trip() -> None:
            cfg = r.toml()
            assert cfg["routes"] == routes, cfg["routes"]
            assert r.toml_text().count("\n[[routes]]\n") == 3, "one [[routes]] table per route"
            assert cfg["upstream"]["url"] == "http://127.0.0.1:3000", "routes leave the default upstream"

        check("routes: [[routes]] tables round-trip (methods, timeouts, identity_headers inline table)", routes_round_trip)

    # -- [telemetry] ------------------------------------------------------------------------------
    telemetry = {"otlp_endpoint": "http://otel-collector.observability:4318/v1/traces",
                 "service_name": "shop-bff", "sample_ratio": 0.25, "batch_delay": "2s"}
    r = standard_checks("telemetry", {"config": {"telemetry": telemetry}})
    if r:
        def telemetry_round_trip() -> None:
            assert r.toml()["telemetry"] == telemetry, r.toml()["telemetry"]

        check("telemetry: [telemetry] round-trips", telemetry_round_trip)

    # -- mode "forward-auth": token-handler alone, beside the gateway ----------------------------
    ingress_nginx = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}},
                      "podSelector": {"matchLabels": {"app.kubernetes.io/name": "ingress-nginx"}}}]
    monitoring = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    fa_values = {
        "mode": "forward-auth",
        "config": {"routes": [{"path": "/api", "identity_headers": {"X-Auth-Request-User": "sub",
                                                                    "X-Auth-Request-Email": "email"}}]},
        "secrets": {"cookieKeys": [keygen()]},
        "networkPolicy": {"enabled": True, "ingressFrom": ingress_nginx, "verifyFrom": ingress_nginx,
                          "metricsFrom": monitoring},
        "metrics": {"serviceMonitor": {"enabled": True}},
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6},
    }
    r = standard_checks("forward-auth (NetworkPolicy, HPA, ServiceMonitor)", fa_values)
    if r:
        def forward_auth_shape() -> None:
            assert r.kinds() == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
                                 "PodDisruptionBudget", "Secret", "Service", "Service", "ServiceMonitor"], r.kinds()
            pod = r.pod_spec()
            assert [c["name"] for c in pod["containers"]] == [SIDECAR], "token-handler alone, no API container"
            assert pod["terminationGracePeriodSeconds"] == 5 + 20 + 5, "no API preStop to outlive"
            cfg = r.toml()
            assert cfg["forward_auth"] == {"listen": "0.0.0.0:4181", "gateway": "ingress-nginx"}, cfg.get("forward_auth")
            assert cfg["server"]["listen"] == "0.0.0.0:8080" and cfg["server"]["admin_listen"] == "0.0.0.0:9090"
            assert "upstream" not in cfg, "no upstream: the gateway forwards"
            assert cfg["routes"] == fa_values["config"]["routes"]
            svc = r.one("Service", f"{RELEASE}-token-handler")
            assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
                ("http", 80, "proxy"), ("verify", 4181, "proxy-verify")], svc["spec"]["ports"]
            metrics_svc = r.one("Service", f"{RELEASE}-token-handler-metrics")
            assert [p["targetPort"] for p in metrics_svc["spec"]["ports"]] == ["proxy-admin"]
            hpa = r.one("HorizontalPodAutoscaler")
            assert hpa["spec"]["scaleTargetRef"]["name"] == r.one("Deployment")["metadata"]["name"]
            assert "replicas" not in r.one("Deployment")["spec"]

        check("forward-auth: token-handler alone; forward_auth.listen on the verify port; no [upstream]; "
              "Service http + verify; HPA", forward_auth_shape)

        def forward_auth_network_policy() -> None:
            spec = r.one("NetworkPolicy")["spec"]
            assert spec["podSelector"]["matchLabels"] == r.one("Deployment")["spec"]["selector"]["matchLabels"]
            rules = {tuple(p["port"] for p in rule["ports"]): rule.get("from") for rule in spec["ingress"]}
            assert rules == {(8080,): ingress_nginx, (4181,): ingress_nginx, (9090,): monitoring}, rules
            other = render(deep_merge(fa_values, {"networkPolicy": {"verifyFrom": monitoring}}))
            rules = {tuple(p["port"] for p in rule["ports"]): rule.get("from")
                     for rule in other.one("NetworkPolicy")["spec"]["ingress"]}
            assert rules[(4181,)] == monitoring and rules[(8080,)] == ingress_nginx, "verifyFrom is its own list"

        check("forward-auth NetworkPolicy: http from ingressFrom, verify from verifyFrom only, admin from metricsFrom",
              forward_auth_network_policy)

    r = standard_checks("forward-auth defaults", {"mode": "forward-auth"})
    if r:
        def forward_auth_defaults() -> None:
            assert r.kinds() == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service"], r.kinds()
            notes = r.files.get("token-handler/templates/NOTES.txt", "")
            assert "never route the verify port" in notes.lower(), notes
            assert "networkPolicy.enabled is false" in notes, "warns that every pod reaches the verify port"

        check("forward-auth defaults: Deployment, Service, PDB, ConfigMap, Secret; NOTES warn about the verify port",
              forward_auth_defaults)

    fa_upstream = {"mode": "forward-auth", "ports": {"verify": 14181, "bindAddress": "::"},
                   "config": {"upstream": {"url": "http://api.prod.svc:8080"}}}
    r = standard_checks("forward-auth that also forwards (upstream.url, IPv6, own verify port)", fa_upstream)
    if r:
        def forward_auth_upstream() -> None:
            cfg = r.toml()
            assert cfg["upstream"]["url"] == "http://api.prod.svc:8080" and cfg["upstream"]["connect_timeout"] == "2s"
            assert cfg["forward_auth"]["listen"] == "[::]:14181", cfg["forward_auth"]
            svc = r.one("Service")
            assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"http": 80, "verify": 14181}

        check("forward-auth with upstream.url: [upstream] kept; verify port from ports.verify", forward_auth_upstream)

    # -- forward-auth beside ingress-nginx: the README's example values and the Ingresses -------
    example = yaml.safe_load(FORWARD_AUTH_EXAMPLE.read_text())

    def example_in_readme() -> None:
        readme = (CHART / "README.md").read_text()
        assert f"```yaml\n{FORWARD_AUTH_EXAMPLE.read_text()}```" in readme, \
            "the chart README's forward-auth example must be tests/helm/forward-auth-values.yaml verbatim"
        # ... and the annotations it says they render (helm install shop ... -n shop).
        m = re.search(r"```yaml\n(nginx\.ingress\.kubernetes\.io/auth-url: .*?)```", readme, re.S)
        assert m, "the README shows the API Ingress's annotations"
        with helm.Chart.load(str(CHART)) as c:
            shown = Rendered(c.render(example, name="shop", namespace="shop"))
        rendered = shown.one("Ingress", "shop-token-handler-api")["metadata"]["annotations"]
        assert yaml.safe_load(m.group(1)) == rendered, f"README {m.group(1)!r} vs rendered {rendered}"

    check("forward-auth example: the chart README shows exactly the values tested here", example_in_readme)
    r = standard_checks("forward-auth example (ingress-nginx)", example)
    if r:
        def example_ingresses() -> None:
            fullname = f"{RELEASE}-token-handler"
            api, auth = r.one("Ingress", f"{fullname}-api"), r.one("Ingress", f"{fullname}-auth")
            assert api["metadata"]["annotations"] == {
                "nginx.ingress.kubernetes.io/auth-url": f"http://{fullname}.{NAMESPACE}.svc.cluster.local:4181/verify",
                "nginx.ingress.kubernetes.io/auth-response-headers": "Authorization,X-Auth-Request-Email,X-Auth-Request-User",
                "nginx.ingress.kubernetes.io/auth-always-set-cookie": "true",
                "nginx.ingress.kubernetes.io/proxy-buffer-size": "32k",
            }, api["metadata"]["annotations"]
            assert "annotations" not in auth["metadata"], "the /auth Ingress is not behind forward auth"
            for ing in (api, auth):
                spec = ing["spec"]
                assert spec["ingressClassName"] == "nginx"
                assert spec["tls"] == [{"hosts": ["shop.example.com"], "secretName": "shop-example-com-tls"}]
                assert [rule["host"] for rule in spec["rules"]] == ["shop.example.com"], "one host: the SPA's origin"
            (api_path,) = api["spec"]["rules"][0]["http"]["paths"]
            assert api_path == {"path": "/api", "pathType": "Prefix",
                                "backend": {"service": {"name": "shop-api", "port": {"number": 80}}}}, api_path
            (auth_path,) = auth["spec"]["rules"][0]["http"]["paths"]
            assert auth_path == {"path": "/auth", "pathType": "Prefix",
                                 "backend": {"service": {"name": fullname, "port": {"name": "http"}}}}, auth_path

        check("forward-auth example: API Ingress with auth-url, auth-response-headers, auth-always-set-cookie, "
              "proxy-buffer-size; /auth Ingress to port http", example_ingresses)

        def verify_port_never_routed() -> None:
            svc = r.one("Service", f"{RELEASE}-token-handler")
            by_name = {p["name"]: p for p in svc["spec"]["ports"]}
            by_number = {p["port"]: p for p in svc["spec"]["ports"]}
            routed = 0
            for ing in r.all("Ingress"):
                for rule in ing["spec"]["rules"]:
                    for path in rule["http"]["paths"]:
                        backend = path["backend"]["service"]
                        if backend["name"] != svc["metadata"]["name"]:
                            continue
                        port = by_name.get(backend["port"].get("name")) or by_number.get(backend["port"].get("number"))
                        assert port and port["targetPort"] == "proxy", f"{ing['metadata']['name']} routes {backend}"
                        routed += 1
            assert routed == 1, "only /auth reaches token-handler through an Ingress"
            # The auth-url is the Service's verify port, which is the container's verify listener.
            url = r.one("Ingress", f"{RELEASE}-token-handler-api")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
            m = re.fullmatch(r"http://([^.]+)\.([^.]+)\.svc\.cluster\.local:(\d+)/verify", url)
            assert m and (m.group(1), m.group(2)) == (svc["metadata"]["name"], NAMESPACE), url
            assert by_name["verify"]["port"] == int(m.group(3)) and by_name["verify"]["targetPort"] == "proxy-verify"
            ports = {p["name"]: p["containerPort"] for p in r.sidecar()["ports"]}
            assert ports["proxy-verify"] == port_of(r.toml()["forward_auth"]["listen"])

        check("forward-auth example: no Ingress routes the verify port; auth-url -> Service verify -> forward_auth.listen",
              verify_port_never_routed)

        def example_network_policy() -> None:
            rules = {tuple(p["port"] for p in rule["ports"]): rule.get("from")
                     for rule in r.one("NetworkPolicy")["spec"]["ingress"]}
            assert rules == {(8080,): example["networkPolicy"]["ingressFrom"],
                             (4181,): example["networkPolicy"]["verifyFrom"]}, rules

        check("forward-auth example: NetworkPolicy admits the ingress controller to http and verify, nothing to admin",
              example_network_policy)

    def ingress_options() -> None:
        base = deep_merge(example, {"forwardAuth": {"ingress": {"tlsSecretName": "", "className": ""}}})
        r = render(deep_merge(base, {"forwardAuth": {"ingress": {"numberedSetCookies": 8}}}))
        validate_manifests(r)
        annotations = r.one("Ingress", f"{RELEASE}-token-handler-api")["metadata"]["annotations"]
        assert "nginx.ingress.kubernetes.io/auth-always-set-cookie" not in annotations
        lines = annotations["nginx.ingress.kubernetes.io/configuration-snippet"].splitlines()
        assert lines[:2] == ["auth_request_set $th_set_cookie_1 $upstream_http_x_token_handler_set_cookie_1;",
                             "add_header Set-Cookie $th_set_cookie_1 always;"], lines
        assert len(lines) == 16 and lines[-1] == "add_header Set-Cookie $th_set_cookie_8 always;", lines
        for ing in r.all("Ingress"):
            assert "tls" not in ing["spec"] and "ingressClassName" not in ing["spec"]
        r = render(deep_merge(base, {"forwardAuth": {"clusterDomain": "k8s.internal", "ingress": {
            "responseHeaders": ["Authorization", "X-User"], "apiPort": "http",
            "apiPaths": ["/api", "/graphql"], "proxyBufferSize": "64k",
            "apiAnnotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
            "authAnnotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"}}},
            "config": {"proxy": {"auth_prefix": "/bff"}}, "ports": {"verify": 14181}}))
        validate_manifests(r)
        api, auth = r.one("Ingress", f"{RELEASE}-token-handler-api"), r.one("Ingress", f"{RELEASE}-token-handler-auth")
        a = api["metadata"]["annotations"]
        assert a["nginx.ingress.kubernetes.io/auth-response-headers"] == "Authorization,X-User"
        assert a["nginx.ingress.kubernetes.io/auth-url"] == f"http://{RELEASE}-token-handler.{NAMESPACE}.svc.k8s.internal:14181/verify"
        assert a["nginx.ingress.kubernetes.io/proxy-buffer-size"] == "64k"
        assert a["cert-manager.io/cluster-issuer"] == "letsencrypt"
        assert auth["metadata"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-body-size": "1m"}
        paths = api["spec"]["rules"][0]["http"]["paths"]
        assert [p["path"] for p in paths] == ["/api", "/graphql"]
        assert all(p["backend"]["service"]["port"] == {"name": "http"} for p in paths)
        assert auth["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/bff", "the /auth Ingress follows auth_prefix"
        # Your annotations cannot replace the chart's auth ones.
        r = render(deep_merge(base, {"forwardAuth": {"ingress": {"apiAnnotations": {
            "nginx.ingress.kubernetes.io/auth-url": "http://elsewhere/verify"}}}}))
        url = r.one("Ingress", f"{RELEASE}-token-handler-api")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-url"]
        assert url.endswith(".svc.cluster.local:4181/verify"), url
        assert "Ingress" not in render(deep_merge(example, {"forwardAuth": {"ingress": {"enabled": False}}})).kinds()

    check("forwardAuth.ingress options: numbered Set-Cookie snippet, headers, port name, paths, auth_prefix, "
          "clusterDomain, annotations", ingress_options)

    # -- PDB, shutdown timing, replicas ---------------------------------------------------------
    def pdb_min_available() -> None:
        r = render({"podDisruptionBudget": {"minAvailable": "50%", "maxUnavailable": None}})
        assert r.one("PodDisruptionBudget")["spec"] == {
            "minAvailable": "50%", "selector": r.one("Deployment")["spec"]["selector"]}
        validate_manifests(r)
        assert "PodDisruptionBudget" not in render({"podDisruptionBudget": {"enabled": False}}).kinds()

    check("PDB: minAvailable as a percentage; can be disabled", pdb_min_available)

    def explicit_grace() -> None:
        r = render({"terminationGracePeriodSeconds": 60})
        assert r.pod_spec()["terminationGracePeriodSeconds"] == 60
        refused({"terminationGracePeriodSeconds": 25}, "terminationGracePeriodSeconds (25) must exceed 25")
        refused({"terminationGracePeriodSeconds": 30, "app": {"preStopSleepSeconds": 40}}, "must exceed 40")
        r = render({"lifecycle": {"preStopSleepSeconds": 0}})
        assert "lifecycle" not in r.sidecar(), "0 means no preStop hook"
        assert r.pod_spec()["terminationGracePeriodSeconds"] == 20 + 5

    check("terminationGracePeriodSeconds: explicit value used, too small refused, computed otherwise", explicit_grace)

    # -- config checksum -----------------------------------------------------------------------
    def checksum() -> None:
        def annotation(values: dict) -> str:
            return render(values).one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        base = annotation({})
        assert re.fullmatch(r"[0-9a-f]{64}", base), base
        assert annotation({}) == base, "stable across renders (the generated key is not part of it)"
        assert annotation({"replicas": 5}) == base, "only the config counts"
        assert annotation({"config": {"session": {"lifetime": "8h"}}}) != base, "a config value"
        assert annotation({"lifecycle": {"shutdownGraceSeconds": 30}}) != base, "a chart-owned config key"
        assert annotation({"ports": {"http": 8081}}) != base, "the listen address"
        r = render({})
        toml_sha = hashlib.sha256(r.toml_text().rstrip("\n").encode()).hexdigest()
        assert toml_sha == base, "it is the sha256 of the rendered token-handler.toml"

    check("checksum/config: changes exactly when the rendered config changes", checksum)

    # -- mode "sidecar" and a chart that includes the named templates ---------------------------
    def sidecar_mode_alone() -> None:
        r = render({"mode": "sidecar"})
        assert r.kinds() == ["ConfigMap", "Secret"], r.kinds()
        assert "forward_auth" not in r.toml()
        validate_manifests(r)
        r = render({"mode": "sidecar", "secrets": {"existingSecret": "keys"},
                    "autoscaling": {"enabled": True}, "networkPolicy": {"enabled": True},
                    "metrics": {"serviceMonitor": {"enabled": True}}})
        assert r.kinds() == ["ConfigMap"], r.kinds()

    check('mode "sidecar": only the ConfigMap and the Secret', sidecar_mode_alone)

    with tempfile.TemporaryDirectory(prefix="th-helm-parent-") as tmp:
        parent = Path(tmp) / "my-api"
        shutil.copytree(PARENT, parent)
        shutil.copytree(CHART, parent / "charts" / "token-handler")
        r = check("example-parent (includes token-handler.sidecar): renders", lambda: render({}, parent))
        if r:
            check("example-parent: lint --strict", lambda: lint_clean(chart=parent))
            check("example-parent: manifests valid", lambda: validate_manifests(r))
            check("example-parent: pod wiring, probes, shutdown timing, securityContext",
                  lambda: check_pod(r.pod_spec(), r.toml(), r.all("Service"), f"{RELEASE}-token-handler", f"{RELEASE}-token-handler"))
            check("example-parent: token-handler check accepts the rendered config",
                  lambda: check_config_with_binary(r, r.pod_spec()))

            def parent_shape() -> None:
                assert r.kinds() == ["ConfigMap", "Deployment", "Secret", "Service"], r.kinds()
                pod = r.pod_spec()
                assert [c["name"] for c in pod["containers"]] == ["api", SIDECAR]
                assert r.toml()["upstream"]["url"] == "http://127.0.0.1:8000"
                annotations = r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]
                assert annotations["checksum/config"] == hashlib.sha256(r.toml_text().rstrip("\n").encode()).hexdigest()
                assert pod["terminationGracePeriodSeconds"] == 30
                changed = render({"token-handler": {"config": {"log": {"level": "debug"}}}}, parent)
                assert changed.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != annotations["checksum/config"]
                refused({"token-handler": {"config": {"idp": {"dialect": "saml"}}}}, "dialect", chart=parent)

            check("example-parent: sidecar, volumes, checksum and grace from the subchart; its schema applies", parent_shape)

    # -- client authentication without a secret: a client key, workload identity ---------------
    client_auth_checks.run(sys.modules[__name__])
    # -- the Grafana dashboard and the PrometheusRule (tests/helm/test_monitoring.py) ------------
    test_monitoring.scenarios(sys.modules[__name__])

    # -- values the schema (or a template) refuses ---------------------------------------------
    bad = [
        ("replicas as a string", {"replicas": "3"}, ["/replicas", "want integer"]),
        ("unknown top-level key", {"replica": 3}, ["additional properties 'replica' not allowed"]),
        ("unknown config key (typo)", {"config": {"idp": {"dialekt": "oauth2"}}}, ["/config/idp", "dialekt"]),
        ("unknown config section", {"config": {"coordinaton": {"lease_ttl": "5s"}}}, ["coordinaton"]),
        ("coordination without a Redis URL scheme", {"config": {"coordination": {"redis_url": "r:6379"}}}, ["/config/coordination/redis_url"]),
        ("Sentinels without the master's name", {"config": {"coordination": {"sentinels": ["redis://s:26379"]}}}, ["/config/coordination", "sentinel_master"]),
        ("a password in a Sentinel address", {"config": {"coordination": {"sentinels": ["redis://:pw@s:26379"], "sentinel_master": "m"}}}, ["/config/coordination/sentinels/0"]),
        ("two Redis deployments at once", {"config": {"coordination": {"sentinels": ["redis://s:26379"], "sentinel_master": "m", "cluster_nodes": ["redis://c:6379"]}}}, ["/config/coordination"]),
        ("a Redis password besides existingSecret", {"secrets": {"existingSecret": "x", "redisPassword": "pw"}}, ["/secrets/redisPassword"]),
        ("bad dialect", {"config": {"idp": {"dialect": "saml"}}}, ["/config/idp/dialect"]),
        ("bad same_site", {"config": {"session": {"same_site": "sometimes"}}}, ["/config/session/same_site"]),
        ("bad duration", {"config": {"session": {"lifetime": "soon"}}}, ["/config/session/lifetime"]),
        ("integer config key as a string", {"config": {"server": {"max_connections": "10000"}}}, ["/config/server/max_connections"]),
        ("chart-owned config key", {"config": {"server": {"listen": "0.0.0.0:1"}}}, ["listen"]),
        ("upstream without a scheme", {"config": {"upstream": {"url": "127.0.0.1:3000"}}}, ["/config/upstream/url"]),
        ("TLS certificate without its key", {"config": {"server": {"tls_cert_file": "/tls/tls.crt"}}}, ["tls_key_file"]),
        ("path without /", {"config": {"proxy": {"public_paths": ["health"]}}}, ["/config/proxy/public_paths"]),
        ("malformed cookie key", {"secrets": {"cookieKeys": ["k1:short"]}}, ["/secrets/cookieKeys"]),
        ("existingSecret together with keys", {"secrets": {"existingSecret": "x", "cookieKeys": [keygen()]}}, ["/secrets/cookieKeys"]),
        ("unknown mode", {"mode": "daemonset"}, ["/mode"]),
        ("port out of range", {"ports": {"http": 70000}}, ["/ports/http"]),
        ("one port for both listeners", {"ports": {"http": 9090}}, ["http and admin must differ"]),
        ("forward-auth: verify port equal to the http port", {"mode": "forward-auth", "ports": {"verify": 8080}}, ["verify must differ from http and admin"]),
        ("forward-auth: verify port equal to the admin port", {"mode": "forward-auth", "ports": {"verify": 9090}}, ["verify must differ from http and admin"]),
        ("verify port out of range", {"ports": {"verify": 0}}, ["/ports/verify"]),
        ("chart-owned forward_auth.listen", {"mode": "forward-auth", "config": {"forward_auth": {"listen": "0.0.0.0:1"}}}, ["/config/forward_auth", "listen"]),
        ("[forward_auth] outside mode forward-auth", {"config": {"forward_auth": {}}}, ["config.forward_auth: only in mode forward-auth"]),
        ("forward-auth NetworkPolicy without verifyFrom", {"mode": "forward-auth", "networkPolicy": {"enabled": True}}, ["networkPolicy.verifyFrom"]),
        ("forward-auth with a LoadBalancer Service", {"mode": "forward-auth", "service": {"type": "LoadBalancer"}}, ["service.type: LoadBalancer would put the verify port outside the cluster"]),
        ("example Ingresses outside mode forward-auth", {"forwardAuth": {"ingress": {"enabled": True, "host": "shop.example.com", "apiService": "api"}}}, ["forwardAuth.ingress.enabled: only in mode forward-auth"]),
        ("example Ingresses without a host", {"mode": "forward-auth", "forwardAuth": {"ingress": {"enabled": True, "apiService": "api"}}}, ["/forwardAuth/ingress", "host"]),
        ("example Ingresses without the API Service", {"mode": "forward-auth", "forwardAuth": {"ingress": {"enabled": True, "host": "shop.example.com"}}}, ["/forwardAuth/ingress", "apiService"]),
        ("a wildcard host", {"mode": "forward-auth", "forwardAuth": {"ingress": {"enabled": True, "host": "*.example.com", "apiService": "api"}}}, ["/forwardAuth/ingress/host"]),
        ("the auth prefix among the API paths", {"mode": "forward-auth", "forwardAuth": {"ingress": {"enabled": True, "host": "shop.example.com", "apiService": "api", "apiPaths": ["/api", "/auth/"]}}}, ["apiPaths: /auth/ is the auth prefix"]),
        ("a response header nginx refuses", {"forwardAuth": {"ingress": {"responseHeaders": ["X Auth"]}}}, ["/forwardAuth/ingress/responseHeaders/0"]),
        ("too many numbered Set-Cookie headers", {"forwardAuth": {"ingress": {"numberedSetCookies": 17}}}, ["/forwardAuth/ingress/numberedSetCookies"]),
        ("a bad proxy buffer size", {"forwardAuth": {"ingress": {"proxyBufferSize": "lots"}}}, ["/forwardAuth/ingress/proxyBufferSize"]),
        ("a secret in sidecar.env", {"sidecar": {"env": [{"name": "TOKEN_HANDLER_COOKIE_KEYS", "value": "k"}]}}, ["/sidecar/env/0"]),
        ("bad service type", {"service": {"type": "Ingress"}}, ["/service/type"]),
        ("bad pull policy", {"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy"]),
        ("negative preStop", {"lifecycle": {"preStopSleepSeconds": -1}}, ["/lifecycle/preStopSleepSeconds"]),
        ("grace as a string", {"lifecycle": {"shutdownGraceSeconds": "20s"}}, ["/lifecycle/shutdownGraceSeconds"]),
        ("missing idp.client_id", {"config": {"idp": {"client_id": None}}}, ["client_id"]),
        ("PDB with both bounds", {"podDisruptionBudget": {"minAvailable": 1}}, ["exactly one of minAvailable and maxUnavailable"]),
        ("HPA without a metric", {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": None}}, ["targetCPUUtilizationPercentage"]),
        ("a route without a path", {"config": {"routes": [{"session": "none"}]}}, ["/config/routes/0", "path"]),
        ("a route path without /", {"config": {"routes": [{"path": "api"}]}}, ["/config/routes/0/path"]),
        ("a route's unknown session mode", {"config": {"routes": [{"path": "/api", "session": "maybe"}]}}, ["/config/routes/0/session"]),
        ("a route's unknown key", {"config": {"routes": [{"path": "/api", "identity_header": {}}]}}, ["/config/routes/0", "identity_header"]),
        ("an identity header mapped to a non-string", {"config": {"routes": [{"path": "/api", "identity_headers": {"X-User": 1}}]}}, ["/config/routes/0/identity_headers/X-User"]),
        ("an identity header name with a space", {"config": {"routes": [{"path": "/api", "identity_headers": {"X User": "sub"}}]}}, ["invalid propertyName 'X User'"]),
        ("telemetry over gRPC", {"config": {"telemetry": {"otlp_endpoint": "http://c:4317/v1/traces", "protocol": "grpc"}}}, ["/config/telemetry/protocol"]),
        ("a telemetry endpoint without its path", {"config": {"telemetry": {"otlp_endpoint": "http://c:4318"}}}, ["/config/telemetry/otlp_endpoint"]),
        ("a route upstream without a scheme", {"config": {"routes": [{"path": "/api", "upstream": "api:80"}]}}, ["/config/routes/0/upstream"]),
    ]
    for label, values, needles in bad:
        check(f"refused: {label}", lambda v=values, n=needles: refused(v, *n))

    print()
    print(f"{len(PASSED)} passed, {len(FAILED)} failed")
    if FAILED:
        print("failed: " + "; ".join(FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
