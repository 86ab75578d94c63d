#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/db's requests, and its checks of a server's answers.

    workload.py make DIR ROWS             writes each workload's request list, the same for every
                                          server: DIR/W.lua (for wrk and perf/db.d/requests.lua)
                                          and DIR/W.reqs (one "METHOD PATH [BODYFILE]" a line),
                                          with PUT bodies in DIR/bodies/
    workload.py targets DIR W BASEURL     DIR/W.reqs as coil-load's (vegeta's) targets file,
                                          to standard output
    workload.py check BASEURL ROWS        checks a server against the seeded table: exits 1 with
                                          the reason on what the workloads need, prints
                                          "warn: ..." lines for the rest (see check())

Workloads (W): async-db, GET /async-db?min=10&max=50&limit=50; async-mix, the same with limits
5, 10, 20, 35, 50 in turn; crud, a fixed pseudo-random sequence of CRUD_LEN requests (seed 1):
85% GET /crud/items/{id} (id uniform in 1..50000, zero-padded to 5 digits), 10% GET
/crud/items?category=office&page={1..10}&limit=10, 5% PUT /crud/items/{id} (same ids). Each PUT
writes the item's seeded name, category, price and quantity back (tools/services.py's
item_rows is deterministic), so the table stays as seeded however long perf/db runs, and every
answer can be checked against it. ROWS: the rows the database was seeded with.
"""
import http.client
import json
import os
import random
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import services  # noqa: E402

WORKLOADS = ("async-db", "async-mix", "crud")
MIX_LIMITS = (5, 10, 20, 35, 50)
CRUD_LEN = 20000
CRUD_IDS = 50000
GET_PCT, LIST_PCT = 85, 10  # the rest: PUT
ITEM_KEYS = {"id", "name", "category", "price", "quantity", "active", "tags", "rating"}


def item_json(row):
    """A seeded row as the endpoints answer it."""
    return {"id": row["id"], "name": row["name"], "category": row["category"],
            "price": row["price"], "quantity": row["quantity"], "active": row["active"],
            "tags": row["tags"], "rating": {"score": row["rating_score"],
                                            "count": row["rating_count"]}}


def put_body(row):
    return json.dumps({"name": row["name"], "category": row["category"], "price": row["price"],
                       "quantity": row["quantity"]}, separators=(",", ":"))


def requests(workload, rows):
    """[(method, path, body or None)]"""
    if workload == "async-db":
        return [("GET", "/async-db?min=10&max=50&limit=50", None)]
    if workload == "async-mix":
        return [("GET", "/async-db?min=10&max=50&limit=%d" % n, None) for n in MIX_LIMITS]
    if len(rows) < CRUD_IDS:
        sys.exit("workload.py: crud needs at least %d rows, the table has %d"
                 % (CRUD_IDS, len(rows)))
    rnd = random.Random(1)
    out = []
    for _ in range(CRUD_LEN):
        k = rnd.randrange(100)
        if k < GET_PCT:
            out.append(("GET", "/crud/items/%05d" % rnd.randint(1, CRUD_IDS), None))
        elif k < GET_PCT + LIST_PCT:
            out.append(("GET", "/crud/items?category=office&page=%d&limit=10" % rnd.randint(1, 10),
                        None))
        else:
            i = rnd.randint(1, CRUD_IDS)
            out.append(("PUT", "/crud/items/%05d" % i, put_body(rows[i - 1])))
    return out


def lua_string(s):
    """s as a Lua long string that cannot end early."""
    eq = "="
    while "]" + eq + "]" in s:
        eq += "="
    return "[" + eq + "[" + s + "]" + eq + "]"


def make(dir, nrows):
    rows = services.item_rows(nrows)
    os.makedirs(os.path.join(dir, "bodies"), exist_ok=True)
    bodies = {}
    for w in WORKLOADS:
        reqs = requests(w, rows)
        with open(os.path.join(dir, w + ".lua"), "w") as lua, \
                open(os.path.join(dir, w + ".reqs"), "w") as plain:
            lua.write("-- perf/db.d/workload.py: %s, %d request(s)\nreturn {\n" % (w, len(reqs)))
            for method, path, body in reqs:
                if body is None:
                    lua.write("{%s, %s},\n" % (lua_string(method), lua_string(path)))
                    plain.write("%s %s\n" % (method, path))
                    continue
                name = bodies.get(body)
                if name is None:
                    name = bodies[body] = "bodies/%d.json" % len(bodies)
                    with open(os.path.join(dir, name), "w") as f:
                        f.write(body)
                lua.write("{%s, %s, %s},\n" % (lua_string(method), lua_string(path),
                                               lua_string(body)))
                plain.write("%s %s %s\n" % (method, path, name))
            lua.write("}\n")


def targets(dir, workload, base):
    base = base.rstrip("/")
    with open(os.path.join(dir, workload + ".reqs")) as f:
        for line in f:
            f3 = line.split()
            print("%s %s%s" % (f3[0], base, f3[1]))
            if len(f3) > 2:
                print("Content-Type: application/json")
                print("@" + os.path.join(dir, f3[2]))
            print()


# ---- checks ----------------------------------------------------------------------------------

class Fail(Exception):
    pass


class Client:
    """One keep-alive connection; answers are (status, headers dict lower-case, body bytes)."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)

    def __call__(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            r = self.conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException) as e:
            self.conn.close()
            raise Fail("%s %s: %s" % (method, path, e))
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def want_json(what, status, headers, data, code):
    if status != code:
        raise Fail("%s: status %d, want %d (%r)" % (what, status, code, data[:200]))
    ctype = headers.get("content-type", "")
    if not ctype.startswith("application/json"):
        raise Fail("%s: Content-Type %r, want application/json" % (what, ctype))
    try:
        return json.loads(data)
    except ValueError as e:
        raise Fail("%s: not JSON (%s): %r" % (what, e, data[:200]))


def want_item(what, got, rows):
    if not isinstance(got, dict) or set(got) != ITEM_KEYS:
        raise Fail("%s: an item with keys %s, want %s" % (
            what, sorted(got) if isinstance(got, dict) else type(got).__name__, sorted(ITEM_KEYS)))
    i = got["id"]
    if not isinstance(i, int) or not 1 <= i <= len(rows):
        raise Fail("%s: item id %r is not a seeded row" % (what, i))
    want = item_json(rows[i - 1])
    if got != want:
        raise Fail("%s: item %d is %s, want the seeded %s" % (
            what, i, json.dumps(got), json.dumps(want)))


def want_keys(what, got, keys):
    if not isinstance(got, dict) or set(got) != set(keys):
        raise Fail("%s: keys %s, want %s" % (
            what, sorted(got) if isinstance(got, dict) else type(got).__name__, sorted(keys)))


def check_async(c, rows, query, limit):
    what = "GET /async-db" + query
    got = want_json(what, *c("GET", "/async-db" + query), 200)
    want_keys(what, got, ("items", "count"))
    if not isinstance(got["items"], list) or got["count"] != len(got["items"]):
        raise Fail("%s: count %r for %s items" % (what, got["count"], len(got["items"])))
    if got["count"] != limit:
        raise Fail("%s: %d items, want %d" % (what, got["count"], limit))
    for it in got["items"]:
        want_item(what, it, rows)
        if not 10 <= it["price"] <= 50:
            raise Fail("%s: item %d has price %d, outside 10..50" % (what, it["id"], it["price"]))


def check_get(c, rows, path, cache):
    """GET an item; cache: the X-Cache the answer must carry (None: either)."""
    status, headers, data = c("GET", path)
    got = want_json("GET " + path, status, headers, data, 200)
    want_item("GET " + path, got, rows)
    if got["id"] != int(path.rsplit("/", 1)[1]):
        raise Fail("GET %s: item %d" % (path, got["id"]))
    xc = headers.get("x-cache")
    if xc not in ("HIT", "MISS") or (cache and xc != cache):
        raise Fail("GET %s: X-Cache %r, want %s" % (path, xc, cache or "HIT or MISS"))
    return xc


def check(base, nrows):
    """The workloads' endpoints (failures are fatal), then the rest (warnings)."""
    rows = services.item_rows(nrows)
    c = Client(base)
    for n in (50,) + MIX_LIMITS:
        check_async(c, rows, "?min=10&max=50&limit=%d" % n, n)
    check_async(c, rows, "", 50)  # defaults: min 10, max 50, limit 50

    # GET by id: cache-aside, absolute TTL 200 ms, leading zeros.
    t0 = time.monotonic()
    check_get(c, rows, "/crud/items/00042", "MISS")
    check_get(c, rows, "/crud/items/00042", "HIT" if time.monotonic() - t0 < 0.15 else None)
    time.sleep(0.3)
    check_get(c, rows, "/crud/items/00042", "MISS")

    # The list: office items ordered by id, page 2 of 10.
    path = "/crud/items?category=office&page=2&limit=10"
    got = want_json("GET " + path, *c("GET", path), 200)
    want_keys("GET " + path, got, ("items", "total", "page", "limit"))
    office = [item_json(r) for r in rows if r["category"] == "office"]
    if got["items"] != office[10:20] or (got["total"], got["page"], got["limit"]) != (10, 2, 10):
        raise Fail("GET %s: %s, want the 11th to 20th office items by id, total 10, page 2, "
                   "limit 10" % (path, json.dumps(got)[:300]))

    # PUT writes the seeded values back, and drops the cached entry.
    path = "/crud/items/00043"
    check_get(c, rows, path, None)
    status, headers, data = c("PUT", path, put_body(rows[42]))
    got = want_json("PUT " + path, status, headers, data, 200)
    want_item("PUT " + path, got, rows)
    check_get(c, rows, path, "MISS")

    # ---- what the workloads do not use: warnings
    warns = []

    def soft(what, fn):
        try:
            fn()
        except Fail as e:
            warns.append("%s: %s" % (what, e))

    def status_is(method, path, body, code):
        s, _, data = c(method, path, body)
        if s != code:
            raise Fail("%s %s: status %d, want %d (%r)" % (method, path, s, code, data[:120]))

    soft("unknown id", lambda: status_is("GET", "/crud/items/99999999", None, 404))
    soft("PUT unknown id", lambda: status_is(
        "PUT", "/crud/items/%d" % (nrows + 500), put_body(rows[0]), 404))
    soft("PUT bad JSON", lambda: status_is("PUT", "/crud/items/00043", "{\"name\":", 400))
    soft("POST bad JSON", lambda: status_is("POST", "/crud/items", "{\"id\":", 400))
    soft("POST missing field", lambda: status_is(
        "POST", "/crud/items", json.dumps({"id": nrows + 1, "name": "x"}), 400))

    def post():
        # price and category out of every workload's way (async-db's 10..50, crud's office)
        new = {"id": nrows + 1, "name": "perf-db check", "category": "perf-db", "price": 500,
               "quantity": 1}
        for name in ("perf-db check", "perf-db check 2"):  # insert, then the upsert's update
            new["name"] = name
            got = want_json("POST /crud/items", *c("POST", "/crud/items", json.dumps(new)), 201)
            want = dict(new, active=True, tags=[], rating={"score": 0, "count": 0})
            if got != want:
                raise Fail("POST /crud/items: %s, want %s" % (json.dumps(got), json.dumps(want)))
        check_get(c, rows + [{"id": nrows + 1, "name": "perf-db check 2", "category": "perf-db",
                              "price": 500, "quantity": 1, "active": True, "tags": [],
                              "rating_score": 0, "rating_count": 0}],
                  "/crud/items/%d" % (nrows + 1), "MISS")
    soft("POST upsert", post)

    def clamps():
        check_async(c, rows, "?min=10&max=50&limit=0", 1)
        check_async(c, rows, "?min=10&max=50&limit=500", 50)
        path = "/crud/items?category=office&limit=500"
        got = want_json("GET " + path, *c("GET", path), 200)
        if (got.get("total"), got.get("page"), got.get("limit")) != (50, 1, 50):
            raise Fail("GET %s: total, page, limit %r, want 50, 1, 50" % (
                path, (got.get("total"), got.get("page"), got.get("limit"))))
        path = "/crud/items"
        got = want_json("GET " + path, *c("GET", path), 200)
        if [i.get("category") for i in got.get("items", [])] != ["electronics"] * 10:
            raise Fail("GET %s: want 10 electronics items (the defaults)" % path)
    soft("limits and defaults", clamps)
    for w in warns:
        print("warn: " + w)


def main():
    a = sys.argv[1:]
    if len(a) == 3 and a[0] == "make":
        make(a[1], int(a[2]))
    elif len(a) == 4 and a[0] == "targets" and a[2] in WORKLOADS:
        targets(a[1], a[2], a[3])
    elif len(a) == 3 and a[0] == "check":
        try:
            check(a[1], int(a[2]))
        except Fail as e:
            sys.exit(str(e))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
