#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: deterministic where wall-clock
# figures on a shared 2-core machine are not. This is how each optimization in BENCHMARKS.md
# was measured before and after.
#   bench/callgrind.sh session      # valid sealed session: open + Bearer + forward
#   bench/callgrind.sh anonymous    # public path, no cookie
#   bench/callgrind.sh anonymous-post  # as `anonymous`, a POST with a 256-byte JSON body
#   bench/callgrind.sh session-post    # as `session`, the same POST
#   bench/callgrind.sh session-ended  # as `session`, with a record of 100,000 ended sessions
#   bench/callgrind.sh session-dpop   # as `session`, DPoP-bound: a proof signed per request
#   bench/callgrind.sh session-large  # as `session`, with bench/run.sh's 6 KB `groups` claim
#                                     # (the session sealed into two cookies)
#   bench/callgrind.sh sessions-many  # as `session`, wrk cycling through $MANY distinct cookies
#                                     # (default 1,000: more than the cache of opened sessions holds)
#   bench/callgrind.sh nginx-anonymous  # the reference: nginx proxy_pass (bench/run.sh's, in one
#   bench/callgrind.sh nginx-session    # process), sent the `anonymous` or the `session` request
#   bench/callgrind.sh nginx-anonymous-post  # (or the `anonymous-post` one)
#   bench/callgrind.sh bare-hyper       # the floor: examples/bare_hyper.rs (hyper's server and
#                                       # client, nothing else), sent the `anonymous` request
#   BARE_HYPER_CLIENT=own bench/callgrind.sh bare-hyper  # the same with a minimal hand-written
#                                       # upstream client instead of hyper's (a measurement only)
#   BARE_HYPER_SERVER=own BARE_HYPER_CLIENT=own bench/callgrind.sh bare-hyper  # and a minimal
#                                       # hand-written server loop instead of hyper's server too
# session-ended: the proxy also has `[coordination]` on a redis-server started here, whose
# stream `th:{ended}:log` holds $ENDED entries (default 100,000; a third of each kind, random
# digests, so none names the measured session) before the proxy starts, and the measured
# session names a `sub` and a `sid`: every request computes the three digests of the check.
# Both runs (with and without requests) wait until the proxy holds the whole record, so
# reading it is subtracted with the start-up.
# Starts an nginx upstream (`return 200`) and the release token-handler under valgrind on free
# ports, drives it with wrk (4 connections, 8 s), subtracts the start-up/shutdown instructions
# (a run with no request) and prints instructions per request. Installs valgrind, nginx and
# wrk (and redis-server) when missing. The raw profile is left in $DIR/cg.out for
# callgrind_annotate (the run with no request in $DIR/cg.base.out). Honours CARGO_TARGET_DIR,
# TOKEN_HANDLER_BIN, and BENCH_UPSTREAM_CLIENT / BENCH_HTTP1 (the proxy's `upstream.client` and
# `server.http1`, both `direct` by default, as the product's).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/need.sh
source bench/fixture.sh
need valgrind nginx wrk
MODE="${1:-session}"
case "$MODE" in
  session | session-post | anonymous | anonymous-post | session-ended | session-dpop) ;;
  session-large) ;;
  sessions-many | nginx-anonymous | nginx-anonymous-post | nginx-session | bare-hyper) ;;
  *) echo "usage: $0 session|session-post|anonymous|anonymous-post|session-ended|session-dpop|session-large|sessions-many|nginx-anonymous|nginx-anonymous-post|nginx-session|bare-hyper" >&2; exit 2 ;;
esac
ENDED="${ENDED:-100000}"
MANY="${MANY:-1000}"
[ "$MODE" != session-ended ] || need redis-server
cargo build --release --bin token-handler --example seal
[ "$MODE" != bare-hyper ] || cargo build --release --example bare_hyper
RELEASE="${CARGO_TARGET_DIR:-target}/release"
# TOKEN_HANDLER_BIN: profile another build of the proxy (a baseline kept aside) with this one's
# tools, for a before/after on the same day. The default is the plain release build, whose count
# moves only with the code: the image's profile-guided build (14-20 % fewer instructions) is
# TOKEN_HANDLER_BIN="$(scripts/pgo.sh | tail -n 1)".
BIN="${TOKEN_HANDLER_BIN:-$RELEASE/token-handler}"
DIR=$(mktemp -d /tmp/th-callgrind.XXXXXX)
UP=$(free_port); TH=$(free_port); AD=$(free_port); RP=$(free_port)
KEYS="k1:$(head -c 32 /dev/urandom | base64)"
write_upstream "$DIR" "$UP"
write_proxy "$DIR" "$TH" "$AD" "$UP"
# The reference proxy of bench/run.sh (examples/bench/nginx.rs), in one process for callgrind.
write_reference "$DIR" "$TH" "$UP"
nginx -c "$DIR/up.conf" &
NGINX=$!
REDIS=""
trap 'kill -TERM $NGINX $REDIS 2>/dev/null; wait $NGINX $REDIS 2>/dev/null || true' EXIT
SEAL_ARGS=()
[ "$MODE" != session-dpop ] || SEAL_ARGS=(--dpop)
[ "$MODE" != session-large ] || SEAL_ARGS=(--groups 6000)
if [ "$MODE" = session-ended ]; then
  # Redis calls under valgrind are slow: a 1,000-entry XREAD must not time out (250 ms default).
  cat >> "$DIR/th.toml" <<EOF
[coordination]
redis_url = "redis://127.0.0.1:$RP"
operation_timeout = "5s"
EOF
  redis-server --bind 127.0.0.1 --port "$RP" --save "" --appendonly no --dir "$DIR" \
    --logfile "$DIR/redis.log" &
  REDIS=$!
  for _ in $(seq 1 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
  # As Entry::encode writes them: {s|i|u}:{32 hex digest}:{at}:{until}:{reason} in field `e`,
  # one XADD each (RESP, through redis-cli --pipe); ended a minute ago, remembered for a year.
  python3 - "$ENDED" <<'PY' | redis-cli -p "$RP" --pipe >"$DIR/fill.log"
import os, sys, time
n, now = int(sys.argv[1]), int(time.time())
kinds = [("s", "logout"), ("i", "backchannel"), ("u", "operator")]
out = sys.stdout.buffer
for i in range(n):
    kind, reason = kinds[i % 3]
    value = f"{kind}:{os.urandom(16).hex()}:{now - 60}:{now + 365 * 86400}:{reason}".encode()
    args = [b"XADD", b"th:{ended}:log", b"*", b"e", value]
    out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
PY
  if [ "$(redis-cli -p "$RP" xlen 'th:{ended}:log')" -ne "$ENDED" ]; then
    cat "$DIR/fill.log" >&2; exit 1
  fi
  # The measured session names a user and an IdP session, as a login with an ID token does.
  SEAL_ARGS=(--sub usr:42 --sid 08a5019c-17e1-4977-8f42-65a12843ea02)
fi

if [ "$MODE" = sessions-many ]; then
  # Distinct sealed values (a fresh nonce each), cycled by wrk: each comes back after $MANY - 1
  # others, so none is kept in the cache (its slots see several values in between).
  for _ in $(seq 1 "$MANY"); do
    TOKEN_HANDLER_COOKIE_KEYS=$KEYS "$RELEASE/examples/seal"
  done >"$DIR/cookies.txt"
  cat >"$DIR/many.lua" <<LUA
local cookies = {}
for line in io.lines("$DIR/cookies.txt") do cookies[#cookies + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format(nil, nil, { ["Cookie"] = cookies[(i % #cookies) + 1] })
end
LUA
fi
if [ "${MODE%-post}" != "$MODE" ]; then
  # A JSON body of 256 bytes, as an SPA's small API write sends it (head and body together),
  # with the CSRF header a session's writes need (`csrf.header`).
  cat >"$DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-CSRF"] = "1"
wrk.body = '{"note":"' .. string.rep("x", 244) .. '"}'
LUA
fi

# One run under callgrind: $1 = number of seconds of wrk (0: start and stop only).
profile() {
  local out="$DIR/cg.out"
  [ "$1" -gt 0 ] || out="$DIR/cg.base.out"
  local pid stop=-INT
  if [ "${MODE#nginx-}" != "$MODE" ]; then
    valgrind --tool=callgrind --callgrind-out-file="$out" nginx -c "$DIR/ref.conf" \
      2>"$DIR/valgrind.err" &
    pid=$! stop=-QUIT
    for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$TH/" && break; sleep 0.1; done
  elif [ "$MODE" = bare-hyper ]; then
    BENCH_PINGORA_BEARER=bench-access-token valgrind --tool=callgrind \
      --callgrind-out-file="$out" "$RELEASE/examples/bare_hyper" "127.0.0.1:$TH" \
      "127.0.0.1:$UP" 1 2>"$DIR/valgrind.err" &
    pid=$! stop=-TERM
    for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$TH/" && break; sleep 0.1; done
  else
    # The proxy's log goes to a file: a line on stdout would be read as the result.
    TOKEN_HANDLER_COOKIE_KEYS=$KEYS valgrind --tool=callgrind --callgrind-out-file="$out" \
      "$BIN" --config "$DIR/th.toml" 2>"$DIR/valgrind.err" >>"$DIR/proxy.log" &
    pid=$!
    for _ in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:$AD/healthz" && break; sleep 0.1; done
  fi
  if [ "$MODE" = session-ended ]; then
    local held=0
    for _ in $(seq 1 1200); do
      held=$(curl -sf "http://127.0.0.1:$AD/metrics" |
        awk '/^token_handler_ended_sessions / {print $2}')
      [ "${held:-0}" = "$ENDED" ] && break
      sleep 0.5
    done
    if [ "${held:-0}" != "$ENDED" ]; then
      echo "the proxy's record holds ${held:-0} of $ENDED entries" >&2
      kill -INT $pid; wait $pid 2>/dev/null || true
      return 1
    fi
  fi
  local requests=0
  if [ "$1" -gt 0 ]; then
    local path=/public/x header=()
    if [ "$MODE" = sessions-many ]; then
      path=/api/x
      header=(-s "$DIR/many.lua")
    elif [ "${MODE#nginx-}" = anonymous-post ]; then
      header=(-s "$DIR/post.lua")
    elif [ "$MODE" = session-post ]; then
      path=/api/x
      header=(-s "$DIR/post.lua" -H "Cookie: $(TOKEN_HANDLER_COOKIE_KEYS=$KEYS "$RELEASE/examples/seal")")
    elif [ "$MODE" != anonymous ] && [ "$MODE" != nginx-anonymous ] && [ "$MODE" != bare-hyper ]; then
      path=/api/x
      local cookie
      cookie=$(TOKEN_HANDLER_COOKIE_KEYS=$KEYS "$RELEASE/examples/seal" ${SEAL_ARGS[@]+"${SEAL_ARGS[@]}"})
      header=(-H "Cookie: $cookie")
    fi
    requests=$(wrk -t1 -c4 -d"$1"s "${header[@]}" "http://127.0.0.1:$TH$path" |
      awk '/requests in/ {print $1}')
  fi
  kill $stop $pid; wait $pid 2>/dev/null || true
  echo "$requests $(awk '/^summary:/ {print $2}' "$out")"
}
read -r _ base < <(profile 0)
read -r requests total < <(profile 8)
echo "$MODE: $requests requests, $(( (total - base) / requests )) instructions per request" \
  "(start-up and shutdown: $base); profile: $DIR/cg.out"
