#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/tls's arithmetic.

    report.py wrk CPU_NS           wrk --latency output, or hsload's (perf/tls.d/hsload.c), on
                                   stdin -> "metric<TAB>value" lines (perf/lib.sh's measure)
    report.py s_time CPU_NS WALL_NS   openssl s_time output on stdin -> the same
    report.py RAW.tsv              the markdown tables of the runs

RAW.tsv has one measurement a line (after a header): run, key, metric, value, where key is
CASE/SERVER: CASE json-tls (wrk, keep-alive), handshake (hsload: a full TLS handshake per
request), resumed (hsload -r: a resumed one), s_time-new and s_time-reuse (openssl s_time);
SERVER coil, nginx or h2o. Metrics: requests (for hsload and s_time: connections, one request
each), rps, p99_us, non2xx, sock_errors, cpu_us_per_req (the server's CPU, schedstat), bytes_read,
and perf/lib.sh's cpu_us_per_req_stat, server_busy_pct, server_cpu_busy_pct,
load_cpu_busy_pct, wall_s; hsload's resumed, tickets, tls13, tls12, alpn_http11, close_notify,
bare_eof, p50_us; coil's own counters over the run (coil_hs, coil_resumed, coil_hs_failures);
s_time's stime_conn_per_user_s. Every figure is the median over runs; "vs nginx" is the ratio
of the medians, and the same ratio run by run (against nginx's run of the same round) is given
under each table.
"""
import importlib.util
import os
import re
import statistics
import sys
from collections import defaultdict

_spec = importlib.util.spec_from_file_location(
    "bench_report", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench.d",
                                 "report.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

SERVERS = ("coil", "nginx", "h2o")
HS_KEYS = ("resumed", "tls13", "tls12", "alpn_http11", "close_notify", "bare_eof", "p50_us",
           "bytes_read", "tickets")


def parse_hsload(text, cpu_ns):
    got = {}
    for line in text.splitlines():
        f = line.split("\t")
        if len(f) == 2 and re.fullmatch(r"[a-z0-9_]+", f[0]):
            got[f[0]] = float(f[1])
    if "connections" not in got:
        sys.exit("report.py: no connection count in hsload's output:\n" + text)
    n = int(got["connections"])
    m = {"requests": n, "rps": got["rps"], "p99_us": got["p99_us"],
         "non2xx": int(got["non2xx"]), "sock_errors": int(got["errors"])}
    for k in HS_KEYS:
        m[k] = int(got[k])
    if n == 0:
        sys.exit("report.py: hsload made no connection:\n" + text)
    bench.add_cpu(m, cpu_ns, n)
    bench.emit(m)


def parse_stime(text, cpu_ns, wall_ns):
    """s_time: "N connections in 1.23s; 456.78 connections/user sec, bytes read B" and a line
    of one character per connection ('r': resumed)."""
    m = None
    marks = "".join(line for line in text.splitlines() if re.fullmatch(r"[r*t3]+", line))
    for line in text.splitlines():
        g = re.match(r"(\d+) connections in ([\d.]+)s; ([\d.]+) connections/user sec", line)
        if g:
            m = {"requests": int(g[1]), "stime_conn_per_user_s": float(g[3])}
    if not m or m["requests"] == 0:
        sys.exit("report.py: no connection count in s_time's output:\n" + text)
    n = m["requests"]
    m["rps"] = n / (int(wall_ns) / 1e9)
    m["resumed"] = marks.count("r")
    m["wall_s"] = int(wall_ns) / 1e9
    bench.add_cpu(m, cpu_ns, n)
    m["server_busy_pct"] = 100 * int(cpu_ns) / int(wall_ns)
    bench.emit(m)


class Runs:
    def __init__(self, path):
        self.by_run = defaultdict(dict)  # (case, server, metric) -> {run: value}
        with open(path) as f:
            next(f)
            for line in f:
                run, key, metric, value = line.rstrip("\n").split("\t")
                case, _, server = key.partition("/")
                self.by_run[(case, server, metric)][run] = float(value)

    def has(self, case, server):
        return (case, server, "rps") in self.by_run

    def values(self, case, server, metric):
        return list(self.by_run.get((case, server, metric), {}).values())

    def med(self, case, server, metric):
        v = self.values(case, server, metric)
        return statistics.median(v) if v else None

    def per(self, case, server, metric, denominator="requests"):
        """A run's total over its requests, median over runs."""
        d = self.by_run.get((case, server, denominator), {})
        v = [t / d[r] for r, t in self.by_run.get((case, server, metric), {}).items() if d.get(r)]
        return statistics.median(v) if v else None

    def paired(self, case, a, b, metric="cpu_us_per_req"):
        ra = self.by_run.get((case, a, metric), {})
        rb = self.by_run.get((case, b, metric), {})
        return [ra[r] / rb[r] for r in ra if rb.get(r)]

    def bad(self, case, server):
        return any(x != 0 for m in ("non2xx", "sock_errors")
                   for x in self.values(case, server, m))

    def other(self, case, server):
        cpu = self.by_run.get((case, server, "server_cpu_busy_pct"), {})
        own = self.by_run.get((case, server, "server_busy_pct"), {})
        v = [cpu[r] - own[r] for r in cpu if r in own]
        return statistics.median(v) if v else None


def opt(v, fmt):
    return "—" if v is None else fmt(v)


def ratio(a, b):
    return "—" if a is None or not b else f"{a / b:.2f}×"


def pct(v):
    return f"{v:.0f}%"


def ratio_lines(runs, case, unit):
    out = []
    ngx = runs.med(case, "nginx", "cpu_us_per_req")
    if not ngx:
        return out
    for s in ("coil", "h2o"):
        c = runs.med(case, s, "cpu_us_per_req")
        if c is None:
            continue
        pairs = runs.paired(case, s, "nginx")
        line = f"- {s}/nginx: {c:.2f} / {ngx:.2f} µs of server CPU per {unit} = {c / ngx:.2f}×"
        if pairs:
            line += (f"; run by run {statistics.median(pairs):.2f}× "
                     f"[{min(pairs):.2f}, {max(pairs):.2f}]")
        r, rn = runs.med(case, s, "rps"), runs.med(case, "nginx", "rps")
        if r and rn:
            line += f"; {unit}s/s {r / rn:.2f}×"
        out.append(line)
    return out


def client_bound(runs, case, servers):
    busy = [runs.med(case, s, "load_cpu_busy_pct") for s in servers]
    return any(b is not None and b >= 90 for b in busy)


def json_table(runs):
    case = "json-tls"
    servers = [s for s in SERVERS if runs.has(case, s)]
    if not servers:
        return []
    ngx = runs.med(case, "nginx", "cpu_us_per_req")
    out = ["### json-tls: GET /json/N over TLS, keep-alive (wrk)", "",
           "| server | req/s ↑ | wrk p99 ↓ | server CPU per request ↓ | vs nginx "
           "| bytes per response (wrk, head + body) | server busy | other load on its cpu "
           "| load cpu busy (wrk) | runs |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for s in servers:
        cpu = runs.med(case, s, "cpu_us_per_req")
        out.append("| " + " | ".join([
            s + (" †" if runs.bad(case, s) else ""),
            opt(runs.med(case, s, "rps"), lambda v: f"{v:,.0f}"),
            opt(runs.med(case, s, "p99_us"), bench.fmt_us),
            opt(cpu, bench.fmt_cpu), ratio(cpu, ngx),
            opt(runs.per(case, s, "bytes_read"), lambda v: f"{v:,.0f} B"),
            opt(runs.med(case, s, "server_busy_pct"), pct),
            opt(runs.other(case, s), pct),
            opt(runs.med(case, s, "load_cpu_busy_pct"), pct),
            str(len(runs.values(case, s, "rps"))),
        ]) + " |")
    out.append("")
    out += ratio_lines(runs, case, "request")
    if client_bound(runs, case, servers):
        out.append("- the load cpu was ≥ 90% busy in some rows: there wrk, not the server, "
                   "sets req/s; read the CPU per request")
    out.append("")
    return out


def hs_table(runs, case, title):
    servers = [s for s in SERVERS if runs.has(case, s)]
    if not servers:
        return []
    ngx = runs.med(case, "nginx", "cpu_us_per_req")
    out = [f"### {title}", "",
           "| server | handshakes/s ↑ | p99 connect → answer ↓ | server CPU per handshake ↓ "
           "| vs nginx | resumed (client) | tickets per connection | ALPN http/1.1 "
           "| ends: close_notify / bare | coil's "
           "counters: handshakes, resumed, failed | server busy | other load on its cpu "
           "| load cpu busy (hsload) | runs |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for s in servers:
        cpu = runs.med(case, s, "cpu_us_per_req")
        n = sum(runs.values(case, s, "requests"))
        resumed = sum(runs.values(case, s, "resumed"))
        alpn = sum(runs.values(case, s, "alpn_http11"))
        cn, be = sum(runs.values(case, s, "close_notify")), sum(runs.values(case, s, "bare_eof"))
        counters = "—"
        if runs.values(case, s, "coil_hs"):
            h = sum(runs.values(case, s, "coil_hs"))
            counters = (f"{h / n:.3f}, {sum(runs.values(case, s, 'coil_resumed')) / n:.3f}, "
                        f"{sum(runs.values(case, s, 'coil_hs_failures')):.0f}"
                        " per connection")
        out.append("| " + " | ".join([
            s + (" †" if runs.bad(case, s) else ""),
            opt(runs.med(case, s, "rps"), lambda v: f"{v:,.0f}"),
            opt(runs.med(case, s, "p99_us"), bench.fmt_us),
            opt(cpu, bench.fmt_cpu), ratio(cpu, ngx),
            f"{100 * resumed / n:.1f}%" if n else "—",
            f"{sum(runs.values(case, s, 'tickets')) / n:.2f}" if n else "—",
            f"{100 * alpn / n:.1f}%" if n else "—",
            f"{cn:.0f} / {be:.0f}",
            counters,
            opt(runs.med(case, s, "server_busy_pct"), pct),
            opt(runs.other(case, s), pct),
            opt(runs.med(case, s, "load_cpu_busy_pct"), pct),
            str(len(runs.values(case, s, "rps"))),
        ]) + " |")
    out.append("")
    out += ratio_lines(runs, case, "handshake")
    if client_bound(runs, case, servers):
        out.append("- the load cpu was ≥ 90% busy: hsload (its own handshake half: key share, "
                   "signature check) sets the rate here, not the server; read the CPU per "
                   "handshake, and the server's busy share")
    out.append("")
    return out


def stime_table(runs):
    servers = [s for s in SERVERS if runs.has("s_time-new", s) or runs.has("s_time-reuse", s)]
    if not servers:
        return []
    out = ["### openssl s_time: one connection at a time, HTTP/1.0 GET of /json/N on each", "",
           "| server | new: conn/s | new: s_time's conn/user s | new: server CPU per conn ↓ "
           "| reuse: conn/s | reuse: s_time's conn/user s | reuse: server CPU per conn ↓ "
           "| reuse: resumed | runs |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for s in servers:
        row = [s]
        for case in ("s_time-new", "s_time-reuse"):
            row += [opt(runs.med(case, s, "rps"), lambda v: f"{v:,.0f}"),
                    opt(runs.med(case, s, "stime_conn_per_user_s"), lambda v: f"{v:,.0f}"),
                    opt(runs.med(case, s, "cpu_us_per_req"), bench.fmt_cpu)]
        n = sum(runs.values("s_time-reuse", s, "requests"))
        r = sum(runs.values("s_time-reuse", s, "resumed"))
        row.append(f"{100 * r / n:.1f}%" if n else "—")
        row.append(str(len(runs.values("s_time-new", s, "rps"))))
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    for case, unit in (("s_time-new", "new connection"), ("s_time-reuse", "reused connection")):
        out += ratio_lines(runs, case, unit)
    out.append("- conn/s: connections over the wall time of the s_time run (it waits for each "
               "answer: a latency figure); conn/user s: s_time's own, over its user CPU time")
    return out


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "wrk":
        text = sys.stdin.read()
        if text.startswith("hsload\t"):
            parse_hsload(text, sys.argv[2])
        else:
            bench.parse_wrk(text, sys.argv[2])
        return
    if len(sys.argv) == 4 and sys.argv[1] == "s_time":
        parse_stime(sys.stdin.read(), sys.argv[2], sys.argv[3])
        return
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs = Runs(sys.argv[1])
    out = json_table(runs)
    out += hs_table(runs, "handshake", "handshake: a new TLS connection per request, full "
                    "handshake, no resumption (hsload)")
    out += hs_table(runs, "resumed", "resumed: a new TLS connection per request, resuming the "
                    "previous connection's session (hsload -r)")
    out += stime_table(runs)
    print("\n".join(out))


if __name__ == "__main__":
    main()
