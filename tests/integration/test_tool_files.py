# SPDX-License-Identifier: MIT
"""The files shipped in tools/ for users' load tests work against coil: the vegeta target file
for the demo API (through coil-load), and the wrk scripts for pipelining and POST bodies."""
import json
import os
import re
import shutil
import subprocess
import tempfile

from coil_harness import CoilTestCase, coil_load_bin, main, need_tool

SRC = os.environ.get("COIL_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.path.join(SRC, "tools")


class ToolFiles(CoilTestCase):
    def test_demo_targets_file_all_succeed(self):
        load = coil_load_bin()
        # One worker: the file PUTs /kv/bench and GETs it right after, and the store replicates
        # to other workers by background job, so with two a GET may reach a worker the PUT has
        # not yet (404): eventual consistency, not what this test is about.
        srv = self.start("--workers", "1")
        tmp = tempfile.mkdtemp(prefix="coil-targets-")
        self.addCleanup(shutil.rmtree, tmp)
        for name in os.listdir(os.path.join(TOOLS, "targets")):
            shutil.copy(os.path.join(TOOLS, "targets", name), tmp)
        path = os.path.join(tmp, "demo.txt")
        with open(path) as f:
            text = f.read().replace("localhost:8080", "127.0.0.1:%d" % srv.port)
        with open(path, "w") as f:
            f.write(text)
        ntargets = len(re.findall(r"^[A-Z]+ http://", text, re.M))
        p = subprocess.run([load, "-rate", "500", "-duration", "1s", "-connections", "4",
                            "-targets", path, "-format", "json", "-quiet"],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["requests"], 500)
        self.assertEqual(r["success"], 1, r)
        self.assertEqual(sum(r["status_codes"].values()), 500)
        self.assertGreaterEqual(ntargets, 5)

    def wrk(self, srv, script, path, *args):
        need_tool("wrk")
        p = subprocess.run(["wrk", "-t1", "-c4", "-d1s", "-s", os.path.join(TOOLS, "wrk", script),
                            "http://127.0.0.1:%d%s" % (srv.port, path), "--"] + list(args),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("Non-2xx", p.stdout, p.stdout)
        self.assertNotIn("Socket errors", p.stdout, p.stdout)
        n = int(re.search(r"(\d+) requests in", p.stdout).group(1))
        self.assertGreater(n, 0, p.stdout)
        return n

    def test_wrk_pipeline_script(self):
        srv = self.start("--workers", "1")
        before = srv.stats()["requests"]
        n = self.wrk(srv, "pipeline.lua", "/plaintext", "16")
        # every pipelined request was answered (wrk counts responses)
        self.assertGreaterEqual(srv.stats()["requests"] - before, n)

    def test_wrk_post_script(self):
        srv = self.start("--workers", "1")
        self.wrk(srv, "post.lua", "/echo", "@" + os.path.join(TOOLS, "targets", "echo-body.json"),
                 "application/json")


if __name__ == "__main__":
    main()
