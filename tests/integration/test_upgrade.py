# SPDX-License-Identifier: MIT
"""Replacing a running coil with a new one on the same port drops nothing (README: Restarts and
upgrades). The procedure under test: start the new process on the same port (every listener is
SO_REUSEPORT, so it joins the old one's group), wait until it is listening, then SIGTERM the old
one: it closes its listeners, and the kernel hands the connections queued on them to the new
process (net.ipv4.tcp_migrate_req=1, set here for the test and put back after); connections it
had accepted are served (a request arriving while it drains is answered with Connection: close,
and an idle keep-alive connection is given a grace before it is closed, so a request on its way
is not cut); then it exits 0.

Under open-loop load from two coil-load processes (keep-alive connections at a fixed rate, and
a second stream whose every request says Connection: close, so new connections are opened all
the time), the server is replaced ten times in a row; both reports must show every request
answered 2xx: no connect error, no reset, no timeout."""

import json
import os
import socket
import subprocess
import tempfile
import time

from coil_harness import CoilTestCase, Server, coil_load_bin, main

MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req"
REPLACEMENTS = 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upgrade(CoilTestCase):
    def setUp(self):
        if not os.path.exists(MIGRATE):
            self.fail("%s is missing: the kernel is older than 5.14" % MIGRATE)
        with open(MIGRATE) as f:
            before = f.read().strip()
        if before != "1":
            try:
                with open(MIGRATE, "w") as f:
                    f.write("1")
            except OSError as e:
                self.skipTest("cannot set net.ipv4.tcp_migrate_req (needs root): %s" % e)
            self.addCleanup(self.restore, before)

    def restore(self, value):
        with open(MIGRATE, "w") as f:
            f.write(value)

    def coil(self, port):
        srv = Server(["--port", port, "--bind", "127.0.0.1", "--workers", "2"], add_addr=False)
        self._servers.append(srv)
        return srv

    def load(self, out, port, rate, conns, *extra):
        return subprocess.Popen(
            [coil_load_bin(), "-rate", str(rate), "-duration", "14s", "-connections", str(conns),
             "-timeout", "5s", "-format", "json", "-quiet", "-o", out, *extra,
             "http://127.0.0.1:%d/plaintext" % port],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def test_ten_replacements_under_load_drop_nothing(self):
        port = free_port()
        old = self.coil(port)
        tmp = tempfile.mkdtemp(prefix="coil-upgrade-")
        reports = {"keep-alive": os.path.join(tmp, "keepalive.json"),
                   "new connections": os.path.join(tmp, "close.json")}
        loads = {"keep-alive": self.load(reports["keep-alive"], port, 2000, 32),
                 "new connections": self.load(reports["new connections"], port, 300, 8,
                                              "-H", "Connection: close")}
        time.sleep(1.0)  # both streams running before the first replacement
        for i in range(REPLACEMENTS):
            new = self.coil(port)  # ready once it printed its listening line
            old.send_signal()
            self.assertEqual(old.wait_exit(15), 0, "replacement %d: the old coil's exit" % i)
            self.assertEqual(old.sanitizer_lines(), [])
            old = new
            time.sleep(0.8)
        for name, p in loads.items():
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, "%s coil-load: %s" % (name, err.decode()))
        self.stop(old)
        for name, path in reports.items():
            with open(path) as f:
                r = json.load(f)
            with self.subTest(load=name):
                self.assertGreater(r["requests"], 1000, r)
                self.assertEqual(r["errors"], [], r)
                self.assertEqual(r["error_counts"], {k: 0 for k in r["error_counts"]}, r)
                self.assertEqual(r["status_codes"], {"200": r["requests"]}, r)
                self.assertEqual(r["responses"], r["requests"], r)


if __name__ == "__main__":
    main()
