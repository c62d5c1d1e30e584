#!/usr/bin/env bash
# Push to live on a real, big repository (issue 14): stagehand against the shell
# pipelines, on the disk the product uses. Fetches nothing from the internet.
#
#   bench/real_repo.sh /path/to/a/bare/clone.git
#
# Make the clone once (symfony/symfony: 13k files, 72k commits, ~385 MB pack):
#   git clone --bare https://github.com/symfony/symfony /var/tmp/symfony.git
#
# The clone is only read: the origin is a new bare repository in the scratch directory
# whose objects/info/alternates points at it, with `main` = the clone's HEAD (C0) and
# REPEATS one-file commits on top (C1..Cn, README.md gains a line each), served on
# 127.0.0.1 by `git daemon` (upload-pack as a hosting server runs it).
#
# Per round, each tool on fresh state (order rotated every round): a first deploy of C0,
# then a repeat deploy of each of C1..Cn. Cleanup is in the loop: every tool keeps the
# live release and the one before it, so from the third deploy on each deploy deletes
# a 13k-file release (that deletion, on ext4 with `discard`, is what made repeat deploys
# slow: see bench/README.md).
#   shell-full:    bench/lib/shell-deploy-real.sh full (bare mirror `git fetch`,
#                  `git archive | tar -x`, ln -s + mv -T, rm -rf of old releases)
#   shell-shallow: the same with `git clone --depth 1 --branch main` as fetch + write
#   stagehand:     the release binary's `serve` and a signed delivery per deploy, polled
#                  through GET /api/deploys/{id}; the server's finished_at - created_at
#   stagehand-treeless: the same with `mirror = "treeless"` (src/pipeline/partial.rs)
#   stagehand-archive: the full mirror with `export_ignore = true`: the release holds what
#                  `git archive` writes (shell-full's release, like for like; symfony: 5,488
#                  files), where stagehand and shell-shallow write the whole tree (13,139)
#   baseline:      only with STAGEHAND_BASELINE=<another stagehand binary>, run the same
#                  way (e.g. a build of main before background deletion)
# Between two tools: their scratch trees are deleted, `sync`, then SETTLE seconds of
# quiet, so one tool's deletions do not stall the next one's writes.
#
# Scratch goes under BENCH_TMPDIR (default: target/ of this checkout, i.e. the disk
# the checkout is on); tmpfs is refused unless ALLOW_TMPFS=1. RUNS (3), REPEATS (3),
# SETTLE (10), TOOLS (which of the above, space-separated), FETCH_WITH (stagehand's fetch_with, default auto). Medians reported, with the load average at start and end.
#
# FS=xfs runs the same on a loop-mounted XFS image with reflinks (`mkfs.xfs -m
# reflink=1`, a 4 GB sparse file under BENCH_TMPDIR), results in results/real_repo-xfs$OUT_SUFFIX/;
# it needs root and is skipped with a message otherwise.
set -euo pipefail
SRC=${1:-}
BENCH_TMPDIR=${BENCH_TMPDIR:-$(cd "$(dirname "$0")/.." && pwd)/target}
mkdir -p "$BENCH_TMPDIR"
if [[ ${FS:-} == xfs ]]; then
    if [[ $(id -u) != 0 ]]; then
        echo "FS=xfs needs root to loop-mount an XFS image: skipped" >&2
        exit 0
    fi
    command -v mkfs.xfs >/dev/null || { echo "mkfs.xfs missing: apt-get install -y xfsprogs" >&2; exit 1; }
    xfs_dir=$(mktemp -d "$BENCH_TMPDIR/xfs-bench.XXXXXX")
    mkdir "$xfs_dir/mnt"
    truncate -s 4G "$xfs_dir/xfs.img"
    mkfs.xfs -q -f -m reflink=1 "$xfs_dir/xfs.img"
    mount -o loop "$xfs_dir/xfs.img" "$xfs_dir/mnt"
    trap 'umount "$xfs_dir/mnt" && rm -rf "$xfs_dir"' EXIT
    status=0
    FS= OUT_SUFFIX=-xfs${OUT_SUFFIX:-} BENCH_TMPDIR="$xfs_dir/mnt" "$0" "$@" || status=$?
    exit "$status"
fi
export BENCH_TMPDIR
source "$(dirname "$0")/lib/common.sh"

if [[ -z $SRC || ! -d $SRC/objects ]]; then
    die "usage: bench/real_repo.sh /path/to/a/bare/clone.git
make one once:  git clone --bare https://github.com/symfony/symfony /var/tmp/symfony.git"
fi
SRC=$(cd "$SRC" && pwd)
fs=$(stat -f -c %T "$BENCH_TMPDIR")
if [[ $fs == tmpfs && ${ALLOW_TMPFS:-0} != 1 ]]; then
    die "$BENCH_TMPDIR is tmpfs: this benchmark measures the disk (set BENCH_TMPDIR or ALLOW_TMPFS=1)"
fi
need git git
need tar tar
need_stagehand

RUNS=${RUNS:-3}
REPEATS=${REPEATS:-3}
SETTLE=${SETTLE:-10}
OUT="$RESULTS/real_repo${OUT_SUFFIX:-}"
mkdir -p "$OUT"
rm -f "$OUT"/*
machine_line | tee "$OUT/machine.txt" >&2
printf 'scratch: %s (%s, %s)\n' "$BENCH_TMPDIR" "$fs" \
    "$(findmnt -n -o OPTIONS --target "$BENCH_TMPDIR" 2>/dev/null || echo '?')" | tee -a "$OUT/machine.txt" >&2

export BENCH_WEBHOOK_SECRET="bench-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export STAGEHAND_API_TOKEN="bench-token"
GIT_ID=(-c user.name=bench -c user.email=bench@example.com)

# ---- the origin: alternates onto the clone, plus one-file commits ----------------------
ORIGIN_DIR="$TMP/srv/origin.git"
git init -q --bare "$ORIGIN_DIR"
# What GitHub allows, for the treeless mirror: filters and objects asked for by id.
git --git-dir "$ORIGIN_DIR" config uploadpack.allowFilter true
git --git-dir "$ORIGIN_DIR" config uploadpack.allowAnySHA1InWant true
echo "$SRC/objects" >"$ORIGIN_DIR/objects/info/alternates"
C0=$(git --git-dir "$SRC" rev-parse 'HEAD^{commit}')
FILES=$(git --git-dir "$SRC" ls-tree -r --name-only "$C0" | wc -l)
COMMITS=("$C0")
prev=$C0
for k in $(seq "$REPEATS"); do
    export GIT_INDEX_FILE="$TMP/index"
    git --git-dir "$ORIGIN_DIR" read-tree "$prev"
    blob=$( { git --git-dir "$ORIGIN_DIR" cat-file blob "$prev:README.md" 2>/dev/null || true; echo "bench line $k"; } \
        | git --git-dir "$ORIGIN_DIR" hash-object -w --stdin)
    git --git-dir "$ORIGIN_DIR" update-index --add --cacheinfo "100644,$blob,README.md"
    tree=$(git --git-dir "$ORIGIN_DIR" write-tree)
    unset GIT_INDEX_FILE
    prev=$(GIT_AUTHOR_DATE=2026-01-01T00:00:0${k}Z GIT_COMMITTER_DATE=2026-01-01T00:00:0${k}Z \
        git --git-dir "$ORIGIN_DIR" "${GIT_ID[@]}" commit-tree -p "$prev" -m "bench: one file changed ($k)" "$tree")
    COMMITS+=("$prev")
done
rm -f "$TMP/index"
set_main() { git --git-dir "$ORIGIN_DIR" update-ref refs/heads/main "$1"; }
DAEMON_PORT=$(free_port)
git daemon --reuseaddr --listen=127.0.0.1 --port="$DAEMON_PORT" --base-path="$TMP/srv" \
    --export-all "$TMP/srv" >"$TMP/git-daemon.log" 2>&1 &
track $!
wait_port "$DAEMON_PORT"
ORIGIN="git://127.0.0.1:$DAEMON_PORT/origin.git"
printf 'repository: %s at %s, %s files, %s commits; origin %s (git daemon)\n' "$SRC" "$C0" "$FILES" \
    "$(git --git-dir "$SRC" rev-list --count "$C0")" "$ORIGIN" | tee "$OUT/repository.txt" >&2

for k in $(seq 0 "$REPEATS"); do
    args=(--ref refs/heads/main --after "${COMMITS[$k]}")
    ((k > 0)) && args+=(--before "${COMMITS[$((k - 1))]}")
    "$PY" "$HELPER" payload "$REPO_DIR/webhook-samples/push.json" "$TMP/push-$k.json" "${args[@]}"
done

now_ns() { date +%s%N; }
settle() {
    rm -rf "$1"
    sync
    sleep "$SETTLE"
}

shell_tool() {
    local mode=$1 i=$2 root="$TMP/$1-$2" t0 t1 k kind
    mkdir -p "$root"
    for k in $(seq 0 "$REPEATS"); do
        kind=repeat
        ((k == 0)) && kind=first
        set_main "${COMMITS[$k]}"
        t0=$(now_ns)
        bash "$BENCH_DIR/lib/shell-deploy-real.sh" "$mode" "$root" "$ORIGIN" 2 "$OUT/shell-$mode-$kind-stages.txt"
        t1=$(now_ns)
        awk -v n="$((t1 - t0))" 'BEGIN {printf "%.1f\n", n/1e6}' >>"$OUT/shell-$mode-$kind-ms.txt"
        [[ $(cat "$root/current/REVISION") == "${COMMITS[$k]}" ]] || die "shell $mode: current is not C$k"
    done
    settle "$root"
}

# stagehand's work after a deploy, off the deploy's clock: the history a shallow first
# fetch left out (treeless), the spare tree written ahead, the reaper's deletions. A push
# every few minutes never meets it; the benchmark waits for it (up to 120 s) so that one
# deploy's background does not land in the next one's figure, and records how long it
# took in <label>-background-ms.txt (printed in the summary).
wait_background() {
    local dir=$1 out=$2 t0 t1 rel="$1/srv/production/releases"
    t0=$(now_ns)
    for _ in $(seq 1200); do
        if [[ ! -e $dir/state/mirrors/shop.git/shallow ]] \
            && ! compgen -G "$rel/.preparing-*" >/dev/null \
            && ! compgen -G "$rel/.removing-*" >/dev/null; then
            break
        fi
        sleep 0.1
    done
    t1=$(now_ns)
    awk -v n="$((t1 - t0))" 'BEGIN {printf "%.1f\n", n/1e6}' >>"$out"
}

stagehand_tool() {
    local label=$1 binary=$2 i=$3 mirror=$4 export_ignore=${5:-false} dir="$TMP/$1-$3" k kind
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
fetch_with = "${FETCH_WITH:-auto}"
keep_releases = 1
export_ignore = $export_ignore
$([[ $mirror == full ]] || echo "mirror = \"$mirror\"")

[apps.shop.environments.production]
branch = "main"
TOML
    STAGEHAND=$binary start_stagehand "$dir/stagehand.toml" "$dir"
    for k in $(seq 0 "$REPEATS"); do
        kind=repeat
        ((k == 0)) && kind=first
        set_main "${COMMITS[$k]}"
        run "$PY" "$HELPER" deploy "$SH_URL" shop "$BENCH_WEBHOOK_SECRET" "$TMP/push-$k.json" "$STAGEHAND_API_TOKEN" 20 600 \
            | tee -a "$OUT/$label-$kind.jsonl" >&2
        [[ $(cat "$dir/srv/production/current/REVISION") == "${COMMITS[$k]}" ]] || die "$label: current is not C$k"
        if [[ $export_ignore == true && $k == 0 ]]; then
            # Like for like: the release holds the files `git archive` writes (+ REVISION).
            local want have
            want=$(git --git-dir "$ORIGIN_DIR" archive "${COMMITS[0]}" | tar -t | grep -vc '/$')
            have=$(cd "$dir/srv/production/current/" && find . \( -type f -o -type l \) ! -path ./REVISION | wc -l)
            [[ $want == "$have" ]] || die "$label: the release holds $have files, git archive writes $want"
        fi
        wait_background "$dir" "$OUT/$label-background-ms.txt"
    done
    stop_pid "$SH_PID"
    cp "$dir/stagehand.stderr" "$OUT/$label-stderr-round$i.txt"
    settle "$dir"
}

TOOLS=(${TOOLS:-shell-full stagehand stagehand-treeless shell-shallow stagehand-archive})
[[ -n ${STAGEHAND_BASELINE:-} && " ${TOOLS[*]} " != *" baseline "* ]] && TOOLS+=(baseline)
for i in $(seq "$RUNS"); do
    log "round $i/$RUNS (load $(cut -d' ' -f1-3 /proc/loadavg))"
    n=${#TOOLS[@]}
    for j in $(seq 0 $((n - 1))); do
        tool=${TOOLS[$(((i - 1 + j) % n))]}
        log "  $tool"
        case $tool in
            shell-full) shell_tool full "$i" ;;
            shell-shallow) shell_tool shallow "$i" ;;
            stagehand) stagehand_tool stagehand "$STAGEHAND" "$i" full ;;
            stagehand-treeless) stagehand_tool stagehand-treeless "$STAGEHAND" "$i" treeless ;;
            stagehand-archive) stagehand_tool stagehand-archive "$STAGEHAND" "$i" full true ;;
            baseline) stagehand_tool baseline "$STAGEHAND_BASELINE" "$i" "${BASELINE_MIRROR:-full}" ;;
        esac
    done
done
printf 'load average at end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/machine.txt" >&2

# ---- summary ---------------------------------------------------------------------------
"$PY" - "$OUT" "$REPEATS" <<'PY' | tee "$OUT/summary.txt"
import json, os, statistics, sys
out, repeats = sys.argv[1], int(sys.argv[2])
med = statistics.median
# Repeat deploy k (1-based) of a round is line (k - 1) of each block of `repeats` lines.
# From k = 3 on (the 4th deploy) every tool deletes, and stagehand recycles, a release
# retired by the deploy before: the steady state of an environment deployed often.
STEADY = 3
def steady(xs): return [x for i, x in enumerate(xs) if i % repeats + 1 >= STEADY]
def nums(p, kind): 
    xs = [float(x) for x in open(p).read().split()]
    return steady(xs) if kind == "steady" else xs
def jl(p, kind):
    xs = [json.loads(l) for l in open(p) if l.strip()]
    return steady(xs) if kind == "steady" else xs
def stamps(p, kind):
    rows = [[float(x) for x in l.split()] for l in open(p) if l.strip()]
    if kind == "steady": rows = steady(rows)
    names = ("fetch", "write", "switch", "cleanup")
    return {k: med([(t[i + 1] - t[i]) * 1000 for t in rows]) for i, k in enumerate(names)}
res = {}
for kind in ("first", "repeat", "steady"):
    src = "repeat" if kind == "steady" else kind
    if kind == "steady" and repeats < STEADY:
        break
    full = med(nums(f"{out}/shell-full-{src}-ms.txt", kind))
    shallow = med(nums(f"{out}/shell-shallow-{src}-ms.txt", kind))
    rows = [("shell-full", full, stamps(f"{out}/shell-full-{src}-stages.txt", kind)),
            ("shell-shallow", shallow, stamps(f"{out}/shell-shallow-{src}-stages.txt", kind))]
    for label in ("stagehand", "stagehand-treeless", "stagehand-archive", "baseline"):
        p = f"{out}/{label}-{src}.jsonl"
        if os.path.exists(p):
            d = jl(p, kind)
            rows.append((label, med([x["server_ms"] for x in d]),
                         {k: med([x["stages"].get(k) or 0 for x in d]) for k in d[0]["stages"]}))
    n = len(nums(f"{out}/shell-full-{src}-ms.txt", kind))
    what = f"repeat deploys {STEADY}..{repeats} of each round" if kind == "steady" else f"{kind} deploy"
    print(f"{what} (median of {n}): ms, ratio to shell-full, ratio to shell-shallow; stages")
    res[kind] = {}
    for label, ms, stages in rows:
        print(f"  {label:18}{ms:>9.0f}{ms / full:>7.2f}×{ms / shallow:>7.2f}×   " +
              ", ".join(f"{k} {v:.0f}" for k, v in stages.items()))
        res[kind][label] = {"ms": ms, "vs_full": ms / full, "vs_shallow": ms / shallow, "stages_ms": stages}
for label in ("stagehand", "stagehand-treeless", "stagehand-archive", "baseline"):
    p = f"{out}/{label}-background-ms.txt"
    if os.path.exists(p):
        xs = [float(x) for x in open(p).read().split()]
        print(f"  {label}: background work after each deploy (waited for, not in the figures): "
              f"median {med(xs):.0f} ms, max {max(xs):.0f} ms")
        res.setdefault("background", {})[label] = {"median_ms": med(xs), "max_ms": max(xs)}
json.dump(res, open(f"{out}/summary.json", "w"), indent=2)
PY
