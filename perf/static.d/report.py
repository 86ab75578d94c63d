#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/static's arithmetic.

    report.py wrk CPU_NS    wrk --latency output, or perf/static.d/download.py's, on stdin ->
                            "metric<TAB>value" lines (perf/lib.sh's measure)
    report.py RAW.tsv       the markdown tables of the runs

RAW.tsv has one measurement a line (after a header): run, key, metric, value, where key is
CASE/SERVER: CASE rotate (wrk cycling through HttpArena's 20 static files) or big (download.py
fetching one 100 MiB file); SERVER coil, nginx or h2o. Metrics: requests (big: whole
downloads), rps, p99_us, non2xx, sock_errors, bytes_read (every byte the client read),
cpu_us_per_req (the server's CPU, schedstat), transfer_bps (rotate: wrk's Transfer/sec),
gb_per_s and cpu_ms_per_gb (big: bytes read over the client's wall time, the server's CPU over
the bytes; GB = 10^9 bytes), and perf/lib.sh's cpu_us_per_req_stat, server_busy_pct,
server_cpu_busy_pct, load_cpu_busy_pct, wall_s. Every figure is the median over runs; "vs
nginx" is the ratio of the medians, and the same ratio run by run (against nginx's run of the
same round) is given under each table.
"""
import importlib.util
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
opt, ratio, pct = tls.opt, tls.ratio, tls.pct

SERVERS = ("coil", "nginx", "h2o")
TARGET_RPS, TARGET_CPU = 1.0, 0.8  # coil vs nginx on the rotation: at least, at most
UNITS = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}


def parse_wrk(text, cpu_ns):
    """bench's wrk figures, and Transfer/sec ("757.40MB": wrk's units are powers of 1024)."""
    bench.parse_wrk(text, cpu_ns)
    g = re.search(r"^Transfer/sec:\s+([\d.]+)([KMGT]?)B", text, re.M)
    if g:
        print(f"transfer_bps\t{float(g[1]) * UNITS[g[2]]:.6g}")


def parse_download(text, cpu_ns):
    got = dict(line.split("\t") for line in text.splitlines() if line.count("\t") == 1)
    if "bytes" not in got:
        sys.exit("report.py: no byte count in download.py's output:\n" + text)
    n, b = int(got["requests"]), int(got["bytes"])
    m = {"requests": n, "rps": float(got["rps"]), "p99_us": float(got["p99_us"]),
         "non2xx": int(got["non2xx"]), "sock_errors": int(got["errors"]), "bytes_read": b,
         "gb_per_s": b / float(got["wall_s"]) / 1e9}
    if n == 0 or b == 0:
        sys.exit("report.py: download.py finished no download:\n" + text)
    bench.add_cpu(m, cpu_ns, n)
    m["cpu_ms_per_gb"] = int(cpu_ns) / 1e6 / (b / 1e9)
    bench.emit(m)


def paired_line(runs, case, s, metric, what, fmt, target=None):
    """s's median and run-by-run ratio to nginx's for one metric; target: (op, bound)."""
    v, ngx = runs.med(case, s, metric), runs.med(case, "nginx", metric)
    if v is None or not ngx:
        return None
    pairs = runs.paired(case, s, "nginx", metric)
    line = f"- {s}/nginx, {what}: {fmt(v)} / {fmt(ngx)} = {v / ngx:.2f}×"
    if pairs:
        line += f"; run by run {statistics.median(pairs):.2f}× [{min(pairs):.2f}, {max(pairs):.2f}]"
    if target:
        op, bound = target
        met = v / ngx >= bound if op == "≥" else v / ngx <= bound
        line += f". Target {op} {bound:.1f}×: **{'met' if met else 'NOT met'}**"
    return line


def stat_per(runs, case, s, per_bytes):
    """CPU from utime+stime ticks (which also count threads gone by the run's end, as
    io_uring's io-wq workers may be): per request, or per GB for the big file."""
    if not per_bytes:
        return runs.med(case, s, "cpu_us_per_req_stat")
    st, n, b = (runs.by_run.get((case, s, m), {})
                for m in ("cpu_us_per_req_stat", "requests", "bytes_read"))
    v = [st[r] * n[r] / 1e3 / (b[r] / 1e9) for r in st if n.get(r) and b.get(r)]
    return statistics.median(v) if v else None


def rotate_table(runs):
    case = "rotate"
    servers = [s for s in SERVERS if runs.has(case, s)]
    if not servers:
        return []
    rps_n, cpu_n = (runs.med(case, "nginx", m) for m in ("rps", "cpu_us_per_req"))
    out = ["### rotate: HttpArena's static rotation, 20 files in turn, "
           "Accept-Encoding: br;q=1, gzip;q=0.8 (wrk)", "",
           "| server | req/s ↑ | vs nginx | server CPU per request ↓ | vs nginx "
           "| (from ticks) | bytes/s (wrk) | bytes per response | wrk p99 ↓ | non-2xx "
           "| server busy | other load on its cpu | load cpu busy (wrk) | runs |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for s in servers:
        rps, cpu = runs.med(case, s, "rps"), runs.med(case, s, "cpu_us_per_req")
        out.append("| " + " | ".join([
            s + (" †" if runs.bad(case, s) else ""),
            opt(rps, lambda v: f"{v:,.0f}"), ratio(rps, rps_n),
            opt(cpu, bench.fmt_cpu), ratio(cpu, cpu_n),
            opt(stat_per(runs, case, s, False), bench.fmt_cpu),
            opt(runs.med(case, s, "transfer_bps"), lambda v: f"{v / 1e6:,.0f} MB/s"),
            opt(runs.per(case, s, "bytes_read"), lambda v: f"{v:,.0f} B"),
            opt(runs.med(case, s, "p99_us"), bench.fmt_us),
            f"{sum(runs.values(case, s, 'non2xx')):.0f}",
            opt(runs.med(case, s, "server_busy_pct"), pct),
            opt(runs.other(case, s), pct),
            opt(runs.med(case, s, "load_cpu_busy_pct"), pct),
            str(len(runs.values(case, s, "rps"))),
        ]) + " |")
    out.append("")
    for s in ("coil", "h2o"):
        coil = s == "coil"
        for line in (paired_line(runs, case, s, "rps", "req/s", lambda v: f"{v:,.0f}",
                                 ("≥", TARGET_RPS) if coil else None),
                     paired_line(runs, case, s, "cpu_us_per_req", "CPU per request",
                                 bench.fmt_cpu, ("≤", TARGET_CPU) if coil else None)):
            if line:
                out.append(line)
    if tls.client_bound(runs, case, servers):
        out.append("- the load cpu was ≥ 90% busy in some rows: there wrk, not the server, "
                   "sets req/s; read the CPU per request")
    out.append("- bytes per response: wrk's bytes read over its responses, heads included; "
               "bytes/s: wrk's Transfer/sec (MB = 10^6 bytes here)")
    out.append("")
    return out


def big_table(runs):
    case = "big"
    servers = [s for s in SERVERS if runs.has(case, s)]
    if not servers:
        return []
    gbs_n, cpu_n = (runs.med(case, "nginx", m) for m in ("gb_per_s", "cpu_ms_per_gb"))
    out = ["### big: GET of one 100 MiB file, again and again, keep-alive (download.py)", "",
           "| server | GB/s ↑ | vs nginx | server CPU per GB ↓ | vs nginx | (from ticks) "
           "| downloads per run | p99 per download | server busy | other load on its cpu "
           "| load cpu busy (client) | runs |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    ms = lambda v: f"{v:,.0f} ms"  # noqa: E731
    for s in servers:
        gbs, cpu = runs.med(case, s, "gb_per_s"), runs.med(case, s, "cpu_ms_per_gb")
        out.append("| " + " | ".join([
            s + (" †" if runs.bad(case, s) else ""),
            opt(gbs, lambda v: f"{v:.2f}"), ratio(gbs, gbs_n),
            opt(cpu, ms), ratio(cpu, cpu_n),
            opt(stat_per(runs, case, s, True), ms),
            opt(runs.med(case, s, "requests"), lambda v: f"{v:.0f}"),
            opt(runs.med(case, s, "p99_us"), bench.fmt_us),
            opt(runs.med(case, s, "server_busy_pct"), pct),
            opt(runs.other(case, s), pct),
            opt(runs.med(case, s, "load_cpu_busy_pct"), pct),
            str(len(runs.values(case, s, "gb_per_s"))),
        ]) + " |")
    out.append("")
    for s in ("coil", "h2o"):
        for line in (paired_line(runs, case, s, "gb_per_s", "GB/s", lambda v: f"{v:.2f}"),
                     paired_line(runs, case, s, "cpu_ms_per_gb", "CPU per GB", ms)):
            if line:
                out.append(line)
    out.append("- GB = 10^9 bytes, every byte the client read (heads, and the downloads cut at "
               "the run's end); server CPU per GB: the server's CPU over the run / those bytes. "
               "Over loopback part of the sending (TCP, the copy) can run on the client's cpu "
               "and be charged to it, so read CPU per GB beside the load cpu's busy share")
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "wrk":
        text = sys.stdin.read()
        if text.startswith("download\t"):
            parse_download(text, sys.argv[2])
        else:
            parse_wrk(text, sys.argv[2])
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = tls.Runs(sys.argv[1])
    print("\n".join(rotate_table(runs) + big_table(runs)))


if __name__ == "__main__":
    main()
