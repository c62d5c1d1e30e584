#!/usr/bin/env bash
# Push to live, no build step: the time from a push delivery to `current` switched, on
# a generated repository of 5,000 files (~52 MB, the shape benches/checkout.rs uses).
#
#   first:  fresh state (no mirror, no releases), deliver a push of commit C0
#   repeat: same state, after a one-file commit C1 (child of C0)
#
# stagehand: a signed delivery to /hooks/shop; the deploy is polled every 20 ms through
# GET /api/deploys/{id}. Reported: the server's own finished_at - created_at (primary)
# and the wall clock from sending to `succeeded` seen (adds the HTTP round trips and
# up to one poll interval).
# Peer: bench/lib/shell-deploy.sh (git fetch into a bare mirror, git archive | tar -x,
# ln -s + mv -T), wall clock.
#
# Where both fetch from (ORIGIN_MODE):
#   daemon (default): git://127.0.0.1:<port>/origin.git served by `git daemon`, which
#                     answers like a hosting server (upload-pack reusing the packed
#                     objects); the closest this loopback-only machine gets to GitHub.
#   path:             the bare repository's path. libgit2's local transport then builds
#                     the pack itself (deltas, zlib) inside stagehand: see README.
# FETCH_WITH=git2|git sets stagehand's `fetch_with` (default: its default, git2).
#
# RUNS rounds (default 5); each round runs both tools, interleaved, on fresh state.
# Medians reported. Also stagehand's idle RSS and its peak RSS during the deploys.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

need git git
need tar tar
need_stagehand

RUNS=${RUNS:-5}
OUT="$RESULTS/push_to_live"
mkdir -p "$OUT"
rm -f "$OUT"/*
machine_line | tee "$OUT/machine.txt" >&2

export BENCH_WEBHOOK_SECRET="bench-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export STAGEHAND_API_TOKEN="bench-token"
GIT_ID=(-c user.name=bench -c user.email=bench@example.com)

# ---- the repository -----------------------------------------------------------------
log "generating the 5,000-file repository"
"$PY" "$BENCH_DIR/lib/make_repo.py" "$TMP/work" | tee "$OUT/repository.txt" >&2
git -C "$TMP/work" init -q -b main
git -C "$TMP/work" add -A
GIT_AUTHOR_DATE=2026-01-01T00:00:00Z GIT_COMMITTER_DATE=2026-01-01T00:00:00Z \
    git -C "$TMP/work" "${GIT_ID[@]}" commit -q -m "bench: 5,000 files"
C0=$(git -C "$TMP/work" rev-parse HEAD)
# The origin is packed, as a hosting server's repositories are.
git clone -q --bare --no-local "$TMP/work" "$TMP/origin.git"
echo "one more line" >>"$TMP/work/d3/file3.txt"
git -C "$TMP/work" "${GIT_ID[@]}" commit -q -am "bench: one file changed"
C1=$(git -C "$TMP/work" rev-parse HEAD)
git -C "$TMP/work" push -q "$TMP/origin.git" "$C1:refs/heads/next"
ORIGIN_DIR="$TMP/origin.git"
set_main() { git --git-dir "$ORIGIN_DIR" update-ref refs/heads/main "$1"; }
case "${ORIGIN_MODE:-daemon}" in
    daemon)
        DAEMON_PORT=$(free_port)
        git daemon --reuseaddr --listen=127.0.0.1 --port="$DAEMON_PORT" --base-path="$TMP" \
            --export-all "$TMP" >"$TMP/git-daemon.log" 2>&1 &
        track $!
        wait_port "$DAEMON_PORT"
        ORIGIN="git://127.0.0.1:$DAEMON_PORT/origin.git"
        ;;
    path) ORIGIN="$ORIGIN_DIR" ;;
    *) die "ORIGIN_MODE must be daemon or path" ;;
esac
log "origin $ORIGIN: C0 $C0, C1 $C1 ($(du -sh "$ORIGIN_DIR" | cut -f1) packed)"
printf 'origin: %s (ORIGIN_MODE=%s), stagehand fetch_with = %s\n' "$ORIGIN" "${ORIGIN_MODE:-daemon}" \
    "${FETCH_WITH:-git2}" >>"$OUT/repository.txt"

"$PY" "$HELPER" payload "$REPO_DIR/webhook-samples/push.json" "$TMP/push-c0.json" \
    --ref refs/heads/main --after "$C0"
"$PY" "$HELPER" payload "$REPO_DIR/webhook-samples/push.json" "$TMP/push-c1.json" \
    --ref refs/heads/main --after "$C1" --before "$C0"

now_ns() { date +%s%N; }

# ---- the shell pipeline -------------------------------------------------------------
shell_round() {
    local i=$1 root="$TMP/shell-$1" t0 t1
    mkdir -p "$root"
    set_main "$C0"
    t0=$(now_ns)
    bash "$BENCH_DIR/lib/shell-deploy.sh" "$root" "$ORIGIN" "$OUT/shell-first-stages.txt"
    t1=$(now_ns)
    echo "$(( (t1 - t0) / 1000 ))" | awk '{printf "%.1f\n", $1/1000}' >>"$OUT/shell-first-ms.txt"
    [[ $(cat "$root/current/REVISION") == "$C0" ]] || die "shell: current is not C0"
    set_main "$C1"
    t0=$(now_ns)
    bash "$BENCH_DIR/lib/shell-deploy.sh" "$root" "$ORIGIN" "$OUT/shell-repeat-stages.txt"
    t1=$(now_ns)
    echo "$(( (t1 - t0) / 1000 ))" | awk '{printf "%.1f\n", $1/1000}' >>"$OUT/shell-repeat-ms.txt"
    [[ $(cat "$root/current/REVISION") == "$C1" ]] || die "shell: current is not C1"
    rm -rf "$root"
}

# ---- stagehand ----------------------------------------------------------------------
stagehand_round() {
    local i=$1 dir="$TMP/sh-$1"
    mkdir -p "$dir/state" "$dir/srv"
    cat >"$dir/stagehand.toml" <<TOML
[server]
listen = "127.0.0.1:0"
reconcile_interval = "0"
state_dir = "$dir/state"
shutdown_grace = "1s"

[apps.shop]
repo = "$ORIGIN"
github = "acme/shop"
secret_env = "BENCH_WEBHOOK_SECRET"
root = "$dir/srv"
fetch_with = "${FETCH_WITH:-git2}"

[apps.shop.environments.production]
branch = "main"
TOML
    start_stagehand "$dir/stagehand.toml" "$dir"
    if [[ $i == 1 ]]; then
        sleep 1
        rss_kb "$SH_PID" >"$OUT/stagehand-rss-idle-kb.txt"
    fi
    start_rss_sampler "$SH_PID" "$OUT/stagehand-rss-samples.txt"
    set_main "$C0"
    run "$PY" "$HELPER" deploy "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push-c0.json" "$STAGEHAND_API_TOKEN" \
        | tee -a "$OUT/stagehand-first.jsonl" >&2
    [[ $(cat "$dir/srv/production/current/REVISION") == "$C0" ]] || die "stagehand: current is not C0"
    set_main "$C1"
    run "$PY" "$HELPER" deploy "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push-c1.json" "$STAGEHAND_API_TOKEN" \
        | tee -a "$OUT/stagehand-repeat.jsonl" >&2
    [[ $(cat "$dir/srv/production/current/REVISION") == "$C1" ]] || die "stagehand: current is not C1"
    stop_rss_sampler
    stop_pid "$SH_PID"
    cp "$dir/stagehand.stderr" "$OUT/stagehand-stderr-round$i.txt"
    rm -rf "$dir"
}

for i in $(seq "$RUNS"); do
    log "round $i/$RUNS"
    shell_round "$i"
    stagehand_round "$i"
done

# ---- summary ------------------------------------------------------------------------
"$PY" - "$OUT" <<'PY' | tee "$OUT/summary.txt"
import json, statistics, sys
out = sys.argv[1]
med = statistics.median
def nums(p): return [float(x) for x in open(p).read().split()]
def jl(p): return [json.loads(l) for l in open(p) if l.strip()]
res = {}
print(f"{'median of ' + str(len(nums(out + '/shell-first-ms.txt'))) + ' runs, ms':34}{'stagehand':>11}{'(wall)':>9}{'shell':>9}{'ratio':>8}{'(wall)':>8}")
for kind in ("first", "repeat"):
    sh = jl(f"{out}/stagehand-{kind}.jsonl")
    shell = nums(f"{out}/shell-{kind}-ms.txt")
    server, wall, queued = med([d["server_ms"] for d in sh]), med([d["wall_ms"] for d in sh]), med([d["queued_ms"] for d in sh])
    stages = {k: med([d["stages"].get(k) or 0 for d in sh]) for k in sh[0]["stages"]}
    s = med(shell)
    res[kind] = {"stagehand_server_ms": server, "stagehand_wall_ms": wall, "stagehand_queued_ms": queued,
                 "stagehand_stages_ms": stages, "shell_ms": s, "ratio": server / s, "ratio_wall": wall / s,
                 "stagehand_server_all": [d["server_ms"] for d in sh], "stagehand_wall_all": [d["wall_ms"] for d in sh],
                 "shell_all": shell}
    print(f"{kind + ' deploy':34}{server:>11.0f}{wall:>9.0f}{s:>9.0f}{server/s:>8.2f}{wall/s:>8.2f}")
    print(f"  stagehand queued (created -> started) {queued:.0f} ms; stages: " +
          ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
    stamps = [[float(x) for x in l.split()] for l in open(f"{out}/shell-{kind}-stages.txt") if l.strip()]
    shell_stages = {k: med([(t[i + 1] - t[i]) * 1000 for t in stamps]) for i, k in enumerate(("fetch", "archive|tar", "switch"))}
    res[kind]["shell_stages_ms"] = shell_stages
    print("  shell stages: " + ", ".join(f"{k} {v:.0f}" for k, v in shell_stages.items()))
def kb(p):
    try: return int(open(p).read().split()[0])
    except Exception: return 0
peak = max((int(l.split()[1]) for l in open(f"{out}/stagehand-rss-samples.txt") if l.strip()), default=0)
res["stagehand_rss_idle_kb"] = kb(f"{out}/stagehand-rss-idle-kb.txt")
res["stagehand_rss_peak_kb"] = peak
print(f"stagehand RSS: idle {res['stagehand_rss_idle_kb']/1024:.1f} MB, peak during the deploys {peak/1024:.1f} MB")
json.dump(res, open(f"{out}/summary.json", "w"), indent=2)
PY
