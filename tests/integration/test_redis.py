# SPDX-License-Identifier: MIT
"""The Redis client (coil_redis.h) through cacheapp (tests/integration/cacheapp.c says what each
route does) against real redis-servers (tools/services.py), and the demo's crud item cache on
Redis (handlers/db.c with --redis-url) against a real PostgreSQL.

Checked: GET, SET with and without PX, DEL; binary keys and values (NUL, CRLF, RESP-looking bytes,
every byte value, 300 KB); every reply type (status, string, nil, integer, arrays nested with nils
inside, error replies: WRONGTYPE, unknown command, a script's own error); commands of more than 16
arguments; argv from a request body; the URL from --redis-url, COIL_REDIS_URL or REDIS_URL (in that
order), a database number, bad URLs refused at start (exit 2); not configured: -ENOTCONN (503);
replies in the order sent (2000 INCRs from one handler) and many concurrent clients each getting
their own reply; max_pending (-EBUSY); fire-and-forget (no callback) and no owner request; Redis
stopped: commands fail at once with -ENOTCONN (never a timeout), readiness (with the gate) drops,
and they work again once it is back (a bounded poll: the backoff reaches 5 s); Redis absent at
start-up; the command timeout: the slow command fails with -ETIMEDOUT, those behind it with
-ECONNRESET, then it recovers; clients closing while their commands wait in Redis (the replies are
dropped; callbacks without an owner find their request gone), and SIGTERM with commands in flight;
AUTH with a password (and user:password, and '@', ':', '/' inside it), a wrong password logged and
answered with Redis' NOAUTH errors; commands that break one reply per command on the shared
connection (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR, UNSUBSCRIBE, CLIENT REPLY SKIP) must leave
the worker serving every other request its own reply (ReplyStream: fails today, see there). The
demo: MISS then HIT on new connections, across workers and across two processes sharing Redis; PUT
and POST answered after the DEL (the next GET is a MISS with the new row); Redis down: every answer
200 with X-Cache: MISS, no 5xx, then HITs again once it is back.

Waits are bounded polls; nothing asserts how long anything took. Exit 77 (skip) when redis-server
is not installed.
"""

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

from coil_harness import Conn, conns_by_worker, main, request, wait_until
from test_cache import CacheAppCase, cacheapp_bin, item_json, postgres, q, services
import test_cache

RECONNECT = 30.0  # s: bound on waiting for a reconnect (backoff up to 5 s, plus jitter)
POLL = 10.0


# ---- a raw RESP client, to look at Redis from the side ----------------------------------------

class RedisError(Exception):
    pass


def _encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def _read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RedisError("connection closed: %r" % line)
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read(f) for _ in range(n)]
    raise RedisError("bad reply line %r" % line)


def rcall(port, *args, password=None, db=None, timeout=10.0):
    """One command on a new connection (after AUTH and SELECT if given); returns the reply (a
    RedisError instance for an error reply)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        f = s.makefile("rb")
        if password is not None:
            s.sendall(_encode(["AUTH", password]))
            r = _read(f)
            if isinstance(r, RedisError):
                raise r
        if db is not None:
            s.sendall(_encode(["SELECT", db]))
            _read(f)
        s.sendall(_encode(list(args)))
        return _read(f)


class RedisCase(CacheAppCase):
    def redis(self, password=None, start=True):
        """A throwaway redis-server (stopped when the test ends); with password, requirepass."""
        rd = services.RedisServer()
        if start:
            rd.start()
        else:
            rd.port = services.free_port()
            rd.dir = None
        self.addCleanup(self._stop_redis, rd)
        if password is not None:
            self.assertEqual(rcall(rd.port, "CONFIG", "SET", "requirepass", password), "OK")
        return rd

    @staticmethod
    def _stop_redis(rd):
        try:
            rd.stop()
        except services.ServiceError:
            pass

    def start_redis_later(self, rd):
        """Starts a RedisServer made with start=False on its port."""
        rd.dir, rd._created = services._make_dir(None, "coil-redis-")
        rd.binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        rd.start_server()

    def app_on(self, rd_or_url, *args, workers=2, wait_ready=True, env=None):
        url = rd_or_url if isinstance(rd_or_url, str) else rd_or_url.url
        srv = self.app("--redis-url", url, *args, workers=workers, env=env)
        if wait_ready:
            self.wait_ready(srv)
        return srv

    def state(self, srv):
        c = Conn(srv.port)
        try:
            r = c.request("GET", "/redis/state", headers=["Connection: close"])
        finally:
            c.close()
        self.assertEqual(r.status, 200, r)
        return json.loads(r.body)

    def wait_ready(self, srv, timeout=RECONNECT):
        wait_until(lambda: self.state(srv)["ready"], timeout, 0.05,
                   "every worker's Redis connection to be up")

    # ---- routes: (status, doc)

    def call(self, conn, method, path, body=None):
        if conn is None or isinstance(conn, int):
            c = Conn(conn if isinstance(conn, int) else self.srv.port)
            try:
                r = c.request(method, path, body=body, headers=["Connection: close"])
            finally:
                c.close()
        else:
            r = conn.request(method, path, body=body)
        try:
            doc = json.loads(r.body)
        except ValueError:
            self.fail("not JSON: %r" % r)
        if "worker" in doc:
            self.assertEqual(doc["worker"], self.worker_of(r), r)
        return r.status, doc

    def cmd(self, conn, *args, **flags):
        query = [("a%d" % i, a if isinstance(a, bytes) else str(a).encode())
                 for i, a in enumerate(args)]
        query += [(k, str(v)) for k, v in flags.items()]
        return self.call(conn, "GET", "/redis/cmd?" + urllib.parse.urlencode(query))

    def rget(self, conn, key):
        return self.call(conn, "GET", "/redis/get/" + q(key))

    def rset(self, conn, key, value, px=None):
        path = "/redis/set/" + q(key) + ("?px=%d" % px if px is not None else "")
        return self.call(conn, "PUT", path, body=value if isinstance(value, bytes)
                         else value.encode())

    def rdel(self, conn, key):
        return self.call(conn, "DELETE", "/redis/del/" + q(key))

    # ---- what a reply must be

    def answered(self, got, type_, **fields):
        """got = (status, doc): Redis answered with this type (and fields); returns doc."""
        status, doc = got
        self.assertEqual((status, doc["rc"], doc["error"]), (200, 0, None), doc)
        self.assertEqual(doc["type"], type_, doc)
        for k, v in fields.items():
            self.assertEqual(doc[k], v, doc)
        return doc

    def ok(self, got):
        return self.answered(got, "status", str="OK")

    def string(self, got, value):
        value = value if isinstance(value, bytes) else value.encode()
        doc = self.answered(got, "string")
        self.assertEqual((doc["len"], doc["hex"]), (len(value), value[:256].hex()), doc)
        return doc

    def failed(self, got, error):
        """The command was sent and failed (502 with error set)."""
        status, doc = got
        self.assertEqual((status, doc["rc"], doc["error"]), (502, 0, error), doc)
        self.assertTrue(doc["message"], doc)
        return doc

    def refused(self, got, rc):
        """coil_redis_command failed at once."""
        status, doc = got
        self.assertEqual((status, doc["rc"]), (503 if rc in ("ENOTCONN", "EBUSY") else 500, rc),
                         doc)
        self.assertNotIn("error", doc)
        return doc


# ---- commands and replies -------------------------------------------------------------------

class Commands(RedisCase):
    def setUp(self):
        self.rd = self.redis()
        self.srv = self.app_on(self.rd)
        self.w = self.pinned(self.srv)

    def test_set_get_del(self):
        c = self.w[0]
        self.answered(self.rget(c, "k"), "nil")
        self.ok(self.rset(c, "k", "v1"))
        self.string(self.rget(c, "k"), "v1")
        self.string(self.rget(self.w[1], "k"), "v1")  # one Redis behind every worker
        self.ok(self.rset(self.w[1], "k", "v2, longer"))
        self.string(self.rget(c, "k"), "v2, longer")
        self.assertEqual(rcall(self.rd.port, "GET", "k"), b"v2, longer")
        self.answered(self.rdel(c, "k"), "integer", integer=1)
        self.answered(self.rdel(c, "k"), "integer", integer=0)
        self.answered(self.rget(c, "k"), "nil")
        self.assertIsNone(rcall(self.rd.port, "GET", "k"))
        self.assertAppClean(self.srv)

    def test_set_px_expires_and_plain_set_does_not(self):
        c = self.w[0]
        self.ok(self.rset(c, "plain", "forever"))
        self.answered(self.cmd(c, "PTTL", "plain"), "integer", integer=-1)
        self.ok(self.rset(c, "brief", "soon gone", px=150))
        pttl = self.answered(self.cmd(c, "PTTL", "brief"), "integer")["integer"]
        self.assertTrue(pttl == -2 or 0 < pttl <= 150, pttl)  # -2: expired already
        wait_until(lambda: self.rget(c, "brief")[1].get("type") == "nil", POLL, 0.02,
                   "the PX 150 key to expire")
        self.ok(self.rset(c, "long", "v", px=600000))
        pttl = self.answered(self.cmd(c, "PTTL", "long"), "integer")["integer"]
        self.assertTrue(0 < pttl <= 600000, pttl)
        self.ok(self.rset(c, "long", "v", px=0))  # 0: no expiry
        self.answered(self.cmd(c, "PTTL", "long"), "integer", integer=-1)

    def test_binary_keys_and_values(self):
        c = self.w[1]
        values = [
            b"",
            b"\x00",
            b"a\x00b\r\nc",
            b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n",  # RESP inside a value stays a value
            bytes(range(256)),
            b"\r\n" * 1000,
        ]
        for i, v in enumerate(values):
            key = b"bin\x00\r\n%d" % i
            self.ok(self.rset(c, key, v))
            self.string(self.rget(c, key), v)
            self.assertEqual(rcall(self.rd.port, "GET", key), v)
        self.assertIsNone(rcall(self.rd.port, "GET", "x"), "a value's bytes ran as a command")
        big = bytes((i * 7 + 3) % 256 for i in range(300000))
        self.ok(self.rset(c, "big", big))
        self.string(self.rget(self.w[0], "big"), big)
        self.assertEqual(rcall(self.rd.port, "GET", "big"), big)
        self.answered(self.cmd(c, "GETRANGE", "big", 299990, -1), "string")
        # binary arguments of any command, through the query
        self.answered(self.cmd(c, "HSET", b"h\x00", b"f\r\n", b"\x00v"), "integer", integer=1)
        self.string(self.cmd(c, "HGET", b"h\x00", b"f\r\n"), b"\x00v")

    def test_reply_types(self):
        c = self.w[0]
        self.answered(self.cmd(c, "PING"), "status", str="PONG")
        self.string(self.cmd(c, "ECHO", "hello"), "hello")
        self.answered(self.cmd(c, "INCR", "n"), "integer", integer=1)
        self.answered(self.cmd(c, "INCRBY", "n", 2 ** 62), "integer", integer=2 ** 62 + 1)
        self.answered(self.cmd(c, "DECRBY", "m", 5), "integer", integer=-5)
        self.answered(self.cmd(c, "RPUSH", "l", "a", "", "c"), "integer", integer=3)
        doc = self.answered(self.cmd(c, "LRANGE", "l", 0, -1), "array")
        self.assertEqual([(e["type"], e["str"]) for e in doc["elements"]],
                         [("string", "a"), ("string", ""), ("string", "c")], doc)
        self.assertEqual(self.answered(self.cmd(c, "LRANGE", "none", 0, -1), "array")["elements"],
                         [])
        doc = self.answered(self.cmd(c, "MGET", "l", "nope", "n"), "array")
        self.assertEqual([e["type"] for e in doc["elements"]], ["nil", "nil", "string"], doc)
        # nested arrays, an integer and a nil inside (Lua false is a nil reply)
        doc = self.answered(self.cmd(c, "EVAL", "return {1, {'a', {2, false}}, 'x'}", 0), "array")
        e = doc["elements"]
        self.assertEqual((e[0]["type"], e[0]["integer"]), ("integer", 1), doc)
        self.assertEqual(e[1]["type"], "array", doc)
        self.assertEqual((e[1]["elements"][0]["type"], e[1]["elements"][0]["str"]),
                         ("string", "a"), doc)
        inner = e[1]["elements"][1]
        self.assertEqual([x["type"] for x in inner["elements"]], ["integer", "nil"], doc)
        self.assertEqual(e[2]["str"], "x", doc)
        # error replies are answers, not failures
        doc = self.answered(self.cmd(c, "GET", "l"), "error")
        self.assertTrue(doc["str"].startswith("WRONGTYPE"), doc)
        doc = self.answered(self.cmd(c, "NOSUCHCOMMAND", "x"), "error")
        self.assertTrue(doc["str"].startswith("ERR unknown command"), doc)
        doc = self.answered(self.cmd(c, "GET"), "error")
        self.assertIn("wrong number of arguments", doc["str"], doc)
        doc = self.answered(self.cmd(c, "EVAL", "return redis.error_reply('MYERR boom')", 0),
                            "error")
        self.assertEqual(doc["str"], "MYERR boom", doc)
        doc = self.answered(self.cmd(c, "INCR", "l"), "error")
        # and the connection goes on after them
        self.answered(self.cmd(c, "PING"), "status", str="PONG")
        self.assertAppClean(self.srv)

    def test_many_arguments_and_body_lines(self):
        c = self.w[1]
        args = ["MSET"]
        for i in range(40):  # 81 arguments: past the 16 kept on the stack
            args += ["k%d" % i, "value %d" % i]
        self.ok(self.cmd(c, *args))
        doc = self.answered(self.cmd(c, "MGET", *["k%d" % i for i in range(40)]), "array")
        self.assertEqual([e["str"] for e in doc["elements"]], ["value %d" % i for i in range(40)])
        self.ok(self.call(c, "POST", "/redis/cmd", body=b"SET\nline key\nline value\n"))
        self.string(self.call(c, "POST", "/redis/cmd", body=b"GET\nline key"), "line value")
        self.assertEqual(rcall(self.rd.port, "GET", "line key"), b"line value")

    def test_no_owner_and_fire_and_forget(self):
        c = self.w[0]
        self.ok(self.cmd(c, "SET", "o", "no owner", owner=0))
        self.string(self.cmd(c, "GET", "o", owner=0), "no owner")
        status, doc = self.cmd(c, "SET", "fired", "and forgotten", fire=1)
        self.assertEqual((status, doc["rc"]), (202, 0), doc)
        wait_until(lambda: rcall(self.rd.port, "GET", "fired") == b"and forgotten", POLL,
                   what="the fire-and-forget SET")
        for i in range(50):
            self.cmd(c, "RPUSH", "fired-list", i, fire=1)
        self.string(self.cmd(c, "LINDEX", "fired-list", 49), "49")  # the same FIFO: after them
        self.assertEqual(rcall(self.rd.port, "LLEN", "fired-list"), 50)
        st = self.assertAppClean(self.srv)
        self.assertEqual(st["gone"], 0, st)

    def test_replies_in_the_order_sent(self):
        c = self.w[1]
        status, doc = self.call(c, "GET", "/redis/burst?n=2000&cmd=INCR")
        self.assertEqual((status, doc["sync"]), (200, []), doc)
        got = [r["integer"] for r in doc["replies"]]
        self.assertEqual(got, list(range(1, 2001)))
        status, doc = self.call(self.w[0], "GET", "/redis/burst?n=500&cmd=INCR")
        self.assertEqual([r["integer"] for r in doc["replies"]], list(range(2001, 2501)))

    def test_many_concurrent_clients_each_get_their_own_reply(self):
        port = self.srv.port
        errors = []

        def client(t):
            try:
                conn = Conn(port)
                try:
                    for i in range(40):
                        key = "c-%d-%d" % (t, i)
                        value = ("value of %s " % key) * (1 + (t + i) % 7)
                        status, doc = self.rset(conn, key, value)
                        if (status, doc.get("str")) != (200, "OK"):
                            errors.append((key, status, doc))
                        status, doc = self.rget(conn, key)
                        if (status, doc.get("str")) != (200, value):
                            errors.append((key, status, doc))
                finally:
                    conn.close()
            except Exception as e:  # noqa: BLE001  (reported below)
                errors.append(e)

        threads = [threading.Thread(target=client, args=(t,)) for t in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors[:3], [])
        self.assertEqual(rcall(self.rd.port, "DBSIZE"), 16 * 40)
        self.assertAppClean(self.srv)


class Configuration(RedisCase):
    def test_not_configured_is_enotconn(self):
        srv = self.app("--redis-gate", "1", workers=2)
        self.srv = srv
        st = self.state(srv)
        self.assertEqual((st["configured"], st["ready"]), (False, True), st)
        for _ in range(4):
            self.refused(self.rget(None, "k"), "ENOTCONN")
            self.refused(self.rset(None, "k", "v"), "ENOTCONN")
            self.refused(self.rdel(None, "k"), "ENOTCONN")
            self.refused(self.cmd(None, "PING"), "ENOTCONN")
            self.refused(self.cmd(None, "PING", owner=0), "ENOTCONN")
            self.refused(self.cmd(None, "PING", fire=1), "ENOTCONN")
            status, doc = self.call(None, "GET", "/redis/burst?n=3")
            self.assertEqual((status, doc["sync"], doc["replies"]), (200, ["ENOTCONN"] * 3, []))
        c = Conn(srv.port)
        try:
            self.assertEqual(c.request("GET", "/readyz").status, 200,
                             "a Redis that is not configured does not hold readiness back")
        finally:
            c.close()
        self.assertNotIn("redis", srv.log_text())

    def test_url_from_flag_coil_redis_url_then_redis_url(self):
        a, b, cc = self.redis(), self.redis(), self.redis()
        for args, env, which in (
                ((), {"REDIS_URL": a.url}, a),
                ((), {"REDIS_URL": a.url, "COIL_REDIS_URL": b.url}, b),
                (("--redis-url", cc.url), {"REDIS_URL": a.url, "COIL_REDIS_URL": b.url}, cc)):
            srv = self.app(*args, env=env, workers=1)
            self.srv = srv
            self.wait_ready(srv)
            marker = "from %r" % sorted(env)
            self.ok(self.rset(None, "where", marker))
            for rd in (a, b, cc):
                got = rcall(rd.port, "GET", "where")
                self.assertEqual(got == marker.encode(), rd is which, (rd.port, got, args, env))
            rcall(which.port, "DEL", "where")
            self.stop(srv)

    def test_database_number(self):
        rd = self.redis()
        self.srv = self.app_on(rd.url + "/3", workers=1)
        self.ok(self.rset(None, "in db 3", "yes"))
        self.assertEqual(rcall(rd.port, "GET", "in db 3", db=3), b"yes")
        self.assertIsNone(rcall(rd.port, "GET", "in db 3"))
        self.assertIn("db 3", self.srv.log_text())

    def test_host_name_with_several_addresses(self):
        """localhost may resolve to ::1 before 127.0.0.1, where Redis listens: a failed connect
        moves a worker to the next address."""
        rd = self.redis()
        self.srv = srv = self.app_on("redis://localhost:%d" % rd.port)
        self.ok(self.rset(None, "via", "localhost"))
        self.assertEqual(rcall(rd.port, "GET", "via"), b"localhost")
        self.assertIn("redis: localhost:%d (" % rd.port, srv.log_text())

    def test_bad_urls_stop_start_up(self):
        for url, says in (("http://127.0.0.1:6379", "redis://"),
                          ("redis://", "redis://"),
                          ("redis://127.0.0.1:0", "redis://"),
                          ("redis://127.0.0.1:65536", "redis://"),
                          ("redis://127.0.0.1:12x", "redis://"),
                          ("redis://127.0.0.1:6379/x", "redis://"),
                          ("redis://[::1", "redis://"),
                          ("redis://no-such-host.invalid:6379", "cannot resolve")):
            p = subprocess.run([cacheapp_bin(), "--redis-url", url, "--port", "0", "--bind",
                                "127.0.0.1", "--workers", "1"], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 2, (url, p.stderr))
            self.assertIn(says, p.stderr, url)
            self.assertNotIn("listening", p.stderr, url)

    def test_gate_holds_readiness_until_every_worker_is_connected(self):
        rd = self.redis(start=False)
        srv = self.app_on(rd, "--redis-gate", "1", wait_ready=False)
        self.srv = srv
        readyz = lambda: self.call_status(srv, "/readyz")  # noqa: E731
        self.assertEqual(readyz(), 503)
        self.assertEqual(self.state(srv)["ready"], False)
        self.refused(self.rget(None, "k"), "ENOTCONN")
        wait_until(lambda: "cannot connect to redis" in srv.log_text(), POLL,
                   what="the failed connect logged")
        self.start_redis_later(rd)
        wait_until(lambda: readyz() == 200, RECONNECT, 0.05, "ready once Redis is up")
        self.ok(self.rset(None, "k", "v"))
        rd.stop_server()
        wait_until(lambda: readyz() == 503, POLL, 0.05, "not ready once Redis is gone")
        rd.start_server()
        wait_until(lambda: readyz() == 200, RECONNECT, 0.05, "ready again")

    def call_status(self, srv, path):
        c = Conn(srv.port)
        try:
            return c.request("GET", path, headers=["Connection: close"]).status
        finally:
            c.close()


# ---- faults ---------------------------------------------------------------------------------

class Faults(RedisCase):
    def test_redis_stopped_fails_fast_then_recovers(self):
        rd = self.redis()
        self.srv = srv = self.app_on(rd)
        w = self.pinned(srv)
        for i in (0, 1):
            self.ok(self.rset(w[i], "k%d" % i, "before"))
        rd.stop_server()
        for i in (0, 1):
            # a command may meet the connection as it fails (-ECONNRESET); once the worker
            # knows, every command fails at once: -ENOTCONN, never a wait for a timeout
            def down():
                status, doc = self.rget(w[i], "k")
                if status == 502:
                    self.assertEqual(doc["error"], "ECONNRESET", doc)
                    return False
                if status == 200:
                    return False  # answered before the close reached it
                self.refused((status, doc), "ENOTCONN")
                return True
            wait_until(down, POLL, 0.02, "worker %d to see Redis gone" % i)
            for _ in range(20):
                self.refused(self.rget(w[i], "k"), "ENOTCONN")
                self.refused(self.rset(w[i], "k", "v"), "ENOTCONN")
        self.assertFalse(self.state(srv)["ready"])
        wait_until(lambda: "redis connection lost" in srv.log_text(), POLL,
                   what="the lost connection logged")
        rd.start_server()  # same port, empty (no persistence)
        for i in (0, 1):
            wait_until(lambda: self.rget(w[i], "k%d" % i)[0] == 200, RECONNECT, 0.05,
                       "worker %d to reconnect" % i)
            self.answered(self.rget(w[i], "k%d" % i), "nil")
            self.ok(self.rset(w[i], "k%d" % i, "after"))
            self.string(self.rget(w[1 - i], "k%d" % i), "after")
        self.wait_ready(srv)
        wait_until(lambda: "redis connection open" in srv.log_text(), POLL,
                   what="the reconnect logged")
        self.assertAppClean(srv)

    def test_restart_many_times_under_load(self):
        rd = self.redis()
        self.srv = srv = self.app_on(rd)
        stop = threading.Event()
        errors = []

        def client(t):
            try:
                conn = Conn(srv.port)
                i = 0
                while not stop.is_set():
                    i += 1
                    status, doc = self.rset(conn, "load-%d" % t, "v%d" % i)
                    if status == 200 and doc.get("str") != "OK":
                        errors.append(doc)
                    elif status == 502 and doc["error"] not in ("ECONNRESET",):
                        errors.append(doc)
                    elif status == 503 and doc["rc"] != "ENOTCONN":
                        errors.append(doc)
                    elif status not in (200, 502, 503):
                        errors.append((status, doc))
                conn.close()
            except Exception as e:  # noqa: BLE001  (reported below)
                errors.append(e)

        threads = [threading.Thread(target=client, args=(t,)) for t in range(6)]
        for t in threads:
            t.start()
        try:
            for _ in range(3):
                time.sleep(0.3)
                rd.restart()
                self.wait_ready(srv)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        self.assertEqual(errors[:3], [])
        self.ok(self.rset(None, "end", "fine"))
        self.assertAppClean(srv)

    def test_redis_absent_at_start_up(self):
        rd = self.redis(start=False)
        self.srv = srv = self.app_on(rd, wait_ready=False)
        self.refused(self.rget(None, "k"), "ENOTCONN")
        st = self.state(srv)
        self.assertEqual((st["configured"], st["ready"]), (True, False), st)
        wait_until(lambda: srv.log_text().count("cannot connect to redis") >= 1, POLL,
                   what="the failed connect logged")
        self.start_redis_later(rd)
        self.wait_ready(srv)
        self.ok(self.rset(None, "k", "v"))
        self.string(self.rget(None, "k"), "v")
        # one line per worker for the failure, however many retries it took
        self.assertLessEqual(srv.log_text().count("cannot connect to redis"), 2)

    def test_command_timeout_then_recovery(self):
        rd = self.redis()
        self.srv = srv = self.app_on(rd, "--redis-timeout-ms", "400", workers=1)
        status, doc = self.call(None, "GET", "/redis/slow?ms=2500&then=3")
        self.assertEqual((status, doc["sync"]), (200, []), doc)
        errs = [(r["error"], bool(r.get("message"))) for r in doc["replies"]]
        self.assertEqual(errs, [("ETIMEDOUT", True)] + [("ECONNRESET", True)] * 3, doc)
        wait_until(lambda: "a command timed out" in srv.log_text(), POLL,
                   what="the timeout logged")
        # the connection is reopened; commands work again once the script has ended
        def works():
            status, doc = self.cmd(None, "PING")
            if status == 200:
                self.assertEqual(doc["str"], "PONG", doc)
                return True
            self.assertIn((status, doc["rc"], doc.get("error")),
                          ((503, "ENOTCONN", None), (502, 0, "ETIMEDOUT"),
                           (502, 0, "ECONNRESET")), doc)
            return False
        wait_until(works, RECONNECT, 0.05, "commands to work again after the timeout")
        self.ok(self.rset(None, "after", "timeout"))
        self.assertEqual(rcall(rd.port, "GET", "after"), b"timeout")
        self.assertAppClean(srv)

    def test_max_pending_is_ebusy(self):
        rd = self.redis()
        self.srv = srv = self.app_on(rd, "--redis-max-pending", "3", workers=1)
        status, doc = self.call(None, "GET", "/redis/burst?n=10")
        self.assertEqual(doc["sync"], ["EBUSY"] * 7, doc)
        self.assertEqual([r["str"] for r in doc["replies"]], ["PONG"] * 3, doc)
        status, doc = self.call(None, "GET", "/redis/burst?n=3")  # the pending ones were answered
        self.assertEqual((doc["sync"], len(doc["replies"])), ([], 3), doc)

    def pause_redis(self, rd, ms):
        """CLIENT PAUSE ms ALL: Redis reads commands and answers none until it ends."""
        self.assertEqual(rcall(rd.port, "CLIENT", "PAUSE", ms, "ALL"), "OK")

    def test_clients_leave_while_their_commands_wait(self):
        rd = self.redis()
        self.srv = srv = self.app_on(rd, "--redis-timeout-ms", "30000")
        before = self.app_stats(srv)
        self.pause_redis(rd, 3000)
        paths = []
        for i in range(48):
            if i % 3 == 0:
                paths.append("/redis/get/gone-%d" % i)
            elif i % 3 == 1:
                paths.append("/redis/cmd?a0=GET&a1=gone-%d&owner=0" % i)
            else:
                paths.append("/redis/slow?ms=1&then=3")
        conns = []
        for p in paths:
            c = Conn(srv.port)
            c.send(request("GET", p))
            conns.append(c)
        wait_until(lambda: self.app_stats(srv)["waiting"] == len(paths), POLL,
                   what="every request waiting for Redis")
        for c in conns:
            c.close()
        wait_until(lambda: self.app_stats(srv)["aborted"] - before["aborted"] == len(paths),
                   POLL, what="every request aborted")
        mid = self.app_stats(srv)
        self.assertEqual(mid["aborts"] - before["aborts"], len(paths), mid)
        # Redis answers once the pause ends: the replies of owned commands are dropped, those
        # without an owner find their request gone
        wait_until(lambda: self.app_stats(srv)["gone"] == 16, POLL + 5,
                   what="the 16 replies without an owner")
        self.answered(self.rget(None, "nothing"), "nil")
        after = self.assertAppClean(srv)
        self.assertEqual(after["replies"] - before["replies"], 16 + 1,
                         "callbacks run: the 16 without an owner and the last GET: %r" % after)
        self.assertEqual(after["waiting"], 0, after)

    def test_sigterm_with_commands_in_flight(self):
        rd = self.redis()
        srv = self.app_on(rd, "--redis-timeout-ms", "30000", "--drain-timeout", "300ms")
        self.pause_redis(rd, 3000)
        conns = []
        for i in range(20):
            c = Conn(srv.port)
            c.send(request("GET", "/redis/get/k%d" % i if i % 2 else
                           "/redis/cmd?a0=PING&owner=0"))
            conns.append(c)
            self.addCleanup(c.close)
        wait_until(lambda: self.app_stats(srv)["waiting"] == 20, POLL,
                   what="every request waiting for Redis")
        # the drain deadline aborts them; then each worker closes its connection with the
        # commands still in Redis
        self.stop(srv)
        self.assertIn("cacheapp: exit status=0 late=0", srv.log_text())


class ReplyStream(RedisCase):
    """Commands after which Redis no longer answers each command once (pub/sub, MONITOR, CLIENT
    REPLY) on a connection every request of the worker shares. Whatever coil_redis_command does
    with them (refuse them at once, or answer them), the worker must survive what Redis sends next
    and go on giving every other request its own reply.

    Today (hiredis 0.14.1) none of them holds: SUBSCRIBE, PSUBSCRIBE and MONITOR are sent, hiredis
    then calls the command's callback again for each message, and on_reply (engine/redis.c) reads
    the struct cmd it freed at the first call (heap-use-after-free under ASan); without ASan the
    next command on that worker fails with -ECONNRESET or gets another reply (a published message,
    or, after MONITOR, "ERR Replica can't interact with the keyspace" for every command from then
    on). SSUBSCRIBE's first message trips hiredis' assertion in redisProcessCallbacks: the process
    aborts. UNSUBSCRIBE is refused with -ENOTCONN although the connection is up. After CLIENT
    REPLY SKIP the next request's command is never answered (-ETIMEDOUT, then -ECONNRESET), and a
    command sent meanwhile by a third request has its reply delivered to the first."""

    def after(self, args, trigger, **flags):
        rd = self.redis()
        srv = self.app_on(rd, workers=1)
        self.srv = srv
        status, doc = self.cmd(None, *args, **flags)
        self.assertIn(status, (200, 202, 500, 503), doc)
        if trigger:
            rcall(rd.port, *trigger)
        # the worker goes on: its own reply for each request, at once
        for i in range(3):
            self.ok(self.rset(None, "after-%d" % i, "v%d" % i))
            self.string(self.rget(None, "after-%d" % i), "v%d" % i)
        self.assertTrue(srv.running(), "the server died:\n" + srv.log_text())
        self.assertAppClean(srv)
        self.stop(srv)
        return status, doc

    def test_subscribe(self):
        self.after(("SUBSCRIBE", "chan"), ("PUBLISH", "chan", "message"))

    def test_psubscribe(self):
        self.after(("PSUBSCRIBE", "ch*"), ("PUBLISH", "chan", "message"))

    def test_ssubscribe(self):
        self.after(("SSUBSCRIBE", "chan"), ("SPUBLISH", "chan", "message"))

    def test_monitor(self):
        self.after(("MONITOR",), ("SET", "watched", "1"))

    def test_subscribe_without_a_callback(self):
        self.after(("SUBSCRIBE", "chan"), ("PUBLISH", "chan", "message"), fire=1)

    def test_unsubscribe_is_not_no_connection(self):
        status, doc = self.after(("UNSUBSCRIBE", "chan"), None)
        self.assertNotEqual(doc["rc"], "ENOTCONN",
                            "the connection is up: -ENOTCONN says it is not (%r)" % doc)

    def test_client_reply_skip(self):
        rd = self.redis()
        srv = self.app_on(rd, workers=1)
        self.srv = srv
        first = Conn(srv.port)
        self.addCleanup(first.close)
        first.send(request("GET", "/redis/cmd?a0=CLIENT&a1=REPLY&a2=SKIP"))
        wait_until(lambda: self.app_stats(srv)["waiting"] == 1 or self.poll_readable(first),
                   POLL, what="CLIENT REPLY SKIP sent or answered")
        self.ok(self.rset(None, "k", "mine"))
        self.string(self.rget(None, "k"), "mine")

    @staticmethod
    def poll_readable(conn):
        return bool(select.select([conn.sock], [], [], 0)[0])


class Auth(RedisCase):
    def test_password(self):
        rd = self.redis(password="s3cret")
        self.assertIsInstance(rcall(rd.port, "GET", "k"), RedisError)  # NOAUTH without it
        for url in ("redis://:s3cret@127.0.0.1:%d" % rd.port,
                    "redis://default:s3cret@127.0.0.1:%d" % rd.port):
            srv = self.app_on(url)
            self.srv = srv
            self.ok(self.rset(None, "authed", url))
            self.string(self.rget(None, "authed"), url)
            self.assertEqual(rcall(rd.port, "GET", "authed", password="s3cret"), url.encode())
            self.assertNotIn("refused AUTH", srv.log_text())
            self.assertNotIn("s3cret", srv.log_text(), "the password is not logged")
            self.stop(srv)

    def test_password_with_url_characters(self):
        """The password is everything between the first ':' of the user part and the last '@':
        '@', ':' and '/' in it are taken as they are."""
        password = "p@ss:w/rd"
        rd = self.redis(password=password)
        self.srv = self.app_on("redis://:%s@127.0.0.1:%d" % (password, rd.port), workers=1)
        self.ok(self.rset(None, "k", "v"))
        self.assertEqual(rcall(rd.port, "GET", "k", password=password), b"v")

    def test_password_and_database(self):
        rd = self.redis(password="pw")
        self.srv = self.app_on("redis://:pw@127.0.0.1:%d/5" % rd.port, workers=1)
        self.ok(self.rset(None, "k", "in 5"))
        self.assertEqual(rcall(rd.port, "GET", "k", password="pw", db=5), b"in 5")

    def test_wrong_password_is_logged_and_the_connection_is_not_used(self):
        """A refused AUTH closes the connection (logged with Redis' reason) and it is retried
        with backoff: the worker has no usable connection, so commands fail at once with
        -ENOTCONN and readiness (with the gate) stays false, rather than every command getting
        NOAUTH on a connection that looks up."""
        rd = self.redis(password="right")
        srv = self.app_on("redis://:wrong@127.0.0.1:%d" % rd.port, "--redis-gate", "1",
                          wait_ready=False)
        self.srv = srv
        wait_until(lambda: "redis refused AUTH" in srv.log_text(), POLL,
                   what="the refused AUTH logged")
        line = [l for l in srv.log_text().splitlines() if "refused AUTH" in l][0]
        self.assertIn("WRONGPASS", line)
        self.assertFalse(self.state(srv)["ready"])
        self.refused(self.rget(None, "k"), "ENOTCONN")
        self.assertIsNone(rcall(rd.port, "GET", "k", password="right"))

    def test_no_password_for_a_server_that_wants_one(self):
        rd = self.redis(password="needed")
        self.srv = self.app_on(rd, workers=1)
        doc = self.answered(self.rset(None, "k", "v"), "error")
        self.assertTrue(doc["str"].startswith("NOAUTH"), doc)


# ---- coil_cache on Redis ------------------------------------------------------------------

class RemoteCache(RedisCase):
    """coil_cache with opts.redis: the same calls, entries in Redis under a prefix."""
    def setUp(self):
        self.rd = self.redis()
        self.srv = self.app_on(self.rd)
        self.w = self.pinned(self.srv)

    def store(self, c, key, value):
        r = c.request("POST", "/cache/%s/store?c=remote" % key, body=value)
        self.assertEqual(r.status, 200, r)
        return json.loads(r.body)

    def fetch(self, c, key):
        return c.request("GET", "/cache/%s/fetch?c=remote" % key)

    def test_store_then_fetch_on_every_worker_and_in_redis(self):
        doc = self.store(self.w[0], "k1", b"value one")
        self.assertEqual(doc["err"], 0, doc)
        for c in self.w.values():  # stored before its done: a fetch anywhere finds it
            r = self.fetch(c, "k1")
            self.assertEqual((r.status, r.body), (200, b"value one"), r)
        self.assertEqual(rcall(self.rd.port, "GET", "t:k1"), b"value one")
        ttl = rcall(self.rd.port, "PTTL", "t:k1")
        self.assertTrue(0 < ttl <= 60000, ttl)
        # coil_cache_get has no local tier for a cache on Redis: always a miss
        self.assertEqual(self.w[1].request("GET", "/cache/k1?c=remote").status, 404)
        self.assertAppClean(self.srv)

    def test_miss_and_invalidate(self):
        r = self.fetch(self.w[0], "absent")
        self.assertEqual((r.status, json.loads(r.body)["err"]), (404, "ENOENT"), r)
        self.store(self.w[1], "k2", b"x")
        r = self.w[0].request("DELETE", "/cache/k2?c=remote")
        self.assertEqual((r.status, json.loads(r.body)["err"]), (200, 0), r)
        self.assertIsNone(rcall(self.rd.port, "GET", "t:k2"))
        r = self.fetch(self.w[1], "k2")
        self.assertEqual(r.status, 404, r)
        self.assertAppClean(self.srv)

    def test_binary_values_and_a_put_without_waiting(self):
        value = b"a\x00b\r\nc" * 1000
        self.store(self.w[0], "bin", value)
        self.assertEqual(self.fetch(self.w[1], "bin").body, value)
        r = self.w[0].request("PUT", "/cache/plain?c=remote", body=b"p")  # coil_cache_put
        self.assertEqual(r.status, 200, r)
        wait_until(lambda: rcall(self.rd.port, "GET", "t:plain") == b"p", POLL,
                   what="the put to reach Redis")
        self.assertAppClean(self.srv)

    def test_redis_down_fails_the_calls_at_once(self):
        self.store(self.w[0], "k3", b"v")
        self.rd.stop_server()
        wait_until(lambda: not self.state(self.srv)["ready"], POLL,
                   what="the workers to see Redis gone")
        for c in self.w.values():
            r = self.fetch(c, "k3")
            self.assertEqual((r.status, json.loads(r.body)["rc"]), (503, "ENOTCONN"), r)
            r = c.request("POST", "/cache/k3/store?c=remote", body=b"v")
            self.assertEqual((r.status, json.loads(r.body)["rc"]), (503, "ENOTCONN"), r)
        self.rd.start_server()
        self.wait_ready(self.srv)
        self.assertEqual(self.store(self.w[1], "k3", b"back")["err"], 0)
        self.assertEqual(self.fetch(self.w[0], "k3").body, b"back")
        self.assertAppClean(self.srv)


# ---- the demo's crud cache on Redis ---------------------------------------------------------

class DemoCrudRedis(RedisCase):
    """The demo with --redis-url: one cache shared by every worker and process."""

    def setUp(self):
        self.pg = postgres()
        self.rd = self.redis()

    def demo(self, workers=2):
        srv = self.start("--workers", str(workers), "--database-url", self.pg.url,
                         "--redis-url", self.rd.url)
        wait_until(lambda: self.fresh(srv, "GET", "/readyz").status == 200, POLL,
                   what="the demo to reach PostgreSQL")
        # and Redis, which does not hold readiness back: a GET twice through each worker
        w = conns_by_worker(srv.port, workers)
        try:
            for c in w.values():
                wait_until(lambda: [c.request("GET", "/crud/items/1").header("X-Cache")
                                    for _ in range(2)][1] == "HIT", RECONNECT, 0.05,
                           "the demo's workers to reach Redis")
        finally:
            for c in w.values():
                c.close()
        return srv

    def fresh(self, srv, method, path, body=None):
        c = Conn(srv.port)
        try:
            return c.request(method, path, body=body, headers=["Connection: close"])
        finally:
            c.close()

    def item(self, r):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/json", r)
        return json.loads(r.body)

    def miss_then_hits(self, item_id, get):
        """As in test_cache: a MISS then four HITs with the same body; a round whose hits came
        after the item's 200 ms in Redis is tried again."""
        path = "/crud/items/%d" % item_id
        for _ in range(10):
            wait_until(lambda: rcall(self.rd.port, "EXISTS", "coil:item:%d" % item_id) == 0, POLL,
                       what="item %d to leave Redis" % item_id)
            first = get(path, 0)
            self.assertEqual(first.header("X-Cache"), "MISS", first)
            doc = self.item(first)
            t0 = time.monotonic()
            later = [get(path, i) for i in range(1, 5)]
            elapsed = time.monotonic() - t0
            for r in later:
                self.assertEqual(self.item(r), doc, r)
            seen = [r.header("X-Cache") for r in later]
            if seen == ["HIT"] * 4:
                return doc
            self.assertGreater(elapsed, 0.1, "a MISS within the item's 200 ms: %s" % seen)
        self.fail("never four HITs in a row for %s" % path)

    def test_miss_then_hit_on_new_connections_and_across_workers(self):
        srv = self.demo()
        doc = self.miss_then_hits(21, lambda p, i: self.fresh(srv, "GET", p))
        self.assertEqual(doc["name"], item_json(self.pg, 21)[0])
        w = conns_by_worker(srv.port, 2)
        for c in w.values():
            self.addCleanup(c.close)
        for a in (0, 1):
            self.miss_then_hits(22 + a, lambda p, i: w[(a + i) % 2].request("GET", p))
        # what the demo stored is the item's JSON, expiring (PX 200)
        r = self.fresh(srv, "GET", "/crud/items/24")
        stored = rcall(self.rd.port, "GET", "coil:item:24")
        if stored is not None:  # unless it expired meanwhile
            self.assertEqual(json.loads(stored), json.loads(r.body))
            self.assertLessEqual(rcall(self.rd.port, "PTTL", "coil:item:24"), 200)

    def test_shared_by_two_processes(self):
        a, b = self.demo(), self.demo()
        self.miss_then_hits(25, lambda p, i: self.fresh(a if i == 0 else b, "GET", p))

    def test_put_and_post_then_miss(self):
        srv = self.demo()
        w = conns_by_worker(srv.port, 2)
        for c in w.values():
            self.addCleanup(c.close)
        item_id = 26
        path = "/crud/items/%d" % item_id
        for round_ in range(3):
            self.miss_then_hits(item_id, lambda p, i: w[i % 2].request("GET", p))
            body = {"name": "redis renamed %d" % round_, "category": "tools",
                    "price": 200 + round_, "quantity": 3}
            r = w[round_ % 2].request("PUT", path, body=json.dumps(body))
            self.assertEqual(self.item(r)["name"], body["name"])
            # answered after the DEL: Redis no longer has it, the next GET is a MISS
            self.assertEqual(rcall(self.rd.port, "EXISTS", "coil:item:%d" % item_id), 0)
            r = w[(round_ + 1) % 2].request("GET", path)
            self.assertEqual((r.header("X-Cache"), self.item(r)["name"]), ("MISS", body["name"]))
        self.miss_then_hits(item_id, lambda p, i: w[i % 2].request("GET", p))
        body = {"id": item_id, "name": "redis upserted", "category": "garden", "price": 7,
                "quantity": 1}
        r = w[0].request("POST", "/crud/items", body=json.dumps(body))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(rcall(self.rd.port, "EXISTS", "coil:item:%d" % item_id), 0)
        r = w[1].request("GET", path)
        self.assertEqual((r.header("X-Cache"), self.item(r)["name"]), ("MISS", "redis upserted"))

    def test_redis_down_reads_the_database_then_recovers(self):
        srv = self.demo()
        self.miss_then_hits(27, lambda p, i: self.fresh(srv, "GET", p))
        self.rd.stop_server()
        seen = set()
        for i in range(40):
            if i % 4 == 3:
                body = {"name": "while down %d" % i, "category": "tools", "price": i,
                        "quantity": 1}
                r = self.fresh(srv, "PUT", "/crud/items/28", body=json.dumps(body))
                self.assertEqual((r.status, self.item(r)["name"]), (200, body["name"]), r)
            else:
                r = self.fresh(srv, "GET", "/crud/items/%d" % (27 + i % 2))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.header("X-Cache"), "MISS", r)
                seen.add(self.item(r)["id"])
        self.assertEqual(seen, {27, 28})
        self.assertEqual(self.fresh(srv, "GET", "/crud/items/28").status, 200)
        self.rd.start_server()
        # HITs again once every worker has reconnected (backoff up to 5 s)
        def hits():
            r1 = self.fresh(srv, "GET", "/crud/items/27")
            r2 = self.fresh(srv, "GET", "/crud/items/27")
            self.assertEqual((r1.status, r2.status), (200, 200))
            return r2.header("X-Cache") == "HIT"
        wait_until(hits, RECONNECT, 0.05, "HITs once Redis is back")
        w = conns_by_worker(srv.port, 2)
        for c in w.values():
            self.addCleanup(c.close)
        for a in (0, 1):
            def pair():
                r1 = w[a].request("GET", "/crud/items/29")
                r2 = w[1 - a].request("GET", "/crud/items/29")
                return r2.header("X-Cache") == "HIT" and r1.status == 200
            wait_until(pair, RECONNECT, 0.3, "a HIT through worker %d" % (1 - a))
        self.assertIn("redis connection lost", srv.log_text())


def tearDownModule():
    test_cache.tearDownModule()


if __name__ == "__main__":
    if not shutil.which("redis-server") and not os.path.exists("/usr/bin/redis-server"):
        print("test_redis: redis-server is not installed (apt-get install redis-server): "
              "skipping", file=sys.stderr)
        sys.exit(77)
    main()
