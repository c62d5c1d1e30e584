#!/usr/bin/env bash
# What reconciliation costs when nothing changed: stagehand serves one app whose origin
# has BRANCHES feature branches (a `feature/*` preview pattern, none deployed: they
# predate the first round) and TAGS tags, with reconcile_interval = "1s". After the
# first round's deploys (production, staging) end, it idles for IDLE seconds and
# reports, per idle round: stagehand's CPU time (its own plus its reaped `git fetch`
# children, from /proc/PID/stat) and wall time (IDLE / rounds - the 1 s interval), and
# the deploy rows created meanwhile (must be 0).
#
# The peer is the floor of asking the remote the same question: the same `git fetch
# --prune` of the same refspecs into a copy of the mirror, FETCHES times in a loop,
# CPU and wall time per fetch.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

need git git
need curl curl
need_stagehand

BRANCHES=${BRANCHES:-200}
TAGS=${TAGS:-100}
IDLE=${IDLE:-30}
FETCHES=${FETCHES:-20}
OUT="$RESULTS/reconcile"
mkdir -p "$OUT"
rm -f "$OUT"/*
machine_line | tee "$OUT/machine.txt" >&2

export BENCH_WEBHOOK_SECRET="bench-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export STAGEHAND_API_TOKEN="bench-token"

git init -q -b main "$TMP/work"
echo "hello" >"$TMP/work/index.html"
git -C "$TMP/work" add -A
git -C "$TMP/work" -c user.name=bench -c user.email=bench@example.com commit -q -m "bench"
git -C "$TMP/work" branch develop
for i in $(seq "$BRANCHES"); do git -C "$TMP/work" branch "feature/f$i"; done
for i in $(seq "$TAGS"); do git -C "$TMP/work" tag "v$i"; done
git clone -q --mirror "$TMP/work" "$TMP/origin.git"

mkdir -p "$TMP/state" "$TMP/srv"
cat >"$TMP/stagehand.toml" <<TOML
[server]
listen = "127.0.0.1:0"
state_dir = "$TMP/state"
shutdown_grace = "1s"
reconcile_interval = "1s"

[apps.shop]
repo = "$TMP/origin.git"
github = "acme/shop"
secret_env = "BENCH_WEBHOOK_SECRET"
root = "$TMP/srv"

[apps.shop.environments.production]
branch = "main"
[apps.shop.environments.staging]
branch = "develop"
[apps.shop.environments.preview]
branch = "feature/*"
[apps.shop.environments.releases]
tag = "v*"
TOML
start_stagehand "$TMP/stagehand.toml" "$TMP"

api() { curl -fsS -H "Authorization: Bearer $STAGEHAND_API_TOKEN" "$SH_URL$1"; }
rounds() { curl -fsS "$SH_URL/metrics" | sed -n 's/^stagehand_reconcile_rounds_total{result="ok"} //p'; }
deploy_count() { api "/api/deploys?limit=1000" | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["deploys"]))'; }
succeeded() { api "/api/deploys?limit=1000" | "$PY" -c 'import json,sys; print(sum(d["status"]=="succeeded" for d in json.load(sys.stdin)["deploys"]))'; }
# utime + stime + cutime + cstime of PID, in clock ticks.
cpu_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$1/stat"; }

for _ in $(seq 600); do
    [[ "$(succeeded)" -ge 2 ]] && break
    sleep 0.1
done
[[ "$(succeeded)" -ge 2 ]] || die "the first round did not deploy production and staging"
# Let the round that queued them end, and one more start clean.
r=$(rounds)
while [[ "$(rounds)" -lt $((r + 2)) ]]; do sleep 0.1; done

hz=$(getconf CLK_TCK)
deploys0=$(deploy_count)
rounds0=$(rounds)
cpu0=$(cpu_ticks "$SH_PID")
t0=$(date +%s%3N)
sleep "$IDLE"
rounds1=$(rounds)
cpu1=$(cpu_ticks "$SH_PID")
t1=$(date +%s%3N)
deploys1=$(deploy_count)
n=$((rounds1 - rounds0))
[[ $n -gt 0 ]] || die "no round ended in $IDLE s"
{
    echo "refs on the remote: 2 + $BRANCHES branches, $TAGS tags"
    awk -v n="$n" -v c=$((cpu1 - cpu0)) -v hz="$hz" -v ms=$((t1 - t0)) 'BEGIN {
        printf "stagehand idle rounds: %d in %.1f s; CPU per round %.1f ms; wall per round %.0f ms (interval 1000 ms subtracted)\n",
            n, ms / 1000, c * 1000 / hz / n, ms / n - 1000 }'
    echo "deploy rows created while idle: $((deploys1 - deploys0))"
} | tee "$OUT/stagehand.txt" >&2

# The peer: the same fetch, by hand, into a copy of stagehand's mirror.
cp -a "$TMP/state/mirrors/shop.git" "$TMP/mirror-copy.git"
specs=(+refs/heads/develop*:refs/heads/develop* +refs/heads/feature/*:refs/heads/feature/*
    +refs/heads/main*:refs/heads/main* +refs/tags/v*:refs/tags/v*)
TIMEFORMAT='%R %U %S'
times=$({ time (for _ in $(seq "$FETCHES"); do
    git --git-dir "$TMP/mirror-copy.git" fetch --quiet --no-tags --no-write-fetch-head --prune \
        -- "$TMP/origin.git" "${specs[@]}"
done); } 2>&1)
read -r real user sys <<<"$times"
awk -v n="$FETCHES" -v r="$real" -v u="$user" -v s="$sys" 'BEGIN {
    printf "git fetch --prune, same refspecs, no change: CPU per fetch %.1f ms; wall per fetch %.0f ms (%d fetches)\n",
        (u + s) * 1000 / n, r * 1000 / n, n }' | tee "$OUT/git-fetch.txt" >&2
