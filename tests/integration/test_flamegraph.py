# SPDX-License-Identifier: MIT
"""perf/flamegraph.py, the flame graph half of perf/profile: a small hand-written `perf script`
text (kernel and user frames, a broken frame-pointer unwind through liburing, a page fault on
top of user code, a demangled C++ name with `<`, `&` and `>`, a sample without a call graph)
is folded exactly as expected, the folded stacks read back unchanged, the --top tables add up,
and the SVG is well-formed XML whose frame widths are proportional to their sample counts.
Needs neither perf nor root: only Python and the script."""
import os
import re
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

SRC = os.environ.get("COIL_SOURCE_DIR") or os.path.normpath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
FLAMEGRAPH = os.path.join(SRC, "perf", "flamegraph.py")
SVG_NS = "{http://www.w3.org/2000/svg}"

# perf record -g -e cpu-clock -p PID; perf script (default fields). Leaf first, tab-indented.
PERF_SCRIPT = """\
hello  4243  1234.567890:     200040 cpu-clock: 
\tffffffff8206c9dc tcp_sendmsg_locked+0xcc ([kernel.kallsyms])
\tffffffff81e7e37f sock_sendmsg+0x11f ([kernel.kallsyms])
\tffffffff81000130 entry_SYSCALL_64_after_hwframe+0x76 ([kernel.kallsyms])
\t            29f7 [unknown] (/usr/lib/x86_64-linux-gnu/liburing.so.2.3)
\t    7fa2d5313004 [unknown] ([unknown])
\t   1d5ba0001d5ba [unknown] ([unknown])

hello  4243  1234.568090:     200040 cpu-clock: 
\t            38b2 void route<&hello>(coil_req*, coil_res*)+0x22 (/opt/app/bin/hello)
\t            d7b0 handle_one+0x340 (/opt/app/bin/hello)
\t            dd3d coil__conn_on_recv+0x16d (/opt/app/bin/hello)
\t            942b coil__worker_main+0xafb (/opt/app/bin/hello)
\t           891f5 start_thread+0x305 (/usr/lib/x86_64-linux-gnu/libc.so.6)

hello  4243  1234.568290:     200040 cpu-clock: 
\t            38c0 void route<&hello>(coil_req*, coil_res*)+0x30 (/opt/app/bin/hello)
\t            d7b0 handle_one+0x340 (/opt/app/bin/hello)
\t            dd3d coil__conn_on_recv+0x16d (/opt/app/bin/hello)
\t            942b coil__worker_main+0xafb (/opt/app/bin/hello)
\t           891f5 start_thread+0x305 (/usr/lib/x86_64-linux-gnu/libc.so.6)

hello  4243  1234.568490:     200040 cpu-clock: 
\tffffffff8225f2d9 clear_page_erms+0x9 ([kernel.kallsyms])
\tffffffff82401234 asm_exc_page_fault+0x26 ([kernel.kallsyms])
\t          16368b __memchr_evex+0xb (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t            d4d2 handle_one+0x62 (/opt/app/bin/hello)
\t            dd3d coil__conn_on_recv+0x16d (/opt/app/bin/hello)
\t            942b coil__worker_main+0xafb (/opt/app/bin/hello)
\t           891f5 start_thread+0x305 (/usr/lib/x86_64-linux-gnu/libc.so.6)

"""

ROUTE = "void route<&hello>(coil_req*, coil_res*)"
USER = "hello;start_thread;coil__worker_main;coil__conn_on_recv;handle_one"
FOLDED = (
    "hello;[unknown];[liburing.so.2.3];entry_SYSCALL_64_after_hwframe_[k];sock_sendmsg_[k];"
    "tcp_sendmsg_locked_[k] 1\n"
    + USER + ";__memchr_evex;asm_exc_page_fault_[k];clear_page_erms_[k] 1\n"
    + USER + ";" + ROUTE + " 2\n")


def flamegraph(*args, stdin=""):
    return subprocess.run([sys.executable, FLAMEGRAPH] + list(args), input=stdin,
                          capture_output=True, text=True, timeout=60)


class FlameGraph(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="coil-flamegraph-")

    def tearDown(self):
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def test_folds_perf_script_exactly(self):
        p = flamegraph("--fold-out", "-", stdin=PERF_SCRIPT)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, FOLDED)

    def test_thread_root_and_no_root(self):
        p = flamegraph("--fold-out", "-", "--tid", stdin=PERF_SCRIPT)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, FOLDED.replace("hello;", "hello-4243;"))
        p = flamegraph("--fold-out", "-", "--no-comm", stdin=PERF_SCRIPT)
        self.assertEqual(p.stdout, re.sub(r"^hello;", "", FOLDED, flags=re.M))

    def test_sample_without_call_graph(self):
        text = ("hello 4243/4243 [000] 99.000001: 200040 cpu-clock:  d4d2 handle_one+0x62 "
                "(/opt/app/bin/hello)\n"
                "hello 4243/4243 [000] 99.000201: 200040 cpu-clock:  ffffffff8206c9dc "
                "tcp_sendmsg_locked+0xcc ([kernel.kallsyms])\n")
        p = flamegraph("--fold-out", "-", stdin=text)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "hello;handle_one 1\nhello;tcp_sendmsg_locked_[k] 1\n")

    def test_inlined_frames(self):
        # --call-graph dwarf: inlined functions come before the frame they were inlined into,
        # at its address; perf also marks libc's memcpy "inlined" with no frame at its address.
        text = ("hello 4243  7394.209212:    1001001 cpu-clock: \n"
                "\t          16d800 __memcpy_avx512_unaligned_erms+0x0 (inlined)\n"
                "\t            cd6c put+0x14c (inlined)\n"
                "\t            cd6c write_response+0x14c (/opt/app/bin/hello)\n"
                "\t           891f4 start_thread+0x304 (/usr/lib/x86_64-linux-gnu/libc.so.6)\n"
                "\t          1098eb clone3+0x2b (/usr/lib/x86_64-linux-gnu/libc.so.6)\n\n"
                "hello 4243  7394.210212:    1001001 cpu-clock: \n"
                "\t            cd6c put+0x14c (inlined)\n"
                "\t            cd6c write_response+0x14c (/opt/app/bin/hello)\n"
                "\t           891f4 start_thread+0x304 (/usr/lib/x86_64-linux-gnu/libc.so.6)\n"
                "\t          1098eb clone3+0x2b (/usr/lib/x86_64-linux-gnu/libc.so.6)\n")
        p = flamegraph("--fold-out", "-", stdin=text)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout,
                         "hello;clone3;start_thread;write_response;put 1\n"
                         "hello;clone3;start_thread;write_response;put;"
                         "__memcpy_avx512_unaligned_erms 1\n")
        p = flamegraph("--top", "3", stdin=text)
        self.assertRegex(p.stdout, r"Self time by kind: hello 50\.0%, shared libs 50\.0%")
        self.assertRegex(p.stdout, r"thread entry .*: 100\.0%")

    def test_folded_round_trip(self):
        with open(self.path("in.folded"), "w") as f:
            f.write(FOLDED)
        p = flamegraph("--folded", self.path("in.folded"), "--fold-out", "-")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, FOLDED)

    def test_top_tables(self):
        p = flamegraph("--top", "5", stdin=PERF_SCRIPT)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        self.assertIn("4 samples. Self time by kind:", out)
        self.assertRegex(out, r"kernel 50\.0%")
        self.assertRegex(out, r"hello 50\.0%")  # the program, named after its object
        self_part = out.split("by self time")[1].split("by inclusive time")[0]
        incl_part = out.split("by inclusive time")[1]
        self.assertRegex(self_part, r"50\.00%\s+2\s+hello\s+" + re.escape(ROUTE))
        self.assertRegex(self_part, r"25\.00%\s+1\s+\[kernel\.kallsyms\]\s+tcp_sendmsg_locked_\[k\]")
        self.assertRegex(incl_part, r"75\.0%\s+3\s+hello\s+handle_one")
        self.assertRegex(incl_part, r"75\.0%\s+3\s+libc\.so\.6\s+start_thread")
        self.assertRegex(out, r"thread entry .*: 75\.0%")

    def test_svg_is_xml_with_proportional_frames(self):
        p = flamegraph("-o", self.path("f.svg"), "--title", "t & <t>", stdin=PERF_SCRIPT)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(self.path("f.svg"), encoding="utf-8") as f:
            raw = f.read()
        self.assertIn("route&lt;&amp;hello&gt;(coil_req*, coil_res*)", raw)
        svg = ET.fromstring(raw)  # well-formed, escaping included
        self.assertEqual(svg.get("width"), "1200")
        frames = {}
        for g in svg.iter(SVG_NS + "g"):
            if g.get("class") != "f":
                continue
            title = g.find(SVG_NS + "title").text
            m = re.match(r"^(.*) \((\d+) samples, ([0-9.]+)%\)$", title)
            self.assertTrue(m, title)
            rect = g.find(SVG_NS + "rect")
            frames.setdefault(m.group(1), []).append(
                (int(m.group(2)), float(m.group(3)), float(rect.get("width")), rect.get("fill")))
        full = frames["all"][0][2]
        self.assertAlmostEqual(full, 1200 - 2 * 10, places=1)
        self.assertEqual(frames["all"][0][:2], (4, 100.0))
        self.assertEqual(frames[ROUTE][0][:2], (2, 50.0))
        self.assertEqual(frames["start_thread"][0][:2], (3, 75.0))
        self.assertEqual(frames["tcp_sendmsg_locked_[k]"][0][:2], (1, 25.0))
        for name, rows in frames.items():
            for count, pct, width, fill in rows:
                self.assertAlmostEqual(width, full * count / 4.0, places=1, msg=name)
                self.assertRegex(fill, r"^#[0-9a-f]{6}$")
        # handle_one appears once (merged across samples); kernel frames differ in colour
        # family from the program's
        self.assertEqual(len(frames["handle_one"]), 1)
        self.assertNotEqual(frames["tcp_sendmsg_locked_[k]"][0][3], frames[ROUTE][0][3])
        self.assertIsNotNone(svg.find(SVG_NS + "script"))

    def test_empty_input_is_a_clear_error(self):
        for args, stdin in (([], ""), ([], "not perf output\n"), (["--folded"], "\n")):
            p = flamegraph(*args, stdin=stdin)
            self.assertEqual(p.returncode, 1, (args, stdin))
            self.assertIn("no ", p.stderr)
            self.assertEqual(p.stdout, "")


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=2)
    sys.exit(0 if prog.result.wasSuccessful() else 1)
