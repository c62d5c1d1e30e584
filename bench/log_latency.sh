#!/usr/bin/env bash
# Live log latency: the time from a build writing a line to a `?follow=1` reader
# receiving it. The build prints 200 lines, 20 ms apart, each carrying its own
# `date +%s%N`; a Python reader reads GET /api/deploys/{id}/log?follow=1 line by line
# and records receive time - that time. p50/p99/max in ms.
#
# Two ways of following:
#   live:   the reader attaches right after the delivery's 202 (the deploy starts at
#           once); RUNS deploys (default 3), 600 lines pooled. This is the target row.
#   queued: the followed deploy waits behind another deploy of the same environment
#           (a short one: its commit asks for 10 lines), so the reader attaches while
#           it is `queued`, as someone watching the next deploy does; QUEUED_RUNS
#           deploys (default 3). Shows how a follower of a queued deploy catches up.
# The build prints as many lines as the file `lines` of the commit says.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

need git git
need curl curl
need_stagehand

RUNS=${RUNS:-3}
QUEUED_RUNS=${QUEUED_RUNS:-3}
OUT="$RESULTS/log_latency"
mkdir -p "$OUT"
rm -f "$OUT"/*
machine_line | tee "$OUT/machine.txt" >&2

export BENCH_WEBHOOK_SECRET="bench-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export STAGEHAND_API_TOKEN="bench-token"

git init -q -b main "$TMP/work"
echo "hello" >"$TMP/work/index.html"
echo 200 >"$TMP/work/lines"
git -C "$TMP/work" add -A
git -C "$TMP/work" -c user.name=bench -c user.email=bench@example.com commit -q -m "bench"
git clone -q --bare "$TMP/work" "$TMP/origin.git"

mkdir -p "$TMP/state" "$TMP/srv"
cat >"$TMP/stagehand.toml" <<TOML
[server]
listen = "127.0.0.1:0"
reconcile_interval = "0"
state_dir = "$TMP/state"
shutdown_grace = "1s"

[apps.shop]
repo = "$TMP/origin.git"
github = "acme/shop"
secret_env = "BENCH_WEBHOOK_SECRET"
root = "$TMP/srv"
build = ['for i in \$(seq \$(cat lines)); do echo "line \$i ts=\$(date +%s%N)"; sleep 0.02; done']

[apps.shop.environments.production]
branch = "main"
TOML
start_stagehand "$TMP/stagehand.toml" "$TMP"

n=0
# new_push FILE [LINES]: a new commit on main (each deploy needs one that is not live
# yet) whose build prints LINES lines (default 200).
new_push() {
    n=$((n + 1))
    echo "change $n" >>"$TMP/work/index.html"
    echo "${2:-200}" >"$TMP/work/lines"
    git -C "$TMP/work" -c user.name=bench -c user.email=bench@example.com commit -q -am "change $n"
    local sha
    sha=$(git -C "$TMP/work" rev-parse HEAD)
    git -C "$TMP/work" push -q "$TMP/origin.git" "$sha:refs/heads/main"
    "$PY" "$HELPER" payload "$REPO_DIR/webhook-samples/push.json" "$1" --ref refs/heads/main --after "$sha"
}

for i in $(seq "$RUNS"); do
    new_push "$TMP/push.json"
    run "$PY" "$HELPER" follow "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push.json" \
        "$STAGEHAND_API_TOKEN" "$OUT/live-ms-run$i.txt" >&2
done

# queued: deploy A runs a 10-line build; B (a child commit, 200 lines) is delivered
# right after and waits for A; the reader follows B from its 202 on.
for i in $(seq "$QUEUED_RUNS"); do
    new_push "$TMP/push-a.json" 10
    new_push "$TMP/push-b.json" 200
    "$PY" "$HELPER" send "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push-a.json" >>"$OUT/queued-blocker-ids.txt"
    run "$PY" "$HELPER" follow "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push-b.json" \
        "$STAGEHAND_API_TOKEN" "$OUT/queued-ms-run$i.txt" >&2
done

curl -sS -H "Authorization: Bearer $STAGEHAND_API_TOKEN" "$SH_URL/api/deploys?limit=10" >"$OUT/deploys.json"
cp "$TMP/stagehand.stderr" "$OUT/stagehand-stderr.txt"

"$PY" - "$OUT" "$RUNS" "$QUEUED_RUNS" <<'PY' | tee "$OUT/summary.txt"
import json, sys
out, runs, qruns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def pct(v, p):
    v = sorted(v); k = max(0, min(len(v) - 1, -(-p * len(v) // 100) - 1)); return v[k]
def load(path):
    v = [float(x) for x in open(path).read().split()]
    if len(v) != 200:
        sys.exit(f"{path}: {len(v)} lines received, expected 200")
    return v
live = [x for i in range(1, runs + 1) for x in load(f"{out}/live-ms-run{i}.txt")]
qs = [load(f"{out}/queued-ms-run{i}.txt") for i in range(1, qruns + 1)]
queued = [x for q in qs for x in q]
late = [x for x in queued if x > 50]
res = {
    "live": {"lines": len(live), "p50_ms": pct(live, 50), "p99_ms": pct(live, 99), "max_ms": max(live)},
    "queued": {"lines": len(queued), "p50_ms": pct(queued, 50), "p99_ms": pct(queued, 99),
               "max_ms": max(queued), "first_lines_ms": [q[:8] for q in qs], "lines_over_50ms": len(late)},
}
json.dump(res, open(f"{out}/summary.json", "w"), indent=2)
l, q = res["live"], res["queued"]
print(f"live   ({l['lines']} lines, {runs} deploys): p50 {l['p50_ms']:.2f} ms, p99 {l['p99_ms']:.2f} ms, max {l['max_ms']:.2f} ms")
print(f"queued ({q['lines']} lines, {qruns} deploys, reader attached while queued): p50 {q['p50_ms']:.2f} ms, "
      f"p99 {q['p99_ms']:.2f} ms, max {q['max_ms']:.2f} ms; {q['lines_over_50ms']} lines over 50 ms")
for i, first in enumerate(q["first_lines_ms"], 1):
    print(f"queued run {i}, first lines (ms): " + " ".join(f"{x:.1f}" for x in first))
PY
