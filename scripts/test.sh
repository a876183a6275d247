#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, then runs `cargo test`.
# Safe to run again; a fresh Debian machine with the Rust toolchain is enough.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# (later issues add Node.js packages, Chromium and Redis here)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

cargo test --all-targets "$@"
