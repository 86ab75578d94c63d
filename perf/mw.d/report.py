#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/mw's tables.

    report.py RAW.tsv CONNS

RAW.tsv has one measurement a line (after a header): run, server, metric, value. Servers:
coil-bare, coil-metrics, coil-obs, coil-full, nginx (GET /json), comp-gzip, comp-br, comp-none
(json-comp: GET /json/50?m=6 with that Accept-Encoding). Metrics: those of
`perf/bench.d/report.py wrk` (requests, rps, p99_us, non2xx, sock_errors, bytes_read,
cpu_us_per_req: schedstat), those perf/lib.sh's measure adds (cpu_us_per_req_stat: utime+stime
ticks; server_busy_pct, server_cpu_busy_pct, load_cpu_busy_pct, wall_s) and perf/mw's own
(log_lines, log_minus_requests: the access log's lines in the run less wrk's requests, which
must be 0 to CONNS, the requests wrk had in flight when it stopped; head_bytes, body_bytes:
curl's sizes of one response). Every figure is the median over runs; ratios are of medians,
and the targets are also given run by run (each run against the same round's other run).
"""
import importlib.util
import os
import statistics
import sys
from collections import defaultdict

_spec = importlib.util.spec_from_file_location(
    "bench_report", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench.d",
                                 "report.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

MAIN = ("coil-bare", "coil-metrics", "coil-obs", "coil-full", "nginx")
WHAT = {"coil-bare": "no middleware", "coil-metrics": "metrics",
        "coil-obs": "metrics, access log, request ID",
        "coil-full": "coil-obs + rate limit + API key", "nginx": "nginx, access_log on"}
COMP = ("comp-none", "comp-gzip", "comp-br")
CODING = {"comp-none": "none", "comp-gzip": "gzip", "comp-br": "br"}
OBS_TARGET = 1.10  # coil-obs over coil-bare
FULL_TARGET = 0.8  # coil-full over nginx


class Runs:
    def __init__(self, path):
        self.by_run = defaultdict(dict)  # (server, metric) -> {run: value}
        with open(path) as f:
            next(f)
            for line in f:
                run, server, metric, value = line.rstrip("\n").split("\t")
                self.by_run[(server, metric)][run] = float(value)

    def has(self, server):
        return (server, "rps") in self.by_run

    def med(self, server, metric):
        v = self.by_run.get((server, metric))
        return statistics.median(v.values()) if v else None

    def values(self, server, metric):
        return list(self.by_run.get((server, metric), {}).values())

    def paired(self, a, b, metric="cpu_us_per_req"):
        """a's run over b's run of the same round, for every round both have."""
        ra, rb = self.by_run.get((a, metric), {}), self.by_run.get((b, metric), {})
        return [ra[r] / rb[r] for r in ra if rb.get(r)]

    def bad(self, server):
        return any(x != 0 for m in ("non2xx", "sock_errors") for x in self.values(server, m))

    def per(self, server, metric, denominator):
        """A run's total over its requests or wall_s, median over runs."""
        d = self.by_run.get((server, denominator), {})
        v = [t / d[r] for r, t in self.by_run.get((server, metric), {}).items() if d.get(r)]
        return statistics.median(v) if v else None


def ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def spread(pairs):
    if not pairs:
        return ""
    return f"; run by run {statistics.median(pairs):.2f}× [{min(pairs):.2f}, {max(pairs):.2f}]"


def other_load(runs, server):
    """How busy the server's cpu was beyond the server: other processes, interrupts."""
    cpu = runs.by_run.get((server, "server_cpu_busy_pct"), {})
    own = runs.by_run.get((server, "server_busy_pct"), {})
    v = [cpu[r] - own[r] for r in cpu if r in own]
    return "—" if not v else f"{statistics.median(v):.0f}%"


def opt(v, fmt):
    return "—" if v is None else fmt(v)


def main_table(runs, conns):
    servers = [s for s in MAIN if runs.has(s)]
    if not servers:
        return []
    bare, ngx = runs.med("coil-bare", "cpu_us_per_req"), runs.med("nginx", "cpu_us_per_req")
    out = ["### GET /json, one worker, keep-alive", "",
           "| server | middleware | req/s ↑ | wrk p99 ↓ | server CPU per request ↓ | vs coil-bare "
           "| vs nginx | CPU per request (ticks) | server busy | other load on its cpu "
           "| access log lines/s | log lines − requests | runs |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    log_off = []
    for s in servers:
        cpu = runs.med(s, "cpu_us_per_req")
        extra = runs.values(s, "log_minus_requests")
        if any(not 0 <= x <= conns for x in extra):
            log_off.append(s)
        out.append("| " + " | ".join([
            s + (" †" if runs.bad(s) else ""), WHAT[s],
            opt(runs.med(s, "rps"), lambda v: f"{v:,.0f}"),
            opt(runs.med(s, "p99_us"), bench.fmt_us),
            opt(cpu, bench.fmt_cpu), ratio(cpu, bare), ratio(cpu, ngx),
            opt(runs.med(s, "cpu_us_per_req_stat"), bench.fmt_cpu),
            opt(runs.med(s, "server_busy_pct"), lambda v: f"{v:.0f}%"),
            other_load(runs, s),
            opt(runs.per(s, "log_lines", "wall_s"), lambda v: f"{v:,.0f}"),
            "—" if not extra else f"{min(extra):.0f} to {max(extra):.0f}"
            + (" §" if s in log_off else ""),
            str(len(runs.values(s, "rps"))),
        ]) + " |")
    out.append("")

    def target(name, base, base_name, limit):
        cpu, ref = runs.med(name, "cpu_us_per_req"), runs.med(base, "cpu_us_per_req")
        if cpu is None or not ref:
            return
        verdict = "met" if cpu / ref <= limit else "NOT met"
        out.append(f"- {name}: {cpu:.2f} µs of server CPU per request = {cpu / ref:.2f}× "
                   f"{base_name}'s {ref:.2f} µs{spread(runs.paired(name, base))}. "
                   f"Target ≤ {limit:.2f}×: **{verdict}**")

    target("coil-obs", "coil-bare", "coil-bare", OBS_TARGET)
    target("coil-full", "nginx", "nginx", FULL_TARGET)
    for s in ("coil-metrics", "coil-obs", "coil-full"):
        if runs.has(s) and runs.has("coil-bare") and bare:
            c = runs.med(s, "cpu_us_per_req")
            out.append(f"- {s} − coil-bare: {c - bare:+.2f} µs per request"
                       f"{spread(runs.paired(s, 'coil-bare'))}")
    if any(runs.bad(s) for s in servers):
        out.append("- † runs with non-2xx answers or socket errors (see the .tsv)")
    out.append(f"- log lines − requests: the access log's new lines in a run less the requests "
               f"wrk counted, lowest to highest over the runs; 0 to {conns} expected (wrk does "
               f"not count the requests it had in flight when it stopped, the server logs them)"
               + (f"; § outside that in some runs of {', '.join(log_off)}" if log_off else ""))
    out.append("- CPU per request (ticks): from utime+stime, which also holds the CPU of "
               "threads that ended within the run (io_uring's workers); tick-sampled, so a few "
               "percent off either way")
    out.append("")
    return out


def comp_table(runs):
    keys = [k for k in COMP if runs.has(k)]
    if not keys:
        return []
    cpu0 = runs.med("comp-none", "cpu_us_per_req")
    wire0 = runs.per("comp-none", "bytes_read", "requests")
    body0 = runs.med("comp-none", "body_bytes")
    out = ["### json-comp: GET /json/50?m=6 by Accept-Encoding", "",
           "| Accept-Encoding | req/s ↑ | wrk p99 ↓ | server CPU per request ↓ | vs none "
           "| bytes per response, wrk (head + body) ↓ | vs none | body (curl) ↓ | vs none "
           "| head (curl) | runs |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for k in keys:
        cpu, wire, body = (runs.med(k, "cpu_us_per_req"), runs.per(k, "bytes_read", "requests"),
                           runs.med(k, "body_bytes"))
        out.append("| " + " | ".join([
            CODING[k] + (" †" if runs.bad(k) else ""),
            opt(runs.med(k, "rps"), lambda v: f"{v:,.0f}"),
            opt(runs.med(k, "p99_us"), bench.fmt_us),
            opt(cpu, bench.fmt_cpu), ratio(cpu, cpu0),
            opt(wire, lambda v: f"{v:,.0f} B"), ratio(wire, wire0),
            opt(body, bench.fmt_bytes), ratio(body, body0),
            opt(runs.med(k, "head_bytes"), bench.fmt_bytes),
            str(len(runs.values(k, "rps"))),
        ]) + " |")
    out.append("")
    for k in keys:
        if k != "comp-none" and cpu0 and runs.has("comp-none"):
            c = runs.med(k, "cpu_us_per_req")
            out.append(f"- {CODING[k]}: {c - cpu0:+.2f} µs of CPU per response to save "
                       f"{body0 - runs.med(k, 'body_bytes'):,.0f} body bytes"
                       f"{spread(runs.paired(k, 'comp-none'))}")
    out.append("- wrk's bytes: all it read (heads included, to the 2 decimals of its MB) over "
               "the responses it counted")
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    runs = Runs(sys.argv[1])
    print("\n".join(main_table(runs, int(sys.argv[2])) + comp_table(runs)))


if __name__ == "__main__":
    main()
