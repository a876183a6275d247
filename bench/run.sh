#!/usr/bin/env bash
# The benchmark: token-handler against nginx proxy_pass, in the same run, one worker each.
# Installs nginx and wrk when missing, builds release, runs examples/bench (see BENCHMARKS.md).
#   bench/run.sh [--rounds N] [--duration SECONDS] [--connections N]   (--rounds 0: the storm only)
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
if [ "${#need[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
export PATH="$PATH:/usr/sbin"
cargo build --release --bin token-handler --example bench
exec target/release/examples/bench "$@"
