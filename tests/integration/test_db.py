# SPDX-License-Identifier: MIT
"""PostgreSQL from handlers (coil_pg.h) against a real PostgreSQL 15 (tools/services.py).

The demo's database routes (handlers/db.c) are held to every check HttpArena's validate.sh makes
for the async-db (3) and crud (7) profiles (PROFILES.md sections 9 and 10), with the expected
rows computed here from services.item_rows(), the generator the table was seeded from: exact
items, Content-Type, defaults and clamping, leading-zero ids, 404s, bad bodies (400 with a JSON
error), the X-Cache MISS-then-HIT and PUT-then-MISS checks with two workers and a new connection
per GET. Then under concurrency (many keep-alive connections, pipelined, one database connection
per worker so that every query shares its pipeline: each answer must match its own request) and
under faults: the database restarted under load, its backends killed, down when coil starts; the
process stays up, never hangs or resets a client, answers as HttpArena asks meanwhile (async-db:
200 with no items; crud: 503), follows it in /readyz, and recovers within a bounded wait without
growing.

pgapp (tests/integration/pgapp.c) reaches the rest of the API: SQL text and results (NULLs,
column names, affected rows), parameters (NULL, 65535 of them), prepared statements (one the
server refuses), the accessors, argument checks, queries sent from callbacks, every error a query
ends with (-EIO with its SQLSTATE, -ETIMEDOUT and the connection replaced, -ECONNRESET, -ENOTCONN
without a database, -EBUSY with a full queue), clients that leave with queries in flight, and a
graceful drain. pgapp checks the contract itself (a callback for a request that is gone, a result
that breaks coil_pg.h's promises) and counts violations in /stats: tests check they stay 0.

Skipped (exit 77) only when PostgreSQL's server programs are not installed (apt-get install
postgresql-15). Waits are bounded polls against hangs; nothing asserts how fast anything is.
"""

import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.parse

from coil_harness import (CoilTestCase, Conn, HERE, Server, built_bin, conns_by_worker, get, main,
                          request, vm_rss_kib, wait_until)

SOURCE_DIR = os.environ.get("COIL_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tools"))
import services  # noqa: E402  (tools/services.py)

SANITIZED = bool(os.environ.get("COIL_SANITIZE_FLAGS", "").strip())

# The database settings coil and libpq read from the environment: a developer's own must not
# change what a test sees (each test passes what it means explicitly).
for _k in list(os.environ):
    if _k.startswith("PG") or _k in ("DATABASE_URL", "DATABASE_MAX_CONN", "COIL_DATABASE_URL",
                                     "COIL_DB_POOL", "COIL_DB_PIPELINE", "COIL_DB_QUEUE",
                                     "COIL_DB_TIMEOUT"):
        del os.environ[_k]

ROWS = 100000


def item_json(r):
    """A seeded row as HttpArena's item object."""
    return {"id": r["id"], "name": r["name"], "category": r["category"], "price": r["price"],
            "quantity": r["quantity"], "active": r["active"], "tags": r["tags"],
            "rating": {"score": r["rating_score"], "count": r["rating_count"]}}


ITEMS = [item_json(r) for r in services.item_rows(ROWS)]
BY_ID = {it["id"]: it for it in ITEMS}
BY_CATEGORY = {}
for _it in ITEMS:
    BY_CATEGORY.setdefault(_it["category"], []).append(_it)  # in id order
CATEGORIES = sorted(BY_CATEGORY)
PRICE_COUNT = [0] * 502
for _it in ITEMS:
    PRICE_COUNT[_it["price"]] += 1
EMPTY_LIST = {"items": [], "count": 0}


def priced(lo, hi):
    """How many seeded items cost lo..hi."""
    lo, hi = max(lo, 0), min(hi, 501)
    return sum(PRICE_COUNT[lo:hi + 1]) if lo <= hi else 0


def pgapp_bin():
    return built_bin("COIL_PGAPP", "tests", "coil_pgapp")


def is_json(resp):
    ct = resp.header("Content-Type")
    return ct is not None and (ct == "application/json" or ct.startswith("application/json;"))


def doc_of(resp):
    try:
        return json.loads(resp.body)
    except ValueError:
        return None


def q(path, **params):
    return path + ("?" + urllib.parse.urlencode(params) if params else "")


# ---- verdicts: does a response answer its own request? -------------------------------------

def async_verdict(resp, lo, hi, limit):
    """"ok" (the right items), "empty" (HttpArena's answer without a database) or why not."""
    if resp.status != 200 or not is_json(resp):
        return "bad status/type: %r" % resp
    doc = doc_of(resp)
    if doc == EMPTY_LIST:
        return "empty" if priced(lo, hi) else "ok"
    if not isinstance(doc, dict) or set(doc) != {"items", "count"}:
        return "bad document: %r" % resp.body[:300]
    want = min(limit, priced(lo, hi))
    if doc["count"] != want or len(doc["items"]) != want:
        return "count %r (%d items), expected %d for %r" % (doc["count"], len(doc["items"]), want,
                                                             (lo, hi, limit))
    ids = set()
    for it in doc["items"]:
        if it != BY_ID.get(it.get("id")) or not lo <= it["price"] <= hi or it["id"] in ids:
            return "item %r is not a seeded row priced %d..%d (or a duplicate)" % (it, lo, hi)
        ids.add(it["id"])
    return "ok"


def item_verdict(resp, item_id):
    """"ok", "down" (503) or why not, for GET /crud/items/<item_id> of an unmodified table."""
    if resp.status == 503:
        return "down"
    want = BY_ID.get(item_id)
    if want is None:
        ok = resp.status == 404 and is_json(resp) and "error" in (doc_of(resp) or {})
        return "ok" if ok else "expected 404 for %d: %r" % (item_id, resp)
    if resp.status != 200 or not is_json(resp) or resp.header("X-Cache") not in ("HIT", "MISS"):
        return "bad answer for %d: %r" % (item_id, resp)
    return "ok" if doc_of(resp) == want else "wrong item for %d: %r" % (item_id, resp.body[:300])


def list_verdict(resp, category, page, limit):
    if resp.status == 503:
        return "down"
    if resp.status != 200 or not is_json(resp):
        return "bad answer: %r" % resp
    rows = BY_CATEGORY.get(category, [])[(page - 1) * limit:page * limit]
    want = {"items": rows, "total": len(rows), "page": page, "limit": limit}
    doc = doc_of(resp)
    return "ok" if doc == want else "wrong page %r: %r" % ((category, page, limit),
                                                           resp.body[:300])


def random_request(rnd):
    """(path, verdict function) for a random read of the demo's database routes."""
    kind = rnd.randrange(4)
    if kind == 0:
        lo = rnd.randint(1, 500)
        hi = lo + rnd.randint(0, 60)
        limit = rnd.randint(1, 50)
        return (q("/async-db", min=lo, max=hi, limit=limit),
                lambda r: async_verdict(r, lo, hi, limit))
    if kind == 1:
        item_id = rnd.randint(1, ROWS)
        pad = "0" * rnd.randint(0, 3)  # HttpArena pads ids with zeros
        return "/crud/items/%s%d" % (pad, item_id), lambda r: item_verdict(r, item_id)
    if kind == 2:
        item_id = rnd.randint(ROWS + 1, 999999)
        return "/crud/items/%d" % item_id, lambda r: item_verdict(r, item_id)
    cat = rnd.choice(CATEGORIES)
    page, limit = rnd.randint(1, 40), rnd.randint(1, 50)
    return (q("/crud/items", category=cat, page=page, limit=limit),
            lambda r: list_verdict(r, cat, page, limit))


# ---- test cases ------------------------------------------------------------------------------

class DbCase(CoilTestCase):
    """One PostgreSQL server per class (setUpClass), stopped in tearDownClass."""

    ROWS = ROWS
    pg = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg = services.PostgresServer(rows=cls.ROWS).start()

    @classmethod
    def tearDownClass(cls):
        if cls.pg is not None:
            cls.pg.stop()
            cls.pg = None
        super().tearDownClass()

    def demo(self, *args, url=None, env=None, workers=2, wait_ready=True):
        """The demo binary on the class's database, two workers unless told; once /readyz says
        every worker has a connection (before that, queries fail at once: -ENOTCONN)."""
        srv = self.start("--workers", str(workers), "--database-url", url or self.pg.url,
                         *args, env=env)
        if wait_ready:
            wait_until(lambda: self.ready(srv), timeout=15, what="/readyz 200 at start")
        return srv

    def pgapp(self, *args, url=None, workers=2, env=None, db=True, wait_ready=True):
        """pgapp on the class's database (db=False: no database configured), once ready."""
        argv = ["--workers", str(workers)]
        if db:
            argv += ["--database-url", url or self.pg.url]
        srv = Server(argv + [str(a) for a in args], env=env, program=pgapp_bin())
        self._servers.append(srv)
        self.addCleanup(self._stop_checked, srv, 0)
        if wait_ready:
            wait_until(lambda: self.ready(srv), timeout=15, what="/readyz 200 at start")
        return srv

    def assertJsonError(self, resp, status):
        self.assertEqual(resp.status, status, resp)
        self.assertTrue(is_json(resp), resp)
        doc = doc_of(resp)
        self.assertIsInstance(doc, dict, resp)
        self.assertIsInstance(doc.get("error"), str, resp)
        return doc

    def assertAsync(self, resp, lo, hi, limit):
        self.assertEqual(async_verdict(resp, lo, hi, limit), "ok")
        return doc_of(resp)

    def ready(self, srv):
        r = get(srv.port, "/readyz")
        return r.status == 200 and r.body == b"ready"

    def not_ready(self, srv):
        r = get(srv.port, "/readyz")
        return r.status == 503 and r.body == b"not ready"

    def app_stats(self, srv):
        return json.loads(get(srv.port, "/stats").body)

    def assertAppClean(self, srv):
        st = self.app_stats(srv)
        self.assertEqual(st["errors"], 0, "pgapp contract check failed: %s" % st["first_error"])
        self.assertEqual(st["late"], 0, st)
        return st


# ---- HttpArena's async-db and crud reads ------------------------------------------------------

def gauge(port, name):
    """One unlabelled gauge from /metrics."""
    text = get(port, "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(line.split()[1])
    raise AssertionError("no %s in /metrics" % name)


class ArenaReads(DbCase):
    """The demo on a table that no test here writes to."""

    def test_pool_gauges_in_metrics(self):
        srv = self.demo("--db-pool", "3")  # 3 connections on each of the 2 workers
        wait_until(lambda: gauge(srv.port, "coil_db_connections") == 6, timeout=15,
                   what="6 database connections in coil_db_connections")
        for _ in range(20):
            self.assertEqual(get(srv.port, "/async-db?limit=5").status, 200)
        self.assertEqual(gauge(srv.port, "coil_db_queries_in_flight"), 0)
        self.assertEqual(gauge(srv.port, "coil_db_queries_queued"), 0)
        self.pg.kill_connections()
        wait_until(lambda: gauge(srv.port, "coil_db_connections") == 6, timeout=30,
                   what="the 6 connections back after they were killed")

    def test_async_db_validate_checks(self):
        srv = self.demo()
        # check 1: count == limit, rating.score, tags a list, active a bool (here: exact rows)
        for lo, hi, limit in ((5, 80, 7), (20, 150, 18), (100, 400, 33), (10, 50, 50)):
            r = get(srv.port, q("/async-db", min=lo, max=hi, limit=limit))
            doc = self.assertAsync(r, lo, hi, limit)
            self.assertEqual(doc["count"], limit, r)
            for it in doc["items"]:
                self.assertIn("score", it["rating"])
                self.assertIsInstance(it["tags"], list)
                self.assertIsInstance(it["active"], bool)
            # check 2: the Content-Type
            self.assertEqual(r.header("Content-Type"), "application/json", r)
        # check 3: nothing priced 9999
        r = get(srv.port, "/async-db?min=9999&max=9999&limit=50")
        self.assertEqual((r.status, doc_of(r)), (200, EMPTY_LIST), r)
        self.assertTrue(is_json(r), r)

    def test_async_db_defaults_clamping_and_bad_input(self):
        srv = self.demo()
        cases = [("/async-db", 10, 50, 50),
                 ("/async-db?limit=0", 10, 50, 1),
                 ("/async-db?limit=99", 10, 50, 50),
                 ("/async-db?limit=-7", 10, 50, 1),
                 ("/async-db?min=500&max=500&limit=50", 500, 500, 50),
                 ("/async-db?min=1&max=1&limit=3", 1, 1, 3),
                 ("/async-db?min=60&max=40", 60, 40, 50),
                 ("/async-db?min=-100&max=2&limit=50", -100, 2, 50),
                 ("/async-db?min=400&max=100000&limit=12", 400, 100000, 12)]
        for path, lo, hi, limit in cases:
            with self.subTest(path=path):
                self.assertAsync(get(srv.port, path), lo, hi, limit)
        for path in ("/async-db?min=abc", "/async-db?limit=1.5", "/async-db?max=5x",
                     "/async-db?limit=%ZZ"):
            with self.subTest(path=path):
                self.assertJsonError(get(srv.port, path), 400)

    def test_right_answers_from_the_first_request(self):
        """validate.sh starts its checks as soon as coil answers its readiness probe
        (/baseline11, any answer): the first async-db check may come right after coil
        listens, and must already see the items (PROFILES.md section 0, "Readiness")."""
        srv = self.demo(wait_ready=False)
        r = get(srv.port, "/async-db?min=5&max=80&limit=7")
        self.assertEqual(async_verdict(r, 5, 80, 7), "ok",
                         "the first request after the listening line: %r" % r)
        self.assertEqual(item_verdict(get(srv.port, "/crud/items/1"), 1), "ok")

    def test_crud_list(self):
        srv = self.demo()
        # validate.sh check 1: 5 items, total > 0, page 1, every item has a rating
        r = get(srv.port, "/crud/items?category=electronics&page=1&limit=5")
        self.assertEqual(list_verdict(r, "electronics", 1, 5), "ok")
        doc = doc_of(r)
        self.assertEqual(len(doc["items"]), 5)
        self.assertGreater(doc["total"], 0)
        self.assertEqual(doc["page"], 1)
        self.assertTrue(all("rating" in it for it in doc["items"]))
        self.assertEqual(r.header("Content-Type"), "application/json", r)
        office = BY_CATEGORY["office"]
        last_page = len(office) // 50 + 1  # a partial last page
        cases = [("/crud/items", "electronics", 1, 10),
                 ("/crud/items?category=", "electronics", 1, 10),
                 ("/crud/items?category=office&page=3&limit=7", "office", 3, 7),
                 ("/crud/items?category=office&page=%d&limit=50" % last_page, "office",
                  last_page, 50),
                 ("/crud/items?category=office&page=%d&limit=50" % (last_page + 1), "office",
                  last_page + 1, 50),
                 ("/crud/items?category=tools&limit=0", "tools", 1, 1),
                 ("/crud/items?category=tools&limit=99", "tools", 1, 50),
                 ("/crud/items?category=tools&page=0", "tools", 1, 10),
                 ("/crud/items?category=no%20such%20thing", "no such thing", 1, 10)]
        for path, cat, page, limit in cases:
            with self.subTest(path=path):
                self.assertEqual(list_verdict(get(srv.port, path), cat, page, limit), "ok")
        for path in ("/crud/items?page=abc", "/crud/items?limit=2.5", "/crud/items?category=%ZZ"):
            with self.subTest(path=path):
                self.assertJsonError(get(srv.port, path), 400)

    def test_crud_get_item(self):
        srv = self.demo()
        r = get(srv.port, "/crud/items/1")  # validate.sh check 2
        self.assertEqual(item_verdict(r, 1), "ok")
        self.assertEqual(doc_of(r)["id"], 1)
        self.assertEqual(r.header("Content-Type"), "application/json", r)
        self.assertEqual(r.header("X-Cache"), "MISS", r)
        for path, item_id in (("/crud/items/00017", 17), ("/crud/items/0000000100000", ROWS),
                              ("/crud/items/%d" % ROWS, ROWS), ("/crud/items/99", 99)):
            with self.subTest(path=path):
                self.assertEqual(item_verdict(get(srv.port, path), item_id), "ok")
        r = get(srv.port, "/crud/items/999999")  # validate.sh check 4
        self.assertJsonError(r, 404)
        for bad in ("0", "000", "-1", "+5", "abc", "1.0", "1e3", "2147483648",
                    "99999999999999999999", "%31", str(ROWS + 1), "12a"):
            with self.subTest(id=bad):
                r = get(srv.port, "/crud/items/" + bad)
                if bad == "%31":  # a percent-encoded digit: the id 1 or a 404, nothing else
                    self.assertIn(r.status, (200, 404), r)
                    continue
                self.assertJsonError(r, 404)

    def test_cache_miss_then_hit_with_new_connections(self):
        """validate.sh check 3, for many ids: each GET on a new connection (so with two workers it
        lands on either), the first a MISS and the next a HIT with the same body."""
        srv = self.demo()
        rnd = random.Random(7)
        for item_id in [42] + rnd.sample(range(100, ROWS), 24):
            first = get(srv.port, "/crud/items/%d" % item_id)
            second = get(srv.port, "/crud/items/%d" % item_id)
            self.assertEqual(item_verdict(first, item_id), "ok")
            self.assertEqual(item_verdict(second, item_id), "ok")
            self.assertEqual((first.header("X-Cache"), second.header("X-Cache")), ("MISS", "HIT"),
                             "id %d: %r then %r" % (item_id, first, second))
            self.assertEqual(first.body, second.body)
            self.assertTrue(is_json(second), second)

    def test_cache_hit_on_the_other_worker(self):
        """A read on one worker is a HIT on the other's keep-alive connection right after
        (handlers/db.c: "a read is copied to every worker's cache (replicate), so the next GET
        of it is a HIT wherever its connection landed"). Four fresh servers, 25 reads each
        alternating between the workers; a copy that has not reached the other worker by the
        time its next request runs shows as a MISS. (A race: this fails often, not always.)"""
        misses = []
        for round_ in range(4):
            srv = self.demo()
            conns = conns_by_worker(srv.port, 2)
            for n, item_id in enumerate(range(501 + 25 * round_, 526 + 25 * round_)):
                a, b = conns[n % 2], conns[1 - n % 2]
                r1 = a.request("GET", "/crud/items/%d" % item_id)
                r2 = b.request("GET", "/crud/items/%d" % item_id)
                self.assertEqual((item_verdict(r1, item_id), item_verdict(r2, item_id)),
                                 ("ok", "ok"))
                self.assertEqual(r1.header("X-Cache"), "MISS", r1)
                if r2.header("X-Cache") != "HIT":
                    misses.append("server %d, id %d: read on worker %d, a MISS on worker %d next"
                                  % (round_, item_id, n % 2, 1 - n % 2))
            for c in conns.values():
                c.close()
            self.stop(srv)
        self.assertEqual(misses, [], "%d of 100 reads were not yet copied to the other worker"
                         % len(misses))

    def test_cache_entry_expires(self):
        """A MISS again once the entry's 200 ms have passed (350 ms later: never early)."""
        srv = self.demo()
        c = self.connect(srv)
        self.assertEqual(c.request("GET", "/crud/items/700").header("X-Cache"), "MISS")
        self.assertEqual(c.request("GET", "/crud/items/700").header("X-Cache"), "HIT")
        time.sleep(0.35)
        r = c.request("GET", "/crud/items/700")
        self.assertEqual((item_verdict(r, 700), r.header("X-Cache")), ("ok", "MISS"), r)

    def test_head_answers_without_a_body(self):
        srv = self.demo()
        c = self.connect(srv)
        full = c.request("GET", "/crud/items/5")
        c.send(request("HEAD", "/crud/items/5"))
        head = c.read_response(head=True)
        self.assertEqual(head.status, 200, head)
        self.assertEqual(head.header("Content-Length"), str(len(full.body)), head)
        c.send(request("HEAD", "/async-db?limit=3"))
        head = c.read_response(head=True)
        self.assertEqual(head.status, 200, head)
        self.assertGreater(int(head.header("Content-Length")), 0, head)
        self.assertEqual(item_verdict(c.request("GET", "/crud/items/6"), 6), "ok")

    def test_database_settings_from_the_environment(self):
        bad = "postgres://bench:bench@127.0.0.1:1/benchmark"  # nothing listens on port 1
        # HttpArena's variables: DATABASE_URL, and DATABASE_MAX_CONN divided over the workers
        srv = self.start("--workers", "2",
                         env={"DATABASE_URL": self.pg.url, "DATABASE_MAX_CONN": "6"})
        wait_until(lambda: self.ready(srv), timeout=15, what="/readyz 200")
        self.assertEqual(item_verdict(get(srv.port, "/crud/items/7"), 7), "ok")
        self.assertRegex(srv.log_text(), r"database: bench@127\.0\.0\.1:%d/benchmark, 3 "
                         r"connections per worker" % self.pg.port)
        self.assertNotIn("bench:bench", srv.log_text(), "the password must not be logged")
        # COIL_DATABASE_URL before DATABASE_URL; COIL_DB_POOL before DATABASE_MAX_CONN
        srv = self.start("--workers", "2", env={"COIL_DATABASE_URL": self.pg.url,
                                                "DATABASE_URL": bad, "DATABASE_MAX_CONN": "6",
                                                "COIL_DB_POOL": "2"})
        wait_until(lambda: self.ready(srv), timeout=15, what="/readyz 200")
        self.assertEqual(item_verdict(get(srv.port, "/crud/items/8"), 8), "ok")
        self.assertIn("2 connections per worker", srv.log_text())
        # the flag before both
        srv = self.start("--workers", "2", "--database-url", self.pg.url, "--db-pool", "1",
                         env={"COIL_DATABASE_URL": bad, "DATABASE_URL": bad})
        wait_until(lambda: self.ready(srv), timeout=15, what="/readyz 200")
        self.assertEqual(item_verdict(get(srv.port, "/crud/items/9"), 9), "ok")
        self.assertIn("1 connections per worker", srv.log_text())

    def test_wrong_password(self):
        """Refused by the server: logged with libpq's reason, retried, answered as down."""
        srv = self.demo(url="postgres://bench:wrong@127.0.0.1:%d/benchmark" % self.pg.port,
                        wait_ready=False)
        wait_until(lambda: "password authentication failed" in srv.log_text(), timeout=10,
                   what="the server's refusal to be logged")
        self.assertTrue(self.not_ready(srv))
        r = get(srv.port, "/async-db")
        self.assertEqual((r.status, doc_of(r)), (200, EMPTY_LIST), r)
        self.assertEqual(get(srv.port, "/crud/items/1").status, 503)
        self.assertNotIn("wrong", srv.log_text(), "the password must not be logged")

    def test_concurrent_pipelined_reads_share_one_connection(self):
        """--db-pool 1: each worker's queries share one connection's pipeline. 24 keep-alive
        connections send batches of 8 mixed reads at once; every answer matches its request."""
        srv = self.demo("--db-pool", "1")
        failures, done = [], []
        lock = threading.Lock()

        def client(seed):
            rnd = random.Random(seed)
            try:
                c = Conn(srv.port, timeout=30)
                try:
                    for _ in range(6):
                        batch = [random_request(rnd) for _ in range(8)]
                        c.send(b"".join(request("GET", path) for path, _ in batch))
                        for path, verdict in batch:
                            v = verdict(c.read_response())
                            with lock:
                                done.append(path)
                                if v != "ok":
                                    failures.append((path, v))
                finally:
                    c.close()
            except Exception as e:  # a hang, a reset, a malformed answer
                with lock:
                    failures.append(("client %d" % seed, repr(e)))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertFalse(any(t.is_alive() for t in threads), "a client hung")
        self.assertEqual(failures[:10], [])
        self.assertEqual(len(done), 24 * 6 * 8)
        self.assertIn("1 connections per worker", srv.log_text())


# ---- HttpArena's crud writes ----------------------------------------------------------------

class ArenaWrites(DbCase):
    """The demo writing: POST (upsert) and PUT, the cache invalidated by writes."""

    def put(self, port, item_id, body):
        body = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return raw_one(port, request("PUT", "/crud/items/%s" % item_id, body=body,
                                     headers=["Content-Type: application/json",
                                              "Connection: close"]))

    def post(self, port, body):
        body = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return raw_one(port, request("POST", "/crud/items", body=body,
                                     headers=["Content-Type: application/json",
                                              "Connection: close"]))

    def test_validate_crud_checks(self):
        """validate.sh's crud block in its order (checks 1-4 are also tested more closely in
        ArenaReads)."""
        srv = self.demo()
        r = get(srv.port, "/crud/items?category=electronics&page=1&limit=5")
        self.assertEqual(list_verdict(r, "electronics", 1, 5), "ok")  # 1
        self.assertEqual(doc_of(get(srv.port, "/crud/items/1"))["id"], 1)  # 2
        a, b = get(srv.port, "/crud/items/42"), get(srv.port, "/crud/items/42")  # 3
        self.assertEqual((a.header("X-Cache"), b.header("X-Cache")), ("MISS", "HIT"))
        self.assertEqual(get(srv.port, "/crud/items/999999").status, 404)  # 4
        new = {"id": 200001, "name": "ValidateItem", "category": "test", "price": 42,
               "quantity": 7}
        r = self.post(srv.port, new)  # 5
        self.assertEqual(r.status, 201, r)
        self.assertTrue(is_json(r), r)
        want = dict(new, active=True, tags=[], rating={"score": 0, "count": 0})
        self.assertEqual(doc_of(r), want)
        r = get(srv.port, "/crud/items/200001")  # 6
        self.assertEqual((r.status, doc_of(r)), (200, want), r)
        # 7: warm, PUT, then a MISS with the new fields
        warm = get(srv.port, "/crud/items/1")
        self.assertEqual(warm.status, 200, warm)
        upd = {"name": "UpdatedItem", "category": "test", "price": 99, "quantity": 1}
        r = self.put(srv.port, 1, upd)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(doc_of(r), dict(BY_ID[1], **upd))
        r = get(srv.port, "/crud/items/1")
        self.assertEqual(r.header("X-Cache"), "MISS", r)
        self.assertEqual(doc_of(r), dict(BY_ID[1], **upd))

    def test_put_invalidates_on_every_worker(self):
        """Both workers hold the item; a PUT on one; the next GET on the other is a MISS with
        the new fields (the answer to the PUT came after every worker dropped it)."""
        srv = self.demo()
        conns = conns_by_worker(srv.port, 2)
        for c in conns.values():
            self.addCleanup(c.close)
        for n, item_id in enumerate((301, 302, 303, 304)):
            w, other = (0, 1) if n % 2 == 0 else (1, 0)
            self.assertEqual(conns[w].request("GET", "/crud/items/%d" % item_id)
                             .header("X-Cache"), "MISS")
            # cached there too now: a HIT, or a MISS that put it there itself (the copy's
            # race is test_cache_hit_on_the_other_worker's)
            r = conns[other].request("GET", "/crud/items/%d" % item_id)
            self.assertEqual(item_verdict(r, item_id), "ok")
            if r.header("X-Cache") == "MISS":
                self.assertEqual(conns[other].request("GET", "/crud/items/%d" % item_id)
                                 .header("X-Cache"), "HIT")
            upd = {"name": "Put %d" % n, "category": "test", "price": 10 + n, "quantity": n}
            r = conns[w].request("PUT", "/crud/items/%d" % item_id, body=json.dumps(upd))
            self.assertEqual((r.status, doc_of(r)), (200, dict(BY_ID[item_id], **upd)), r)
            r = conns[other].request("GET", "/crud/items/%d" % item_id)
            self.assertEqual((r.status, r.header("X-Cache"), doc_of(r)),
                             (200, "MISS", dict(BY_ID[item_id], **upd)), r)
            r = conns[w].request("GET", "/crud/items/%d" % item_id)
            self.assertEqual(doc_of(r), dict(BY_ID[item_id], **upd), r)

    def test_post_is_an_upsert_and_invalidates(self):
        srv = self.demo()
        first = {"id": 200100, "name": "First", "category": "tools", "price": 5, "quantity": 6}
        r = self.post(srv.port, first)
        self.assertEqual((r.status, doc_of(r)["name"]), (201, "First"), r)
        self.assertEqual(get(srv.port, "/crud/items/200100").header("X-Cache"), "MISS")
        second = dict(first, name="Second", price=77)
        r = self.post(srv.port, second)
        self.assertEqual(r.status, 201, r)
        r = get(srv.port, "/crud/items/200100")
        self.assertEqual((r.header("X-Cache"), doc_of(r)["name"], doc_of(r)["price"]),
                         ("MISS", "Second", 77), r)
        # an existing seeded row through POST: updated, the rest of the row kept
        r = self.post(srv.port, {"id": 60, "name": "Sixty", "category": "x", "price": 1,
                                 "quantity": 2})
        self.assertEqual(doc_of(r), dict(BY_ID[60], name="Sixty", category="x", price=1,
                                         quantity=2))
        # text that needs escaping both ways
        odd = {"id": 200101, "name": "quo\"te \\ back/slash \u00e9\u4e2d \U0001F600 \t tab",
               "category": "c'at", "price": -3, "quantity": 2147483647}
        r = self.post(srv.port, odd)
        self.assertEqual((r.status, doc_of(r)), (201, dict(odd, active=True, tags=[],
                                                           rating={"score": 0, "count": 0})), r)
        self.assertEqual(doc_of(get(srv.port, "/crud/items/200101"))["name"], odd["name"])

    def test_put_of_a_missing_id_is_404(self):
        srv = self.demo()
        upd = {"name": "n", "category": "c", "price": 1, "quantity": 1}
        for item_id in ("999999", "300000", "0", "abc", "-4"):
            with self.subTest(id=item_id):
                self.assertJsonError(self.put(srv.port, item_id, upd), 404)
        self.assertEqual(get(srv.port, "/crud/items/300000").status, 404)
        r = self.put(srv.port, "00077", upd)  # leading zeros: the item 77
        self.assertEqual((r.status, doc_of(r)["id"]), (200, 77), r)

    def test_bad_bodies_are_400_with_a_json_error(self):
        srv = self.demo()
        good_put = {"name": "n", "category": "c", "price": 1, "quantity": 1}
        good_post = dict(good_put, id=200200)
        bad = [b"", b"not json", b"{", b"[1, 2]", b"null", b"\"text\"", b"{\"name\": \"x\"}",
               b'{"name":"a","name":"b","category":"c","price":1,"quantity":1,"id":200200}']
        for field in ("name", "category", "price", "quantity"):
            bad.append(json.dumps({k: v for k, v in good_post.items() if k != field}))
        for field, value in (("name", 5), ("name", None), ("category", ["c"]), ("price", "42"),
                             ("price", 4.2), ("quantity", True), ("quantity", 2 ** 31),
                             ("price", -2 ** 31 - 1), ("name", "nul\u0000inside")):
            bad.append(json.dumps(dict(good_post, **{field: value})))
        for body in bad:
            with self.subTest(body=body):
                self.assertJsonError(self.post(srv.port, body), 400)
                self.assertJsonError(self.put(srv.port, 3, body), 400)
        for value in (0, -1, "7", 2 ** 31, 1.5, None):
            with self.subTest(id=value):
                self.assertJsonError(self.post(srv.port, dict(good_put, id=value)), 400)
        self.assertJsonError(self.post(srv.port, good_put), 400)  # POST needs the id
        # nothing was written by any of them
        self.assertEqual(get(srv.port, "/crud/items/200200").status, 404)
        self.assertEqual(item_verdict(get(srv.port, "/crud/items/3"), 3), "ok")


def raw_one(port, data):
    c = Conn(port)
    try:
        c.send(data)
        return c.read_response()
    finally:
        c.close()


# ---- faults: the database restarted, its backends killed -------------------------------------

class LoadLoop:
    """Client threads reading the demo's database routes on keep-alive connections until
    stopped, recording (time, path, verdict) for each answer and every exception."""

    def __init__(self, port, threads=4, seed=1):
        self.port = port
        self.results = []
        self.errors = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(seed * 100 + i,), daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, seed):
        rnd = random.Random(seed)
        c = None
        try:
            while not self.stopping.is_set():
                if c is None:
                    c = Conn(self.port, timeout=15)
                path, verdict = random_request(rnd)
                t = time.monotonic()
                r = c.request("GET", path)
                with self.lock:
                    self.results.append((t, path, verdict(r)))
                if r.has_token("Connection", "close"):
                    c.close()
                    c = None
                time.sleep(0.002)
        except Exception as e:  # a hang (timeout), a reset, a malformed answer
            with self.lock:
                self.errors.append(repr(e))
        finally:
            if c is not None:
                c.close()

    def since(self, t0):
        with self.lock:
            return [r for r in self.results if r[0] >= t0]

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(30)
        return not any(t.is_alive() for t in self.threads)


class DatabaseFaults(DbCase):
    def demo_with_loop(self, *args, env=None):
        srv = self.demo(*args, env=env)
        loop = LoadLoop(srv.port)
        self.addCleanup(loop.stop)
        return srv, loop

    def wait_all_right(self, loop, what, timeout=30):
        """Waits until the last 40 answers, all given after now, are right."""
        def right():
            recent = loop.since(t0)
            return len(recent) >= 40 and all(v == "ok" for _, _, v in recent[-40:])
        t0 = time.monotonic()
        wait_until(lambda: right() or loop.errors, timeout=timeout, what=what)
        self.assertEqual(loop.errors, [])

    def assertNoBadAnswers(self, loop, allowed=("ok", "empty", "down")):
        bad = [r for r in loop.results if r[2] not in allowed]
        self.assertEqual(bad[:5], [], "answers that did not match their requests")
        self.assertEqual(loop.errors, [], "a client saw a hang, a reset or a malformed answer")

    def test_restart_under_load(self):
        srv, loop = self.demo_with_loop()
        pid = srv.pid
        self.wait_all_right(loop, "right answers before the restart")
        self.pg.stop_server()
        t_down = time.monotonic()
        wait_until(lambda: self.not_ready(srv), timeout=15,
                   what="/readyz 503 with the database down")
        self.assertEqual(get(srv.port, "/healthz").status, 200)
        wait_until(lambda: any(v == "empty" for _, p, v in loop.since(t_down)
                               if p.startswith("/async-db"))
                   and any(v == "down" for _, _, v in loop.since(t_down)) or loop.errors,
                   timeout=15, what="async-db's empty list and crud's 503 during the outage")
        # while it is down: every answer is at once the empty list or a 503, never a hang
        r = get(srv.port, "/async-db")
        self.assertEqual((r.status, doc_of(r)), (200, EMPTY_LIST), r)
        r = get(srv.port, "/crud/items/12345")
        self.assertEqual(r.status, 503, r)
        time.sleep(2)
        self.pg.start_server()
        wait_until(lambda: self.ready(srv), timeout=30, what="/readyz 200 after the restart")
        self.wait_all_right(loop, "right answers after the restart")
        t_ready = time.monotonic()
        time.sleep(0.5)
        self.assertTrue(loop.stop(), "a client hung")
        self.assertNoBadAnswers(loop)
        after = loop.since(t_ready)
        self.assertTrue(after)
        self.assertEqual([r for r in after if r[2] != "ok"][:5], [],
                         "wrong answers once every worker was ready again")
        self.assertTrue(srv.running())
        self.assertEqual(srv.pid, pid)
        log = srv.log_text()
        self.assertIn("database connection lost", log)
        self.assertIn("database connection open", log)

    def test_backends_killed_under_load(self):
        srv, loop = self.demo_with_loop()
        self.wait_all_right(loop, "right answers before the kill")
        for _ in range(3):
            self.assertGreaterEqual(self.pg.kill_connections(), 1)
            wait_until(lambda: self.ready(srv), timeout=30, what="/readyz 200 after the kill")
            self.wait_all_right(loop, "right answers after the kill")
        self.assertTrue(loop.stop(), "a client hung")
        self.assertNoBadAnswers(loop)
        self.assertTrue(srv.running())
        self.assertIn("database connection lost", srv.log_text())

    def test_memory_does_not_grow_across_faults(self):
        env = None
        if SANITIZED:  # ASan's quarantine would count freed memory as growth: keep it small
            opts = os.environ.get("ASAN_OPTIONS", "")
            env = {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=4"}
        srv, loop = self.demo_with_loop(env=env)

        def cycle(restart):
            if restart:
                self.pg.stop_server()
                wait_until(lambda: self.not_ready(srv), timeout=15, what="/readyz 503")
                time.sleep(0.5)
                self.pg.start_server()
            else:
                self.pg.kill_connections()
            wait_until(lambda: self.ready(srv), timeout=30, what="/readyz 200 again")
            self.wait_all_right(loop, "right answers again")

        cycle(True)  # warm up: the first of everything is not growth
        cycle(False)
        base = vm_rss_kib(srv.pid)
        samples = []
        for n in range(12):
            cycle(n % 4 == 3)
            samples.append(vm_rss_kib(srv.pid))
        self.assertTrue(loop.stop(), "a client hung")
        self.assertNoBadAnswers(loop)
        growth = (max(samples) - base) / 1024
        self.assertLess(growth, 32, "RSS grew by %.1f MiB over 12 database faults (base %d KiB, "
                        "samples %s)" % (growth, base, samples))


class DatabaseDownAtStart(DbCase):
    """coil starts while nothing listens on the database's port; the database comes later."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg.stop_server()  # seeded, then stopped: the port is free until start_server()

    def setUp(self):
        if self.pg.running():
            self.pg.stop_server()

    def assertDownAnswers(self, srv):
        """What the demo answers without a database: at once, never a hang."""
        self.assertEqual(get(srv.port, "/healthz").status, 200)
        self.assertTrue(self.not_ready(srv))
        for path in ("/async-db", "/async-db?min=1&max=500&limit=5"):
            r = get(srv.port, path)
            self.assertEqual((r.status, doc_of(r)), (200, EMPTY_LIST), r)
            self.assertTrue(is_json(r), r)
        self.assertEqual(get(srv.port, "/crud/items/3").status, 503)
        self.assertEqual(get(srv.port, "/crud/items?category=tools").status, 503)
        r = raw_one(srv.port, request("PUT", "/crud/items/3", body=json.dumps(
            {"name": "n", "category": "c", "price": 1, "quantity": 1}),
            headers=["Connection: close"]))
        self.assertEqual(r.status, 503, r)
        r = raw_one(srv.port, request("POST", "/crud/items", body=json.dumps(
            {"id": 5, "name": "n", "category": "c", "price": 1, "quantity": 1}),
            headers=["Connection: close"]))
        self.assertEqual(r.status, 503, r)

    def test_database_that_never_answers(self):
        """A port that accepts and then says nothing: connection attempts time out (logged),
        queries fail at once meanwhile, and SIGTERM stops coil with attempts in progress."""
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        self.addCleanup(hole.close)
        accepted = []

        def accept():
            while True:
                try:
                    accepted.append(hole.accept()[0])
                except OSError:
                    return
        threading.Thread(target=accept, daemon=True).start()
        self.addCleanup(lambda: [a.close() for a in accepted])
        srv = self.demo(url="postgres://bench:bench@127.0.0.1:%d/benchmark"
                        % hole.getsockname()[1], wait_ready=False)
        wait_until(lambda: accepted, timeout=10, what="coil to connect")
        self.assertDownAnswers(srv)
        wait_until(lambda: "timed out connecting" in srv.log_text(), timeout=20,
                   what="the connect timeout to be logged")
        self.assertDownAnswers(srv)
        self.stop(srv)

    def test_host_name_that_does_not_resolve(self):
        """Resolved at start on the main thread; when it fails, retried in the background
        (logged); the database is down meanwhile, and SIGTERM stops the retrying thread too."""
        url = "postgres://bench:bench@no-such-host.invalid:%d/benchmark" % self.pg.port
        srv = Server(["--workers", "2", "--database-url", url], ready_timeout=60)
        self._servers.append(srv)
        self.addCleanup(self._stop_checked, srv, 0)
        self.assertIn("cannot resolve no-such-host.invalid now: retrying in the background",
                      srv.log_text())
        self.assertDownAnswers(srv)
        time.sleep(1.2)  # a background attempt or more
        self.assertDownAnswers(srv)
        self.stop(srv)

    def test_stops_cleanly_while_the_database_is_down(self):
        srv = self.demo(wait_ready=False)
        wait_until(lambda: "cannot connect to the database" in srv.log_text(), timeout=10,
                   what="the failure to be logged")
        time.sleep(0.7)  # reconnect timers armed, attempts in progress
        self.assertDownAnswers(srv)
        self.stop(srv)

    def test_starts_without_the_database_then_becomes_ready(self):
        # a host name, as HttpArena gives it: resolved once at start
        url = "postgres://bench:bench@localhost:%d/benchmark" % self.pg.port
        srv = self.demo(url=url, wait_ready=False)
        wait_until(lambda: "cannot connect to the database" in srv.log_text(), timeout=10,
                   what="the reason to be logged")
        self.assertRegex(srv.log_text(), r"cannot connect to the database: .*(refused|connect)",
                         "libpq's reason")
        self.assertDownAnswers(srv)
        time.sleep(1)  # some reconnect attempts fail and back off
        self.assertDownAnswers(srv)
        self.pg.start_server()
        wait_until(lambda: self.ready(srv), timeout=30, what="/readyz 200 once the database is up")
        self.assertAsync(get(srv.port, "/async-db?min=5&max=80&limit=7"), 5, 80, 7)
        self.assertEqual(item_verdict(get(srv.port, "/crud/items/3"), 3), "ok")
        self.assertIn("database connection open", srv.log_text())
        self.assertTrue(srv.running())


# ---- the API through pgapp --------------------------------------------------------------------

class PgApp(DbCase):
    ROWS = 1000

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pg.psql("CREATE TABLE scratch (id integer PRIMARY KEY, v text);")

    def sql(self, srv, sql, *params, conn=None, route="/sql", status=200, **kw):
        """Runs sql with params (None: SQL NULL) through /sql; returns its JSON."""
        args = {"q": sql} if sql is not None else {}
        args.update(kw)
        if params:
            args["n"] = len(params)
            for i, p in enumerate(params):
                if p is not None:
                    args["p%d" % (i + 1)] = p
        path = q(route, **args)
        r = conn.request("GET", path) if conn else get(srv.port, path)
        if status is not None:
            self.assertEqual(r.status, status, r)
        self.assertTrue(is_json(r), r)
        return doc_of(r)

    def ok(self, srv, sql, *params, **kw):
        doc = self.sql(srv, sql, *params, **kw)
        self.assertIsNone(doc["error"], doc)
        return doc

    def failed(self, srv, sql, sqlstate, *params, **kw):
        doc = self.sql(srv, sql, *params, **kw)
        self.assertEqual((doc["error"], doc["sqlstate"]), ("EIO", sqlstate), doc)
        self.assertTrue(doc["message"], doc)
        self.assertEqual((doc["nrows"], doc["rows"]), (0, []), doc)
        return doc

    def test_results_nulls_and_column_names(self):
        srv = self.pgapp()
        doc = self.ok(srv, "SELECT 1 AS one, NULL::text AS nothing, 'x y' AS text, ''::text AS "
                      "empty, true AS yes")
        self.assertEqual((doc["nrows"], doc["ncols"]), (1, 5))
        self.assertEqual(doc["colnames"], ["one", "nothing", "text", "empty", "yes"])
        self.assertEqual(doc["rows"], [["1", None, "x y", "", "t"]])
        doc = self.ok(srv, "SELECT g, CASE WHEN g % 2 = 0 THEN NULL ELSE g * 10 END AS h "
                      "FROM generate_series(1, 5) g")
        self.assertEqual(doc["rows"], [["1", "10"], ["2", None], ["3", "30"], ["4", None],
                                       ["5", "50"]])
        doc = self.ok(srv, "SELECT id FROM items WHERE id < 0")
        self.assertEqual((doc["nrows"], doc["ncols"], doc["rows"], doc["colnames"]),
                         (0, 1, [], ["id"]))
        doc = self.ok(srv, "SELECT id, name, price FROM items WHERE id IN (1, 500, 1000) "
                      "ORDER BY id")
        rows = services.item_rows(self.ROWS)
        self.assertEqual(doc["rows"], [[str(r["id"]), r["name"], str(r["price"])]
                                       for r in (rows[0], rows[499], rows[999])])
        # a large result: 30000 rows of 100 bytes
        doc = self.ok(srv, "SELECT g, repeat('x', 100) FROM generate_series(1, 30000) g")
        self.assertEqual(doc["nrows"], 30000)
        self.assertEqual(doc["rows"][-1], ["30000", "x" * 100])
        self.assertEqual(len(doc["rows"]), 30000)
        # text the JSON writer must escape, and UTF-8
        doc = self.ok(srv, "SELECT $1::text", "quo\"te\\ \u00e9\u4e2d\U0001F600\n\t\x01")
        self.assertEqual(doc["rows"], [["quo\"te\\ \u00e9\u4e2d\U0001F600\n\t\x01"]])
        self.assertAppClean(srv)

    def test_affected_rows(self):
        srv = self.pgapp()
        self.ok(srv, "DELETE FROM scratch")
        doc = self.ok(srv, "INSERT INTO scratch SELECT g, 'v' || g FROM generate_series(1, 25) g")
        self.assertEqual((doc["affected"], doc["nrows"]), (25, 0), doc)
        doc = self.ok(srv, "UPDATE scratch SET v = 'odd' WHERE id % 2 = 1")
        self.assertEqual(doc["affected"], 13, doc)
        doc = self.ok(srv, "UPDATE scratch SET v = 'none' WHERE id > 1000")
        self.assertEqual(doc["affected"], 0, doc)
        doc = self.ok(srv, "UPDATE scratch SET v = $2 WHERE id <= $1 RETURNING id", "4", "r")
        self.assertEqual((doc["affected"], doc["nrows"]), (4, 4), doc)
        doc = self.ok(srv, "DELETE FROM scratch WHERE id > 20")
        self.assertEqual(doc["affected"], 5, doc)
        doc = self.ok(srv, "CREATE TEMP TABLE t (x int)")
        self.assertEqual((doc["affected"], doc["nrows"], doc["ncols"]), (0, 0, 0), doc)

    def test_select_reports_no_affected_rows(self):
        """coil_pg.h: affected is "rows inserted, updated or deleted (0 for a SELECT)"."""
        srv = self.pgapp()
        doc = self.ok(srv, "SELECT g FROM generate_series(1, 3) g")
        self.assertEqual(doc["nrows"], 3)
        self.assertEqual(doc["affected"], 0, "a SELECT of 3 rows reported affected=%d"
                         % doc["affected"])

    def test_parameters_null_empty_and_many(self):
        srv = self.pgapp()
        doc = self.ok(srv, "SELECT $1::text IS NULL, $2::text IS NULL, $2::text = '', $3::int + 1",
                      None, "", "41")
        self.assertEqual(doc["rows"], [["t", "f", "t", "42"]])
        doc = self.ok(srv, "SELECT $1::text, $2::text", None, None)
        self.assertEqual(doc["rows"], [[None, None]])
        doc = self.ok(srv, "SELECT name FROM items WHERE id = $1", "00007")
        self.assertEqual(doc["rows"], [[services.item_rows(7)[6]["name"]]])
        # a parameter is data, never SQL
        doc = self.ok(srv, "SELECT $1::text", "'; DROP TABLE items; --")
        self.assertEqual(doc["rows"], [["'; DROP TABLE items; --"]])
        self.failed(srv, "SELECT $1::int", "22P02", "not a number")
        for n, null_at, want in ((1, 0, "1 1"), (100, 0, "100 5050"), (1000, 7, "999 500493"),
                                 (65535, 65535, "65534 2147385345")):
            with self.subTest(n=n):
                r = get(srv.port, "/many?n=%d&null=%d" % (n, null_at))
                self.assertEqual((r.status, r.body.decode()), (200, want), r)
        r = get(srv.port, "/many?n=65536")
        self.assertEqual((r.status, doc_of(r)), (400, {"error": "EINVAL", "sync": True}), r)
        self.assertAppClean(srv)

    def test_server_errors_are_eio_with_sqlstate(self):
        srv = self.pgapp()
        self.failed(srv, "SELECT 1/0", "22012")
        self.failed(srv, "SELECT * FROM no_such_table", "42P01")
        self.failed(srv, "SELEKT 1", "42601")
        self.failed(srv, "SELECT 1; SELECT 2", "42601")  # one statement per query
        self.ok(srv, "INSERT INTO scratch VALUES (9001, 'a') ON CONFLICT DO NOTHING")
        self.failed(srv, "INSERT INTO scratch VALUES (9001, 'b')", "23505")
        doc = self.sql(srv, None, "x", stmt="no_such_statement")
        self.assertEqual((doc["error"], doc["sqlstate"]), ("EIO", "26000"), doc)
        # a notice is not an error
        self.ok(srv, "DO $$ BEGIN RAISE NOTICE 'just saying'; END $$")
        self.assertAppClean(srv)

    def test_empty_query_says_why(self):
        """An empty SQL text: either no rows, or -EIO whose message says why (coil_pg.h: for
        -EIO "sqlstate and message say why")."""
        srv = self.pgapp()
        doc = self.sql(srv, "")
        if doc["error"] is None:
            self.assertEqual(doc["nrows"], 0, doc)
        else:
            self.assertEqual(doc["error"], "EIO", doc)
            self.assertTrue(doc["message"], "-EIO with an empty message: %r" % doc)
        self.assertAppClean(srv)

    def test_failing_queries_do_not_touch_their_neighbours(self):
        """One connection (pool 1, one worker): good and failing queries pipelined together;
        each is its own transaction, each answer its own."""
        srv = self.pgapp("--db-pool", "1", workers=1)
        c = self.connect(srv)
        self.ok(srv, "DELETE FROM scratch WHERE id BETWEEN 100 AND 199")
        paths = []
        for i in range(20):
            paths += [q("/sql", q="SELECT 1/0"),
                      "/echo/v%d" % i,
                      q("/sql", q="INSERT INTO scratch VALUES (%d, 'x')" % (100 + i)),
                      q("/sql", q="INSERT INTO scratch VALUES (%d, 'dup')" % (100 + i)),
                      q("/sql", q="SELECT * FROM nope")]
        c.send(b"".join(request("GET", p) for p in paths))
        for i in range(20):
            a, b, ins, dup, nope = (c.read_response() for _ in range(5))
            self.assertEqual(doc_of(a)["sqlstate"], "22012", a)
            self.assertEqual((b.status, b.body), (200, b"v%d" % i), b)
            self.assertEqual((doc_of(ins)["error"], doc_of(ins)["affected"]), (None, 1), ins)
            self.assertEqual(doc_of(dup)["sqlstate"], "23505", dup)
            self.assertEqual(doc_of(nope)["sqlstate"], "42P01", nope)
        doc = self.ok(srv, "SELECT count(*), min(v), max(v) FROM scratch "
                      "WHERE id BETWEEN 100 AND 199")
        self.assertEqual(doc["rows"], [["20", "x", "x"]], "every insert committed on its own")
        self.assertAppClean(srv)

    def test_refused_prepared_statement(self):
        """'bad' names a missing table: logged at start, its queries fail with the server's
        error, every other statement works on the same connections."""
        srv = self.pgapp("--db-pool", "2")
        wait_until(lambda: "refused statement bad" in srv.log_text(), timeout=10,
                   what="the refused statement to be logged")
        self.assertIn("no_such_table", srv.log_text())
        for _ in range(6):
            r = get(srv.port, "/bad")
            doc = doc_of(r)
            self.assertEqual(doc["error"], "EIO", doc)
            self.assertIn(doc["sqlstate"], ("42P01", "26000"), doc)  # the refusal, or its sequel
            self.assertTrue(doc["message"], doc)
            self.assertEqual(get(srv.port, "/echo/fine").body, b"fine")
            self.assertEqual(get(srv.port, "/add?a=40&b=2").body, b"42")
        self.assertAppClean(srv)

    def test_accessors(self):
        srv = self.pgapp()
        r = get(srv.port, "/types")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(doc_of(r), {
            "int_big": 9223372036854775807, "int_small": -9223372036854775808, "int_zero": 0,
            "int_null_int": "EINVAL", "int_text": "EINVAL", "int_huge": "ERANGE",
            "int_frac": "EINVAL", "int_plus": "EINVAL", "bool_yes": True, "bool_no": False,
            "bool_null_bool": "EINVAL", "bool_text": "EINVAL", "isnull_null_int": True,
            "isnull_text": False, "isnull_out_of_range": True, "get_out_of_range_null": True,
            "int_out_of_range": "EINVAL", "colnum_missing": -1,
            "colname_out_of_range_null": True, "empty_text_len": 0,
            "empty_text_not_null": True})
        self.assertAppClean(srv)

    def test_argument_checks(self):
        srv = self.pgapp()
        r = get(srv.port, "/checks")
        self.assertEqual(r.status, 200, r)
        einval = -22
        self.assertEqual(doc_of(r), {
            "not_deferred": einval, "both_stmt_and_sql": einval, "neither": einval,
            "negative_nparams": einval, "params_null": einval, "too_many_params": einval,
            "no_callback": einval, "no_db": einval, "no_query": einval,
            "prepare_after_start": einval})
        st = self.assertAppClean(srv)
        self.assertEqual(st["startup"], {
            "second_flags_db_is_null": 1, "open_without_app_is_null": 1,
            "prepare_duplicate": -17, "prepare_empty_name": einval,
            "prepare_empty_sql": einval, "prepare_null_db": einval,
            "query_off_worker": einval})
        self.assertIn("only one database can take --database-url", srv.log_text())

    def test_queries_from_callbacks_and_many_per_request(self):
        srv = self.pgapp("--db-pool", "1")
        self.assertEqual(get(srv.port, "/chain?n=300").body, b"300")
        r = get(srv.port, "/fanout?n=500")
        self.assertEqual(doc_of(r), {"sent": 500, "ok": 500, "failed": 0,
                                     "sum": sum(i * 1001 for i in range(500)), "errors": []})
        # several at once on both workers
        results, lock = [], threading.Lock()

        def one(n):
            r1 = get(srv.port, "/chain?n=%d" % n)
            r2 = get(srv.port, "/fanout?n=%d" % n)
            with lock:
                results.append((n, r1.body, doc_of(r2)))

        threads = [threading.Thread(target=one, args=(n,)) for n in range(20, 36)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(len(results), 16)
        for n, chain, fan in results:
            self.assertEqual(chain, b"%d" % n)
            self.assertEqual((fan["ok"], fan["sum"]), (n, sum(i * 1001 for i in range(n))), fan)
        self.assertAppClean(srv)

    def test_concurrent_prepared_echo_each_gets_its_own(self):
        """--db-pool 1: 32 connections, each pipelining 10 /echo/:v at once with values no other
        request has; every answer is its own value."""
        srv = self.pgapp("--db-pool", "1")
        failures, count, lock = [], [0], threading.Lock()

        def client(k):
            try:
                c = Conn(srv.port, timeout=30)
                try:
                    for rnd in range(5):
                        vals = ["c%dr%di%d-%s" % (k, rnd, i, "\u00e9" * (i % 3))
                                for i in range(10)]
                        c.send(b"".join(request("GET", "/echo/" + urllib.parse.quote(v))
                                        for v in vals))
                        for v in vals:
                            r = c.read_response()
                            with lock:
                                count[0] += 1
                                if (r.status, r.body.decode("utf-8", "replace")) != (200, v):
                                    failures.append((v, r))
                finally:
                    c.close()
            except Exception as e:
                with lock:
                    failures.append(("client %d" % k, repr(e)))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(failures[:5], [])
        self.assertEqual(count[0], 32 * 5 * 10)
        self.assertAppClean(srv)

    def test_no_database_configured(self):
        """Without a URL: every query fails at once with -ENOTCONN, and readiness does not wait
        for a database that is not there."""
        srv = self.pgapp(db=False)
        for path in (q("/sql", q="SELECT 1"), "/echo/x", "/sleep?ms=1", "/chain?n=2",
                     "/fanout?n=3", "/types"):
            with self.subTest(path=path):
                r = get(srv.port, path)
                self.assertEqual((r.status, doc_of(r)), (503, {"error": "ENOTCONN", "sync": True}),
                                 r)
        self.assertTrue(self.ready(srv))
        self.assertEqual(doc_of(get(srv.port, "/checks"))["prepare_after_start"], -22)
        self.assertTrue(self.app_stats(srv)["ready"])
        self.assertNotIn("database:", srv.log_text())
        self.assertAppClean(srv)

    def test_second_database_from_options(self):
        """coil_pg_open with opts->conninfo (pool 1, pipeline 4): its own connections, the
        application_name coil sets, and readiness waiting for it too."""
        srv = self.pgapp("--db2", self.pg.url)
        doc = self.sql(srv, "SELECT current_setting('application_name'), current_user",
                       route="/db2")
        self.assertEqual(doc["rows"], [["coil", "bench"]], doc)
        self.assertIn("1 connections per worker, 4 queries in flight each", srv.log_text())
        wait_until(lambda: self.ready(srv), timeout=10, what="/readyz 200 with both databases")
        down = "host=127.0.0.1 port=%d dbname=benchmark user=bench password=bench " \
               "connect_timeout=2" % services.free_port()
        srv2 = self.pgapp("--db2", down, wait_ready=False)
        wait_until(lambda: self.app_stats(srv2)["ready"], timeout=15, what="the first database")
        self.assertEqual(self.ok(srv2, "SELECT 7")["rows"], [["7"]])
        r = get(srv2.port, q("/db2", q="SELECT 1"))
        self.assertEqual((r.status, doc_of(r)), (503, {"error": "ENOTCONN", "sync": True}), r)
        time.sleep(0.5)
        self.assertTrue(self.not_ready(srv2), "ready while the second database is down")
        self.assertTrue(self.app_stats(srv2)["ready"], "the first database is ready")

    def test_unix_socket_and_keyword_conninfo(self):
        """A key=value conninfo naming the server's socket directory (no name to resolve)."""
        conninfo = "host=%s port=%d dbname=benchmark user=bench" % (self.pg.socket_dir,
                                                                   self.pg.port)
        srv = self.pgapp(url=conninfo)
        doc = self.ok(srv, "SELECT current_user, inet_server_addr() IS NULL")
        self.assertEqual(doc["rows"], [["bench", "t"]], "over the unix socket")
        self.assertIn("database: bench@%s:%d/benchmark" % (self.pg.socket_dir, self.pg.port),
                      srv.log_text())
        self.assertAppClean(srv)

    def test_query_timeout_replaces_the_connection(self):
        """--db-timeout 300ms: a 2 s query fails with -ETIMEDOUT (504); the query pipelined
        behind it on the same connection with -ECONNRESET; then the connection is replaced and
        queries work again."""
        srv = self.pgapp("--db-pool", "1", "--db-timeout", "300ms", workers=1)
        a, b = self.connect(srv), self.connect(srv)
        a.send(request("GET", "/sleep?ms=2000"))
        time.sleep(0.05)
        b.send(request("GET", "/echo/behind"))
        ra, rb = a.read_response(), b.read_response()
        self.assertEqual((ra.status, doc_of(ra)["error"], doc_of(ra)["sync"]),
                         (504, "ETIMEDOUT", False), ra)
        self.assertIn(rb.status, (503, 200), rb)
        if rb.status == 503:
            self.assertIn(doc_of(rb)["error"], ("ECONNRESET", "ENOTCONN"), rb)
        wait_until(lambda: "a query on this connection timed out" in srv.log_text(), timeout=5,
                   what="the replaced connection in the log")
        wait_until(lambda: get(srv.port, "/echo/again").body == b"again", timeout=15,
                   what="queries to work on a new connection")
        self.assertEqual(get(srv.port, "/sleep?ms=10").body, b"slept")
        self.assertTrue(srv.running())
        self.assertAppClean(srv)

    def test_query_queued_behind_a_timeout_is_answered(self):
        """pipeline 1: a query waiting for room behind a slow one is answered when the slow one
        times out and its connection is replaced: on the new connection (coil closed the old one
        itself, so the worker is not "down" and the query keeps waiting for it), or, had its own
        deadline come first, as a timeout; never left waiting."""
        srv = self.pgapp("--db-pool", "1", "--db-pipeline", "1", "--db-timeout", "500ms",
                         workers=1)
        a, b = self.connect(srv), self.connect(srv)
        a.send(request("GET", "/sleep?ms=3000"))
        time.sleep(0.05)
        b.send(request("GET", "/echo/queued"))
        ra, rb = a.read_response(), b.read_response()
        self.assertEqual((ra.status, doc_of(ra)["error"]), (504, "ETIMEDOUT"), ra)
        if rb.status != 200:
            self.assertEqual((rb.status, doc_of(rb)["error"]), (504, "ETIMEDOUT"), rb)
        else:
            self.assertEqual(rb.body, b"queued", rb)
        wait_until(lambda: get(srv.port, "/echo/later").body == b"later", timeout=15,
                   what="queries to work again")
        self.assertAppClean(srv)

    def test_full_pool_and_queue_answer_503(self):
        """--db-pool 1 --db-pipeline 1 --db-queue 1: a burst of slow queries; one in flight and
        one waiting per worker, the rest refused at once with -EBUSY (503); nothing hangs."""
        srv = self.pgapp("--db-pool", "1", "--db-pipeline", "1", "--db-queue", "1")
        conns = [self.connect(srv) for _ in range(16)]
        for c in conns:
            c.send(request("GET", "/sleep?ms=1000"))  # all sent while the first ones run
        answers = [c.read_response() for c in conns]
        ok = [r for r in answers if (r.status, r.body) == (200, b"slept")]
        busy = [r for r in answers if r.status == 503]
        self.assertEqual(len(ok) + len(busy), 16, answers)
        self.assertGreaterEqual(len(ok), 1, answers)
        self.assertLessEqual(len(ok), 4, "more in flight and waiting than 2 workers x (1 + 1)")
        self.assertGreaterEqual(len(busy), 12, answers)
        for r in busy:
            self.assertEqual(doc_of(r), {"error": "EBUSY", "sync": True}, r)
        self.assertEqual(get(srv.port, "/sleep?ms=1").body, b"slept")
        self.assertAppClean(srv)

    def test_clients_leaving_with_queries_in_flight(self):
        """Clients send /sleep and leave at once (closed, or reset), with and without an
        owner: callbacks of owned queries are dropped (never called for a request that is
        gone), owner-less ones still run; nothing leaks (the sanitizer build checks at exit)."""
        srv = self.pgapp("--db-pool", "2")
        for i in range(60):
            c = Conn(srv.port)
            c.send(request("GET", "/sleep?ms=%d&owner=%d" % (100 + i % 5 * 20, i % 2)))
            if i % 3 == 0:  # reset instead of a FIN
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif i % 3 == 1:
                time.sleep(0.01)  # the handler has run: the query is in flight
            c.close()
        # keep-alive clients that leave with pipelined queries queued behind one in flight
        for i in range(5):
            c = Conn(srv.port)
            c.send(b"".join(request("GET", "/sleep?ms=50") for _ in range(4)))
            time.sleep(0.02)
            c.close()
        wait_until(lambda: self.app_stats(srv)["waiting"] == 0, timeout=30,
                   what="every aborted request to be gone")

        def settled():
            st = self.app_stats(srv)
            return st["no_owner_done"] == st["no_owner"]
        wait_until(settled, timeout=30, what="the owner-less queries to come back")
        st = self.assertAppClean(srv)
        self.assertGreater(st["aborts"], 0, st)
        self.assertEqual(st["orphans"], st["no_owner_done"], st)
        self.assertEqual(get(srv.port, "/echo/still").body, b"still")
        self.assertEqual(get(srv.port, "/sleep?ms=1&owner=0").body, b"slept")
        self.assertTrue(srv.running())

    def test_backends_killed_mid_query(self):
        srv = self.pgapp("--db-pool", "1", workers=1)
        c = self.connect(srv)
        c.send(request("GET", "/sleep?ms=3000"))
        wait_until(lambda: self.app_stats(srv)["waiting"] == 1, timeout=10,
                   what="the query to be sent")
        time.sleep(0.2)  # on the server now (had it not started, it would fail the same way)
        self.assertGreaterEqual(self.pg.kill_connections(), 1)
        r = c.read_response()
        # coil_pg.h: a connection that fails fails the queries in flight with -ECONNRESET
        self.assertEqual((r.status, doc_of(r)["error"]), (503, "ECONNRESET"), r)
        wait_until(lambda: get(srv.port, "/echo/back").body == b"back", timeout=15,
                   what="a new connection")
        self.assertAppClean(srv)

    def test_many_queries_in_flight_when_the_backend_dies(self):
        """100 queries in flight on one connection (pipeline 128) when its backend is killed:
        each fails with -ECONNRESET, once; then a new connection serves."""
        srv = self.pgapp("--db-pool", "1", "--db-pipeline", "128", workers=1)
        conns = [self.connect(srv) for _ in range(100)]
        for i, c in enumerate(conns):
            c.send(request("GET", "/sleep?ms=3000"))
        wait_until(lambda: self.app_stats(srv)["waiting"] >= 100, timeout=15,
                   what="100 queries in flight")
        self.assertGreaterEqual(self.pg.kill_connections(), 1)
        for c in conns:
            r = c.read_response()
            self.assertEqual((r.status, doc_of(r)["error"]), (503, "ECONNRESET"), r)
        wait_until(lambda: get(srv.port, "/echo/back").body == b"back", timeout=15,
                   what="a new connection")
        self.assertAppClean(srv)

    def test_parameter_with_a_nul_byte_is_not_cut_short(self):
        """A parameter is a coil_str (pointer and length): one with a NUL inside cannot be sent
        as PostgreSQL text, and must not silently become its prefix (refused, or failed by the
        server, are both fine)."""
        srv = self.pgapp()
        doc = self.sql(srv, "SELECT $1::text, length($1::text)", "ab\x00cd", status=None)
        self.assertNotEqual(doc.get("rows"), [["ab", "2"]],
                            "the parameter 'ab\\0cd' was sent as 'ab': %r" % doc)
        self.assertIsNotNone(doc["error"], doc)

    def test_copy_does_not_wedge_the_worker(self):
        """COPY ... TO STDOUT is SQL a user may send: whatever coil answers (an error, or a
        closed connection), the worker must go on serving."""
        srv = Server(["--workers", "1", "--db-pool", "1", "--database-url", self.pg.url],
                     program=pgapp_bin())
        self._servers.append(srv)  # its log is printed if the test fails

        def kill():
            if srv.code is None:
                srv.proc.kill()
                srv.wait_exit()
        self.addCleanup(kill)
        wait_until(lambda: self.ready(srv), timeout=15, what="/readyz 200 at start")
        try:
            c = Conn(srv.port, timeout=8)
            try:
                r = c.request("GET", q("/sql", q="COPY (SELECT 1) TO STDOUT"))
            finally:
                c.close()
            c = Conn(srv.port, timeout=8)
            try:
                health = c.request("GET", "/healthz")
            finally:
                c.close()
        except AssertionError as e:
            kill()  # a wedged worker never drains: do not wait for it
            self.fail("no answer to COPY, and the worker stopped serving: %s" % e)
        self.assertIn(r.status, (200, 500, 503), r)
        self.assertEqual(health.status, 200, health)
        self.assertEqual(get(srv.port, "/echo/after").body, b"after")
        self.stop(srv)

    def test_drain_completes_queries_in_flight(self):
        """SIGTERM with six queries in flight: each answered, then exit 0. (A connection runs
        its queries one after the other: the timeout leaves room for six on one.)"""
        srv = self.pgapp("--db-pool", "2", "--db-timeout", "30s")
        conns = [self.connect(srv) for _ in range(6)]
        for i, c in enumerate(conns):
            c.send(request("GET", "/sleep?ms=1200&owner=%d" % (i % 2)))
        wait_until(lambda: self.app_stats(srv)["waiting"] >= 6, timeout=10,
                   what="the queries to be in flight")
        srv.send_signal(signal.SIGTERM)
        for c in conns:
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"slept"), r)
        self.assertEqual(srv.wait_exit(20), 0, srv.log_text())
        self.assertEqual(srv.sanitizer_lines(), [])
        self.assertIn("pgapp: exit status=0 late=0 errors=0", srv.log_text())

    def test_drain_deadline_with_a_query_in_flight(self):
        """A query longer than --drain-timeout: the request is given up at the deadline, the
        worker stops with the query unanswered, and the process still exits cleanly."""
        srv = self.pgapp("--db-pool", "1", "--drain-timeout", "500ms", workers=1)
        c = self.connect(srv)
        c.send(request("GET", "/sleep?ms=4000"))
        c2 = self.connect(srv)
        c2.send(request("GET", "/sleep?ms=4000&owner=0"))
        wait_until(lambda: self.app_stats(srv)["waiting"] >= 2, timeout=10,
                   what="the queries to be in flight")
        srv.send_signal(signal.SIGTERM)
        self.assertEqual(srv.wait_exit(20), 0, srv.log_text())
        self.assertEqual(srv.sanitizer_lines(), [])
        self.assertIn("late=0 errors=0", srv.log_text())


def preflight():
    """Exit 77 when PostgreSQL's server programs are missing; fail when pgapp is."""
    try:
        services._pg_bindir()
    except services.ServiceError as e:
        print("test_db: skipping: %s" % e, file=sys.stderr)
        sys.exit(77)
    if not os.path.exists(pgapp_bin()):
        print("test_db: %s not found: coil was built without libpq (apt-get install libpq-dev "
              "and reconfigure), or set COIL_PGAPP" % pgapp_bin(), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    preflight()
    main()
