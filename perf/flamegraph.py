#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""flamegraph.py: folds `perf script` output into stacks and draws them as an interactive SVG.

    perf script -i perf.data | perf/flamegraph.py -o flame.svg --fold-out stacks.folded
    perf/flamegraph.py --folded stacks.folded -o flame.svg      # from folded stacks
    perf/flamegraph.py --top 20 perf-script.txt                  # tables only (no -o: no SVG)

Input is `perf script` text (the default fields, with or without call graphs) or, with
--folded, folded stacks: one line per unique stack, frames root->leaf joined by ';', a space
and a sample count. Folding keeps symbol names and drops the `+0x1a` offsets; kernel frames
get a `_[k]` suffix; a frame perf could not name is `[unknown]`, or `[libfoo.so]` when its
object is known; runs of `[unknown]` (a broken unwind) become one. The process (thread)
name is the root frame unless --no-comm; --tid adds the thread id to it.

The SVG is self-contained: frames are sized by their share of samples and coloured by kind
(kernel, the program itself, shared libraries, jemalloc; hue from the name, so colours are
the same from run to run), hover shows "name (N samples, P%)", click zooms into a frame,
and Search (or Ctrl-F, or /) highlights the frames a regular expression matches and shows
their share. Only the Python standard library is used.
"""

import argparse
import os
import re
import sys
import zlib
from collections import defaultdict

# ---------------------------------------------------------------------------------------------
# Parsing `perf script` output

# "comm pid/tid [cpu] time: ..." -- comm may contain spaces and digits; the timestamp anchors it.
HEAD_RE = re.compile(
    r"^\s*(?P<comm>.+?)\s+(?P<pid>-?\d+)(?:/(?P<tid>-?\d+))?\s+(?:\[\d+\]\s+)?"
    r"(?P<time>\d+\.\d+):(?P<rest>.*)$")
# Without a timestamp field: "comm pid/tid ..." (less certain, used only at a sample start).
HEAD_NOTIME_RE = re.compile(r"^\s*(?P<comm>.+?)\s+(?P<pid>-?\d+)(?:/(?P<tid>-?\d+))?(?P<rest>\s.*|)$")
# A call-chain line: "\t    ffffffff8206c9dc tcp_sendmsg_locked+0xcc ([kernel.kallsyms])"
FRAME_RE = re.compile(r"^\s+(?P<addr>[0-9a-fA-F]+)\s+(?P<rest>\S.*?)\s*$")
# An ip/sym/dso triple on the header line itself (no call graph): "...cpu-clock:  29f7 sym (dso)"
INLINE_FRAME_RE = re.compile(r":\s+(?P<addr>[0-9a-fA-F]+)\s+(?P<rest>\S.*?)\s*$")
OFFSET_RE = re.compile(r"\+0x[0-9a-fA-F]+$")

KERNEL_MIN_ADDR = 0xffff800000000000  # x86-64 / arm64 kernel half of the address space
KSUFFIX = "_[k]"

# Frames a complete user stack ends at (root-most), or a kernel thread's.
ENTRY_FRAMES = {"start_thread", "_start", "clone", "clone3", "__clone", "__clone3",
                "__libc_start_main", "__libc_start_call_main", "main",
                "ret_from_fork" + KSUFFIX, "ret_from_fork_asm" + KSUFFIX}


def split_sym_dso(rest):
    """'sym+0x1a (dso)' -> ('sym+0x1a', 'dso'); the dso is the last balanced (...) group."""
    if rest.endswith(")"):
        depth = 0
        for i in range(len(rest) - 1, -1, -1):
            c = rest[i]
            if c == ")":
                depth += 1
            elif c == "(":
                depth -= 1
                if depth == 0:
                    if i > 0 and rest[i - 1] in " \t":
                        return rest[:i].rstrip(), rest[i + 1:-1]
                    break
    return rest, ""


def dso_kind(dso):
    """Kind of a frame from its object: kernel, jemalloc, lib, app or unknown."""
    base = os.path.basename(dso)
    if dso.startswith("[kernel") or dso in ("[bpf_prog]", "[guest.kernel.kallsyms]"):
        return "kernel"
    if not dso or dso == "[unknown]":
        return "unknown"
    if "jemalloc" in base:
        return "jemalloc"
    if dso in ("[vdso]", "[vsyscall]") or re.search(r"\.so(\.[0-9.]+)?$", base):
        return "lib"
    if dso.startswith("["):  # a kernel module, e.g. [nf_conntrack]
        return "kernel"
    return "app"


class Frame:
    __slots__ = ("name", "kind", "dso", "addr")

    def __init__(self, name, kind, dso, addr=""):
        self.name, self.kind, self.dso, self.addr = name, kind, dso, addr


_line_cache = {}


def parse_frame_line(line):
    """A call-chain line -> Frame, or None. The same lines recur in most samples, so parses
    are cached; the Frame returned is shared and must not be changed."""
    f = _line_cache.get(line)
    if f is None:
        m = FRAME_RE.match(line)
        if not m:
            return None
        f = _line_cache[line] = parse_frame(m.group("addr"), m.group("rest"))
    return f


def parse_frame(addr, rest):
    """One call-chain entry -> Frame (dso 'inlined' is resolved by the caller)."""
    sym, dso = split_sym_dso(rest)
    sym = OFFSET_RE.sub("", sym).strip()
    try:
        is_kernel = int(addr, 16) >= KERNEL_MIN_ADDR
    except ValueError:
        is_kernel = False
    kind = "kernel" if is_kernel else dso_kind(dso)
    if sym in ("", "[unknown]"):
        if dso and dso not in ("[unknown]", "inlined") and kind != "kernel":
            sym = "[%s]" % os.path.basename(dso)
        else:
            sym = "[unknown]"
            kind = "unknown" if kind != "kernel" else kind
    sym = sym.replace(";", ":").replace("\n", " ")
    if kind == "kernel":
        sym += KSUFFIX
    return Frame(sym, kind, dso, addr.lower().lstrip("0"))


class Profile:
    """Folded stacks (tuple of names root->leaf -> count) plus what is known about each name."""

    def __init__(self):
        self.stacks = defaultdict(int)
        self.kinds = {}     # name -> kind
        self.dsos = {}      # name -> dso basename (perf-script input only)
        self.roots = set()  # names used as the comm root frame
        self.skipped = 0    # lines not understood

    @property
    def total(self):
        return sum(self.stacks.values())

    def note(self, name, kind, dso=""):
        if name not in self.kinds:
            self.kinds[name] = kind
            if dso:
                self.dsos[name] = os.path.basename(dso) if not dso.startswith("[") else dso

    def kind(self, name):
        k = self.kinds.get(name)
        return k if k else guess_kind(name)


# libc, liburing and loader names, for folded input (perf script input knows the objects)
LIB_NAME_RE = re.compile(
    r"^(__|_dl_|_int_|pthread_|io_uring_|epoll_|clock_gettime|sigtimedwait|syscall$"
    r"|mem(cpy|move|set|chr|rchr|cmp)|str(n?len|n?cmp|r?chr|n?cpy|n?cat|dup|str|tok|c?spn)"
    r"|(m|c|re)alloc$|free$|start_thread$|clone3?$|_start$|\[.*\.so[0-9.]*\]$)")


def guess_kind(name):
    """Kind of a frame from its name alone (folded input, where objects are not known)."""
    if name.endswith(KSUFFIX):
        return "kernel"
    if name == "[unknown]":
        return "unknown"
    if "jemalloc" in name or re.match(r"^(je_|[msrxn]+allocx$|sdallocx$)", name):
        return "jemalloc"
    if LIB_NAME_RE.match(name):
        return "lib"
    return "app"


def inlined_alone(f):
    return f if f.kind == "kernel" else Frame(f.name, guess_kind(f.name), "", f.addr)


def fold_perf_script(lines, comm_root=True, with_tid=False):
    prof = Profile()
    state = "head"       # expecting a sample header
    comm = None
    frames = []
    header_frame = None

    def flush():
        nonlocal frames, header_frame, comm
        if comm is None:
            return
        chain = frames if frames else ([header_frame] if header_frame else [])
        # perf lists leaf first, and a function inlined into another comes just before it,
        # at the same address: it belongs to that frame's object. An 'inlined' entry with no
        # real frame at its address (perf does that to libc's memcpy) is judged by its name.
        out = []
        pending = []
        for f in chain:
            if f.dso == "inlined":
                pending.append(f)
                continue
            for p in pending:
                if p.addr == f.addr and f.kind != "unknown":
                    out.append(Frame(p.name, f.kind, f.dso, p.addr))
                else:
                    out.append(inlined_alone(p))
            pending = []
            out.append(f)
        out.extend(inlined_alone(p) for p in pending)
        names = []
        for f in reversed(out):  # root -> leaf
            if f.name == "[unknown]" and names and names[-1] == "[unknown]":
                continue
            names.append(f.name)
            prof.note(f.name, f.kind, f.dso)
        if comm_root:
            names.insert(0, comm)
            prof.roots.add(comm)
            prof.kinds.setdefault(comm, "root")
        if names:
            prof.stacks[tuple(names)] += 1
        frames, header_frame, comm = [], None, None

    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            flush()
            state = "head"
            continue
        if line.startswith("#"):
            continue
        if state == "sample":
            f = parse_frame_line(line) if line[0] in " \t" else None
            if f is not None:
                frames.append(f)
                continue
            if not HEAD_RE.match(line):
                prof.skipped += 1  # e.g. srcline or brstack lines under a frame
                continue
            flush()
        m = HEAD_RE.match(line) or (HEAD_NOTIME_RE.match(line) if state == "head" else None)
        if not m:
            prof.skipped += 1
            continue
        name = m.group("comm").strip()
        tid = m.group("tid") or m.group("pid")
        comm = ("%s-%s" % (name, tid)) if with_tid else name
        comm = comm.replace(";", ":")
        im = INLINE_FRAME_RE.search(m.group("rest") or "")
        header_frame = parse_frame(im.group("addr"), im.group("rest")) if im else None
        state = "sample"
    flush()
    return prof


def read_folded(lines):
    prof = Profile()
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            prof.skipped += 1
            continue
        try:
            count = int(parts[1])
        except ValueError:
            try:
                count = int(round(float(parts[1])))
            except ValueError:
                prof.skipped += 1
                continue
        if count <= 0:
            continue
        names = tuple(parts[0].split(";"))
        prof.stacks[names] += count
    return prof


def write_folded(prof, out):
    for names in sorted(prof.stacks):
        out.write("%s %d\n" % (";".join(names), prof.stacks[names]))


# ---------------------------------------------------------------------------------------------
# Tables: self and inclusive time

def kind_label(prof, kind, app_name):
    return {"kernel": "kernel", "app": app_name, "lib": "shared libs", "jemalloc": "jemalloc",
            "unknown": "unknown", "root": "(thread only)"}.get(kind, kind)


def app_name_of(prof):
    counts = defaultdict(int)
    for name, kind in prof.kinds.items():
        if kind == "app" and name in prof.dsos:
            counts[prof.dsos[name]] += 1
    return max(counts, key=counts.get) if counts else "program"


def tables(prof, top):
    total = prof.total
    app = app_name_of(prof)
    self_t = defaultdict(int)
    incl = defaultdict(int)
    by_kind = defaultdict(int)
    by_dso = defaultdict(int)
    complete = 0
    for names, n in prof.stacks.items():
        leaf = names[-1]
        self_t[leaf] += n
        k = prof.kind(leaf)
        by_kind[k] += n
        by_dso[prof.dsos.get(leaf) or "(%s)" % kind_label(prof, k, app)] += n
        for name in set(names):
            incl[name] += n
        body = [x for x in names if x not in prof.roots]
        if body and body[0] in ENTRY_FRAMES:
            complete += n
    w = max(len(str(total)), 7)
    pct = lambda n: 100.0 * n / total

    def where(name):
        return prof.dsos.get(name) or kind_label(prof, prof.kind(name), app)

    out = []
    out.append("%d samples. Self time by kind: %s" % (total, ", ".join(
        "%s %.1f%%" % (kind_label(prof, k, app), pct(n))
        for k, n in sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0])))))
    if prof.dsos:
        out.append("Self time by object: %s" % ", ".join(
            "%s %.1f%%" % (d, pct(n)) for d, n in sorted(by_dso.items(), key=lambda kv: (-kv[1], kv[0]))
            if pct(n) >= 0.05))
    out.append("Stacks unwound to a thread entry (start_thread, _start, ...): %.1f%%%s" % (
        pct(complete), "" if pct(complete) > 80 else
        "  (the rest stop early: objects without frame pointers; --dwarf unwinds them)"))
    out.append("")
    out.append("Top %d by self time (samples in the function itself):" % top)
    out.append("  %6s  %*s  %-18s  %s" % ("self%", w, "samples", "object", "symbol"))
    for name, n in sorted(self_t.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
        out.append("  %5.2f%%  %*d  %-18s  %s" % (pct(n), w, n, where(name)[:18], name))
    out.append("")
    out.append("Top %d by inclusive time (the function and everything it calls):" % top)
    out.append("  %6s  %*s  %-18s  %s" % ("total%", w, "samples", "object", "symbol"))
    rows = [(name, n) for name, n in incl.items() if name not in prof.roots]
    for name, n in sorted(rows, key=lambda kv: (-kv[1], kv[0]))[:top]:
        out.append("  %5.1f%%  %*d  %-18s  %s" % (pct(n), w, n, where(name)[:18], name))
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# The SVG

PALETTE = {  # kind -> (hue from, hue to, saturation %, lightness from, lightness to)
    "app": (352, 372, 72, 56, 68),       # red: the program (coil and the user's handlers)
    "kernel": (24, 40, 85, 52, 64),      # orange
    "lib": (48, 62, 78, 50, 62),         # yellow: libc, liburing, other shared objects
    "jemalloc": (268, 292, 55, 62, 74),  # purple
    "unknown": (0, 0, 0, 72, 80),        # grey
    "root": (210, 220, 25, 70, 78),      # blue-grey: all, process/thread
}
LEGEND = (("app", None), ("kernel", "kernel"), ("lib", "shared libs"), ("jemalloc", "jemalloc"))


def colour(name, kind):
    h0, h1, s, l0, l1 = PALETTE.get(kind, PALETTE["app"])
    base = name[:-len(KSUFFIX)] if name.endswith(KSUFFIX) else name
    v = zlib.crc32(base.encode("utf-8", "replace"))
    a = (v & 0xffff) / 65535.0
    b = ((v >> 16) & 0xffff) / 65535.0
    return hsl_hex((h0 + (h1 - h0) * a) % 360, s, l0 + (l1 - l0) * b)


def hsl_hex(h, s, l):
    s, l = s / 100.0, l / 100.0
    c = (1 - abs(2 * l - 1)) * s
    x = c * (1 - abs((h / 60.0) % 2 - 1))
    m = l - c / 2
    r, g, b = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h // 60) % 6]
    return "#%02x%02x%02x" % tuple(int(round((v + m) * 255)) for v in (r, g, b))


_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def esc(s):
    s = _XML_BAD.sub("?", s)
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


class Node:
    __slots__ = ("name", "count", "children")

    def __init__(self, name):
        self.name, self.count, self.children = name, 0, {}


def build_tree(prof):
    root = Node("all")
    for names, n in prof.stacks.items():
        root.count += n
        node = root
        for name in names:
            child = node.children.get(name)
            if child is None:
                child = node.children[name] = Node(name)
            child.count += n
            node = child
    return root


JS = r"""
(function () {
  var svg = document.documentElement, NS = "http://www.w3.org/2000/svg";
  var W = +svg.getAttribute("data-width"), PAD = +svg.getAttribute("data-pad");
  var TOTAL = +svg.getAttribute("data-total"), CW = +svg.getAttribute("data-charw");
  var frames = [].slice.call(document.querySelectorAll("g.f"));
  var details = document.getElementById("details"), matched = document.getElementById("matched");
  var unzoom = document.getElementById("unzoom"), zoomed = null, query = null;
  function num(g, a) { return +g.getAttribute(a); }
  function nameOf(g) { var t = g.firstChild.textContent; return t.substring(0, t.lastIndexOf(" (")); }
  function place(g, x, w) {
    var r = g.querySelector("rect"), t = g.querySelector("text"), n = nameOf(g);
    r.setAttribute("x", x.toFixed(2)); r.setAttribute("width", Math.max(w, 0).toFixed(2));
    t.setAttribute("x", (x + 3).toFixed(2));
    var fit = Math.floor((w - 6) / CW);
    t.textContent = fit < 3 ? "" : (n.length <= fit ? n : n.substring(0, fit - 2) + "..");
  }
  function show(z) {
    var x0 = 0, w0 = TOTAL, d0 = -1;
    if (z) { x0 = num(z, "data-x"); w0 = num(z, "data-w"); d0 = num(z, "data-d"); }
    var k = (W - 2 * PAD) / w0;
    frames.forEach(function (g) {
      var x = num(g, "data-x"), w = num(g, "data-w"), d = num(g, "data-d");
      g.classList.remove("p");
      if (d < d0) {  // an ancestor of the zoomed frame (the only lower frames overlapping it)
        if (x <= x0 && x + w >= x0 + w0) { g.style.display = ""; g.classList.add("p"); place(g, PAD, W - 2 * PAD); }
        else g.style.display = "none";
      } else if (x >= x0 && x + w <= x0 + w0) { g.style.display = ""; place(g, PAD + (x - x0) * k, w * k); }
      else g.style.display = "none";
    });
    zoomed = z; unzoom.style.display = z ? "" : "none";
  }
  function search(q) {
    var re; query = null;
    frames.forEach(function (g) { var r = g.querySelector("rect"); r.setAttribute("fill", g.getAttribute("data-c")); });
    matched.textContent = "";
    if (!q) return;
    try { re = new RegExp(q); } catch (e) { matched.textContent = "bad regex: " + e.message; return; }
    var spans = [];
    frames.forEach(function (g) {
      if (re.test(nameOf(g))) { g.querySelector("rect").setAttribute("fill", "#e040e0"); spans.push([num(g, "data-x"), num(g, "data-x") + num(g, "data-w")]); }
    });
    spans.sort(function (a, b) { return a[0] - b[0]; });
    var sum = 0, end = -1;
    spans.forEach(function (s) { if (s[1] > end) { sum += s[1] - Math.max(s[0], end); end = s[1]; } });
    query = q;
    matched.textContent = "Matched " + JSON.stringify(q) + ": " + (100 * sum / TOTAL).toFixed(1) + "% of samples";
  }
  function ask() {
    var q = window.prompt("Search frames (regular expression); empty clears", query || "");
    if (q !== null) search(q);
  }
  frames.forEach(function (g) {
    g.addEventListener("click", function () { show(g === zoomed ? null : g); });
    g.addEventListener("mouseover", function () { details.textContent = g.firstChild.textContent; });
    g.addEventListener("mouseout", function () { details.textContent = " "; });
  });
  unzoom.addEventListener("click", function () { show(null); });
  document.getElementById("search").addEventListener("click", ask);
  document.addEventListener("keydown", function (e) {
    if ((e.key === "f" && (e.ctrlKey || e.metaKey)) || (e.key === "/" && !e.ctrlKey)) { e.preventDefault(); ask(); }
    else if (e.key === "Escape") { search(null); show(null); }
  });
})();
"""

CSS = """
text { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; fill: #000; }
g.f text { font-size: %(fs)dpx; pointer-events: none; }
g.f rect { stroke: #fff; stroke-width: 0.4; }
g.f:hover rect { stroke: #000; stroke-width: 0.8; cursor: pointer; }
g.p rect { opacity: 0.5; }
.ui { font-size: 12px; cursor: pointer; fill: #1a4fa0; }
.ui:hover { text-decoration: underline; }
#title { font-size: 17px; } #subtitle, #details, #matched, .legend { font-size: 12px; }
"""


def render_svg(prof, title, subtitle="", width=1200, min_width=0.1, frame_h=16, font_size=11):
    total = prof.total
    pad = 10
    charw = font_size * 0.61
    top_h = 84 if subtitle else 66
    bottom_h = 30
    usable = width - 2 * pad
    scale = usable / float(total)
    root = build_tree(prof)

    laid = []  # (depth, x (samples), node)
    omitted = [0]
    maxdepth = [0]

    def walk(node, depth, x):
        laid.append((depth, x, node))
        maxdepth[0] = max(maxdepth[0], depth)
        cx = x
        for name in sorted(node.children):
            child = node.children[name]
            if child.count * scale >= min_width:
                walk(child, depth + 1, cx)
            else:
                omitted[0] += 1
            cx += child.count

    walk(root, 0, 0)
    height = top_h + (maxdepth[0] + 1) * frame_h + bottom_h
    base_y = height - bottom_h  # bottom of the root frame

    app = app_name_of(prof)
    kind_self = defaultdict(int)
    for names, n in prof.stacks.items():
        kind_self[prof.kind(names[-1])] += n

    o = []
    o.append('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n')
    o.append('<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%d" '
             'viewBox="0 0 %d %d" data-width="%d" data-pad="%d" data-total="%d" '
             'data-charw="%.3f">\n' % (width, height, width, height, width, pad, total, charw))
    o.append("<style>%s</style>\n" % (CSS % {"fs": font_size}))
    o.append('<rect x="0" y="0" width="%d" height="%d" fill="#fbfaf7"/>\n' % (width, height))
    o.append('<text id="title" x="%d" y="24" text-anchor="middle">%s</text>\n'
             % (width // 2, esc(title)))
    y = 24
    if subtitle:
        y += 18
        o.append('<text id="subtitle" x="%d" y="%d" text-anchor="middle" fill="#555">%s</text>\n'
                 % (width // 2, y, esc(subtitle)))
    y += 22
    # legend: the colour of each kind and its share of self time
    lx = pad
    for kind, label in LEGEND:
        label = label or app
        share = 100.0 * kind_self.get(kind, 0) / total
        o.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' %
                 (lx, y - 10, colour("legend" + kind, kind)))
        text = "%s %.1f%%" % (label, share)
        o.append('<text class="legend" x="%d" y="%d">%s</text>\n' % (lx + 16, y, esc(text)))
        lx += 16 + int(len(text) * 7.3) + 18
    o.append('<text class="legend" x="%d" y="%d" fill="#555">(self time; %d samples%s)</text>\n'
             % (lx, y, total, ", %d frames under %.2g px omitted" % (omitted[0], min_width)
                if omitted[0] else ""))
    o.append('<text id="unzoom" class="ui" x="%d" y="%d" style="display:none">Reset zoom</text>\n'
             % (width - pad - 190, y))
    o.append('<text id="search" class="ui" x="%d" y="%d" text-anchor="end">Search (Ctrl-F)</text>\n'
             % (width - pad, y))
    o.append('<text id="details" x="%d" y="%d"> </text>\n' % (pad, height - 10))
    o.append('<text id="matched" x="%d" y="%d" text-anchor="end"></text>\n'
             % (width - pad, height - 10))
    o.append('<g id="frames">\n')
    for depth, x, node in laid:
        if depth == 0:
            kind = "root"
        else:
            kind = prof.kind(node.name)
        fill = colour(node.name, kind)
        px = pad + x * scale
        pw = node.count * scale
        fy = base_y - (depth + 1) * frame_h
        pct = 100.0 * node.count / total
        fit = int((pw - 6) // charw)
        label = "" if fit < 3 else (node.name if len(node.name) <= fit
                                    else node.name[:fit - 2] + "..")
        o.append('<g class="f" data-x="%d" data-w="%d" data-d="%d" data-c="%s">'
                 '<title>%s (%d samples, %.2f%%)</title>'
                 '<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" rx="2" ry="2"/>'
                 '<text x="%.2f" y="%.1f">%s</text></g>\n'
                 % (x, node.count, depth, fill, esc(node.name), node.count, pct,
                    px, fy, pw, frame_h - 1, fill, px + 3, fy + frame_h - 4.5, esc(label)))
    o.append("</g>\n")
    o.append('<script type="text/ecmascript"><![CDATA[%s]]></script>\n' % JS)
    o.append("</svg>\n")
    return "".join(o)


# ---------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        description="Fold `perf script` output (or read folded stacks) and draw a flame graph "
                    "SVG and/or self/inclusive time tables.")
    ap.add_argument("input", nargs="?", default="-",
                    help="perf script output, or folded stacks with --folded (default: stdin)")
    ap.add_argument("--folded", action="store_true", help="the input is folded stacks")
    ap.add_argument("-o", "--output", help="write the SVG here (default: stdout, unless "
                    "--top or --fold-out is given without -o)")
    ap.add_argument("--fold-out", metavar="FILE", help="write the folded stacks here ('-': stdout)")
    ap.add_argument("--top", type=int, metavar="N", help="print the top N by self and inclusive time")
    ap.add_argument("--top-out", metavar="FILE", help="write the --top tables here (default: stdout)")
    ap.add_argument("--title", default="Flame graph", help="SVG title")
    ap.add_argument("--subtitle", default="", help="SVG subtitle")
    ap.add_argument("--width", type=int, default=1200, help="SVG width in px (default 1200)")
    ap.add_argument("--min-width", type=float, default=0.1,
                    help="omit frames narrower than this many px (default 0.1)")
    ap.add_argument("--no-comm", action="store_true",
                    help="do not put the process/thread name at the root of each stack")
    ap.add_argument("--tid", action="store_true", help="root frame is comm-TID (one per thread)")
    a = ap.parse_args(argv)

    if a.input == "-":
        src = sys.stdin
        if hasattr(src, "reconfigure"):
            src.reconfigure(errors="replace")
        lines = src
    else:
        try:
            lines = open(a.input, encoding="utf-8", errors="replace")
        except OSError as e:
            print("flamegraph.py: %s" % e, file=sys.stderr)
            return 2
    with lines:
        prof = read_folded(lines) if a.folded else fold_perf_script(
            lines, comm_root=not a.no_comm, with_tid=a.tid)
    if not prof.stacks:
        what = "folded stacks" if a.folded else "perf script samples"
        print("flamegraph.py: no %s in %s%s" % (
            what, "standard input" if a.input == "-" else a.input,
            " (%d lines not understood)" % prof.skipped if prof.skipped else ""), file=sys.stderr)
        if not a.folded:
            print("flamegraph.py: expected `perf script` output (for folded stacks use --folded)",
                  file=sys.stderr)
        return 1

    if a.fold_out:
        if a.fold_out == "-":
            write_folded(prof, sys.stdout)
        else:
            with open(a.fold_out, "w") as f:
                write_folded(prof, f)
    if a.top:
        text = tables(prof, a.top)
        if a.top_out:
            with open(a.top_out, "w") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
    if a.output or not (a.top or a.fold_out):
        svg = render_svg(prof, a.title, a.subtitle, a.width, a.min_width)
        if a.output and a.output != "-":
            with open(a.output, "w", encoding="utf-8") as f:
                f.write(svg)
        else:
            sys.stdout.write(svg)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        sys.exit(1)
