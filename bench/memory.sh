#!/usr/bin/env bash
# stagehand's memory through one server's life: idle after start, during the deploys
# of the 5,000-file repository (first and repeat, as bench/push_to_live.sh), under the
# intake load (as bench/intake.sh, LOAD_SECONDS of wrk, 64 connections), and idle again
# after it. VmRSS sampled every 100 ms; idle figures also split into anonymous and
# file-backed pages (the binary's and shared libraries' code count in VmRSS too), and
# the peaks into anonymous, file and shmem (a git pack on tmpfs mapped by libgit2).
#
#   bench/memory.sh      (LOAD_SECONDS=10)
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

need git git
need wrk wrk
need_stagehand

LOAD_SECONDS=${LOAD_SECONDS:-10}
OUT="$RESULTS/memory"
mkdir -p "$OUT"
rm -f "$OUT"/*
machine_line | tee "$OUT/machine.txt" >&2
export BENCH_WEBHOOK_SECRET="bench-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export STAGEHAND_API_TOKEN="bench-token"
GIT_ID=(-c user.name=bench -c user.email=bench@example.com)

"$PY" "$BENCH_DIR/lib/make_repo.py" "$TMP/work" >&2
git -C "$TMP/work" init -q -b main
git -C "$TMP/work" add -A
git -C "$TMP/work" "${GIT_ID[@]}" commit -q -m "bench: 5,000 files"
C0=$(git -C "$TMP/work" rev-parse HEAD)
git clone -q --bare --no-local "$TMP/work" "$TMP/origin.git"
echo "one more line" >>"$TMP/work/d3/file3.txt"
git -C "$TMP/work" "${GIT_ID[@]}" commit -q -am "bench: one file changed"
C1=$(git -C "$TMP/work" rev-parse HEAD)
git -C "$TMP/work" push -q "$TMP/origin.git" "$C1:refs/heads/next"
DAEMON_PORT=$(free_port)
git daemon --reuseaddr --listen=127.0.0.1 --port="$DAEMON_PORT" --base-path="$TMP" \
    --export-all "$TMP" >"$TMP/git-daemon.log" 2>&1 &
track $!
wait_port "$DAEMON_PORT"
"$PY" "$HELPER" payload "$REPO_DIR/webhook-samples/push.json" "$TMP/push-c0.json" --ref refs/heads/main --after "$C0"
"$PY" "$HELPER" payload "$REPO_DIR/webhook-samples/push.json" "$TMP/push-c1.json" --ref refs/heads/main \
    --after "$C1" --before "$C0"

mkdir -p "$TMP/state" "$TMP/srv"
cat >"$TMP/stagehand.toml" <<TOML
[server]
listen = "127.0.0.1:0"
reconcile_interval = "0"
state_dir = "$TMP/state"
shutdown_grace = "1s"

[apps.shop]
repo = "git://127.0.0.1:$DAEMON_PORT/origin.git"
github = "acme/shop"
secret_env = "BENCH_WEBHOOK_SECRET"
root = "$TMP/srv"

[apps.shop.environments.production]
branch = "main"

# The intake load pushes develop (webhook-samples/push.json): recorded, not built.
[apps.shop.environments.staging]
branch = "develop"
auto_deploy = false
TOML
start_stagehand "$TMP/stagehand.toml" "$TMP"

# snapshot NAME: VmRSS, RssAnon, RssFile, threads and the smaps_rollup Pss of the server.
snapshot() {
    {
        grep -E '^(VmRSS|RssAnon|RssFile|RssShmem|Threads):' "/proc/$SH_PID/status"
        grep -E '^(Pss|Private_Dirty):' "/proc/$SH_PID/smaps_rollup"
    } | awk -v n="$1" '{print n, $1, $2}' >>"$OUT/snapshots.txt"
}

sleep 2
snapshot idle
start_rss_sampler "$SH_PID" "$OUT/rss-deploys.txt"
git --git-dir "$TMP/origin.git" update-ref refs/heads/main "$C0"
run "$PY" "$HELPER" deploy "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push-c0.json" "$STAGEHAND_API_TOKEN" >>"$OUT/deploys.jsonl"
git --git-dir "$TMP/origin.git" update-ref refs/heads/main "$C1"
run "$PY" "$HELPER" deploy "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push-c1.json" "$STAGEHAND_API_TOKEN" >>"$OUT/deploys.jsonl"
stop_rss_sampler
snapshot after-deploys

BODY="$REPO_DIR/webhook-samples/push.json"
export BENCH_BODY="$BODY" BENCH_SIG="sha256=$("$PY" "$HELPER" sign "$BENCH_WEBHOOK_SECRET" "$BODY")"
start_rss_sampler "$SH_PID" "$OUT/rss-load.txt"
run env BENCH_RUN=mem wrk -t2 -c64 -d"${LOAD_SECONDS}s" -s "$BENCH_DIR/lib/post-push.lua" "$SH_URL/hooks/shop" >"$OUT/wrk.txt"
stop_rss_sampler
snapshot after-load
sleep 5
snapshot after-load-5s

"$PY" - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, sys
out = sys.argv[1]
snap = {}
for line in open(f"{out}/snapshots.txt"):
    name, key, value = line.split()
    snap.setdefault(name, {})[key.rstrip(":")] = int(value)
def peak(p): return max(([int(x) for x in l.split()[1:5]] for l in open(p) if l.strip()), key=lambda r: r[0])
pd, pl = peak(f"{out}/rss-deploys.txt"), peak(f"{out}/rss-load.txt")
res = {"snapshots_kb": snap, "peak_deploys_kb": pd[0], "peak_load_kb": pl[0],
       "peak_deploys_split_kb": dict(zip(("anon", "file", "shmem"), pd[1:])),
       "peak_load_split_kb": dict(zip(("anon", "file", "shmem"), pl[1:]))}
json.dump(res, open(f"{out}/summary.json", "w"), indent=2)
mb = lambda k: f"{k / 1024:.1f} MB"
for name, s in snap.items():
    print(f"{name:15} VmRSS {mb(s['VmRSS']):>9} (anon {mb(s['RssAnon'])}, file {mb(s['RssFile'])}, shmem {mb(s['RssShmem'])}), "
          f"Pss {mb(s['Pss'])}, private dirty {mb(s['Private_Dirty'])}, {s['Threads']} threads")
split = lambda r: f"anon {mb(r[1])}, file {mb(r[2])}, shmem {mb(r[3])}"
print(f"peak VmRSS during the two deploys of the 5,000-file repo: {mb(pd[0])} ({split(pd)})")
print(f"peak VmRSS under the intake load:                        {mb(pl[0])} ({split(pl)})")
PY
