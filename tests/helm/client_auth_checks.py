"""Chart checks of client authentication without a secret in the pod (test_chart.py runs them).

`idp.clientKey`: a Secret holding the private_key_jwt signing key, mounted read-only as a whole
directory and named by TOKEN_HANDLER_CLIENT_KEY_FILE. `idp.workloadIdentity`: a projected
ServiceAccount token (audience, expirationSeconds) mounted read-only, its path written to the
rendered config's idp.client_assertion_file. Either way no client secret is mounted or
referenced; `token-handler check` accepts the rendered config with stand-ins for the files (a
real key from src/client_key/testdata, a JWT for the platform's token) and names the client
authentication in force. Then what must be refused.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]
KEY_DIR = "/var/run/secrets/token-handler-client-key"
STAND_IN_KEY = REPO / "src" / "client_key" / "testdata" / "ec.jwk.json"
OAUTH2 = {"config": {"idp": {"dialect": "oauth2"}}}


def stand_in_jwt() -> str:
    """A JWT-shaped platform token (the proxy reads its expiry, never checks its signature)."""
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{part({'alg': 'RS256'})}.{part({'iss': 'k8s', 'sub': 'system:serviceaccount:prod:shop', 'exp': 4102444800})}.c2ln"


def check_as_the_pod_runs(h: ModuleType, r, platform_token_path: str | None) -> str:
    """`token-handler check` on the rendered config with the pod's variables, every mounted file
    replaced by a local one: the chart's Secret as rendered, the client key by a real test key,
    the projected token by a JWT."""
    with tempfile.TemporaryDirectory(prefix="th-helm-auth-") as tmp:
        tmp_path = Path(tmp)
        text = r.toml_text()
        if platform_token_path:
            token = tmp_path / "platform-token"
            token.write_text(stand_in_jwt())
            assert platform_token_path in text
            text = text.replace(platform_token_path, str(token))
        secret = r.all("Secret")
        data = secret[0]["data"] if secret else {}
        env = {}
        for e in h.container(r.pod_spec(), h.SIDECAR).get("env", []):
            value = e.get("value", "")
            if value.startswith(h.SECRET_DIR + "/"):
                local = tmp_path / value.rsplit("/", 1)[1]
                key = value[len(h.SECRET_DIR) + 1:]
                local.write_bytes(base64.b64decode(data[key]) if key in data else h.keygen().encode())
                value = str(local)
            elif value.startswith(KEY_DIR + "/"):
                value = str(STAND_IN_KEY)
            env[e["name"]] = value
        return h.run_check(text, env, tmp_path)


def shared_checks(h: ModuleType, label: str, values: dict):
    """Render, lint, validate, the shared pod wiring checks; the rendered chart."""
    r = h.check(f"{label}: renders", lambda: h.render(values))
    if r is None:
        return None
    h.check(f"{label}: lint --strict", lambda: h.lint_clean(values))
    h.check(f"{label}: manifests valid (Kubernetes {', '.join(h.KUBE_VERSIONS)}, strict)",
            lambda: h.validate_manifests(r))
    secret_name = (values.get("secrets") or {}).get("existingSecret") or f"{h.RELEASE}-token-handler"
    h.check(f"{label}: pod wiring, probes, shutdown timing, securityContext",
            lambda: h.check_pod(r.pod_spec(), r.toml(), r.all("Service"), secret_name, f"{h.RELEASE}-token-handler"))
    return r


def no_client_secret(h: ModuleType, r) -> None:
    env = {e["name"] for e in r.sidecar()["env"]}
    assert "TOKEN_HANDLER_CLIENT_SECRET_FILE" not in env and "TOKEN_HANDLER_CLIENT_SECRET" not in env, env
    for s in r.all("Secret"):
        assert "client-secret" not in s["data"], "no client secret in the chart's Secret"
    for c in r.pod_spec()["containers"]:
        if c["name"] != h.SIDECAR:
            names = {m["name"] for m in c.get("volumeMounts", [])}
            assert not names & {"token-handler-client-key", "token-handler-idp-token"}, f"{c['name']} sees the credential"


def run(h: ModuleType) -> None:
    # -- a client key from a Secret --------------------------------------------------------------
    key_values = h.deep_merge(OAUTH2, {"idp": {"clientKey": {"existingSecret": "shop-client-key", "key": "key.jwk"}}})
    r = shared_checks(h, "idp.clientKey (private_key_jwt)", key_values)
    if r:
        def client_key() -> None:
            th, pod = r.sidecar(), r.pod_spec()
            env = {e["name"]: e["value"] for e in th["env"]}
            assert env["TOKEN_HANDLER_CLIENT_KEY_FILE"] == f"{KEY_DIR}/key.jwk", env
            mount = {m["name"]: m for m in th["volumeMounts"]}["token-handler-client-key"]
            assert mount == {"name": "token-handler-client-key", "mountPath": KEY_DIR, "readOnly": True}, mount
            volume = {v["name"]: v for v in pod["volumes"]}["token-handler-client-key"]
            assert volume["secret"] == {"secretName": "shop-client-key", "items": [{"key": "key.jwk", "path": "key.jwk"}],
                                        "defaultMode": 0o444}, volume
            assert "client_assertion_file" not in r.toml()["idp"]
            assert "client_auth" not in r.toml()["idp"], "the proxy's default: private_key_jwt with a key"
            no_client_secret(h, r)

        h.check("idp.clientKey: the Secret mounted read-only (no subPath), TOKEN_HANDLER_CLIENT_KEY_FILE, "
                "no client secret", client_key)
        h.check("idp.clientKey: token-handler check signs with the mounted key",
                lambda: assert_in("private_key_jwt signed ES256 with the key in TOKEN_HANDLER_CLIENT_KEY",
                                  check_as_the_pod_runs(h, r, None)))

    # An existing Secret with the default clientSecretKey: no secret file is named either.
    existing = h.deep_merge(key_values, {"secrets": {"existingSecret": "shop-bff-keys"},
                                         "config": {"idp": {"client_auth": "private_key_jwt"}}})
    r = h.check("idp.clientKey with secrets.existingSecret: renders", lambda: h.render(existing))
    if r:
        h.check("idp.clientKey with secrets.existingSecret: no client secret referenced", lambda: no_client_secret(h, r))
        h.check("idp.clientKey with secrets.existingSecret: token-handler check accepts it",
                lambda: check_as_the_pod_runs(h, r, None))

    # -- workload identity -----------------------------------------------------------------------
    path = "/var/run/secrets/idp/token.jwt"
    wi_values = h.deep_merge(OAUTH2, {"idp": {"workloadIdentity": {
        "enabled": True, "audience": "https://idp.example.com/token", "expirationSeconds": 3600, "path": path}},
        "serviceAccountName": "shop-api"})
    r = shared_checks(h, "idp.workloadIdentity (projected ServiceAccount token)", wi_values)
    if r:
        def workload_identity() -> None:
            th, pod = r.sidecar(), r.pod_spec()
            mount = {m["name"]: m for m in th["volumeMounts"]}["token-handler-idp-token"]
            assert mount == {"name": "token-handler-idp-token", "mountPath": "/var/run/secrets/idp", "readOnly": True}, mount
            volume = {v["name"]: v for v in pod["volumes"]}["token-handler-idp-token"]
            assert volume["projected"]["sources"] == [{"serviceAccountToken": {
                "audience": "https://idp.example.com/token", "expirationSeconds": 3600, "path": "token.jwt"}}], volume
            assert r.toml()["idp"]["client_assertion_file"] == path
            assert pod["serviceAccountName"] == "shop-api"
            assert pod["automountServiceAccountToken"] is False, "the API token stays unmounted"
            env = {e["name"] for e in th["env"]}
            assert "TOKEN_HANDLER_CLIENT_KEY_FILE" not in env, env
            no_client_secret(h, r)

        h.check("idp.workloadIdentity: projected token (audience, expiration) mounted read-only, "
                "idp.client_assertion_file set, no secret, no key", workload_identity)
        h.check("idp.workloadIdentity: token-handler check reads the platform's token",
                lambda: assert_in("private_key_jwt with the platform's assertion from", check_as_the_pod_runs(h, r, path)))

        def defaults() -> None:
            r = h.render(h.deep_merge(OAUTH2, {"idp": {"workloadIdentity": {"enabled": True, "audience": "idp"}}}))
            volume = {v["name"]: v for v in r.pod_spec()["volumes"]}["token-handler-idp-token"]
            assert volume["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] == 600
            assert r.toml()["idp"]["client_assertion_file"] == "/var/run/secrets/token-handler-idp/token"
            assert "token-handler-idp-token" not in {v["name"] for v in h.render({}).pod_spec()["volumes"]}, "off by default"

        h.check("idp.workloadIdentity defaults: 600 s, /var/run/secrets/token-handler-idp/token; off by default", defaults)

    # The named templates carry it into a parent chart's pod (mode "sidecar").
    def in_a_parent_chart() -> None:
        with tempfile.TemporaryDirectory(prefix="th-helm-parent-auth-") as tmp:
            parent = Path(tmp) / "my-api"
            shutil.copytree(h.PARENT, parent)
            shutil.copytree(h.CHART, parent / "charts" / "token-handler")
            r = h.render({"token-handler": wi_values}, parent)
            h.validate_manifests(r)
            pod = r.pod_spec()
            assert "token-handler-idp-token" in {v["name"] for v in pod["volumes"]}
            assert "token-handler-idp-token" in {m["name"] for m in r.sidecar()["volumeMounts"]}
            assert r.toml()["idp"]["client_assertion_file"] == path
            no_client_secret(h, r)

    h.check("idp.workloadIdentity in example-parent: volume and mount through the named templates", in_a_parent_chart)

    def own_assertion_file() -> None:
        r = h.render(h.deep_merge(OAUTH2, {"config": {"idp": {
            "client_auth": "private_key_jwt", "client_assertion_file": "/var/run/own/token"}}}))
        assert r.toml()["idp"]["client_assertion_file"] == "/var/run/own/token"

    h.check("private_key_jwt with an assertion file of your own volume: accepted", own_assertion_file)

    # -- refused ---------------------------------------------------------------------------------
    wi = {"enabled": True, "audience": "https://idp.example.com"}
    bad = [
        ("private_key_jwt without a key or a token", h.deep_merge(OAUTH2, {"config": {"idp": {"client_auth": "private_key_jwt"}}}),
         ["private_key_jwt needs a credential: idp.clientKey.existingSecret"]),
        ("a client key and workload identity", h.deep_merge(OAUTH2, {"idp": {"clientKey": {"existingSecret": "k"}, "workloadIdentity": wi}}),
         ["clientKey.existingSecret and workloadIdentity.enabled", "choose one"]),
        ("a client key with client_auth basic", h.deep_merge(OAUTH2, {"idp": {"clientKey": {"existingSecret": "k"}},
                                                                       "config": {"idp": {"client_auth": "basic"}}}),
         ["config.idp.client_auth: basic, but idp.clientKey"]),
        ("workload identity with a client secret", h.deep_merge(OAUTH2, {"idp": {"workloadIdentity": wi},
                                                                          "secrets": {"clientSecret": "s3cret"}}),
         ["secrets.clientSecret: not used with idp.clientKey or idp.workloadIdentity"]),
        ("workload identity and a client_assertion_file", h.deep_merge(OAUTH2, {"idp": {"workloadIdentity": wi},
                                                                                 "config": {"idp": {"client_assertion_file": "/x/t"}}}),
         ["config.idp.client_assertion_file: set by the chart"]),
        ("workload identity with TokenIDP", {"idp": {"workloadIdentity": wi}}, ["TokenIDP accepts no client assertion"]),
        ("workload identity without an audience", h.deep_merge(OAUTH2, {"idp": {"workloadIdentity": {"enabled": True}}}),
         ["/idp/workloadIdentity/audience"]),
        ("a token that lives under 10 minutes", h.deep_merge(OAUTH2, {"idp": {"workloadIdentity": {**wi, "expirationSeconds": 599}}}),
         ["/idp/workloadIdentity/expirationSeconds"]),
        ("a token file right under /", h.deep_merge(OAUTH2, {"idp": {"workloadIdentity": {**wi, "path": "/token"}}}),
         ["/idp/workloadIdentity/path"]),
        ("a token file in the chart's Secret directory", h.deep_merge(OAUTH2, {"idp": {"workloadIdentity": {
            **wi, "path": "/var/run/secrets/token-handler/idp/token"}}}),
         ["idp.workloadIdentity.path", "inside /var/run/secrets/token-handler"]),
        ("a client key Secret without a key name", h.deep_merge(OAUTH2, {"idp": {"clientKey": {"existingSecret": "k", "key": ""}}}),
         ["/idp/clientKey/key"]),
        ("a private key in sidecar.env", {"sidecar": {"env": [{"name": "TOKEN_HANDLER_CLIENT_KEY", "value": "-----BEGIN"}]}},
         ["/sidecar/env/0"]),
        ("an unknown idp key", {"idp": {"clientKeys": {}}}, ["additional properties 'clientKeys' not allowed"]),
    ]
    for label, values, needles in bad:
        h.check(f"refused: {label}", lambda v=values, n=needles: h.refused(v, *n))


def assert_in(needle: str, text: str) -> str:
    assert needle in text, f"{needle!r} not in:\n{text}"
    return text
