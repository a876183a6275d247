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
source bench/fixture.sh
need nginx
N="${1:-1000}"
cargo build --release --bin token-handler
BIN="${TOKEN_HANDLER_BIN:-${CARGO_TARGET_DIR:-target}/release/token-handler}"
DIR=$(mktemp -d /tmp/th-idle.XXXXXX)
UP=$(free_port); TH=$(free_port); AD=$(free_port)
write_upstream "$DIR" "$UP" 8192
write_proxy "$DIR" "$TH" "$AD" "$UP"
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
