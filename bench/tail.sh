#!/usr/bin/env bash
# The latency tail of one proxy, away from bench/run.sh's rounds: token-handler or the reference
# nginx (bench/run.sh's) with WORKERS workers in front of the fixed nginx upstream, driven by
# `wrk -t1 -c50 -d8s --latency` on /public/x after a 2 s warm-up, everything on this machine.
# Prints req/s, p50/p90/p99/max and the proxy's context switches per request over the measured
# 8 s (voluntary: a worker went idle; involuntary: the OS preempted a busy one). The two-worker
# p99 of BENCHMARKS.md ("the direct client by default") was read this way.
#   bench/tail.sh th|nginx [WORKERS]     (default 2)
# Honours BENCH_UPSTREAM_CLIENT, BENCH_HTTP1, BENCH_SCHEDULER, CARGO_TARGET_DIR and TOKEN_HANDLER_BIN (another
# build, as in bench/callgrind.sh). Installs nginx and wrk when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/need.sh
source bench/fixture.sh
need nginx wrk
KIND="${1:-}"
WORKERS="${2:-2}"
case "$KIND" in
  th | nginx) ;;
  *) echo "usage: $0 th|nginx [WORKERS]" >&2; exit 2 ;;
esac
BIN="${TOKEN_HANDLER_BIN:-${CARGO_TARGET_DIR:-target}/release/token-handler}"
[ "$KIND" != th ] || [ -n "${TOKEN_HANDLER_BIN:-}" ] || cargo build --release --bin token-handler
DIR=$(mktemp -d /tmp/th-tail.XXXXXX)
UP=$(free_port); PX=$(free_port); AD=$(free_port)
write_upstream "$DIR" "$UP"
nginx -c "$DIR/up.conf" &
UPSTREAM=$!
if [ "$KIND" = th ]; then
  write_proxy "$DIR" "$PX" "$AD" "$UP"
  sed -i "s/^worker_threads = 1$/worker_threads = $WORKERS/" "$DIR/th.toml"
  TOKEN_HANDLER_COOKIE_KEYS="k1:$(head -c 32 /dev/urandom | base64)" \
    "$BIN" --config "$DIR/th.toml" 2>"$DIR/th.err" &
else
  write_reference "$DIR" "$PX" "$UP" "$WORKERS"
  nginx -c "$DIR/ref.conf" &
fi
PROXY=$!
trap 'kill -TERM $PROXY $UPSTREAM 2>/dev/null; wait $PROXY $UPSTREAM 2>/dev/null || true' EXIT
URL="http://127.0.0.1:$PX/public/x"
for _ in $(seq 1 100); do curl -sf -o /dev/null "$URL" && break; sleep 0.1; done
wrk -t1 -c50 -d2s "$URL" >/dev/null
# Context switches of every thread (token-handler) or every process (nginx's workers).
switches() {
  local pids v=0 n=0
  if [ "$KIND" = th ]; then pids=$(ls -d /proc/$PROXY/task/* 2>/dev/null)
  else pids=$(pgrep -P $PROXY | sed 's|^|/proc/|'); fi
  for p in $pids; do
    v=$((v + $(awk '/^voluntary_ctxt_switches/ {print $2}' "$p/status")))
    n=$((n + $(awk '/^nonvoluntary_ctxt_switches/ {print $2}' "$p/status")))
  done
  echo "$v $n"
}
read -r v0 n0 < <(switches)
wrk -t1 -c50 -d8s --latency "$URL" >"$DIR/wrk.txt"
read -r v1 n1 < <(switches)
requests=$(awk '/requests in/ {print $1}' "$DIR/wrk.txt")
awk -v kind="$KIND" -v w="$WORKERS" '
  /Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +90%/ {p90=$2} /^ +99%/ {p99=$2}
  /^ +Latency +[0-9]/ {max=$4}
  END {printf "%s, %s worker(s): %s req/s, p50 %s, p90 %s, p99 %s, max %s\n", kind, w, rps, p50, p90, p99, max}
' "$DIR/wrk.txt"
awk -v v=$((v1 - v0)) -v n=$((n1 - n0)) -v r="$requests" \
  'BEGIN {printf "context switches per request: voluntary %.4f, involuntary %.4f\n", v/r, n/r}'
