#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/h2's arithmetic.

    report.py wrk CPU_NS    h2load's output on stdin, followed by a line "h2load-log<TAB>PATH"
                            when it wrote a per-request log (--log-file) -> "metric<TAB>value"
                            lines (perf/lib.sh's measure; CPU_NS "-": none)
    report.py RAW.tsv       the markdown tables of the runs

RAW.tsv has one measurement a line (after a header): run, key, metric, value, where key is
CASE/SERVER: CASE TRANSPORT-PATH-mM (TRANSPORT h2: over TLS, ALPN; h2c: cleartext, prior
knowledge; PATH plaintext, json or file; M h2load's -m, streams per connection); SERVER coil, nginx
or h2o. Metrics: requests (those h2load finished: "done"), rps (h2load's: finished over -D),
p50_us, p99_us, p999_us (from the per-request log, every request h2load finished), mean_us
(h2load's "time for request" mean), non2xx, sock_errors (h2load's failed + errored + timed out),
unfinished (started but not finished when -D ran out), bytes_read, head_bytes, data_bytes
(h2load's traffic: total, HPACK-coded headers, DATA payload), tls13 (1: TLS 1.3), cpu_us_per_req
(the server's CPU, schedstat), perf/lib.sh's cpu_us_per_req_stat, server_busy_pct,
server_cpu_busy_pct, load_cpu_busy_pct, wall_s, and coil's own counters over the run
(coil_h2_conns, coil_h2_streams, coil_h2_abuse). Every figure is the median over runs; a ratio
is the ratio of two medians, with, for the CPU per request, the range of the same ratio run by
run (against the other server's run of the same round) after it.
"""
import importlib.util
import math
import os
import re
import statistics
import sys


def _load(name, *path):
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", *path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _load("bench_report", "bench.d", "report.py")
tls = _load("tls_report", "tls.d", "report.py")  # its Runs (CASE/SERVER keys) and formatting
opt, pct = tls.opt, tls.pct

SERVERS = ("coil", "nginx", "h2o")
PAIRS = (("coil", "nginx"), ("coil", "h2o"), ("h2o", "nginx"))
TRANSPORTS = {"h2": "h2 over TLS (ALPN h2, TLS 1.3)", "h2c": "h2c: cleartext, prior knowledge"}
UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6}


def percentile(sorted_values, q):
    """Nearest rank: the smallest value with at least q of the values at or under it."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def read_log(path, done):
    """h2load's --log-file: start time (µs since the epoch), status (-1: failed), duration (µs),
    one row per request it finished."""
    with open(path) as f:
        fields = f.read().split()
    if len(fields) % 3:
        sys.exit(f"report.py: {path}: rows of 3 columns expected")
    status, durations = fields[1::3], sorted(map(int, fields[2::3]))
    if len(durations) != done:
        sys.exit(f"report.py: {path} has {len(durations)} rows, h2load says {done} done")
    bad = sum(1 for s in status if s != "-1" and not s.startswith("2"))
    return {"p50_us": float(percentile(durations, 0.50)),
            "p99_us": float(percentile(durations, 0.99)),
            "p999_us": float(percentile(durations, 0.999))}, bad


def parse_h2load(text, cpu_ns):
    m, log, proto = {}, None, None
    for line in text.splitlines():
        f = line.split()
        if line.startswith("h2load-log\t"):
            log = line.split("\t", 1)[1]
        elif line.startswith("Application protocol:"):
            proto = f[2]
        elif line.startswith("TLS Protocol:"):
            m["tls13"] = int(f[2] == "TLSv1.3")
        elif line.startswith("finished in"):
            m["rps"] = float(re.search(r"([\d.]+) req/s", line)[1])
        elif line.startswith("requests:"):
            n = {k: int(v) for v, k in re.findall(r"(\d+) (\w+)", line)}
            m["requests"] = n["done"]
            m["unfinished"] = n["started"] - n["done"]
            m["sock_errors"] = n["failed"] + n["errored"] + n["timeout"]
        elif line.startswith("status codes:"):
            n = {k: int(v) for v, k in re.findall(r"(\d+) (\dxx)", line)}
            m["non2xx"] = n["3xx"] + n["4xx"] + n["5xx"]
        elif line.startswith("traffic:"):
            b = [int(x) for x in re.findall(r"\((\d+)\)", line)]
            m["bytes_read"], m["head_bytes"], m["data_bytes"] = b[0], b[1], b[2]
        elif line.startswith("time for request:"):
            g = re.fullmatch(r"([\d.]+)(us|ms|s)", f[5])
            m["mean_us"] = float(g[1]) * UNITS_US[g[2]]
    if "requests" not in m or "non2xx" not in m or "bytes_read" not in m:
        sys.exit("report.py: no request counts in h2load's output:\n" + text)
    if proto not in ("h2", "h2c"):
        sys.exit(f"report.py: h2load spoke {proto or 'no protocol it named'}, not h2 or h2c:\n"
                 + text)
    if m["requests"] == 0:
        sys.exit("report.py: h2load finished no request:\n" + text)
    if log:
        pcts, bad = read_log(log, m["requests"])
        m.update(pcts)
        m["non2xx"] = max(m["non2xx"], bad)  # the log's non-2xx rows (-1: failed, counted above)
    bench.add_cpu(m, cpu_ns, m["requests"])
    bench.emit(m)


def ratio_cell(runs, case, a, b, metric, paired=False):
    va, vb = runs.med(case, a, metric), runs.med(case, b, metric)
    if va is None or not vb:
        return "—"
    cell = f"{va / vb:.2f}×"
    pairs = runs.paired(case, a, b, metric) if paired else []
    if len(pairs) > 1:
        cell += f" [{min(pairs):.2f}–{max(pairs):.2f}]"
    return cell


def cases_of(runs, transport):
    """The cases of a transport in the order they ran: plaintext before json, -m high to low."""
    found = {k[0] for k in runs.by_run if k[0].split("-")[0] == transport}
    order = {"plaintext": 0, "json": 1, "file": 2}

    def key(c):
        _, path, m = c.split("-")
        return order.get(path, 9), -int(m[1:])
    return sorted(found, key=key)


def transport_table(runs, transport):
    cases = cases_of(runs, transport)
    if not cases:
        return []
    out = [f"### {TRANSPORTS[transport]}", "",
           "| case | server | req/s ↑ | p99 ↓ | p50 | p99.9 | server CPU per request ↓ "
           "| body per response | head per response (HPACK) | server busy "
           "| other load on its cpu | load cpu busy (h2load) | runs |",
           "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for case in cases:
        _, path, m = case.split("-")
        for s in SERVERS:
            if not runs.has(case, s):
                continue
            out.append("| " + " | ".join([
                f"{path} -{m}", s + (" †" if runs.bad(case, s) else ""),
                opt(runs.med(case, s, "rps"), lambda v: f"{v:,.0f}"),
                opt(runs.med(case, s, "p99_us"), bench.fmt_us),
                opt(runs.med(case, s, "p50_us"), bench.fmt_us),
                opt(runs.med(case, s, "p999_us"), bench.fmt_us),
                opt(runs.med(case, s, "cpu_us_per_req"), bench.fmt_cpu),
                opt(runs.per(case, s, "data_bytes"), lambda v: f"{v:,.1f} B"),
                opt(runs.per(case, s, "head_bytes"), lambda v: f"{v:,.1f} B"),
                opt(runs.med(case, s, "server_busy_pct"), pct),
                opt(runs.other(case, s), pct),
                opt(runs.med(case, s, "load_cpu_busy_pct"), pct),
                str(len(runs.values(case, s, "rps"))),
            ]) + " |")
    out.append("")
    if any(tls.client_bound(runs, c, SERVERS) for c in cases):
        out.append("- the load cpu was ≥ 90% busy in some rows: there h2load, not the server, "
                   "sets req/s (and the latencies); read the CPU per request")
    coil = [c for c in cases if runs.values(c, "coil", "coil_h2_streams")]
    for c in coil:
        n = sum(runs.values(c, "coil", "requests"))
        st = sum(runs.values(c, "coil", "coil_h2_streams"))
        co = runs.med(c, "coil", "coil_h2_conns")
        ab = sum(runs.values(c, "coil", "coil_h2_abuse"))
        out.append(f"- coil's counters, {c}: {st / n:.3f} streams per finished request, "
                   f"{co:.0f} connections per run (median), {ab:.0f} abuse events"
                   + (" **(not 0)**" if ab else ""))
    out.append("")
    return out


def ratio_table(runs):
    cases = [c for t in TRANSPORTS for c in cases_of(runs, t)]
    pairs = [(a, b) for a, b in PAIRS if any(runs.has(c, a) and runs.has(c, b) for c in cases)]
    if not pairs:
        return []
    head = "| case |"
    rule = "|---|"
    for a, b in pairs:
        head += f" {a}/{b} req/s ↑ | {a}/{b} CPU per request ↓ | {a}/{b} p99 ↓ |"
        rule += "--:|--:|--:|"
    out = ["### ratios (of the medians; CPU per request: [lowest–highest] run by run)", "",
           head, rule]
    for c in cases:
        row = [c.replace("-m", " -m", 1)]
        for a, b in pairs:
            row += [ratio_cell(runs, c, a, b, "rps"),
                    ratio_cell(runs, c, a, b, "cpu_us_per_req", paired=True),
                    ratio_cell(runs, c, a, b, "p99_us")]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    return out


def notes():
    return ["- p50/p99/p99.9: h2load's request times (request sent to response complete, so "
            "time queued behind the other streams of the connection included), nearest rank "
            "over every request it finished in the run; req/s: h2load's, finished requests "
            "over -D",
            "- body/head per response: h2load's DATA payload and (HPACK-coded) header bytes "
            "over the requests it finished (the answers in flight when -D ran out add a "
            "little); the heads differ by server (nginx and h2o add Last-Modified, ETag or "
            "Accept-Ranges, and their own Server; nginx 1.22 indexes no response header in "
            "HPACK's dynamic table, so its heads stay larger)"]


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "wrk":
        parse_h2load(sys.stdin.read(), sys.argv[2])
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = tls.Runs(sys.argv[1])
    out = []
    for t in TRANSPORTS:
        out += transport_table(runs, t)
    out += ratio_table(runs)
    out += notes()
    print("\n".join(out))


if __name__ == "__main__":
    main()
