#!/usr/bin/env bash
# Unsigned-body flood (issue 11 item 2): 120 connections, each sending 25 MiB - 1 bytes
# with a wrong signature, paced so that they overlap, reopened as soon as they are
# answered; during it, /healthz and a correctly signed push are timed every 0.5 s, and
# the server's RSS is sampled (VmRSS every 50 ms, VmHWM at the end). bench/flood.py
# does the work; this wraps it in the scratch-dir and cleanup conventions of bench/.
#
#   bench/flood.sh                       the release build (target/release/stagehand)
#   BEFORE=/path/to/old/stagehand bench/flood.sh
#                                        also floods another build first, in the same run
#   CONNECTIONS=120 FLOOD_SECONDS=20 PACE_MIB_S=5   to change the load
#
# Results: bench/results/flood/<label>.json and machine.txt.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
need_stagehand

OUT="$RESULTS/flood"
mkdir -p "$OUT"
rm -f "$OUT"/*
machine_line | tee "$OUT/machine.txt" >&2
export CONNECTIONS=${CONNECTIONS:-120} FLOOD_SECONDS=${FLOOD_SECONDS:-20} PACE_MIB_S=${PACE_MIB_S:-5}

if [[ -n "${BEFORE:-}" ]]; then
    [[ -x "$BEFORE" ]] || die "BEFORE=$BEFORE is not an executable"
    mkdir -p "$TMP/before"
    log "flooding the build before the fix: $BEFORE"
    run "$PY" "$BENCH_DIR/flood.py" before "$BEFORE" "$TMP/before" "$OUT" || log "(the old build's run failed)"
fi
mkdir -p "$TMP/after"
log "flooding $STAGEHAND"
run "$PY" "$BENCH_DIR/flood.py" after "$STAGEHAND" "$TMP/after" "$OUT"
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
