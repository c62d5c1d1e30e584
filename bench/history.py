#!/usr/bin/env python3
"""Do reads grow with history? (issue 14 item 3, issue 11 item 8), standard library only.

  history.py STAGEHAND_BINARY SCRATCH_DIR OUT_FILE [LABEL]

For each size in SIZES (default "100 100000"): a fresh state dir; `serve` is started
once so that it creates its schema, and stopped; then SIZE deploys (3 stages each) are
inserted straight into stagehand.db with Python's sqlite3, spread over `staging` and 20
temporary environments of `preview`, with `production`'s only deploy the very first row
(an environment deployed long ago: the worst case for a newest-first scan). Then the
server is started on it and, over one keep-alive connection each, GET /metrics and GET
/api/apps are timed REQUESTS times (default 41, alternating, after 5 warm-ups); the
median is reported. Last, with SIZE deploys stored, one thread scrapes /metrics
back to back while 30 signed pushes are timed: intake latency under scraping.

Prints a JSON object per size and writes them all to OUT_FILE.
"""

import hashlib
import hmac
import http.client
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import uuid

SECRET = "history-secret-" + uuid.uuid4().hex
TOKEN = "history-token"
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "webhook-samples", "push.json")
TEMPORARY = 20


def write_config(scratch):
    config = os.path.join(scratch, "stagehand.toml")
    with open(config, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:0"
state_dir = "{scratch}/state"
shutdown_grace = "1s"

[apps.shop]
repo = "{scratch}/never-fetched.git"
github = "acme/shop"
secret_env = "HISTORY_WEBHOOK_SECRET"
root = "{scratch}/srv"

[apps.shop.environments.production]
branch = "main"
auto_deploy = false

[apps.shop.environments.staging]
branch = "develop"
auto_deploy = false

[apps.shop.environments.preview]
branch = "feature/*"
""")
    return config


def start(binary, config, scratch):
    env = dict(os.environ, HISTORY_WEBHOOK_SECRET=SECRET, STAGEHAND_API_TOKEN=TOKEN)
    stderr = open(os.path.join(scratch, "stderr.txt"), "ab")
    proc = subprocess.Popen([binary, "serve", "--config", config], stdout=subprocess.PIPE,
                            stderr=stderr, env=env)
    line = proc.stdout.readline().decode()
    if not line.startswith("stagehand listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    host, port = line.strip().removeprefix("stagehand listening on http://").rsplit(":", 1)
    return proc, (host, int(port))


def stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def fill(db, size):
    conn = sqlite3.connect(db)
    now = int(time.time() * 1000) - size * 1000
    with conn:
        conn.executemany(
            "INSERT INTO temporary_environments (app, name, base, branch, created_at) VALUES ('shop', ?, 'preview', ?, ?)",
            [(f"preview-feature-{i}", f"feature/{i}", now) for i in range(TEMPORARY)])

        def rows():
            for i in range(size):
                if i == 0:
                    env, base, ref = "production", "production", "refs/heads/main"
                elif i % 2 == 0:
                    env, base, ref = "staging", "staging", "refs/heads/develop"
                else:
                    env, base, ref = f"preview-feature-{i % TEMPORARY}", "preview", f"refs/heads/feature/{i % TEMPORARY}"
                status = "failed" if i % 7 == 0 else "superseded" if i % 5 == 0 else "succeeded"
                t = now + i * 1000
                yield (i + 1, env, base, ref, f"{i:040x}", status, f"20261127T000000Z-{i:07x}", t, t, t + 900)

        conn.executemany(
            "INSERT INTO deploys (id, app, environment, base_environment, ref, commit_sha, trigger, status, release,"
            " created_at, started_at, finished_at) VALUES (?, 'shop', ?, ?, ?, ?, 'push', ?, ?, ?, ?, ?)", rows())
        conn.executemany(
            "INSERT INTO stages (deploy_id, seq, name, status, started_at, duration_ms) VALUES (?, ?, ?, 'succeeded', ?, 10)",
            ((i + 1, seq + 1, name, now + i * 1000) for i in range(size)
             for seq, name in enumerate(["fetch", "checkout", "switch"])))
    conn.close()


def timed_get(conn, path, headers):
    t0 = time.perf_counter()
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        raise SystemExit(f"GET {path}: {resp.status}")
    return (time.perf_counter() - t0) * 1000


def push_latencies(addr, n):
    body = open(SAMPLE, "rb").read()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    out = []
    for _ in range(n):
        conn = http.client.HTTPConnection(*addr, timeout=30)
        t0 = time.perf_counter()
        conn.request("POST", "/hooks/shop", body=body, headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()), "X-GitHub-Hook-ID": "1",
            "X-Hub-Signature-256": signature})
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t0) * 1000)
        if resp.status != 202:
            raise SystemExit(f"signed push: {resp.status}")
        conn.close()
        time.sleep(0.02)
    return out


def measure(binary, scratch, size, requests):
    os.makedirs(os.path.join(scratch, "state"), exist_ok=True)
    config = write_config(scratch)
    proc, _ = start(binary, config, scratch)
    stop(proc)
    t0 = time.perf_counter()
    fill(os.path.join(scratch, "state", "stagehand.db"), size)
    fill_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    proc, addr = start(binary, config, scratch)
    start_s = time.perf_counter() - t0
    try:
        conn = http.client.HTTPConnection(*addr, timeout=60)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for _ in range(5):
            timed_get(conn, "/metrics", {})
            timed_get(conn, "/api/apps", auth)
        metrics, apps = [], []
        for _ in range(requests):
            metrics.append(timed_get(conn, "/metrics", {}))
            apps.append(timed_get(conn, "/api/apps", auth))
        conn.close()

        quiet = push_latencies(addr, 30)
        done = threading.Event()
        scrapes = [0]

        def scrape():
            c = http.client.HTTPConnection(*addr, timeout=60)
            while not done.is_set():
                timed_get(c, "/metrics", {})
                scrapes[0] += 1
            c.close()

        scraper = threading.Thread(target=scrape)
        scraper.start()
        try:
            busy = push_latencies(addr, 30)
        finally:
            done.set()
            scraper.join()
    finally:
        stop(proc)
    return {
        "size": size,
        "fill_s": round(fill_s, 1),
        "start_s": round(start_s, 2),
        "metrics_median_ms": round(statistics.median(metrics), 2),
        "apps_median_ms": round(statistics.median(apps), 2),
        "push_median_ms_quiet": round(statistics.median(quiet), 2),
        "push_median_ms_while_scraping": round(statistics.median(busy), 2),
        "push_max_ms_while_scraping": round(max(busy), 2),
        "scrapes_during_pushes": scrapes[0],
    }


def main():
    binary, scratch, out = sys.argv[1:4]
    label = sys.argv[4] if len(sys.argv) > 4 else "stagehand"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(s) for s in os.environ.get("SIZES", "100 100000").split()]
    requests = int(os.environ.get("REQUESTS", "41"))
    results = []
    for size in sizes:
        r = measure(binary, os.path.join(scratch, f"{label}-{size}"), size, requests)
        r["label"] = label
        print(json.dumps(r), flush=True)
        results.append(r)
    if len(results) >= 2:
        small, big = results[0], results[-1]
        ratios = {
            "label": label,
            "metrics_ratio": round(big["metrics_median_ms"] / small["metrics_median_ms"], 2),
            "apps_ratio": round(big["apps_median_ms"] / small["apps_median_ms"], 2),
        }
        print(json.dumps(ratios))
        results.append(ratios)
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
