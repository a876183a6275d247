#!/usr/bin/env bash
# The benchmark: token-handler against nginx proxy_pass, in the same run, one worker each.
# Installs nginx and wrk when missing, builds release, runs examples/bench (see BENCHMARKS.md).
#   bench/run.sh [--rounds N] [--duration SECONDS] [--connections N]   (--rounds 0: the storm only)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/need.sh
need nginx wrk
cargo build --release --bin token-handler --example bench
exec target/release/examples/bench "$@"
