# SPDX-License-Identifier: MIT
"""Options and their environment variables: --help, values that must be refused (exit 2 with a
message), values that must be accepted (durations, K/M sizes), a port already in use, and
io_uring refused by a seccomp filter (ENOSYS as podman's and containerd's default profiles
answer, EPERM as Docker's): coil exits non-zero and names the cause and the fix."""

import os
import socket
import subprocess

from coil_harness import CoilTestCase, clean_env, coil_bin, main, raw, request

OPTIONS = ("--port", "--bind", "--workers", "--max-conns", "--max-header-bytes", "--max-headers",
           "--max-body-bytes", "--header-timeout", "--body-timeout", "--idle-timeout",
           "--write-timeout", "--drain-timeout")


def run(args, env=None, timeout=10):
    """Runs coil to completion (for options that must make it exit at once)."""
    return subprocess.run([coil_bin()] + list(args), capture_output=True, text=True,
                          timeout=timeout, env=clean_env(env), stdin=subprocess.DEVNULL)


class Help(CoilTestCase):
    def test_help(self):
        p = run(["--help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for opt in OPTIONS:
            self.assertIn(opt, p.stdout, "--help does not mention %s:\n%s" % (opt, p.stdout))

    def test_help_mentions_env_vars(self):
        p = run(["--help"])
        for var in ("COIL_PORT", "COIL_WORKERS", "COIL_MAX_BODY_BYTES", "COIL_DRAIN_TIMEOUT"):
            self.assertIn(var, p.stdout, p.stdout)


class BadValues(CoilTestCase):
    def assertRefused(self, args, env=None):
        try:
            p = run(args, env=env)
        except subprocess.TimeoutExpired:
            self.fail("coil %s (env %s) started instead of refusing" % (args, env))
        self.assertEqual(p.returncode, 2, "coil %s (env %s): exit %d, stderr %r"
                         % (args, env, p.returncode, p.stderr))
        self.assertTrue(p.stderr.strip(), "no message on stderr for %s %s" % (args, env))
        return p

    def test_contract_cases(self):
        for args in (["--port", "abc"], ["--port", "70000"], ["--workers", "0"],
                     ["--max-body-bytes", "-1"], ["--no-such-option"]):
            with self.subTest(args=args):
                p = self.assertRefused(args)
                if args[0] != "--no-such-option":
                    self.assertIn(args[0], p.stderr, "message should name the option")

    def test_more_bad_values(self):
        for args in (["--port", "-1"], ["--port", ""], ["--port", "80x"],
                     ["--workers", "abc"], ["--workers", "-2"],
                     ["--max-conns", "0"], ["--max-header-bytes", "x"],
                     ["--max-body-bytes", "12Q"], ["--max-body-bytes", "abc"],
                     ["--header-timeout", "soon"], ["--idle-timeout", "-1s"],
                     ["--body-timeout", "5parsecs"], ["--drain-timeout", ""],
                     ["--bind", "not-an-address"], ["--port"], ["stray-argument"]):
            with self.subTest(args=args):
                self.assertRefused(args)

    def test_bad_env_values(self):
        for env in ({"COIL_PORT": "abc"}, {"COIL_WORKERS": "0"}, {"COIL_MAX_BODY_BYTES": "-1"},
                    {"COIL_IDLE_TIMEOUT": "never"}, {"COIL_PORT": "70000"}):
            with self.subTest(env=env):
                self.assertRefused([], env=env)

    def test_bad_env_message_names_variable(self):
        p = self.assertRefused([], env={"COIL_PORT": "abc"})
        self.assertIn("COIL_PORT", p.stderr, "the message should name the variable")


class GoodValues(CoilTestCase):
    def test_durations_and_sizes_accepted(self):
        srv = self.start("--header-timeout", "500ms", "--body-timeout", "2", "--idle-timeout",
                         "1m", "--write-timeout", "2s", "--drain-timeout", "3s",
                         "--max-body-bytes", "2M", "--max-header-bytes", "16K",
                         "--max-headers", "50", "--max-conns", "100", "--workers", "1")
        self.assertEqual(srv.workers, 1)
        self.assertEqual(raw(srv.port, request("GET", "/healthz"))[0].status, 200)

    def test_size_suffix_is_binary(self):
        srv = self.start("--max-body-bytes", "2K")
        rs = raw(srv.port, request("POST", "/echo", body=b"a" * 2048))
        self.assertEqual(rs[0].status, 200, rs)
        rs = raw(srv.port, request("POST", "/echo", body=b"", headers=["Content-Length: 2049"]))
        self.assertEqual(rs[0].status, 413, rs)
        srv2 = self.start("--max-body-bytes", "1M")
        rs = raw(srv2.port, request("POST", "/echo", body=b"",
                                    headers=["Content-Length: 1048577"]))
        self.assertEqual(rs[0].status, 413, rs)

    def test_workers_count_in_banner_and_stats(self):
        for n in (1, 3):
            srv = self.start("--workers", str(n))
            self.assertEqual(srv.workers, n)
            self.assertEqual(srv.stats()["workers"], n)
            self.stop(srv)

    def test_env_vars_used(self):
        srv = self.start(add_addr=False, env={"COIL_PORT": "0", "COIL_BIND": "127.0.0.1",
                                              "COIL_WORKERS": "1"})
        self.assertEqual((srv.addr, srv.workers), ("127.0.0.1", 1))
        self.assertEqual(srv.stats()["workers"], 1)

    def test_env_max_body(self):
        srv = self.start(env={"COIL_MAX_BODY_BYTES": "10"})
        rs = raw(srv.port, request("POST", "/echo", body=b"", headers=["Content-Length: 11"]))
        self.assertEqual(rs[0].status, 413, rs)

    def test_command_line_overrides_env(self):
        srv = self.start("--workers", "2", env={"COIL_WORKERS": "1"})
        self.assertEqual(srv.workers, 2)

    def test_fixed_port(self):
        # --port N is honoured (a free port picked by the kernel, then released).
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        srv = self.start("--port", str(port), "--bind", "127.0.0.1", add_addr=False)
        self.assertEqual(srv.port, port)
        self.assertEqual(raw(port, request("GET", "/healthz"))[0].body, b"ok")


class PortInUse(CoilTestCase):
    def test_port_in_use(self):
        blocker = socket.socket()
        self.addCleanup(blocker.close)
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        try:
            p = run(["--port", str(port), "--bind", "127.0.0.1"])
        except subprocess.TimeoutExpired:
            self.fail("coil started on a port that is in use")
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertIn(str(port), p.stderr, "the message should mention the port: %r" % p.stderr)


def seccomp_exec_bin():
    src = os.environ.get("COIL_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
    return os.environ.get("COIL_SECCOMP_EXEC") or os.path.join(src, "build", "tests",
                                                                "coil_seccomp_exec")


class Seccomp(CoilTestCase):
    def diagnosis(self, errno_name):
        p = subprocess.run([seccomp_exec_bin(), errno_name, coil_bin(), "--port", "0"],
                           capture_output=True, text=True, timeout=10, env=clean_env(),
                           stdin=subprocess.DEVNULL)
        self.assertNotIn(p.returncode, (0, 2), p.stderr)  # 2 would be seccomp_exec's own failure
        self.assertNotIn("listening on", p.stderr)
        return p.stderr

    def test_enosys_names_seccomp_and_the_fix(self):
        err = self.diagnosis("ENOSYS")
        self.assertIn("io_uring_setup: function not implemented", err)
        self.assertIn("seccomp filter hides it", err)
        self.assertIn("this process runs under one", err)
        for fix in ("--security-opt seccomp=docker/seccomp.json", "seccompProfile", "Localhost"):
            self.assertIn(fix, err)

    def test_eperm_names_seccomp_and_the_sysctl(self):
        err = self.diagnosis("EPERM")
        self.assertIn("operation not permitted", err)
        self.assertIn("kernel.io_uring_disabled", err)
        self.assertIn("this process runs under a seccomp filter", err)
        self.assertIn("--security-opt seccomp=docker/seccomp.json", err)


if __name__ == "__main__":
    main()
