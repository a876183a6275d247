#!/usr/bin/env bash
# The benchmark: token-handler against nginx proxy_pass, in the same run, one worker each
# (`--workers 2`: token-handler's worker_threads = 2 against nginx's worker_processes 2).
# Installs nginx and wrk when missing, builds release, runs examples/bench (see BENCHMARKS.md).
# Honours CARGO_TARGET_DIR.
#   bench/run.sh [--rounds N] [--duration SECONDS] [--connections N] [--workers N]
#   (--rounds 0: the storm only)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/need.sh
need nginx wrk
cargo build --release --bin token-handler --example bench
exec "${CARGO_TARGET_DIR:-target}/release/examples/bench" "$@"
