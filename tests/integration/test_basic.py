# SPDX-License-Identifier: MIT
"""The demo routes, HEAD, 404/405 with Allow, the standard response headers and the keep-alive
rules of HTTP/1.0 and 1.1, over raw sockets and with curl."""

import email.utils
import json
import shutil
import subprocess
import time
import unittest

from coil_harness import CoilTestCase, main, raw, raw_until_eof, request

HELLO = b"Hello, World!"
JSON = b'{"message":"Hello, World!"}'


class Routes(CoilTestCase):
    def setUp(self):
        self.srv = self.start("--workers", "2")

    def get(self, path, **kw):
        return self.connect(self.srv).request("GET", path, **kw)

    def test_plaintext(self):
        r = self.get("/plaintext")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.version, "HTTP/1.1")
        self.assertEqual(r.header("Content-Type").split(";")[0].strip(), "text/plain", r)
        self.assertEqual(r.body, HELLO)
        self.assertStandardHeaders(r, len(HELLO))

    def test_json_body_exact(self):
        r = self.get("/json")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type").split(";")[0].strip(), "application/json", r)
        self.assertEqual(r.body, JSON)
        self.assertEqual(json.loads(r.body), {"message": "Hello, World!"})
        self.assertStandardHeaders(r, len(JSON))

    def test_healthz(self):
        r = self.get("/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok"), r)
        self.assertEqual(r.header("Content-Type").split(";")[0].strip(), "text/plain", r)
        self.assertStandardHeaders(r, 2)

    def test_readyz_before_shutdown(self):
        r = self.get("/readyz")
        self.assertEqual((r.status, r.body), (200, b"ready"), r)
        self.assertStandardHeaders(r, 5)

    def test_stats_fields(self):
        r = self.get("/stats")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type").split(";")[0].strip(), "application/json", r)
        stats = json.loads(r.body)
        for key in ("requests", "connections", "open", "heap_allocs", "jobs_run", "rejected"):
            self.assertIsInstance(stats.get(key), int, "%s in %r" % (key, stats))
            self.assertGreaterEqual(stats[key], 0)
        self.assertEqual(stats["workers"], 2, stats)
        self.assertGreaterEqual(stats["open"], 1, "our own connection is open: %r" % stats)
        self.assertGreaterEqual(stats["connections"], 1, stats)

    def test_stats_counts_requests(self):
        conn = self.connect(self.srv)
        before = json.loads(conn.request("GET", "/stats").body)["requests"]
        for _ in range(10):
            self.assertEqual(conn.request("GET", "/plaintext").status, 200)
        after = json.loads(conn.request("GET", "/stats").body)["requests"]
        self.assertGreaterEqual(after - before, 10)

    def test_query_string_ignored_by_routing(self):
        r = self.get("/plaintext?x=1&y=two")
        self.assertEqual((r.status, r.body), (200, HELLO), r)

    def test_date_is_now(self):
        r = self.get("/plaintext")
        when = email.utils.parsedate_to_datetime(r.header("Date")).timestamp()
        self.assertLess(abs(when - time.time()), 600, "Date %r is not the current time"
                        % r.header("Date"))

    def test_unknown_path_404(self):
        for path in ("/nope", "/plaintext/extra", "/PLAINTEXT", "/"):
            r = self.get(path)
            self.assertEqual(r.status, 404, "%s: %r" % (path, r))
            self.assertStandardHeaders(r, len(r.body))

    def test_unknown_path_other_method_404(self):
        r = self.connect(self.srv).request("POST", "/nope", body=b"x")
        self.assertEqual(r.status, 404, r)

    def test_wrong_method_405_with_allow(self):
        cases = [("GET", "/echo", "POST"), ("POST", "/plaintext", "GET"),
                 ("DELETE", "/json", "GET"), ("PUT", "/healthz", "GET"),
                 ("POST", "/kv/somekey", "PUT")]
        conn = self.connect(self.srv)
        for method, path, allowed in cases:
            body = b"x" if method in ("POST", "PUT") else None
            r = conn.request(method, path, body=body)
            self.assertEqual(r.status, 405, "%s %s: %r" % (method, path, r))
            self.assertTrue(r.has_token("Allow", allowed),
                            "%s %s: Allow should contain %s: %r" % (method, path, allowed, r))
            self.assertStandardHeaders(r, len(r.body))

    def test_405_allow_lists_all_kv_methods(self):
        r = self.connect(self.srv).request("POST", "/kv/k", body=b"v")
        self.assertEqual(r.status, 405, r)
        for m in ("GET", "PUT", "DELETE"):
            self.assertTrue(r.has_token("Allow", m), "Allow lacks %s: %r" % (m, r))

    def test_unknown_method_on_known_path_405(self):
        r = self.connect(self.srv).request("BREW", "/plaintext")
        self.assertEqual(r.status, 405, r)
        self.assertTrue(r.has_token("Allow", "GET"), r)


class Head(CoilTestCase):
    def setUp(self):
        self.srv = self.start()

    def test_head_has_get_length_and_no_body(self):
        for path, body in (("/plaintext", HELLO), ("/json", JSON), ("/healthz", b"ok")):
            # HEAD then GET in one write: any body bytes after the HEAD response would be read as
            # the start of the GET response and break it.
            rs = raw(self.srv.port, request("HEAD", path) + request("GET", path), count=2,
                     head={0})
            self.assertEqual(rs[0].status, 200, rs)
            self.assertEqual(rs[0].header("Content-Length"), str(len(body)), rs[0])
            self.assertEqual(rs[0].body, b"")
            self.assertStandardHeaders(rs[0])
            self.assertEqual((rs[1].status, rs[1].body), (200, body), rs)

    def test_head_then_close_sends_no_body(self):
        res = raw_until_eof(self.srv.port,
                            request("HEAD", "/plaintext", headers=["Connection: close"]),
                            head=True)
        self.assertEqual(len(res.responses), 1, res)
        self.assertEqual(res.rest, b"", "bytes after a HEAD response: %r" % res)
        self.assertEqual(res.responses[0].header("Content-Length"), str(len(HELLO)))

    def test_head_on_post_route_405(self):
        rs = raw(self.srv.port, request("HEAD", "/echo") + request("GET", "/healthz"), count=2,
                 head={0})
        self.assertEqual(rs[0].status, 405, rs)
        self.assertTrue(rs[0].has_token("Allow", "POST"), rs[0])
        self.assertEqual((rs[1].status, rs[1].body), (200, b"ok"), rs)

    def test_head_unknown_404(self):
        rs = raw(self.srv.port, request("HEAD", "/nope") + request("GET", "/healthz"), count=2,
                 head={0})
        self.assertEqual(rs[0].status, 404, rs)
        self.assertEqual((rs[1].status, rs[1].body), (200, b"ok"), rs)


class KeepAlive(CoilTestCase):
    def setUp(self):
        self.srv = self.start()

    def test_http11_keeps_alive_by_default(self):
        conn = self.connect(self.srv)
        for i in range(5):
            r = conn.request("GET", "/plaintext")
            self.assertEqual((r.status, r.body), (200, HELLO), "request %d: %r" % (i, r))
            self.assertFalse(r.has_token("Connection", "close"), r)

    def test_http11_connection_close(self):
        res = raw_until_eof(self.srv.port, request("GET", "/plaintext",
                                                   headers=["Connection: close"]))
        self.assertClosesAfter(res, 200)
        self.assertEqual(res.responses[0].body, HELLO)

    def test_http11_connection_close_case_and_list(self):
        res = raw_until_eof(self.srv.port, request("GET", "/json",
                                                   headers=["connection: foo, CLOSE"]))
        self.assertClosesAfter(res, 200)

    def test_http11_close_ends_pipeline(self):
        data = (request("GET", "/healthz") + request("GET", "/json", headers=["Connection: close"])
                + request("GET", "/plaintext"))
        res = raw_until_eof(self.srv.port, data)
        self.assertClosesAfter(res, 200, count=2)
        self.assertEqual([r.body for r in res.responses], [b"ok", JSON])

    def test_http10_closes_by_default(self):
        res = raw_until_eof(self.srv.port, request("GET", "/plaintext", version="HTTP/1.0"))
        self.assertEqual(len(res.responses), 1, res)
        r = res.responses[0]
        self.assertEqual((r.status, r.body), (200, HELLO), r)
        self.assertFalse(r.has_token("Connection", "keep-alive"), r)
        self.assertTrue(r.version.startswith("HTTP/1."), r)
        self.assertStandardHeaders(r, len(HELLO))

    def test_http10_without_host_is_fine(self):
        res = raw_until_eof(self.srv.port, request("GET", "/json", version="HTTP/1.0", host=None))
        self.assertEqual(len(res.responses), 1, res)
        self.assertEqual((res.responses[0].status, res.responses[0].body), (200, JSON))

    def test_http10_keep_alive(self):
        conn = self.connect(self.srv)
        for i in range(3):
            r = conn.request("GET", "/plaintext", version="HTTP/1.0",
                             headers=["Connection: keep-alive"])
            self.assertEqual((r.status, r.body), (200, HELLO), "request %d: %r" % (i, r))
            self.assertTrue(r.has_token("Connection", "keep-alive"), r)
        # and a 1.0 request without keep-alive on the same connection ends it
        conn.send(request("GET", "/healthz", version="HTTP/1.0"))
        r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, b"ok"), r)
        conn.wait_closed()

    def test_http10_pipelined_keep_alive_then_close(self):
        data = (request("GET", "/healthz", version="HTTP/1.0", headers=["Connection: keep-alive"])
                + request("GET", "/json", version="HTTP/1.0")
                + request("GET", "/plaintext", version="HTTP/1.0"))
        res = raw_until_eof(self.srv.port, data)
        self.assertEqual([(r.status, r.body) for r in res.responses], [(200, b"ok"), (200, JSON)],
                         res)
        self.assertEqual(res.rest, b"")


class StandardHeaders(CoilTestCase):
    def test_on_every_kind_of_response(self):
        srv = self.start()
        conn = self.connect(srv)
        for method, path, body in (("GET", "/plaintext", None), ("GET", "/json", None),
                                   ("GET", "/nope", None), ("GET", "/echo", None),
                                   ("POST", "/echo", b"abc"), ("GET", "/stats", None),
                                   ("GET", "/kv/missing", None)):
            r = conn.request(method, path, body=body)
            self.assertStandardHeaders(r, len(r.body))
        res = raw_until_eof(srv.port, b"NOT A REQUEST\r\n\r\n")
        self.assertEqual(len(res.responses), 1, res)
        self.assertStandardHeaders(res.responses[0], len(res.responses[0].body))


@unittest.skipUnless(shutil.which("curl"), "curl is not installed")
class Curl(CoilTestCase):
    def setUp(self):
        self.srv = self.start()
        self.url = "http://127.0.0.1:%d" % self.srv.port

    def curl(self, *args, check=True):
        p = subprocess.run(["curl", "-sS", "--max-time", "10"] + list(args), capture_output=True,
                           timeout=20)
        if check:
            self.assertEqual(p.returncode, 0, "curl %s: %s" % (args, p.stderr.decode()))
        return p

    def test_plaintext(self):
        self.assertEqual(self.curl(self.url + "/plaintext").stdout, HELLO)

    def test_json(self):
        self.assertEqual(self.curl(self.url + "/json").stdout, JSON)

    def test_http10(self):
        p = self.curl("--http1.0", "-D", "-", self.url + "/json")
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        self.assertEqual(body, JSON)
        self.assertRegex(head, rb"^HTTP/1\.[01] 200")
        self.assertIn(b"\r\nServer: coil", head)

    def test_status_codes(self):
        for path, code in (("/plaintext", b"200"), ("/nope", b"404"), ("/echo", b"405")):
            p = self.curl("-o", "/dev/null", "-w", "%{http_code}", self.url + path)
            self.assertEqual(p.stdout, code, path)

    def test_head(self):
        p = self.curl("-I", self.url + "/plaintext")
        self.assertRegex(p.stdout, rb"^HTTP/1\.1 200")
        self.assertRegex(p.stdout.lower(), rb"\r\ncontent-length: 13\r\n")

    def test_echo(self):
        p = self.curl("-D", "-", "--data-binary", "hello curl", "-H", "Content-Type: text/x-test",
                      self.url + "/echo")
        head, _, body = p.stdout.partition(b"\r\n\r\n")
        self.assertEqual(body, b"hello curl")
        self.assertRegex(head.lower(), rb"\r\ncontent-type: text/x-test\r\n")

    def test_keep_alive_reuse(self):
        p = self.curl("-v", self.url + "/plaintext", self.url + "/json", self.url + "/healthz")
        self.assertEqual(p.stdout, HELLO + JSON + b"ok")
        self.assertEqual(p.stderr.count(b"Connected to"), 1,
                         "curl opened more than one connection:\n" + p.stderr.decode())


if __name__ == "__main__":
    main()
