# SPDX-License-Identifier: MIT
"""Graceful shutdown on SIGTERM: the server stops accepting, closes idle connections, lets
requests in flight finish (answered with Connection: close, /readyz saying 503 "draining"),
and exits 0; with a short --drain-timeout it exits 0 even if a request never completes.

A drain has begun on every worker once idle "sentinel" connections, one per worker, have been
closed by the server: the tests wait for that instead of sleeping."""

import os
import signal
import threading
import time

from coil_harness import (CoilTestCase, Conn, conns_by_worker, main, parse_all, request,
                          wait_until)

SETTLE = 0.5  # s for the server to read bytes we just sent, before we signal it


class Shutdown(CoilTestCase):
    def wait_drain_began(self, sentinels):
        for w, c in sentinels.items():
            c.wait_closed()

    def test_idle_server_exits_0(self):
        srv = self.start()
        self.assertEqual(self.connect(srv).request("GET", "/healthz").status, 200)
        self.stop(srv)

    def test_sigint_exits_0(self):
        srv = self.start()
        self.stop(srv, sig=signal.SIGINT)

    def test_idle_connections_closed_and_exit_without_waiting_drain_timeout(self):
        # Nothing is in flight, so the long drain timeout is not waited for (15 s bound).
        srv = self.start("--drain-timeout", "60s", "--workers", "2")
        conns = [self.connect(srv) for _ in range(10)]
        for c in conns:
            self.assertEqual(c.request("GET", "/plaintext").status, 200)
        srv.send_signal(signal.SIGTERM)
        for c in conns:
            c.wait_closed()
        self.assertEqual(srv.wait_exit(15), 0)

    def test_in_flight_bodies_finish(self):
        srv = self.start("--workers", "2", "--drain-timeout", "30s")
        sentinels = conns_by_worker(srv.port, 2)
        for c in sentinels.values():
            self.addCleanup(c.close)
        n, size = 20, 2000
        bodies = [(b"%02d" % i) * (size // 2) for i in range(n)]
        conns = [self.connect(srv) for _ in range(n)]
        for c, body in zip(conns, bodies):
            c.send(request("POST", "/echo", body=b"", headers=["Content-Length: %d" % size,
                                                              "Content-Type: text/x-drain"])
                   + body[:size // 2])
        wait_until(lambda: srv.stats()["open"] >= n + 2 + 1, timeout=10,
                   what="all connections to be open")
        time.sleep(SETTLE)
        srv.send_signal(signal.SIGTERM)
        self.wait_drain_began(sentinels)

        # No new connection is served now.
        try:
            late = Conn(srv.port)
            self.addCleanup(late.close)
            late.send(request("GET", "/healthz"))
        except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
            late = None

        for i, (c, body) in enumerate(zip(conns, bodies)):
            c.send(body[size // 2:])
        for i, (c, body) in enumerate(zip(conns, bodies)):
            data, how = c.read_until_eof()
            rs, rest = parse_all(data)
            self.assertEqual(len(rs), 1, "connection %d: %r (closed: %s)" % (i, data[:300], how))
            r = rs[0]
            self.assertEqual((r.status, r.body), (200, body), "connection %d: %r" % (i, r))
            self.assertEqual(r.header("Content-Type"), "text/x-drain", r)
            self.assertTrue(r.has_token("Connection", "close"), "connection %d: %r" % (i, r))
            self.assertEqual(rest, b"")

        self.assertEqual(srv.wait_exit(15), 0)
        if late is not None:
            data, how = late.read_until_eof()
            self.assertEqual(data, b"", "a connection made during the drain was served")

    def test_keep_alive_in_flight_gets_close_and_readyz_draining(self):
        srv = self.start("--workers", "2")
        sentinels = conns_by_worker(srv.port, 2)
        for c in sentinels.values():
            self.addCleanup(c.close)
        conn = self.connect(srv)
        r = conn.request("GET", "/readyz")
        self.assertEqual((r.status, r.body), (200, b"ready"), r)
        self.assertFalse(r.has_token("Connection", "close"), r)
        conn.send(b"GET /readyz HTTP/1.1\r\nHost: a\r\n")  # a head in flight
        time.sleep(SETTLE)
        srv.send_signal(signal.SIGTERM)
        self.wait_drain_began(sentinels)
        conn.send(b"\r\n")
        data, how = conn.read_until_eof()
        rs, rest = parse_all(data)
        self.assertEqual(len(rs), 1, "%r (closed: %s)" % (data, how))
        self.assertEqual((rs[0].status, rs[0].body), (503, b"draining"), rs[0])
        self.assertTrue(rs[0].has_token("Connection", "close"), rs[0])
        self.assertStandardHeaders(rs[0], len(b"draining"))
        self.assertEqual(srv.wait_exit(15), 0)

    def test_keep_alive_in_flight_plaintext_gets_close(self):
        srv = self.start("--workers", "2")
        sentinels = conns_by_worker(srv.port, 2)
        for c in sentinels.values():
            self.addCleanup(c.close)
        conn = self.connect(srv)
        self.assertEqual(conn.request("GET", "/plaintext").status, 200)
        conn.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(SETTLE)
        srv.send_signal(signal.SIGTERM)
        self.wait_drain_began(sentinels)
        conn.send(b"cd")
        r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, b"abcd"), r)
        self.assertTrue(r.has_token("Connection", "close"), r)
        conn.wait_closed()
        self.assertEqual(srv.wait_exit(15), 0)

    def test_drain_timeout_with_stalled_request(self):
        srv = self.start("--workers", "2", "--drain-timeout", "1s", "--body-timeout", "60s",
                         "--header-timeout", "60s")
        stalled_body = self.connect(srv)
        stalled_body.send(request("POST", "/echo", body=b"", headers=["Content-Length: 100"])
                          + b"only part")
        stalled_head = self.connect(srv)
        stalled_head.send(b"GET /plaintext HTTP/1.1\r\nHost: a\r\n")
        time.sleep(SETTLE)
        srv.send_signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(15), 0, "exit status after the drain timeout")
        for c in (stalled_body, stalled_head):
            c.read_until_eof()  # closed, with or without a response

    def test_large_upload_finishes_during_drain(self):
        srv = self.start("--workers", "2", "--drain-timeout", "30s")
        sentinels = conns_by_worker(srv.port, 2)
        for c in sentinels.values():
            self.addCleanup(c.close)
        body = os.urandom(1 << 20)
        conn = self.connect(srv)
        conn.send(request("POST", "/echo", body=body[:300_000],
                          headers=["Content-Length: %d" % len(body)]))
        time.sleep(SETTLE)
        srv.send_signal(signal.SIGTERM)
        self.wait_drain_began(sentinels)
        sender = threading.Thread(target=conn.send, args=(body[300_000:],))
        sender.start()
        r = conn.read_response()
        sender.join(10)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == body, "1 MiB echo differs during the drain")
        self.assertTrue(r.has_token("Connection", "close"), r)
        conn.wait_closed()
        self.assertEqual(srv.wait_exit(15), 0)

    def test_drain_timeout_with_client_not_reading(self):
        # Output pending to a client that reads nothing: the drain timeout ends it, exit 0.
        srv = self.start("--workers", "1", "--drain-timeout", "1s", "--write-timeout", "60s")
        conn = self.connect(srv, rcvbuf=8192, timeout=30)
        flood = threading.Thread(target=self._send_quietly,
                                 args=(conn, request("GET", "/plaintext") * 200_000))
        flood.start()
        wait_until(lambda: srv.stats()["requests"] > 1000, timeout=10,
                   what="the server to answer part of the flood")
        srv.send_signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(15), 0)
        conn.close()
        flood.join(10)

    @staticmethod
    def _send_quietly(conn, data):
        try:
            conn.send(data)
        except OSError:
            pass

    def test_sigterm_during_pipelined_load(self):
        # Many connections busy with pipelined requests: the server still exits 0, and every
        # response that was sent is complete.
        srv = self.start("--workers", "2", "--drain-timeout", "5s")
        conns = [self.connect(srv) for _ in range(8)]
        for c in conns:
            c.send(request("GET", "/plaintext") * 200)
        srv.send_signal(signal.SIGTERM)
        for c in conns:
            data, how = c.read_until_eof()
            rs, rest = parse_all(data)
            self.assertEqual(rest, b"", "a response was cut: %r" % rest[:200])
            self.assertTrue(all(r.status == 200 for r in rs), rs[:3])
        self.assertEqual(srv.wait_exit(15), 0)


if __name__ == "__main__":
    main()
