#!/usr/bin/env bash
# Load: 10,000 signed push deliveries over 10 environments from 64 concurrent
# connections, against the release binary on 127.0.0.1. Then checks: no 5xx, every
# 202'd delivery has its row in SQLite, every environment ends with its newest commit
# live, deploys started and builds run stay near the number of environments (coalescing),
# and no commit is built twice in one environment.
#
#   bench/load.sh [DELIVERIES] [CONNECTIONS]      (defaults 10000, 64)
#
# Needs git and python3. Builds target/release/stagehand if it is missing. Everything
# happens in a temp dir that is removed on exit; the server is stopped on any exit.
# Bounded: sending has a 150 s limit, draining the queue 60 s, the whole run < 3 min.
set -euo pipefail

DELIVERIES=${1:-10000}
CONNECTIONS=${2:-64}
ENVIRONMENTS=10
COMMITS_PER_BRANCH=5
# Coalescing: of 10,000 deliveries, at most 10 per environment may start a deploy
# (without it, every delivery would). Builds: each environment sees its 5 commits in 5
# phases of ~0.3 s, about one deploy's length, so a runner that starts at once builds
# about 3 of them; building every commit would be 50; no commit may build twice.
MAX_STARTED=$((10 * ENVIRONMENTS))
MAX_BUILDS=$((4 * ENVIRONMENTS))

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
bin="$top/target/release/stagehand"
if [ ! -x "$bin" ]; then
    echo "building the release binary"
    (cd "$top" && cargo build --release -j2 --quiet)
fi

work=$(mktemp -d /tmp/stagehand-load.XXXXXX)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

secret="load-secret-$RANDOM$RANDOM"
export SHOP_WEBHOOK_SECRET="$secret" STAGEHAND_API_TOKEN="load-token"
export GIT_AUTHOR_NAME=Load GIT_AUTHOR_EMAIL=load@example.com
export GIT_COMMITTER_NAME=Load GIT_COMMITTER_EMAIL=load@example.com

# A repository with 10 branches, each a few commits ahead of main.
repo="$work/repo"
git init -q -b main "$repo"
mkdir -p "$repo/app"
for i in $(seq 1 20); do echo "file $i" >"$repo/app/file$i.txt"; done
git -C "$repo" add -A
git -C "$repo" commit -q -m "Initial"
base_sha=$(git -C "$repo" rev-parse HEAD)
branches_json=""
for b in $(seq 0 $((ENVIRONMENTS - 1))); do
    git -C "$repo" checkout -q -b "load-$b" main
    shas=""
    for c in $(seq 1 "$COMMITS_PER_BRANCH"); do
        echo "branch $b commit $c" >"$repo/app/version.txt"
        git -C "$repo" add -A
        git -C "$repo" commit -q -m "load-$b commit $c"
        shas="$shas\"$(git -C "$repo" rev-parse HEAD)\","
    done
    branches_json="$branches_json\"load-$b\": [${shas%,}],"
done
git -C "$repo" checkout -q main

{
    cat <<EOF
[server]
listen = "127.0.0.1:0"
state_dir = "$work/state"
max_parallel_deploys = 4
shutdown_grace = "10s"

[apps.shop]
repo = "$repo"
github = "acme/shop"
secret_env = "SHOP_WEBHOOK_SECRET"
root = "$work/srv"
keep_releases = 3
build = ["sleep 0.2"]
EOF
    for b in $(seq 0 $((ENVIRONMENTS - 1))); do
        printf '\n[apps.shop.environments.env%d]\nbranch = "load-%d"\n' "$b" "$b"
    done
} >"$work/stagehand.toml"

# The plan: deliveries in order; for each branch, its commits in order over its
# deliveries, so the newest commit's deliveries come last.
python3 - "$work/plan.json" "$DELIVERIES" "$ENVIRONMENTS" "$base_sha" "{${branches_json%,}}" <<'EOF'
import json, sys, uuid
path, n, envs, base, branches = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
per_branch = n // envs
deliveries = []
for i in range(n):
    b = i % envs
    shas = branches["load-%d" % b]
    k = min(len(shas) - 1, (i // envs) * len(shas) // per_branch)
    deliveries.append({"branch": "load-%d" % b, "sha": shas[k], "before": shas[k - 1] if k else base,
                       "delivery_id": str(uuid.uuid4())})
plan = {"app": "shop", "github": "acme/shop", "branches": branches,
        "environments": {"env%d" % b: "load-%d" % b for b in range(envs)}, "deliveries": deliveries}
json.dump(plan, open(path, "w"))
EOF

"$bin" serve --config "$work/stagehand.toml" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
url=""
for _ in $(seq 1 100); do
    url=$(sed -n 's/^stagehand listening on //p' "$work/server.out")
    [ -n "$url" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err"; echo "FAIL: server died"; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "FAIL: server did not start"; exit 1; }

echo "== load: $DELIVERIES deliveries, $ENVIRONMENTS environments ($COMMITS_PER_BRANCH commits each), $CONNECTIONS connections, build = sleep 0.2"
echo "machine: $(nproc) cores, $(uname -sr), $(python3 --version)"
started=$(date +%s)
timeout 150 python3 "$here/load.py" send "$url" "$work/plan.json" "$secret" "$work/results.json" \
    --connections "$CONNECTIONS"
timeout 70 python3 "$here/load.py" drain "$url" 60
echo "queue drained $(($(date +%s) - started)) s after the first delivery"
server_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server_pid/status")
echo "server peak RSS: $((server_rss_kb / 1024)) MiB"

kill -TERM "$server_pid"
timeout 30 tail --pid="$server_pid" -f /dev/null || { echo "FAIL: server did not stop on SIGTERM"; exit 1; }
wait "$server_pid" || true
server_pid=""
if grep -E '"level":"ERROR"| ERROR ' "$work/server.err" | head -5 | grep .; then
    echo "(errors in the server log, first 5 above)"
fi

python3 "$here/load.py" check "$work/state/stagehand.db" "$work/srv" "$work/plan.json" "$work/results.json" \
    --max-started "$MAX_STARTED" --max-builds "$MAX_BUILDS"
