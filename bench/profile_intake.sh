#!/usr/bin/env bash
# Where stagehand's CPU goes under the intake load of bench/intake.sh: `perf record`
# on the server during a wrk run (not timed: perf slows it), then a flat report by
# symbol and one by shared object, and the server's CPU per request. Writes
# bench/results/profile_intake/.
#
#   bench/profile_intake.sh      (DURATION=8)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

need wrk wrk
need perf linux-perf
need_stagehand

DURATION=${DURATION:-8}
FREQ=999
OUT="$RESULTS/profile_intake"
mkdir -p "$OUT"
rm -f "$OUT"/*

SECRET="bench-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
BODY="$REPO_DIR/webhook-samples/push.json"
export BENCH_BODY="$BODY" BENCH_SIG="sha256=$("$PY" "$HELPER" sign "$SECRET" "$BODY")"
export BENCH_WEBHOOK_SECRET="$SECRET" STAGEHAND_API_TOKEN="bench-token"
mkdir -p "$TMP/state" "$TMP/srv"
cat >"$TMP/stagehand.toml" <<TOML
[server]
listen = "127.0.0.1:0"
reconcile_interval = "0"
state_dir = "$TMP/state"
shutdown_grace = "1s"

[apps.shop]
repo = "$TMP/never-fetched.git"
github = "acme/shop"
secret_env = "BENCH_WEBHOOK_SECRET"
root = "$TMP/srv"

[apps.shop.environments.staging]
branch = "develop"
auto_deploy = false
TOML
start_stagehand "$TMP/stagehand.toml" "$TMP"
run env BENCH_RUN=warm wrk -t2 -c64 -d2s -s "$BENCH_DIR/lib/post-push.lua" "$SH_URL/hooks/shop" >/dev/null
perf record -F "$FREQ" -g -p "$SH_PID" -o "$TMP/perf.data" -- sleep "$DURATION" 2>"$OUT/perf-record.txt" &
PERF_PID=$!
track "$PERF_PID"
run env BENCH_RUN=run wrk -t2 -c64 -d"${DURATION}s" -s "$BENCH_DIR/lib/post-push.lua" "$SH_URL/hooks/shop" >"$OUT/wrk.txt"
wait "$PERF_PID" || true
# report NAME ARGS...: a perf report, blank lines and comments dropped, first 80 lines.
report() {
    local name=$1
    shift
    perf report -i "$TMP/perf.data" --stdio "$@" >"$TMP/$name.txt" 2>/dev/null
    grep -v -e '^$' -e '^#' "$TMP/$name.txt" | sed -e 's/[[:space:]-]*$//' | sed -n 1,80p >"$OUT/$name.txt"
}
report by-dso --no-children --sort dso -g none
report by-symbol --no-children --sort dso,symbol -g none
report by-symbol-inclusive --children --sort symbol -g none
report by-thread --no-children --sort comm -g none
# The server's CPU per request: its samples (FREQ a second on each core it ran on) over
# the requests wrk completed. Comparable between builds where requests/s under perf are not.
"$PY" - "$OUT" "$FREQ" "$DURATION" <<'PY' | tee "$OUT/cpu-per-request.txt"
import re, sys
out, freq, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
samples = int(re.search(r"\((\d+) samples\)", open(f"{out}/perf-record.txt").read()).group(1))
requests = int(re.search(r"(\d+) requests in", open(f"{out}/wrk.txt").read()).group(1))
cpu_s = samples / freq
print(f"server CPU: {cpu_s:.2f} s over {duration:.0f} s ({cpu_s / duration:.2f} cores), "
      f"{requests} requests, {cpu_s / requests * 1e6:.0f} us per request")
PY
cat "$OUT/wrk.txt" "$OUT/by-thread.txt" "$OUT/by-dso.txt"
sed -n 1,40p "$OUT/by-symbol.txt"
