#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/compare's table: the median of every figure for A and B, and B/A.

    compare_report.py RAW.tsv NAME_A NAME_B

RAW.tsv has one measurement a line (after a header): run, server (A or B), test, metric,
value, the metrics being those of `report.py wrk` (rps, p99_us, cpu_us_per_req, requests,
non2xx, sock_errors). Each row gives the two medians over runs, B/A of the medians, and the
median and range of the per-run ratios (run i of B over run i of A: the two ran back to back,
so their ratio drifts less than either figure). A figure whose runs saw non-2xx answers or
socket errors is marked †.
"""
import statistics
import sys
from collections import defaultdict

TESTS = (
    ("keepalive", "keep-alive /plaintext"),
    ("pipelined", "pipelined ×16 /plaintext"),
    ("json", "keep-alive /json"),
)
METRICS = (
    ("rps", "req/s ↑", lambda v: f"{v:,.0f}"),
    ("p99_us", "wrk p99 ↓", lambda v: f"{v / 1e3:.2f} ms" if v >= 1e3 else f"{v:.0f} µs"),
    ("cpu_ns", "server CPU ns/req ↓", lambda v: f"{v:,.0f}"),
    ("server_pct", "server busy, % of its cpu", lambda v: f"{v:.0f}%"),
    ("other_pct", "other load on the server's cpu", lambda v: f"{v:.0f}%"),
)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    raw, name_a, name_b = sys.argv[1:]
    vals = defaultdict(dict)  # (server, test, metric) -> {run: value}
    with open(raw) as f:
        next(f)
        for line in f:
            run, server, test, metric, value = line.rstrip("\n").split("\t")
            vals[(server, test, metric)][int(run)] = float(value)
    # wrk sometimes prints "99%    0.00us" (its histogram, not the server): such a p99 is left
    # out of the median and counted.
    zero_p99 = defaultdict(int)
    for key in list(vals):
        if key[2] == "p99_us":
            for r in [r for r, v in vals[key].items() if v == 0]:
                del vals[key][r]
                zero_p99[(key[0], key[1])] += 1
    for key in list(vals):
        if key[2] == "cpu_us_per_req":
            vals[(key[0], key[1], "cpu_ns")] = {r: v * 1e3 for r, v in vals[key].items()}

    def bad(server, test):
        return any(v != 0 for m in ("non2xx", "sock_errors")
                   for v in vals.get((server, test, m), {}).values())

    lines = [f"| test | figure | A: {name_a} | B: {name_b} | B/A (medians) "
             f"| B/A per run: median [min, max] | runs |",
             "|---|---|--:|--:|--:|--:|--:|"]
    for test, tname in TESTS:
        for metric, mname, fmt in METRICS:
            a, b = vals.get(("A", test, metric), {}), vals.get(("B", test, metric), {})
            if not a or not b:
                continue
            ma, mb = statistics.median(a.values()), statistics.median(b.values())
            paired = sorted(b[r] / a[r] for r in a if r in b and a[r])
            pr = (f"{statistics.median(paired):.3f} [{paired[0]:.3f}, {paired[-1]:.3f}]"
                  if paired else "—")
            ca = fmt(ma) + (" †" if bad("A", test) else "")
            cb = fmt(mb) + (" †" if bad("B", test) else "")
            if metric in ("server_pct", "other_pct"):  # context, not a figure to compare
                pr = ratio = "—"
            else:
                ratio = f"{mb / ma:.3f}" if ma else "—"
            lines.append(f"| {tname} | {mname} | {ca} | {cb} | {ratio} | {pr} "
                         f"| {len(a)}+{len(b)} |")
    print("\n".join(lines))
    for (server, test), n in sorted(zero_p99.items()):
        print(f"\nnote: wrk printed a p99 of 0.00us in {n} run(s) of {server} {test}: left out")


if __name__ == "__main__":
    main()
