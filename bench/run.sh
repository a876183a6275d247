#!/usr/bin/env bash
# The benchmark: token-handler against nginx proxy_pass, in the same run, one worker each
# (`--workers 2`: token-handler's worker_threads = 2 against nginx's worker_processes 2).
# Installs nginx and wrk when missing, builds release, runs examples/bench (see BENCHMARKS.md).
# Honours CARGO_TARGET_DIR.
#   bench/run.sh [--rounds N] [--duration SECONDS] [--connections N] [--workers N] [--pingora]
#                [--hyper] [--no-pgo] [--paced RATE [--together]]
#   (--rounds 0: the storm only)
# --paced RATE: the rounds offer both proxies RATE requests per second (examples/bench/paced.rs:
# latency at a fixed load, timed against coordinated omission as wrk2 does) instead of wrk's
# as-fast-as-it-goes rounds; the bare proxies are not measured then. --together: both proxies are
# offered RATE at the same time (two generator threads), so a stall of the machine (stolen time)
# delays both alike, instead of one after the other.
# token-handler is built as the image ships it, with profile-guided optimisation (scripts/pgo.sh:
# an instrumented build trained on these scenarios first, ~10 min more on a cold cache here);
# --no-pgo: the plain `cargo build --release` instead. TOKEN_HANDLER_BIN: another build of the
# proxy, measured as it is.
# BENCH_SCHEDULER=per_core: token-handler's `server.scheduler` (default work_stealing);
# BENCH_UPSTREAM_CLIENT=hyper: its `upstream.client` (default direct, as the product's).
# BENCH_HTTP1=hyper: its `server.http1` (default direct, as the product's).
# --pingora: a bare pingora proxy (bench/pingora/, its own project, not a dependency of the
# product) is measured too, against the same nginx rounds, with pingora's `threads` = --workers.
# Off by default: its cold release build took 4 min 14 s here (a shared 2-core machine) and
# needs cmake (installed when missing, for pingora-core's zlib-ng); later runs rebuild nothing.
# Built into $CARGO_TARGET_DIR/pingora (default target/pingora); its path goes to the bench as
# PINGORA_BIN.
# --hyper: a bare hyper proxy (examples/bare_hyper.rs: the same hyper server and client, runtime
# and allocator as token-handler, and nothing else) is measured too, the same way: the floor
# under token-handler's data path. With BARE_HYPER_CLIENT=own in the environment, its upstream hop
# goes through a minimal hand-written client instead of hyper's (a measurement, see BENCHMARKS.md).
# With BARE_HYPER_SERVER=own as well, its client side is a minimal hand-written server loop instead
# of hyper's server (a measurement too).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/need.sh
pingora=no
hyper=no
pgo=yes
args=()
for arg in "$@"; do
  case "$arg" in
    --pingora) pingora=yes ;;
    --hyper) hyper=yes ;;
    --no-pgo) pgo=no ;;
    *) args+=("$arg") ;;
  esac
done
need nginx wrk
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --example bench
# The plain release binary only when it is the one measured (pgo.sh builds its own).
if [ -z "${TOKEN_HANDLER_BIN:-}" ]; then
  if [ "$pgo" = yes ]; then
    TOKEN_HANDLER_BIN="$(scripts/pgo.sh | tail -n 1)"
    export TOKEN_HANDLER_BIN
  else
    cargo build --release --bin token-handler
  fi
fi
if [ "$hyper" = yes ]; then
  cargo build --release --example bare_hyper
  HYPER_BIN="$(realpath "$target/release/examples/bare_hyper")"
  export HYPER_BIN
fi
if [ "$pingora" = yes ]; then
  need cmake
  cargo build --release --locked --manifest-path bench/pingora/Cargo.toml --target-dir "$target/pingora"
  PINGORA_BIN="$(realpath "$target/pingora/release/bench-pingora")"
  export PINGORA_BIN
fi
exec "$target/release/examples/bench" "${args[@]}"
