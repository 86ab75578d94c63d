# SPDX-License-Identifier: MIT
"""The outbound HTTP/1.1 client (coil_fetch) as a handler sees it, through fetchapp
(tests/integration/fetchapp.c says what each route does) calling fault-injecting upstreams
(upstreams.py): the request written exactly (request line, Host, Content-Length and nothing else),
the events in order (HEAD, BODY..., DONE | ERROR) with Content-Length, chunked and close-delimited
bodies, HEAD/204/304 without a body, 1xx skipped; keep-alive reuse (one upstream connection per
worker for sequential requests; never reused after Connection: close or HTTP/1.0); the retry of
an idempotent request whose reused connection dies before any byte of the response (once, on a
new connection) and no retry of POST; every fault as its errno (refused, connect/head/idle/total
timeouts, resets and closes before and during the body, malformed and smuggling-shaped responses
never passed on); the pool limit and its wait queue (-EBUSY: 503); the circuit breaker opening
after fail_threshold refused connects (-EHOSTUNREACH at once) and closing after down_ms; pause and
resume; cancelling (coil_fetch_cancel, a negative return, the owner request aborted by
--handler-timeout or by the client leaving) closes the upstream connection; and /pipe, a small
proxy on the public API, keeping memory bounded for a slow client.

fetchapp counts contract violations it can see (an event after DONE/ERROR/cancel, BODY before
HEAD, a resumed piece that differs...) in /stats errors and late: every test ends by checking both
are 0. Waits are bounded only against hangs; nothing asserts how long anything took."""

import errno
import json
import os
import threading
import time
import urllib.parse
import zlib

from coil_harness import CoilTestCase, get, main, request, vm_rss_kib, wait_until
from upstreams import (MALFORMED, MALFORMED_BODY, Blackhole, FaultServer, PatternChecker, big,
                       canned, chunked_response, close, close_before_head, close_delimited,
                       close_first_reuse, hold, pattern_bytes, raw_then_wait, refused_port,
                       reset_before_head, reset_mid_body, response, send, sleep, stall_mid_body,
                       wait_close, wait_event)

SANITIZED = bool(os.environ.get("COIL_SANITIZE_FLAGS", "").strip())
MIB = 1 << 20


class FetchCase(CoilTestCase):
    def upstream(self, handler, port=0):
        srv = FaultServer(handler, port=port)
        self.addCleanup(srv.close)
        return srv

    def app(self, up_url, *args, workers=1, env=None):
        """fetchapp calling up_url (a URL or a FaultServer); args are more flags."""
        if not isinstance(up_url, str):
            up_url = up_url.url
        return self.start_fetchapp("--up", up_url, "--workers", str(workers),
                                   "--drain-timeout", "5s", *args, env=env)

    def fetch(self, app, route="/fetch", conn=None, **params):
        """One request to a fetchapp route; returns (Response, its JSON body or None)."""
        path = route + ("?" + urllib.parse.urlencode(params) if params else "")
        if conn is not None:
            r = conn.request("GET", path)
        else:
            r = get(app.port, path)
        try:
            doc = json.loads(r.body)
        except ValueError:
            doc = None
        return r, doc

    def ok(self, app, **params):
        """A /fetch that must end with DONE; returns its JSON."""
        r, doc = self.fetch(app, **params)
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(doc["error"], doc)
        self.assertRegex(doc["events"], r"^HB*D$", doc)
        return doc

    def failed(self, app, error, route="/fetch", **params):
        """A /fetch that must end with ERROR error; returns its JSON."""
        r, doc = self.fetch(app, route=route, **params)
        self.assertEqual(r.status, 502, r)
        self.assertEqual(doc["error"], error, doc)
        self.assertRegex(doc["events"], r"^(HB*)?[EW]$", doc)
        self.assertEqual(doc["started"], doc["events"].startswith("H"), doc)
        return doc

    def assertAppClean(self, app, **expect):
        st = app.stats()
        self.assertEqual(st["errors"], 0, "fetchapp contract check failed: %s" % st["first_error"])
        self.assertEqual(st["late"], 0, st)
        for k, v in expect.items():
            self.assertEqual(st[k], v, "fetchapp /stats %s: %r" % (k, st))
        return st


def headers_of(doc):
    return {k.lower(): v for k, v in doc["headers"]}


# ---- the request coil writes and the events it reports ---------------------------------------

class Exchange(FetchCase):
    def test_get_writes_request_line_and_host_only(self):
        up = self.upstream(canned(b"hello upstream", headers=["X-Up: 1"]))
        app = self.app(up)
        doc = self.ok(app, target="/x/y?a=1&b=%2F")
        self.assertEqual((doc["status"], doc["body"], doc["len"]), (200, "hello upstream", 14))
        self.assertEqual(doc["length"], 14, doc)
        self.assertFalse(doc["no_body"], doc)
        self.assertEqual(headers_of(doc).get("x-up"), "1", doc)
        req = up.last()
        self.assertEqual((req.method, req.target, req.version), ("GET", "/x/y?a=1&b=%2F",
                                                                 "HTTP/1.1"))
        self.assertEqual(req.header_all("Host"), ["127.0.0.1:%d" % up.port], req)
        self.assertEqual(req.names(), {"host", "traceparent"},
                         "GET without a body: only Host and the trace context are written")
        self.assertRegex(req.header("traceparent"), r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$")
        self.assertEqual(up.errors, [])
        self.assertAppClean(app, fetches=1)

    def test_post_body_and_caller_header(self):
        up = self.upstream(canned(b"taken"))
        app = self.app(up)
        doc = self.ok(app, method="POST", target="/submit", body="a=1&b=two words",
                      hdr="X-Tag: t1")
        self.assertEqual(doc["body"], "taken")
        req = up.last()
        self.assertEqual((req.method, req.target, req.body), ("POST", "/submit",
                                                              b"a=1&b=two words"))
        self.assertEqual(req.header("Content-Length"), "15", req)
        self.assertFalse(req.chunked, req)
        self.assertEqual(req.header("X-Tag"), "t1", req)
        self.assertEqual(req.names(), {"host", "content-length", "x-tag", "traceparent"}, req)
        self.assertAppClean(app)

    def test_method_expecting_a_body_gets_length_zero(self):
        up = self.upstream(canned(b"ok"))
        app = self.app(up)
        for method in ("POST", "PUT"):
            self.ok(app, method=method, target="/empty")
            req = up.last()
            self.assertEqual(req.method, method)
            self.assertEqual(req.header_all("Content-Length"), ["0"], req)
            self.assertEqual(req.body, b"")
        self.assertAppClean(app)

    def test_caller_host_replaces_the_upstreams(self):
        up = self.upstream(canned(b"ok"))
        app = self.app(up)
        self.ok(app, target="/h", hdr="Host: example.test")
        self.assertEqual(up.last().header_all("Host"), ["example.test"])
        self.assertAppClean(app)

    def test_empty_target_is_the_base_path(self):
        up = self.upstream(canned(b"base"))
        app = self.app(up.url + "/base/path")
        self.assertEqual(self.ok(app)["body"], "base")
        self.assertEqual(up.last().target, "/base/path")
        self.assertAppClean(app)

    def test_http_error_status_is_not_a_fetch_error(self):
        up = self.upstream(canned(b"broken", status=500))
        app = self.app(up)
        doc = self.ok(app, target="/500")
        self.assertEqual((doc["status"], doc["body"]), (500, "broken"))
        self.assertAppClean(app)

    def test_chunked_body_is_decoded(self):
        up = self.upstream(chunked_response(["abc", "defgh", "i" * 5000], trailers=b"X-T: 1\r\n"))
        app = self.app(up)
        for _ in range(2):  # the connection is reused after a chunked body with trailers
            doc = self.ok(app, target="/chunked")
            self.assertEqual(doc["body"], "abcdefgh" + "i" * 5000)
            self.assertEqual(doc["len"], 8 + 5000)
            self.assertEqual(doc["length"], -1, doc)
        self.assertEqual(up.conn_count(), 1)
        self.assertAppClean(app)

    def test_close_delimited_body(self):
        body = pattern_bytes(0, 300000)
        up = self.upstream(close_delimited(body))
        app = self.app(up)
        for _ in range(2):
            doc = self.ok(app, target="/eof", keep=0)
            self.assertEqual((doc["len"], doc["crc32"]), (len(body), zlib.crc32(body)), doc)
            self.assertEqual(doc["length"], -1, doc)
        self.assertEqual(up.conn_count(), 2, "a close-delimited response ends its connection")
        self.assertAppClean(app)

    def test_20_mib_body(self):
        size = 20 * MIB
        up = self.upstream(big(size))
        app = self.app(up)
        doc = self.ok(app, target="/big", keep=16)
        self.assertEqual((doc["len"], doc["length"]), (size, size), doc)
        self.assertEqual(doc["crc32"], zlib.crc32(pattern_bytes(0, size)), doc)
        self.assertEqual(doc["body"], pattern_bytes(0, 16).decode("latin-1"))
        self.assertGreater(doc["pieces"], 1, doc)
        self.assertAppClean(app)

    def test_head_204_304_have_no_body(self):
        responses = {
            "/head": None,  # canned answer to HEAD: Content-Length 10, no body
            "/204": b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
            "/304": b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 100\r\n\r\n',
        }

        def handler(req):
            if req.target == "/head":
                return canned(b"0123456789")(req)
            return [send(responses[req.target])]

        up = self.upstream(handler)
        app = self.app(up)
        doc = self.ok(app, method="HEAD", target="/head")
        self.assertEqual((doc["status"], doc["length"], doc["no_body"], doc["len"]),
                         (200, 10, True, 0), doc)
        self.assertEqual(doc["events"], "HD")
        doc = self.ok(app, target="/204")
        self.assertEqual((doc["status"], doc["no_body"], doc["events"]), (204, True, "HD"), doc)
        doc = self.ok(app, target="/304")
        self.assertEqual((doc["status"], doc["no_body"], doc["events"]), (304, True, "HD"), doc)
        self.assertEqual(headers_of(doc).get("etag"), '"v1"', doc)
        # none of them left a body to wait for: the one connection served all three, and more
        self.ok(app, method="HEAD", target="/head")
        self.assertEqual(up.conn_count(), 1)
        self.assertEqual(up.request_count(), 4)
        self.assertAppClean(app)

    def test_interim_responses_are_skipped(self):
        up = self.upstream(lambda req: [
            send(b"HTTP/1.1 100 Continue\r\n\r\n"),
            send(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"),
            send(response(201, b"made"))])
        app = self.app(up)
        doc = self.ok(app, method="POST", target="/make", body="x")
        self.assertEqual((doc["status"], doc["body"]), (201, "made"), doc)
        self.assertNotIn("link", headers_of(doc), "a 1xx response's headers leaked into HEAD")
        self.assertAppClean(app)


# ---- keep-alive -------------------------------------------------------------------------------

class KeepAlive(FetchCase):
    def test_sequential_fetches_use_one_connection(self):
        up = self.upstream(canned(b"same"))
        app = self.app(up)
        for i in range(20):
            self.assertEqual(self.ok(app, target="/n%d" % i)["body"], "same")
        self.assertEqual(up.conn_count(), 1, "sequential fetches on one worker: one connection")
        reqs = up.wait_requests(20)
        self.assertEqual([r.seq for r in reqs], list(range(20)))
        self.assertAppClean(app, fetches=20)

    def test_ipv6_upstream_and_two_servers_balanced(self):
        # [v6]:port in the URL, and a list of servers: sequential fetches alternate (round robin
        # among servers with nothing in flight), each keeping its own connection.
        try:
            a = FaultServer(canned(b"six"), host="::1")
        except OSError as e:  # a machine without IPv6 loopback
            self.skipTest("cannot listen on [::1]: %s" % e)
        self.addCleanup(a.close)
        b = self.upstream(canned(b"four"))
        app = self.app("http://%s,%s" % (a.authority, b.authority))
        bodies = [self.ok(app, target="/n%d" % i)["body"] for i in range(10)]
        self.assertEqual(sorted(set(bodies)), ["four", "six"], bodies)
        self.assertEqual((a.request_count(), b.request_count()), (5, 5))
        self.assertEqual((a.conn_count(), b.conn_count()), (1, 1))
        # Host is the first server's authority, as written in the URL
        self.assertEqual(a.last().header("Host"), a.authority)
        self.assertAppClean(app, fetches=10)

    def test_at_most_one_connection_per_worker(self):
        up = self.upstream(canned(b"same"))
        app = self.app(up, workers=2)
        for i in range(40):  # fresh client connections land on either worker
            self.ok(app, target="/n%d" % i)
        self.assertEqual(up.request_count(), 40)
        self.assertLessEqual(up.conn_count(), 2, "each worker keeps its own pool")
        self.assertAppClean(app)

    def test_not_reused_after_connection_close_or_http_1_0(self):
        answers = {
            "/close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            "/http10": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        }
        # The upstream keeps its side open: only coil's choice decides whether it is reused (a
        # request sent on it would never be answered: the head timeout bounds that failure).
        def handler(req):
            if req.target in answers:
                return [send(answers[req.target]), wait_close()]
            return [send(response(200, b"ok"))]

        up = self.upstream(handler)
        app = self.app(up, "--up-head-ms", "3000")
        for target in ("/close", "/http10"):
            self.assertEqual(self.ok(app, target=target)["body"], "ok")
            self.assertEqual(self.ok(app, target="/after")["body"], "ok")
            reqs = up.wait_requests(1)
            answered = [r for r in reqs if r.target == target][-1]
            self.assertEqual(reqs[-1].target, "/after")
            self.assertIsNot(reqs[-1].conn, answered.conn,
                             "the connection of the %s response was reused" % target)
            self.assertTrue(answered.conn.peer_closed.wait(10),
                            "coil did not close the %s connection" % target)
        self.assertAppClean(app)

    def test_idle_connection_closed_by_upstream_is_not_a_failure(self):
        # The upstream closes each connection a moment after answering (as servers do with idle
        # keep-alive connections): the next GET succeeds, whether coil noticed the close or
        # retried on a new connection.
        up = self.upstream(lambda req: [send(response(200, b"ok %d" % req.conn.index)),
                                        sleep(0.1), close()])
        app = self.app(up)
        self.assertEqual(self.ok(app, target="/1")["body"], "ok 0")
        up.wait_conns(1)[0].ended.wait(10)
        doc = self.ok(app, target="/2")
        self.assertEqual(doc["body"], "ok 1")
        self.assertAppClean(app)


# ---- retries ----------------------------------------------------------------------------------

class Retry(FetchCase):
    def test_idempotent_request_retried_once_on_a_new_connection(self):
        for method in ("GET", "PUT", "DELETE"):
            with self.subTest(method=method):
                up = self.upstream(close_first_reuse())
                app = self.app(up)
                self.assertEqual(self.ok(app, target="/first")["body"], "fresh 0")
                params = {"method": method, "target": "/again"}
                if method == "PUT":
                    params["body"] = "b"
                doc = self.ok(app, **params)
                self.assertEqual(doc["body"], "fresh 1", "answered on the new connection")
                reqs = up.wait_requests(3)
                self.assertEqual(len(reqs), 3, reqs)
                self.assertEqual(up.conn_count(), 2)
                self.assertEqual([(r.method, r.target, r.conn.index, r.seq) for r in reqs[1:]],
                                 [(method, "/again", 0, 1), (method, "/again", 1, 0)])
                if method == "PUT":
                    self.assertEqual(reqs[2].body, reqs[1].body)
                self.assertAppClean(app)

    def test_post_is_not_retried(self):
        up = self.upstream(close_first_reuse())
        app = self.app(up)
        self.ok(app, target="/first")
        self.failed(app, "ECONNRESET", method="POST", target="/once", body="payload")
        self.assertEqual(up.request_count(), 2)
        self.assertEqual(up.conn_count(), 1, "a POST was sent again")
        # the next request gets a new connection
        self.assertEqual(self.ok(app, target="/next")["body"], "fresh 1")
        self.assertAppClean(app)

    def test_retried_only_once(self):
        # Every request but the very first is closed unanswered: the retry on a fresh
        # connection fails too, and that is the end of it.
        first = threading.Event()

        def handler(req):
            if not first.is_set():
                first.set()
                return [send(response(200, b"first"))]
            return [close()]

        up = self.upstream(handler)
        app = self.app(up)
        self.ok(app, target="/first")
        self.failed(app, "ECONNRESET", target="/doomed")
        self.assertEqual(up.request_count(), 3, "one request, one retry")
        self.assertEqual(up.conn_count(), 2)
        self.assertAppClean(app)

    def test_not_retried_once_the_response_started(self):
        state = {"n": 0}

        def handler(req):
            state["n"] += 1
            if state["n"] == 1:
                return [send(response(200, b"first"))]
            return [send(b"HTTP/1.1 200 OK\r\nContent-Le"), close()]

        up = self.upstream(handler)
        app = self.app(up)
        self.ok(app, target="/first")
        self.failed(app, "ECONNRESET", target="/cut")
        self.assertEqual(up.conn_count(), 1, "retried after response bytes had arrived")
        self.assertAppClean(app)


# ---- faults -----------------------------------------------------------------------------------

class Faults(FetchCase):
    def test_connect_refused(self):
        app = self.app("http://127.0.0.1:%d" % refused_port())
        doc = self.failed(app, "ECONNREFUSED", target="/x")
        self.assertEqual(doc["events"], "E")
        self.assertAppClean(app)

    def test_connect_timeout(self):
        hole = Blackhole()
        self.addCleanup(hole.close)
        app = self.app(hole.url, "--up-connect-ms", "300")
        self.assertEqual(self.failed(app, "ETIMEDOUT", target="/x")["events"], "E")
        self.assertAppClean(app)

    def test_head_timeout_closes_the_connection(self):
        up = self.upstream(hold())
        app = self.app(up, "--up-head-ms", "300")
        self.assertFalse(self.failed(app, "ETIMEDOUT", target="/slow")["started"])
        self.assertTrue(up.wait_conns(1)[0].peer_closed.wait(10),
                        "coil kept the timed-out connection open")
        self.assertAppClean(app)

    def test_idle_timeout_mid_body(self):
        up = self.upstream(stall_mid_body(1000, 100))
        app = self.app(up, "--up-idle-ms", "300")
        doc = self.failed(app, "ETIMEDOUT", target="/stall")
        self.assertTrue(doc["started"], doc)
        self.assertEqual((doc["status"], doc["len"], doc["length"]), (200, 100, 1000), doc)
        self.assertTrue(up.wait_conns(1)[0].peer_closed.wait(10))
        self.assertAppClean(app)

    def test_total_timeout(self):
        # one byte every 50 ms, for far longer than the total timeout: the idle timeout never
        # fires, the total one does
        up = self.upstream(lambda req: [send(response(200, b"", ["Content-Length: 400"]))] +
                           [a for _ in range(400) for a in (send(b"x"), sleep(0.05))])
        app = self.app(up, "--up-total-ms", "500", "--up-idle-ms", "10000")
        doc = self.failed(app, "ETIMEDOUT", target="/trickle")
        self.assertTrue(doc["started"], doc)
        self.assertLess(doc["len"], 400, doc)
        self.assertAppClean(app)

    def test_reset_or_close_before_head(self):
        for name, handler in (("reset", reset_before_head()), ("close", close_before_head())):
            with self.subTest(name):
                up = self.upstream(handler)
                app = self.app(up)
                doc = self.failed(app, "ECONNRESET", target="/x")
                self.assertEqual(doc["events"], "E")
                self.assertEqual(up.request_count(), 1, "a fresh connection is not retried")
                self.assertAppClean(app)

    def test_close_mid_body(self):
        # FIN after 100 of 1000 declared bytes: the body is cut short, not complete
        up = self.upstream(lambda req: [send(response(200, b"", ["Content-Length: 1000"])
                                             + pattern_bytes(0, 100)), close()])
        app = self.app(up)
        doc = self.failed(app, "ECONNRESET", target="/cut")
        self.assertTrue(doc["started"], doc)
        self.assertEqual((doc["len"], doc["length"]), (100, 1000), doc)
        self.assertAppClean(app)

    def test_close_mid_chunked_body(self):
        up = self.upstream(lambda req: [send(response(200, b"", ["Transfer-Encoding: chunked"])
                                             + b"5\r\nhello\r\n"), close()])
        app = self.app(up)
        doc = self.failed(app, "ECONNRESET", target="/cut")
        self.assertTrue(doc["started"], doc)
        self.assertEqual(doc["body"], "hello")
        self.assertAppClean(app)

    def test_reset_mid_body(self):
        up = self.upstream(reset_mid_body(1000, 100))
        app = self.app(up)
        doc = self.failed(app, "ECONNRESET", target="/rst")
        # the RST may discard what was not yet read: the head may not have been seen at all
        self.assertLessEqual(doc["len"], 100, doc)
        self.assertAppClean(app)

    def test_malformed_responses_are_refused(self):
        every = dict(MALFORMED, **MALFORMED_BODY)
        up = self.upstream(lambda req: raw_then_wait(every[req.target[1:]])(req))
        app = self.app(up)
        for i, name in enumerate(sorted(every)):
            with self.subTest(name):
                doc = self.failed(app, "EPROTO", target="/" + name)
                if name in MALFORMED:
                    self.assertEqual(doc["events"], "E", "a malformed head was reported")
                if name != "chunk_without_crlf":  # its "LEAK" is well-framed chunk data
                    self.assertNotIn("LEAK", json.dumps(doc), "malformed bytes were passed on")
                conn = up.wait_conns(i + 1)[i]
                self.assertTrue(conn.peer_closed.wait(10),
                                "coil kept a connection that sent a malformed response")
        self.assertEqual(up.conn_count(), len(every))
        self.assertAppClean(app)


# ---- the pool: limits, queue, circuit breaker -------------------------------------------------

class Pool(FetchCase):
    def test_queue_then_busy(self):
        release = threading.Event()
        self.addCleanup(release.set)
        up = self.upstream(lambda req: [wait_event(release), send(response(200, req.target))])
        app = self.app(up, "--up-max-conns", "1", "--up-queue", "1", "--up-connect-ms", "30000")
        c1, c2, c3 = (self.connect(app) for _ in range(3))
        c1.send(request("GET", "/fetch?target=/1"))
        up.wait_requests(1)
        c2.send(request("GET", "/fetch?target=/2"))
        wait_until(lambda: app.stats()["fetches"] == 2, what="the second fetch queued")
        r3 = c3.request("GET", "/fetch?target=/3")
        self.assertEqual(r3.status, 503, r3)
        self.assertEqual(json.loads(r3.body), {"sync": "EBUSY"})
        self.assertEqual(up.request_count(), 1, "the queued request was sent on a second "
                                                "connection")
        release.set()
        for c, target in ((c1, "/1"), (c2, "/2")):
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(json.loads(r.body)["body"], target)
        self.assertEqual(up.conn_count(), 1, "max_conns 1: the queued request waited for it")
        self.assertEqual([r.target for r in up.wait_requests(2)], ["/1", "/2"])
        self.assertAppClean(app, sync_fail=1)

    def test_queued_request_times_out(self):
        up = self.upstream(hold())
        app = self.app(up, "--up-max-conns", "1", "--up-queue", "4", "--up-connect-ms", "300",
                       "--up-head-ms", "30000")
        c1 = self.connect(app)
        c1.send(request("GET", "/fetch?target=/held"))
        up.wait_requests(1)
        self.failed(app, "ETIMEDOUT", target="/queued")
        self.assertEqual(up.request_count(), 1)
        self.assertEqual(up.conn_count(), 1)
        c1.close()
        self.assertAppClean(app)

    def test_breaker_opens_after_threshold(self):
        port = refused_port()
        app = self.app("http://127.0.0.1:%d" % port, "--up-fail-threshold", "2",
                       "--up-down-ms", "60000")
        for _ in range(2):
            self.failed(app, "ECONNREFUSED", target="/x")
        # marked down: coil_fetch fails at once, and a server now listening there sees nothing
        up = self.upstream(canned(b"back"), port=port)
        for _ in range(3):
            r, doc = self.fetch(app, target="/x")
            self.assertEqual((r.status, doc), (502, {"sync": "EHOSTUNREACH"}), r)
        self.assertEqual(up.conn_count(), 0)
        self.assertAppClean(app, sync_fail=3, fetches=2)

    def test_breaker_closes_after_down_ms(self):
        port = refused_port()
        app = self.app("http://127.0.0.1:%d" % port, "--up-fail-threshold", "2",
                       "--up-down-ms", "300")
        for _ in range(2):
            self.failed(app, "ECONNREFUSED", target="/x")
        up = self.upstream(canned(b"back"), port=port)
        seen = []

        def recovered():
            r, doc = self.fetch(app, target="/x")
            seen.append(r.status)
            if r.status == 502:  # still down (or a probe that came too early)
                self.assertIn(doc.get("sync", doc.get("error")),
                              ("EHOSTUNREACH", "ECONNREFUSED"), doc)
                time.sleep(0.1)
                return False
            self.assertEqual((r.status, doc["body"]), (200, "back"), r)
            return True

        wait_until(recovered, timeout=15, what="the server to be tried again")
        for _ in range(5):
            self.assertEqual(self.ok(app, target="/y")["body"], "back")
        self.assertAppClean(app)


# ---- streamed request bodies (coil_fetch_write) -----------------------------------------------

class StreamedBody(FetchCase):
    def test_length_and_chunked(self):
        size = 3 * MIB
        up = self.upstream(canned(b"stored"))
        app = self.app(up)
        for declared in (None, "chunked"):
            with self.subTest(declared=declared):
                params = {"method": "POST", "target": "/upload", "len": size}
                if declared:
                    params["declared"] = declared
                r, doc = self.fetch(app, route="/fetch-gen", **params)
                self.assertEqual(r.status, 200, r)
                self.assertEqual((doc["body"], doc["written"], doc["write_rc"], doc["end_rc"]),
                                 ("stored", size, "", ""), doc)
                req = up.last()
                self.assertEqual((req.method, req.target), ("POST", "/upload"))
                self.assertEqual(req.chunked, declared == "chunked", req)
                if declared != "chunked":
                    self.assertEqual(req.header("Content-Length"), str(size), req)
                self.assertEqual(req.body, pattern_bytes(0, size))
        self.assertAppClean(app)

    def test_body_shorter_than_declared_fails(self):
        up = self.upstream(canned(b"stored"))
        app = self.app(up)
        r, doc = self.fetch(app, route="/fetch-gen", method="POST", target="/u", len=1000,
                            declared=5000)
        self.assertEqual(r.status, 502, r)
        self.assertEqual((doc["written"], doc["end_rc"]), (1000, "EPROTO"), doc)
        self.assertIsNotNone(doc["error"], doc)
        self.assertTrue(up.wait_conns(1)[0].peer_closed.wait(10), "the connection stayed open")
        self.assertEqual(up.request_count(), 0, "an incomplete body made a whole request")
        self.assertAppClean(app)

    def test_body_longer_than_declared_is_refused(self):
        up = self.upstream(canned(b"stored"))
        app = self.app(up)
        r, doc = self.fetch(app, route="/fetch-gen", method="POST", target="/u", len=5000,
                            declared=1000)
        self.assertEqual(r.status, 502, r)
        self.assertEqual((doc["write_rc"], doc["end_rc"]), ("EMSGSIZE", "EPROTO"), doc)
        self.assertLessEqual(doc["written"], 1000, doc)
        for req in up.requests:  # whatever reached the upstream, never more than declared
            self.assertLessEqual(len(req.body), 1000, req)
        self.assertAppClean(app)


# ---- pausing and cancelling -------------------------------------------------------------------

class PauseCancel(FetchCase):
    def test_pause_and_resume(self):
        for name, handler in (("length", big(2 * MIB, piece=64 * 1024)),
                              ("chunked", big(2 * MIB, chunked=True, piece=64 * 1024))):
            with self.subTest(name):
                up = self.upstream(handler)
                app = self.app(up)
                r, doc = self.fetch(app, route="/fetch-slow", target="/p", keep=0)
                self.assertEqual(r.status, 200, r)
                self.assertEqual((doc["len"], doc["crc32"]),
                                 (2 * MIB, zlib.crc32(pattern_bytes(0, 2 * MIB))), doc)
                self.assertGreaterEqual(doc["pauses"], doc["pieces"], doc)
                self.assertGreater(doc["pieces"], 0, doc)
                self.assertAppClean(app)

    def test_cancel_now(self):
        up = self.upstream(hold())
        app = self.app(up)
        r, doc = self.fetch(app, route="/fetch-cancel", target="/c", at="now")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(doc, {"at": "now", "cancel": 0, "again": -errno.ENOENT,
                               "resume": -errno.ENOENT, "events": ""})
        self.assertAppClean(app)

    def test_cancel_from_events_closes_the_connection(self):
        for at, cancel in (("head", -1), ("body", 0)):
            with self.subTest(at):
                up = self.upstream(big(256 * MIB))  # far more than any buffer on the way
                app = self.app(up)
                r, doc = self.fetch(app, route="/fetch-cancel", target="/c", at=at)
                self.assertEqual(r.status, 200, r)
                self.assertEqual((doc["cancel"], doc["again"], doc["resume"]),
                                 (cancel, -errno.ENOENT, -errno.ENOENT), doc)
                self.assertEqual(doc["events"], "H" if at == "head" else "HB", doc)
                self.assertTrue(up.wait_conns(1)[0].peer_closed.wait(10),
                                "the cancelled fetch's connection stayed open")
                self.assertAppClean(app)

    def test_owner_timeout_cancels_the_fetch(self):
        up = self.upstream(hold())
        app = self.app(up, "--handler-timeout", "1s")
        r, _ = self.fetch(app, route="/fetch-hang", target="/h")
        self.assertEqual(r.status, 504, r)
        self.assertTrue(up.wait_conns(1)[0].peer_closed.wait(10),
                        "the aborted request's fetch kept its connection")
        self.assertAppClean(app, aborts=1)

    def test_client_leaving_cancels_the_fetch(self):
        up = self.upstream(hold())
        app = self.app(up)
        c = self.connect(app)
        c.send(request("GET", "/fetch-hang?target=/h"))
        up.wait_requests(1)
        c.close()
        self.assertTrue(up.wait_conns(1)[0].peer_closed.wait(10),
                        "the aborted request's fetch kept its connection")
        wait_until(lambda: app.stats()["aborts"] == 1, what="on_abort")
        self.assertAppClean(app, aborts=1, waiting=0)

    def test_client_leaving_mid_body_cancels_the_fetch(self):
        up = self.upstream(big(256 * MIB))
        app = self.app(up)
        c = self.connect(app)
        c.send(request("GET", "/pipe?target=/big"))
        r = c.read_response(head=True)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(c.buf or c.fill(), "no body byte")
        c.close()
        conn = up.wait_conns(1)[0]
        self.assertTrue(conn.peer_closed.wait(10), "the upstream went on sending")
        self.assertLess(conn.sent, 256 * MIB)
        wait_until(lambda: app.stats()["waiting"] == 0, what="the request to end")
        self.assertAppClean(app)


# ---- /pipe: streaming at the client's pace ----------------------------------------------------

class Pipe(FetchCase):
    def start_pipe_app(self, up, *args):
        env = None
        if SANITIZED:  # see test_wait_stream: a small quarantine keeps RSS meaningful
            opts = os.environ.get("ASAN_OPTIONS", "")
            env = {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=4"}
        return self.app(up, "--write-timeout", "60s", *args, env=env)

    def test_slow_client_on_fast_upstream_memory_bounded(self):
        mb = 64 if SANITIZED else 128  # either way, above the bound on growth
        up = self.upstream(big(mb * MIB))
        app = self.start_pipe_app(up)
        warm = get(app.port, "/pipe?target=/warm")
        self.assertEqual(len(warm.body), mb * MIB)
        baseline = vm_rss_kib(app.pid)
        c = self.connect(app, rcvbuf=64 * 1024, timeout=60)
        c.send(request("GET", "/pipe?target=/slow"))
        r = c.read_response(head=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Length"), str(mb * MIB), r)
        time.sleep(1)  # not reading: a coil that buffered would take the upstream's all now
        samples = [vm_rss_kib(app.pid)]
        checker = PatternChecker()
        reads = 0
        while checker.offset < mb * MIB:
            if not c.buf and not c.fill():
                self.fail("closed after %d of %d bytes" % (checker.offset, mb * MIB))
            n = min(len(c.buf), mb * MIB - checker.offset)
            checker.feed(bytes(c.buf[:n]))
            del c.buf[:n]
            reads += 1
            if reads <= 50:
                time.sleep(0.02)
            if reads % 200 == 0:
                samples.append(vm_rss_kib(app.pid))
        samples.append(vm_rss_kib(app.pid))
        growth = (max(samples) - baseline) / 1024
        self.assertLess(growth, 48, "RSS grew by %.0f MiB streaming %d MiB to a slow client "
                        "(baseline %d KiB, samples %s)" % (growth, mb, baseline, samples[:30]))
        st = self.assertAppClean(app, waiting=0)
        self.assertGreater(st["pauses"], 0, "coil_res_write never said -EAGAIN: %r" % st)
        self.assertGreater(st["writable"], 0, st)
        r = c.request("GET", "/stats")  # the client connection goes on
        self.assertEqual(r.status, 200, r)

    def test_chunked_upstream_streams_chunked(self):
        up = self.upstream(big(3 * MIB, chunked=True))
        app = self.start_pipe_app(up)
        r = get(app.port, "/pipe?target=/c")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)
        self.assertEqual(r.body, pattern_bytes(0, 3 * MIB))
        self.assertAppClean(app)

    def test_failure_before_head(self):
        for name, args, status in (("refused", (), 502), ("head timeout", ("--up-head-ms", "300"),
                                                          504)):
            with self.subTest(name):
                if name == "refused":
                    url = "http://127.0.0.1:%d" % refused_port()
                else:
                    url = self.upstream(hold()).url
                app = self.start_pipe_app(url, *args)
                r = get(app.port, "/pipe?target=/x")
                self.assertEqual(r.status, status, r)
                self.assertAppClean(app)

    def test_failure_mid_body_closes_the_client_connection(self):
        cut = threading.Event()
        self.addCleanup(cut.set)
        up = self.upstream(reset_mid_body(1000000, 5000, event=cut))
        app = self.start_pipe_app(up)
        c = self.connect(app)
        c.send(request("GET", "/pipe?target=/x"))
        r = c.read_response(head=True)
        self.assertEqual((r.status, r.header("Content-Length")), (200, "1000000"), r)
        self.assertTrue(c.buf or c.fill(), "no body byte before the cut")
        cut.set()
        data, how = c.read_until_eof()
        got = len(r.body) + len(data)
        self.assertLess(got, 1000000, "a cut-short body looked whole")
        self.assertAppClean(app)


if __name__ == "__main__":
    main()
