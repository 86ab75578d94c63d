# SPDX-License-Identifier: MIT
"""coil-load, the open-loop load generator, run for real: against coil (request counts, status
codes and bytes sent) and against load_testserver, an in-process HTTP/1.1 server that can delay,
chunk, close or garble its responses and counts what it received.

What is asserted is what the tool reports and what the servers saw, never how long anything
took: a rate of R for D seconds schedules R*D requests whatever the machine; an open-loop
latency counts from the intended send time, so a response held back 50 ms makes the requests
queued behind it on the same connection late too, and that shows in the histogram whatever the
speed of the machine. Each run of coil-load is bounded (RUN_BOUND) only so that a hang fails.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

import coil_harness
from coil_harness import SANITIZER_RE, CoilTestCase, clean_env, coil_load_bin, get_stats
from load_testserver import TestServer

RUN_BOUND = 60.0  # s: a coil-load run that takes longer than this is a hang
HELLO = b"Hello, World!"
LAT_KEYS = ("total", "mean", "50th", "90th", "95th", "99th", "99.9th", "max", "min")
ERROR_KINDS = ("connect", "reset", "timeout", "parse", "overload")
REPORT_KEYS = ("latencies", "bytes_in", "bytes_out", "earliest", "latest", "end", "duration",
               "wait", "requests", "rate", "throughput", "success", "status_codes", "errors",
               "responses", "target_rate", "error_counts")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
MS = 1000000  # ns


def round_robin(total, n):
    """How many of total requests each of n targets gets when they are taken in turn."""
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def parse_hgrm(text):
    """Rows (value_ms, percentile, total_count) of an HdrHistogram .hgrm file and its footer
    fields ({"Mean": 1.2, "Total count": 1000.0, ...})."""
    rows, footer, header = [], {}, False
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            for name, value in re.findall(r"([A-Za-z][A-Za-z ]*?)\s*=\s*([-+0-9.eE]+)", s):
                footer[name.strip()] = float(value)
            continue
        if "Value" in s and "Percentile" in s:
            header = True
            continue
        fields = s.split()
        if len(fields) not in (3, 4):
            raise AssertionError("unexpected .hgrm line %r" % line)
        rows.append((float(fields[0]), float(fields[1]), int(fields[2])))
    if not header:
        raise AssertionError("no 'Value Percentile TotalCount' header in .hgrm:\n" + text)
    return rows, footer


class Run:
    def __init__(self, argv, code, out, err):
        self.argv, self.code, self.out, self.err = argv, code, out, err
        self.report = None  # the JSON report, when one was asked for

    def __str__(self):
        return "coil-load run: %s\nexit %s\n-- stdout --\n%s\n-- stderr --\n%s\n" % (
            " ".join(self.argv[1:]), self.code, self.out, self.err)


class LoadTool(CoilTestCase):
    # ---- helpers ------------------------------------------------------------------------------

    def load(self, *args, expect=0):
        """Runs coil-load with args; checks its exit status (unless expect is None) and that no
        sanitizer spoke."""
        argv = [coil_load_bin()] + [str(a) for a in args]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=RUN_BOUND, env=clean_env())
        except subprocess.TimeoutExpired as e:
            raise AssertionError("coil-load did not finish within %.0fs: %s\n%r\n%r" % (
                RUN_BOUND, " ".join(argv[1:]), e.stdout, e.stderr)) from None
        run = Run(argv, p.returncode, p.stdout.decode("utf-8", "replace"),
                  p.stderr.decode("utf-8", "replace"))
        self.assertEqual([l for l in run.err.splitlines() if SANITIZER_RE.search(l)], [], run)
        self.assertFalse(p.returncode < 0, "coil-load killed by a signal\n%s" % run)
        if expect is not None:
            self.assertEqual(run.code, expect, run)
        return run

    def attack(self, *args):
        """Runs coil-load with -format json (exit 0 expected); returns the run, with .report."""
        run = self.load(*(args + ("-format", "json")))
        run.report = self.json_report(run.out, run)
        return run

    def json_report(self, text, run):
        try:
            rep = json.loads(text)  # the whole output: exactly one JSON value
        except ValueError as e:
            raise AssertionError("the report is not one JSON object (%s)\n%s" % (e, run)) from None
        self.check_report(rep, run)
        return rep

    def check_report(self, rep, run):
        """What every JSON report must satisfy, whatever happened in the run."""
        self.assertIsInstance(rep, dict, run)
        for key in REPORT_KEYS:
            self.assertIn(key, rep, run)
        lat = rep["latencies"]
        for key in LAT_KEYS:
            self.assertIsInstance(lat.get(key), (int, float), "latencies.%s\n%s" % (key, run))
        for key in ("bytes_in", "bytes_out"):
            self.assertIsInstance(rep[key].get("total"), int, "%s.total\n%s" % (key, run))
            self.assertIsInstance(rep[key].get("mean"), (int, float), "%s.mean\n%s" % (key, run))
        for key in ("earliest", "latest", "end"):
            self.assertRegex(rep[key], RFC3339_RE, "%s\n%s" % (key, run))
        self.assertEqual(sorted(rep["error_counts"]), sorted(ERROR_KINDS), run)
        self.assertIsInstance(rep["errors"], list, run)
        for e in rep["errors"]:
            self.assertIsInstance(e, str, run)
        codes = rep["status_codes"]
        for code, count in codes.items():
            self.assertRegex(code, r"^[1-5]\d\d$", run)
            self.assertIsInstance(count, int, run)
        self.assertEqual(sum(codes.values()), rep["responses"], run)
        self.assertLessEqual(rep["responses"], rep["requests"], run)
        ok = sum(n for c, n in codes.items() if 200 <= int(c) <= 399)
        self.assertAlmostEqual(rep["success"], ok / rep["requests"] if rep["requests"] else 0,
                               places=6, msg=run)
        if rep["responses"]:
            order = [lat[k] for k in ("min", "50th", "90th", "95th", "99th", "99.9th", "max")]
            self.assertEqual(order, sorted(order), "latencies out of order\n%s" % run)
            self.assertGreater(lat["min"], 0, run)
            self.assertLessEqual(lat["min"], lat["mean"], run)
            self.assertLessEqual(lat["mean"], lat["max"], run)

    def assertClean(self, run, requests=None):
        """Every request scheduled was answered 200 and nothing went wrong."""
        rep = run.report
        if requests is not None:
            self.assertLessEqual(abs(rep["requests"] - requests), requests / 100.0,
                                 "requests scheduled, asked for %d\n%s" % (requests, run))
        self.assertGreater(rep["requests"], 0, run)
        self.assertEqual(rep["responses"], rep["requests"], run)
        self.assertEqual(rep["status_codes"], {"200": rep["requests"]}, run)
        self.assertEqual(rep["success"], 1.0, run)
        self.assertEqual(rep["error_counts"], {k: 0 for k in ERROR_KINDS}, run)
        self.assertEqual(rep["errors"], [], run)

    def make_server(self, **kw):
        ts = TestServer(**kw)
        self.addCleanup(ts.stop)
        return ts

    def tmpdir(self):
        d = tempfile.mkdtemp(prefix="coil-load-test.")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def write(self, directory, name, data):
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        return path

    def refused_port(self):
        """A port on which connecting is refused: bound, never listening, held until the test
        ends so nothing else can take it."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def coil_url(self, *args):
        srv = self.start(*args)
        return srv, "http://127.0.0.1:%d" % srv.port

    def assertCoilServed(self, srv, before, responses):
        """coil's own request counter agrees with the report (the /stats request itself may or
        may not be counted yet)."""
        delta = get_stats(srv.port)["requests"] - before
        self.assertIn(delta, (responses, responses + 1),
                      "coil counted %d requests, coil-load reported %d responses"
                      % (delta, responses))

    # ---- 1. open-loop rate --------------------------------------------------------------------

    def test_rate_schedules_rate_times_duration_requests(self):
        srv, url = self.coil_url("--workers", "2")
        for extra in ((), ("-workers", "2")):
            with self.subTest(flags=extra):
                before = get_stats(srv.port)["requests"]
                run = self.attack("-rate", 2000, "-duration", "3s", "-connections", 8, *extra,
                                  url + "/plaintext")
                self.assertClean(run, requests=6000)
                rep = run.report
                self.assertEqual(rep["target_rate"], 2000, run)
                self.assertLessEqual(abs(rep["rate"] - 2000), 20, run)
                self.assertCoilServed(srv, before, rep["responses"])
                # No progress line: stderr is not a terminal.
                self.assertEqual(run.err, "", run)

    # ---- 2. honest (open-loop) latency --------------------------------------------------------

    def test_open_loop_latency_includes_queueing_behind_a_slow_response(self):
        # 500/s over 4 connections: a connection's requests are due every 8 ms. Every 100th
        # response is held 50 ms, so the request due 8 ms after it on that connection (pipeline
        # 1: it may not be sent before) is answered at least 42 ms after its intended time, the
        # next one 34 ms, and so on. At least 2% of the latencies are >= 42 ms, so the 99th
        # percentile is >= 42 ms less the histogram's bucket error (< 1%).
        ts = self.make_server(delay_every=100, delay_ms=50)
        run = self.attack("-rate", 500, "-duration", "4s", "-connections", 4, "-pipeline", 1,
                          ts.url + "/")
        self.assertClean(run, requests=2000)
        rep = run.report
        self.assertEqual(ts.answered, rep["responses"], run)
        self.assertGreaterEqual(ts.delayed, 19, run)
        self.assertEqual(ts.max_in_flight, 1, "-pipeline 1 sent a request before the previous"
                         " response on its connection\n%s" % run)
        self.assertGreaterEqual(rep["latencies"]["max"], 49 * MS, run)
        self.assertGreaterEqual(rep["latencies"]["99th"], 40 * MS,
                                "open-loop p99 hides the requests queued behind the 50 ms"
                                " responses (coordinated omission)\n%s" % run)

        # Closed loop sees the slow responses themselves too (what it reports for the requests
        # behind them depends on the machine, so only the maximum is asserted).
        ts2 = self.make_server(delay_every=100, delay_ms=50)
        run = self.attack("-rate", 0, "-duration", "2s", "-connections", 4, ts2.url + "/")
        self.assertClean(run)
        self.assertGreaterEqual(ts2.delayed, 1, run)
        self.assertGreaterEqual(run.report["latencies"]["max"], 49 * MS, run)

    # ---- 3. -hist ------------------------------------------------------------------------------

    def test_hist_writes_hgrm_matching_the_report(self):
        srv, url = self.coil_url()
        path = os.path.join(self.tmpdir(), "latency.hgrm")
        run = self.attack("-rate", 500, "-duration", "1s", "-connections", 4, "-hist", path,
                          url + "/plaintext")
        self.assertClean(run, requests=500)
        rep = run.report
        with open(path) as f:
            text = f.read()
        rows, footer = parse_hgrm(text)
        where = "%s\n-- %s --\n%s" % (run, path, text)
        self.assertGreaterEqual(len(rows), 2, where)
        values = [r[0] for r in rows]
        pcts = [r[1] for r in rows]
        counts = [r[2] for r in rows]
        self.assertEqual(values, sorted(values), where)
        self.assertTrue(all(a < b for a, b in zip(pcts, pcts[1:])),
                        "percentiles not increasing\n" + where)
        self.assertEqual(counts, sorted(counts), where)
        self.assertTrue(0.0 <= pcts[0] and pcts[-1] == 1.0, where)
        self.assertEqual(counts[-1], rep["responses"], where)
        if "Total count" in footer:
            self.assertEqual(footer["Total count"], rep["responses"], where)
        # Values are in milliseconds: the last is the maximum, within the bucket error.
        max_ms = rep["latencies"]["max"] / MS
        self.assertLessEqual(abs(values[-1] - max_ms), max_ms / 100 + 0.001, where)
        self.assertGreaterEqual(values[0], rep["latencies"]["min"] / MS * 0.99 - 0.001, where)

    # ---- 4. targets files ----------------------------------------------------------------------

    def targets_text(self, port, body_path):
        base = "http://127.0.0.1:%d" % port
        return ("GET %s/plaintext\n"
                "X-Test: one\n"
                "\n"
                "POST %s/echo\n"
                "Content-Type: text/plain\n"
                "@%s\n"
                "\n"
                "GET %s/json\n") % (base, base, body_path, base)

    def test_targets_file_round_robin(self):
        d = self.tmpdir()
        body = b'{"k": "v"}\nsecond line of the body\n'
        body_path = self.write(d, "body.txt", body)
        keys = [("GET", "/plaintext"), ("POST", "/echo"), ("GET", "/json")]

        # Against the test server: what arrives, and how often.
        ts = self.make_server()
        targets = self.write(d, "ts.targets", self.targets_text(ts.port, body_path))
        run = self.attack("-targets", targets, "-rate", 300, "-duration", "1s",
                          "-connections", 3)
        self.assertClean(run, requests=300)
        rep = run.report
        n = rep["requests"]
        self.assertEqual(ts.bad_requests, [], run)
        self.assertEqual([ts.by_target[k] for k in keys], round_robin(n, 3),
                         "targets not taken in turn: %r\n%s" % (ts.by_target, run))
        self.assertEqual(sum(ts.by_target.values()), n, run)
        authority = "127.0.0.1:%d" % ts.port
        for k in keys:
            req = ts.samples[k]
            self.assertEqual(req.version, "HTTP/1.1", req)
            self.assertEqual(req.header_all("Host"), [authority], req)
        get_pt, post, get_json = (ts.samples[k] for k in keys)
        self.assertEqual(get_pt.header_all("X-Test"), ["one"], get_pt)
        self.assertEqual(get_json.header_all("X-Test"), [], get_json)
        self.assertEqual(get_pt.body, b"", get_pt)
        self.assertEqual(post.body, body, post)
        self.assertEqual(post.header_all("Content-Length"), [str(len(body))], post)
        self.assertEqual(post.header_all("Content-Type"), ["text/plain"], post)
        # Every request of a target is the same bytes: bytes_out is exact.
        sizes = [ts.samples[k].raw_len for k in keys]
        self.assertEqual(rep["bytes_out"]["total"], ts.received_bytes, run)
        self.assertEqual(rep["bytes_out"]["total"],
                         sum(c * s for c, s in zip(round_robin(n, 3), sizes)), run)

        # Against coil: every target answers 200; the requests differ from those above only in
        # the port in Host.
        srv, url = self.coil_url()
        targets = self.write(d, "coil.targets", self.targets_text(srv.port, body_path))
        run = self.attack("-targets", targets, "-rate", 300, "-duration", "1s",
                          "-connections", 3)
        self.assertClean(run, requests=300)
        rep = run.report
        extra = len(str(srv.port)) - len(str(ts.port))
        self.assertEqual(rep["bytes_out"]["total"],
                         sum(c * (s + extra) for c, s in zip(round_robin(rep["requests"], 3),
                                                             sizes)), run)
        self.assertAlmostEqual(rep["bytes_out"]["mean"],
                               rep["bytes_out"]["total"] / rep["requests"], places=3, msg=run)

    # ---- 5. what is refused ---------------------------------------------------------------------

    def test_malformed_targets_file_names_file_and_line(self):
        d = self.tmpdir()
        url = "http://127.0.0.1:%d" % self.refused_port()
        cases = [
            ("no-url", "GET\n", 1),
            ("header-without-colon", "GET %s/a\nX-Broken-Header\n" % url, 2),
            ("bad-url-in-second-target", "GET %s/a\n\nGET not-a-url\n" % url, 3),
            ("missing-body-file", "GET %s/a\n\nPOST %s/b\n@%s/no-such-body\n" % (url, url, d), 4),
        ]
        for name, text, line in cases:
            with self.subTest(case=name):
                path = self.write(d, name + ".targets", text)
                run = self.load("-targets", path, "-duration", "500ms", "-quiet", expect=2)
                self.assertIn("%s:%d" % (path, line), run.err, run)
                self.assertEqual(run.out, "", run)

        with self.subTest(case="no-such-targets-file"):
            path = os.path.join(d, "missing.targets")
            run = self.load("-targets", path, "-duration", "500ms", "-quiet", expect=2)
            self.assertIn(path, run.err, run)

    def test_https_is_refused(self):
        run = self.load("-duration", "500ms", "-quiet", "https://127.0.0.1:8443/", expect=2)
        self.assertIn("https", run.err, run)
        d = self.tmpdir()
        path = self.write(d, "https.targets", "GET https://127.0.0.1:8443/\n")
        run = self.load("-targets", path, "-duration", "500ms", "-quiet", expect=2)
        self.assertIn("https is not supported", run.err, run)

    def test_bad_flags_exit_2(self):
        url = "http://127.0.0.1:%d/" % self.refused_port()
        d = self.tmpdir()
        cases = [
            (["-bogus", url], "bogus"),
            (["-rate", "abc", url], "rate"),
            (["-duration", "soon", url], "duration"),
            (["-connections", "0", url], "connections"),
            (["-pipeline", "0", url], "pipeline"),
            (["-workers", "0", url], "workers"),
            (["-timeout", "later", url], "timeout"),
            (["-format", "xml", url], "format"),
            (["-body", "@" + os.path.join(d, "no-such-body"), url], "no-such-body"),
            ([url, "-rate"], "rate"),     # a flag without its value
            ([], None),                   # neither a URL nor -targets
        ]
        for args, named in cases:
            with self.subTest(args=args):
                run = self.load("-duration", "500ms", "-quiet", *args, expect=2)
                self.assertNotEqual(run.err.strip(), "", run)
                if named:
                    self.assertIn(named, run.err, run)
                self.assertEqual(run.out, "", run)

    # ---- 6. the client's HTTP parsing ------------------------------------------------------------

    def test_chunked_responses_succeed(self):
        ts = self.make_server(chunked=True)
        run = self.attack("-rate", 200, "-duration", "1s", "-connections", 2, ts.url + "/")
        self.assertClean(run, requests=200)
        self.assertEqual(ts.answered, run.report["responses"], run)
        self.assertEqual(ts.connections, 2, "keep-alive over chunked responses\n%s" % run)

    def test_connection_close_reopens_and_resends(self):
        # Pipeline 1: each "Connection: close" ends a connection; the next requests go on a new
        # one.
        ts = self.make_server(close_every=10)
        run = self.attack("-rate", 200, "-duration", "1s", "-connections", 2, "-pipeline", 1,
                          ts.url + "/")
        self.assertClean(run, requests=200)
        self.assertEqual(ts.answered, run.report["responses"], run)
        self.assertGreaterEqual(ts.closed, 19, run)
        self.assertGreaterEqual(ts.connections, ts.closed, "no reconnections\n%s" % run)

        # Pipelined: requests already sent behind the closing response are dropped by the server
        # and must be sent again on the new connection, not counted as errors.
        ts = self.make_server(close_every=10)
        run = self.attack("-max", "-duration", "1s", "-connections", 2, "-pipeline", 8,
                          ts.url + "/")
        self.assertClean(run)
        self.assertEqual(ts.answered, run.report["responses"], run)
        self.assertGreater(ts.received, ts.answered,
                           "no request was pipelined behind a closing response: the test did"
                           " not exercise resending\n%s" % run)

    def test_malformed_response_is_a_parse_error(self):
        ts = self.make_server(malformed_every=10)
        run = self.attack("-rate", 200, "-duration", "1s", "-connections", 2, ts.url + "/")
        rep = run.report
        errs = rep["error_counts"]
        self.assertGreaterEqual(ts.malformed, 19, run)
        self.assertEqual(errs["parse"], ts.malformed, run)
        # Every other request was answered on a reopened connection.
        self.assertEqual(rep["status_codes"], {"200": ts.answered - ts.malformed}, run)
        self.assertEqual(rep["requests"], rep["responses"] + errs["parse"], run)
        self.assertEqual({k: v for k, v in errs.items() if k != "parse"},
                         {k: 0 for k in ERROR_KINDS if k != "parse"}, run)
        self.assertNotEqual(rep["errors"], [], run)
        self.assertGreaterEqual(ts.connections, ts.malformed, "no reconnections\n%s" % run)

    def test_connection_refused_is_counted(self):
        url = "http://127.0.0.1:%d/" % self.refused_port()
        run = self.attack("-rate", 50, "-duration", "1s", "-connections", 2, url)
        rep = run.report
        self.assertGreater(rep["requests"], 0, run)
        self.assertGreater(rep["error_counts"]["connect"], 0, run)
        self.assertEqual(rep["responses"], 0, run)
        self.assertEqual(rep["status_codes"], {}, run)
        self.assertEqual(rep["success"], 0, run)
        self.assertNotEqual(rep["errors"], [], run)

    def test_timeout_is_counted(self):
        ts = self.make_server(delay_every=5, delay_ms=1500)
        run = self.attack("-rate", 20, "-duration", "1s", "-connections", 1, "-timeout", "300ms",
                          ts.url + "/")
        rep = run.report
        self.assertGreaterEqual(rep["error_counts"]["timeout"], 1, run)
        self.assertGreaterEqual(rep["status_codes"].get("200", 0), 4, run)
        self.assertLessEqual(rep["responses"] + rep["error_counts"]["timeout"], rep["requests"],
                             run)

    # ---- 7. pipelining ---------------------------------------------------------------------------

    def test_pipeline_16_closed_loop(self):
        srv, url = self.coil_url()
        before = get_stats(srv.port)["requests"]
        run = self.attack("-pipeline", 16, "-rate", 0, "-duration", "2s", "-connections", 4,
                          url + "/plaintext")
        self.assertClean(run)
        self.assertCoilServed(srv, before, run.report["responses"])

        # The limit is 16 in flight per connection, and closed loop reaches it: while one
        # response is held back 100 ms the client fills the pipeline.
        ts = self.make_server(delay_every=200, delay_ms=100)
        run = self.attack("-pipeline", 16, "-rate", 0, "-duration", "1s", "-connections", 1,
                          ts.url + "/")
        self.assertClean(run)
        self.assertGreaterEqual(ts.delayed, 1, run)
        self.assertEqual(ts.max_in_flight, 16, run)
        self.assertEqual(ts.connections, 1, run)

    def test_open_loop_pipeline_limit(self):
        # One connection, 400/s, pipeline 2: while a response is held back 50 ms, 20 requests
        # fall due; one more is sent behind the held one and the rest wait for room.
        ts = self.make_server(delay_every=50, delay_ms=50)
        run = self.attack("-rate", 400, "-duration", "1s", "-connections", 1, "-pipeline", 2,
                          ts.url + "/")
        self.assertClean(run, requests=400)
        self.assertGreaterEqual(ts.delayed, 7, run)
        self.assertEqual(ts.max_in_flight, 2, run)
        self.assertEqual(ts.connections, 1, run)
        # The requests that waited are late from their intended times on.
        self.assertGreaterEqual(run.report["latencies"]["99th"], 40 * MS, run)

    # ---- 8. the text report, output file and flag spellings ---------------------------------------

    def test_text_report(self):
        srv, url = self.coil_url()
        # "attack" verb, "--flag=value" and "-flag=value" spellings; text is the default format.
        run = self.load("attack", "--rate=200", "-duration=1s", "--connections", "2",
                        url + "/plaintext")
        lines = run.out.splitlines()

        def line(pattern):
            found = [m for m in (re.match(pattern, l) for l in lines) if m]
            self.assertEqual(len(found), 1, "want one line matching %r\n%s" % (pattern, run))
            return found[0]

        total = int(line(r"^Requests\s+\[total, rate, throughput\]\s+(\d+), [\d.]+, [\d.]+\s*$")
                    .group(1))
        self.assertLessEqual(abs(total - 200), 2, run)
        line(r"^Duration\s+\S")
        line(r"^Latencies\s+\[min, mean, 50, 90, 95, 99, 99\.9, max\]\s+\S")
        line(r"^Bytes In\s+\S")
        line(r"^Bytes Out\s+\S")
        line(r"^Success\s+\[ratio\]\s+(100(\.0+)?%|1(\.0+)?)\s*$")
        self.assertEqual(int(line(r"^Status Codes\s+\[code:count\]\s+200:(\d+)\s*$").group(1)),
                         total, run)
        line(r"^Error Set:\s*$")

    def test_url_form_method_body_headers_and_output_file(self):
        ts = self.make_server()
        d = self.tmpdir()
        body = b"a body\r\nwith a CRLF and \x00 a NUL byte"
        body_path = self.write(d, "body.bin", body)
        out = os.path.join(d, "report.json")
        run = self.load("-method", "POST", "-body", "@" + body_path, "-H", "X-A: 1",
                        "-H", "X-B: two words", "-rate", 50, "-duration", "1s",
                        "-connections", 1, "-quiet", "-o", out, "-format=json",
                        ts.url + "/submit?x=1")
        self.assertEqual(run.out, "", "the report went to stdout despite -o\n%s" % run)
        with open(out) as f:
            rep = self.json_report(f.read(), run)
        run.report = rep
        self.assertClean(run, requests=50)
        self.assertEqual(ts.bad_requests, [], run)
        self.assertEqual(list(ts.by_target), [("POST", "/submit?x=1")], run)
        req = ts.samples[("POST", "/submit?x=1")]
        self.assertEqual(req.body, body, req)
        self.assertEqual(req.header_all("Content-Length"), [str(len(body))], req)
        self.assertEqual(req.header_all("X-A"), ["1"], req)
        self.assertEqual(req.header_all("X-B"), ["two words"], req)
        self.assertEqual(req.header_all("Host"), ["127.0.0.1:%d" % ts.port], req)
        self.assertEqual(rep["bytes_out"]["total"], ts.received_bytes, run)
        self.assertEqual(rep["bytes_out"]["total"], rep["requests"] * req.raw_len, run)


def main():
    if not os.path.exists(coil_load_bin()):
        print("test_load_tool: coil-load not found at %s (build it, or set COIL_LOAD)"
              % coil_load_bin(), file=sys.stderr)
        sys.exit(1)
    coil_harness.main()


if __name__ == "__main__":
    main()
