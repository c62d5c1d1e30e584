#!/usr/bin/env python3
"""A small stagehand client for bench/faults.sh (standard library only).

  client.py push URL SECRET BRANCH SHA BEFORE      -> prints the deploy id (exit 1 unless 202)
  client.py get URL DEPLOY_ID                      -> prints the deploy as JSON
  client.py wait URL DEPLOY_ID TIMEOUT_S           -> prints "status<TAB>reason" once it ended
  client.py wait-stage URL DEPLOY_ID STAGE TIMEOUT_S -> once STAGE is running, prints when it began
                                                    (ms since the epoch, from the log); exit 1 if never
  client.py drain URL TIMEOUT_S                    -> waits for no queued and no running deploy
  client.py stages URL DEPLOY_ID                   -> prints "name ms name ms ..."
  client.py deploys URL LIMIT                      -> prints {"deploys": [...]}
  client.py verify-release REPO RELEASE_DIR SHARED_COUNT
        -> checks a release against its commit: REVISION names the commit, every file of
           the commit's tree is there with the same content (git blob hash) and mode,
           every symlink with the same target, and nothing else but REVISION and the
           SHARED_COUNT shared links. Prints "ok N files" or what is wrong (exit 1).

The API token is read from $STAGEHAND_API_TOKEN.
"""

import datetime
import hashlib
import hmac
import http.client
import json
import os
import stat
import subprocess
import sys
import time
import urllib.parse
import uuid

SAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "webhook-samples", "push.json")


def request(url, method, path, body=None, headers=None, timeout=10):
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def api(url, path):
    status, data = request(url, "GET", path,
                           headers={"Authorization": "Bearer " + os.environ["STAGEHAND_API_TOKEN"]})
    if status != 200:
        raise SystemExit("GET %s: %d %s" % (path, status, data[:200]))
    return json.loads(data)


def push(url, secret, branch, sha, before):
    with open(SAMPLE, "rb") as f:
        body = json.load(f)
    body["ref"] = "refs/heads/" + branch
    body["before"] = before
    body["after"] = sha
    body["forced"] = False
    body["head_commit"]["id"] = sha
    raw = json.dumps(body).encode()
    sig = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    status, data = request(url, "POST", "/hooks/shop", body=raw, headers={
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-GitHub-Hook-ID": "123456789",
        "X-Hub-Signature-256": sig,
    })
    if status != 202:
        raise SystemExit("push %s %s: %d %s" % (branch, sha[:7], status, data[:300]))
    print(json.loads(data)["deploy"]["id"])


def wait(url, deploy_id, timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        deploy = api(url, "/api/deploys/" + deploy_id)
        if deploy["status"] not in ("queued", "running"):
            print("%s\t%s" % (deploy["status"], deploy.get("reason") or ""))
            return
        if time.monotonic() > deadline:
            print("%s\tstill %s after %ss" % (deploy["status"], deploy["status"], timeout_s))
            return
        time.sleep(0.05)


def log_start_ms(url, deploy_id, stage):
    """When the deploy log's first line of `stage` was written (ms since the epoch)."""
    status, data = request(url, "GET", "/api/deploys/%s/log" % deploy_id,
                           headers={"Authorization": "Bearer " + os.environ["STAGEHAND_API_TOKEN"]})
    for line in data.decode(errors="replace").splitlines():
        fields = line.split(" ", 2)
        if len(fields) >= 2 and fields[1] == stage:
            stamp = datetime.datetime.strptime(fields[0], "%Y-%m-%dT%H:%M:%S.%fZ")
            return int(stamp.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)
    return None


def wait_stage(url, deploy_id, stage, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        deploy = api(url, "/api/deploys/" + deploy_id)
        if any(s["name"] == stage and s["status"] == "running" for s in deploy["stages"]):
            print(log_start_ms(url, deploy_id, stage) or int(time.time() * 1000))
            return
        if deploy["status"] not in ("queued", "running"):
            break
        time.sleep(0.01)
    sys.exit(1)


def stages(url, deploy_id):
    deploy = api(url, "/api/deploys/" + deploy_id)
    print(" ".join("%s %s" % (s["name"], s.get("duration_ms")) for s in deploy["stages"]))


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def drain(url, timeout_s):
    deadline = time.monotonic() + timeout_s
    while True:
        _, data = request(url, "GET", "/metrics")
        text = data.decode()
        if metric(text, "stagehand_queue_depth") == 0 and metric(text, "stagehand_running_deploys") == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit("the queue did not drain in %ss" % timeout_s)
        time.sleep(0.1)


def git_blob_hash(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify_release(repo, release_dir, shared_count):
    problems = []
    try:
        with open(os.path.join(release_dir, "REVISION")) as f:
            sha = f.read().strip()
    except OSError as e:
        print("no REVISION in %s: %s" % (release_dir, e.strerror))
        sys.exit(1)
    listing = subprocess.run(["git", "-C", repo, "ls-tree", "-r", "-z", sha],
                             capture_output=True, check=True).stdout
    expected = {}
    for entry in listing.split(b"\0"):
        if not entry:
            continue
        meta, path = entry.split(b"\t", 1)
        mode, kind, oid = meta.split()
        expected[path.decode()] = (mode.decode(), oid.decode())
    seen = set()
    for dirpath, dirnames, filenames in os.walk(release_dir):
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, release_dir)
            seen.add(rel)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    extra = seen - set(expected) - {"REVISION"}
    if len(extra) != shared_count:
        problems.append("expected %d shared links beside the tree, found %d: %s"
                        % (shared_count, len(extra), sorted(extra)[:5]))
    for rel in extra:
        if not os.path.islink(os.path.join(release_dir, rel)):
            problems.append("%s is neither in the commit nor a shared link" % rel)
    for rel, (mode, oid) in expected.items():
        full = os.path.join(release_dir, rel)
        if rel not in seen:
            problems.append("missing %s" % rel)
            continue
        st = os.lstat(full)
        if mode == "120000":
            target = os.readlink(full).encode()
            if not stat.S_ISLNK(st.st_mode) or git_blob_hash(target) != oid:
                problems.append("symlink %s differs" % rel)
            continue
        with open(full, "rb") as f:
            if git_blob_hash(f.read()) != oid:
                problems.append("content of %s differs (%d bytes)" % (rel, st.st_size))
        executable = bool(st.st_mode & 0o100)
        if executable != (mode == "100755"):
            problems.append("mode of %s differs" % rel)
    files = len(seen)
    tree_files = len(expected)
    if files != tree_files + 1 + shared_count:
        problems.append("%d files, expected %d (tree) + REVISION + %d shared links"
                        % (files, tree_files, shared_count))
    if problems:
        print("%s (%s): %s" % (os.path.basename(release_dir), sha[:7], "; ".join(problems[:5])))
        sys.exit(1)
    print("ok %d files" % files)


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "push":
        push(*args)
    elif cmd == "get":
        print(json.dumps(api(args[0], "/api/deploys/" + args[1])))
    elif cmd == "wait":
        wait(args[0], args[1], float(args[2]))
    elif cmd == "wait-stage":
        wait_stage(args[0], args[1], args[2], float(args[3]))
    elif cmd == "stages":
        stages(args[0], args[1])
    elif cmd == "drain":
        drain(args[0], float(args[1]))
    elif cmd == "deploys":
        print(json.dumps(api(args[0], "/api/deploys?limit=" + args[1])))
    elif cmd == "verify-release":
        verify_release(args[0], args[1], int(args[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
