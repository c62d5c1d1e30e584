#!/usr/bin/env python3
"""Glue for the bench/*.sh scripts (stdlib only).

    helper.py sign SECRET FILE                       hex HMAC-SHA256 of FILE's bytes
    helper.py payload SAMPLE OUT --ref R --after SHA [--before SHA] [--message M]
    helper.py send URL APP SECRET BODY               deliver a push, print the deploy id
    helper.py deploy URL APP SECRET BODY TOKEN       deliver a push, poll the deploy to its end
    helper.py manual URL APP ENV REF TOKEN           a deploy by hand through the API, polled
    helper.py follow URL APP SECRET BODY TOKEN OUT   deliver, follow ?follow=1, per-line latency
    helper.py wrk FILE                               wrk --latency output -> JSON
    helper.py stats FILE...                          median/min/max of numbers, one a line
"""

import datetime
import hashlib
import hmac
import http.client
import json
import re
import statistics
import sys
import time
import urllib.parse
import uuid


def sign(secret: bytes, body: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def cmd_sign(secret, path):
    print(sign(secret.encode(), open(path, "rb").read()))


def cmd_payload(sample, out, *opts):
    args = dict(zip(opts[::2], opts[1::2]))
    p = json.load(open(sample))
    p["ref"] = args["--ref"]
    p["after"] = args["--after"]
    p["before"] = args.get("--before", "0" * 40)
    p["created"] = p["before"] == "0" * 40
    p["forced"] = False
    p["deleted"] = False
    if p.get("head_commit"):
        p["head_commit"]["id"] = args["--after"]
        p["head_commit"]["message"] = args.get("--message", "bench commit")
    with open(out, "w") as f:
        json.dump(p, f, indent=2)
        f.write("\n")


def conn_for(url):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def deliver(url, app, secret, body):
    """POSTs a signed push delivery; returns (status, parsed JSON answer)."""
    c = conn_for(url)
    c.request(
        "POST",
        f"/hooks/{app}",
        body=body,
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-GitHub-Hook-ID": "123456789",
            "X-Hub-Signature-256": "sha256=" + sign(secret.encode(), body),
        },
    )
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data)


def cmd_send(url, app, secret, body_path):
    status, answer = deliver(url, app, secret, open(body_path, "rb").read())
    if status != 202:
        sys.exit(f"delivery answered {status}: {answer}")
    print(answer["deploy"]["id"])


def rfc3339_ms(s):
    if s is None:
        return None
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000


TERMINAL = {"succeeded", "failed", "rolled_back", "superseded", "skipped", "cancelled", "interrupted"}


def wait_deploy(url, token, deploy_id, t0, poll_ms, limit_s):
    """Polls GET /api/deploys/{id} until the deploy ends; prints the figures as JSON."""
    c = conn_for(url)
    deadline = t0 + float(limit_s)
    while True:
        c.request("GET", f"/api/deploys/{deploy_id}", headers={"Authorization": f"Bearer {token}"})
        r = c.getresponse()
        d = json.loads(r.read())
        if r.status != 200:
            sys.exit(f"GET deploy answered {r.status}: {d}")
        d = d.get("deploy", d)
        if d["status"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            sys.exit(f"deploy {deploy_id} still {d['status']} after {limit_s} s")
        time.sleep(int(poll_ms) / 1000)
    wall = (time.monotonic() - t0) * 1000
    c.close()
    created, started, finished = (rfc3339_ms(d.get(k)) for k in ("created_at", "started_at", "finished_at"))
    print(json.dumps({
        "id": deploy_id,
        "status": d["status"],
        "reason": d.get("reason"),
        "wall_ms": round(wall, 1),
        "server_ms": None if finished is None else round(finished - created, 1),
        "queued_ms": None if started is None else round(started - created, 1),
        "stages": {s["name"]: s.get("duration_ms") for s in d.get("stages", [])},
    }))
    if d["status"] != "succeeded":
        sys.exit(f"deploy {deploy_id} ended {d['status']}: {d.get('reason')}")


def cmd_deploy(url, app, secret, body_path, token, poll_ms="20", limit_s="120"):
    """Sends the delivery, polls GET /api/deploys/{id} every poll_ms until the deploy
    ends; prints one JSON line: wall_ms (send -> end seen), server_ms (finished_at -
    created_at), queued_ms (started_at - created_at), the stages."""
    body = open(body_path, "rb").read()
    t0 = time.monotonic()
    status, answer = deliver(url, app, secret, body)
    if status != 202:
        sys.exit(f"delivery answered {status}: {answer}")
    wait_deploy(url, token, answer["deploy"]["id"], t0, poll_ms, limit_s)


def cmd_manual(url, app, env, ref, token, poll_ms="20", limit_s="120"):
    """A deploy by hand (POST .../deploy {"ref": REF}), polled like cmd_deploy."""
    t0 = time.monotonic()
    c = conn_for(url)
    c.request("POST", f"/api/apps/{app}/environments/{env}/deploy", body=json.dumps({"ref": ref}),
              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    r = c.getresponse()
    answer = json.loads(r.read())
    c.close()
    if r.status != 202:
        sys.exit(f"deploy request answered {r.status}: {answer}")
    wait_deploy(url, token, answer["deploy"]["id"], t0, poll_ms, limit_s)


def cmd_follow(url, app, secret, body_path, token, out, limit_s="120"):
    """Sends the delivery, then reads GET /api/deploys/{id}/log?follow=1 line by line;
    for each line carrying `ts=<ns since epoch>` records receive time - that time."""
    body = open(body_path, "rb").read()
    status, answer = deliver(url, app, secret, body)
    if status != 202:
        sys.exit(f"delivery answered {status}: {answer}")
    deploy_id = answer["deploy"]["id"]
    c = conn_for(url)
    c.timeout = float(limit_s)
    c.request("GET", f"/api/deploys/{deploy_id}/log?follow=1",
              headers={"Authorization": f"Bearer {token}"})
    r = c.getresponse()
    if r.status != 200:
        sys.exit(f"follow answered {r.status}: {r.read()[:200]!r}")
    pat = re.compile(rb"ts=(\d{19})\b")
    lat = []
    with open(out, "w") as f:
        while True:
            line = r.readline()
            now = time.time_ns()
            if not line:
                break
            m = pat.search(line)
            if m:
                ms = (now - int(m.group(1))) / 1e6
                lat.append(ms)
                f.write(f"{ms:.3f}\n")
    c.close()
    print(json.dumps({"id": deploy_id, "lines": len(lat)}))


def cmd_wrk(path):
    """The figures of one `wrk --latency` run, as JSON."""
    text = open(path).read()
    unit = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}

    def ms(v):
        m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
        return float(m.group(1)) * unit[m.group(2)]

    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", text)
    out["requests"] = int(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", text, re.M)
        out[f"p{pct}_ms"] = ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx_3xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    print(json.dumps(out))


def pct(values, p):
    """Nearest-rank percentile."""
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


def cmd_stats(*paths):
    vals = [float(x) for p in paths for x in open(p).read().split()]
    print(json.dumps({
        "n": len(vals),
        "median": statistics.median(vals),
        "p50": pct(vals, 50),
        "p99": pct(vals, 99),
        "min": min(vals),
        "max": max(vals),
    }))


if __name__ == "__main__":
    cmds = {"sign": cmd_sign, "payload": cmd_payload, "send": cmd_send, "deploy": cmd_deploy, "manual": cmd_manual,
            "follow": cmd_follow, "wrk": cmd_wrk, "stats": cmd_stats}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])
