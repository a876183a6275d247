#!/usr/bin/env bash
# Soak test: 60 s of mixed browser traffic with constant refreshes through the real proxy,
# with the proxy process's RSS sampled every second.
#
# Three processes on loopback, each on a free port (no fixed ports):
#   - `token-handler demo --access-token-ttl 3s`, used only for its TokenIDP emulator (the IdP);
#   - the proxy under test, `token-handler --config <generated>`, in its own process so that
#     its RSS is the proxy's alone (the emulator records every request it serves, which grows
#     by a few KB per token and would be counted as the proxy's if they shared a process);
#   - an echo upstream (Python, HTTP/1.1 keep-alive) that reports the `jti` of the Bearer token
#     it received.
# The proxy is configured as the demo configures its own (TokenIDP dialect, the emulator's demo
# client, `refresh_skew = "2s"`, `/api/` protected); its `redirect_uri` is the one the demo
# registered at the emulator, and the driver delivers the callback to the proxy under test.
# Several simulated browsers log in through /auth/login → the IdP's login form → /auth/callback
# and then, each with its own cookie jar:
#   - "steady" browsers alternate GET /api/whoami and POST /api/x (with `x-csrf: 1`);
#   - "session" browsers also call GET /auth/session;
#   - "relogin" browsers log out (POST /auth/logout) and log in again every few seconds;
#   - "burst" browsers send three API calls at once with the same cookies, as an SPA does.
# With 3 s tokens every session refreshes every ~2 s; refreshes are counted by watching the
# `jti` the upstream receives change.
#
# Pass: every request answered as expected (API calls 200, no 5xx, no connection errors), the
# proxy still running and no panic in its log, and RSS growth (average of the last 10 s
# against the average of the 10 s after a 10 s warm-up) under 10 %. Exit 1 otherwise.
#
# Usage: bench/soak.sh            (builds the release binary if needed)
# Environment (all optional):
#   SOAK_SECONDS=60  SOAK_BROWSERS=8  SOAK_TTL=3s  SOAK_THINK_MS=5  SOAK_MAX_GROWTH_PCT=10
#   TOKEN_HANDLER_BIN=path/to/token-handler   (skip the build; use this binary)
#   RUST_LOG=...                              (the proxy's log filter; default info)
# Needs: cargo (unless TOKEN_HANDLER_BIN is set), python3 (standard library only), Linux /proc.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${TOKEN_HANDLER_BIN:-}" ]]; then
    echo "soak: building the release binary (cargo decides whether anything changed)" >&2
    (cd "$repo" && cargo build --release --quiet --bin token-handler)
    TOKEN_HANDLER_BIN="${CARGO_TARGET_DIR:-$repo/target}/release/token-handler"
fi
[[ -x "$TOKEN_HANDLER_BIN" ]] || { echo "soak: no binary at $TOKEN_HANDLER_BIN" >&2; exit 2; }

export TOKEN_HANDLER_BIN
exec python3 - <<'PY'
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

BIN = os.environ["TOKEN_HANDLER_BIN"]
SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
BROWSERS = int(os.environ.get("SOAK_BROWSERS", "8"))
TTL = os.environ.get("SOAK_TTL", "3s")
THINK = float(os.environ.get("SOAK_THINK_MS", "5")) / 1000
MAX_GROWTH = float(os.environ.get("SOAK_MAX_GROWTH_PCT", "10"))
# The proxy remembers recent refreshes (rotation grace with the new tokens, then tombstones for
# reuse detection): bounded by time and by a cap, but with the defaults (60 s / 10 min) that
# memory is still filling during a 60 s soak, which would read as growth. Short windows let it
# reach its steady state within the warm-up, so what is left to see is a leak.
GRACE = os.environ.get("SOAK_ROTATION_GRACE", "5s")
REUSE = os.environ.get("SOAK_REUSE_WINDOW", "10s")
WARMUP = 10.0  # seconds of traffic before the RSS baseline window
WINDOW = 10.0  # length of the baseline and final RSS windows
# The emulator's demo client (src/demo/run.rs: CLIENT_ID, CLIENT_SECRET, the scope it asks).
CLIENT_ID = "tokenidp-react-dev"
CLIENT_SECRET = "dev-secret"
SCOPE = "openid profile email offline_access api.read"


def free_port():
    """A free loopback port: bind port 0 and read what the kernel chose."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


PORT = free_port()  # the proxy under test
ADMIN_PORT = free_port()
DEMO_PORT = free_port()
APP_HOST = f"localhost:{PORT}"  # the app's origin (the IdP is at 127.0.0.1: another site)

# The echo upstream, run with `python3 -c` in its own process (its own interpreter lock).
ECHO = r"""
import base64, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle and delayed ACKs
    # would add ~40 ms to every answer.
    disable_nagle_algorithm = True

    def answer(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        claims = None
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            try:
                payload = auth[7:].split(".")[1]
                claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            except Exception:
                claims = None
        status = 200 if claims else 401
        body = json.dumps({"method": self.command, "path": self.path, "had_bearer": bool(claims),
                           "jti": (claims or {}).get("jti")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = answer

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = 0
        self.by_kind = {}
        self.errors = []  # (kind, detail)
        self.status_5xx = 0
        self.refreshes = 0
        self.logins = 0
        self.logouts = 0

    def count(self, kind):
        with self.lock:
            self.requests += 1
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def error(self, kind, detail):
        with self.lock:
            self.errors.append((kind, detail))

    def add(self, field, n=1):
        with self.lock:
            setattr(self, field, getattr(self, field) + n)


STATS = Stats()


class Jar:
    """Cookies by name for one host. The session cookies are `__Host-` + `Secure`, which
    http.cookiejar would never send over plain http, so the Cookie header is built here."""

    def __init__(self):
        self.cookies = {}

    def header(self):
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def update(self, response):
        for line in response.msg.get_all("Set-Cookie") or []:
            parts = [p.strip() for p in line.split(";")]
            name, _, value = parts[0].partition("=")
            attrs = {p.partition("=")[0].lower(): p.partition("=")[2] for p in parts[1:]}
            if value == "" or attrs.get("max-age") == "0":
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value


class Browser:
    def __init__(self, index, role):
        self.index = index
        self.role = role
        self.jar = Jar()
        self.conn = None
        self.last_jti = None

    # -- transport -----------------------------------------------------------------------
    def request(self, kind, method, path, body=None, headers=None, jar=None, conn=None):
        own = conn is None
        jar = self.jar if jar is None else jar
        h = {"Host": APP_HOST, "Accept": "application/json"}
        if jar.cookies:
            h["Cookie"] = jar.header()
        h.update(headers or {})
        for attempt in (1, 2):
            c = conn
            if c is None:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
                c = self.conn
            try:
                c.request(method, path, body=body, headers=h)
                r = c.getresponse()
                data = r.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                # A keep-alive connection the server closed while idle: reconnect once.
                if own:
                    self.conn.close()
                    self.conn = None
                if attempt == 2 or not own:
                    STATS.count(kind)
                    STATS.error(kind, f"{method} {path}: {e!r}")
                    return None, None
        STATS.count(kind)
        if r.status >= 500:
            STATS.add("status_5xx")
        jar.update(r)
        return r, data

    def expect(self, kind, r, data, status):
        if r is None:
            return None
        if r.status != status:
            STATS.error(kind, f"HTTP {r.status} (expected {status}): {data[:200]!r}")
            return None
        return data

    # -- flows ---------------------------------------------------------------------------
    def login(self):
        r, data = self.request("login", "GET", "/auth/login?return_to=/")
        if self.expect("login", r, data, 302) is None:
            return False
        authorize = urllib.parse.urlsplit(r.getheader("Location"))
        # The IdP's login form (LoginMode::Form): POST the authorization request's parameters
        # with the demo credentials, as the form does.
        idp = http.client.HTTPConnection(authorize.hostname, authorize.port, timeout=30)
        try:
            body = authorize.query + "&login=demo&password=demo"
            idp.request(
                "POST",
                authorize.path,
                body=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            ir = idp.getresponse()
            idata = ir.read()
        except OSError as e:
            STATS.count("idp_authorize")
            STATS.error("idp_authorize", repr(e))
            return False
        finally:
            idp.close()
        STATS.count("idp_authorize")
        if ir.status != 302:
            STATS.error("idp_authorize", f"HTTP {ir.status}: {idata[:200]!r}")
            return False
        callback = urllib.parse.urlsplit(ir.getheader("Location"))
        r, data = self.request("callback", "GET", f"{callback.path}?{callback.query}")
        if self.expect("callback", r, data, 200) is None:
            return False
        if not any(k.startswith("__Host-th_session") and "_flow_" not in k for k in self.jar.cookies):
            STATS.error("callback", f"no session cookie after the callback: {list(self.jar.cookies)}")
            return False
        STATS.add("logins")
        self.last_jti = None
        return True

    def logout(self):
        r, data = self.request("logout", "POST", "/auth/logout", body=b"", headers={"x-csrf": "1"})
        if self.expect("logout", r, data, 200) is None:
            return False
        STATS.add("logouts")
        leftover = [k for k in self.jar.cookies if k.startswith("__Host-th_session")]
        if leftover:
            STATS.error("logout", f"cookies left after logout: {leftover}")
        self.jar.cookies.clear()
        return True

    def whoami(self, conn=None, jar=None):
        r, data = self.request("whoami", "GET", "/api/whoami", conn=conn, jar=jar)
        data = self.expect("whoami", r, data, 200)
        if data is None:
            return None
        try:
            return json.loads(data).get("jti")
        except ValueError:
            STATS.error("whoami", f"not JSON: {data[:200]!r}")
            return None

    def post(self):
        r, data = self.request("post", "POST", "/api/x", body=b'{"n":1}',
                               headers={"x-csrf": "1", "Content-Type": "application/json"})
        data = self.expect("post", r, data, 200)
        if data is not None and not json.loads(data).get("had_bearer"):
            STATS.error("post", "the API got no Bearer token")

    def session(self):
        r, data = self.request("session", "GET", "/auth/session")
        data = self.expect("session", r, data, 200)
        if data is not None and not json.loads(data).get("authenticated"):
            STATS.error("session", f"not authenticated: {data[:200]!r}")

    def saw(self, jti):
        if jti is None:
            return
        if self.last_jti is not None and jti != self.last_jti:
            STATS.add("refreshes")
        self.last_jti = jti

    def burst(self):
        # Three calls at once with the same cookies (each on its own connection, as a browser
        # does); the newest cookies from any of the answers are kept.
        results = [None] * 3
        jars = []
        for _ in range(3):
            j = Jar()
            j.cookies = dict(self.jar.cookies)
            jars.append(j)

        def one(i):
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
            try:
                results[i] = self.whoami(conn=c, jar=jars[i])
            finally:
                c.close()

        threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # Single-flight refresh: every answer that set cookies set the same new session.
        for j in jars:
            if j.cookies != self.jar.cookies:
                self.jar.cookies = dict(j.cookies)
                break
        for jti in results:
            self.saw(jti)

    def run(self, stop_at):
        if not self.login():
            return
        n = 0
        next_relogin = time.monotonic() + 4 + self.index % 3
        while time.monotonic() < stop_at:
            n += 1
            if self.role == "burst":
                self.burst()
            else:
                self.saw(self.whoami())
                self.post()
                if self.role == "session" and n % 5 == 0:
                    self.session()
                if self.role == "relogin" and time.monotonic() >= next_relogin:
                    self.logout()
                    if not self.login():
                        return
                    next_relogin = time.monotonic() + 4
            time.sleep(THINK)
        if self.conn is not None:
            self.conn.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start(args, log, env=None):
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def wait_for(what, check, procs, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            if p.poll() is not None:
                raise SystemExit(f"soak: {what}: a process exited with {p.returncode}")
        try:
            value = check()
            if value:
                return value
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"soak: {what} did not come up within {timeout} s")
        time.sleep(0.2)


def stop(proc):
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    workdir = tempfile.mkdtemp(prefix="soak-")
    demo_log = open(os.path.join(workdir, "demo.log"), "w")
    proxy_log = open(os.path.join(workdir, "proxy.log"), "w")
    demo = echo = proxy = None
    failures = []
    try:
        demo = start([BIN, "demo", "--listen", f"127.0.0.1:{DEMO_PORT}", "--access-token-ttl", TTL],
                     demo_log)

        def idp_url():
            with open(demo_log.name) as f:
                for line in f:
                    if "identity provider at " in line:
                        return line.split("identity provider at ")[1].split()[0]
            return None

        issuer = wait_for("the demo's IdP", idp_url, [demo])
        echo = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
        echo_port = int(echo.stdout.readline())
        keys = subprocess.run([BIN, "keygen"], check=True, capture_output=True, text=True).stdout.strip()
        config = os.path.join(workdir, "proxy.toml")
        with open(config, "w") as f:
            f.write(f"""[server]
listen = "127.0.0.1:{PORT}"
admin_listen = "127.0.0.1:{ADMIN_PORT}"
[upstream]
url = "http://127.0.0.1:{echo_port}"
[idp]
dialect = "tokenidp"
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
client_auth = "basic"
scope = "{SCOPE}"
# The callback the demo registered for its client at the emulator; the driver delivers it here.
redirect_uri = "http://localhost:{DEMO_PORT}/auth/callback"
post_logout_redirect_uri = "http://localhost:{DEMO_PORT}/"
[session]
refresh_skew = "2s"
rotation_grace = "{GRACE}"
reuse_window = "{REUSE}"
[proxy]
protected_paths = ["/api/"]
""")
        proxy = start([BIN, "--config", config], proxy_log, {
            "TOKEN_HANDLER_COOKIE_KEYS": keys,
            "TOKEN_HANDLER_CLIENT_SECRET": CLIENT_SECRET,
            "RUST_LOG": os.environ.get("RUST_LOG", "info"),
        })

        def ready():
            c = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=2)
            c.request("GET", "/readyz")
            return c.getresponse().status == 200

        wait_for("the proxy", ready, [demo, proxy])

        roles = ["steady", "steady", "session", "relogin", "burst", "session", "steady", "burst"]
        browsers = [Browser(i, roles[i % len(roles)]) for i in range(BROWSERS)]
        start_t = time.monotonic()
        stop_at = start_t + SECONDS
        threads = [threading.Thread(target=b.run, args=(stop_at,), daemon=True) for b in browsers]
        for t in threads:
            t.start()
        samples = []  # (seconds since start, RSS kB)
        while time.monotonic() < stop_at:
            time.sleep(1.0 - (time.monotonic() - start_t) % 1.0)
            if proxy.poll() is not None:
                failures.append(f"the proxy exited with {proxy.returncode}")
                break
            samples.append((time.monotonic() - start_t, rss_kb(proxy.pid)))
        for t in threads:
            t.join(timeout=60)
        elapsed = time.monotonic() - start_t
        metrics = ""
        try:
            c = http.client.HTTPConnection("127.0.0.1", ADMIN_PORT, timeout=5)
            c.request("GET", "/metrics")
            metrics = c.getresponse().read().decode(errors="replace")
        except OSError as e:
            failures.append(f"/metrics: {e!r}")
    finally:
        stop(proxy)
        stop(echo)
        stop(demo)
        demo_log.close()
        proxy_log.close()

    log = proxy_log
    with open(log.name, errors="replace") as f:
        text = f.read()
    if "panicked" in text:
        failures.append(f"a panic in the proxy log ({log.name})")

    def avg(lo, hi):
        xs = [kb for t, kb in samples if lo <= t < hi]
        return sum(xs) / len(xs) if xs else float("nan")

    baseline = avg(WARMUP, WARMUP + WINDOW)
    final = avg(SECONDS - WINDOW, SECONDS + 1)
    growth = (final - baseline) / baseline * 100 if baseline else float("nan")
    rss = [kb for _, kb in samples]
    s = STATS
    print("token-handler soak")
    print(f"  duration        {elapsed:.1f} s, {BROWSERS} browsers, access tokens {TTL}, "
          f"rotation_grace {GRACE}, reuse_window {REUSE}")
    print(f"  requests        {s.requests} ({s.requests / elapsed:.0f}/s): "
          + ", ".join(f"{k} {v}" for k, v in sorted(s.by_kind.items())))
    print(f"  logins/logouts  {s.logins}/{s.logouts}")
    print(f"  refreshes seen  {s.refreshes} (jti changes)")
    print(f"  errors          {len(s.errors)} ({s.status_5xx} 5xx)")
    for kind, detail in s.errors[:10]:
        print(f"    {kind}: {detail}")
    if rss:
        print(f"  proxy RSS       first {rss[0] / 1024:.1f} MiB, last {rss[-1] / 1024:.1f} MiB, "
              f"max {max(rss) / 1024:.1f} MiB ({len(rss)} samples)")
        print(f"  proxy RSS growth {growth:+.1f} % (avg {final / 1024:.1f} MiB over the last {WINDOW:.0f} s "
              f"vs {baseline / 1024:.1f} MiB over {WARMUP:.0f}-{WARMUP + WINDOW:.0f} s)")
    if rss:
        print("  proxy RSS (MiB) every 10 s: " + " ".join(
            f"{kb / 1024:.1f}" for t, kb in samples if int(round(t)) % 10 == 0))
        with open(os.path.join(workdir, "rss.csv"), "w") as f:
            f.write("seconds,rss_kb\n" + "".join(f"{t:.1f},{kb}\n" for t, kb in samples))
    if s.errors:
        failures.append(f"{len(s.errors)} error responses")
    if s.refreshes == 0:
        failures.append("no refresh seen")
    if not rss or not growth < MAX_GROWTH:
        failures.append(f"RSS growth {growth:.1f} % is not under {MAX_GROWTH:.0f} %")
    refreshed = [l for l in metrics.splitlines() if l.startswith("token_handler_refreshes_total")]
    if refreshed:
        print("  proxy metrics   " + ", ".join(l.replace("token_handler_refreshes_total", "refreshes") for l in refreshed))
    print(f"  logs            {proxy_log.name}, {demo_log.name}")
    if failures:
        print("FAIL: " + "; ".join(failures))
        sys.exit(1)
    print("PASS")


main()
PY
