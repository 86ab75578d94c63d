# SPDX-License-Identifier: MIT
"""Graceful shutdown with requests that wait: SIGTERM lets deferred requests finish (their
answers carry Connection: close; a stream already under way runs to its end and the
connection is then closed), timers without an owner still run during the drain, and a request
that would wait past --drain-timeout is aborted (on_abort runs; testapp prints its counters as
it exits) with the server still exiting 0, clean under sanitizers.

The drain has begun once an idle connection has been closed by the server (one per worker:
these tests use --workers 1): the tests wait for that, not for time to pass."""

import re
import signal

from coil_harness import Conn, main, parse_all, request
from test_wait import WaitCase, delay_body
from coil_harness import _read_line
from test_wait_stream import event, events, read_chunked_body, take


class WaitShutdown(WaitCase):
    def sentinel(self, srv):
        """An idle keep-alive connection: the server closes it when the drain begins."""
        c = self.connect(srv)
        self.assertEqual(c.request("GET", "/stats").status, 200)
        return c

    def exit_line(self, srv):
        """testapp's last words: {"status": .., "aborts": .., ...} as it printed them."""
        for line in reversed(srv.log_text().splitlines()):
            if line.startswith("testapp: exit "):
                return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", line)}
        self.fail("testapp printed no exit line:\n" + srv.log_text())

    def test_deferred_request_finishes_during_drain(self):
        srv = self.start("--workers", "1", "--drain-timeout", "30s")
        idle = self.sentinel(srv)
        c = self.connect(srv)
        c.send(request("GET", "/delay/2000"))
        self.wait_stat(srv, "waiting", 1)
        srv.send_signal(signal.SIGTERM)
        idle.wait_closed()  # the drain has begun while the request waits
        data, how = c.read_until_eof()
        rs, rest = parse_all(data)
        self.assertEqual(len(rs), 1, "%r (closed: %s)" % (data[:300], how))
        self.assertEqual((rs[0].status, rs[0].body), (200, delay_body(2000)), rs[0])
        self.assertTrue(rs[0].has_token("Connection", "close"), rs[0])
        self.assertStandardHeaders(rs[0], len(delay_body(2000)))
        self.assertEqual(rest, b"")
        self.stop(srv)

    def test_several_deferred_finish_during_drain(self):
        srv = self.start("--workers", "1", "--drain-timeout", "30s")
        idle = self.sentinel(srv)
        conns = [self.connect(srv) for _ in range(10)]
        for i, c in enumerate(conns):
            c.send(request("GET", "/delay/%d" % (1500 + 50 * i)))
        self.wait_stat(srv, "waiting", 10)
        srv.send_signal(signal.SIGTERM)
        idle.wait_closed()
        for i, c in enumerate(conns):
            data, how = c.read_until_eof()
            rs, rest = parse_all(data)
            self.assertEqual(len(rs), 1, "connection %d: %r (closed: %s)" % (i, data[:300], how))
            self.assertEqual(rs[0].body, delay_body(1500 + 50 * i), rs[0])
            self.assertTrue(rs[0].has_token("Connection", "close"), rs[0])
        self.stop(srv)

    def test_stream_under_way_runs_to_its_end(self):
        srv = self.start("--workers", "1", "--drain-timeout", "30s")
        idle = self.sentinel(srv)
        c = self.connect(srv)
        c.send(request("GET", "/events?n=4&every=300"))
        r = c.read_response(head=True)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)
        body = bytearray()
        while len(body) < len(event(1)):  # the first event is here: the stream is under way
            take(c, int(_read_line(c), 16), body.extend)
            take(c, 2, lambda crlf: None)
        srv.send_signal(signal.SIGTERM)
        idle.wait_closed()
        read_chunked_body(c, body.extend)
        self.assertEqual(bytes(body), events(4))
        c.wait_closed()  # and then closed: the server is draining
        self.stop(srv)

    def test_ownerless_timer_runs_during_drain(self):
        srv = self.start_app("--workers", "1", "--drain-timeout", "30s")
        idle = self.sentinel(srv)
        c = self.connect(srv)
        c.send(request("GET", "/handle/1500"))
        self.wait_stat(srv, "waiting", 1)
        srv.send_signal(signal.SIGTERM)
        idle.wait_closed()
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"handle 1500"), r)
        self.assertTrue(r.has_token("Connection", "close"), r)
        c.wait_closed()
        self.stop(srv)
        last = self.exit_line(srv)
        self.assertEqual((last["status"], last["aborts"], last["stale"], last["errors"]),
                         (0, 0, 0, 0), last)

    def test_drain_timeout_aborts_hang(self):
        srv = self.start_app("--workers", "1", "--drain-timeout", "1s")
        idle = self.sentinel(srv)
        c = self.connect(srv, timeout=20)
        c.send(request("GET", "/hang"))
        self.wait_stat(srv, "waiting", 1)
        srv.send_signal(signal.SIGTERM)
        idle.wait_closed()
        self.assertEqual(srv.wait_exit(15), 0, "exit status after the drain timeout")
        self.assertEqual(srv.sanitizer_lines(), [], "sanitizer reports in the log")
        self.assertEqual(self.exit_line(srv)["aborts"], 1)
        self.assertEqual(self.exit_line(srv)["errors"], 0)
        c.read_until_eof()  # closed, with or without a response

    def test_drain_timeout_with_owned_timers_and_streams_pending(self):
        # Timers owned by requests that the drain deadline aborts, a stream to a client that
        # does not read, and a hang: all dropped, exit 0, nothing leaked or used after free.
        srv = self.start_app("--workers", "1", "--drain-timeout", "1s", "--write-timeout", "60s")
        idle = self.sentinel(srv)
        later = self.connect(srv, timeout=20)
        later.send(request("GET", "/later/8000"))
        hang = self.connect(srv, timeout=20)
        hang.send(request("GET", "/hang"))
        stuck = Conn(srv.port, rcvbuf=16 * 1024, timeout=20)
        self.addCleanup(stuck.close)
        stuck.send(request("GET", "/stream?mb=256"))
        self.wait_stat(srv, "waiting", 3)
        srv.send_signal(signal.SIGTERM)
        idle.wait_closed()
        self.assertEqual(srv.wait_exit(15), 0)
        self.assertEqual(srv.sanitizer_lines(), [], "sanitizer reports in the log")
        last = self.exit_line(srv)
        self.assertEqual((last["status"], last["aborts"], last["stream_aborts"], last["errors"]),
                         (0, 1, 1, 0), last)
        for conn in (later, hang):
            data, how = conn.read_until_eof()
            rs, rest = parse_all(data)
            for r in rs:
                self.assertNotEqual(r.status, 200, "answered after the drain deadline: %r" % r)


if __name__ == "__main__":
    main()
