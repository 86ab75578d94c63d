# SPDX-License-Identifier: MIT
"""Regression tests for bugs found by review, one per bug, named after what broke.

- A whole response body past COIL_BODY_MAX (1 GiB) was written through 32-bit buffer sizes,
  which could corrupt the framing; now it is refused with 500 (the log says to stream it), and
  coil_res_body refuses to copy it, and the connection stays usable.
- Shutdown hung for ever when worker timers posted jobs: a post to a worker that had already
  exited was accepted and counted, so the others waited for a job nobody would run.
- coil_res_stream read freed memory when the connection failed under it from a timer.
- coil_res_stream failing inside the handler returned -EPIPE without running on_abort.
- A client that left while a request held behind a pipelined one waited went unnoticed until the
  handler timeout: reading had stopped with the earlier pause and was never resumed.
- A Content-Length stream finished during the drain, with nothing left to send, left its
  connection open until the drain timeout.
- The handler timeout cut a stream whose client read slowly, while the handler could not write.
- A coil_defer or coil_timer handle used on another worker could name that worker's own
  request or timer in the same slot (handles now carry their worker).
- While a handler timer was always due (an SSE stream with no pause between events), the loop
  submitted without entering for events, and with DEFER_TASKRUN no other socket's completion
  was ever posted: every other connection starved.
"""

import signal
import socket
import time

from coil_harness import (CoilTestCase, Conn, Server, get_stats, main, parse_all, request,
                          wait_until, whitebox_bin)


class RegressTest(CoilTestCase):
    def test_body_over_limit_refused_not_corrupted(self):
        srv = self.start_app("--workers", "1")
        conn = self.connect(srv)
        for path in ("/huge/static", "/huge/copy"):
            r = conn.request("GET", path)
            self.assertEqual(r.status, 500, (path, r))
            self.assertEqual(r.body, b"Internal Server Error\n", (path, r))
            self.assertEqual(r.header("Content-Length"), str(len(r.body)), (path, r))
            r = conn.request("HEAD", path)
            self.assertEqual(r.status, 500, (path, r))
        r = conn.request("GET", "/status/200")
        self.assertEqual(r.status, 200, r)  # the same connection still works
        wait_until(lambda: "stream it" in srv.log_text(), what="the log line saying why")

    def start_wb(self, *args, env=None):
        srv = Server(list(args) + ["--workers", "1"], env=env, program=whitebox_bin())
        self._servers.append(srv)
        return srv

    def finish_wb(self, srv):
        code = srv.stop(timeout=15)
        self.assertEqual(code, 0, srv.log_text())
        self.assertEqual(srv.sanitizer_lines(), [], srv.log_text())

    def test_shutdown_with_timers_posting_jobs_exits(self):
        for _ in range(5):
            srv = Server(["--workers", "2"], env={"WB_TICK": "1"}, program=whitebox_bin())
            self._servers.append(srv)
            time.sleep(0.1)
            self.finish_wb(srv)  # within 15 s, or the harness fails it

    def test_stream_failing_from_timer_no_use_after_free(self):
        srv = self.start_wb(env={"WB_FAIL_N": "2"})
        c = self.connect(srv)
        c.send(request("GET", "/streamfail"))
        data, how = c.read_until_eof()  # the connection failed: closed, no response
        wait_until(lambda: "whitebox: timer:" in srv.log_text(), what="the timer ran")
        self.finish_wb(srv)
        self.assertIn("whitebox: timer: coil_res_stream -32 aborts 1", srv.log_text())
        self.assertIn("aborts 1 epipe 1", srv.log_text())

    def test_stream_failing_in_handler_runs_on_abort_first(self):
        srv = self.start_wb(env={"WB_FAIL_N": "2"})
        c = self.connect(srv)
        c.send(request("GET", "/streamfail2"))
        c.read_until_eof()
        self.finish_wb(srv)
        # on_abort has run when the handler sees -EPIPE, and only once.
        self.assertIn("whitebox: handler: coil_res_stream -32 aborts 1", srv.log_text())
        self.assertIn("aborts 1 epipe 1", srv.log_text())

    def test_client_leaving_behind_held_pipeline_is_noticed(self):
        srv = self.start_app("--workers", "1", "--handler-timeout", "60s")
        pad = "a" * 7000
        reqs = request("GET", "/later/300")
        # More than the 64 KiB held behind a waiting request: reading pauses.
        reqs += request("GET", "/greeting", headers=["X-Pad: " + pad]) * 10
        reqs += request("GET", "/hang")
        c = Conn(srv.port)
        c.send(reqs)
        rs = [c.read_response() for _ in range(11)]  # /later and the ten /greeting
        self.assertTrue(all(r.status == 200 for r in rs), rs)
        wait_until(lambda: get_stats(srv.port)["waiting"] == 1, what="/hang waiting")
        c.close()  # the client leaves while /hang waits
        wait_until(lambda: get_stats(srv.port)["aborts"] == 1, timeout=10,
                   what="the abort, long before the 60 s handler timeout")

    def test_length_stream_finished_in_drain_closes(self):
        srv = self.start_wb("--drain-timeout", "60s")
        c = self.connect(srv)
        c.send(request("GET", "/lenlater"))
        time.sleep(0.1)
        srv.send_signal(signal.SIGTERM)
        data, how = c.read_until_eof()
        rs, rest = parse_all(data)
        self.assertEqual([(r.status, r.body) for r in rs], [(200, b"hello")], data)
        self.assertTrue(rs[0].has_token("Connection", "close") or how == "eof", rs)
        self.assertEqual(srv.wait_exit(15), 0, srv.log_text())  # not the 60 s drain timeout
        self.assertEqual(srv.sanitizer_lines(), [], srv.log_text())

    def test_always_due_timers_do_not_starve_other_connections(self):
        # Every worker re-arms a 0 ms timer for ever: one is always due.
        srv = self.start_wb(env={"WB_TICK": "1", "WB_TICK_MS": "0"})
        for _ in range(20):
            c = Conn(srv.port)
            r = c.request("GET", "/ok")
            c.close()
            self.assertEqual((r.status, r.body), (200, b"ok"), r)
        self.finish_wb(srv)

    def test_handles_name_nothing_on_another_worker(self):
        srv = self.start_app("--workers", "2")
        for _ in range(8):  # waiting requests in the early slots of both workers
            c = self.connect(srv)
            c.send(request("GET", "/hang"))
        wait_until(lambda: get_stats(srv.port)["waiting"] == 8, what="the /hang requests waiting")
        for _ in range(10):
            for _ in range(4):
                c = Conn(srv.port)
                r = c.request("GET", "/cross")
                c.close()
                self.assertEqual((r.status, r.body), (200, b"ok"), r)

    def test_slow_reader_not_cut_by_handler_timeout(self):
        # The handler timeout is 50 ms; the client reads nothing for a second, so the stream
        # waits in -EAGAIN far longer than that: it must still arrive whole.
        srv = self.start_app("--workers", "1", "--handler-timeout", "50ms")
        c = self.connect(srv, rcvbuf=16384)
        c.send(request("GET", "/stream?mb=16"))
        time.sleep(1.0)
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body), 16 << 20)
        self.assertEqual(get_stats(srv.port)["aborts"], 0)


if __name__ == "__main__":
    main()
