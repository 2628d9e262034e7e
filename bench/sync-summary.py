#!/usr/bin/env python3
"""Write the sync benchmark's summary (Markdown) from its results TSV; bench/sync.sh runs it.

Usage: sync-summary.py --results R.tsv --versions V.txt --meta M.txt --tools "T1 T2 ..."
                       [--manifest BEFORE.tsv] [--plan MUTATION.tsv]

The summary names the site case (`site=` in the meta file: small or docs), lists the bucket's
files over 1 MB (from the manifest) and which of them the delta rewrote (from the mutation plan),
prints a table per phase, the pi-failover / peer ratios and issue 3's targets.
"""

import argparse
import csv
import re
import math
import os
import sys

BIG = 1_000_000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITES = {
    "small": "{n} Jekyll-shaped objects of 1–20 KiB from `bench/seed-bucket.py`",
    "docs": "a documentation site from `bench/gen-docs-site.py`: ~900 pages of 2–60 KB, CSS and JS, "
            "50 images of 50–500 KB and a few large text files",
}


def read_tsv_manifest(path):
    out = {}
    if path and os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                key, _md5, size = line.rstrip("\n").split("\t")
                out[key] = int(size)
    return out


def read_plan(path):
    out = []
    if path and os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                kind, _, key = line.rstrip("\n").partition("\t")
                out.append((kind, key))
    return out


def rel(path):
    """The path from the repository's root when it is inside it (bench/out/...)."""
    if not path:
        return path
    r = os.path.relpath(os.path.abspath(path), REPO)
    return os.path.abspath(path) if r.startswith("..") else r


def f(x, d=2):
    return f"{x:,.{d}f}"


def i(x):
    return f"{int(x):,}"


def mb(n):
    return f"{n / 1e6:.1f} MB"


def ratio(a, b):
    a, b = float(a), float(b)
    if b == 0:
        return "–" if a == 0 else "∞"
    x = a / b
    return f"{x:.2f}" if x == 0 or x >= 0.1 else f"{x:.2g}"


def tree(r):
    s = "ok" if r["tree"] == "ok" else "**" + ", ".join(
        f"{k} {r[k]}" for k in ("missing", "stale", "extra") if int(r[k])) + "**"
    if r["rc"] != "0":
        s += f" (**exit {r['rc']}**)"
    return s


def switched_after(work, phase):
    """Seconds until pi-failover switched the site in, from its report in the run's log, when
    it made a second generation for compressed siblings (the report then says so)."""
    if not work:
        return None
    path = os.path.join(work, "logs", f"pi-failover-{phase}.log")
    if not os.path.exists(path):
        return None
    match = re.search(r"switched in after ([0-9.]+) s", open(path, errors="replace").read())
    return float(match.group(1)) if match else None


def summarize(args):
    with open(args.results, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    meta = {}
    if os.path.exists(args.meta):
        for line in open(args.meta):
            k, _, v = line.rstrip("\n").partition("=")
            meta[k] = v
    versions = open(args.versions).read().strip().splitlines() if os.path.exists(args.versions) else []
    order = args.tools.split()
    present = []
    for r in rows:
        if r["tool"] not in present:
            present.append(r["tool"])
    order = [t for t in order if t in present] + [t for t in present if t not in order]
    by = {(r["phase"], r["tool"]): r for r in rows}
    n = int(rows[0]["objects"]) if rows else int(meta.get("objects", "0") or 0)
    site = (rows[0].get("site") if rows else None) or meta.get("site") or "small"
    sizes = read_tsv_manifest(args.manifest)
    plan = read_plan(args.plan)

    out = []
    w = out.append
    total = int(meta.get("bytes", "0") or 0)
    w(f"# S3 → local sync, {site} site: {i(n)} objects ({mb(total)}), moto_server on 127.0.0.1")
    w("")
    w(f"The bucket: {SITES.get(site, site).format(n=i(n))}.")
    big = sorted((k for k, s in sizes.items() if s >= BIG), key=lambda k: -sizes[k])
    if big:
        w(f"Files over 1 MB ({len(big)}, {mb(sum(sizes[k] for k in big))} together): "
          + ", ".join(f"`{k}` {mb(sizes[k])}" for k in big) + ".")
    w("")
    w("One run of each tool per phase, all on the same bucket in the same run. Phases: **full** "
      "(into an empty directory), **noop** (the same sync again), **delta** (after "
      f"{meta.get('changed', '?')} objects were rewritten — {meta.get('same_size', '?')} of them "
      f"same-size edits — and {meta.get('deleted', '?')} deleted; each tool from its own synced copy). "
      "Requests are counted from moto's access log; the local tree is checked against the bucket by MD5 "
      "after every run.")
    big_changed = [(kind, k) for kind, k in plan if kind != "deleted" and sizes.get(k, 0) >= BIG]
    if big_changed:
        w("")
        w("The delta rewrote these files over 1 MB: " + ", ".join(
            f"`{k}` ({'same size: one letter changed' if kind == 'same-size' else 'resized'})"
            for kind, k in big_changed) + ".")
    w("")
    for v in versions:
        w("- " + v)
    w("")
    titles = {"full": "full sync into an empty directory", "noop": "no-op sync (nothing changed)",
              "delta": f"delta sync ({meta.get('changed', '?')} rewritten, {meta.get('same_size', '?')} of them "
                       f"same-size; {meta.get('deleted', '?')} deleted)"}
    for phase in ("full", "noop", "delta"):
        prs = [by[(phase, t)] for t in order if (phase, t) in by]
        if not prs:
            continue
        w(f"## {phase}: {titles[phase]}")
        w("")
        w("| tool | wall s | requests | LIST | HEAD | GET | other | peak RSS MB | CPU s | local tree = bucket |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in prs:
            cpu = float(r["user_s"]) + float(r["sys_s"])
            w(f"| {r['label']} | {f(float(r['wall_s']))} | {i(r['requests'])} | {i(r['list'])} | {i(r['head'])} | "
              f"{i(r['get'])} | {i(r['other'])} | {f(int(r['peak_rss_kb']) / 1024, 1)} | {f(cpu)} | {tree(r)} |")
        w("")

    if "pi-failover" in order and len(order) > 1:
        peers = [t for t in order if t != "pi-failover"]
        phases = [p for p in ("full", "noop", "delta") if (p, "pi-failover") in by]
        w("## pi-failover / peer")
        w("")
        w("Ratios of pi-failover's figure to the peer's in the same phase: below 1 means pi-failover "
          "took less time or made fewer requests.")
        w("")
        w("| peer | " + " | ".join(f"{p} wall | {p} requests" for p in phases) + " |")
        w("|---|" + "---:|---:|" * len(phases))
        for t in peers:
            cells = []
            for p in phases:
                a, b = by.get((p, "pi-failover")), by.get((p, t))
                if a and b:
                    cells += [ratio(a["wall_s"], b["wall_s"]), ratio(a["requests"], b["requests"])]
                else:
                    cells += ["–", "–"]
            label = next(r["label"] for r in rows if r["tool"] == t)
            w(f"| {label} | " + " | ".join(cells) + " |")
        w("")

        w("## Targets (issue 3, item 10)")
        w("")

        def mark(ok):
            return "✅" if ok else "❌"
        pf = {p: by.get((p, "pi-failover")) for p in ("full", "noop", "delta")}
        lines = []
        if pf["noop"]:
            want_req = math.ceil(n / 1000)
            got = int(pf["noop"]["requests"])
            lines.append(f"{mark(got <= want_req)} no-op makes ⌈N/1000⌉ = {want_req} requests: {got} "
                         f"(LIST {pf['noop']['list']}, HEAD {pf['noop']['head']}, GET {pf['noop']['get']}, "
                         f"other {pf['noop']['other']})")
            fast = by.get(("noop", "rclone-fast"))
            if fast:
                a, b = float(pf["noop"]["wall_s"]), float(fast["wall_s"])
                lines.append(f"{mark(a <= b)} no-op at least as fast as rclone `--fast-list --checksum`: "
                             f"{a:.2f} s vs {b:.2f} s")
        if pf["full"]:
            peers_full = [by[("full", t)] for t in peers if ("full", t) in by]
            if peers_full:
                a = float(pf["full"]["wall_s"])
                best = min(peers_full, key=lambda r: float(r["wall_s"]))
                lines.append(f"{mark(all(a < float(r['wall_s']) for r in peers_full))} full sync faster than "
                             f"every peer: {a:.2f} s vs fastest peer {best['label']} {float(best['wall_s']):.2f} s")
        served = switched_after(args.work, "full")
        fast = by.get(("full", "rclone-fast"))
        if pf["full"] and served is not None and fast:
            b = float(fast["wall_s"])
            lines.append(f"{mark(served <= b)} full: the verified site served before rclone `--fast-list "
                         f"--checksum` finished: after {served:.2f} s vs {b:.2f} s (pi-failover's second "
                         f"generation, adding the last compressed siblings, ended at {float(pf['full']['wall_s']):.2f} s)")
        if pf["delta"]:
            lines.append(f"{mark(pf['delta']['tree'] == 'ok' and pf['delta']['rc'] == '0')} delta leaves the "
                         f"exact bucket (no same-size edit missed): {tree(pf['delta'])}")
        rss = [int(r["peak_rss_kb"]) for r in pf.values() if r]
        if rss:
            lines.append(f"{mark(max(rss) < 32 * 1024)} peak RSS under 32 MB in every phase: "
                         f"{max(rss) / 1024:.1f} MB")
        bad = [p for p, r in pf.items() if r and (r["rc"] != "0" or r["tree"] != "ok")]
        if bad:
            lines.append(f"❌ pi-failover failed or left a wrong tree in: {', '.join(bad)}")
        for line in lines:
            w("- " + line)
        w("")

    reqs = sum(int(r["requests"]) for r in rows)
    moto_ms = 1000 * sum(float(r["moto_cpu_s"]) for r in rows) / reqs if reqs else float("nan")
    others = sorted(float(r["others_share"] or 0) for r in rows) or [0.0]
    work = rel(args.work) if args.work else "bench/out/sync"
    w("Wall and peak RSS from `/usr/bin/time -v` (the tool's process; for aws-cli and s3cmd the Python "
      "interpreter). CPU s = user + system of the tool. Every wall time includes moto's: a single Python "
      f"process that used {moto_ms:.1f} ms of CPU per request in this run, so compare tools within one run "
      "rather than absolute seconds. Other processes on the host used "
      f"{100 * others[len(others) // 2]:.0f} % of the machine's CPU during the median run "
      f"(at most {100 * others[-1]:.0f} %); more than a few % makes wall times noisy. "
      f"Raw rows: `{rel(args.results)}`; tool output, `time -v` output and tree checks: "
      f"`{work}/{{logs,times,checks}}/`.")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", required=True)
    p.add_argument("--versions", required=True)
    p.add_argument("--meta", required=True)
    p.add_argument("--tools", required=True, help="the tools in run order, space-separated")
    p.add_argument("--manifest", help="the bucket before the delta (key, MD5, size)")
    p.add_argument("--plan", help="the delta's plan (kind, key)")
    p.add_argument("--work", help="the run's work directory (named in the summary)")
    print(summarize(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
