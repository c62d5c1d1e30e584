#!/usr/bin/env bash
# The front door under deploys (issue 13).
#
# 1. Zero failed requests: a client requests the app through `stagehand front-door`
#    (Host: shop.localhost) in a loop while stagehand does, back to back: DEPLOYS
#    deploys, a rollback, and a restart of `stagehand serve` itself (SIGTERM, start
#    again). Prints requests made and failed (target 0). A second client meanwhile
#    makes slow requests (the app answers /slow after 2 s), one after another: each
#    deploy's switch lands while one is in flight on the old process, which the drain
#    must let finish (target 0 failed).
# 2. Added latency: N sequential keep-alive GETs to the app's port directly, then the
#    same through the front door; p50/p99 of each and the difference.
# 3. Throughput: wrk (2 threads, 32 connections, 10 s) against the app directly,
#    through the front door, and through nginx (Debian's package, installed here if
#    missing) proxying the same app port with keepalive, in the same run.
#
# Everything binds to 127.0.0.1. The scratch dir and every process started here
# (stagehand, front door, nginx, app processes, the client) are removed at exit.
# Knobs: DEPLOYS (20), N (2000), STAGEHAND (binary; default target/release/stagehand,
# else target/debug/stagehand), THROUGHPUT (1; 0 skips part 3, which needs wrk and nginx).
set -euo pipefail

cd "$(dirname "$0")/.."
DEPLOYS=${DEPLOYS:-20}
N=${N:-2000}
THROUGHPUT=${THROUGHPUT:-1}
BIN=${STAGEHAND:-}
if [[ -z "$BIN" ]]; then
  if [[ -x target/release/stagehand ]]; then BIN=$PWD/target/release/stagehand; else
    cargo build -q -j2 && BIN=$PWD/target/debug/stagehand
  fi
fi
command -v python3 >/dev/null || { echo "needs python3" >&2; exit 2; }
if [[ "$THROUGHPUT" != 0 ]]; then
  command -v wrk >/dev/null || { echo "needs wrk: apt-get install -y wrk (or THROUGHPUT=0)" >&2; exit 2; }
  if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
  fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

BASE=${BENCH_TMPDIR:-/dev/shm}
WORK=$(mktemp -d "$BASE/front-door.XXXXXX")
SERVER_PID="" DOOR_PID="" CLIENT_PID="" SLOW_PID="" NGINX_STARTED=""
cleanup() {
  [[ -n "$CLIENT_PID" ]] && kill "$CLIENT_PID" 2>/dev/null || true
  [[ -n "$SLOW_PID" ]] && kill "$SLOW_PID" 2>/dev/null || true
  [[ -n "$SERVER_PID" ]] && kill -KILL "$SERVER_PID" 2>/dev/null || true
  [[ -n "$DOOR_PID" ]] && kill -KILL "$DOOR_PID" 2>/dev/null || true
  [[ -n "$NGINX_STARTED" ]] && "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -s stop 2>/dev/null || true
  for proc in /proc/[0-9]*; do
    cwd=$(readlink "$proc/cwd" 2>/dev/null || true)
    if [[ "$cwd" == "$WORK"/* ]]; then
      kill -KILL -- "-$(cut -d' ' -f5 < "$proc/stat" 2>/dev/null || echo 0)" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DOOR_PORT=$(free_port)
NGINX_PORT=$(free_port)

export STAGEHAND_API_TOKEN=bench-token
export SHOP_WEBHOOK_SECRET=bench-secret
REPO=$WORK/repo
mkdir -p "$REPO"
git -C "$REPO" init -q -b main
cat > "$REPO/app.py" <<'EOF'
import http.server, os, time
REV = open("REVISION").read().strip().encode()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(2)
        self.send_response(200)
        self.send_header("Content-Length", str(len(REV)))
        self.end_headers()
        self.wfile.write(REV)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
EOF
echo 0 > "$REPO/VERSION"
git -C "$REPO" add -A
git -C "$REPO" -c user.name=bench -c user.email=bench@localhost commit -qm "v0"

cat > "$WORK/stagehand.toml" <<EOF
[server]
listen = "127.0.0.1:0"
state_dir = "$WORK/state"
front_door = "127.0.0.1:$DOOR_PORT"

[apps.shop]
repo = "$REPO"
github = "acme/shop"
secret_env = "SHOP_WEBHOOK_SECRET"
root = "$WORK/srv"
keep_releases = 5

[apps.shop.environments.production]
branch = "main"
run = "exec python3 app.py"
stop_timeout = "10s"
health_check = { path = "/healthz", timeout = "20s" }
hosts = ["shop.localhost"]
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
deploy() {
  local out
  out=$(sh_cli deploy shop production --follow 2>&1) || { echo "$1 failed: $(tail -n 3 <<<"$out")" >&2; exit 1; }
  printf '  %-26s %s\n' "$1" "$(tail -n 1 <<<"$out")"
}
app_port() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["apps"]["shop"]["production"]["port"])' "$WORK/state/routes.json"; }

start_server
echo "stagehand $URL, front door 127.0.0.1:$DOOR_PORT, scratch $WORK, binary $BIN"
deploy "first deploy"
"$BIN" front-door --config "$WORK/stagehand.toml" > "$WORK/door.out" 2> "$WORK/door.err" &
DOOR_PID=$!
disown "$DOOR_PID"
for _ in $(seq 200); do grep -qs listening "$WORK/door.out" && break; sleep 0.05; done

CLIENT_PY=$(cat <<'EOF'
import json, os, sys, time, http.client
work, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
made = failed = 0
seen, failures = set(), []
stop = os.path.join(work, "stop-client")
while not os.path.exists(stop):
    made += 1
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", path, headers={"Host": "shop.localhost"})
        answer = conn.getresponse()
        body = answer.read().decode()
        conn.close()
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}: {body[:60]!r}")
        seen.add(body)
    except Exception as e:
        failed += 1
        failures.append(f"{time.time():.3f}: {e}")
print(json.dumps({"made": made, "failed": failed, "commits_seen": len(seen), "failures": failures[:20]}))
EOF
)
python3 -c "$CLIENT_PY" "$WORK" "$DOOR_PORT" / > "$WORK/client.out" &
CLIENT_PID=$!
python3 -c "$CLIENT_PY" "$WORK" "$DOOR_PORT" /slow > "$WORK/slow.out" &
SLOW_PID=$!
sleep 0.5

for i in $(seq 1 "$DEPLOYS"); do
  echo "$i" > "$REPO/VERSION"; commit "v$i"
  deploy "deploy $i/$DEPLOYS"
done
printf '  %-26s %s\n' "rollback" "$(sh_cli rollback shop production --follow 2>&1 | tail -n 1)"
kill -TERM "$SERVER_PID"
while [[ -e /proc/$SERVER_PID ]]; do sleep 0.05; done
SERVER_PID=""
sleep 2   # stagehand is down; the front door and the app keep answering
start_server
echo "$((DEPLOYS + 1))" > "$REPO/VERSION"; commit "after the restart"
deploy "deploy after serve restart"
sleep 1
touch "$WORK/stop-client"
wait "$CLIENT_PID" || true
wait "$SLOW_PID" || true
CLIENT_PID="" SLOW_PID=""

PORT=$(app_port)
python3 - "$PORT" "$DOOR_PORT" "$N" > "$WORK/latency.out" <<'EOF'
import http.client, sys, time
app, door, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def run(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", "/", headers={"Host": "shop.localhost"})
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6
run(door); run(app)  # warm both
d50, d99 = run(app)
f50, f99 = run(door)
print(f"direct p50 {d50:.0f} us p99 {d99:.0f} us; front door p50 {f50:.0f} us p99 {f99:.0f} us; added p50 {f50-d50:.0f} us p99 {f99-d99:.0f} us")
EOF

if [[ "$THROUGHPUT" != 0 ]]; then
mkdir -p "$WORK/nginx/logs"
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  upstream app { server 127.0.0.1:$PORT; keepalive 32; }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
NGINX_STARTED=1
rps() { wrk -t2 -c32 -d10s -H "Host: shop.localhost" "http://127.0.0.1:$1/" | awk '/Requests\/sec/ {print $2} /Non-2xx|Socket errors/ {print "  (" $0 ")" > "/dev/stderr"}'; }
RPS_APP=$(rps "$PORT")
RPS_DOOR=$(rps "$DOOR_PORT")
RPS_NGINX=$(rps "$NGINX_PORT")
fi

python3 - "$WORK/client.out" "$WORK/slow.out" <<'EOF'
import json, sys
for name, path in (("requests", sys.argv[1]), ("slow requests (2 s each)", sys.argv[2])):
    r = json.load(open(path))
    print(f"{name} made {r['made']}, failed {r['failed']}, commits answered {r['commits_seen']}")
    for line in r["failures"]:
        print("  failure:", line)
EOF
cat "$WORK/latency.out"
if [[ "$THROUGHPUT" != 0 ]]; then
  echo "requests/s (wrk -t2 -c32 -d10s): app direct $RPS_APP, front door $RPS_DOOR, nginx $RPS_NGINX"
fi
python3 -c 'import json,sys; rs=[json.load(open(p)) for p in sys.argv[1:]]; sys.exit(0 if all(r["failed"]==0 and r["made"]>0 for r in rs) else 1)' "$WORK/client.out" "$WORK/slow.out"
