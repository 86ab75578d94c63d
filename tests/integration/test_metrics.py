# SPDX-License-Identifier: MIT
"""Prometheus metrics (engine/metrics.c) on the demo binary: GET /metrics.

What is checked: the exposition's Content-Type and its validity by `promtool check metrics` on
an idle scrape and on scrapes taken while wrk loads the server; coil_http_requests_total counting
exactly what was sent, per route PATTERN (never the raw path), method (HEAD of a GET route as
its own series) and status class, with requests that matched no route (404, 405) under
route="none"; the duration histogram (cumulative buckets, +Inf and _count equal to the requests
counted, a positive _sum); request and response byte totals equal to the bytes on the wire;
both workers summed; the engine's counters (connections accepted, open and refused, requests
refused before parsing by status, time-outs by kind: header, idle, handler); coil_build_info;
--metrics-path, --no-metrics and COIL_NO_METRICS, and --metrics-path on a path the application
routes (exit status 2).

Counts are compared exactly: every request of a test is answered before its scrape is taken,
and metrics are recorded before a response is queued. The scrape's own request is recorded
after its body is built, so scrapes are counted under route="/metrics" only by later scrapes;
the tests leave that series out. Nothing asserts on time."""

import re
import subprocess
import threading
import time
import unittest

from coil_harness import (CoilTestCase, chunked, clean_env, coil_bin, conns_by_worker, get, main,
                          need_tool, raw_until_eof, request, wait_until)
from test_arena import DATASET_PATH

CONTENT_TYPE = "text/plain; version=0.0.4"
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"(,|$)')
HIST = "coil_http_request_duration_seconds"


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        if not m:
            raise AssertionError("bad label set %r" % text)
        value = re.sub(r"\\(.)", lambda e: "\n" if e.group(1) == "n" else e.group(1), m.group(2))
        labels[m.group(1)] = value
        pos = m.end()
    return labels


class Scrape:
    """One exposition, parsed: samples by metric name, each a list of (labels dict, value)."""

    def __init__(self, text):
        self.text = text
        self.samples = {}
        self.types = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(" ", 3)
                self.types[name] = kind
                continue
            if not line or line.startswith("#"):
                continue
            m = SAMPLE_RE.match(line)
            if not m:
                raise AssertionError("bad sample line %r" % line)
            labels = parse_labels(m.group(2) or "")
            self.samples.setdefault(m.group(1), []).append((labels, float(m.group(3))))

    def series(self, name, **match):
        """[(labels, value)] of name whose labels include match."""
        return [(lb, v) for lb, v in self.samples.get(name, [])
                if all(lb.get(k) == w for k, w in match.items())]

    def value(self, name, **labels):
        """The value of the one sample of name with exactly these labels; 0 when it is absent
        (a series with nothing counted yet is not exposed)."""
        found = [v for lb, v in self.samples.get(name, []) if lb == labels]
        if len(found) > 1:
            raise AssertionError("%s%r exposed %d times" % (name, labels, len(found)))
        return found[0] if found else 0

    def requests(self, name="coil_http_requests_total"):
        """{(route, method, code): value} of a per-request counter, scrapes left out."""
        out = {}
        for lb, v in self.samples.get(name, []):
            if lb["route"] == "/metrics":
                continue
            key = (lb["route"], lb["method"], lb["code"])
            if key in out:
                raise AssertionError("%s%r exposed twice" % (name, key))
            out[key] = int(v)
        return out

    def histograms(self):
        """{(route, method, code): {"buckets": [(le, count)], "sum": s, "count": n}}."""
        out = {}
        for suffix in ("_bucket", "_sum", "_count"):
            for lb, v in self.samples.get(HIST + suffix, []):
                key = (lb["route"], lb["method"], lb["code"])
                h = out.setdefault(key, {"buckets": []})
                if suffix == "_bucket":
                    h["buckets"].append((lb["le"], v))
                else:
                    h[suffix[1:]] = v
        return out


def scrape_text(port, path="/metrics", conn=None):
    """GET path (on conn if given, else a fresh connection); checks status and type."""
    if conn is not None:
        resp = conn.request("GET", path)
    else:
        resp = get(port, path)
    if resp.status != 200:
        raise AssertionError("GET %s: %r" % (path, resp))
    ctype = resp.header("Content-Type") or ""
    if not ctype.startswith(CONTENT_TYPE):
        raise AssertionError("GET %s: Content-Type %r, want %s" % (path, ctype, CONTENT_TYPE))
    return resp.body.decode("utf-8")


def scrape(port, path="/metrics", conn=None):
    return Scrape(scrape_text(port, path, conn))


def promtool(text):
    """(exit status, output) of `promtool check metrics` on text."""
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=60)
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")


class MetricsCase(CoilTestCase):
    def assertPromtoolPasses(self, text):
        code, out = promtool(text)
        self.assertEqual(code, 0, "promtool check metrics failed:\n%s\n---- exposition ----\n%s"
                         % (out, text[:4000]))

    def assertHistogramsConsistent(self, s, exact=True):
        """Every histogram series: finite buckets in increasing le order, counts cumulative,
        +Inf last and equal to _count, which equals coil_http_requests_total of the same labels;
        exact: also a positive _sum."""
        reqs = s.requests()
        hists = s.histograms()
        hists.pop(("/metrics", "GET", "2xx"), None)
        self.assertEqual(set(hists), set(reqs), "histogram series vs request counter series")
        for key, h in hists.items():
            les = [le for le, _ in h["buckets"]]
            self.assertEqual(les[-1], "+Inf", key)
            bounds = [float(le) for le in les[:-1]]
            self.assertEqual(bounds, sorted(set(bounds)), "le bounds of %r" % (key,))
            counts = [c for _, c in h["buckets"]]
            self.assertEqual(counts, sorted(counts), "buckets of %r are not cumulative" % (key,))
            self.assertEqual(counts[-1], h["count"], "+Inf bucket vs _count of %r" % (key,))
            self.assertEqual(int(h["count"]), reqs[key], "_count vs requests_total of %r" % (key,))
            if exact:
                self.assertGreater(h["sum"], 0, "_sum of %r" % (key,))


# ---- the exposition -----------------------------------------------------------------------------

class Exposition(MetricsCase):
    def test_idle_scrape_is_valid(self):
        need_tool("promtool")
        srv = self.start("--workers", "2")
        for path in ("/plaintext", "/json", "/no-such-path", "/delay/0"):
            get(srv.port, path)
        text = scrape_text(srv.port)
        self.assertPromtoolPasses(text)
        s = Scrape(text)
        for name, kind in (("coil_http_requests_total", "counter"), (HIST, "histogram"),
                           ("coil_http_request_bytes_total", "counter"),
                           ("coil_http_response_bytes_total", "counter"),
                           ("coil_connections_accepted_total", "counter"),
                           ("coil_connections_open", "gauge"),
                           ("coil_timeouts_total", "counter"),
                           ("coil_http_parse_errors_total", "counter"),
                           ("coil_access_log_dropped_total", "counter"),
                           ("coil_build_info", "gauge")):
            self.assertEqual(s.types.get(name), kind, name)
        self.assertHistogramsConsistent(s)
        self.assertEqual(s.value("coil_workers"), 2)
        # promtool really reads what it is given: the same text cut inside a sample fails.
        cut = text.index(' 1\n', text.index("coil_http_requests_total{")) - 3
        self.assertNotEqual(promtool(text[:cut])[0], 0, "promtool accepted a truncated scrape")

    def test_scrapes_under_load_are_valid(self):
        need_tool("promtool")
        wrk = need_tool("wrk")
        srv = self.start("--workers", "2")
        loads = [subprocess.Popen([wrk, "-t1", "-c8", "-d3s", "http://127.0.0.1:%d%s"
                                   % (srv.port, path)],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for path in ("/plaintext", "/json")]
        self.addCleanup(lambda: [p.kill() for p in loads if p.poll() is None])
        self.addCleanup(lambda: [p.wait() for p in loads])
        conn = self.connect(srv)
        wait_until(lambda: all(scrape(srv.port, conn=conn).requests().get(
            (path, "GET", "2xx"), 0) > 0 for path in ("/plaintext", "/json")),
            timeout=10, what="wrk's requests to be counted")
        # Scrapes are taken as fast as they come while both wrk run, and checked afterwards.
        during = []
        while True:
            text = scrape_text(srv.port, conn=conn)
            if not all(p.poll() is None for p in loads):
                break  # one wrk may have ended before this scrape: not counted as under load
            during.append(text)
            time.sleep(0.02)
        self.assertGreaterEqual(len(during), 2, "scrapes taken while both wrk ran")
        prev = None
        for i, text in enumerate(during):
            if i % max(1, len(during) // 8) == 0 or i == len(during) - 1:
                self.assertPromtoolPasses(text)  # 8 or so: each promtool run takes a while
            s = Scrape(text)
            self.assertHistogramsConsistent(s, exact=False)
            cur = s.requests()
            cur["accepted"] = s.value("coil_connections_accepted_total")
            if prev:
                for key, n in prev.items():
                    self.assertGreaterEqual(cur.get(key, 0), n, "counter %r went down" % (key,))
            prev = cur
        self.assertGreater(prev[("/plaintext", "GET", "2xx")], 0)
        outs = [p.communicate(timeout=30)[0].decode() for p in loads]
        s = scrape(srv.port)
        self.assertPromtoolPasses(s.text)
        self.assertHistogramsConsistent(s)
        for path, out in zip(("/plaintext", "/json"), outs):
            m = re.search(r"(\d+) requests in", out)
            self.assertIsNotNone(m, out)
            self.assertNotIn("Non-2xx", out)
            # wrk counts the responses it read before its end; coil counts every one it sent.
            self.assertGreaterEqual(s.requests().get((path, "GET", "2xx"), 0), int(m.group(1)),
                                    out)

    def test_build_info(self):
        srv = self.start("--workers", "1")
        s = scrape(srv.port)
        info = s.series("coil_build_info")
        self.assertEqual(len(info), 1, info)
        labels, value = info[0]
        self.assertEqual(value, 1)
        self.assertRegex(labels.get("version", ""), r"^\S+$")
        for module in ("postgres", "redis", "compress", "auth"):
            self.assertIn(labels.get(module), ("yes", "no"), labels)


# ---- what the request counters count ------------------------------------------------------------

class Requests(MetricsCase):
    def test_counts_by_route_pattern_method_and_class(self):
        srv = self.start("--workers", "1", "--dataset", DATASET_PATH)
        conn = self.connect(srv)
        expect = {}

        def send(method, path, status, key, **kw):
            resp = conn.request(method, path, **kw)
            self.assertEqual(resp.status, status, "%s %s: %r" % (method, path, resp))
            expect[key] = expect.get(key, 0) + 1

        for i in range(7):
            send("GET", "/plaintext?i=%d" % i, 200, ("/plaintext", "GET", "2xx"))
        for count in (1, 2, 3, 4, 5):
            send("GET", "/json/%d" % count, 200, ("/json/:count", "GET", "2xx"))
        for bad in ("abc", "0"):
            send("GET", "/json/" + bad, 400, ("/json/:count", "GET", "4xx"))
        for i in range(4):
            send("GET", "/missing/%d" % i, 404, ("none", "GET", "4xx"))
        for i in range(3):
            send("HEAD", "/plaintext", 200, ("/plaintext", "HEAD", "2xx"))
        send("HEAD", "/missing", 404, ("none", "HEAD", "4xx"))
        for i in range(2):
            send("POST", "/plaintext", 405, ("none", "POST", "4xx"), body=b"x")
        send("DELETE", "/json", 405, ("none", "DELETE", "4xx"))
        send("PUT", "/kv/k1", 204, ("/kv/:key", "PUT", "2xx"), body=b"v")
        send("GET", "/kv/k1", 200, ("/kv/:key", "GET", "2xx"))
        send("GET", "/kv/k2", 404, ("/kv/:key", "GET", "4xx"))
        send("HEAD", "/kv/k1", 200, ("/kv/:key", "HEAD", "2xx"))
        send("PATCH", "/plaintext", 405, ("none", "PATCH", "4xx"), body=b"x")
        send("BREW", "/plaintext", 405, ("none", "other", "4xx"))
        s = scrape(srv.port, conn=conn)
        self.assertEqual(s.requests(), expect)
        self.assertHistogramsConsistent(s)
        routes = {lb["route"] for lb, _ in s.series("coil_http_requests_total")}
        self.assertFalse({r for r in routes if re.search(r"/(\d+|abc|k1|k2|missing)", r)},
                         "raw paths as route labels: %s" % routes)
        # The scrape just taken is counted by the next one.
        self.assertEqual(scrape(srv.port, conn=conn).value(
            "coil_http_requests_total", route="/metrics", method="GET", code="2xx"), 1)

    def test_handler_timeout_is_a_5xx_of_its_route(self):
        srv = self.start("--workers", "1", "--handler-timeout", "1s")
        resp = get(srv.port, "/delay/5000")
        self.assertEqual(resp.status, 504, resp)
        s = scrape(srv.port)
        self.assertEqual(s.requests(), {("/delay/:ms", "GET", "5xx"): 1})
        self.assertEqual(s.value("coil_timeouts_total", kind="handler"), 1)
        self.assertHistogramsConsistent(s)
        # It waited for its 1 s time-out (a millisecond timer, so a little under 1 s may be
        # measured): the request is in no bucket up to 0.5 s.
        h = s.histograms()[("/delay/:ms", "GET", "5xx")]
        self.assertEqual(dict(h["buckets"])["0.5"], 0, h)
        self.assertEqual(dict(h["buckets"])["+Inf"], 1, h)

    def test_bytes_equal_the_wire(self):
        srv = self.start("--workers", "1")
        sent, got = {}, {}

        def count(key, data, resp):
            sent[key] = sent.get(key, 0) + len(data)
            got[key] = got.get(key, 0) + len(resp.head_bytes) + len(resp.body)

        conn = self.connect(srv)
        for i in range(5):
            data = request("GET", "/plaintext?pad=" + "p" * (i * 37),
                           headers=["User-Agent: byte-counter/%d" % i, "X-Pad: " + "q" * i])
            conn.send(data)
            count(("/plaintext", "GET", "2xx"), data, conn.read_response())
        for size in (0, 1, 1000, 20000):
            data = request("POST", "/echo", body=bytes(range(256)) * (size // 256) + b"e" * (
                size % 256), headers=["Content-Type: application/octet-stream"])
            conn.send(data)
            resp = conn.read_response()
            self.assertEqual(len(resp.body), size)
            count(("/echo", "POST", "2xx"), data, resp)
        data = request("HEAD", "/json")
        conn.send(data)
        count(("/json", "HEAD", "2xx"), data, conn.read_response(head=True))
        data = request("GET", "/nothing-here")
        conn.send(data)
        count(("none", "GET", "4xx"), data, conn.read_response())
        # Three requests in one send (pipelined): each is counted as itself.
        data = request("GET", "/json") * 3
        conn.send(data)
        for _ in range(3):
            count(("/json", "GET", "2xx"), data[:len(data) // 3], conn.read_response())
        # One on a connection of its own that asks to be closed.
        data = request("GET", "/healthz", headers=["Connection: close"])
        res = raw_until_eof(srv.port, data)
        self.assertEqual(len(res.responses), 1, res)
        count(("/healthz", "GET", "2xx"), data, res.responses[0])
        s = scrape(srv.port, conn=conn)
        self.assertEqual(s.requests("coil_http_request_bytes_total"), sent)
        self.assertEqual(s.requests("coil_http_response_bytes_total"), got)

    # Regression: bytes_in was the head plus the DECODED body, so a chunked body's framing was
    # not counted, and a streamed route's body (on_body, /upload) not at all.
    def test_bytes_of_chunked_and_streamed_bodies_equal_the_wire(self):
        srv = self.start("--workers", "1")
        conn = self.connect(srv)
        sent = {}
        for key, data in (
                (("/echo", "POST", "2xx"), request("POST", "/echo", body=chunked("hello", "world!"),
                                                   headers=["Transfer-Encoding: chunked"])),
                (("/upload", "POST", "2xx"), request("POST", "/upload", body=b"u" * 1000)),
                (("/upload", "POST", "2xx"), request("POST", "/upload", body=chunked(
                    "a" * 500, "b" * 500), headers=["Transfer-Encoding: chunked"]))):
            conn.send(data)
            self.assertEqual(conn.read_response().status, 200)
            sent[key] = sent.get(key, 0) + len(data)
        self.assertEqual(scrape(srv.port, conn=conn).requests("coil_http_request_bytes_total"),
                         sent)

    def test_two_workers_are_summed(self):
        srv = self.start("--workers", "2")
        by_worker = conns_by_worker(srv.port, 2)
        for c in by_worker.values():
            self.addCleanup(c.close)
        probes = scrape(srv.port, conn=by_worker[0]).requests()
        for w, n in ((0, 10), (1, 15)):
            for _ in range(n):
                self.assertEqual(by_worker[w].request("GET", "/plaintext").status, 200)
        # And many short connections, spread over both workers by the kernel.
        errors = []

        def client(k):
            try:
                for _ in range(10):
                    if get(srv.port, "/json").status != 200:
                        errors.append(k)
            except Exception as e:  # reported below, on the test's thread
                errors.append(e)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        expect = dict(probes)
        expect[("/plaintext", "GET", "2xx")] = 25
        expect[("/json", "GET", "2xx")] = 80
        # Either worker's scrape sums both.
        for w in (0, 1):
            s = scrape(srv.port, conn=by_worker[w])
            self.assertEqual(s.requests(), expect, "scraped on worker %d" % w)
            self.assertHistogramsConsistent(s)
            self.assertEqual(s.value("coil_workers"), 2)


# ---- the engine's own counters ------------------------------------------------------------------

class Engine(MetricsCase):
    def test_connections_accepted_and_open(self):
        srv = self.start("--workers", "2")
        scraper = self.connect(srv)
        conns = [self.connect(srv) for _ in range(5)]
        for c in conns:
            self.assertEqual(c.request("GET", "/plaintext").status, 200)
        s = scrape(srv.port, conn=scraper)
        self.assertEqual(s.value("coil_connections_accepted_total"), 6)
        self.assertEqual(s.value("coil_connections_open"), 6)
        for c in conns[:3]:
            c.close()
        # The server sees the closes when it next reads those sockets.
        wait_until(lambda: scrape(srv.port, conn=scraper).value("coil_connections_open") == 3,
                   what="3 connections open")
        s = scrape(srv.port, conn=scraper)
        self.assertEqual(s.value("coil_connections_accepted_total"), 6)
        self.assertEqual(s.value("coil_connections_refused_total"), 0)

    def test_parse_errors_by_status(self):
        srv = self.start("--workers", "1")
        res = raw_until_eof(srv.port, b"garbage\r\n\r\n")
        self.assertEqual([r.status for r in res.responses], [400], res)
        for _ in range(2):
            res = raw_until_eof(srv.port, request("GET", "/plaintext",
                                                  headers=[("X-Huge", "h" * 20000)]))
            self.assertEqual([r.status for r in res.responses], [431], res)
        s = scrape(srv.port)
        errors = {lb["status"]: v for lb, v in s.series("coil_http_parse_errors_total")}
        self.assertEqual(errors, {"400": 1, "408": 0, "413": 0, "414": 0, "431": 2, "501": 0,
                                  "505": 0, "other": 0})
        self.assertEqual(s.requests(), {}, "refused requests are not requests of a route")

    def test_timeouts_by_kind(self):
        srv = self.start("--workers", "1", "--header-timeout", "1s", "--idle-timeout", "1s",
                         "--handler-timeout", "1s")
        # header: a head that never ends gets 408.
        partial = self.connect(srv)
        partial.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
        data, _ = partial.read_until_eof()
        self.assertTrue(data.startswith(b"HTTP/1.1 408 "), data)
        # idle: a keep-alive connection with nothing after its request is closed silently.
        idle = self.connect(srv)
        self.assertEqual(idle.request("GET", "/plaintext").status, 200)
        idle.wait_closed()
        # handler: a deferred response not started in time gets 504 (the connection then asks
        # to close, so it does not go idle).
        res = raw_until_eof(srv.port, request("GET", "/delay/5000", headers=["Connection: close"]))
        self.assertEqual([r.status for r in res.responses], [504], res)
        s = scrape(srv.port)
        kinds = {lb["kind"]: v for lb, v in s.series("coil_timeouts_total")}
        self.assertEqual(kinds, {"header": 1, "body": 0, "idle": 1, "write": 0, "handler": 1,
                                 "drain": 0, "tls_handshake": 0})
        self.assertEqual(s.value("coil_http_parse_errors_total", status="408"), 1)

    def test_connections_refused_at_max_conns(self):
        srv = self.start("--workers", "1", "--max-conns", "2")
        a, b = self.connect(srv), self.connect(srv)
        for c in (a, b):
            self.assertEqual(c.request("GET", "/plaintext").status, 200)
        for _ in range(3):
            extra = self.connect(srv)
            extra.send(request("GET", "/plaintext"))
            data, how = extra.read_until_eof()
            self.assertEqual(data, b"", "a connection over --max-conns was answered")
            extra.close()
        s = scrape(srv.port, conn=a)
        self.assertEqual(s.value("coil_connections_refused_total"), 3)
        self.assertEqual(s.value("coil_connections_accepted_total"), 2)
        self.assertEqual(s.value("coil_connections_open"), 2)


# ---- where it is served -------------------------------------------------------------------------

class Path(MetricsCase):
    def test_metrics_path_moves_it(self):
        srv = self.start("--workers", "1", "--metrics-path", "/m")
        s = scrape(srv.port, "/m")
        self.assertEqual(s.value("coil_build_info", **s.series("coil_build_info")[0][0]), 1)
        self.assertEqual(get(srv.port, "/metrics").status, 404)
        self.assertEqual(scrape(srv.port, "/m").requests(),
                         {("none", "GET", "4xx"): 1, ("/m", "GET", "2xx"): 1})

    def test_metrics_path_from_the_environment(self):
        srv = self.start("--workers", "1", env={"COIL_METRICS_PATH": "/internal/prom"})
        scrape(srv.port, "/internal/prom")
        self.assertEqual(get(srv.port, "/metrics").status, 404)

    def test_no_metrics(self):
        for args, env in ((["--no-metrics"], None), ([], {"COIL_NO_METRICS": "1"})):
            with self.subTest(args=args, env=env):
                srv = self.start("--workers", "1", *args, env=env)
                self.assertEqual(get(srv.port, "/plaintext").status, 200)
                self.assertEqual(get(srv.port, "/metrics").status, 404)
                self.stop(srv)

    def test_metrics_path_the_app_routes_exits_2(self):
        for path in ("/plaintext", "/kv/:key"):
            with self.subTest(path=path):
                p = subprocess.run([coil_bin(), "--port", "0", "--bind", "127.0.0.1",
                                    "--workers", "1", "--metrics-path", path],
                                   capture_output=True, text=True, timeout=30,
                                   stdin=subprocess.DEVNULL, env=clean_env())
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("--metrics-path", p.stderr)
                self.assertNotIn("listening", p.stderr)

    def test_metrics_path_not_a_path_exits_2(self):
        p = subprocess.run([coil_bin(), "--port", "0", "--metrics-path", "metrics"],
                           capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                           env=clean_env())
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--metrics-path", p.stderr)


if __name__ == "__main__":
    main()
