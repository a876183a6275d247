#!/usr/bin/env bash
# What the RSS is made of: the release token-handler in front of an nginx upstream (`return
# 200`), driven by wrk (`-t1 -c50`, $DURATION seconds each, default 5) through three of
# bench/run.sh's scenarios in its order (valid session, anonymous, chunked session), with the
# proxy's `VmRSS`, `RssAnon` and `RssFile` (/proc/<pid>/status, MiB) read after start-up and after
# each scenario. Twice: with `server.release_start_up_pages` on (the default) and off.
# Usage: bench/rss.sh [WORKERS]   (the proxy's worker_threads, default 1). Honours
# CARGO_TARGET_DIR and TOKEN_HANDLER_BIN. Installs nginx and wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/need.sh
source bench/fixture.sh
need nginx wrk
WORKERS="${1:-1}"
DURATION="${DURATION:-5}"
cargo build --release --bin token-handler --example seal
RELEASE="${CARGO_TARGET_DIR:-target}/release"
BIN="${TOKEN_HANDLER_BIN:-$RELEASE/token-handler}"
DIR=$(mktemp -d /tmp/th-rss.XXXXXX)
UP=$(free_port); TH=$(free_port); AD=$(free_port)
KEYS="k1:$(head -c 32 /dev/urandom | base64)"
write_upstream "$DIR" "$UP"
write_proxy "$DIR" "$TH" "$AD" "$UP"
sed -i "s/^worker_threads = 1$/worker_threads = $WORKERS/" "$DIR/th.toml"
nginx -c "$DIR/up.conf" &
NGINX=$!
PROXY=""
trap 'kill -TERM $NGINX $PROXY 2>/dev/null; wait $NGINX $PROXY 2>/dev/null || true' EXIT
VALID=$(TOKEN_HANDLER_COOKIE_KEYS=$KEYS "$RELEASE/examples/seal")
CHUNKED=$(TOKEN_HANDLER_COOKIE_KEYS=$KEYS "$RELEASE/examples/seal" --groups 6000)
rss() {
  awk -v step="$1" -v mode="$2" '/^VmRSS/{v=$2} /^RssAnon/{a=$2} /^RssFile/{f=$2}
    END {printf "| %s | %s | %.1f | %.1f | %.1f |\n", mode, step, v/1024, a/1024, f/1024}' \
    "/proc/$PROXY/status"
}
load() {
  local out
  out=$(wrk -t1 -c50 -d"${DURATION}s" "$@")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers: $out" >&2; exit 1; fi
}
echo "| release_start_up_pages | after | VmRSS MiB | RssAnon MiB | RssFile MiB |"
echo "|---|---|---|---|---|"
for release in true false; do
  sed -i '/^release_start_up_pages/d' "$DIR/th.toml"
  sed -i "/^\[server\]$/a release_start_up_pages = $release" "$DIR/th.toml"
  TOKEN_HANDLER_COOKIE_KEYS=$KEYS "$BIN" --config "$DIR/th.toml" 2>"$DIR/th.err" &
  PROXY=$!
  for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$AD/healthz" && break; sleep 0.05; done
  rss "start-up" "$release"
  load -H "Cookie: $VALID" "http://127.0.0.1:$TH/api/x"; rss "valid session" "$release"
  load "http://127.0.0.1:$TH/public/x"; rss "anonymous" "$release"
  load -H "Cookie: $CHUNKED" "http://127.0.0.1:$TH/api/x"; rss "chunked session" "$release"
  kill -TERM "$PROXY"; wait "$PROXY" 2>/dev/null || true
done
