#!/usr/bin/env python3
"""The one table of bench/README.md, from the raw results of one run.

    table.py RESULTS_DIR        markdown on stdout
"""
import json
import re
import sys

res = sys.argv[1]


def load(name):
    return json.load(open(f"{res}/{name}/summary.json"))


intake, ptl, logl, mem = load("intake"), load("push_to_live"), load("log_latency"), load("memory")
checkout_text = open(f"{res}/checkout/checkout.txt").read()
rows_ck = {}
for line in checkout_text.splitlines():
    m = re.match(r"^(.+?)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line)
    if m:
        rows_ck[m.group(1).strip()] = float(m.group(2))

mark = lambda ok: "**met**" if ok else "**missed**"
out = []
row = lambda *cells: out.append("| " + " | ".join(str(c) for c in cells) + " |")
row("figure", "stagehand", "peer", "stagehand / peer", "target", "")
row(*["---"] * 6)

s, w = intake["stagehand"], intake["webhook"]
r = s["rps"] / w["rps"]
row("intake, requests/s (64 connections)", f"{s['rps']:,.0f}", f"{w['rps']:,.0f} (adnanh/webhook)", f"{r:.2f}×",
    "≥ 3×", mark(r >= 3))
row("intake, p50 latency", f"{s['p50_ms']:.2f} ms", f"{w['p50_ms']:.2f} ms", f"{s['p50_ms'] / w['p50_ms']:.2f}×", "", "")
row("intake, p99 latency", f"{s['p99_ms']:.2f} ms", f"{w['p99_ms']:.2f} ms", f"{s['p99_ms'] / w['p99_ms']:.2f}×",
    "≤ 5 ms", mark(s["p99_ms"] <= 5))
row("intake, non-2xx / socket errors", f"{s['non_2xx_3xx']} / {s['socket_errors']}",
    f"{w['non_2xx_3xx']} / {w['socket_errors']}", "", "0", mark(s['non_2xx_3xx'] + s['socket_errors'] == 0))

nohash = rows_ck["write_tree, 2 threads, no hash check"]
hashed = rows_ck["write_tree, 2 threads"]
cp, arch = rows_ck["cp -a (floor)"], rows_ck["git archive | tar -x"]
row("checkout, 5,000 files (write_tree, 2 threads, hash check off as `serve` runs it)",
    f"{nohash * 1000:.0f} ms", f"{cp * 1000:.0f} ms (cp -a)", f"{nohash / cp:.2f}×", "≤ 1.3×", mark(nohash / cp <= 1.3))
row("", "", f"{arch * 1000:.0f} ms (git archive \\| tar -x)", f"{nohash / arch:.2f}×", "≤ 0.6×", mark(nohash / arch <= 0.6))
row("checkout, same with libgit2's hash check on (informational)", f"{hashed * 1000:.0f} ms", "",
    f"{hashed / cp:.2f}× cp -a, {hashed / arch:.2f}× archive", "", "")

for kind in ("first", "repeat"):
    p = ptl[kind]
    n = len(p["shell_all"])
    row(f"push to live, {kind} deploy (median of {n}; server-side created → finished)",
        f"{p['stagehand_server_ms']:.0f} ms", f"{p['shell_ms']:.0f} ms (shell pipeline)", f"{p['ratio']:.2f}×",
        "≤ 0.6×", mark(p["ratio"] <= 0.6))
    row(f"push to live, {kind} deploy, wall clock (send → `succeeded` seen, 20 ms polls)",
        f"{p['stagehand_wall_ms']:.0f} ms", f"{p['shell_ms']:.0f} ms", f"{p['ratio_wall']:.2f}×", "", "")

l, q = logl["live"], logl["queued"]
row(f"log latency, follower attached at the 202 ({l['lines']} lines): p50 / p99 / max",
    f"{l['p50_ms']:.2f} / {l['p99_ms']:.2f} / {l['max_ms']:.1f} ms", "", "", "p99 ≤ 50 ms", mark(l["p99_ms"] <= 50))
row(f"log latency, follower attached while queued ({q['lines']} lines): p50 / p99 / max",
    f"{q['p50_ms']:.2f} / {q['p99_ms']:.2f} / {q['max_ms']:.1f} ms", "", "", "(p99 ≤ 50 ms)", mark(q["p99_ms"] <= 50))

idle = mem["snapshots_kb"]["idle"]
row("RSS idle (memory.sh; anon + file-backed)",
    f"{idle['VmRSS'] / 1024:.1f} MB ({idle['RssAnon'] / 1024:.1f} + {idle['RssFile'] / 1024:.1f})",
    f"{w['rss_idle_kb'] / 1024:.1f} MB (webhook, intake.sh)", f"{idle['VmRSS'] / w['rss_idle_kb']:.2f}×",
    "≤ 15 MB", mark(idle["VmRSS"] / 1024 <= 15))
row("RSS peak under the intake load (intake.sh, same run as the peer)", f"{s['rss_peak_kb'] / 1024:.1f} MB",
    f"{w['rss_peak_kb'] / 1024:.1f} MB (webhook)", f"{s['rss_peak_kb'] / w['rss_peak_kb']:.2f}×", "≤ 40 MB",
    mark(s["rss_peak_kb"] / 1024 <= 40))
row("RSS peak under the intake load (memory.sh, after the deploys)", f"{mem['peak_load_kb'] / 1024:.1f} MB", "", "",
    "≤ 40 MB", mark(mem["peak_load_kb"] / 1024 <= 40))
worst = max(mem["peak_deploys_kb"], ptl["stagehand_rss_peak_kb"])
row("RSS peak during push-to-live of the 5,000-file repo (memory.sh; push_to_live.sh, worst of its rounds)",
    f"{mem['peak_deploys_kb'] / 1024:.1f} MB; {ptl['stagehand_rss_peak_kb'] / 1024:.1f} MB", "", "", "≤ 40 MB",
    mark(worst / 1024 <= 40))
print("\n".join(out))
