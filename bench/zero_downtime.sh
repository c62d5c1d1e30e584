#!/usr/bin/env bash
# Zero-downtime check for environments that `run` (issue 12).
#
# A client requests the app in a loop through its live port (read from
# <state_dir>/routes.json before every request) while stagehand does, back to back:
# DEPLOYS deploys, a deploy whose health check fails, a rollback, a restart, and a
# restart of stagehand itself (SIGTERM, start again: the app must keep serving and be
# adopted). It prints requests made and failed, and checks that every answer came from
# the release routes.json named live when the request was sent (the body is the
# commit, compared with that release's REVISION).
#
# Everything binds to 127.0.0.1. The scratch dir (/dev/shm or BENCH_TMPDIR) and every
# process started here (stagehand, the app processes, the client) are removed at exit.
#
# Knobs: DEPLOYS (20), STAGEHAND (binary; default target/release/stagehand, else
# target/debug/stagehand).
set -euo pipefail

cd "$(dirname "$0")/.."
DEPLOYS=${DEPLOYS:-20}
BIN=${STAGEHAND:-}
if [[ -z "$BIN" ]]; then
  if [[ -x target/release/stagehand ]]; then BIN=$PWD/target/release/stagehand; else
    cargo build -q -j2 && BIN=$PWD/target/debug/stagehand
  fi
fi
command -v python3 >/dev/null || { echo "needs python3: apt-get install -y python3" >&2; exit 2; }

BASE=${BENCH_TMPDIR:-/dev/shm}
WORK=$(mktemp -d "$BASE/run-zero-downtime.XXXXXX")
SERVER_PID=""
CLIENT_PID=""
cleanup() {
  [[ -n "$CLIENT_PID" ]] && kill "$CLIENT_PID" 2>/dev/null || true
  [[ -n "$SERVER_PID" ]] && kill -KILL "$SERVER_PID" 2>/dev/null || true
  # The app processes are their own process-group leaders, recorded in routes.json
  # and in the app log; kill every group still working in our root.
  for proc in /proc/[0-9]*; do
    cwd=$(readlink "$proc/cwd" 2>/dev/null || true)
    if [[ "$cwd" == "$WORK"/* ]]; then
      kill -KILL -- "-$(cut -d' ' -f5 < "$proc/stat" 2>/dev/null || echo 0)" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

export STAGEHAND_API_TOKEN=bench-token
export SHOP_WEBHOOK_SECRET=bench-secret
REPO=$WORK/repo
mkdir -p "$REPO"
git -C "$REPO" init -q -b main
cat > "$REPO/app.py" <<'EOF'
import http.server, os
REV = open("REVISION").read().strip().encode()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        code, body = 200, REV
        if self.path == "/healthz" and os.path.exists("BROKEN"):
            code, body = 500, b"broken"
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
EOF
echo 0 > "$REPO/VERSION"
git -C "$REPO" add -A
git -C "$REPO" -c user.name=bench -c user.email=bench@localhost commit -qm "v0"

cat > "$WORK/stagehand.toml" <<EOF
[server]
listen = "127.0.0.1:0"
state_dir = "$WORK/state"

[apps.shop]
repo = "$REPO"
github = "acme/shop"
secret_env = "SHOP_WEBHOOK_SECRET"
root = "$WORK/srv"
keep_releases = 5
after_release = ["test ! -f FAIL_AFTER"]

[apps.shop.environments.production]
branch = "main"
run = "exec python3 app.py"
stop_timeout = "10s"
health_check = { path = "/healthz", timeout = "20s" }
EOF

start_server() {
  "$BIN" serve --config "$WORK/stagehand.toml" > "$WORK/server.out" 2> "$WORK/server.err" &
  SERVER_PID=$!
  disown "$SERVER_PID"
  for _ in $(seq 200); do
    URL=$(sed -n 's/^stagehand listening on //p' "$WORK/server.out")
    [[ -n "$URL" ]] && return 0
    sleep 0.05
  done
  echo "stagehand did not start:" >&2; cat "$WORK/server.err" >&2; exit 1
}

sh_cli() { "$BIN" "$@" --server "$URL"; }

commit() {
  git -C "$REPO" add -A
  git -C "$REPO" -c user.name=bench -c user.email=bench@localhost commit -qm "$1"
}

deploy() {  # expected status (succeeded/failed), label
  local out status
  if out=$(sh_cli deploy shop production --follow 2>&1); then status=succeeded; else status=failed; fi
  if [[ "$status" != "$1" ]]; then
    echo "$2: expected $1, got: $(tail -n 3 <<<"$out")" >&2; exit 1
  fi
  printf '  %-26s %s\n' "$2" "$(tail -n 1 <<<"$out")"
}

start_server
echo "stagehand $URL, scratch $WORK"
deploy succeeded "first deploy"

python3 - "$WORK" > "$WORK/client.out" <<'EOF' &
import json, os, sys, time, http.client
work = sys.argv[1]
routes_path = os.path.join(work, "state", "routes.json")
releases = os.path.join(work, "srv", "production", "releases")
revision = {}
made = failed = 0
seen = set()
failures = []
stop = os.path.join(work, "stop-client")
while not os.path.exists(stop):
    try:
        with open(routes_path) as f:
            route = json.load(f)["apps"]["shop"]["production"]
    except (OSError, ValueError, KeyError):
        time.sleep(0.01)
        continue
    release = route["release"]
    if release not in revision:
        with open(os.path.join(releases, release, "REVISION")) as f:
            revision[release] = f.read().strip()
    made += 1
    try:
        conn = http.client.HTTPConnection("127.0.0.1", route["port"], timeout=5)
        conn.request("GET", "/")
        answer = conn.getresponse()
        body = answer.read().decode()
        conn.close()
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}")
        if body != revision[release]:
            raise RuntimeError(f"answered {body[:7]} but {release} was live")
        seen.add(body)
    except Exception as e:  # any failure a visitor would see
        failed += 1
        failures.append(f"{time.time():.3f} port {route['port']} ({release}): {e}")
print(json.dumps({"made": made, "failed": failed, "commits_seen": len(seen),
                  "failures": failures[:20]}))
EOF
CLIENT_PID=$!
sleep 0.5

for i in $(seq 1 "$DEPLOYS"); do
  echo "$i" > "$REPO/VERSION"; commit "v$i"
  deploy succeeded "deploy $i/$DEPLOYS"
done

echo broken > "$REPO/BROKEN"; commit "broken health"
deploy failed "deploy with broken health"
git -C "$REPO" rm -q BROKEN; commit "health fixed"

printf '  %-26s %s\n' "rollback" "$(sh_cli rollback shop production --follow 2>&1 | tail -n 1)"
printf '  %-26s %s\n' "restart" "$(sh_cli restart shop production --follow 2>&1 | tail -n 1)"

PID_BEFORE=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["apps"]["shop"]["production"]["pid"])' "$WORK/state/routes.json")
kill -TERM "$SERVER_PID"
while [[ -e /proc/$SERVER_PID ]]; do sleep 0.05; done
SERVER_PID=""
sleep 1   # stagehand is down; the app keeps answering
start_server
sleep 1
PID_AFTER=$(sh_cli status shop --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print([e for e in d["apps"][0]["environments"] if e["name"]=="production"][0]["process"]["pid"])')
printf '  %-26s pid %s before, %s after (%s)\n' "stagehand restart" "$PID_BEFORE" "$PID_AFTER" \
  "$([[ "$PID_BEFORE" == "$PID_AFTER" ]] && echo adopted || echo "NOT adopted")"
echo "$((DEPLOYS + 1))" > "$REPO/VERSION"; commit "after the restart"
deploy succeeded "deploy after the restart"

touch "$WORK/stop-client"
wait "$CLIENT_PID" || true
CLIENT_PID=""
sh_cli stop shop production > /dev/null 2>&1 || true
python3 - "$WORK/client.out" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"requests made {r['made']}, failed {r['failed']}, commits answered {r['commits_seen']}")
for line in r["failures"]:
    print("  failure:", line)
sys.exit(0 if r["failed"] == 0 and r["made"] > 0 else 1)
EOF
