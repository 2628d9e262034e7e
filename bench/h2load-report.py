#!/usr/bin/env python3
"""Turn one h2load run into the report line bench/serve.sh reads from wrk's Lua hook.

usage: h2load-report.py H2LOAD_STDOUT H2LOAD_LOG_FILE

Prints `BENCH requests=... duration_us=... bytes=... p50_us=... p99_us=... connect=...
read=... write=... status=... timeout=...`, the same keys as bench/serve.sh's wrk report:

- requests: responses received in the measured window (h2load's "done");
- duration_us: the measured window ("finished in", which with `-D` is the main duration);
- bytes: "traffic: ... total" (what came over the wire: TLS records, frames, headers, bodies);
- p50_us, p99_us: percentiles of the per-request times in `--log-file` (its third column,
  microseconds from the request's start to its response's end); h2load itself only prints
  min, max, mean and sd;
- socket errors, split so that they sum to h2load's "failed": timeout ("timeout"), read
  ("errored": streams reset or connections lost), connect (the rest: clients that never got a
  connection or a handshake); status: responses with 4xx or 5xx.
"""

import re
import sys


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    # Nearest rank, as wrk's histogram reports it.
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def main(stdout_path, log_path):
    text = open(stdout_path, encoding="utf-8", errors="replace").read()

    def field(pattern, default=None):
        m = re.search(pattern, text, re.MULTILINE)
        if not m:
            if default is None:
                sys.exit(f"h2load-report: no '{pattern}' in {stdout_path}")
            return default
        return m.group(1)

    seconds = float(field(r"^finished in ([0-9.]+)s"))
    done = int(field(r"^requests: .*?(\d+) done"))
    failed = int(field(r"^requests: .*?(\d+) failed"))
    errored = int(field(r"^requests: .*?(\d+) errored"))
    timeout = int(field(r"^requests: .*?(\d+) timeout"))
    status_4xx = int(field(r"^status codes: .*?(\d+) 4xx"))
    status_5xx = int(field(r"^status codes: .*?(\d+) 5xx"))
    traffic = field(r"^traffic: .*?\((\d+)\) total")

    times = []
    with open(log_path, encoding="utf-8", errors="replace") as f:
        for line in f:
            cols = line.split("\t")
            if len(cols) >= 3 and cols[2].strip().isdigit():
                times.append(int(cols[2]))
    times.sort()
    print(
        f"BENCH requests={done} duration_us={seconds * 1e6:.0f} bytes={traffic} "
        f"p50_us={percentile(times, 50):.0f} p99_us={percentile(times, 99):.0f} "
        f"connect={max(0, failed - errored - timeout)} read={errored} write=0 status={status_4xx + status_5xx} "
        f"timeout={timeout}"
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
