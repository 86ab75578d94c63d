# SPDX-License-Identifier: MIT
"""The header, body and idle timeouts, with 1 s values. What is checked is what the client sees
(408 and close, or a silent close) and that each timer is armed only in its own phase; how fast
the server reacts is not asserted (waits are bounds against hangs)."""

import time

from coil_harness import CoilTestCase, chunked, main, parse_all, request

SHORT = ("--header-timeout", "1s", "--body-timeout", "1s", "--idle-timeout", "1s")


class Timeouts(CoilTestCase):
    def closes_with_408(self, conn):
        data, how = conn.read_until_eof()
        rs, rest = parse_all(data)
        self.assertEqual([r.status for r in rs], [408], "got %r (closed: %s)" % (data, how))
        self.assertEqual(rest, b"")
        self.assertTrue(rs[0].has_token("Connection", "close"), rs[0])
        self.assertStandardHeaders(rs[0])

    def test_partial_head_stalls_408(self):
        srv = self.start(*SHORT)
        conn = self.connect(srv)
        conn.send(b"GET /plaintext HTTP/1.1\r\nHo")
        self.closes_with_408(conn)

    def test_partial_request_line_stalls_408(self):
        srv = self.start(*SHORT)
        conn = self.connect(srv)
        conn.send(b"GET /plain")
        self.closes_with_408(conn)

    def test_second_request_partial_head_408(self):
        # After a complete exchange on a keep-alive connection, a new head that stalls.
        srv = self.start("--header-timeout", "1s", "--idle-timeout", "60s")
        conn = self.connect(srv)
        self.assertEqual(conn.request("GET", "/healthz").status, 200)
        conn.send(b"GET /json HTTP/1.1\r\n")
        self.closes_with_408(conn)

    def test_partial_body_stalls_408(self):
        srv = self.start(*SHORT)
        conn = self.connect(srv)
        conn.send(request("POST", "/echo", body=b"", headers=["Content-Length: 10"]) + b"abc")
        self.closes_with_408(conn)

    def test_partial_chunked_body_stalls_408(self):
        srv = self.start(*SHORT)
        conn = self.connect(srv)
        conn.send(request("POST", "/echo", body=b"5\r\nhello\r\n3\r\nab",
                          headers=["Transfer-Encoding: chunked"]))
        self.closes_with_408(conn)

    def test_body_after_100_continue_stalls_408(self):
        srv = self.start(*SHORT)
        conn = self.connect(srv)
        conn.send(request("POST", "/echo", body=b"",
                          headers=["Content-Length: 10", "Expect: 100-continue"]))
        self.assertEqual(conn.read_response().status, 100)
        self.closes_with_408(conn)

    def test_idle_keep_alive_closed_silently(self):
        srv = self.start(*SHORT)
        conn = self.connect(srv)
        r = conn.request("GET", "/plaintext")
        self.assertEqual(r.status, 200, r)
        conn.wait_closed()  # no bytes, then EOF (or reset)

    def test_idle_after_pipeline_closed_silently(self):
        srv = self.start(*SHORT)
        conn = self.connect(srv)
        conn.send(request("GET", "/healthz") * 3)
        for _ in range(3):
            self.assertEqual(conn.read_response().body, b"ok")
        conn.wait_closed()

    def test_fresh_connection_sending_nothing_is_closed(self):
        # Which timer applies to a connection that never sent a byte is not part of the contract;
        # it must be closed, with no response or with a 408.
        srv = self.start(*SHORT)
        conn = self.connect(srv)
        data, how = conn.read_until_eof()
        rs, rest = parse_all(data)
        self.assertEqual(rest, b"", data)
        self.assertIn([r.status for r in rs], ([], [408]), data)

    def test_idle_timer_not_armed_while_request_in_progress(self):
        # --idle-timeout 1s must not cut a body that is still arriving under a long body timeout.
        srv = self.start("--idle-timeout", "1s", "--header-timeout", "30s", "--body-timeout", "30s")
        conn = self.connect(srv)
        conn.send(request("POST", "/echo", body=b"", headers=["Content-Length: 6"]) + b"abc")
        time.sleep(2.5)
        conn.send(b"def")
        r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, b"abcdef"), r)

    def test_header_timer_not_armed_while_idle(self):
        # An idle keep-alive connection is governed by --idle-timeout, not --header-timeout.
        srv = self.start("--header-timeout", "1s", "--idle-timeout", "60s")
        conn = self.connect(srv)
        self.assertEqual(conn.request("GET", "/healthz").status, 200)
        time.sleep(2.5)
        r = conn.request("GET", "/plaintext")
        self.assertEqual(r.status, 200, r)

    def test_header_timer_reset_for_each_request(self):
        # Requests that each complete well within the timeout keep the connection alive past it.
        srv = self.start(*SHORT)
        conn = self.connect(srv)
        for i in range(6):
            r = conn.request("GET", "/healthz")
            self.assertEqual(r.status, 200, "request %d: %r" % (i, r))
            time.sleep(0.4)

    def test_body_timer_not_cut_by_header_timeout(self):
        # A head that completed is not subject to --header-timeout any more.
        srv = self.start("--header-timeout", "1s", "--body-timeout", "30s")
        conn = self.connect(srv)
        conn.send(request("POST", "/echo", body=b"", headers=["Transfer-Encoding: chunked"]))
        time.sleep(2.5)
        conn.send(chunked(b"late"))
        r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, b"late"), r)

    def test_other_connections_unaffected(self):
        srv = self.start(*SHORT)
        stalled = self.connect(srv)
        stalled.send(b"GET /plaintext HTTP/1.1\r\n")
        self.closes_with_408(stalled)
        r = self.connect(srv).request("GET", "/plaintext")
        self.assertEqual(r.status, 200, r)


if __name__ == "__main__":
    main()
