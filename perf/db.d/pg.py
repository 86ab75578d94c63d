#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/db's database: a throwaway PostgreSQL from tools/services.py.

    pg.py start ROWS     starts one (a new directory under /tmp, a free port, ROWS items) and
                         prints three lines: its directory, its URL, the postmaster's pid. It
                         is detached: it outlives this process until `pg.py stop DIR`.
    pg.py stop DIR       stops it and removes its directory.

Run `start` under taskset to pin the database: the postmaster and every backend it forks
inherit this process's cpu affinity.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import services  # noqa: E402


def postmaster_pid(dir):
    with open(os.path.join(dir, "data", "postmaster.pid")) as f:
        return int(f.readline())


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    cmd, arg = sys.argv[1:]
    try:
        if cmd == "start":
            pg = services.PostgresServer(rows=int(arg), detach=True).start()
            print(pg.dir)
            print(pg.url)
            print(postmaster_pid(pg.dir))
        else:
            services.PostgresServer.attach(arg).stop()
    except services.ServiceError as e:
        sys.exit("pg.py %s: %s" % (cmd, e))


if __name__ == "__main__":
    main()
