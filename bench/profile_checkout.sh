#!/usr/bin/env bash
# Where a deploy of the 5,000-file repository spends its CPU: one push deploy of C0,
# then `perf record` on the server while it runs DEPLOYS manual deploys alternating
# C1 / C0 (fetch is a no-op after the first, so checkout dominates). Writes
# bench/results/profile_checkout/ (perf reports and the deploys' stage durations).
#
#   bench/profile_checkout.sh      (DEPLOYS=6)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

need git git
need perf linux-perf
need_stagehand

DEPLOYS=${DEPLOYS:-6}
OUT="$RESULTS/profile_checkout"
mkdir -p "$OUT"
rm -f "$OUT"/*
export BENCH_WEBHOOK_SECRET="bench-secret" STAGEHAND_API_TOKEN="bench-token"
GIT_ID=(-c user.name=bench -c user.email=bench@example.com)

"$PY" "$BENCH_DIR/lib/make_repo.py" "$TMP/work" >&2
git -C "$TMP/work" init -q -b main
git -C "$TMP/work" add -A
git -C "$TMP/work" "${GIT_ID[@]}" commit -q -m "bench: 5,000 files"
C0=$(git -C "$TMP/work" rev-parse HEAD)
echo "one more line" >>"$TMP/work/d3/file3.txt"
git -C "$TMP/work" "${GIT_ID[@]}" commit -q -am "bench: one file changed"
C1=$(git -C "$TMP/work" rev-parse HEAD)
git clone -q --bare --no-local "$TMP/work" "$TMP/origin.git"
git --git-dir "$TMP/origin.git" update-ref refs/heads/main "$C0"
git --git-dir "$TMP/origin.git" update-ref refs/heads/next "$C1"
"$PY" "$HELPER" payload "$REPO_DIR/webhook-samples/push.json" "$TMP/push-c0.json" \
    --ref refs/heads/main --after "$C0"

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
keep_releases = 2

[apps.shop.environments.production]
branch = "main"
TOML
start_stagehand "$TMP/stagehand.toml" "$TMP"
run "$PY" "$HELPER" deploy "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push-c0.json" "$STAGEHAND_API_TOKEN" >"$OUT/deploys.jsonl"

perf record -F 999 -g -p "$SH_PID" -o "$TMP/perf.data" 2>"$OUT/perf-record.txt" &
PERF_PID=$!
track "$PERF_PID"
sleep 0.5
for i in $(seq "$DEPLOYS"); do
    if ((i % 2)); then sha=$C1; else sha=$C0; fi
    run "$PY" "$HELPER" manual "$SH_URL" shop production "$sha" "$STAGEHAND_API_TOKEN" >>"$OUT/deploys.jsonl"
done
kill -INT "$PERF_PID"
wait "$PERF_PID" || true

report() {
    local name=$1
    shift
    perf report -i "$TMP/perf.data" --stdio "$@" >"$TMP/$name.txt" 2>/dev/null
    grep -v -e '^$' -e '^#' "$TMP/$name.txt" | sed -e 's/[[:space:]-]*$//' | sed -n 1,80p >"$OUT/$name.txt"
}
report by-dso --no-children --sort dso -g none
report by-symbol --no-children --sort dso,symbol -g none
report by-thread --no-children --sort comm -g none
cat "$OUT/deploys.jsonl" "$OUT/by-thread.txt" "$OUT/by-dso.txt"
sed -n 1,30p "$OUT/by-symbol.txt"
