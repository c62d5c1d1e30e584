#!/usr/bin/env bash
# Reads against history (issue 14 item 3): /metrics and /api/apps at 100 and at
# 100,000 stored deploys (inserted straight into stagehand.db), median of 41 each, and
# a signed push's latency while /metrics is scraped back to back. bench/history.py
# does the work; this wraps it in the scratch-dir and cleanup conventions of bench/.
#
#   bench/history.sh                          the release build
#   BEFORE=/path/to/old/stagehand bench/history.sh   also another build, same run
#   SIZES="100 10000 100000" REQUESTS=41       to change the sizes / samples
#
# Results: bench/results/history/<label>.json and machine.txt.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"
need_stagehand

OUT="$RESULTS/history"
mkdir -p "$OUT"
rm -f "$OUT"/*
machine_line | tee "$OUT/machine.txt" >&2
if [[ -n "${BEFORE:-}" ]]; then
    [[ -x "$BEFORE" ]] || die "BEFORE=$BEFORE is not an executable"
    run "$PY" "$BENCH_DIR/history.py" "$BEFORE" "$TMP" "$OUT/before.json" before
fi
run "$PY" "$BENCH_DIR/history.py" "$STAGEHAND" "$TMP" "$OUT/after.json" after
printf 'load average at the end: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
