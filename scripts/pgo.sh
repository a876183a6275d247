#!/usr/bin/env bash
# The release binary built with profile-guided optimisation (PGO), as the image ships it:
#   1. token-handler built instrumented (`-Cprofile-generate`);
#   2. it runs examples/bench's scenarios once (see TRAINING below) and writes its profile on
#      SIGTERM's exit;
#   3. llvm-profdata merges the profile;
#   4. token-handler built again with it (`-Cprofile-use`), and put through the refresh storm.
# The same code and the same checks run; the compiler lays out and inlines the hot path by
# measured counts: -12 % CPU per request on the data path here (BENCHMARKS.md, "Profile-guided
# optimisation").
#   scripts/pgo.sh [cargo build options, e.g. --locked --no-default-features]
# The options go to both token-handler builds (the training harness is built with the defaults:
# it needs the `demo` feature). The binary is left in $CARGO_TARGET_DIR/pgo/token-handler
# (default target/pgo/token-handler), whose path is the last line printed.
# Needs: nginx and wrk (installed when missing, as bench/run.sh does), and llvm-profdata of
# rustc's own LLVM version: $LLVM_PROFDATA, else rustup's `llvm-tools` component, else Debian's
# llvm-<major> package (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# The training's configurations are this script's own (a bench/run.sh option left in the
# environment, a profiler or another proxy to measure, would change them).
unset BENCH_SCHEDULER BENCH_HTTP1 BENCH_UPSTREAM_CLIENT BENCH_BEFORE_STORM PINGORA_BIN HYPER_BIN \
  TOKEN_HANDLER_BIN
source bench/need.sh
need nginx wrk

target="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
host="$(rustc -vV | sed -n 's/^host: //p')"
major="$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')"
dir="$target/pgo"

profdata() {
  local sysroot candidate
  if [ -n "${LLVM_PROFDATA:-}" ]; then
    echo "$LLVM_PROFDATA"
    return
  fi
  sysroot="$(rustc --print sysroot)"
  for candidate in "$sysroot/lib/rustlib/$host/bin/llvm-profdata" \
    "/usr/lib/llvm-$major/bin/llvm-profdata"; do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return
    fi
  done
  if command -v rustup >/dev/null && rustup component add llvm-tools >&2 \
    && [ -x "$sysroot/lib/rustlib/$host/bin/llvm-profdata" ]; then
    echo "$sysroot/lib/rustlib/$host/bin/llvm-profdata"
    return
  fi
  # Debian's package: `need` installs it (it has no command of that name).
  need "llvm-$major" >&2
  echo "/usr/lib/llvm-$major/bin/llvm-profdata"
}
PROFDATA="$(profdata)"
# A raw profile is read only by the LLVM that wrote its format: the one rustc is built on.
grep -q "LLVM version $major\." <<<"$("$PROFDATA" --version)" || {
  echo "pgo.sh: $PROFDATA is not of LLVM $major (rustc's): set LLVM_PROFDATA" >&2
  exit 1
}

# 1. Instrumented. `--target` keeps RUSTFLAGS off the build scripts and proc macros.
raw="$dir/raw"
rm -rf "$raw"
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$raw" CARGO_TARGET_DIR="$dir/generate" \
  cargo build --release --target "$host" --bin token-handler "$@"
instrumented="$dir/generate/$host/release/token-handler"

# 2. TRAINING: examples/bench against the instrumented binary, once per configuration a
# deployment can choose for the data path: one worker (every scenario and the refresh storm), two
# workers per core (`server.scheduler`), and hyper's server and client (`server.http1`,
# `upstream.client`). A path no run takes is still optimised for speed (see 4).
CARGO_TARGET_DIR="$target" cargo build --release --example bench
bench="$target/release/examples/bench"
train() {
  echo "pgo.sh: training, $1 (an instrumented build: its figures are not a measurement)" >&2
  shift
  env TOKEN_HANDLER_BIN="$instrumented" "$@" >&2
}
train "one worker" "$bench" --rounds 1 --duration 5
train "two workers per core" BENCH_SCHEDULER=per_core "$bench" --rounds 1 --duration 2 --workers 2
train "hyper's server and client" BENCH_HTTP1=hyper BENCH_UPSTREAM_CLIENT=hyper "$bench" \
  --rounds 1 --duration 2

# 3. Merged. Its digest is in the path the build is given, so that a new profile rebuilds every
# crate (cargo tracks RUSTFLAGS, not the file's contents).
"$PROFDATA" merge -o "$dir/merged.profdata" "$raw"
sum="$(sha256sum "$dir/merged.profdata" | cut -c1-16)"
profile="$dir/token-handler-$sum.profdata"
find "$dir" -maxdepth 1 -name 'token-handler-*.profdata' ! -name "${profile##*/}" -delete
mv "$dir/merged.profdata" "$profile"

# 4. Optimised with it. `-pgso=false`: code the training never ran (DPoP, TLS upstreams, the
# login, forward-auth...) is optimised for speed as without a profile, not for size as LLVM does
# by default with code a profile calls cold: a DPoP-bound request, which no scenario sends, took
# 5.2 % more instructions than the plain build with it, 0.8 % fewer without (BENCHMARKS.md).
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$profile -Cllvm-args=-pgso=false" CARGO_TARGET_DIR="$dir/use" \
  cargo build --release --target "$host" --bin token-handler "$@"
# The binary left is one that has kept the refresh storm's promise (one /token call, every
# answer 200): the harness exits non-zero otherwise, as on any failed request in training.
echo "pgo.sh: the optimised build through the refresh storm" >&2
env TOKEN_HANDLER_BIN="$dir/use/$host/release/token-handler" "$bench" --rounds 0 >&2
cp "$dir/use/$host/release/token-handler" "$dir/token-handler"
echo "$dir/token-handler"
