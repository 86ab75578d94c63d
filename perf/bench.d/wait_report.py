#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/wait's tables.

    wait_report.py RAW.tsv

RAW.tsv has one measurement a line (after a header): run, part, param, metric, value.
  part "delay": param is "ROUTE@RATE" (/plaintext@20000, /delay/1@20000), metrics those of
                `report.py load` (p50_us, p99_us, p999_us, rps, offered_rps, cpu_us_per_req, ...)
  part "sse":   param is EVERY_MS, metrics those of perf/wait.d/sse_client plus cpu_ns (the
                server's CPU time over the client's run) and wall_ns (that run's length)
Every figure is the median over runs. † marks a figure whose runs saw errors (failed
requests, non-2xx, malformed or out-of-order events), ‡ an open-loop figure from a run that
answered under 95% of the offered rate.
"""
import re
import statistics
import sys
from collections import defaultdict


def fmt_us(us):
    if us is None:
        return "—"
    if us >= 1e4:
        return f"{us / 1e3:.1f} ms"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.0f} µs"


def pct(v):
    return "—" if v is None else f"{v:.0f}%"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    vals = defaultdict(list)  # (part, param, metric) -> [values]
    with open(sys.argv[1]) as f:
        next(f)
        for line in f:
            _run, part, param, metric, value = line.rstrip("\n").split("\t")
            vals[(part, param, metric)].append(float(value))

    def med(part, param, metric):
        v = vals.get((part, param, metric))
        return statistics.median(v) if v else None

    def runs(part, param):
        return max((len(v) for (p, q, _), v in vals.items() if p == part and q == param),
                   default=0)

    out = []
    delay = sorted({q for (p, q, _) in vals if p == "delay"},
                   key=lambda q: (int(q.split("@")[1]), not q.startswith("/plaintext"),
                                  q.split("@")[0]))
    if delay:
        out += ["### (a) open loop, coil-load -rate R: latency from each request's intended send time",
                "",
                "| rate | route | answered req/s | p50 | p99 | p99.9 | max | p99 above the delay "
                "| p99 above /plaintext's | server CPU µs/req | other load | runs |",
                "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for q in delay:
            route, rate = q.split("@")
            m = re.fullmatch(r"/delay/(\d+)", route)
            delay_us = int(m.group(1)) * 1e3 if m else 0.0
            p99 = med("delay", q, "p99_us")
            base = med("delay", f"/plaintext@{rate}", "p99_us")
            errs = any(v != 0 for v in vals.get(("delay", q, "errors"), [])) or any(
                v != 1 for v in vals.get(("delay", q, "success"), []))
            behind = any(g < 0.95 * o for g, o in zip(vals.get(("delay", q, "rps"), []),
                                                     vals.get(("delay", q, "offered_rps"), [])))
            mark = (" †" if errs else "") + (" ‡" if behind else "")
            over = fmt_us(p99 - delay_us) if (m and p99 is not None) else "—"
            over_base = (fmt_us(p99 - delay_us - base)
                         if (m and p99 is not None and base is not None) else "—")
            cpu = med("delay", q, "cpu_us_per_req")
            rps = med("delay", q, "rps")
            out.append(f"| {int(rate):,} | {route} | {rps:,.0f}{mark} | "
                       f"{fmt_us(med('delay', q, 'p50_us'))} | {fmt_us(p99)} | "
                       f"{fmt_us(med('delay', q, 'p999_us'))} | {fmt_us(med('delay', q, 'max_us'))} | "
                       f"{over} | {over_base} | "
                       f"{'—' if cpu is None else f'{cpu:.2f}'} | "
                       f"{pct(med('delay', q, 'other_pct'))} | {runs('delay', q)} |")
        out.append("")
    sse = sorted({q for (p, q, _) in vals if p == "sse"}, key=lambda q: -int(q))
    if sse:
        conns = med("sse", sse[0], "conns")
        out += [f"### (b) Server-Sent Events: {conns:,.0f} clients at once on GET /events?n=N&every=MS",
                "",
                "| every | n | offered events/s | delivered events/s | per whole second: median "
                "[min, max] | server CPU ns/event | server busy | client busy | gap over `every` "
                "p50 / p99 / max | first event over `every` p50 / max | streams started / done / cut "
                "| errors | other load | runs |",
                "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for q in sse:
            g = lambda m: med("sse", q, m)  # noqa: E731
            every = int(q)
            offered = f"{g('offered_events_per_s'):,.0f}" if every else "as fast as it can"
            cpu_ns, events, wall = g("cpu_ns"), g("events"), g("wall_ns")
            per_ev = (statistics.median(
                c / e for c, e in zip(vals[("sse", q, "cpu_ns")], vals[("sse", q, "events")]) if e)
                if events else None)
            busy = (statistics.median(
                c / w for c, w in zip(vals[("sse", q, "cpu_ns")], vals[("sse", q, "wall_ns")]))
                if wall else None)
            ps = (f"{g('per_sec_median'):,.0f} [{min(vals[('sse', q, 'per_sec_min')]):,.0f}, "
                  f"{max(vals[('sse', q, 'per_sec_max')]):,.0f}]"
                  if ("sse", q, "per_sec_median") in vals else "—")
            errs = max(vals.get(("sse", q, "errors"), [0]))
            started = "—" if g("streams_started") is None else f"{g('streams_started'):,.0f}"
            out.append(
                f"| {every} ms | {g('n'):,.0f} | {offered} | {g('events_per_s'):,.0f} | {ps} | "
                f"{'—' if per_ev is None else f'{per_ev:,.0f}'} | "
                f"{'—' if busy is None else f'{busy:.0%}'} | {g('client_busy'):.0%} | "
                f"≤{fmt_us(g('gap_over_p50_us'))} / ≤{fmt_us(g('gap_over_p99_us'))} / "
                f"{fmt_us(g('gap_over_max_us'))} | "
                f"{fmt_us(g('first_over_p50_us'))} / {fmt_us(g('first_over_max_us'))} | "
                f"{started} / "
                f"{g('streams_done'):,.0f} / {g('streams_cut'):,.0f} | "
                f"{errs:.0f}{' †' if errs else ''} | {pct(g('other_pct'))} | {runs('sse', q)} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
