# Shared by the bench/*.sh scripts: sourced, never run. Sets up a scratch directory,
# a trap that stops every process a script started, and small helpers.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
STAGEHAND=${STAGEHAND:-$REPO_DIR/target/release/stagehand}
RESULTS=${RESULTS:-$BENCH_DIR/results}
PY=${PYTHON:-python3}
HELPER="$BENCH_DIR/lib/helper.py"

# Scratch on tmpfs when there is one (like benches/checkout.rs), so the figures measure
# git, syscalls and the servers rather than the disk. BENCH_TMPDIR overrides.
if [[ -z "${BENCH_TMPDIR:-}" ]]; then
    if [[ -d /dev/shm && -w /dev/shm ]]; then BENCH_TMPDIR=/dev/shm; else BENCH_TMPDIR=${TMPDIR:-/tmp}; fi
fi
TMP=$(mktemp -d "$BENCH_TMPDIR/stagehand-bench.XXXXXX")
STARTED_PIDS=()

# Stops what this script started (by pid: TERM, up to 5 s, then KILL), removes $TMP.
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        local i
        for i in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# need TOOL APT_PACKAGE
need() {
    command -v "$1" >/dev/null 2>&1 ||
        die "$1 is missing: apt-get update && apt-get install -y $2"
}

need_stagehand() {
    [[ -x "$STAGEHAND" ]] ||
        die "$STAGEHAND is missing: run 'cargo build --release -j2' in $REPO_DIR (or set STAGEHAND=)"
}

# Remembers a background process to stop at exit.
track() { STARTED_PIDS+=("$1"); }
untrack() {
    local keep=() p
    for p in "${STARTED_PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
    STARTED_PIDS=("${keep[@]}")
}

# run CMD...: runs CMD in the background and waits for it. bash runs a trap only once
# the foreground command returns, so a 15 s wrk would delay the cleanup on INT/TERM;
# `wait` is interrupted at once. Returns CMD's status.
run() {
    local pid rc=0
    "$@" &
    pid=$!
    track "$pid"
    wait "$pid" || rc=$?
    untrack "$pid"
    return "$rc"
}

# Stops one tracked process now (TERM, then KILL after 5 s).
stop_pid() {
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# A free TCP port on 127.0.0.1 (bound and released: fine for a one-machine benchmark).
free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits (bounded) until http://127.0.0.1:PORT answers TCP connects.
wait_port() {
    local port=$1 i
    for i in $(seq 100); do
        if "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.2).close()' "$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    die "nothing listens on 127.0.0.1:$port after 10 s"
}

# start_stagehand CONFIG OUTDIR: starts `stagehand serve`, sets SH_PID and SH_URL.
start_stagehand() {
    local config=$1 out=$2 i
    # Created here: the background job opens them only once it runs.
    : >"$out/stagehand.stdout"
    : >"$out/stagehand.stderr"
    "$STAGEHAND" serve --config "$config" >"$out/stagehand.stdout" 2>"$out/stagehand.stderr" &
    SH_PID=$!
    track "$SH_PID"
    SH_URL=
    for i in $(seq 100); do
        SH_URL=$(sed -n 's/^stagehand listening on //p' "$out/stagehand.stdout" | head -1)
        [[ -n "$SH_URL" ]] && break
        kill -0 "$SH_PID" 2>/dev/null || { cat "$out/stagehand.stderr" >&2; die "stagehand serve exited"; }
        sleep 0.1
    done
    [[ -n "$SH_URL" ]] || die "stagehand did not print its address within 10 s"
}

# RSS of PID in kB (VmRSS), or nothing when it is gone.
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }

# start_rss_sampler PID FILE: every 100 ms appends "<unix ms> <VmRSS> <RssAnon> <RssFile>
# <RssShmem>" (kB) to FILE until PID ends or stop_rss_sampler is called. Sets SAMPLER_PID.
# (Pages of files on tmpfs that the process maps, such as a git pack, are RssShmem.)
start_rss_sampler() {
    local pid=$1 file=$2
    (
        while kill -0 "$pid" 2>/dev/null; do
            r=$(awk '/^(VmRSS|RssAnon|RssFile|RssShmem):/ {printf "%s ", $2}' "/proc/$pid/status" 2>/dev/null) || break
            [[ -n "$r" ]] && printf '%s %s\n' "$(date +%s%3N)" "$r"
            sleep 0.1
        done
    ) >>"$file" &
    SAMPLER_PID=$!
    track "$SAMPLER_PID"
}
stop_rss_sampler() { stop_pid "$SAMPLER_PID"; }

# Peak kB in a sampler file.
peak_kb() { awk 'BEGIN {m=0} $2>m {m=$2} END {print m}' "$1"; }

kb_to_mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k/1024}'; }

machine_line() {
    printf 'machine: %s cores, %s, kernel %s; load average at start: %s\n' \
        "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')" \
        "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}
