# SPDX-License-Identifier: MIT
"""Regression tests for bugs found in review of the upstream client and the proxy, one per bug:
a probe cancelled while connecting left its server marked down for good; a streamed upload
slower than --proxy-read-timeout was cut although data flowed (the head timeout now counts from
the last byte written); a reset during a close-delimited body was reported as its end (a cut
body that looked whole); a close-delimited stream longer than the idle timeout was cut (the
timer was not pushed back per read); "." and ".." segments left the upstream's base path (now
400). Waits are bounded only against hangs."""

import json
import socket
import time
import urllib.parse

from coil_harness import CoilTestCase, Conn, get, main, request, wait_until
from upstreams import (Blackhole, FaultServer, canned, echo, send, sleep, close, reset, response,
                       close_delimited, pattern_bytes, hold)


class Base(CoilTestCase):
    def upstream(self, handler, port=0):
        srv = FaultServer(handler, port=port)
        self.addCleanup(srv.close)
        return srv

    def fetchapp(self, url, *args):
        return self.start_fetchapp("--up", url, "--workers", "1", "--drain-timeout", "5s", *args)

    def fetch(self, app, route="/fetch", **params):
        r = get(app.port, route + "?" + urllib.parse.urlencode(params))
        try:
            return r, json.loads(r.body)
        except ValueError:
            return r, None


class Breaker(Base):
    # 1. circuit breaker: a probe cancelled while connecting leaves s->probing set forever
    def test_cancelled_probe_leaves_server_down_forever(self):
        hole = Blackhole()
        self.addCleanup(hole.close)
        app = self.fetchapp(hole.url, "--up-connect-ms", "500", "--up-fail-threshold", "1",
                            "--up-down-ms", "200")
        r, doc = self.fetch(app, target="/x")
        self.assertEqual((r.status, doc["error"]), (502, "ETIMEDOUT"), r)
        time.sleep(0.4)  # past down_ms: the next fetch is the probe
        c = Conn(app.port)
        c.send(request("GET", "/fetch-hang?target=/probe"))
        time.sleep(0.15)  # the probe's connect is pending (blackhole)
        c.close()         # owner aborted -> fetch cancelled -> probe connection aborted
        wait_until(lambda: app.stats()["aborts"] == 1, what="on_abort")
        time.sleep(1.0)   # far past down_ms
        seen = []
        for _ in range(3):
            r, doc = self.fetch(app, target="/y")
            seen.append(doc)
            time.sleep(0.3)
        # Expected: the server is tried again (ETIMEDOUT after a connect attempt).
        self.assertNotIn({"sync": "EHOSTUNREACH"}, seen,
                         "server stays marked down forever after a cancelled probe: %r" % seen)

    # 2. proxy: a streamed upload slower than --proxy-read-timeout fails with 504 although data flows
    def test_slow_upload_within_read_timeout_per_read(self):
        up = self.upstream(canned(b"stored"))
        srv = self.start("--workers", "1", "--drain-timeout", "5s", "--proxy",
                         "/up/=%s" % up.url, "--proxy-read-timeout", "1s")
        s = socket.create_connection(("127.0.0.1", srv.port))
        self.addCleanup(s.close)
        n = 12
        s.sendall(b"POST /up/store HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % n)
        for i in range(n):
            time.sleep(0.25)  # a byte every 250 ms: 3 s in all, each gap well under 1 s
            try:
                s.sendall(b"a")
            except OSError:
                break
        s.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                k = s.recv(65536)
                if not k:
                    break
                data += k
        except OSError:
            pass
        self.assertTrue(data.startswith(b"HTTP/1.1 200"), "upload through proxy: %r" % data[:200])

    # 3. run_resumes runs after flush_all: output produced by a resumed fetch waits for the next
    #    loop wake-up (up to 100 ms)
    def test_close_delimited_body_reset_is_not_done(self):
        def h(req):
            return [send(response(200, b"", ["Connection: close"], length=False) + b"partial"),
                    sleep(0.2), reset()]
        up = self.upstream(h)
        app = self.fetchapp(up.url)
        r, doc = self.fetch(app, target="/x")
        self.assertEqual(doc["error"], "ECONNRESET", "reset mid close-delimited body: %r" % doc)



class Streams(Base):
    # 5. B_CLOSE bodies never re-arm the idle timer: a close-delimited body that keeps flowing
    #    is cut at idle_timeout after the head
    def test_close_delimited_stream_longer_than_idle_timeout(self):
        def h(req):
            acts = [send(response(200, b"", ["Connection: close"], length=False))]
            for _ in range(15):
                acts += [send(b"x" * 10), sleep(0.1)]
            return acts + [close()]
        up = self.upstream(h)
        app = self.fetchapp(up.url, "--up-idle-ms", "500")
        r, doc = self.fetch(app, target="/x")
        self.assertIsNone(doc["error"], "data every 100 ms, idle timeout 500 ms: %r" % doc)
        self.assertEqual(doc["len"], 150, doc)

    # 6. proxy: dot segments after the prefix escape the upstream's base path
    def test_dot_segments_escape_base_path(self):
        up = self.upstream(canned(b"ok"))
        srv = self.start("--workers", "1", "--proxy", "/up/=%s/v1/" % up.url)
        r = get(srv.port, "/up/../admin")
        print("status", r.status, "upstream target:", up.last().target if up.request_count() else None)
        if up.request_count():
            self.assertFalse(up.last().target.startswith("/v1/.."), up.last().target)


if __name__ == "__main__":
    main()
