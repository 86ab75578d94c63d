#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/db's arithmetic.

    report.py wrk CPU_NS            wrk --latency output (stdin) -> "metric<TAB>value" lines
    report.py load CPU_NS           coil-load -format json output (stdin) -> the same
    report.py rate RAW.tsv W PCT    PCT % of the slower server's median closed-loop req/s on
                                    workload W (an integer, at least 1)
    report.py RAW.tsv               the markdown tables of the runs

RAW.tsv has one measurement a line (after a header): run, workload, phase, server, metric,
value. Workloads: async-db, async-mix, crud (perf/db.d/workload.py). Phases: closed (wrk, as
fast as it goes) and openNN (coil-load at a fixed rate, NN % of the slower server's closed-loop
req/s). Servers: coil, go. Metrics from the load tools: requests, rps, p50_us, p99_us, max_us,
non2xx, sock_errors (open loop also target_rate, sent_rate, p999_us) and cpu_us_per_req (the
server's CPU, schedstat, over the requests answered); from perf/db: db_cpu_us_per_req (all
Postgres processes), server_busy_pct (the server's CPU over wall time), server_cpu_busy_pct
and load_cpu_busy_pct (/proc/stat), rss_kb (the server's VmRSS after the run), wall_s. Every
figure is the median over runs; "vs go" is the ratio of the medians, and under each table the
coil/go ratio of each run to go's run of the same round is given too (drift on a shared machine
hits both).
"""
import json
import re
import statistics
import sys
from collections import defaultdict

SERVERS = ("coil", "go")
NAMES = {"coil": "coil (libpq pipeline)", "go": "Go: net/http + chi + pgxpool"}
WORKLOADS = {
    "async-db": "GET /async-db?min=10&max=50&limit=50",
    "async-mix": "GET /async-db?min=10&max=50&limit={5,10,20,35,50} in turn",
    "crud": "85% GET /crud/items/{1..50000, 5 digits}, 10% GET /crud/items?category=office"
            "&page={1..10}&limit=10, 5% PUT /crud/items/{id}",
}
CPU_TARGET = 0.3
WRK_UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
SUSTAINED = 0.95  # an open-loop run answered at least this share of its target rate


def put(m):
    for name, value in m.items():
        print(f"{name}\t{value:.6g}" if isinstance(value, float) else f"{name}\t{value}")


def wrk_us(s):
    num, unit = re.fullmatch(r"([\d.]+)([a-z]+)", s).groups()
    return float(num) * WRK_UNITS_US[unit]


def parse_wrk(text, cpu_ns):
    """wrk 4's summary with --latency; its lines are indented."""
    m = {"requests": 0, "rps": 0.0, "p50_us": 0.0, "p99_us": 0.0, "max_us": 0.0, "non2xx": 0,
         "sock_errors": 0}
    for line in text.splitlines():
        f = line.split()
        if "requests in" in line:
            m["requests"] = int(f[0])
        elif f[:1] == ["Requests/sec:"]:
            m["rps"] = float(f[1])
        elif f[:1] == ["Latency"] and len(f) >= 4:
            m["max_us"] = wrk_us(f[3])
        elif f[:1] == ["50%"]:
            m["p50_us"] = wrk_us(f[1])
        elif f[:1] == ["99%"]:
            m["p99_us"] = wrk_us(f[1])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            m["non2xx"] = int(f[-1])
        elif line.strip().startswith("Socket errors:"):
            m["sock_errors"] = sum(int(n) for n in re.findall(r"\d+", line))
    if m["requests"] == 0:
        sys.exit("report.py: no request count in wrk's output:\n" + text)
    m["cpu_us_per_req"] = int(cpu_ns) / 1e3 / m["requests"]
    put(m)


def parse_load(text, cpu_ns):
    """coil-load's JSON report (vegeta's fields): latencies in ns, from each request's intended
    send time."""
    try:
        r = json.loads(text)
    except ValueError:
        sys.exit("report.py: coil-load's output is not JSON:\n" + text)
    lat = r["latencies"]
    codes = {int(k): v for k, v in r.get("status_codes", {}).items()}
    answered = sum(codes.values())
    m = {"requests": r["requests"], "responses": answered, "rps": float(r["throughput"]),
         "sent_rate": float(r["rate"]), "target_rate": float(r["target_rate"]),
         "p50_us": lat["50th"] / 1e3, "p99_us": lat["99th"] / 1e3,
         "p999_us": lat["99.9th"] / 1e3, "max_us": lat["max"] / 1e3,
         "non2xx": sum(v for k, v in codes.items() if not 200 <= k < 300),
         "sock_errors": sum(r.get("error_counts", {}).values())}
    if answered == 0:
        sys.exit("report.py: coil-load got no answer:\n" + text)
    m["cpu_us_per_req"] = int(cpu_ns) / 1e3 / answered
    put(m)


def load_raw(path):
    vals = defaultdict(list)  # (workload, phase, server, metric) -> [values], run order
    byrun = defaultdict(dict)  # same key -> {run: value}
    with open(path) as f:
        next(f)
        for line in f:
            run, w, phase, server, metric, value = line.rstrip("\n").split("\t")
            vals[(w, phase, server, metric)].append(float(value))
            byrun[(w, phase, server, metric)][run] = float(value)
    return vals, byrun


def fmt_us(us):
    if us >= 1e5:
        return f"{us / 1e3:.0f} ms"
    if us >= 1e4:
        return f"{us / 1e3:.1f} ms"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.0f} µs"


def main():
    a = sys.argv[1:]
    if len(a) == 2 and a[0] in ("wrk", "load"):
        (parse_wrk if a[0] == "wrk" else parse_load)(sys.stdin.read(), a[1])
        return
    if len(a) == 4 and a[0] == "rate":
        vals, _ = load_raw(a[1])
        meds = [statistics.median(vals[(a[2], "closed", s, "rps")])
                for s in SERVERS if vals.get((a[2], "closed", s, "rps"))]
        if not meds:
            sys.exit("report.py: no closed-loop run of " + a[2])
        print(max(1, int(min(meds) * float(a[3]) / 100)))
        return
    if len(a) != 1:
        sys.exit(__doc__)
    vals, byrun = load_raw(a[0])

    def med(*key):
        v = vals.get(key)
        return statistics.median(v) if v else None

    def f(key, fmt):
        v = med(*key)
        return "—" if v is None else fmt(v)

    def sustained(w, phase, s):
        """Whether the median run answered SUSTAINED of the target rate (one noisy run of
        several does not decide it)."""
        rps, target = med(w, phase, s, "rps"), med(w, phase, s, "target_rate")
        return rps is not None and target and rps >= SUSTAINED * target

    def paired(w, phase, metric):
        """coil/go of each run against go's run of the same round."""
        c, g = byrun.get((w, phase, "coil", metric), {}), byrun.get((w, phase, "go", metric), {})
        return [c[r] / g[r] for r in c if g.get(r)]

    def ratio_note(w, phase, metric):
        p = paired(w, phase, metric)
        if not p:
            return ""
        return f"; run by run {statistics.median(p):.2f}× [{min(p):.2f}, {max(p):.2f}]"

    workloads = [w for w in WORKLOADS if any(k[0] == w for k in vals)]
    out = []
    verdicts = []
    for w in workloads:
        servers = [s for s in SERVERS if (w, "closed", s, "rps") in vals]
        go_cpu = med(w, "closed", "go", "cpu_us_per_req")
        out += [f"### {w}: {WORKLOADS[w]}", "",
                "closed loop (wrk, as fast as it goes):", "",
                "| server | req/s ↑ | p50 ↓ | p99 ↓ | server CPU per request ↓ | vs go "
                "| server busy | other load on its cpu | Postgres CPU per request | load cpu busy (wrk + "
                "Postgres) | server RSS after | runs |",
                "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for s in servers:
            k = (w, "closed", s)
            cpu = med(*k, "cpu_us_per_req")
            cpu_busy, own = byrun[(*k, "server_cpu_busy_pct")], byrun[(*k, "server_busy_pct")]
            other = [cpu_busy[r] - own[r] for r in cpu_busy if r in own]
            errs = [x for m in ("non2xx", "sock_errors") for x in vals.get((*k, m), [])]
            bad = " †" if any(errs) else ""
            rss = vals.get((*k, "rss_kb"))
            out.append("| " + " | ".join([
                NAMES[s] + bad,
                f((*k, "rps"), lambda v: f"{v:,.0f}"),
                f((*k, "p50_us"), fmt_us),
                f((*k, "p99_us"), fmt_us),
                f((*k, "cpu_us_per_req"), lambda v: f"{v:.1f} µs"),
                f"{cpu / go_cpu:.2f}×" if cpu is not None and go_cpu else "—",
                f((*k, "server_busy_pct"), lambda v: f"{v:.0f}%"),
                f"{statistics.median(other):.0f}%" if other else "—",
                f((*k, "db_cpu_us_per_req"), lambda v: f"{v:.1f} µs"),
                f((*k, "load_cpu_busy_pct"), lambda v: f"{v:.0f}%"),
                f"{rss[-1] / 1024:.1f} MiB" if rss else "—",
                str(len(vals.get((*k, "rps"), []))),
            ]) + " |")
        out.append("")

        phases = sorted({k[1] for k in vals if k[0] == w and k[1].startswith("open")},
                        key=lambda p: int(p[4:]))
        if phases:
            out += ["open loop (coil-load at a fixed rate; latency from each request's intended "
                    "send time):", "",
                    "| rate | server | answered/s | p50 ↓ | p99 ↓ | p99.9 | max | p99 vs go | "
                    "server CPU per request | vs go | server busy | runs |",
                    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for phase in phases:
            for s in SERVERS:
                k = (w, phase, s)
                if (*k, "rps") not in vals:
                    continue
                go99, p99 = med(w, phase, "go", "p99_us"), med(*k, "p99_us")
                gocpu, cpu = med(w, phase, "go", "cpu_us_per_req"), med(*k, "cpu_us_per_req")
                target = med(*k, "target_rate")
                sust = sustained(w, phase, s)
                out.append("| " + " | ".join([
                    f"{target:,.0f}/s ({phase[4:]}%)",
                    NAMES[s],
                    f((*k, "rps"), lambda v: f"{v:,.0f}") + ("" if sust else " ‡"),
                    f((*k, "p50_us"), fmt_us),
                    f((*k, "p99_us"), fmt_us),
                    f((*k, "p999_us"), fmt_us),
                    f((*k, "max_us"), fmt_us),
                    f"{p99 / go99:.2f}×" if go99 else "—",
                    f((*k, "cpu_us_per_req"), lambda v: f"{v:.1f} µs"),
                    f"{cpu / gocpu:.2f}×" if gocpu else "—",
                    f((*k, "server_busy_pct"), lambda v: f"{v:.0f}%"),
                    str(len(vals.get((*k, "rps"), []))),
                ]) + " |")
        if phases:
            out.append("")

        # The targets: CPU per request, and p99 at every rate both sustain.
        c = med(w, "closed", "coil", "cpu_us_per_req")
        if c is not None and go_cpu:
            r = c / go_cpu
            line = (f"- {w}: coil {c:.1f} µs of CPU per request = {r:.2f}× Go's {go_cpu:.1f} µs"
                    f"{ratio_note(w, 'closed', 'cpu_us_per_req')}")
            if w.startswith("async"):
                line += (f". Target ≤ {CPU_TARGET:.1f}×: "
                         f"**{'met' if r <= CPU_TARGET else 'NOT met'}**")
            else:
                line += f" (the ≤ {CPU_TARGET:.1f}× target is /async-db's)"
            verdicts.append(line)
        for phase in phases:
            cv, gv = vals.get((w, phase, "coil", "p99_us")), vals.get((w, phase, "go", "p99_us"))
            if not cv or not gv:
                continue
            both = all(sustained(w, phase, s) for s in SERVERS)
            cm, gm = statistics.median(cv), statistics.median(gv)
            verdict = ("met" if cm < gm else "NOT met") if both else "not sustained by both"
            verdicts.append(
                f"- {w} at {med(w, phase, 'go', 'target_rate'):,.0f}/s ({phase[4:]}%): p99 coil "
                f"{fmt_us(cm)} vs Go {fmt_us(gm)} = {cm / gm:.2f}×"
                f"{ratio_note(w, phase, 'p99_us')}. Below Go's: **{verdict}**")
    if verdicts:
        out += ["### targets", ""] + verdicts + [""]
    if any(k[3] in ("non2xx", "sock_errors") and any(vals[k]) for k in vals):
        out.append("- † runs with non-2xx answers or socket errors (see the .tsv)")
    out.append(f"- ‡ the median open-loop run answered under {SUSTAINED:.0%} of the target "
               "rate: the server did not sustain it")
    out.append("- server CPU: all threads of the server's process (schedstat) over the requests "
               "answered; Postgres CPU: the postmaster and all its children (both servers' pools "
               "are connected throughout; the idle one costs nothing); server busy: its CPU over "
               "the run's wall time; other load: how busy its cpu was beyond that (tick-sampled "
               "/proc/stat, approximate); load cpu: wrk or coil-load and Postgres together (near "
               "100%: they, not the server, set req/s, and CPU per request is the figure to "
               "read)")
    out.append("- wrk ends each closed-loop run with requests in flight: the Go peer's handlers "
               "see their request's context cancelled, and pgx closes a connection whose query "
               "is cancelled, so pgxpool reconnects (SCRAM; a few ms of CPU each) early in the "
               "next run, inside its measurement; coil-load waits for every answer")
    print("\n".join(out))


if __name__ == "__main__":
    main()
