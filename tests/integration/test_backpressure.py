# SPDX-License-Identifier: MIT
"""Backpressure and the write timeout.

A client that pipelines a great many requests and does not read must make the server stop
reading that connection (bounded memory), and get every answer once it reads. A client that
stops reading for good while output is pending is closed after --write-timeout.
"""

import socket
import threading
import time

from coil_harness import CoilTestCase, main, read_response, request, vm_rss_kib, wait_until

GET = request("GET", "/plaintext")
STATUS = b"HTTP/1.1 200 OK\r\n"


class Sender(threading.Thread):
    """Sends data in 64 KiB pieces, counting bytes sent, until done or the socket fails."""

    def __init__(self, sock, data):
        super().__init__(daemon=True)
        self.sock, self.data, self.sent, self.error = sock, data, 0, None

    def run(self):
        view = memoryview(self.data)
        try:
            while self.sent < len(view):
                self.sent += self.sock.send(view[self.sent:self.sent + 65536])
        except OSError as e:
            self.error = e


class Backpressure(CoilTestCase):
    # 600k requests: the ~130-byte answers add up to ~75 MiB, more than the 64 MiB bound, so a
    # server that buffered all output of a client that does not read would fail the check.
    N = 600_000
    RSS_BOUND_KIB = 64 * 1024

    def test_pipelined_flood_without_reading(self):
        srv = self.start("--workers", "1")
        warm = self.connect(srv)
        for _ in range(100):
            self.assertEqual(warm.request("GET", "/plaintext").status, 200)
        one = warm.request("GET", "/plaintext")
        base = vm_rss_kib(srv.pid)

        conn = self.connect(srv, timeout=30)
        sender = Sender(conn.sock, GET * self.N)
        sender.start()
        # Not reading: wait until the sender is blocked (no progress for 1.5 s) or 6 s passed,
        # sampling the server's RSS.
        peak, last, still_since = base, -1, time.monotonic()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            peak = max(peak, vm_rss_kib(srv.pid))
            if sender.sent != last:
                last, still_since = sender.sent, time.monotonic()
            elif time.monotonic() - still_since > 1.5:
                break
            time.sleep(0.1)
        peak = max(peak, vm_rss_kib(srv.pid))
        self.assertLess(peak - base, self.RSS_BOUND_KIB,
                        "RSS grew by %d KiB while the client did not read (sent %d of %d bytes)"
                        % (peak - base, sender.sent, len(sender.data)))
        self.assertLess(sender.sent, len(sender.data),
                        "the server read all %d requests of a client that reads nothing"
                        % self.N)

        # Now read everything: every request is answered, in order, identically.
        size = len(one.head_bytes) + len(one.body)
        first = read_response(conn)
        self.assertEqual((first.status, first.body), (200, one.body), first)
        self.assertEqual(len(first.head_bytes) + len(first.body), size)
        total, count, tail = size, 1, b""
        want = size * self.N
        while total < want:
            if not conn.buf:
                self.assertTrue(conn.fill(), "closed after %d of %d bytes (%d status lines)"
                                % (total, want, count))
            chunk = tail + bytes(conn.buf)
            total += len(conn.buf)
            del conn.buf[:]
            count += chunk.count(STATUS)
            tail = chunk[-(len(STATUS) - 1):]
        sender.join(10)
        self.assertIsNone(sender.error, sender.error)
        self.assertEqual(total, want)
        self.assertEqual(count, self.N)
        # and the connection still works
        r = conn.request("GET", "/json")
        self.assertEqual(r.status, 200, r)

    def test_flooding_client_that_closes_is_released(self):
        # The client floods, the server stops reading it, then the client closes (its unread
        # answers make that a reset). The server must notice and release the connection without
        # waiting for a timeout (all 30 s or more here), and then shut down promptly.
        srv = self.start("--workers", "1", "--write-timeout", "30s", "--header-timeout", "30s",
                         "--body-timeout", "30s", "--idle-timeout", "60s")
        conn = self.connect(srv, rcvbuf=8192)
        sender = Sender(conn.sock, GET * 300_000)
        sender.start()
        last = [-1]

        def blocked():
            sent, last[0] = last[0], sender.sent
            return sent == sender.sent

        wait_until(blocked, timeout=10, interval=1.5, what="the server to stop reading")
        self.assertEqual(srv.stats()["open"], 2)
        # shutdown() wakes the sender blocked in send(); only once it has let go of the socket
        # does close() really close it.
        conn.sock.shutdown(socket.SHUT_RDWR)
        sender.join(10)
        conn.close()
        wait_until(lambda: srv.stats()["open"] <= 1, timeout=10, interval=0.2,
                   what="the server to release the connection the client closed")
        self.stop(srv, timeout=10)

    def test_other_connections_served_while_one_is_stuck(self):
        srv = self.start("--workers", "1")
        stuck = self.connect(srv, rcvbuf=4096)
        sender = Sender(stuck.sock, GET * 200_000)
        sender.start()
        wait_until(lambda: sender.sent > 0, what="the flood to start")
        for _ in range(20):
            r = self.connect(srv).request("GET", "/json")
            self.assertEqual(r.status, 200, r)


class WriteTimeout(CoilTestCase):
    def test_client_that_stops_reading_is_closed(self):
        srv = self.start("--workers", "1", "--write-timeout", "1s")
        body = b"w" * 1_000_000
        conn = self.connect(srv, rcvbuf=8192, timeout=30)
        n = 20  # 20 MB of answers: far more than the socket buffers hold
        sender = Sender(conn.sock, request("POST", "/echo", body=body) * n)
        sender.start()
        wait_until(lambda: srv.stats()["open"] >= 2, timeout=10,
                   what="the flooding connection to be open")
        # The server must give up on it while we still read nothing: only our /stats
        # connection stays open.
        wait_until(lambda: srv.stats()["open"] <= 1, timeout=10, interval=0.2,
                   what="the server to close the connection that does not read")
        data, how = b"", None
        conn.sock.settimeout(10)
        try:
            data, how = conn.read_until_eof()
        except AssertionError:
            self.fail("the connection was not closed")
        got = data.count(b"HTTP/1.1 200 OK\r\n")
        self.assertLess(got, n, "all answers were delivered: nothing was cut")
        sender.join(10)
        # The server goes on serving others.
        self.assertEqual(self.connect(srv).request("GET", "/healthz").status, 200)

    def test_slow_reader_within_timeout_gets_everything(self):
        # Output pending, but the client keeps reading: nothing is cut.
        srv = self.start("--workers", "1", "--write-timeout", "2s")
        body = b"s" * 1_000_000
        conn = self.connect(srv, rcvbuf=65536, timeout=30)
        n = 8
        sender = Sender(conn.sock, request("POST", "/echo", body=body) * n)
        sender.start()
        for i in range(n):
            r = conn.read_response()
            self.assertEqual((r.status, len(r.body)), (200, len(body)), "answer %d" % i)
            time.sleep(0.05)
        sender.join(10)
        self.assertIsNone(sender.error)


if __name__ == "__main__":
    main()
