# SPDX-License-Identifier: MIT
"""--max-conns: with one worker and a limit of 4, four connections are served, a fifth is
accepted and closed without a response, and once one of the four closes a new one is served."""

import json
import socket
import struct

from coil_harness import CoilTestCase, Conn, ConnectionClosed, main, request, wait_until


class MaxConns(CoilTestCase):
    def setUp(self):
        self.srv = self.start("--workers", "1", "--max-conns", "4")

    def open_served(self, n):
        conns = []
        for i in range(n):
            c = self.connect(self.srv)
            r = c.request("GET", "/plaintext")
            self.assertEqual(r.status, 200, "connection %d: %r" % (i, r))
            conns.append(c)
        return conns

    def assertRefused(self, conn):
        """The server closes conn without a response (EOF or reset, before or after our send)."""
        try:
            conn.send(request("GET", "/plaintext"))
        except (BrokenPipeError, ConnectionResetError):
            return
        data, how = conn.read_until_eof()
        self.assertEqual(data, b"", "a connection over --max-conns got an answer")

    def try_served(self):
        """A new connection, if the server answers on it; None if it is refused."""
        c = Conn(self.srv.port)
        try:
            r = c.request("GET", "/healthz")
        except (ConnectionClosed, BrokenPipeError, ConnectionResetError):
            c.close()
            return None
        self.addCleanup(c.close)
        self.assertEqual((r.status, r.body), (200, b"ok"), r)
        return c

    def test_fifth_connection_refused(self):
        conns = self.open_served(4)
        fifth = self.connect(self.srv)  # the kernel completes the handshake: connect succeeds
        self.assertRefused(fifth)
        # the four are still served
        for i, c in enumerate(conns):
            r = c.request("GET", "/json")
            self.assertEqual(r.status, 200, "connection %d after the refusal: %r" % (i, r))

    def test_slot_freed_after_close(self):
        conns = self.open_served(4)
        self.assertRefused(self.connect(self.srv))
        conns[0].close()
        # The server learns of the close asynchronously: retry (bounded) until it serves anew.
        c = wait_until(self.try_served, timeout=5, interval=0.1,
                       what="a new connection to be served after one closed")
        self.assertEqual(c.request("GET", "/plaintext").status, 200)
        # and we are at the limit again
        self.assertRefused(self.connect(self.srv))

    def test_slot_freed_after_server_closes(self):
        # A connection the server ends itself (Connection: close) frees its slot too.
        conns = self.open_served(3)
        last = self.connect(self.srv)
        last.send(request("GET", "/healthz", headers=["Connection: close"]))
        self.assertEqual(last.read_response().status, 200)
        last.wait_closed()
        c = wait_until(self.try_served, timeout=5, interval=0.1,
                       what="a new connection to be served after the server closed one")
        self.assertIsNotNone(c)
        self.assertEqual(len(conns), 3)

    def test_many_refusals_do_not_leak_slots(self):
        conns = self.open_served(4)
        for _ in range(50):
            c = Conn(self.srv.port)
            try:
                self.assertRefused(c)
            finally:
                c.close()
        for c in conns:
            c.close()
        # all four slots come back
        fresh = []
        for i in range(4):
            fresh.append(wait_until(self.try_served, timeout=5, interval=0.1,
                                    what="slot %d to be free again" % i))
        self.assertRefused(self.connect(self.srv))

    def test_stats_open_counts_connections(self):
        conns = self.open_served(3)
        stats = conns[0].request("GET", "/stats")
        self.assertEqual(json.loads(stats.body)["open"], 3, stats)


class Aborts(CoilTestCase):
    """Clients that go away at any point release their connection: with --max-conns 4, after
    many aborted connections four new ones are still served."""

    def test_aborted_connections_release_their_slots(self):
        srv = self.start("--workers", "1", "--max-conns", "4")
        big = request("POST", "/echo", body=b"z" * 500_000)
        cases = [b"", b"GET /plain", b"GET /plaintext HTTP/1.1\r\nHost: a\r\n",
                 request("POST", "/echo", body=b"", headers=["Content-Length: 100"]) + b"part",
                 request("POST", "/echo", body=b"", headers=["Transfer-Encoding: chunked"])
                 + b"5\r\nab",
                 request("GET", "/plaintext") * 50, big]
        for reset in (False, True):
            for data in cases:
                for _ in range(2):
                    # a slot may still be held by the previous abort: wait for one to be free
                    wait_until(lambda: self.try_abort(srv.port, data, reset), timeout=5,
                               interval=0.05, what="a free slot for the next abort")
        conns = []
        for i in range(4):
            conns.append(wait_until(lambda: self.try_serve(srv.port), timeout=5, interval=0.1,
                                    what="slot %d to be served after the aborts" % i))
        self.assertEqual(json.loads(conns[0].request("GET", "/stats").body)["open"], 4)

    def try_abort(self, port, data, reset):
        # Only counts if the server accepted it into a slot (it answers a probe first).
        c = self.try_serve(port)
        if c is None:
            return False
        if data:
            c.send(data)
        if reset:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.sock.close()
        else:
            c.close()
        return True

    def try_serve(self, port):
        c = Conn(port)
        try:
            r = c.request("GET", "/healthz")
        except (ConnectionClosed, BrokenPipeError, ConnectionResetError):
            c.close()
            return None
        self.addCleanup(c.close)
        self.assertEqual(r.status, 200, r)
        return c


class ManyConnections(CoilTestCase):
    def test_300_concurrent_connections(self):
        srv = self.start("--workers", "2")
        conns = [self.connect(srv) for _ in range(300)]
        for i, c in enumerate(conns):
            c.send(request("POST", "/echo", body=b"conn-%03d" % i))
        for i, c in enumerate(conns):
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"conn-%03d" % i), r)
        self.assertGreaterEqual(srv.stats()["open"], 300)


if __name__ == "__main__":
    main()
