#!/usr/bin/env bash
# Webhook intake: stagehand vs adnanh/webhook on the same machine, in the same run.
#
# Both verify the HMAC-SHA256 signature of webhook-samples/push.json (~10 KB) and
# accept it. stagehand: the push goes to an environment with auto_deploy = false, so
# the whole intake path runs (verify, parse, route, one SQLite transaction writing
# the delivery and a `skipped` deploy row, 202) and no build starts. webhook: a
# `payload-hmac-sha256` rule on X-Hub-Signature-256 and `/bin/true` as the command.
#
# Load: wrk, 64 connections, 2 threads, a unique X-GitHub-Delivery per request;
# 3 s warm-up, then 15 s measured, per tool. Also idle RSS and peak RSS under load.
#
#   bench/intake.sh            (DURATION=15 WARMUP=3 CONNECTIONS=64 THREADS=2 to change)
#   MODE=reject bench/intake.sh   the rejection path: every request carries a wrong
#                                 signature and must get 401 (results/intake-reject-cN/)
#   Any CONNECTIONS other than 64 writes results/intake-accept-cN/ instead of results/intake/.
set -euo pipefail
source "$(dirname "$0")/lib/common.sh"

need wrk wrk
need webhook webhook
need curl curl
need_stagehand

DURATION=${DURATION:-15}
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
MODE=${MODE:-accept}
[[ $MODE == accept || $MODE == reject ]] || die "MODE must be accept or reject"
if [[ $MODE == accept && $CONNECTIONS == 64 ]]; then
    OUT="$RESULTS/intake"
else
    OUT="$RESULTS/intake-$MODE-c$CONNECTIONS"
fi
mkdir -p "$OUT"
rm -f "$OUT"/*

machine_line | tee "$OUT/machine.txt" >&2

SECRET="bench-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
BODY="$REPO_DIR/webhook-samples/push.json"
SIG="sha256=$("$PY" "$HELPER" sign "$SECRET" "$BODY")"
LOAD_SIG=$SIG
if [[ $MODE == reject ]]; then
    LOAD_SIG="sha256=$(printf '0%.0s' $(seq 64))"
fi
export BENCH_BODY="$BODY" BENCH_SIG="$LOAD_SIG"
LUA="$BENCH_DIR/lib/post-push.lua"

# ---- stagehand --------------------------------------------------------------------
mkdir -p "$TMP/sh/state" "$TMP/sh/srv"
cat >"$TMP/sh/stagehand.toml" <<TOML
[server]
listen = "127.0.0.1:0"
reconcile_interval = "0"
state_dir = "$TMP/sh/state"
shutdown_grace = "1s"

[apps.shop]
repo = "$TMP/sh/never-fetched.git"
github = "acme/shop"
secret_env = "BENCH_WEBHOOK_SECRET"
root = "$TMP/sh/srv"

[apps.shop.environments.staging]
branch = "develop"
auto_deploy = false
TOML
export BENCH_WEBHOOK_SECRET="$SECRET" STAGEHAND_API_TOKEN="bench-token"

# ---- adnanh/webhook ---------------------------------------------------------------
WH_PORT=$(free_port)
cat >"$TMP/hooks.json" <<JSON
[
  {
    "id": "shop",
    "execute-command": "/bin/true",
    "response-message": "ok",
    "trigger-rule-mismatch-http-response-code": 401,
    "trigger-rule": {
      "match": {
        "type": "payload-hmac-sha256",
        "secret": "$SECRET",
        "parameter": { "source": "header", "name": "X-Hub-Signature-256" }
      }
    }
  }
]
JSON

# check_once NAME URL: one good delivery must be 2xx, one with a bad signature must not.
check_once() {
    local name=$1 url=$2 good bad
    good=$(curl -sS -o "$OUT/$name-check-good.txt" -w '%{http_code}' -X POST "$url" \
        -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
        -H "X-GitHub-Delivery: check-good-$name" -H 'X-GitHub-Hook-ID: 123456789' \
        -H "X-Hub-Signature-256: $SIG" --data-binary @"$BODY")
    bad=$(curl -sS -o "$OUT/$name-check-bad.txt" -w '%{http_code}' -X POST "$url" \
        -H 'Content-Type: application/json' -H 'X-GitHub-Event: push' \
        -H "X-GitHub-Delivery: check-bad-$name" -H 'X-GitHub-Hook-ID: 123456789' \
        -H "X-Hub-Signature-256: sha256=$(printf '0%.0s' $(seq 64))" --data-binary @"$BODY")
    log "$name: signed delivery -> $good, bad signature -> $bad"
    [[ $good == 2* ]] || die "$name refused a correctly signed delivery ($good): $(cat "$OUT/$name-check-good.txt")"
    [[ $bad != 2* ]] || die "$name accepted a bad signature ($bad)"
}

# load NAME URL PID: warm-up, measured run, RSS idle/peak.
load() {
    local name=$1 url=$2 pid=$3
    sleep 1
    rss_kb "$pid" >"$OUT/$name-rss-idle-kb.txt"
    check_once "$name" "$url"
    start_rss_sampler "$pid" "$OUT/$name-rss-samples.txt"
    log "$name: warm-up ${WARMUP}s"
    run env BENCH_RUN="warm" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$LUA" "$url" >"$OUT/$name-warmup.txt"
    log "$name: measured ${DURATION}s"
    run env BENCH_RUN="run" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 5s --latency -s "$LUA" "$url" \
        >"$OUT/$name-wrk.txt"
    stop_rss_sampler
    rss_kb "$pid" >"$OUT/$name-rss-after-kb.txt"
    "$PY" "$HELPER" wrk "$OUT/$name-wrk.txt" >"$OUT/$name-wrk.json"
    cat "$OUT/$name-wrk.txt" >&2
}

start_stagehand "$TMP/sh/stagehand.toml" "$TMP/sh"
load stagehand "$SH_URL/hooks/shop" "$SH_PID"
curl -sS "$SH_URL/metrics" >"$OUT/stagehand-metrics.txt"
stop_pid "$SH_PID"
cp "$TMP/sh/stagehand.stderr" "$OUT/stagehand-stderr.txt"

webhook -hooks "$TMP/hooks.json" -ip 127.0.0.1 -port "$WH_PORT" -http-methods POST \
    >"$TMP/webhook.log" 2>&1 &
WH_PID=$!
track "$WH_PID"
wait_port "$WH_PORT"
load webhook "http://127.0.0.1:$WH_PORT/hooks/shop" "$WH_PID"
stop_pid "$WH_PID"
tail -n 20 "$TMP/webhook.log" >"$OUT/webhook-log-tail.txt"

# ---- summary ------------------------------------------------------------------------
"$PY" - "$OUT" "$MODE" <<'PY' | tee "$OUT/summary.txt"
import json, re, sys, os
out, mode = sys.argv[1], sys.argv[2]
def rd(name): return json.load(open(f"{out}/{name}-wrk.json"))
def kb(path):
    try: return int(open(path).read().split()[0])
    except Exception: return 0
def peak(path):
    try: return max(int(l.split()[1]) for l in open(path) if l.strip())
    except Exception: return 0
s, w = rd("stagehand"), rd("webhook")
metrics = open(f"{out}/stagehand-metrics.txt").read()
accepted = sum(int(float(v)) for v in re.findall(r'deliveries_total\{[^}]*result="accepted"[^}]*\}\s+(\S+)', metrics))
dups = sum(int(float(v)) for v in re.findall(r'deliveries_total\{[^}]*result="duplicate"[^}]*\}\s+(\S+)', metrics))
res = {
  "stagehand": {**s, "rss_idle_kb": kb(f"{out}/stagehand-rss-idle-kb.txt"), "rss_peak_kb": peak(f"{out}/stagehand-rss-samples.txt"),
                "rss_after_kb": kb(f"{out}/stagehand-rss-after-kb.txt"), "metrics_accepted": accepted, "metrics_duplicate": dups},
  "webhook": {**w, "rss_idle_kb": kb(f"{out}/webhook-rss-idle-kb.txt"), "rss_peak_kb": peak(f"{out}/webhook-rss-samples.txt"),
              "rss_after_kb": kb(f"{out}/webhook-rss-after-kb.txt")},
}
res["ratio_rps"] = s["rps"] / w["rps"]
json.dump(res, open(f"{out}/summary.json", "w"), indent=2)
print(f"{'':24}{'stagehand':>12}{'webhook':>12}{'ratio':>8}")
print(f"{'requests/s':24}{s['rps']:>12.0f}{w['rps']:>12.0f}{res['ratio_rps']:>8.2f}")
for p in ("p50_ms", "p99_ms"):
    print(f"{p:24}{s[p]:>12.2f}{w[p]:>12.2f}{s[p]/w[p]:>8.2f}")
print(f"{'non-2xx/3xx responses':24}{s['non_2xx_3xx']:>12}{w['non_2xx_3xx']:>12}")
print(f"{'socket errors':24}{s['socket_errors']:>12}{w['socket_errors']:>12}")
for k in ("rss_idle_kb", "rss_peak_kb", "rss_after_kb"):
    print(f"{k.replace('_kb',' MB'):24}{res['stagehand'][k]/1024:>12.1f}{res['webhook'][k]/1024:>12.1f}")
if mode == "reject":
    unauthorized = sum(int(float(v)) for v in re.findall(r'deliveries_total\{[^}]*result="unauthorized"[^}]*\}\s+(\S+)', metrics))
    print(f"stagehand /metrics: {unauthorized} unauthorized, {accepted} accepted (must be 1: the check delivery)")
    # Every measured request must have been refused, by both tools.
    bad = (s['non_2xx_3xx'] != s['requests']) + (w['non_2xx_3xx'] != w['requests']) + s['socket_errors'] + w['socket_errors'] + (accepted != 1)
else:
    print(f"stagehand /metrics: {accepted} accepted, {dups} duplicates (must be 0)")
    bad = s['non_2xx_3xx'] + w['non_2xx_3xx'] + s['socket_errors'] + w['socket_errors'] + dups
sys.exit(1 if bad else 0)
PY
