#!/usr/bin/env bash
# Live log latency: the time from a build writing a line to a `?follow=1` reader
# receiving it. The build prints 200 lines, 20 ms apart, each carrying its own
# `date +%s%N`; a Python reader, attached right after the delivery's 202, reads
# GET /api/deploys/{id}/log?follow=1 line by line and records receive time - that
# time. Reports p50/p99/max in ms (and the first line's, which also pays for the
# follower attaching while the deploy was still queued).
#
#   bench/log_latency.sh        (RUNS=1 by default; RUNS=3 pools three deploys)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

need git git
need_stagehand

RUNS=${RUNS:-1}
OUT="$RESULTS/log_latency"
mkdir -p "$OUT"
rm -f "$OUT"/*
machine_line | tee "$OUT/machine.txt" >&2

export BENCH_WEBHOOK_SECRET="bench-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export STAGEHAND_API_TOKEN="bench-token"

git init -q -b main "$TMP/work"
echo "hello" >"$TMP/work/index.html"
git -C "$TMP/work" add -A
git -C "$TMP/work" -c user.name=bench -c user.email=bench@example.com commit -q -m "bench"
git clone -q --bare "$TMP/work" "$TMP/origin.git"

mkdir -p "$TMP/state" "$TMP/srv"
cat >"$TMP/stagehand.toml" <<TOML
[server]
listen = "127.0.0.1:0"
state_dir = "$TMP/state"
shutdown_grace = "1s"

[apps.shop]
repo = "$TMP/origin.git"
github = "acme/shop"
secret_env = "BENCH_WEBHOOK_SECRET"
root = "$TMP/srv"
build = ['for i in \$(seq 200); do echo "line \$i ts=\$(date +%s%N)"; sleep 0.02; done']

[apps.shop.environments.production]
branch = "main"
TOML
start_stagehand "$TMP/stagehand.toml" "$TMP"

for i in $(seq "$RUNS"); do
    # Each run needs a commit that is not live yet.
    echo "run $i" >>"$TMP/work/index.html"
    git -C "$TMP/work" -c user.name=bench -c user.email=bench@example.com commit -q -am "run $i"
    sha=$(git -C "$TMP/work" rev-parse HEAD)
    git -C "$TMP/work" push -q "$TMP/origin.git" "$sha:refs/heads/main"
    "$PY" "$HELPER" payload "$REPO_DIR/webhook-samples/push.json" "$TMP/push.json" \
        --ref refs/heads/main --after "$sha"
    "$PY" "$HELPER" follow "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push.json" \
        "$STAGEHAND_API_TOKEN" "$OUT/latency-ms-run$i.txt" >&2
done
curl -sS -H "Authorization: Bearer $STAGEHAND_API_TOKEN" "$SH_URL/api/deploys?limit=$RUNS" >"$OUT/deploys.json"
cp "$TMP/stagehand.stderr" "$OUT/stagehand-stderr.txt"

"$PY" - "$OUT" "$RUNS" <<'PY' | tee "$OUT/summary.txt"
import json, sys
out, runs = sys.argv[1], int(sys.argv[2])
def pct(v, p):
    v = sorted(v); k = max(0, min(len(v) - 1, -(-p * len(v) // 100) - 1)); return v[k]
all_, firsts = [], []
for i in range(1, runs + 1):
    v = [float(x) for x in open(f"{out}/latency-ms-run{i}.txt").read().split()]
    if len(v) != 200:
        sys.exit(f"run {i}: {len(v)} lines received, expected 200")
    all_ += v
    firsts.append(v[0])
rest = [x for i in range(1, runs + 1) for x in [float(y) for y in open(f"{out}/latency-ms-run{i}.txt").read().split()][1:]]
res = {"lines": len(all_), "p50_ms": pct(all_, 50), "p99_ms": pct(all_, 99), "max_ms": max(all_),
       "first_line_ms": firsts, "without_first_p99_ms": pct(rest, 99), "without_first_max_ms": max(rest)}
json.dump(res, open(f"{out}/summary.json", "w"), indent=2)
print(f"log latency over {len(all_)} lines ({runs} deploy(s)): p50 {res['p50_ms']:.2f} ms, "
      f"p99 {res['p99_ms']:.2f} ms, max {res['max_ms']:.2f} ms")
print(f"first line of each deploy: {', '.join(f'{x:.1f}' for x in firsts)} ms; "
      f"without it: p99 {res['without_first_p99_ms']:.2f} ms, max {res['without_first_max_ms']:.2f} ms")
PY
