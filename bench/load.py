#!/usr/bin/env python3
"""Load client and checker for bench/load.sh (standard library only).

  load.py send  URL PLAN.json SECRET RESULTS.json [--connections 64]
  load.py drain URL TIMEOUT_S
  load.py check STATE_DB ROOT PLAN.json RESULTS.json [--max-started N] [--max-builds N]

`send` posts every planned delivery (webhook-samples/push.json with `ref`, `before`,
`after`, `head_commit.id` and `repository.full_name` rewritten, signed with the app's
secret, each with its own X-GitHub-Delivery) from N threads, each on one keep-alive
connection, in plan order, and records each answer. `drain` waits until /metrics shows
no queued and no running deploy. `check` reads the SQLite file (read-only, after the
server stopped) and the environments' directories, prints what it found, and exits 1
when a check fails.
"""

import hashlib
import hmac
import http.client
import json
import os
import sqlite3
import sys
import threading
import time
import urllib.parse
from collections import Counter

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "webhook-samples", "push.json")
REQUEST_TIMEOUT_S = 30


def build_requests(plan, secret):
    with open(SAMPLE, "rb") as f:
        sample = json.load(f)
    requests = []
    for item in plan["deliveries"]:
        body = json.loads(json.dumps(sample))
        body["ref"] = "refs/heads/" + item["branch"]
        body["before"] = item["before"]
        body["after"] = item["sha"]
        body["forced"] = False
        body["repository"]["full_name"] = plan["github"]
        body["head_commit"]["id"] = item["sha"]
        body["head_commit"]["message"] = "load " + item["sha"][:7]
        raw = json.dumps(body).encode()
        sig = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        requests.append((item["delivery_id"], raw, sig))
    return requests


def send(url, plan_path, secret, results_path, connections):
    with open(plan_path) as f:
        plan = json.load(f)
    requests = build_requests(plan, secret)
    parsed = urllib.parse.urlparse(url)
    path = "/hooks/" + plan["app"]
    lock = threading.Lock()
    next_index = [0]
    results = [None] * len(requests)

    def worker():
        conn = None
        while True:
            with lock:
                i = next_index[0]
                if i >= len(requests):
                    break
                next_index[0] += 1
            delivery_id, raw, sig = requests[i]
            headers = {
                "Content-Type": "application/json",
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": delivery_id,
                "X-GitHub-Hook-ID": "123456789",
                "X-Hub-Signature-256": sig,
                "User-Agent": "GitHub-Hookshot/load",
            }
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=REQUEST_TIMEOUT_S)
                conn.request("POST", path, body=raw, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                deploy_id = None
                if status == 202:
                    deploy_id = json.loads(data)["deploy"]["id"]
                results[i] = {"delivery_id": delivery_id, "status": status, "deploy_id": deploy_id,
                              "ms": round((time.monotonic() - started) * 1000, 2)}
            except Exception as e:  # a refused or dropped connection counts as an error
                results[i] = {"delivery_id": delivery_id, "status": "error: " + type(e).__name__,
                              "deploy_id": None, "ms": round((time.monotonic() - started) * 1000, 2)}
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies = sorted(r["ms"] for r in results)

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]

    summary = {
        "sent": len(results),
        "seconds": round(elapsed, 2),
        "per_second": round(len(results) / elapsed, 1),
        "statuses": dict(Counter(str(r["status"]) for r in results)),
        "latency_ms": {"p50": pct(50), "p99": pct(99), "max": latencies[-1]},
        "connections": connections,
    }
    with open(results_path, "w") as f:
        json.dump({"summary": summary, "results": results}, f)
    print("sent %(sent)d deliveries in %(seconds)ss (%(per_second)s/s) over %(connections)d connections" % summary)
    print("answers by status: " + ", ".join("%s=%d" % kv for kv in sorted(summary["statuses"].items())))
    print("latency ms: p50 %(p50)s, p99 %(p99)s, max %(max)s" % summary["latency_ms"])


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def drain(url, timeout_s):
    parsed = urllib.parse.urlparse(url)
    deadline = time.monotonic() + timeout_s
    while True:
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        queued = metric(text, "stagehand_queue_depth")
        running = metric(text, "stagehand_running_deploys")
        if queued == 0 and running == 0:
            return
        if time.monotonic() > deadline:
            print("FAIL: still %s queued and %s running after %ss" % (queued, running, timeout_s))
            sys.exit(1)
        time.sleep(0.25)


def check(db_path, root, plan_path, results_path, max_started, max_builds):
    with open(plan_path) as f:
        plan = json.load(f)
    with open(results_path) as f:
        results = json.load(f)["results"]
    failures = []
    statuses = Counter(str(r["status"]) for r in results)
    five_xx = sum(n for s, n in statuses.items() if s.startswith("5"))
    errors = sum(n for s, n in statuses.items() if s.startswith("error"))
    if five_xx or errors:
        failures.append("%d answers were 5xx and %d requests failed" % (five_xx, errors))
    if statuses.get("202", 0) != len(results):
        failures.append("expected every delivery to be 202, got %s" % dict(statuses))

    db = sqlite3.connect("file:%s?mode=ro" % db_path, uri=True)
    rows = dict(
        (delivery_id, (outcome, deploy_id))
        for delivery_id, outcome, deploy_id in db.execute(
            "SELECT delivery_id, outcome, deploy_id FROM deliveries WHERE app = ?", (plan["app"],)))
    deploy_ids = set(r[0] for r in db.execute("SELECT id FROM deploys"))
    missing = 0
    for r in results:
        if r["status"] != 202:
            continue
        row = rows.get(r["delivery_id"])
        if row is None or row[0] != "deploy" or str(row[1]) != str(r["deploy_id"]) or row[1] not in deploy_ids:
            missing += 1
    accepted = sum(1 for r in results if r["status"] == 202)
    print("202'd deliveries with their delivery and deploy rows: %d of %d" % (accepted - missing, accepted))
    if missing:
        failures.append("%d accepted deliveries have no (or the wrong) row" % missing)

    by_status = dict(db.execute("SELECT status, count(*) FROM deploys GROUP BY status").fetchall())
    print("deploys by status: " + ", ".join("%s=%d" % kv for kv in sorted(by_status.items())))
    builds = db.execute("SELECT count(DISTINCT deploy_id) FROM stages WHERE name = 'build'").fetchone()[0]
    fetches = db.execute("SELECT count(DISTINCT deploy_id) FROM stages WHERE name = 'fetch'").fetchone()[0]
    reasons = db.execute(
        "SELECT substr(reason, 1, 40), count(*) FROM deploys WHERE status = 'skipped' GROUP BY 1").fetchall()
    envs = len(plan["branches"])
    commits = sum(len(shas) for shas in plan["branches"].values())
    print("deploys started (fetch stage): %d of %d deliveries (bound %d); builds run (build stage): %d "
          "for %d environments (bound %d; %d distinct commits were pushed); superseded %d; skipped %d"
          % (fetches, len(results), max_started, builds, envs, max_builds, commits,
             by_status.get("superseded", 0), by_status.get("skipped", 0)))
    per_env = db.execute(
        "SELECT d.environment, count(DISTINCT s.deploy_id) FROM stages s JOIN deploys d ON d.id = s.deploy_id "
        "WHERE s.name = 'build' GROUP BY d.environment ORDER BY d.environment").fetchall()
    print("builds per environment: " + ", ".join("%s=%d" % row for row in per_env))
    twice = db.execute(
        "SELECT d.environment, d.commit_sha, count(DISTINCT s.deploy_id) FROM stages s "
        "JOIN deploys d ON d.id = s.deploy_id WHERE s.name = 'build' "
        "GROUP BY d.environment, d.commit_sha HAVING count(DISTINCT s.deploy_id) > 1").fetchall()
    print("commits built more than once in one environment: %d" % len(twice))
    for reason, n in reasons:
        print("  skipped because %r…: %d" % (reason, n))
    if fetches > max_started:
        failures.append("%d deploys started for %d deliveries: queued pushes did not coalesce"
                        % (fetches, len(results)))
    if builds > max_builds:
        failures.append("%d builds ran for %d environments (bound %d)" % (builds, envs, max_builds))
    if twice:
        failures.append("commits built twice in one environment: %s" % twice[:3])
    bad = {s: n for s, n in by_status.items() if s not in ("succeeded", "superseded", "skipped")}
    if bad:
        failures.append("deploys ended other than succeeded/superseded/skipped: %s" % bad)
        for row in db.execute(
                "SELECT id, environment, status, reason FROM deploys WHERE status NOT IN "
                "('succeeded', 'superseded', 'skipped') ORDER BY id LIMIT 5"):
            print("  %s" % (row,))

    live_ok = 0
    for env, branch in sorted(plan["environments"].items()):
        newest = plan["branches"][branch][-1]
        try:
            with open(os.path.join(root, env, "current", "REVISION")) as f:
                revision = f.read().strip()
        except OSError as e:
            revision = "<%s>" % e.strerror
        if revision == newest:
            live_ok += 1
        else:
            failures.append("%s: live %s, newest pushed %s" % (env, revision[:12], newest[:12]))
    print("environments with their newest commit live: %d of %d" % (live_ok, envs))

    if failures:
        for f in failures:
            print("FAIL: " + f)
        sys.exit(1)
    print("load: all checks passed")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "send":
        connections = int(argv[argv.index("--connections") + 1]) if "--connections" in argv else 64
        send(argv[2], argv[3], argv[4], argv[5], connections)
    elif cmd == "drain":
        drain(argv[2], float(argv[3]))
    elif cmd == "check":
        max_started = int(argv[argv.index("--max-started") + 1]) if "--max-started" in argv else 100
        max_builds = int(argv[argv.index("--max-builds") + 1]) if "--max-builds" in argv else 40
        check(argv[2], argv[3], argv[4], argv[5], max_started, max_builds)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
