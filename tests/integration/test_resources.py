# SPDX-License-Identifier: MIT
"""Running out of file descriptors and shutting down with background jobs queued.

- EMFILE: with a low RLIMIT_NOFILE the worker pauses accepting (one log line per episode, not a
  busy loop of errors), keeps serving the connections it has, and accepts the waiting ones once
  descriptors are free again: no connection is lost.
- Shutdown runs the jobs already queued: every PUT answered 204 broadcast one job to the other
  worker, and the exit line's job count shows each of them ran before the process ended."""

import re
import resource
import select
import signal

from coil_harness import CoilTestCase, Conn, ConnectionClosed, main, request, wait_until


class OutOfDescriptors(CoilTestCase):
    def test_accept_pauses_and_resumes_without_losing_connections(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, hard))  # inherited by coil
        try:
            srv = self.start("--workers", "1")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        conns = []
        for _ in range(48):  # more than the server can hold open at once
            c = Conn(srv.port)
            self.addCleanup(c.close)
            c.send(request("GET", "/plaintext"))
            conns.append(c)
        wait_until(lambda: "pausing accepts" in srv.log_text(), timeout=10,
                   what="the EMFILE pause to be logged")
        # The accepted connections answer at once; the others sit in the kernel's accept queue.
        # select() until no further socket becomes readable for half a second.
        readable = set()
        while True:
            r, _, _ = select.select([c.sock for c in conns if c.sock not in readable], [], [], 0.5)
            if not r:
                break
            readable.update(r)
        served = [(c, c.read_response()) for c in conns if c.sock in readable]
        waiting = [c for c in conns if c.sock not in readable]
        self.assertTrue(served, "nothing was served under EMFILE")
        self.assertTrue(waiting, "the descriptor limit was never reached")
        for c, r in served:
            self.assertEqual((r.status, r.body), (200, b"Hello, World!"))
        # Still serving the connections it holds.
        c0 = served[0][0]
        self.assertEqual(c0.request("GET", "/healthz").body, b"ok")
        # One line per episode, not one per failed accept (the pause is 100 ms; a retry loop
        # without it logs thousands).
        self.assertLessEqual(srv.log_text().count("pausing accepts"), 3, srv.log_text())
        for c, _ in served:
            c.close()
        for c in waiting:  # each gets its answer once descriptors are free again
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"Hello, World!"))
        self.assertEqual(c0.sock.fileno(), -1)  # closed above: the served ones are gone


class JobsAtShutdown(CoilTestCase):
    def test_queued_jobs_run_before_exit(self):
        srv = self.start("--workers", "2")
        c = self.connect(srv)
        n = 400
        batch = b"".join(request("PUT", "/kv/k%d" % i, body=b"v%d" % i) for i in range(n))
        c.send(batch)
        first = c.read_response()  # the server is working through the batch now
        self.assertEqual(first.status, 204, first)
        srv.send_signal(signal.SIGTERM)  # while writes and their jobs are still in flight
        answered = 1
        while not first.has_token("Connection", "close"):
            try:
                r = c.read_response()
            except ConnectionClosed:
                break  # drained between two requests: the rest were never read
            self.assertEqual(r.status, 204, r)
            answered += 1
            if r.has_token("Connection", "close"):
                break
        self.assertEqual(srv.wait_exit(), 0, srv.log_text())
        m = re.search(r"stopped: \d+ requests, \d+ connections, (\d+) jobs run", srv.log_text())
        self.assertIsNotNone(m, srv.log_text())
        # Each acknowledged PUT broadcast exactly one job to the other worker; all ran.
        self.assertEqual(int(m.group(1)), answered)


if __name__ == "__main__":
    main()
