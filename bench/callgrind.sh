#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: deterministic where wall-clock
# figures on a shared 2-core machine are not. This is how each optimization in BENCHMARKS.md
# was measured before and after.
#   bench/callgrind.sh session      # valid sealed session: open + Bearer + forward
#   bench/callgrind.sh anonymous    # public path, no cookie
# Starts an nginx upstream (`return 200`) and the release token-handler under valgrind on free
# ports, drives it with wrk (4 connections, 8 s), subtracts the start-up/shutdown instructions
# (a run with no request) and prints instructions per request. Installs valgrind, nginx and
# wrk when missing. The raw profile is left in $DIR/cg.out for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/need.sh
need valgrind nginx wrk
MODE="${1:-session}"
case "$MODE" in session | anonymous) ;; *) echo "usage: $0 session|anonymous" >&2; exit 2 ;; esac
cargo build --release --bin token-handler --example seal
DIR=$(mktemp -d /tmp/th-callgrind.XXXXXX)
mkdir -p "$DIR/tmp"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); TH=$(free_port); AD=$(free_port)
KEYS="k1:$(head -c 32 /dev/urandom | base64)"
cat > "$DIR/up.conf" <<EOF
worker_processes 1; daemon off; pid $DIR/up.pid; error_log $DIR/up.err warn;
events { worker_connections 4096; }
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
nginx -c "$DIR/up.conf" &
NGINX=$!
trap 'kill -TERM $NGINX 2>/dev/null; wait $NGINX 2>/dev/null || true' EXIT

# One run under callgrind: $1 = number of seconds of wrk (0: start and stop only).
profile() {
  TOKEN_HANDLER_COOKIE_KEYS=$KEYS valgrind --tool=callgrind --callgrind-out-file="$DIR/cg.out" \
    target/release/token-handler --config "$DIR/th.toml" 2>"$DIR/valgrind.err" &
  local pid=$!
  for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$AD/healthz" && break; sleep 0.1; done
  local requests=0
  if [ "$1" -gt 0 ]; then
    local path=/public/x header=()
    if [ "$MODE" = session ]; then
      path=/api/x
      header=(-H "Cookie: $(TOKEN_HANDLER_COOKIE_KEYS=$KEYS target/release/examples/seal)")
    fi
    requests=$(wrk -t1 -c4 -d"$1"s "${header[@]}" "http://127.0.0.1:$TH$path" |
      awk '/requests in/ {print $1}')
  fi
  kill -INT $pid; wait $pid 2>/dev/null || true
  echo "$requests $(awk '/^summary:/ {print $2}' "$DIR/cg.out")"
}
read -r _ base < <(profile 0)
read -r requests total < <(profile 8)
echo "$MODE: $requests requests, $(( (total - base) / requests )) instructions per request" \
  "(start-up and shutdown: $base); profile: $DIR/cg.out"
