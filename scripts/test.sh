#!/usr/bin/env bash
# The test command: installs what the tests need when it is missing, then runs `cargo test`.
# Safe to run again; a fresh Debian machine with the Rust toolchain is enough.
#   - Debian packages: chromium (browser test), nodejs + npm (browser test, oidc-provider),
#     redis-server (cross-replica coordination tests; it is the Sentinel too, with --sentinel),
#     redis-tools (redis-cli, which joins the Redis Cluster of the topology tests), nginx (the
#     gateway of the forward-auth tests), g++ (the check of the fuzz targets). The tests run
#     redis-server and nginx themselves, on free ports: their packages are installed without
#     starting them as services.
#   - npm packages from the lockfiles in tests/browser, tests/oidc and clients/js (TypeScript, for
#     the check that the committed clients/js/dist is what it builds)
#   - a Python venv (target/venv) with tests/helm/requirements.txt for the Helm chart tests
set -euo pipefail
cd "$(dirname "$0")/.."

# A failing test's message ends the output, next to its name, where a shortened log (CI keeps the
# head and the tail) still shows it: no backtraces, unless TOKEN_HANDLER_TEST_BACKTRACE=1 asks.
export RUST_BACKTRACE="${TOKEN_HANDLER_TEST_BACKTRACE:-0}"

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
[ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
[ -x /usr/bin/redis-cli ] || need_apt+=(redis-tools)
[ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v c++ >/dev/null || need_apt+=(g++)
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  # policy-rc.d exiting 101 tells the packages' scripts not to start their services (nginx
  # would take port 80); one already there (containers have one) is left as it is.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
  fi
  status=0
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" \
    || status=$?
  [ -z "$policy" ] || $SUDO rm -f "$policy"
  [ "$status" -eq 0 ] || exit "$status"
fi

for dir in tests/browser tests/oidc clients/js; do
  # Reinstall when the lockfile is newer than what is installed.
  if [ -f "$dir/package-lock.json" ] && { [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; }; then
    echo "test.sh: npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

# Python venv for the Helm chart tests, reinstalled when the requirements change.
python3 -c 'import ensurepip' 2>/dev/null || {
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv
}
if ! cmp -s tests/helm/requirements.txt target/venv/.requirements.txt; then
  echo "test.sh: creating target/venv for the Helm chart tests"
  mkdir -p target
  python3 -m venv target/venv
  target/venv/bin/pip install -q -r tests/helm/requirements.txt
  cp tests/helm/requirements.txt target/venv/.requirements.txt
fi

# The production binary, built as the Dockerfile builds it (without the `demo` feature), for
# tests/it/no_demo.rs: copied next to the test build's binary as token-handler-no-demo. Same target
# directory, so only this crate is compiled again. `--example seal` (an example that does not need
# the demo) is there for that: with it Cargo resolves the dependencies with the dev-dependencies'
# features, as `cargo test` does; without it 29 dependencies (tokio, hyper, h2, reqwest, redis, ...)
# would be built a second time with other features.
no_demo=$(cargo build --no-default-features --bin token-handler --example seal \
  --message-format=json-render-diagnostics \
  | sed -n 's/.*"executable":"\([^"]*\/token-handler\)".*/\1/p')
cp "$no_demo" "$(dirname "$no_demo")/token-handler-no-demo"

cargo test --workspace --all-targets "$@"

# The integration suite again with hyper's upstream client and server (`upstream.client` and
# `server.http1 = "hyper"`; the defaults, and the first run's, are `direct`): every request is
# then read by hyper's server, and every proxied one goes through hyper's client.
TOKEN_HANDLER_TEST_UPSTREAM_CLIENT=hyper TOKEN_HANDLER_TEST_HTTP1=hyper cargo test --test it "$@"

# The fuzz targets (fuzz/, their own workspace) still compile against the library: `cargo fuzz`
# needs nightly flags to build them, a plain check does not (libfuzzer-sys's build script needs
# a C++ compiler). One had been broken by a new Session field until it was run by hand.
cargo check --locked --manifest-path fuzz/Cargo.toml --bins --target-dir target/fuzz-check

# And once more with `server.scheduler = "per_core"` and two workers: every second connection is
# handed to the other worker's runtime, refreshes shared across them included
# (tests/it/per_core.rs checks the hand-over itself, with either client).
TOKEN_HANDLER_TEST_SCHEDULER=per_core cargo test --test it "$@"
