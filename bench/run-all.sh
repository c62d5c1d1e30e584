#!/usr/bin/env bash
# Runs every benchmark once, in order, and writes bench/results/ (raw outputs) and
# bench/results/table.md (the README's table). About 6 minutes on 2 cores once the
# release binary and the checkout bench are built.
#
#   bench/run-all.sh
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
RESULTS=${RESULTS:-$BENCH_DIR/results}
export RESULTS

command -v cargo >/dev/null || { echo "cargo is missing: install Rust (rustup)" >&2; exit 1; }
for t in wrk:wrk webhook:webhook git:git curl:curl python3:python3; do
    command -v "${t%%:*}" >/dev/null ||
        { echo "${t%%:*} is missing: apt-get update && apt-get install -y ${t#*:}" >&2; exit 1; }
done

cd "$REPO_DIR"
mkdir -p "$RESULTS/checkout"
start=$(date +%s)
{
    echo "commit: $(git rev-parse HEAD)$(git diff --quiet -- src Cargo.toml || echo ' (src modified)')"
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), kernel $(uname -r)"
    echo "memory: $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo); scratch: ${BENCH_TMPDIR:-/dev/shm} (tmpfs)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "tools: $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(webhook -version), $(git --version), $(python3 --version)"
} | tee "$RESULTS/run.txt"

echo "== cargo build --release" >&2
cargo build --release -j2 2>&1 | tail -1
echo "== intake" >&2
"$BENCH_DIR/intake.sh"
echo "== intake, 16 connections" >&2
CONNECTIONS=16 "$BENCH_DIR/intake.sh"
echo "== intake, rejection path (bad signatures)" >&2
MODE=reject "$BENCH_DIR/intake.sh"
echo "== push to live" >&2
"$BENCH_DIR/push_to_live.sh"
echo "== log latency" >&2
"$BENCH_DIR/log_latency.sh"
echo "== memory" >&2
"$BENCH_DIR/memory.sh"
echo "== checkout (cargo bench --bench checkout)" >&2
cargo bench -j2 --bench checkout 2>&1 | grep -v -e '^\s*Compiling' -e '^\s*Finished' -e '^\s*Running' \
    | tee "$RESULTS/checkout/checkout.txt"

echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); took $(( $(date +%s) - start )) s" | tee -a "$RESULTS/run.txt"
python3 "$BENCH_DIR/lib/table.py" "$RESULTS" | tee "$RESULTS/table.md"
