# SPDX-License-Identifier: MIT
"""The middleware chain (coil.h, "middleware") through mwapp (tests/integration/mwapp.c says what
each route and step does): app middleware A, B and route middleware R on /r.

Semantics checked: before steps run A, B, R, then the handler; after and done steps R, B, A; a
route's middleware only on its route. A before step that answers (COIL_MW_DONE) skips the later
before steps and the handler but not one after or done step; one that fails answers 500 (503 for
-ENOMEM). The engine's own answers (404, 405, 400, 431, 413, 408, 504) go through every after
and done step. A deferred response runs its after steps once, at the finish, with the final
status and body; done sees it complete and no shorter than the wait. A streamed one runs its
after steps at coil_res_stream; a filter transforms the body (chunked even with a declared
length, close-delimited on HTTP/1.0), HEAD sends only the head, done's bytes_out is what the
socket got, and a failing filter cuts the response short. coil_mw_next continues a waiting before
step (the later steps and the handler run; the handler may defer again with the same handle, or
stream; a later step may answer, fail or wait in turn; a second call is refused, as is one from
the step itself or for a handler's own defer; requests pipelined behind a waiting one are answered
in order); a waiting step may answer itself; a client leaving while a step waits runs its on_abort
once (and, as a handler leaving after coil_mw_next, the handler's instead). After steps
read and amend status, headers and a whole body. Request IDs (echoed when well-formed, else
generated and unique across workers; --request-id off) and W3C trace context. An app without
middleware still answers.

Waits are bounded polls; the only time assertion is a lower bound (done's duration of a response
that waited on a timer is at least the timer's delay).
"""

import json
import os
import re
import subprocess
import urllib.parse

from coil_harness import (CoilTestCase, Conn, Server, built_bin, main, parse_all, raw,
                          raw_until_eof, request, wait_until)

POLL = 10.0  # s: bound on every poll


def mwapp_bin():
    return built_bin("COIL_MWAPP", "tests", "coil_mwapp")


EINVAL, EBUSY, ENOENT = -22, -16, -2
FILTERED = b"[HELLO ][STREAM ][WORLD]<end>"
PLAIN_STREAM = b"hello stream world"
HEX16 = re.compile(r"^[0-9a-f]{16}$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")
GENERATED_ID = re.compile(r"^[0-9a-f]{12}-[0-9a-f]{1,3}-[0-9a-f]{10}$")


class MwCase(CoilTestCase):
    """Starts mwapp; helpers to ask it things."""

    def app(self, *args, workers=1, expect_exit=0):
        if not os.path.exists(mwapp_bin()):
            raise AssertionError("mwapp not found at %s (build it, or set COIL_MWAPP)"
                                 % mwapp_bin())
        srv = Server(["--workers", str(workers), "--drain-timeout", "5s"] + [str(a) for a in args],
                     program=mwapp_bin())
        self._servers.append(srv)
        self.addCleanup(self._stop_checked, srv, expect_exit)
        return srv

    def ask(self, srv, method, path, headers=(), body=None, version="HTTP/1.1"):
        """One request on a fresh connection that asks to be closed."""
        hdrs = list(headers) + ["Connection: close"]
        return raw(srv.port, request(method, path, body, hdrs, version),
                   head=(method == "HEAD"))[0]

    def counts(self, srv, tag=None):
        path = "/counts" + ("?tag=" + urllib.parse.quote(tag) if tag is not None else "")
        resp = self.ask(srv, "GET", path)
        self.assertEqual(resp.status, 200, resp)
        return json.loads(resp.body)

    def record(self, srv, tag):
        """The one done record of the request sent with X-Tag: tag (polled: done runs after the
        response is queued)."""
        recs = wait_until(lambda: self.counts(srv, tag)["records"], POLL,
                          what="the done record of %s" % tag)
        self.assertEqual(len(recs), 1, recs)
        return recs[0]

    def last_records(self, srv, n_before):
        """Records made since the done counter was n_before (waits for at least one)."""
        c = wait_until(lambda: (lambda c: c if c["done"] > n_before else None)(self.counts(srv)),
                       POLL, what="a done record")
        return c["records"][-(c["done"] - n_before):]

    def assertChain(self, resp, order, trace):
        """X-Order values in order (after steps) and the whole X-Trace A's after step saw."""
        self.assertEqual(resp.header_all("X-Order"), list(order), resp)
        self.assertEqual(resp.header_all("X-After"), ["1"], resp)
        self.assertEqual(resp.header_all("X-Trace"), [trace], resp)


# ---- order, early answers, failures ----------------------------------------------------------


class Order(MwCase):
    def test_before_after_done_order(self):
        srv = self.app()
        resp = self.ask(srv, "GET", "/r", ["X-Tag: order"])
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, b"ABRH", resp)  # before steps A, B, R, then the handler
        self.assertChain(resp, "rba", "ABRHrba")
        self.assertEqual(resp.header("X-Seen-Status"), "200", resp)
        self.assertEqual(resp.header("X-Seen-Len"), "4", resp)
        self.assertEqual(resp.header("X-Streamed"), "0", resp)
        rec = self.record(srv, "order")
        self.assertEqual(rec["done"], "RBA", rec)
        self.assertEqual(rec["trace"], "ABRHrba", rec)
        self.assertEqual((rec["status"], rec["route"], rec["path"], rec["complete"]),
                         (200, "/r", "/r", True), rec)

    def test_route_middleware_only_on_its_route(self):
        srv = self.app()
        resp = self.ask(srv, "GET", "/plain", ["X-Tag: plain"])
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.body, b"ABH", resp)
        self.assertChain(resp, "ba", "ABHba")
        self.assertIsNone(resp.header("X-Filter"), resp)  # /stream's F is not here
        self.assertEqual(self.record(srv, "plain")["done"], "BA")
        # and R is still on /r after a request to /plain, and /stream's steps are not
        resp = self.ask(srv, "GET", "/r")
        self.assertChain(resp, "rba", "ABRHrba")
        self.assertIsNone(resp.header("X-Filter"), resp)

    def test_registration_errors(self):
        srv = self.app()
        setup = self.counts(srv)["setup"]
        self.assertEqual(setup, {"route_use_missing": ENOENT, "app_use_empty": EINVAL,
                                 "app_use_null": EINVAL})

    def test_no_middleware_at_all(self):
        srv = self.app("--bare")
        resp = self.ask(srv, "GET", "/r")
        self.assertEqual((resp.status, resp.body), (200, b"H"), resp)
        for name in ("X-Order", "X-After", "X-Trace"):
            self.assertIsNone(resp.header(name), resp)
        self.assertRegex(resp.header("X-Request-ID") or "", GENERATED_ID)  # the built-in's
        self.assertEqual(self.ask(srv, "GET", "/nope").status, 404)
        resp = self.ask(srv, "GET", "/stream?mode=timer&len=1")
        self.assertEqual((resp.status, resp.body), (200, PLAIN_STREAM), resp)
        self.assertEqual(resp.header("Content-Length"), str(len(PLAIN_STREAM)), resp)
        c = self.counts(srv)
        self.assertEqual((c["done"], c["after"], c["records"]), (0, 0, []), c)
        self.assertEqual(c["handler"]["r"], 1, c)


class EarlyAnswer(MwCase):
    def test_block_in_each_step(self):
        srv = self.app()
        for letter, trace in (("A", "Arba"), ("B", "ABrba"), ("R", "ABRrba")):
            with self.subTest(step=letter):
                before = self.counts(srv)["handler"]["r"]
                tag = "block-" + letter
                resp = self.ask(srv, "GET", "/r", ["X-Block: " + letter, "X-Tag: " + tag])
                self.assertEqual(resp.status, 401, resp)
                self.assertEqual(resp.body, b"blocked by %s\n" % letter.encode(), resp)
                self.assertIsNone(resp.header("X-Handler"), resp)
                # later before steps did not run; every after step did
                self.assertChain(resp, "rba", trace)
                self.assertEqual(resp.header("X-Seen-Status"), "401", resp)
                rec = self.record(srv, tag)
                self.assertEqual((rec["done"], rec["status"], rec["complete"]),
                                 ("RBA", 401, True), rec)
                self.assertEqual(self.counts(srv)["handler"]["r"], before, "the handler ran")

    def test_block_without_a_route(self):
        # the app's before steps run for a path no route matches: B answers instead of the 404
        srv = self.app()
        resp = self.ask(srv, "GET", "/nope", ["X-Block: B"])
        self.assertEqual((resp.status, resp.body), (401, b"blocked by B\n"), resp)
        self.assertChain(resp, "ba", "ABba")

    def test_failing_step(self):
        srv = self.app()
        cases = (("B", [], 500, "ABrba"), ("A", ["X-Fail-Errno: ENOMEM"], 503, "Arba"),
                 ("R", ["X-Fail-Errno: ENOMEM"], 503, "ABRrba"), ("R", [], 500, "ABRrba"))
        for letter, extra, status, trace in cases:
            with self.subTest(step=letter, status=status):
                before = self.counts(srv)["handler"]["r"]
                tag = "fail-%s-%d" % (letter, status)
                resp = self.ask(srv, "GET", "/r", ["X-Fail: " + letter, "X-Tag: " + tag] + extra)
                self.assertEqual(resp.status, status, resp)
                self.assertChain(resp, "rba", trace)
                self.assertEqual(resp.header("X-Seen-Status"), str(status), resp)
                self.assertIsNone(resp.header("X-Handler"), resp)
                rec = self.record(srv, tag)
                self.assertEqual((rec["done"], rec["status"]), ("RBA", status), rec)
                self.assertEqual(self.counts(srv)["handler"]["r"], before, "the handler ran")


# ---- the engine's own answers -------------------------------------------------------------------


class EngineAnswers(MwCase):
    """Every after and done step (the app's: no route matched, or nothing could be parsed) runs
    for the answers the engine makes itself. One worker, so every record is on it, in order."""

    def setUp(self):
        self.srv = self.app("--header-timeout", "1s", "--handler-timeout", "1s",
                            "--max-body-bytes", "100")

    def check(self, resp, status, trace, order="ba"):
        self.assertEqual(resp.status, status, resp)
        self.assertChain(resp, order, trace)
        self.assertEqual(resp.header("X-Seen-Status"), str(status), resp)
        self.assertRegex(resp.header("X-Request-ID") or "", GENERATED_ID)

    def done_of(self, n_before, status, trace, path, route=""):
        recs = self.last_records(self.srv, n_before)
        self.assertEqual(len(recs), 1, recs)
        rec = recs[0]
        self.assertEqual((rec["status"], rec["trace"], rec["done"], rec["path"], rec["route"]),
                         (status, trace, "BA", path, route), rec)
        return rec

    def test_404(self):
        n = self.counts(self.srv)["done"]
        resp = self.ask(self.srv, "GET", "/nope")
        self.check(resp, 404, "ABba")
        self.done_of(n, 404, "ABba", "/nope")

    def test_405(self):
        n = self.counts(self.srv)["done"]
        resp = self.ask(self.srv, "POST", "/r", body=b"x")
        self.check(resp, 405, "ABba")
        self.assertTrue(resp.has_token("Allow", "GET"), resp)
        self.done_of(n, 405, "ABba", "/r")

    def test_400_garbage(self):
        n = self.counts(self.srv)["done"]
        res = raw_until_eof(self.srv.port, b"GARBAGE\r\n\r\n")
        self.assertEqual(len(res.responses), 1, res)
        # nothing was parsed: no before step ran, every after step did
        self.check(res.responses[0], 400, "ba")
        self.done_of(n, 400, "ba", "")

    def test_431_huge_header(self):
        n = self.counts(self.srv)["done"]
        conn = self.connect(self.srv)
        res = conn.send_until_closed(b"GET /r HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000
                                     + b"\r\n\r\n")
        self.assertEqual(len(res.responses), 1, res)
        self.check(res.responses[0], 431, "ba")
        self.done_of(n, 431, "ba", "")

    def test_413_body_over_limit(self):
        n = self.counts(self.srv)["done"]
        before = self.counts(self.srv)["handler"]["body"]
        res = raw_until_eof(self.srv.port, b"POST /body HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 1000\r\n\r\n")
        self.assertEqual(len(res.responses), 1, res)
        self.check(res.responses[0], 413, "ba")
        self.done_of(n, 413, "ba", "")
        self.assertEqual(self.counts(self.srv)["handler"]["body"], before)
        # and under the limit the same route answers, through the whole chain
        resp = self.ask(self.srv, "POST", "/body", body=b"x" * 100)
        self.assertEqual((resp.status, resp.body), (200, b"100"), resp)
        self.assertChain(resp, "ba", "ABHba")

    def test_408_partial_head(self):
        n = self.counts(self.srv)["done"]
        conn = self.connect(self.srv)
        conn.send(b"GET /r HTTP/1.1\r\nHost: x\r\n")  # the head never ends
        data, _ = conn.read_until_eof()
        responses, rest = parse_all(data)
        self.assertEqual((len(responses), rest), (1, b""), data)
        self.check(responses[0], 408, "ba")
        self.done_of(n, 408, "ba", "")

    def test_504_handler_timeout(self):
        n = self.counts(self.srv)["done"]
        aborts = self.counts(self.srv)["handler_aborts"]
        resp = self.ask(self.srv, "GET", "/never")
        self.check(resp, 504, "ABHba")
        rec = self.done_of(n, 504, "ABHba", "/never", "/never")
        self.assertTrue(rec["complete"], rec)  # a whole 504 was sent
        self.assertEqual(self.counts(self.srv)["handler_aborts"], aborts + 1)

    def test_step_waiting_past_handler_timeout(self):
        n = self.counts(self.srv)["done"]
        before = self.counts(self.srv)
        resp = self.ask(self.srv, "GET", "/r", ["X-Wait-B: hang"])
        self.check(resp, 504, "ABrba", "rba")
        recs = self.last_records(self.srv, n)
        self.assertEqual([(r["status"], r["done"]) for r in recs], [(504, "RBA")], recs)
        after = self.counts(self.srv)
        self.assertEqual(after["aborts"].get("B", 0), before["aborts"].get("B", 0) + 1, after)
        self.assertEqual(after["handler"]["r"], before["handler"]["r"], after)


# ---- deferred and streamed responses ------------------------------------------------------------


class Deferred(MwCase):
    def test_after_runs_once_at_the_finish(self):
        srv = self.app()
        before = self.counts(srv)
        resp = self.ask(srv, "GET", "/defer?ms=200", ["X-Tag: late"])
        self.assertEqual((resp.status, resp.body), (202, b"late 200\n"), resp)
        # the after steps saw the final status and body, and ran once
        self.assertChain(resp, "ba", "ABHba")
        self.assertEqual(resp.header("X-Seen-Status"), "202", resp)
        self.assertEqual(resp.header("X-Seen-Len"), str(len(resp.body)), resp)
        # not a request a before step deferred: coil_mw_next refuses it
        self.assertEqual(resp.header("X-Next"), str(EINVAL), resp)
        rec = self.record(srv, "late")
        self.assertEqual((rec["status"], rec["complete"], rec["done"]), (202, True, "BA"), rec)
        self.assertGreaterEqual(rec["duration_ns"], 200 * 1000 * 1000, rec)
        self.assertEqual(self.counts(srv)["after"], before["after"] + 1)

    def test_bytes_out_of_a_whole_response(self):
        srv = self.app()
        res = raw_until_eof(srv.port, request("GET", "/r", headers=["X-Tag: whole",
                                                                    "Connection: close"]))
        self.assertEqual(len(res.responses), 1, res)
        got = len(res.responses[0].head_bytes) + len(res.responses[0].body)
        rec = self.record(srv, "whole")
        self.assertEqual(rec["bytes_out"], got, rec)
        sent = len(request("GET", "/r", headers=["X-Tag: whole", "Connection: close"]))
        self.assertEqual(rec["bytes_in"], sent, rec)


class Streamed(MwCase):
    def stream_raw(self, srv, query, tag, extra=(), version="HTTP/1.1"):
        """The stream route on its own connection, read to the close: (response, raw bytes)."""
        data = request("GET", "/stream?" + query, headers=["X-Tag: " + tag, "Connection: close"]
                       + list(extra), version=version)
        conn = self.connect(srv)
        conn.send(data)
        got, _ = conn.read_until_eof()
        responses, rest = parse_all(got)
        self.assertEqual((len(responses), rest), (1, b""), got)
        return responses[0], got

    def test_filtered_stream(self):
        srv = self.app()
        calls = self.counts(srv)["filter_calls"]
        for mode in ("inline", "timer"):
            for length in (0, 1):
                with self.subTest(mode=mode, len=length):
                    tag = "s-%s-%d" % (mode, length)
                    resp, got = self.stream_raw(srv, "mode=%s&len=%d" % (mode, length), tag)
                    self.assertEqual((resp.status, resp.body), (200, FILTERED), resp)
                    # a filter drops the declared length: chunked
                    self.assertEqual(resp.header("Transfer-Encoding"), "chunked", resp)
                    self.assertIsNone(resp.header("Content-Length"), resp)
                    # the after steps ran at coil_res_stream, before any piece
                    self.assertChain(resp, "tba", "ABTHtba")
                    self.assertEqual(resp.header("X-Streamed"), "1", resp)
                    self.assertEqual(resp.header("X-Seen-Len"), "0", resp)
                    self.assertEqual(resp.header("X-Filter"), "0", resp)
                    self.assertEqual(resp.header("X-Filter-Again"), str(EBUSY), resp)
                    self.assertEqual(resp.header("X-Emit-Outside"), str(EINVAL), resp)
                    rec = self.record(srv, tag)
                    self.assertEqual((rec["status"], rec["complete"], rec["done"]),
                                     (200, True, "TBA"), rec)
                    self.assertEqual(rec["bytes_out"], len(got), rec)
                    # three pieces and the end
                    self.assertEqual(self.counts(srv)["filter_calls"], calls + 4)
                    calls += 4

    def test_unfiltered_stream_keeps_its_length(self):
        # the control for the above: without the filter the declared length is the framing
        srv = self.app()
        resp, got = self.stream_raw(srv, "mode=timer&len=1", "nof", ["X-No-Filter: 1"])
        self.assertEqual((resp.status, resp.body), (200, PLAIN_STREAM), resp)
        self.assertEqual(resp.header("Content-Length"), str(len(PLAIN_STREAM)), resp)
        self.assertIsNone(resp.header("Transfer-Encoding"), resp)
        self.assertEqual(self.record(srv, "nof")["bytes_out"], len(got))

    def test_filtered_stream_http10(self):
        srv = self.app()
        resp, got = self.stream_raw(srv, "mode=timer&len=1", "s10", version="HTTP/1.0")
        self.assertEqual((resp.status, resp.body), (200, FILTERED), resp)
        self.assertIsNone(resp.header("Content-Length"), resp)  # close-delimited
        self.assertIsNone(resp.header("Transfer-Encoding"), resp)
        self.assertEqual(self.record(srv, "s10")["bytes_out"], len(got))

    def test_head_sends_headers_only(self):
        srv = self.app()
        for mode in ("inline", "timer"):
            with self.subTest(mode=mode):
                tag = "head-" + mode
                calls = self.counts(srv)["filter_calls"]
                conn = self.connect(srv)
                resp = conn.request("HEAD", "/stream?mode=%s&len=1" % mode,
                                    headers=["X-Tag: " + tag])
                self.assertEqual((resp.status, resp.body), (200, b""), resp)
                self.assertChain(resp, "tba", "ABTHtba")
                # nothing followed the head: the next answer on the connection parses
                nxt = conn.request("GET", "/plain")
                self.assertEqual((nxt.status, nxt.body), (200, b"ABH"), nxt)
                rec = self.record(srv, tag)
                self.assertEqual((rec["status"], rec["complete"]), (200, True), rec)
                self.assertEqual(rec["bytes_out"], len(resp.head_bytes), rec)
                self.assertEqual(resp.header("X-Filter"), "0", resp)  # set, yet never called
                self.assertEqual(self.counts(srv)["filter_calls"], calls)

    def test_failing_filter_cuts_the_response(self):
        srv = self.app()
        for mode in ("inline", "timer"):
            with self.subTest(mode=mode):
                tag = "ffail-" + mode
                res = raw_until_eof(srv.port, request(
                    "GET", "/stream?mode=" + mode,
                    headers=["X-Tag: " + tag, "X-Filter-Fail: 1", "Connection: close"]))
                # the client must see a body cut short, never a complete response
                self.assertEqual(res.responses, [], res)
                self.assertTrue(res.rest.startswith(b"HTTP/1.1 200 "), res)
                self.assertIn(b"[HELLO ]", res.rest)
                self.assertNotIn(b"[STREAM ]", res.rest)
                self.assertFalse(res.rest.endswith(b"0\r\n\r\n"), res)
                rec = self.record(srv, tag)
                self.assertEqual((rec["status"], rec["complete"]), (200, False), rec)


# ---- coil_mw_next -------------------------------------------------------------------------------


class Next(MwCase):
    def test_next_runs_the_rest(self):
        srv = self.app()
        before = self.counts(srv)
        resp = self.ask(srv, "GET", "/r", ["X-Wait-B: next", "X-Tag: next"])
        self.assertEqual((resp.status, resp.body), (200, b"ABRH"), resp)
        self.assertChain(resp, "rba", "ABRHrba")
        self.assertEqual(resp.header("X-Next-Inside"), str(EINVAL), resp)  # from the step
        self.assertIsNone(resp.header("X-Next"), resp)  # answered inside coil_mw_next
        rec = self.record(srv, "next")
        self.assertEqual((rec["status"], rec["complete"], rec["done"]), (200, True, "RBA"), rec)
        after = self.counts(srv)
        self.assertEqual(after["handler"]["r"], before["handler"]["r"] + 1)
        self.assertEqual(after["next"]["ok"], before["next"]["ok"] + 1)
        self.assertEqual(after["next"]["einval"], before["next"]["einval"] + 1)

    def test_next_from_the_first_step(self):
        srv = self.app()
        resp = self.ask(srv, "GET", "/r", ["X-Wait-A: next"])
        self.assertEqual((resp.status, resp.body), (200, b"ABRH"), resp)
        self.assertChain(resp, "rba", "ABRHrba")

    def test_handler_defers_again(self):
        srv = self.app()
        before = self.counts(srv)
        resp = self.ask(srv, "GET", "/r", ["X-Wait-B: next", "X-Handler-Defer: 100",
                                           "X-Next-Twice: 1", "X-Tag: again"])
        self.assertEqual((resp.status, resp.body), (200, b"ABRH"), resp)
        self.assertEqual(resp.header("X-Same-Handle"), "1", resp)
        self.assertEqual(resp.header("X-Next"), "0", resp)
        self.assertEqual(resp.header("X-Next-Again"), str(EINVAL), resp)  # continued already
        self.assertChain(resp, "rba", "ABRHrba")
        rec = self.record(srv, "again")
        self.assertEqual((rec["status"], rec["complete"], rec["done"]), (200, True, "RBA"), rec)
        self.assertGreaterEqual(rec["duration_ns"], (30 + 100) * 1000 * 1000, rec)
        after = self.counts(srv)
        self.assertEqual(after["next"]["ok"], before["next"]["ok"] + 1)
        self.assertEqual(after["next"]["einval"], before["next"]["einval"] + 2)

    def test_two_steps_wait_in_turn(self):
        srv = self.app()
        before = self.counts(srv)
        resp = self.ask(srv, "GET", "/r", ["X-Wait-B: next", "X-Wait-R: next", "X-Tag: two"])
        self.assertEqual((resp.status, resp.body), (200, b"ABRH"), resp)
        self.assertChain(resp, "rba", "ABRHrba")
        self.assertEqual(self.record(srv, "two")["done"], "RBA")
        after = self.counts(srv)
        self.assertEqual(after["next"]["ok"], before["next"]["ok"] + 2)
        self.assertEqual(after["handler"]["r"], before["handler"]["r"] + 1)

    def test_later_step_answers_after_next(self):
        srv = self.app()
        before = self.counts(srv)["handler"]["r"]
        resp = self.ask(srv, "GET", "/r", ["X-Wait-A: next", "X-Block: R"])
        self.assertEqual((resp.status, resp.body), (401, b"blocked by R\n"), resp)
        self.assertChain(resp, "rba", "ABRrba")
        resp = self.ask(srv, "GET", "/r", ["X-Wait-B: next", "X-Fail: R"])
        self.assertEqual(resp.status, 500, resp)
        self.assertChain(resp, "rba", "ABRrba")
        resp = self.ask(srv, "GET", "/r", ["X-Wait-B: next", "X-Fail: R",
                                           "X-Fail-Errno: ENOMEM"])
        self.assertEqual(resp.status, 503, resp)
        self.assertEqual(self.counts(srv)["handler"]["r"], before)

    def test_continued_handler_streams(self):
        # after coil_mw_next the handler streams: inline (inside coil_mw_next) or from timers
        srv = self.app()
        for mode in ("inline", "timer"):
            with self.subTest(mode=mode):
                tag = "nstream-" + mode
                conn = self.connect(srv)
                conn.send(request("GET", "/stream?len=1&mode=" + mode,
                                  headers=["X-Wait-T: next", "X-Tag: " + tag,
                                           "Connection: close"]))
                got, _ = conn.read_until_eof()
                responses, rest = parse_all(got)
                self.assertEqual((len(responses), rest), (1, b""), got)
                resp = responses[0]
                self.assertEqual((resp.status, resp.body), (200, FILTERED), resp)
                self.assertChain(resp, "tba", "ABTHtba")
                rec = self.record(srv, tag)
                self.assertEqual((rec["status"], rec["complete"], rec["done"]),
                                 (200, True, "TBA"), rec)
                self.assertEqual(rec["bytes_out"], len(got), rec)

    def test_pipelined_behind_a_waiting_step(self):
        srv = self.app()
        conn = self.connect(srv)
        conn.send(request("GET", "/r", headers=["X-Wait-B: next"])
                  + request("GET", "/plain")
                  + request("GET", "/r", headers=["X-Wait-R: self"])
                  + request("GET", "/r", headers=["X-Wait-A: next", "X-Block: B"])
                  + request("GET", "/r", headers=["X-Wait-B: next", "X-Handler-Defer: 20"]))
        got = [conn.read_response() for _ in range(5)]
        self.assertEqual([(r.status, r.body) for r in got],
                         [(200, b"ABRH"), (200, b"ABH"), (203, b"answered by R\n"),
                          (401, b"blocked by B\n"), (200, b"ABRH")], got)
        self.assertEqual([r.header("X-Trace") for r in got],
                         ["ABRHrba", "ABHba", "ABRrba", "ABrba", "ABRHrba"], got)

    def test_step_answers_itself(self):
        srv = self.app()
        before = self.counts(srv)
        resp = self.ask(srv, "GET", "/r", ["X-Wait-B: self", "X-Tag: self"])
        self.assertEqual((resp.status, resp.body), (203, b"answered by B\n"), resp)
        self.assertChain(resp, "rba", "ABrba")
        self.assertEqual(resp.header("X-Seen-Status"), "203", resp)
        rec = self.record(srv, "self")
        self.assertEqual((rec["status"], rec["complete"], rec["done"]), (203, True, "RBA"), rec)
        after = self.counts(srv)
        self.assertEqual(after["handler"]["r"], before["handler"]["r"])
        self.assertEqual(after["next"]["ok"], before["next"]["ok"])

    def test_client_leaves_while_a_step_waits(self):
        srv = self.app()
        before = self.counts(srv)
        conn = Conn(srv.port)
        conn.send(request("GET", "/r", headers=["X-Wait-B: hang", "X-Tag: gone"]))
        wait_until(lambda: self.counts(srv)["waiting"] == 1, POLL, what="the step to wait")
        conn.close()
        rec = self.record(srv, "gone")
        self.assertEqual((rec["status"], rec["complete"], rec["done"]), (0, False, "RBA"), rec)
        after = self.counts(srv)
        self.assertEqual(after["aborts"].get("B", 0), before["aborts"].get("B", 0) + 1, after)
        self.assertEqual(after["handler"]["r"], before["handler"]["r"], after)
        self.assertEqual(after["waiting"], 0, after)
        # the server goes on; on_abort did not run twice
        self.assertEqual(self.ask(srv, "GET", "/r").status, 200)
        self.assertEqual(self.counts(srv)["aborts"].get("B", 0), before["aborts"].get("B", 0) + 1)

    def test_client_leaves_while_the_continued_handler_waits(self):
        srv = self.app()
        before = self.counts(srv)
        conn = Conn(srv.port)
        conn.send(request("GET", "/r", headers=["X-Wait-B: next", "X-Handler-Defer: 10000",
                                                "X-Tag: gone2"]))
        wait_until(lambda: self.counts(srv)["handler"]["r"] == before["handler"]["r"] + 1, POLL,
                   what="the handler to run")
        conn.close()
        rec = self.record(srv, "gone2")
        self.assertEqual((rec["status"], rec["complete"]), (0, False), rec)
        after = self.counts(srv)
        # the handler took the request over: its on_abort ran, not the step's
        self.assertEqual(after["handler_aborts"], before["handler_aborts"] + 1, after)
        self.assertEqual(after["aborts"].get("B", 0), before["aborts"].get("B", 0), after)

    def test_many_waiting_steps_on_two_workers(self):
        # a mix of waits, continues, self-answers and clients leaving: nothing leaks (ASan)
        srv = self.app(workers=2)
        conns = []
        for i in range(40):
            mode = ("next", "self", "hang")[i % 3]
            c = Conn(srv.port)
            c.send(request("GET", "/r", headers=["X-Wait-%s: %s" % ("AB"[i % 2], mode)]))
            conns.append((mode, c))
        for mode, c in conns:
            if mode == "hang":
                continue
            resp = c.read_response()
            self.assertEqual(resp.status, 200 if mode == "next" else 203, resp)
        for _, c in conns:
            c.close()
        hangs = sum(1 for m, _ in conns if m == "hang")
        wait_until(lambda: sum(self.counts(srv)["aborts"].values()) == hangs, POLL,
                   what="every hanging step's on_abort")


# ---- reading and amending the response ---------------------------------------------------------


class Amend(MwCase):
    def test_rewrite_text(self):
        srv = self.app()
        resp = self.ask(srv, "GET", "/rewrite")
        self.assertEqual((resp.status, resp.body), (200, b"rewritten(original)"), resp)
        self.assertStandardHeaders(resp, len(resp.body))
        self.assertIsNone(resp.header("X-Secret"), resp)
        # the rest of the handler's headers are there once each, in their order
        names = [k for k, _ in resp.headers]
        self.assertEqual([n for n in names if n in ("X-Handler", "X-Keep", "Content-Type")],
                         ["X-Keep", "Content-Type"], resp)
        self.assertEqual(resp.header("X-Keep"), "k", resp)
        self.assertEqual(resp.header("X-Keep-Seen"), "k", resp)
        self.assertEqual(resp.header("X-Removed"), "1", resp)
        self.assertEqual(resp.header("X-Removed-None"), "0", resp)
        self.assertEqual(resp.header("X-Filter-Whole"), str(EINVAL), resp)
        # A's after step (outside W's) sees W's body
        self.assertEqual(resp.header("X-Seen-Len"), str(len(resp.body)), resp)
        self.assertChain(resp, "ba", "ABHba")

    def test_rewrite_json(self):
        srv = self.app()
        resp = self.ask(srv, "GET", "/rewrite?json=1")
        self.assertEqual((resp.status, resp.body), (200, b'rewritten({"v":"original"})'), resp)
        self.assertEqual(resp.header("Content-Type"), "application/json", resp)
        self.assertEqual(resp.header("Content-Length"), str(len(resp.body)), resp)
        self.assertIsNone(resp.header("X-Secret"), resp)


# ---- request IDs and trace context --------------------------------------------------------------


class RequestId(MwCase):
    def id_of(self, srv, value=None):
        resp = self.ask(srv, "GET", "/id", ["X-Request-ID: " + value] if value is not None else [])
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(len(resp.header_all("X-Request-ID")), 1, resp)
        self.assertEqual(resp.header("X-Request-ID").encode(), resp.body, resp)
        return resp.body.decode()

    def test_valid_ids_echoed(self):
        srv = self.app()
        for value in ("abc", "Az09._:-", "x" * 128, "7f3c-11ee.b:Z_q"):
            with self.subTest(value=value):
                self.assertEqual(self.id_of(srv, value), value)

    def test_bad_ids_replaced(self):
        srv = self.app()
        for value in ("x" * 129, "abc/def", "a b", "caf\xe9", "a,b", "{x}", ""):
            with self.subTest(value=value):
                got = self.id_of(srv, value)
                self.assertNotEqual(got, value)
                self.assertRegex(got, GENERATED_ID)

    def test_generated_ids_unique_across_workers(self):
        srv = self.app(workers=2)
        ids, workers = [], set()
        per_conn = 100
        for _ in range(20):
            conn = Conn(srv.port)
            try:
                conn.send(b"".join(request("GET", "/id") for _ in range(per_conn)))
                for _ in range(per_conn):
                    resp = conn.read_response()
                    self.assertEqual(resp.status, 200, resp)
                    self.assertEqual(resp.header("X-Request-ID").encode(), resp.body, resp)
                    ids.append(resp.body.decode())
                    workers.add(resp.header("X-Worker"))
            finally:
                conn.close()
        self.assertEqual(len(ids), 2000)
        self.assertEqual(len(set(ids)), 2000, "duplicate generated request IDs")
        for i in ids:
            self.assertRegex(i, GENERATED_ID)
        self.assertEqual(workers, {"0", "1"}, "both workers answered")
        self.assertEqual(len({i.split("-")[0] for i in ids}), 1, "one process prefix")

    def test_off(self):
        srv = self.app("--request-id", "off")
        resp = self.ask(srv, "GET", "/id", ["X-Request-ID: mine"])
        self.assertIsNone(resp.header("X-Request-ID"), resp)
        self.assertEqual(resp.body, b"mine", resp)  # the handler can still read it
        resp = self.ask(srv, "GET", "/nope")
        self.assertIsNone(resp.header("X-Request-ID"), resp)

    def test_bad_option(self):
        out = subprocess.run([mwapp_bin(), "--request-id", "maybe", "--port", "0"],
                             stdin=subprocess.DEVNULL, capture_output=True, timeout=POLL)
        self.assertEqual(out.returncode, 2, out)


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
STATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


class Trace(MwCase):
    def trace_of(self, srv, *headers):
        resp = self.ask(srv, "GET", "/trace", list(headers))
        self.assertEqual(resp.status, 200, resp)
        t = json.loads(resp.body)
        self.assertTrue(t["same"], t)
        self.assertRegex(t["span_id"], HEX16)
        self.assertNotEqual(t["span_id"], "0" * 16, t)
        self.assertRegex(t["trace_id"], HEX32)
        self.assertNotEqual(t["trace_id"], "0" * 32, t)
        self.assertEqual(t["peer"], "127.0.0.1", t)
        return t

    def test_valid_traceparent_continued(self):
        srv = self.app()
        spans = set()
        for flags in ("01", "00"):
            t = self.trace_of(srv, "traceparent: 00-%s-%s-%s" % (TRACE, PARENT, flags),
                              "tracestate: " + STATE)
            self.assertEqual((t["trace_id"], t["parent_id"], t["flags"], t["tracestate"]),
                             (TRACE, PARENT, int(flags, 16), STATE), t)
            self.assertNotEqual(t["span_id"], PARENT, t)
            spans.add(t["span_id"])
        self.assertEqual(len(spans), 2, "a new span per request")

    def test_later_version_with_more_fields(self):
        srv = self.app()
        t = self.trace_of(srv, "traceparent: cc-%s-%s-01-what-comes-next" % (TRACE, PARENT))
        self.assertEqual((t["trace_id"], t["parent_id"]), (TRACE, PARENT), t)

    def test_invalid_traceparent_starts_a_trace(self):
        srv = self.app()
        bad = {
            "version ff": "ff-%s-%s-01" % (TRACE, PARENT),
            "zero trace": "00-%s-%s-01" % ("0" * 32, PARENT),
            "zero parent": "00-%s-%s-01" % (TRACE, "0" * 16),
            "upper hex": "00-%s-%s-01" % (TRACE.upper(), PARENT),
            "short trace": "00-%s-%s-01" % (TRACE[:-1], PARENT),
            "long for 00": "00-%s-%s-01-x" % (TRACE, PARENT),
            "no dashes": "00%s%s01" % (TRACE, PARENT),
            "bad flags": "00-%s-%s-0g" % (TRACE, PARENT),
            "garbage": "hello",
        }
        traces = set()
        for what, value in bad.items():
            with self.subTest(what):
                t = self.trace_of(srv, "traceparent: " + value, "tracestate: " + STATE)
                self.assertNotEqual(t["trace_id"], TRACE, t)
                self.assertNotEqual(t["trace_id"], TRACE.upper(), t)
                self.assertEqual((t["parent_id"], t["flags"], t["tracestate"]), ("", 0, ""), t)
                traces.add(t["trace_id"])
        self.assertEqual(len(traces), len(bad), "a new trace each time")

    def test_no_traceparent(self):
        srv = self.app()
        a, b = self.trace_of(srv), self.trace_of(srv, "tracestate: " + STATE)
        self.assertNotEqual(a["trace_id"], b["trace_id"])
        self.assertEqual((a["parent_id"], b["parent_id"], b["tracestate"]), ("", "", ""))


if __name__ == "__main__":
    main()
