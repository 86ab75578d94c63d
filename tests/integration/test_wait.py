# SPDX-License-Identifier: MIT
"""Handlers that wait (coil_res_defer): a deferred response blocks nothing else on its worker
(plain requests on other connections are answered while hundreds wait), pipelined requests
behind a waiting one are answered in order, a client that goes away aborts its request exactly
once (on_abort, and the request's own timers and job replies are dropped with it), a request
waiting longer than --handler-timeout gets 504, job replies come back across workers, a kept
coil_defer handle goes stale when its request is gone, timers cancel, fd watches fire, 1xx
statuses from a handler become 500, and /delay checks its argument.

The demo's /delay/:ms and testapp's routes (tests/integration/testapp.c says what each does) are
the handlers. testapp counts what its callbacks saw (/stats: aborts, stale, errors, ...): every
test ends by checking that no contract check inside testapp failed. Waits are bounded only as a
guard against hangs: nothing here asserts how long anything took, only counts, content and
the order in which answers arrive."""

import json
import os
import re
import selectors
import subprocess
import threading
import time

from coil_harness import (HERE, ConnectionClosed, CoilTestCase, Conn, _Buffer, main, need_tool,
                          read_response, ProtocolError, request, testapp_bin, wait_until)

HELLO = b"Hello, World!"
JSON = b'{"message":"Hello, World!"}'


# /stats counters that never go down
COUNTERS = ("aborts", "stale", "aborted", "stream_aborts", "late_watch", "errors")


def delay_body(ms):
    return b'{"delayed_ms":%d}' % ms


def collect_in_order(conns, timeout=30.0):
    """Reads one response from each of conns (label -> Conn) with one selector, and returns
    [(label, Response)] in the order the responses were complete."""
    sel = selectors.DefaultSelector()
    for label, c in conns.items():
        sel.register(c.sock, selectors.EVENT_READ, label)
    order = []
    deadline = time.monotonic() + timeout
    try:
        while len(order) < len(conns):
            if time.monotonic() > deadline:
                missing = sorted(set(conns) - {l for l, _ in order}, key=str)[:10]
                raise AssertionError("gave up waiting for responses on %s (%d of %d came)"
                                     % (missing, len(order), len(conns)))
            for key, _ in sel.select(0.5):
                label = key.data
                c = conns[label]
                chunk = c.sock.recv(1 << 16)
                if not chunk:
                    raise AssertionError("connection %r closed before a complete response: %r"
                                         % (label, bytes(c.buf[:300])))
                c.buf += chunk
                src = _Buffer(bytes(c.buf))
                try:
                    resp = read_response(src)
                except (ProtocolError, ConnectionClosed):
                    continue  # not complete yet
                c.buf[:] = src.buf  # what follows the response stays for the next read
                order.append((label, resp))
                sel.unregister(c.sock)
    finally:
        sel.close()
    return order


class WaitCase(CoilTestCase):
    def assertAppClean(self, srv, **expect):
        """testapp's own counters: no failed contract check, and the given values."""
        st = srv.stats()
        self.assertEqual(st["errors"], 0, "testapp contract check failed: %s" % st["first_error"])
        for k, v in expect.items():
            self.assertEqual(st[k], v, "testapp /stats %s: %r" % (k, st))
        return st

    def wait_stat(self, srv, key, value, timeout=10.0):
        """Polls /stats until key equals value (a hang guard, not a speed check). For the
        counters that only grow (COUNTERS), it waits until key reaches value and then
        requires it to be exactly value, so that an overshoot fails at once."""
        last = {}

        def check():
            last.update(srv.stats())
            if key in COUNTERS and last[key] > value:
                raise AssertionError("/stats %s is %r, over %r: %r" % (key, last[key], value, last))
            return last[key] == value

        try:
            wait_until(check, timeout=timeout, what="/stats %s == %r" % (key, value))
        except AssertionError as e:
            raise AssertionError("%s; last /stats %r" % (e, last)) from None
        return last


class Delay(WaitCase):
    """The demo's GET /delay/:ms, answered from a timer."""

    def test_waiting_requests_block_nothing(self):
        # 200 requests wait on one worker; plain requests sent on other connections after all
        # 200 are waiting are all answered before any of the waiting ones. The delay is long
        # compared with what the plain requests need, so only a worker that blocks (or that
        # answers deferred requests early) could change the order.
        srv = self.start("--workers", "1")
        n, m, ms = 200, 20, 3000
        delayed = {("delay", i): self.connect(srv, timeout=30) for i in range(n)}
        for c in delayed.values():
            c.send(request("GET", "/delay/%d" % ms))
        st = self.wait_stat(srv, "waiting", n)
        self.assertGreaterEqual(st["deferred"], n, st)
        plain = {("plain", i): self.connect(srv, timeout=30) for i in range(m)}
        for c in plain.values():
            c.send(request("GET", "/plaintext"))
        order = collect_in_order({**delayed, **plain}, timeout=60)
        kinds = [label[0] for label, _ in order]
        self.assertEqual(kinds, ["plain"] * m + ["delay"] * n,
                         "arrival order (plain requests must all come first): %s" % kinds)
        for label, r in order:
            if label[0] == "plain":
                self.assertEqual((r.status, r.body), (200, HELLO), r)
            else:
                self.assertEqual((r.status, r.body), (200, delay_body(ms)), r)
                self.assertEqual(r.header("Content-Type"), "application/json", r)
                self.assertStandardHeaders(r, len(delay_body(ms)))
                self.assertFalse(r.has_token("Connection", "close"), r)
        st = self.wait_stat(srv, "waiting", 0)
        self.assertGreaterEqual(st["deferred"], n, st)
        self.assertEqual(st["aborted"], 0, st)
        # the connections stay usable after a deferred answer
        for label in [("delay", 0), ("delay", n - 1)]:
            r = delayed[label].request("GET", "/delay/0")
            self.assertEqual((r.status, r.body), (200, delay_body(0)), r)

    def test_pipelined_behind_deferred_in_order(self):
        srv = self.start("--workers", "1")
        reqs = [
            (request("GET", "/delay/300"), 200, delay_body(300)),
            (request("GET", "/delay/0"), 200, delay_body(0)),
            (request("GET", "/plaintext"), 200, HELLO),
            (request("POST", "/echo", body=b"behind a wait"), 200, b"behind a wait"),
            (request("GET", "/delay/100"), 200, delay_body(100)),
            (request("GET", "/json"), 200, JSON),
            (request("GET", "/delay/abc"), 400, None),
            (request("GET", "/delay/20"), 200, delay_body(20)),
        ]
        c = self.connect(srv)
        c.send(b"".join(r[0] for r in reqs))
        for i, (_, status, body) in enumerate(reqs):
            r = c.read_response()
            self.assertEqual(r.status, status, "response %d: %r" % (i, r))
            if body is not None:
                self.assertEqual(r.body, body, "response %d: %r" % (i, r))
        # and the same connection goes on
        r = c.request("GET", "/delay/10")
        self.assertEqual((r.status, r.body), (200, delay_body(10)), r)

    def test_many_pipelined_delays_in_order(self):
        # Later requests have shorter delays: their timers fire first, the answers still may
        # not overtake the ones in front of them.
        srv = self.start("--workers", "1")
        delays = [(37 * i) % 200 for i in range(40)][::-1]
        c = self.connect(srv, timeout=30)
        c.send(b"".join(request("GET", "/delay/%d" % d) for d in delays))
        got = [c.read_response() for _ in delays]
        self.assertEqual([(r.status, r.body) for r in got],
                         [(200, delay_body(d)) for d in delays])

    def test_long_pipeline_behind_deferred(self):
        # Far more pipelined input behind a waiting request than the engine reads ahead (it
        # stops reading at its bound): every request is answered, in order, once the first is.
        srv = self.start("--workers", "1")
        n = 3000
        big = os.urandom(1 << 20)
        data = (request("GET", "/delay/300") + request("GET", "/plaintext") * n
                + request("POST", "/echo", body=big) + request("GET", "/delay/10"))
        c = self.connect(srv, timeout=30)

        def send():
            try:
                c.send(data)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, delay_body(300)), r)
        for i in range(n):
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, HELLO), "response %d: %r" % (i + 1, r))
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == big, "1 MiB echo behind a deferred request differs")
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, delay_body(10)), r)
        sender.join(10)

    def test_pipelined_close_after_deferred(self):
        srv = self.start("--workers", "1")
        res = Conn(srv.port)
        self.addCleanup(res.close)
        res.send(request("GET", "/delay/50") +
                 request("GET", "/delay/10", headers=["Connection: close"]))
        r1, r2 = res.read_response(), res.read_response()
        self.assertEqual((r1.status, r1.body), (200, delay_body(50)), r1)
        self.assertEqual((r2.status, r2.body), (200, delay_body(10)), r2)
        self.assertTrue(r2.has_token("Connection", "close"), r2)
        res.wait_closed()

    def test_http10_deferred(self):
        srv = self.start("--workers", "1")
        c = self.connect(srv)
        c.send(request("GET", "/delay/30", version="HTTP/1.0"))
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, delay_body(30)), r)
        self.assertTrue(r.version.startswith("HTTP/1."), r)
        c.wait_closed()

    def test_head_deferred(self):
        srv = self.start("--workers", "1")
        c = self.connect(srv)
        r = c.request("HEAD", "/delay/20")
        self.assertEqual((r.status, r.body), (200, b""), r)
        self.assertEqual(r.header("Content-Length"), str(len(delay_body(20))), r)
        r = c.request("GET", "/plaintext")  # nothing of a body was sent after the HEAD answer
        self.assertEqual((r.status, r.body), (200, HELLO), r)

    def test_delay_validation(self):
        srv = self.start("--workers", "1")
        c = self.connect(srv)
        for bad in ("abc", "10001", "-1", "1.5", "99999999999999999999", "%20", "1e3"):
            r = c.request("GET", "/delay/" + bad)
            self.assertEqual(r.status, 400, "/delay/%s: %r" % (bad, r))
        for ok in (0, 1, 10):
            r = c.request("GET", "/delay/%d" % ok)
            self.assertEqual((r.status, r.body), (200, delay_body(ok)), r)
            self.assertEqual(r.header("Content-Type"), "application/json", r)
        st = srv.stats()
        for key in ("deferred", "waiting", "aborted"):
            self.assertIn(key, st)
        self.assertEqual(st["waiting"], 0, st)
        self.assertGreaterEqual(st["deferred"], 3, st)

    def test_wrk_on_delayed(self):
        need_tool("wrk")
        srv = self.start("--workers", "2")
        script = os.path.join(HERE, "wrk_check.lua")
        env = dict(os.environ, WRK_EXPECT_BODY=delay_body(5).decode())
        p = subprocess.run(["wrk", "-t2", "-c64", "-d3s", "--timeout", "10s", "-s", script,
                            "http://127.0.0.1:%d/delay/5" % srv.port],
                           capture_output=True, text=True, timeout=60, env=env)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        m = re.search(r"wrk_check: responses=(\d+) wrong=(\d+)", out)
        self.assertIsNotNone(m, "the Lua script printed no count:\n" + out)
        self.assertEqual(int(m.group(2)), 0, out)
        self.assertGreater(int(m.group(1)), 64, out)
        self.assertNotIn("Non-2xx", out)
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if m:
            self.assertEqual((int(m.group(1)), int(m.group(4))), (0, 0), out)
        st = self.wait_stat(srv, "waiting", 0)
        self.assertGreaterEqual(st["deferred"], int(re.search(r"responses=(\d+)", out).group(1)),
                                st)
        self.stop(srv)

    def test_other_timeouts_do_not_cut_a_waiting_request(self):
        # The idle, header, body and write timeouts are about the client; a request that waits
        # on its handler longer than all of them is still answered.
        srv = self.start("--workers", "1", "--idle-timeout", "1s", "--header-timeout", "1s",
                         "--body-timeout", "1s", "--write-timeout", "1s")
        c = self.connect(srv)
        r = c.request("GET", "/delay/2500")
        self.assertEqual((r.status, r.body), (200, delay_body(2500)), r)
        self.assertFalse(r.has_token("Connection", "close"), r)
        r = c.request("GET", "/plaintext")
        self.assertEqual((r.status, r.body), (200, HELLO), r)
        # the idle timeout still applies once nothing is waiting
        c.wait_closed()

    def test_handler_timeout_on_demo(self):
        srv = self.start("--workers", "1", "--handler-timeout", "1s")
        c = self.connect(srv)
        c.send(request("GET", "/delay/2000") + request("GET", "/delay/10"))
        r = c.read_response()
        self.assertEqual(r.status, 504, r)
        self.assertStandardHeaders(r)
        if r.has_token("Connection", "close"):
            c.wait_closed()
        else:
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, delay_body(10)), r)
        st = self.wait_stat(srv, "aborted", 1)
        self.assertEqual(st["waiting"], 0, st)
        time.sleep(1.3)  # past the dropped timer
        self.assertEqual(self.connect(srv).request("GET", "/delay/0").body, delay_body(0))
        self.assertEqual(srv.stats()["aborted"], 1)
        self.stop(srv)

    def test_client_gone_while_delayed(self):
        # A request whose client closes is aborted (stats "aborted"), its timer dropped: the
        # worker goes on serving, and under sanitizers nothing touches the dead request.
        srv = self.start("--workers", "1")
        conns = [Conn(srv.port) for _ in range(10)]
        for c in conns:
            c.send(request("GET", "/delay/400"))
        self.wait_stat(srv, "waiting", 10)
        for c in conns:
            c.close()
        st = self.wait_stat(srv, "aborted", 10)
        self.assertEqual(st["waiting"], 0, st)
        time.sleep(0.6)  # past the delay: the dropped timers must not fire into a dead request
        r = self.connect(srv).request("GET", "/delay/1")
        self.assertEqual((r.status, r.body), (200, delay_body(1)), r)
        self.assertEqual(srv.stats()["aborted"], 10)
        self.stop(srv)


class Waits(WaitCase):
    """testapp's waiting routes."""

    def test_later_from_owned_timer(self):
        srv = self.start_app("--workers", "1")
        c = self.connect(srv)
        r = c.request("GET", "/later/50")
        self.assertEqual((r.status, r.body), (200, b"later 50"), r)
        self.assertEqual(r.header("X-Worker"), "0", r)
        self.assertEqual(r.header("Content-Type"), "text/plain", r)
        self.assertStandardHeaders(r, len(b"later 50"))
        # concurrent ones on separate connections, each with its own parameter
        conns = {i: self.connect(srv) for i in range(30)}
        for i, cc in conns.items():
            cc.send(request("GET", "/later/%d" % (300 - 10 * i)))
        for label, r in collect_in_order(conns):
            self.assertEqual((r.status, r.body), (200, b"later %d" % (300 - 10 * label)), r)
        r = c.request("GET", "/later/abc")
        self.assertEqual(r.status, 400, r)
        self.assertAppClean(srv, waiting=0)

    def test_client_disconnect_aborts_once(self):
        srv = self.start_app("--workers", "2")
        n = 20
        conns = [Conn(srv.port) for _ in range(n)]
        for c in conns:
            c.send(request("GET", "/hang"))
        self.wait_stat(srv, "waiting", n)
        self.assertEqual(srv.stats()["aborts"], 0)
        for c in conns:
            c.close()
        st = self.wait_stat(srv, "aborts", n)
        self.assertEqual(st["waiting"], 0, st)
        # once each, not again later
        time.sleep(0.5)
        c = self.connect(srv)
        self.assertEqual(c.request("GET", "/aborts").body, str(n).encode())
        st = self.assertAppClean(srv, aborts=n, waiting=0, aborted=n)
        self.assertGreaterEqual(st["deferred"], n, st)
        r = c.request("GET", "/greeting")
        self.assertEqual((r.status, r.body), (200, b"hello"), r)
        self.stop(srv)  # sanitizers: nothing used after the abort, nothing leaked

    def test_many_waiting_then_gone_twice(self):
        # Slots of aborted requests are reused by the next round; each abort runs once.
        srv = self.start_app("--workers", "2")
        total = 0
        for n in (1000, 500):
            conns = [Conn(srv.port, timeout=30) for _ in range(n)]
            for c in conns:
                c.send(request("GET", "/hang"))
            self.wait_stat(srv, "waiting", n, timeout=30)
            for c in conns:
                c.close()
            total += n
            self.wait_stat(srv, "aborts", total, timeout=30)
        self.assertAppClean(srv, waiting=0, aborted=total)
        self.stop(srv)

    def test_disconnect_with_requests_queued_behind(self):
        srv = self.start_app("--workers", "1")
        c = Conn(srv.port)
        c.send(request("GET", "/hang") + request("GET", "/later/0") + request("GET", "/greeting"))
        self.wait_stat(srv, "waiting", 1)
        c.close()
        self.wait_stat(srv, "aborts", 1)
        time.sleep(0.3)
        self.assertAppClean(srv, aborts=1, waiting=0)
        self.assertEqual(self.connect(srv).request("GET", "/greeting").status, 200)
        self.stop(srv)

    def test_disconnect_drops_owned_timer(self):
        # /later's timer belongs to the request: after the client goes, it must never run.
        srv = self.start_app("--workers", "1")
        conns = [Conn(srv.port) for _ in range(5)]
        for c in conns:
            c.send(request("GET", "/later/300"))
        self.wait_stat(srv, "waiting", 5)
        for c in conns:
            c.close()
        self.wait_stat(srv, "aborted", 5)
        time.sleep(0.6)  # past the timers
        self.assertAppClean(srv, waiting=0, aborted=5)
        self.assertEqual(self.connect(srv).request("GET", "/later/0").body, b"later 0")
        self.stop(srv)

    def test_handler_timeout_504(self):
        srv = self.start_app("--workers", "1", "--handler-timeout", "1s")
        c = self.connect(srv)
        r = c.request("GET", "/hang")
        self.assertEqual(r.status, 504, r)
        self.assertStandardHeaders(r)
        self.wait_stat(srv, "aborts", 1)
        time.sleep(0.3)
        self.assertAppClean(srv, aborts=1, aborted=1, waiting=0)
        if r.has_token("Connection", "close"):
            c.wait_closed()
        else:
            r2 = c.request("GET", "/greeting")
            self.assertEqual((r2.status, r2.body), (200, b"hello"), r2)
        self.stop(srv)

    def test_handler_timeout_drops_owned_timer_and_stales_handle(self):
        # A timeout aborts /later/2500 (its owned timer is dropped: no late finish) and
        # /handle/2500 (its owner-less timer then finds the handle stale).
        srv = self.start_app("--workers", "1", "--handler-timeout", "1s")
        a, b = self.connect(srv), self.connect(srv)
        a.send(request("GET", "/later/2500"))
        b.send(request("GET", "/handle/2500"))
        for c in (a, b):
            r = c.read_response()
            self.assertEqual(r.status, 504, r)
        self.wait_stat(srv, "stale", 1)
        self.wait_stat(srv, "pending", 0)
        self.assertAppClean(srv, stale=1, aborted=2, waiting=0)
        self.stop(srv)

    def test_pipelined_behind_timed_out(self):
        srv = self.start_app("--workers", "1", "--handler-timeout", "1s")
        c = self.connect(srv)
        c.send(request("GET", "/hang") + request("GET", "/later/10") + request("GET", "/greeting"))
        r = c.read_response()
        self.assertEqual(r.status, 504, r)
        if r.has_token("Connection", "close"):
            c.wait_closed()
        else:
            r2, r3 = c.read_response(), c.read_response()
            self.assertEqual((r2.status, r2.body), (200, b"later 10"), r2)
            self.assertEqual((r3.status, r3.body), (200, b"hello"), r3)
        self.assertAppClean(srv, aborts=1)

    def test_handler_timeout_option(self):
        p = subprocess.run([testapp_bin(), "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("--handler-timeout", p.stdout)
        self.assertIn("COIL_HANDLER_TIMEOUT", p.stdout)
        for bad in ("abc", "-1s", "10x"):
            p = subprocess.run([testapp_bin(), "--handler-timeout", bad, "--port", "0"],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(p.returncode, 2, "--handler-timeout %s: %r" % (bad, p.stderr))
        srv = self.start_app("--workers", "1", env={"COIL_HANDLER_TIMEOUT": "500ms"})
        r = self.connect(srv).request("GET", "/hang")
        self.assertEqual(r.status, 504, r)
        # the flag wins over the variable
        srv2 = self.start_app("--workers", "1", "--handler-timeout", "5s",
                              env={"COIL_HANDLER_TIMEOUT": "500ms"})
        r = self.connect(srv2).request("GET", "/later/1500")
        self.assertEqual((r.status, r.body), (200, b"later 1500"), r)

    def worker_conns(self, srv, workers, tries=64):
        """{worker: Conn}: one connection served by each worker (told by /later/0's X-Worker)."""
        found = {}
        for _ in range(tries):
            c = Conn(srv.port)
            w = int(c.request("GET", "/later/0").header("X-Worker"))
            if w in found:
                c.close()
                continue
            self.addCleanup(c.close)
            found[w] = c
            if len(found) == workers:
                return found
        self.fail("%d connections reached only workers %s" % (tries, sorted(found)))

    def test_job_replies_across_workers(self):
        srv = self.start_app("--workers", "2")
        by_worker = self.worker_conns(srv, 2)
        for w, c in by_worker.items():
            for i in range(20):
                for target in (0, 1):
                    r = c.request("GET", "/call/%d" % target)
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(json.loads(r.body), {"from": w, "to": target, "back": w}, r)
            # pipelined: in order
            c.send(b"".join(request("GET", "/call/%d" % t) for t in (1, 0, 1, 1, 0)))
            got = [json.loads(c.read_response().body)["to"] for _ in range(5)]
            self.assertEqual(got, [1, 0, 1, 1, 0])
            for bad in ("2", "5", "4294967296", "x", "-1"):
                r = c.request("GET", "/call/" + bad)
                self.assertEqual(r.status, 400, "/call/%s: %r" % (bad, r))
            r = c.request("GET", "/call/%d" % (1 - w))  # still usable after a 400
            self.assertEqual(json.loads(r.body)["to"], 1 - w, r)
        # many connections at once, spread over both workers
        conns = {i: self.connect(srv) for i in range(40)}
        for i, c in conns.items():
            c.send(request("GET", "/call/%d" % (i % 2)))
        froms = set()
        for i, r in collect_in_order(conns):
            self.assertEqual(r.status, 200, r)
            body = json.loads(r.body)
            self.assertEqual(body["to"], i % 2, r)
            self.assertIn(body["from"], (0, 1), r)
            self.assertEqual(body["back"], body["from"], r)
            froms.add(body["from"])
        self.assertAppClean(srv, waiting=0)

    def test_disconnect_before_job_reply(self):
        # Replies to requests whose clients left are dropped (owner-bound): nothing runs on a
        # dead request. Whether a given request was answered first is not known, only that
        # the worker is fine afterwards.
        srv = self.start_app("--workers", "2")
        for _ in range(5):
            conns = [Conn(srv.port) for _ in range(20)]
            for i, c in enumerate(conns):
                c.send(request("GET", "/call/%d" % (i % 2)) * 3)
            for c in conns:
                c.close()
        self.wait_stat(srv, "waiting", 0)
        r = self.connect(srv).request("GET", "/call/1")
        self.assertEqual(json.loads(r.body)["to"], 1, r)
        self.assertAppClean(srv)
        self.stop(srv)

    def test_handle_answers(self):
        srv = self.start_app("--workers", "1")
        c = self.connect(srv)
        r = c.request("GET", "/handle/100")
        self.assertEqual((r.status, r.body), (200, b"handle 100"), r)
        r = c.request("GET", "/handle/0")
        self.assertEqual((r.status, r.body), (200, b"handle 0"), r)
        self.wait_stat(srv, "pending", 0)
        self.assertAppClean(srv, stale=0, waiting=0)

    def test_handle_goes_stale(self):
        srv = self.start_app("--workers", "1")
        gone = Conn(srv.port)
        gone.send(request("GET", "/handle/800"))
        self.wait_stat(srv, "waiting", 1)
        gone.close()
        self.wait_stat(srv, "aborted", 1)
        # A new request now probably takes the slot the gone one had: its handle's generation
        # must keep the old timer from answering it.
        c = self.connect(srv)
        c.send(request("GET", "/later/1500"))
        self.wait_stat(srv, "stale", 1)
        r = c.read_response()
        self.assertEqual((r.status, r.body), (200, b"later 1500"), r)
        self.assertEqual(c.request("GET", "/stale").body, b"1")
        self.wait_stat(srv, "pending", 0)
        self.assertAppClean(srv, stale=1, waiting=0)
        self.stop(srv)

    def test_handle_stale_many(self):
        # Many gone handles, with new requests reusing their slots meanwhile.
        srv = self.start_app("--workers", "1")
        gone = [Conn(srv.port) for _ in range(20)]
        for c in gone:
            c.send(request("GET", "/handle/600"))
        self.wait_stat(srv, "waiting", 20)
        for c in gone:
            c.close()
        self.wait_stat(srv, "aborted", 20)
        fresh = {i: self.connect(srv) for i in range(20)}
        for i, c in fresh.items():
            c.send(request("GET", "/later/%d" % (1200 + i)))
        for i, r in collect_in_order(fresh):
            self.assertEqual((r.status, r.body), (200, b"later %d" % (1200 + i)), r)
        self.wait_stat(srv, "stale", 20)
        self.wait_stat(srv, "pending", 0)
        self.assertAppClean(srv, stale=20, waiting=0)

    def test_request_copied_on_defer(self):
        # What the handler reads after deferring (body, path, query, a header) is the request's
        # own copy: pipelined requests behind it, which reuse the receive buffer, change nothing.
        srv = self.start_app("--workers", "1")
        c = self.connect(srv, timeout=30)
        reqs = []
        for i, (ms, size) in enumerate(((200, 100_000), (0, 10), (50, 0), (120, 300_000),
                                        (10, 5000))):
            body = os.urandom(size)
            reqs.append((i, body, request("POST", "/echo-later/%d?q=v%d%%20x" % (ms, i), body=body,
                                          headers=["X-Tag: tag-%d" % i])))
        c.send(b"".join(r[2] for r in reqs) + request("GET", "/greeting"))
        for i, body, _ in reqs:
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.header("X-Tag"), "tag-%d" % i, r)
            self.assertEqual(r.header("X-Q"), "v%d x" % i, r)
            self.assertTrue(r.header("X-Path").startswith("/echo-later/"), r)
            self.assertTrue(r.body == body, "request %d: body differs (%d bytes, want %d)"
                            % (i, len(r.body), len(body)))
        self.assertEqual(c.read_response().body, b"hello")
        # and on many connections at once
        conns = {i: self.connect(srv) for i in range(40)}
        bodies = {i: os.urandom(1000 + 37 * i) for i in conns}
        for i, cc in conns.items():
            cc.send(request("POST", "/echo-later/%d" % (i * 7 % 100), body=bodies[i],
                            headers=["X-Tag: c%d" % i]) + request("GET", "/greeting"))
        for i, r in collect_in_order(conns):
            self.assertEqual((r.status, r.header("X-Tag")), (200, "c%d" % i), r)
            self.assertTrue(r.body == bodies[i], "connection %d: body differs" % i)
            self.assertEqual(conns[i].read_response().body, b"hello")
        self.assertAppClean(srv, waiting=0)

    def test_failed_handler_after_defer_is_500_without_abort(self):
        srv = self.start_app("--workers", "1")
        c = self.connect(srv)
        r = c.request("GET", "/defer-fail")
        self.assertEqual(r.status, 500, r)
        self.assertStandardHeaders(r)
        if r.has_token("Connection", "close"):
            c.wait_closed()
            c = self.connect(srv)
        self.assertEqual(c.request("GET", "/greeting").body, b"hello")
        time.sleep(0.2)
        self.assertAppClean(srv, aborts=0, waiting=0)
        self.stop(srv)

    def test_cancel(self):
        srv = self.start_app("--workers", "1")
        c = self.connect(srv)
        for _ in range(3):
            r = c.request("GET", "/cancel")
            self.assertEqual((r.status, r.body), (200, b"ok"), r)
        time.sleep(0.2)  # past the cancelled timers' time: "never" must not have run
        self.assertAppClean(srv)

    def test_pipe_watch(self):
        srv = self.start_app("--workers", "1")
        c = self.connect(srv)
        for _ in range(3):
            r = c.request("GET", "/pipe")
            self.assertEqual((r.status, r.body), (200, b"pong:ping"), r)
        conns = {i: self.connect(srv) for i in range(30)}
        for cc in conns.values():
            cc.send(request("GET", "/pipe"))
        for i, r in collect_in_order(conns):
            self.assertEqual((r.status, r.body), (200, b"pong:ping"), r)
        self.wait_stat(srv, "pending", 0)
        self.assertAppClean(srv, late_watch=0, waiting=0)

    def test_pipe_client_gone(self):
        srv = self.start_app("--workers", "1")
        for _ in range(10):
            c = Conn(srv.port)
            c.send(request("GET", "/pipe"))
            c.close()
        self.wait_stat(srv, "waiting", 0)
        self.wait_stat(srv, "pending", 0)
        self.assertAppClean(srv, late_watch=0)
        self.assertEqual(self.connect(srv).request("GET", "/pipe").body, b"pong:ping")
        self.wait_stat(srv, "pending", 0)
        self.stop(srv)

    def test_interim_status_from_handler_is_500(self):
        srv = self.start_app("--workers", "1")
        c = self.connect(srv)
        for code in (100, 101, 102, 103):
            r = c.request("GET", "/status/%d" % code)
            self.assertEqual(r.status, 500, "/status/%d: %r" % (code, r))
            self.assertStandardHeaders(r)
            if r.has_token("Connection", "close"):
                c.wait_closed()
                c = self.connect(srv)
        r = c.request("GET", "/status/418")
        self.assertEqual((r.status, r.body), (418, b"status 418"), r)
        r = c.request("GET", "/status/200")
        self.assertEqual((r.status, r.body), (200, b"status 200"), r)

    def test_overlong_write_refused(self):
        srv = self.start_app("--workers", "1")
        c = self.connect(srv)
        r = c.request("GET", "/overlong")
        self.assertEqual((r.status, r.body), (200, b"0123456789"), r)
        self.assertEqual(r.header("Content-Length"), "10", r)
        self.assertIsNone(r.header("Transfer-Encoding"), r)
        self.assertEqual(c.request("GET", "/greeting").body, b"hello")
        self.assertAppClean(srv)


if __name__ == "__main__":
    main()
