#!/usr/bin/env python3
"""Unsigned-body flood against /hooks (issue 11 item 2), standard library only.

  flood.py LABEL STAGEHAND_BINARY SCRATCH_DIR OUT_DIR

Starts `STAGEHAND_BINARY serve` on 127.0.0.1 (a fresh state dir under SCRATCH_DIR),
then for FLOOD_SECONDS (default 20) keeps CONNECTIONS (default 120) connections busy,
each sending a body of 25 MiB - 1 bytes with a well-formed but wrong signature, paced
at PACE_MIB_S (default 5) MiB/s per connection so that they overlap; a connection that
is answered (or reset) opens again at once, as an attacker's would. Meanwhile, from 2 s
in: every 0.5 s a GET /healthz and a correctly signed push (webhook-samples/push.json,
fresh delivery id, to an auto_deploy = false environment, so the whole intake path runs
and no build starts), each timed from connect to the last byte of the answer. The
server's VmRSS is sampled every 50 ms; VmHWM (the kernel's own peak) is read at the end.

Prints one JSON object and writes it to OUT_DIR/LABEL.json. A server that dies (e.g.
an allocation failure) is reported as such, with its stderr's tail.
"""

import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid

BODY_LEN = 25 * 1024 * 1024 - 1
CHUNK = 256 * 1024
BOGUS = "sha256=" + "0" * 64
SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "webhook-samples", "push.json")
SECRET = "flood-secret-" + uuid.uuid4().hex


def status_of(pid):
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    fields[key] = int(value.split()[0])
    except OSError:
        pass
    return fields


def start_server(binary, scratch):
    state = os.path.join(scratch, "state")
    os.makedirs(state, exist_ok=True)
    config = os.path.join(scratch, "stagehand.toml")
    with open(config, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:0"
state_dir = "{state}"
shutdown_grace = "1s"

[apps.shop]
repo = "{scratch}/never-fetched.git"
github = "acme/shop"
secret_env = "FLOOD_WEBHOOK_SECRET"
root = "{scratch}/srv"

[apps.shop.environments.staging]
branch = "develop"
auto_deploy = false
""")
    env = dict(os.environ, FLOOD_WEBHOOK_SECRET=SECRET, STAGEHAND_API_TOKEN="flood-token")
    stderr = open(os.path.join(scratch, "stderr.txt"), "wb")
    proc = subprocess.Popen([binary, "serve", "--config", config], stdout=subprocess.PIPE,
                            stderr=stderr, env=env)
    line = proc.stdout.readline().decode()
    if not line.startswith("stagehand listening on "):
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    url = line.strip().removeprefix("stagehand listening on http://")
    host, port = url.rsplit(":", 1)
    return proc, (host, int(port))


def flood_connection(addr, stop, counts, lock):
    """One attacker connection, reopened as soon as it is answered or dropped."""
    chunk = b"x" * CHUNK
    pace = CHUNK / (PACE_MIB_S * 1024 * 1024)
    while not stop.is_set():
        outcome = "reset"
        try:
            s = socket.create_connection(addr, timeout=30)
            s.sendall((f"POST /hooks/shop HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                       f"X-GitHub-Delivery: {uuid.uuid4()}\r\nContent-Type: application/json\r\n"
                       f"X-Hub-Signature-256: {BOGUS}\r\nContent-Length: {BODY_LEN}\r\n"
                       f"Connection: close\r\n\r\n").encode())
            sent = 0
            s.setblocking(True)
            while sent < BODY_LEN and not stop.is_set():
                n = min(CHUNK, BODY_LEN - sent)
                s.sendall(chunk[:n])
                sent += n
                # An early answer (503, 408) ends this body.
                s.settimeout(0)
                try:
                    early = s.recv(64)
                except (BlockingIOError, socket.timeout):
                    early = None
                s.settimeout(30)
                if early is not None:
                    outcome = early.split(b" ")[1].decode() if early.startswith(b"HTTP/") else "reset"
                    break
                time.sleep(pace)
            else:
                if sent >= BODY_LEN:
                    answer = s.recv(64)
                    outcome = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "reset"
                else:
                    outcome = "stopped"
            s.close()
        except (OSError, IndexError):
            outcome = "reset"
        with lock:
            counts[outcome] = counts.get(outcome, 0) + 1


def timed(addr, method, path, body=None, headers=None):
    t0 = time.perf_counter()
    try:
        conn = http.client.HTTPConnection(*addr, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        resp.read()
        status = resp.status
        conn.close()
    except OSError as e:
        status = f"error: {e}"
    return status, (time.perf_counter() - t0) * 1000


def probe(addr, stop, results):
    body = open(SAMPLE, "rb").read()
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    time.sleep(2)
    while not stop.is_set():
        results["healthz"].append(timed(addr, "GET", "/healthz"))
        results["push"].append(timed(addr, "POST", "/hooks/shop", body, {
            "Content-Type": "application/json", "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()), "X-GitHub-Hook-ID": "1",
            "X-Hub-Signature-256": signature}))
        stop.wait(0.5)


def summary(samples, ok):
    latencies = [ms for status, ms in samples]
    good = [ms for status, ms in samples if status == ok]
    return {
        "n": len(samples),
        "ok": len(good),
        "statuses": sorted({str(s) for s, _ in samples}),
        "median_ms": round(statistics.median(latencies), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
    }


def main():
    label, binary, scratch, out = sys.argv[1:5]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    proc, addr = start_server(binary, scratch)
    try:
        idle = status_of(proc.pid).get("VmRSS")
        stop = threading.Event()
        counts, lock = {}, threading.Lock()
        probes = {"healthz": [], "push": []}
        peak_rss = [0]

        def sample():
            while not stop.is_set():
                rss = status_of(proc.pid).get("VmRSS", 0)
                peak_rss[0] = max(peak_rss[0], rss)
                stop.wait(0.05)

        threads = [threading.Thread(target=sample), threading.Thread(target=probe, args=(addr, stop, probes))]
        threads += [threading.Thread(target=flood_connection, args=(addr, stop, counts, lock))
                    for _ in range(CONNECTIONS)]
        for t in threads:
            t.start()
        time.sleep(FLOOD_SECONDS)
        stop.set()
        for t in threads:
            t.join()
        alive = proc.poll() is None
        result = {
            "label": label,
            "binary": binary,
            "connections": CONNECTIONS,
            "flood_seconds": FLOOD_SECONDS,
            "pace_mib_s_per_connection": PACE_MIB_S,
            "server_alive_after": alive,
            "rss_idle_mb": round(idle / 1024, 1) if idle else None,
            "rss_peak_sampled_mb": round(peak_rss[0] / 1024, 1),
            "vmhwm_mb": round(status_of(proc.pid).get("VmHWM", 0) / 1024, 1) if alive else None,
            "flood_answers": dict(sorted(counts.items())),
            "healthz": summary(probes["healthz"], 200),
            "signed_push": summary(probes["push"], 202),
        }
        if not alive:
            with open(os.path.join(scratch, "stderr.txt"), "rb") as f:
                result["server_stderr_tail"] = f.read()[-2000:].decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = json.dumps(result, indent=2)
    print(text)
    with open(os.path.join(out, f"{label}.json"), "w") as f:
        f.write(text + "\n")


CONNECTIONS = int(os.environ.get("CONNECTIONS", "120"))
FLOOD_SECONDS = float(os.environ.get("FLOOD_SECONDS", "20"))
PACE_MIB_S = float(os.environ.get("PACE_MIB_S", "5"))

if __name__ == "__main__":
    main()
