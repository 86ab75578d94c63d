# SPDX-License-Identifier: MIT
"""The access log (engine/alog.c), the engine's JSON log lines (engine/log.c) and trace context
(engine/mw.c, client.c, proxy.c), on the demo binary.

What is checked: --access-log FILE writes one JSON line per request, each matched to what the
client sent and received (method, target with its query, status, bytes equal to the response's
bytes on the wire, request_id equal to the X-Request-ID header, user agent, route pattern, peer,
duration, an ISO-8601 UTC time), valid JSON whatever bytes a client's header held (UTF-8 kept,
any other byte as \\u00XX); 2000 requests over many connections and two workers, none lost
once the server has stopped gracefully; the engine's own answers (404, 400 for garbage, 431,
408) logged too; the combined format; --access-log - (stdout); SIGHUP reopening the file after
a rename (old lines stay in the renamed file, new ones go to a new file, nothing lost or
duplicated); a writer that stalls (a FIFO nobody reads): requests still answered, lines dropped
and counted, then flowing again once it is read, whole lines only, every line either written or
counted as dropped, and a stop that does not hang; --log-format json; traceparent: its trace ID
logged, and passed to a proxied upstream with a new span ID and the client's tracestate, or a
new valid one when the client sent none. Waits are bounds against hangs; nothing asserts on
time."""

import codecs
import datetime
import json
import os
import queue
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading

from coil_harness import (CoilTestCase, Conn, clean_env, coil_bin, get, main, need_tool,
                          parse_all, raw, raw_until_eof, request, wait_until)
from test_metrics import scrape
from upstreams import FaultServer, echo

JSON_FIELDS = {"time", "peer", "method", "target", "status", "bytes", "bytes_in", "duration_us",
               "request_id", "trace_id", "user_agent", "route"}
ISO_UTC_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
COMBINED_RE = re.compile(
    r'^(?P<peer>\S+) - - \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
    r'"(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"]*)" '
    r'"(?P<ua>[^"]*)"$')
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = "00-%s-%s-01" % (TRACE_ID, PARENT_ID)
TRACEPARENT_RE = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def get_with(port, path, headers):
    """GET with extra headers on a fresh connection that asks to be closed."""
    return raw(port, request("GET", path, headers=["Connection: close"] + list(headers)))[0]


def latin1_fallback(err):
    """Decoding error handler: a byte outside well-formed UTF-8 is the code point of its value,
    as coil writes it in a JSON line (\\u00XX)."""
    return chr(err.object[err.start]), err.start + 1


codecs.register_error("coil-latin1-fallback", latin1_fallback)


def as_logged(text):
    """What a header value sent as text (latin-1 bytes, see request()) reads as once logged."""
    return text.encode("latin-1").decode("utf-8", "coil-latin1-fallback")


def wire_len(resp):
    return len(resp.head_bytes) + len(resp.body)


def complete_lines(path):
    """The whole lines of a log the server is still writing: a write in progress (the kernel
    copies a large one in pieces) may have put part of a line only, so what follows the last
    newline is left for later."""
    with open(path, "rb") as f:
        data = f.read()
    return data[: data.rfind(b"\n") + 1].decode("utf-8").splitlines()


def read_lines(path):
    """The lines of a log the server has stopped writing: it must end at a line's end."""
    with open(path, "rb") as f:
        data = f.read()
    if data and not data.endswith(b"\n"):
        raise AssertionError("%s ends inside a line: %r" % (path, data[-200:]))
    return data.decode("utf-8").splitlines()


def parse_json_lines(lines):
    out = []
    for line in lines:
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError("not a JSON line: %r" % line) from None
        if not isinstance(obj, dict):
            raise AssertionError("not a JSON object: %r" % line)
        out.append(obj)
    return out


class FifoReader:
    """Reads a FIFO opened non-blocking (so that coil's open for writing does not block) in a
    thread, once start() is called, until the writers are gone (EOF)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self.lock = threading.Lock()
        self.eof = threading.Event()
        self.quit = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        while not self.quit.is_set():
            select.select([self.fd], [], [], 0.1)
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                self.eof.set()
                return
            with self.lock:
                self.data += chunk

    def text(self):
        with self.lock:
            return bytes(self.data)

    def close(self):
        self.quit.set()
        if self.thread.is_alive():
            self.thread.join(5)
        os.close(self.fd)


class AccessLogCase(CoilTestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="coil-alog-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.log = os.path.join(self.dir, "access.log")

    def logged(self, path=None):
        return parse_json_lines(read_lines(path or self.log))

    def assertLine(self, line, method, target, resp, sent, route, ua=""):
        """line is what was logged for the request bytes sent, answered by resp."""
        self.assertEqual(set(line) - {"incomplete"}, JSON_FIELDS, line)
        self.assertNotIn("incomplete", line)
        self.assertEqual(line["method"], method, line)
        self.assertEqual(line["target"], target, line)
        self.assertEqual(line["status"], resp.status, line)
        self.assertEqual(line["bytes"], wire_len(resp), line)
        self.assertEqual(line["bytes_in"], len(sent), line)
        self.assertEqual(line["request_id"], resp.header("X-Request-ID"), line)
        self.assertEqual(line["user_agent"], ua, line)
        self.assertEqual(line["route"], route, line)
        self.assertEqual(line["peer"], "127.0.0.1", line)
        self.assertIsInstance(line["duration_us"], int, line)
        self.assertGreaterEqual(line["duration_us"], 0, line)
        self.assertRegex(line["time"], ISO_UTC_RE)
        self.assertRegex(line["trace_id"], r"^[0-9a-f]{32}$")


# ---- JSON lines ---------------------------------------------------------------------------------

class JsonLines(AccessLogCase):
    def test_each_request_logged_once_with_its_fields(self):
        srv = self.start("--workers", "1", "--access-log", self.log)
        before = datetime.datetime.now(datetime.timezone.utc)
        conn = self.connect(srv)
        cases = [
            ("GET", "/plaintext?a=1&b=two%20words", None, "/plaintext", []),
            ("HEAD", "/json", None, "/json", []),
            ("POST", "/echo?x=y", b"hello body", "/echo", ["Content-Type: text/plain"]),
            ("GET", "/nowhere?q=1", None, "", []),
            ("POST", "/plaintext", b"no", "", []),
            ("GET", "/delay/1", None, "/delay/:ms", []),
            ("GET", "/kv/some-key", None, "/kv/:key", []),
            ("GET", "/plaintext", None, "/plaintext", ["X-Request-ID: client-chosen.id_1:2"]),
            ("GET", "/plaintext", None, "/plaintext", ["X-Request-ID: not a valid id!"]),
            ("GET", "/plaintext", None, "/plaintext", ["User-Agent: quote\" back\\slash\ttab"]),
            # UTF-8 (é, €, U+1F600), then bytes that are not: a lone byte, a cut sequence, an
            # overlong "/", a surrogate
            ("GET", "/plaintext", None, "/plaintext",
             ["User-Agent: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xff \xe2\x82 \xc0\xaf "
              "\xed\xa0\x80 end"]),
        ]
        sent = []
        for i, (method, target, body, route, headers) in enumerate(cases):
            ua = "coil-alog-test/%d" % i
            hdrs = list(headers)
            if not any(h.startswith("User-Agent:") for h in hdrs):
                hdrs.append("User-Agent: " + ua)
            else:
                ua = hdrs[-1].split(": ", 1)[1]
            data = request(method, target, body=body, headers=hdrs)
            conn.send(data)
            resp = conn.read_response(head=(method == "HEAD"))
            sent.append((method, target, route, ua, data, resp))
        self.assertEqual(sent[7][5].header("X-Request-ID"), "client-chosen.id_1:2")
        self.assertNotEqual(sent[8][5].header("X-Request-ID"), "not a valid id!")
        self.stop(srv)
        after = datetime.datetime.now(datetime.timezone.utc)
        lines = self.logged()
        self.assertEqual(len(lines), len(cases), lines)
        by_id = {line["request_id"]: line for line in lines}
        self.assertEqual(len(by_id), len(lines), "request IDs are not unique: %s" % lines)
        for method, target, route, ua, data, resp in sent:
            with self.subTest(method=method, target=target):
                line = by_id.get(resp.header("X-Request-ID"))
                self.assertIsNotNone(line, "no line for %r" % resp)
                self.assertLine(line, method, target, resp, data, route, as_logged(ua))
                t = datetime.datetime.strptime(line["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                    tzinfo=datetime.timezone.utc)
                # The clock check: UTC, and of this run (seconds of slack for the truncation).
                self.assertLessEqual(before - datetime.timedelta(seconds=5), t, line)
                self.assertLessEqual(t, after + datetime.timedelta(seconds=5), line)
        self.assertEqual([line["status"] for line in lines],
                         [resp.status for *_, resp in sent], "lines are not in request order")

    def test_engine_answers_are_logged(self):
        srv = self.start("--workers", "1", "--header-timeout", "1s", "--access-log", self.log)
        answers = []
        for data in (b"garbage\r\n\r\n",
                     request("GET", "/plaintext", headers=[("X-Huge", "h" * 20000)]),
                     request("GET", "/not/here", headers=["Connection: close"])):
            res = raw_until_eof(srv.port, data)
            self.assertEqual(len(res.responses), 1, res)
            answers.append(res.responses[0])
        partial = self.connect(srv)
        partial.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n")
        res = raw_until_eof(srv.port, b"")  # a connection that sends nothing: not a request
        self.assertEqual(res.responses, [])
        data, _ = partial.read_until_eof()
        answers.append(parse_all(data)[0][0])
        self.assertEqual([r.status for r in answers], [400, 431, 404, 408])
        self.stop(srv)
        lines = self.logged()
        self.assertEqual(len(lines), 4, lines)
        by_id = {line["request_id"]: line for line in lines}
        for resp in answers:
            line = by_id[resp.header("X-Request-ID")]
            self.assertEqual(line["status"], resp.status, line)
            self.assertEqual(line["bytes"], wire_len(resp), line)
            self.assertEqual(line["peer"], "127.0.0.1", line)
            self.assertEqual(line["route"], "", line)
            if resp.status == 404:
                self.assertEqual((line["method"], line["target"]), ("GET", "/not/here"), line)
            else:  # refused before it was parsed: no method or target
                self.assertEqual((line["method"], line["target"]), ("", ""), line)

    def test_2000_requests_two_workers_none_lost(self):
        srv = self.start("--workers", "2", "--access-log", self.log)
        clients, per_client = 8, 250
        results = [[] for _ in range(clients)]
        errors = []

        def client(k):
            try:
                conn = None
                for i in range(per_client):
                    if conn is None or i % 50 == 0:  # a new connection now and then
                        if conn:
                            conn.close()
                        conn = Conn(srv.port)
                    target = "/plaintext?client=%d&i=%d" % (k, i)
                    data = request("GET", target, headers=["User-Agent: load/%d" % k])
                    conn.send(data)
                    resp = conn.read_response()
                    results[k].append((target, len(data), resp.status, wire_len(resp),
                                       resp.header("X-Request-ID")))
                conn.close()
            except Exception as e:  # reported below, on the test's thread
                errors.append(e)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.stop(srv)
        lines = self.logged()
        self.assertEqual(len(lines), clients * per_client)
        by_target = {}
        for line in lines:
            self.assertNotIn(line["target"], by_target, "logged twice: %s" % line)
            by_target[line["target"]] = line
        for k in range(clients):
            for target, n_in, status, n_out, rid in results[k]:
                line = by_target.get(target)
                self.assertIsNotNone(line, "no line for %s" % target)
                self.assertEqual((line["status"], line["bytes"], line["bytes_in"],
                                  line["request_id"], line["user_agent"], line["route"]),
                                 (status, n_out, n_in, rid, "load/%d" % k, "/plaintext"))

    def test_stdout(self):
        srv = self.start("--workers", "2", "--access-log", "-")
        ids = []
        for i in range(20):
            resp = get(srv.port, "/plaintext?n=%d" % i)
            self.assertEqual(resp.status, 200)
            ids.append(resp.header("X-Request-ID"))
        self.stop(srv)
        out = [line[len("out| "):] for line in srv.log_text().splitlines()
               if line.startswith("out| ")]
        lines = parse_json_lines(out)
        self.assertEqual(sorted(line["request_id"] for line in lines), sorted(ids))
        self.assertEqual(sorted(line["target"] for line in lines),
                         sorted("/plaintext?n=%d" % i for i in range(20)))

    def test_bad_access_log_path_exits_2(self):
        for args in (["--access-log", os.path.join(self.dir, "no", "such", "dir", "x.log")],
                     ["--access-log", ""],
                     ["--access-log", self.log, "--access-log-format", "xml"]):
            with self.subTest(args=args):
                p = subprocess.run([coil_bin(), "--port", "0", "--bind", "127.0.0.1",
                                    "--workers", "1"] + args, capture_output=True, text=True,
                                   timeout=30, stdin=subprocess.DEVNULL, env=clean_env())
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("access-log", p.stderr)
                self.assertNotIn("listening", p.stderr)


# ---- the combined format ------------------------------------------------------------------------

class Combined(AccessLogCase):
    def test_combined_lines(self):
        srv = self.start("--workers", "1", "--access-log", self.log, "--access-log-format",
                         "combined")
        conn = self.connect(srv)
        cases = [
            (request("GET", "/plaintext?a=1", headers=["User-Agent: curl/8.0",
                                                        "Referer: http://example.com/page"]),
             "GET /plaintext?a=1 HTTP/1.1", "http://example.com/page", "curl/8.0"),
            (request("GET", "/nothing"), "GET /nothing HTTP/1.1", "-", "-"),
            (request("POST", "/echo", body=b"abc", headers=['User-Agent: say "hi"\\']),
             "POST /echo HTTP/1.1", "-", r"say \x22hi\x22\x5c"),
            (request("HEAD", "/json"), "HEAD /json HTTP/1.1", "-", "-"),
        ]
        resps = []
        for data, *_ in cases:
            conn.send(data)
            resps.append(conn.read_response(head=data.startswith(b"HEAD")))
        res = raw_until_eof(srv.port, request("GET", "/healthz", version="HTTP/1.0", host=None))
        cases.append((None, "GET /healthz HTTP/1.0", "-", "-"))
        resps.append(res.responses[0])
        res = raw_until_eof(srv.port, b"\x01\x02garbage\r\n\r\n")
        cases.append((None, "-", "-", "-"))
        resps.append(res.responses[0])
        self.stop(srv)
        lines = read_lines(self.log)
        self.assertEqual(len(lines), len(cases), lines)
        for line, (_, req_line, referer, ua), resp in zip(lines, cases, resps):
            with self.subTest(line=line):
                m = COMBINED_RE.match(line)
                self.assertIsNotNone(m, "not the combined format: %r" % line)
                self.assertEqual(m.group("peer"), "127.0.0.1")
                self.assertEqual(m.group("request"), req_line)
                self.assertEqual(int(m.group("status")), resp.status)
                self.assertEqual(int(m.group("bytes")), wire_len(resp))
                self.assertEqual(m.group("referer"), referer)
                self.assertEqual(m.group("ua"), ua)
                t = datetime.datetime.strptime(m.group("time"), "%d/%b/%Y:%H:%M:%S %z")
                now = datetime.datetime.now(datetime.timezone.utc)
                self.assertLess(abs((now - t).total_seconds()), 120, line)


# ---- SIGHUP -------------------------------------------------------------------------------------

class Reopen(AccessLogCase):
    def batch(self, port, phase, n):
        targets = []
        conns = [Conn(port) for _ in range(4)]
        try:
            for i in range(n):
                target = "/plaintext?phase=%s&i=%d" % (phase, i)
                self.assertEqual(conns[i % 4].request("GET", target).status, 200)
                targets.append(target)
        finally:
            for c in conns:
                c.close()
        return targets

    def test_sighup_reopens_after_rename(self):
        srv = self.start("--workers", "2", "--access-log", self.log)
        a = self.batch(srv.port, "a", 40)
        # Every line of phase a is written before the rename (lines go out at batch ends).
        wait_until(lambda: os.path.exists(self.log) and len(complete_lines(self.log)) == 40,
                   what="40 lines in the log")
        rotated = self.log + ".1"
        os.rename(self.log, rotated)
        srv.send_signal(signal.SIGHUP)
        wait_until(lambda: "access log reopened" in srv.log_text(), what="the reopen")
        self.assertTrue(os.path.exists(self.log), "no new file at the original path")
        b = self.batch(srv.port, "b", 40)
        self.stop(srv)
        self.assertEqual(sorted(line["target"] for line in self.logged(rotated)), sorted(a))
        self.assertEqual(sorted(line["target"] for line in self.logged()), sorted(b))

    def test_sighup_reopen_failure_keeps_the_old_file(self):
        srv = self.start("--workers", "1", "--access-log", self.log)
        a = self.batch(srv.port, "a", 5)
        wait_until(lambda: len(complete_lines(self.log)) == 5, what="5 lines in the log")
        rotated = self.log + ".1"
        os.rename(self.log, rotated)
        os.mkdir(self.log)  # the original path cannot be opened as a file now
        srv.send_signal(signal.SIGHUP)
        wait_until(lambda: "cannot reopen the access log" in srv.log_text(), what="the failure")
        b = self.batch(srv.port, "b", 5)
        self.stop(srv)
        self.assertEqual(sorted(line["target"] for line in self.logged(rotated)), sorted(a + b))


# ---- a writer that stalls -----------------------------------------------------------------------

class Stalled(AccessLogCase):
    def fifo(self):
        path = os.path.join(self.dir, "fifo")
        os.mkfifo(path)
        reader = FifoReader(path)
        self.addCleanup(reader.close)
        return path, reader

    def fill(self, srv):
        """Loads the server until access log lines are dropped; returns the scrape."""
        wrk = need_tool("wrk")
        for _ in range(5):
            p = subprocess.run([wrk, "-t1", "-c8", "-d2s",
                                "http://127.0.0.1:%d/plaintext" % srv.port],
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertRegex(p.stdout, r"\d+ requests in")
            self.assertNotIn("Non-2xx", p.stdout)
            self.assertNotIn("Socket errors", p.stdout)
            s = scrape(srv.port)
            if s.value("coil_access_log_dropped_total") > 0:
                return s
        self.fail("no access log line was dropped with nobody reading the FIFO")

    def test_stalled_fifo_drops_lines_and_requests_go_on(self):
        path, reader = self.fifo()
        srv = self.start("--workers", "2", "--access-log", path)
        self.fill(srv)
        # Still answering, with the log's pipe full.
        for _ in range(20):
            self.assertEqual(get(srv.port, "/plaintext").status, 200)
        reader.start()
        # A line made while its worker's buffers are still full is dropped too: requests go on
        # until one made after the pipe drained is read.
        markers = []

        def marker_read():
            markers.append("/plaintext?marker=%d" % len(markers))
            self.assertEqual(get(srv.port, markers[-1]).status, 200)
            return b"?marker=" in reader.text()

        wait_until(marker_read, timeout=10, interval=0.1, what="lines to flow again")
        final = scrape(srv.port)
        self.stop(srv)
        self.assertTrue(reader.eof.wait(10), "the FIFO's writers did not all close")
        data = reader.text()
        self.assertTrue(data.endswith(b"\n"), data[-200:])
        lines = parse_json_lines(data.decode("utf-8").splitlines())
        for line in lines:
            self.assertEqual(set(line) - {"incomplete"}, JSON_FIELDS, line)
        # Every request is either logged or counted as dropped; the final scrape's own line is
        # written after it was taken.
        answered = sum(v for _, v in final.series("coil_http_requests_total")) + sum(
            v for _, v in final.series("coil_http_parse_errors_total"))
        dropped = final.value("coil_access_log_dropped_total")
        self.assertGreater(dropped, 0)
        self.assertEqual(len(lines) + dropped, answered + 1)

    def test_stop_with_the_fifo_full_does_not_hang(self):
        path, reader = self.fifo()
        srv = self.start("--workers", "2", "--access-log", path)
        self.fill(srv)
        self.stop(srv)  # bounded by the harness: a hang fails here


# ---- the engine's own log lines as JSON ---------------------------------------------------------

class LogFormat(AccessLogCase):
    def run_json(self, *args):
        """Starts coil with --log-format json (the harness waits for a text line, so this test
        runs it itself); returns (process, queue of stderr lines, port)."""
        p = subprocess.Popen([coil_bin(), "--port", "0", "--bind", "127.0.0.1", "--workers", "1",
                              "--log-format", "json"] + list(args),
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=clean_env())
        # Cleanups run last first: the process is gone (and the pump at EOF) before the close.
        self.addCleanup(p.stderr.close)
        self.addCleanup(lambda: p.poll() is None and (p.kill(), p.wait()))
        lines = queue.Queue()

        def pump():
            for raw in iter(p.stderr.readline, b""):
                lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        while True:  # lines before it (modules saying what they loaded) are JSON too
            line = lines.get(timeout=10)
            self.assertIsNotNone(line, "coil exited before listening")
            m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+) with 1 workers?",
                             self.assertJsonLine(line)["msg"])
            if m:
                return p, lines, int(m.group(1))

    def assertJsonLine(self, line):
        try:
            obj = json.loads(line)
        except ValueError:
            self.fail("stderr line is not JSON: %r" % line)
        self.assertIsInstance(obj, dict, line)
        self.assertEqual(set(obj), {"time", "level", "msg"}, line)
        self.assertRegex(obj["time"], ISO_UTC_RE)
        self.assertIn(obj["level"], ("info", "debug"), line)
        self.assertIsInstance(obj["msg"], str, line)
        return obj

    def rest(self, p, lines):
        self.assertEqual(p.wait(30), 0)
        out = []
        while True:
            line = lines.get(timeout=10)
            if line is None:
                return out
            out.append(line)

    def test_stderr_lines_are_json(self):
        # A path that needs escaping inside a JSON string: the reopen line names it.
        log = os.path.join(self.dir, 'odd "name" \\ here.log')
        p, lines, port = self.run_json("--access-log", log)
        self.assertEqual(get(port, "/plaintext").status, 200)
        p.send_signal(signal.SIGHUP)
        got = []
        while not any("access log reopened" in m for m in got):
            line = lines.get(timeout=10)
            self.assertIsNotNone(line, "coil exited")
            got.append(self.assertJsonLine(line)["msg"])
        self.assertIn("SIGHUP: access log reopened: " + log, got)
        p.send_signal(signal.SIGTERM)
        msgs = [self.assertJsonLine(line)["msg"] for line in self.rest(p, lines)]
        self.assertTrue(any(m.startswith("SIGTERM: draining") for m in msgs), msgs)
        self.assertTrue(any(m.startswith("stopped: ") for m in msgs), msgs)

    def test_debug_lines_are_json(self):
        p = subprocess.run([coil_bin(), "--help"], capture_output=True, text=True, timeout=30,
                           env=clean_env())
        if "--api-keys" not in p.stdout:
            self.skipTest("built without the auth module: no debug line to provoke")
        keys = os.path.join(self.dir, "keys")
        with open(keys, "w") as f:
            f.write("the-right-key\n")
        p, lines, port = self.run_json("--log-level", "debug", "--api-keys", keys)
        resp = get_with(port, "/plaintext", ["X-API-Key: a-wrong-key"])
        self.assertEqual(resp.status, 401, resp)
        p.send_signal(signal.SIGTERM)
        objs = [self.assertJsonLine(line) for line in self.rest(p, lines)]
        debug = [o for o in objs if o["level"] == "debug"]
        self.assertTrue(debug and any("refused" in o["msg"] for o in debug), objs)


# ---- trace context ------------------------------------------------------------------------------

class Trace(AccessLogCase):
    def test_traceparent_trace_id_is_logged(self):
        srv = self.start("--workers", "1", "--access-log", self.log)
        cases = [
            (TRACEPARENT, TRACE_ID),
            ("00-%s-%s-00" % ("a" * 32, "b" * 16), "a" * 32),
            # invalid: upper case, zero trace ID, zero parent, short, version ff: a new trace
            (TRACEPARENT.upper(), None),
            ("00-%s-%s-01" % ("0" * 32, PARENT_ID), None),
            ("00-%s-%s-01" % (TRACE_ID, "0" * 16), None),
            (TRACEPARENT[:-1], None),
            ("ff" + TRACEPARENT[2:], None),
            (None, None),
            (None, None),
        ]
        ids = []
        for tp, _ in cases:
            headers = ["traceparent: " + tp] if tp else []
            resp = get_with(srv.port, "/plaintext", headers)
            self.assertEqual(resp.status, 200)
            ids.append(resp.header("X-Request-ID"))
        self.stop(srv)
        by_id = {line["request_id"]: line for line in self.logged()}
        fresh = set()
        for (tp, want), rid in zip(cases, ids):
            with self.subTest(traceparent=tp):
                got = by_id[rid]["trace_id"]
                self.assertRegex(got, r"^[0-9a-f]{32}$")
                self.assertNotEqual(got, "0" * 32)
                if want:
                    self.assertEqual(got, want)
                else:
                    self.assertNotEqual(got, TRACE_ID)
                    self.assertNotIn(got, fresh, "a new trace ID was used twice")
                    fresh.add(got)


class Propagation(AccessLogCase):
    def proxied(self):
        up = FaultServer(echo())
        self.addCleanup(up.close)
        srv = self.start("--workers", "1", "--access-log", self.log, "--proxy",
                         "/api/=%s/" % up.url)
        return up, srv

    def test_upstream_gets_the_trace_with_a_new_span(self):
        up, srv = self.proxied()
        state = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
        spans = []
        for i in range(2):
            resp = get_with(srv.port, "/api/item/%d" % i,
                            ["traceparent: " + TRACEPARENT, "tracestate: " + state])
            self.assertEqual(resp.status, 200, resp)
            seen = up.wait_requests(i + 1)[i]
            self.assertEqual(seen.target, "/item/%d" % i)
            self.assertEqual(len(seen.header_all("traceparent")), 1, seen)
            m = TRACEPARENT_RE.match(seen.header("traceparent"))
            self.assertIsNotNone(m, seen)
            trace, span, flags = m.groups()
            self.assertEqual(trace, TRACE_ID)
            self.assertNotEqual(span, PARENT_ID, "the client's parent ID passed on as is")
            self.assertNotEqual(span, "0" * 16)
            self.assertEqual(flags, "01")
            self.assertEqual(seen.header_all("tracestate"), [state])
            spans.append(span)
        self.assertNotEqual(spans[0], spans[1], "two requests, one span ID")
        self.stop(srv)
        self.assertEqual([line["trace_id"] for line in self.logged()], [TRACE_ID, TRACE_ID])

    def test_upstream_gets_a_new_trace_without_one(self):
        up, srv = self.proxied()
        rids = []
        for headers in ([], ["traceparent: not-a-traceparent", "tracestate: a=b"]):
            resp = get_with(srv.port, "/api/x", headers)
            self.assertEqual(resp.status, 200, resp)
            rids.append(resp.header("X-Request-ID"))
        seen = up.wait_requests(2)
        self.stop(srv)
        by_id = {line["request_id"]: line for line in self.logged()}
        traces = []
        for req, rid in zip(seen, rids):
            self.assertEqual(len(req.header_all("traceparent")), 1, req)
            m = TRACEPARENT_RE.match(req.header("traceparent"))
            self.assertIsNotNone(m, req)
            trace, span, _ = m.groups()
            self.assertNotEqual(trace, "0" * 32)
            self.assertNotEqual(span, "0" * 16)
            self.assertEqual(trace, by_id[rid]["trace_id"], "upstream vs access log")
            # A tracestate without a valid traceparent is not passed on (W3C trace context).
            self.assertEqual(req.header_all("tracestate"), [], req)
            traces.append(trace)
        self.assertNotEqual(traces[0], traces[1])


if __name__ == "__main__":
    main()
