#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/proxy's arithmetic.

    report.py wrk CPU_NS    wrk --latency output (stdin) -> "metric<TAB>value" lines:
                            requests, rps, p99_us, non2xx, sock_errors, cpu_us_per_req
    report.py RAW.tsv       the markdown tables of the runs

RAW.tsv has one measurement a line (after a header): run, server, metric, value. Servers:
coil, nginx, h2o (proxies, GET /up/canned), relay (coil's handler-side client, GET
/relay/canned). Metrics: those of `perf/bench.d/report.py wrk` (requests, rps, p99_us, non2xx,
sock_errors, cpu_us_per_req: schedstat) and perf/proxy's own (cpu_us_per_req_stat: utime+stime
ticks; upstream_cpu_us_per_req; server_busy_pct: the server's CPU over wall time;
server_cpu_busy_pct and load_cpu_busy_pct: /proc/stat; upstream_conns: connections the
upstream accepted during the run; upstream_req_per_req; wall_s). Every figure is the median
over runs; the "vs nginx" column is the ratio of the medians, and under the table the ratio of
each run to nginx's run of the same round is given too (drift on a shared machine hits both).
"""
import re
import statistics
import sys
from collections import defaultdict

PROXIES = ("coil", "nginx", "h2o")
NAMES = {"coil": "coil --proxy", "nginx": "nginx proxy_pass", "h2o": "h2o proxy.reverse.url",
         "relay": "coil demo, /relay/* (coil_fetch)"}
TARGET = 0.6
WRK_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def parse_wrk(text, cpu_ns):
    """wrk 4's summary; its lines are indented ("  Non-2xx or 3xx responses: N")."""
    m = {"requests": 0, "rps": 0.0, "p99_us": 0.0, "non2xx": 0, "sock_errors": 0}
    for line in text.splitlines():
        f = line.split()
        if "requests in" in line:
            m["requests"] = int(f[0])
        elif f[:1] == ["Requests/sec:"]:
            m["rps"] = float(f[1])
        elif f[:1] == ["99%"]:
            num, unit = re.fullmatch(r"([\d.]+)([a-z]+)", f[1]).groups()
            m["p99_us"] = float(num) * WRK_UNITS_US[unit]
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            m["non2xx"] = int(f[-1])
        elif line.strip().startswith("Socket errors:"):
            m["sock_errors"] = sum(int(n) for n in re.findall(r"\d+", line))
    if m["requests"] == 0:
        sys.exit("report.py: no request count in wrk's output:\n" + text)
    m["cpu_us_per_req"] = int(cpu_ns) / 1e3 / m["requests"]
    for name, value in m.items():
        print(f"{name}\t{value:.6g}" if isinstance(value, float) else f"{name}\t{value}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "wrk":
        parse_wrk(sys.stdin.read(), sys.argv[2])
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    vals = defaultdict(list)  # (server, metric) -> [values], run order
    byrun = defaultdict(dict)  # (server, metric) -> {run: value}
    with open(sys.argv[1]) as f:
        next(f)
        for line in f:
            run, server, metric, value = line.rstrip("\n").split("\t")
            vals[(server, metric)].append(float(value))
            byrun[(server, metric)][run] = float(value)

    def med(server, metric):
        v = vals.get((server, metric))
        return statistics.median(v) if v else None

    def bad(server):
        return any(x != 0 for m in ("non2xx", "sock_errors") for x in vals.get((server, m), []))

    ngx_cpu = med("nginx", "cpu_us_per_req")

    def other(server):
        """How busy the server's cpu was beyond the server: other processes, interrupts."""
        cpu, own = byrun[(server, "server_cpu_busy_pct")], byrun[(server, "server_busy_pct")]
        v = [cpu[r] - own[r] for r in cpu if r in own]
        return statistics.median(v) if v else None

    def row(server):
        def f(metric, fmt):
            v = med(server, metric)
            return "—" if v is None else fmt(v)
        cpu = med(server, "cpu_us_per_req")
        ratio = "—"
        if cpu is not None and ngx_cpu:
            ratio = f"{cpu / ngx_cpu:.2f}×"
        mark = " †" if bad(server) else ""
        return ("| " + " | ".join([
            NAMES[server] + mark,
            f("rps", lambda v: f"{v:,.0f}"),
            f("p99_us", fmt_us),
            f("cpu_us_per_req", lambda v: f"{v:.2f} µs"),
            ratio,
            f("server_busy_pct", lambda v: f"{v:.0f}%"),
            fmt_other(other(server)),
            f("load_cpu_busy_pct", lambda v: f"{v:.0f}%"),
            f("upstream_cpu_us_per_req", lambda v: f"{v:.2f} µs"),
            f("upstream_conns", lambda v: f"{v:.0f}"),
            f("upstream_req_per_req", lambda v: f"{v:.3f}"),
            str(len(vals.get((server, "rps"), []))),
        ]) + " |")

    head = ["| server | req/s ↑ | wrk p99 ↓ | server CPU per request ↓ | vs nginx | server busy "
            "| other load on its cpu | load cpu busy (wrk + upstream) | upstream CPU per request "
            "| upstream conns opened per run | upstream requests per request | runs |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    out = []
    proxies = [s for s in PROXIES if (s, "rps") in vals]
    if proxies:
        out += ["### proxied: GET /up/canned → upstream GET /canned (100-byte body)", ""]
        out += head + [row(s) for s in proxies] + [""]
    if ("relay", "rps") in vals:
        out += ["### coil's handler-side client: GET /relay/canned → one coil_fetch of /canned",
                "", *head, row("relay"), ""]
        if ngx_cpu:
            out += ["(vs nginx: against nginx as a proxy, for scale)", ""]

    # The target, and the same ratio run by run (paired within a round) and from the tick
    # counts of /proc/PID/stat.
    for s in ("coil", "h2o", "relay"):
        c = med(s, "cpu_us_per_req")
        if c is None or not ngx_cpu:
            continue
        pairs = [v / byrun[("nginx", "cpu_us_per_req")][r]
                 for r, v in byrun[(s, "cpu_us_per_req")].items()
                 if byrun[("nginx", "cpu_us_per_req")].get(r)]
        st, nst = med(s, "cpu_us_per_req_stat"), med("nginx", "cpu_us_per_req_stat")
        line = (f"- {NAMES[s]}: {c:.2f} µs of server CPU per request = {c / ngx_cpu:.2f}× "
                f"nginx's {ngx_cpu:.2f} µs")
        if pairs:
            line += (f"; run by run {statistics.median(pairs):.2f}× "
                     f"[{min(pairs):.2f}, {max(pairs):.2f}]")
        if st is not None and nst:
            line += f"; from utime+stime ticks {st:.2f} / {nst:.2f} µs = {st / nst:.2f}×"
        if s == "coil":
            verdict = "met" if c / ngx_cpu <= TARGET else "NOT met"
            line += f". Target ≤ {TARGET:.1f}×: **{verdict}**"
        out.append(line)
    if any(bad(s) for s in {k[0] for k in vals}):
        out.append("- † runs with non-2xx answers or socket errors (see the .tsv)")
    out.append("- server busy: the server's CPU time over the run's wall time; other load: how "
               "busy its cpu was beyond that (other processes, interrupts; tick-sampled "
               "/proc/stat, approximate); load cpu: wrk and the upstream together (near 100%: "
               "they, not the server, set req/s, and CPU per request is the figure to read)")
    out.append("- upstream conns opened per run: connections the upstream accepted during the "
               "run (a proxy that keeps its pool opens none, but a few per run are normal: wrk "
               "cuts the requests in flight at the end of a run, and a proxy closes those "
               "requests' upstream connections); upstream requests per request: 1.000 = one "
               "upstream request for each answered request")
    print("\n".join(out))


def fmt_other(v):
    return "—" if v is None else f"{v:.0f}%"


def fmt_us(us):
    if us >= 1e4:
        return f"{us / 1e3:.1f} ms"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.0f} µs"


if __name__ == "__main__":
    main()
