#!/usr/bin/env python3
"""The tables of bench/serve.sh: medians per case, protocol, connection count and server from
samples.tsv, peak memory from memory.tsv, and the pi-failover/nginx ratios.

usage: serve-summary.py SAMPLES_TSV MEMORY_TSV VERSIONS_TXT "SERVER..." [PAYLOAD_TSV] > summary.md

Rows written before the protocol column existed (no `proto`) are HTTP/1.1.
"""
import csv, os, statistics, sys

samples_path, mem_path, versions_path, servers_arg = sys.argv[1:5]
payload_path = sys.argv[5] if len(sys.argv) > 5 else ""
order = servers_arg.split()

def rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))

samples, mem = rows(samples_path), rows(mem_path)
present = []
for r in samples + mem:
    if r["server"] not in present:
        present.append(r["server"])
order = [s for s in order if s in present] + [s for s in present if s not in order]
versions = open(versions_path).read().strip().splitlines() if os.path.exists(versions_path) else []

def proto(r):
    return r.get("proto") or "h1"


def med(xs):
    return statistics.median(xs) if xs else float("nan")

def num(x, digits=0):
    if x != x:  # nan
        return "n/a"
    return f"{x:,.{digits}f}"

def ratio(a, b):
    return f"{a / b:.2f}" if b and a == a and b == b else "n/a"

out = []
w = out.append
w("# HTTPS static files: " + " vs ".join(order))
w("")
if samples:
    rounds = max(int(r["round"]) for r in samples)
    dur = samples[0]["duration_s"]
    alt = f", servers alternating {' '.join(order * 2)} ..." if len(order) > 1 else ""
    th = samples[0].get("threads", "2")
    tools = []
    if any(proto(r) == "h1" for r in samples):
        tools.append(f"h1: `wrk -t{th} --timeout 5s`")
    if any(proto(r) == "h2" for r in samples):
        streams = next((r.get("streams") for r in samples if proto(r) == "h2"), "10")
        tools.append(f"h2: `h2load -t{th} -m{streams}` (streams per connection)")
    w(f"Medians of {rounds} round(s){alt}, {dur} s per run; {'; '.join(tools)}; "
      "no Accept-Encoding.")
    w("")
for v in versions:
    w("- " + v)
w("")

keys = []
for r in samples:
    k = (r["case"], proto(r), int(r["conns"]))
    if k not in keys:
        keys.append(k)

agg = {}
if samples:
    w("## Throughput, latency, CPU")
    w("")
    w("| case | proto | conns | server | n | req/s | p50 ms | p99 ms | srv CPU s | req/srv-CPU-s | "
      "others' CPU | errors sock/status | clean runs (others < 10 %): n, req/s |")
    w("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for case, pr, conns in keys:
        for s in order:
            rs = [r for r in samples if r["case"] == case and proto(r) == pr
                  and int(r["conns"]) == conns and r["server"] == s]
            if not rs:
                continue
            f = lambda col: [float(r[col]) for r in rs]
            m = {c: med(f(c)) for c in ("req_s", "p50_ms", "p99_ms", "srv_cpu_s", "req_per_srv_cpu_s", "others_share")}
            agg[(case, pr, conns, s)] = m
            sock = sum(int(r["socket_errors"]) for r in rs)
            status = sum(int(r["status_errors"]) for r in rs)
            clean = [float(r["req_s"]) for r in rs if float(r["others_share"]) < 0.10]
            w(f"| {case} | {pr} | {conns} | {s} | {len(rs)} | **{num(m['req_s'])}** | {num(m['p50_ms'], 2)} | "
              f"{num(m['p99_ms'], 1)} | {num(m['srv_cpu_s'], 2)} | {num(m['req_per_srv_cpu_s'])} | "
              f"{num(100 * m['others_share'])} % | {sock}/{status} | "
              + (f"{len(clean)}: {num(med(clean))}" if clean else "0") + " |")
    w("")

memagg = {}
for r in mem:
    memagg[(r["case"], proto(r), r["server"])] = r

if "nginx" in order and "pi-failover" in order and (agg or memagg):
    w("## pi-failover / nginx")
    w("")
    w("Ratios of the medians above. Higher is better for req/s and req/srv-CPU-s; lower is better "
      "for p99 and peak RSS.")
    w("")
    w("| case | proto | conns | req/s | req/srv-CPU-s | p99 | peak RSS |")
    w("|---|---|---:|---:|---:|---:|---:|")
    mem_conns = {int(r["conns"]) for r in mem}
    for case, pr, conns in keys:
        a, b = agg.get((case, pr, conns, "pi-failover")), agg.get((case, pr, conns, "nginx"))
        if not (a and b):
            continue
        rss = "–"
        mp, mn = memagg.get((case, pr, "pi-failover")), memagg.get((case, pr, "nginx"))
        if conns in mem_conns and mp and mn:
            rss = ratio(float(mp["peak_hwm_kb"]), float(mn["peak_hwm_kb"]))
        w(f"| {case} | {pr} | {conns} | {ratio(a['req_s'], b['req_s'])} | "
          f"{ratio(a['req_per_srv_cpu_s'], b['req_per_srv_cpu_s'])} | {ratio(a['p99_ms'], b['p99_ms'])} | {rss} |")
    w("")

if mem:
    mc = mem[0]["conns"]
    md = mem[0]["duration_s"]
    w(f"## Peak memory (fresh server per row, {mc} connections for {md} s; "
      "sum over the server's processes)")
    w("")
    w("| case | proto | server | idle RSS MiB | peak VmHWM MiB | RSS after MiB | requests | errors sock/status |")
    w("|---|---|---|---:|---:|---:|---:|---:|")
    mkeys = []
    for r in mem:
        if (r["case"], proto(r)) not in mkeys:
            mkeys.append((r["case"], proto(r)))
    for case, pr in mkeys:
        for s in order:
            r = memagg.get((case, pr, s))
            if r:
                w(f"| {case} | {pr} | {s} | {int(r['idle_rss_kb']) / 1024:.1f} | **{int(r['peak_hwm_kb']) / 1024:.1f}** | "
                  f"{int(r['rss_after_kb']) / 1024:.1f} | {int(r['requests']):,} | "
                  f"{r['socket_errors']}/{r['status_errors']} |")
    w("")

payload = rows(payload_path) if payload_path else []
if payload:
    w("## Bytes per page view (HTML, CSS, JS; response headers and bodies as curl counts them "
      "over HTTP/2)")
    w("")
    w("Compressed: `Accept-Encoding: br, gzip, deflate`, as browsers send; pi-failover answers "
      "with the Brotli siblings, nginx (no Brotli module in Debian) with the gzip ones.")
    w("")
    w("| page view | files | server | identity B | compressed B | compressed / identity |")
    w("|---|---:|---|---:|---:|---:|")
    for r in payload:
        ident, comp = int(r["identity_bytes"]), int(r["compressed_bytes"])
        w(f"| {r['view']} | {r['files']} | {r['server']} | {ident:,} | {comp:,} | "
          f"{ratio(comp, ident)} |")
    w("")

w("Raw samples: `bench/out/samples.tsv`, `bench/out/memory.tsv`; "
  "wrk and h2load output: `bench/out/wrk/`.")
print("\n".join(out))
