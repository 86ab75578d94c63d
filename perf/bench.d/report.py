#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/bench's arithmetic: turns tool output into metric lines, and the raw runs into the table.

    report.py wrk CPU_NS               wrk --latency output (stdin) -> "metric<TAB>value" lines
                                       (bytes_read: wrk's "read", to the 2 decimals it gives)
    report.py load CPU_NS [BYTES]      coil-load -format json (stdin) -> the same
    report.py table RAW.tsv RATES DAT  the markdown table on stdout; p99 by rate into DAT

CPU_NS is the server's CPU time over the run (nanoseconds, all its threads), "-" if not
measured; BYTES is the request body size, for MB/s ("-" or absent: none). Latencies come out
in microseconds.

The raw file has one measurement a line: run, server, test, param, metric, value. Every figure
in the table is the median over runs of one (server, test, param, metric); a figure whose runs
saw errors (non-2xx answers, socket errors, failed requests) is marked †, an open-loop figure
from a run that answered under 95% of the offered rate ‡ (it measures a queue, not a server).
"""
import json
import re
import statistics
import sys
from collections import defaultdict

SERVERS = ("coil", "nginx", "h2o")
WRK_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def emit(metrics):
    for name, value in metrics.items():
        print(f"{name}\t{value:.6g}" if isinstance(value, float) else f"{name}\t{value}")


def add_cpu(metrics, cpu_ns, requests):
    if cpu_ns != "-" and requests > 0:
        metrics["cpu_us_per_req"] = int(cpu_ns) / 1e3 / requests


def parse_wrk(text, cpu_ns):
    """wrk counts responses, so pipelined runs report every request of a batch."""
    m = {"requests": 0, "rps": 0.0, "p99_us": 0.0, "non2xx": 0, "sock_errors": 0}
    for line in text.splitlines():
        f = line.split()
        if "requests in" in line:
            m["requests"] = int(f[0])
            # "N requests in 3.00s, 12.34MB read": every byte read, heads included (KB = 1024)
            size = re.search(r"([\d.]+)([KMGTP]?)B read", line)
            if size:
                m["bytes_read"] = round(float(size[1]) * 1024 ** " KMGTP".index(size[2] or " "))
        elif f[:1] == ["Requests/sec:"]:
            m["rps"] = float(f[1])
        elif f[:1] == ["99%"]:
            num, unit = re.fullmatch(r"([\d.]+)([a-z]+)", f[1]).groups()
            m["p99_us"] = float(num) * WRK_UNITS_US[unit]
        elif line.lstrip().startswith("Non-2xx or 3xx responses:"):  # wrk indents it
            m["non2xx"] = int(f[-1])
        elif line.lstrip().startswith("Socket errors:"):
            m["sock_errors"] = sum(int(n) for n in re.findall(r"\d+", line))
    if m["requests"] == 0:
        sys.exit("report.py: no request count in wrk's output:\n" + text)
    add_cpu(m, cpu_ns, m["requests"])
    emit(m)


def parse_load(text, cpu_ns, body_bytes):
    """Uses vegeta's field names: latencies in ns, "throughput" = successful answers/s."""
    r = json.loads(text)
    lat = r["latencies"]
    m = {
        "requests": r["requests"],
        "rps": float(r["throughput"]),
        "offered_rps": float(r["rate"]),
        "p50_us": lat["50th"] / 1e3,
        "p99_us": lat["99th"] / 1e3,
        "p999_us": lat["99.9th"] / 1e3,
        "max_us": lat["max"] / 1e3,
        "success": float(r["success"]),
        "errors": sum(r.get("error_counts", {}).values()),
    }
    if body_bytes not in (None, "-"):
        m["mb_per_s"] = m["rps"] * int(body_bytes) / 1e6
    add_cpu(m, cpu_ns, r["responses"])
    emit(m)


class Runs:
    """The raw file, indexed: medians and error flags per (server, test, param, metric)."""

    def __init__(self, path):
        self.values = defaultdict(list)
        with open(path) as f:
            next(f)  # column names
            for line in f:
                _run, server, test, param, metric, value = line.rstrip("\n").split("\t")
                self.values[(server, test, param, metric)].append(float(value))

    def median(self, server, test, param, metric):
        v = self.values.get((server, test, param, metric))
        return statistics.median(v) if v else None

    def failed(self, server, test, param):
        """True if any run of this test saw errors or failed requests."""
        def bad(metric, ok):
            return any(x != ok for x in self.values.get((server, test, param, metric), []))
        return (bad("non2xx", 0) or bad("sock_errors", 0) or bad("errors", 0)
                or bad("success", 1) or bad("closed", 0))

    def fell_behind(self, server, test, param):
        """True if in any open-loop run under 95% of the offered requests were answered."""
        got = self.values.get((server, test, param, "rps"), [])
        offered = self.values.get((server, test, param, "offered_rps"), [])
        return any(g < 0.95 * o for g, o in zip(got, offered))


def fmt_us(us):
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.1f} µs" if us < 100 else f"{us:.0f} µs"


def fmt_rps(v):
    return f"{v:,.0f} req/s"


def fmt_bytes(v):
    return f"{v:,.0f} B"


def fmt_mib(kib):
    return f"{kib / 1024:.1f} MiB"


def fmt_cpu(us):
    return f"{us:.2f} µs"


def fmt_rate(r):
    return f"{r / 1000:g}k"


def fmt_mbs(v):
    return f"{v:,.0f} MB/s"


class Table:
    def __init__(self, runs):
        self.runs = runs
        self.lines = ["| measurement | coil | nginx | h2o | coil/nginx | h2o/nginx |",
                      "|---|--:|--:|--:|--:|--:|"]

    def cell(self, server, test, param, metric, fmt):
        v = self.runs.median(server, test, param, metric)
        if v is None:
            return None, "—"
        mark = " †" if self.runs.failed(server, test, param) else ""
        mark += " ‡" if self.runs.fell_behind(server, test, param) else ""
        return v, fmt(v) + mark

    def compare(self, label, test, param, metric, fmt):
        """A row for all three servers, with coil and h2o as multiples of nginx."""
        vals, cells = zip(*(self.cell(s, test, param, metric, fmt) for s in SERVERS))
        ngx = vals[1]
        ratios = [f"{v / ngx:.2f}×" if v is not None and ngx else "—"
                  for v in (vals[0], vals[2])]
        self.lines.append(f"| {label} | " + " | ".join(list(cells) + ratios) + " |")

    def coil_only(self, label, test, param, metric, fmt, missing="—"):
        _, c = self.cell("coil", test, param, metric, fmt)
        self.lines.append(f"| {label} | {missing if c == '—' else c} | — | — | — | — |")

    def heading(self, text):
        self.lines.append(f"| **{text}** | | | | | |")


def build_table(raw, rates, dat):
    runs = Runs(raw)
    t = Table(runs)
    t.heading("closed loop, wrk -t1, 64 connections")
    t.compare("keep-alive /plaintext: throughput ↑", "keepalive", "-", "rps", fmt_rps)
    t.compare("keep-alive /plaintext: wrk p99 ↓", "keepalive", "-", "p99_us", fmt_us)
    t.compare("pipelined ×16 /plaintext: throughput ↑", "pipelined", "-", "rps", fmt_rps)
    t.compare("server CPU per request, keep-alive ↓", "keepalive", "-", "cpu_us_per_req", fmt_cpu)
    t.compare("server CPU per request, pipelined ↓", "pipelined", "-", "cpu_us_per_req", fmt_cpu)
    t.heading("memory")
    t.compare("RSS of a fresh server (nginx: its worker)", "idle", "-", "rss_before_kib", fmt_mib)
    t.compare("RSS growth per idle keep-alive connection ↓", "idle", "-", "bytes_per_conn",
              fmt_bytes)
    t.compare("response to GET /plaintext, head + body", "size", "-", "bytes", fmt_bytes)
    t.heading("open loop, coil-load -rate R, 64 connections")
    for r in rates:
        for metric, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
            t.compare(f"{name} at {fmt_rate(r)} req/s ↓", "open", str(r), metric, fmt_us)
    t.heading("HttpArena workloads, coil alone, coil-load -max")
    for test, what in (("arena-baseline", "baseline: GET + POST /baseline11"),
                       ("arena-json", "json: GET /json/{1..50}?m=")):
        t.coil_only(f"{what}: throughput ↑", test, "-", "rps", fmt_rps)
        t.coil_only(f"{what}: p99 ↓", test, "-", "p99_us", fmt_us)
    for size, name in (("1048576", "1 MiB"), ("10485760", "10 MiB")):
        test = "arena-upload"
        if runs.median("coil", test, size, "missing") is not None:
            t.coil_only(f"upload {name}: POST /upload", test, size, "rps", fmt_rps,
                        "n/a (no /upload)")
            continue
        t.coil_only(f"upload {name}: throughput ↑", test, size, "rps", fmt_rps)
        t.coil_only(f"upload {name}: bandwidth ↑", test, size, "mb_per_s", fmt_mbs)
        t.coil_only(f"upload {name}: p99 ↓", test, size, "p99_us", fmt_us)
    print("\n".join(t.lines))
    write_chart_data(runs, dat)


def write_chart_data(runs, dat):
    """One line per offered rate: rate, then each server's median p99 in µs (NaN if none)."""
    rates = sorted({int(p) for (_, test, p, _) in runs.values if test == "open"})
    with open(dat, "w") as f:
        f.write("# rate " + " ".join(SERVERS) + "  (median p99, µs)\n")
        for r in rates:
            meds = [runs.median(s, "open", str(r), "p99_us") for s in SERVERS]
            f.write(f"{r} " + " ".join("NaN" if m is None else f"{m:.1f}" for m in meds) + "\n")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "wrk":
        parse_wrk(sys.stdin.read(), sys.argv[2])
    elif cmd == "load":
        parse_load(sys.stdin.read(), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
    elif cmd == "table":
        build_table(sys.argv[2], [int(r) for r in sys.argv[3].split()], sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
