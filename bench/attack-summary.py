#!/usr/bin/env python3
"""The table of bench/attack.sh: medians per attack and server from results.tsv, and the
pi-failover/nginx ratios (lower is better).

usage: attack-summary.py RESULTS_TSV SECONDS_PER_ATTACK NGINX_VERSION > attack.md
"""
import csv, statistics, sys
path, seconds, nginx_version = sys.argv[1:4]
rows = list(csv.DictReader(open(path), delimiter="\t"))
def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")
attacks = []
for r in rows:
    if r["attack"] not in attacks:
        attacks.append(r["attack"])
print(f"# Under attack: nginx vs pi-failover ({nginx_version}; {seconds} s per attack, "
      f"medians of {max(int(r['round']) for r in rows)} round(s))\n")
print("| attack | server | reader p50 ms | reader p99 ms | reads ok / failed | health failed | "
      "peak RSS MiB | RSS after MiB | peak fds | attackers closed |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
agg = {}
for a in attacks:
    for s in ("nginx", "pi-failover"):
        rs = [r for r in rows if r["attack"] == a and r["server"] == s]
        if not rs:
            continue
        m = lambda k: med([float(r[k]) for r in rs])
        agg[(a, s)] = {k: m(k) for k in ("p50_ms", "p99_ms", "peak_kb", "peak_fds")}
        print(f"| {a} | {s} | {m('p50_ms'):.1f} | {m('p99_ms'):.1f} | "
              f"{sum(int(r['reader_ok']) for r in rs)} / {sum(int(r['reader_failed']) for r in rs)} | "
              f"{sum(int(r['health_failed']) for r in rs)} | {m('peak_kb') / 1024:.1f} | "
              f"{m('after_kb') / 1024:.1f} | {m('peak_fds'):.0f} | "
              f"{sum(int(r['attackers_closed']) for r in rs)} of {sum(int(r['attackers']) for r in rs)} |")
print("\n## pi-failover / nginx (lower is better)\n")
print("| attack | reader p50 | reader p99 | peak RSS |")
print("|---|---:|---:|---:|")
for a in attacks:
    p, n = agg.get((a, "pi-failover")), agg.get((a, "nginx"))
    if p and n:
        r = lambda k: f"{p[k] / n[k]:.2f}" if n[k] else "n/a"
        print(f"| {a} | {r('p50_ms')} | {r('p99_ms')} | {r('peak_kb')} |")
