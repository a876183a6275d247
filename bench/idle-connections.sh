#!/usr/bin/env bash
# Memory per client connection: the release token-handler in front of an nginx upstream
# (`return 200`), N keep-alive connections opened and each sent one request on the public path,
# the connections then left open and idle. Prints the proxy's RSS growth per connection:
#   - after the N connections are accepted (no request yet);
#   - after one request on each, one at a time (a single upstream connection serves them all);
#   - after one request on each, all at once (up to N upstream connections, kept in the pool).
# Usage: bench/idle-connections.sh [N]   (default 1,000). Honours CARGO_TARGET_DIR and
# TOKEN_HANDLER_BIN (another build measured by this script). Installs nginx when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/need.sh
need nginx
N="${1:-1000}"
cargo build --release --bin token-handler
BIN="${TOKEN_HANDLER_BIN:-${CARGO_TARGET_DIR:-target}/release/token-handler}"
DIR=$(mktemp -d /tmp/th-idle.XXXXXX)
mkdir -p "$DIR/tmp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); TH=$(free_port); AD=$(free_port)
cat > "$DIR/up.conf" <<EOF
worker_processes 1; daemon off; pid $DIR/up.pid; error_log $DIR/up.err warn;
events { worker_connections 8192; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $DIR/tmp/b;
  proxy_temp_path $DIR/tmp/p; fastcgi_temp_path $DIR/tmp/f; uwsgi_temp_path $DIR/tmp/u;
  scgi_temp_path $DIR/tmp/s;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } } }
EOF
cat > "$DIR/th.toml" <<EOF
[server]
listen = "127.0.0.1:$TH"
admin_listen = "127.0.0.1:$AD"
worker_threads = 1
[upstream]
url = "http://127.0.0.1:$UP"
[idp]
dialect = "tokenidp"
issuer = "http://127.0.0.1:9"
token_endpoint = "http://127.0.0.1:9/token"
authorization_endpoint = "http://127.0.0.1:9/authorize"
jwks_uri = "http://127.0.0.1:9/jwks"
client_id = "bench"
redirect_uri = "http://127.0.0.1/auth/callback"
[proxy]
public_paths = ["/public/"]
[log]
level = "warn"
EOF
ulimit -n 65536 2>/dev/null || true
nginx -c "$DIR/up.conf" &
NGINX=$!
PROXY=""
trap 'kill -TERM $NGINX $PROXY 2>/dev/null; wait $NGINX $PROXY 2>/dev/null || true' EXIT
run() {
  TOKEN_HANDLER_COOKIE_KEYS="k1:$(head -c 32 /dev/urandom | base64)" "$BIN" --config "$DIR/th.toml" \
    2>"$DIR/th.err" &
  PROXY=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$AD/healthz" && break; sleep 0.1; done
  python3 - "$PROXY" "$TH" "$N" "$1" <<'PY'
import socket, sys, time
pid, port, n, together = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def settled():
    # RSS once it stops moving (the proxy has handled what was sent).
    last = rss()
    while True:
        time.sleep(0.2)
        now = rss()
        if now == last:
            return now
        last = now
request = b"GET /public/x HTTP/1.1\r\nHost: bench\r\n\r\n"
before = settled()
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
accepted = settled()
def answer(s):
    data = b""
    while not data.endswith(b"ok\n"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed before the answer")
        data += chunk
if together:
    for s in socks:
        s.sendall(request)
for s in socks:
    if not together:
        s.sendall(request)
    answer(s)
served = settled()
how = "all at once" if together else "one at a time"
print(f"{n} connections, requests {how}: RSS {before} KiB idle; "
      f"+{(accepted - before) / n:.1f} KiB per connection accepted, "
      f"+{(served - before) / n:.1f} KiB per connection after its request")
PY
  kill -TERM "$PROXY"; wait "$PROXY" 2>/dev/null || true
  PROXY=""
}
run 0
run 1
