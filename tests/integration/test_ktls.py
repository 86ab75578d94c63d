# SPDX-License-Identifier: MIT
"""Kernel TLS (--tls-offload auto|kernel|user) in a virtual machine: tests/vm/ktls.

This machine's kernel may lack CONFIG_TLS, so tests/vm/ktls boots the Debian release's own kernel
(which has the tls module) under qemu-system-x86_64 with the built demo binary ($COIL_BIN), curl
and openssl in an initramfs, and runs the checks inside; each prints one line
`CHECK <name> ok|fail <detail>`. The VM runs once (about a minute under TCG, less with KVM);
each test method here asserts on the lines of one area. Every TLS check inside also asserts how
many connections the kernel took over meanwhile (coil_tls_kernel_send_total and the kernel's
TlsTxSw both grow by that number; 0 on the plain port and with --tls-offload user).

Skipped (exit 77) only when qemu-system-x86_64 is not installed or cannot run here (or the
machine is not x86-64), and under sanitizer builds (COIL_SANITIZE_FLAGS set): the sanitizer
runtimes in a minimal VM are not worth it, and the normal build runs this test. A missing
busybox-static, cpio or kmod, or no kernel package to be had, is a failure.
"""

import os
import re
import shutil
import subprocess
import sys
import unittest

from coil_harness import HERE, coil_bin, main

SCRIPT = os.path.join(os.environ.get("COIL_SOURCE_DIR") or os.path.join(HERE, "..", ".."),
                      "tests", "vm", "ktls")
TIMEOUT = 285         # s for the whole script (CTest gives the file 300)
VM_TIMEOUT = 240      # s for the VM itself (the script's COIL_VM_TIMEOUT)
CHECK_RE = re.compile(r"^CHECK (\S+) (ok|fail)(?: (.*))?$")

_run = None


class VMRun:
    """One run of tests/vm/ktls: skip reason, or exit status, output and parsed CHECK lines."""

    def __init__(self):
        self.skip = None
        self.rc = None
        self.output = ""
        self.checks = {}
        self.done = False
        flags = os.environ.get("COIL_SANITIZE_FLAGS", "")
        if flags:
            self.skip = ("built with %s: the sanitizer runtime in a minimal VM is not worth it "
                         "(the normal build runs this test)" % flags)
            return
        if not shutil.which("qemu-system-x86_64"):
            self.skip = "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
            return
        env = dict(os.environ, COIL_VM_TIMEOUT=str(VM_TIMEOUT))
        try:
            p = subprocess.run([SCRIPT, coil_bin()], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=TIMEOUT, env=env)
            self.rc = p.returncode
            self.output = p.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired as e:
            self.rc = "timeout"
            self.output = (e.stdout or b"").decode("utf-8", "replace")
        sys.stderr.write(self.output)
        sys.stderr.flush()
        if self.rc == 77:
            lines = [l for l in self.output.splitlines() if "skipping" in l]
            self.skip = lines[-1] if lines else "tests/vm/ktls cannot run here"
            return
        for line in self.output.splitlines():
            m = CHECK_RE.match(line)
            if m:
                self.checks[m.group(1)] = (m.group(2), m.group(3) or "")
            elif line.startswith("VM-TEST-DONE"):
                self.done = True


def vm():
    global _run
    if _run is None:
        _run = VMRun()
    return _run


class KernelTLSInVM(unittest.TestCase):
    def setUp(self):
        self.run_ = vm()
        if self.run_.skip:
            self.skipTest(self.run_.skip)

    def assertChecks(self, *names):
        """Each named CHECK line is there and ok (subtests: every failure is reported)."""
        for name in names:
            with self.subTest(check=name):
                got = self.run_.checks.get(name)
                self.assertIsNotNone(got, "no CHECK %s line (the VM test exited %s%s)" % (
                    name, self.run_.rc, "" if self.run_.done else ", before VM-TEST-DONE"))
                self.assertEqual(got[0], "ok", "CHECK %s %s %s" % (name, got[0], got[1]))

    def test_vm_ran(self):
        """The VM booted, loaded the tls module, ran to the end, and its kernel logged no bug;
        no kernel TLS socket was left when coil had exited."""
        self.assertTrue(self.run_.done, "no VM-TEST-DONE (exit %s)" % self.run_.rc)
        self.assertChecks("vm_tls_module", "kernel_log_clean", "kernel_sessions_released")

    def test_plain_port(self):
        """The plain port works in the VM, and never through the kernel's TLS."""
        self.assertChecks("plain_get", "plain_keepalive", "plain_echo_900k", "plain_pipeline",
                          "plain_connection_close")

    def test_startup_line(self):
        """--tls-offload auto (the default) with the tls module: the kernel seals, for every
        cipher of both versions; no connection yet."""
        self.assertChecks("startup_auto_kernel", "start_no_kernel_sends")

    def test_versions(self):
        self.assertChecks("tls13_get", "tls12_get")

    def test_ciphers(self):
        self.assertChecks("cipher_tls12_aes128gcm", "cipher_tls12_aes256gcm",
                          "cipher_tls12_chacha20", "cipher_tls13_aes128gcm",
                          "cipher_tls13_aes256gcm", "cipher_tls13_chacha20")

    def test_keepalive(self):
        self.assertChecks("tls13_keepalive", "tls12_keepalive")

    def test_large_body(self):
        self.assertChecks("tls13_echo_900k", "tls12_echo_900k")

    def test_pipelining(self):
        self.assertChecks("tls_pipeline")

    def test_close_notify(self):
        self.assertChecks("tls_close_notify")

    def test_resumption(self):
        self.assertChecks("tls12_resumption", "tls13_resumption")

    def test_key_update(self):
        """A client KeyUpdate: without update_requested the connection goes on; with it coil
        must send its own KeyUpdate before more data (as it does in user space) or close with
        close_notify; a new connection works afterwards."""
        self.assertChecks("tls13_keyupdate_client_only", "tls13_keyupdate_requested",
                          "after_keyupdate_get", "user_keyupdate_requested")

    def test_offload_user(self):
        """--tls-offload user: the user-space line, answers, no kernel sends."""
        self.assertChecks("startup_user", "user_get", "user_no_kernel_sends")

    def test_offload_kernel(self):
        """--tls-offload kernel starts where the kernel can, and the kernel seals."""
        self.assertChecks("startup_kernel", "kernel_get")

    def test_clean_exit(self):
        self.assertChecks("exit_auto", "exit_user", "exit_kernel")

    def test_every_check_passed(self):
        """Whatever the VM checked (also checks no method here names) passed, and the script
        said so."""
        failed = ["CHECK %s fail %s" % (n, d) for n, (s, d) in self.run_.checks.items()
                  if s != "ok"]
        self.assertEqual(failed, [])
        self.assertGreater(len(self.run_.checks), 0, "no CHECK lines at all")
        self.assertEqual(self.run_.rc, 0, "tests/vm/ktls exited %s" % self.run_.rc)


if __name__ == "__main__":
    main()
