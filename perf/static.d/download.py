#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""perf/static's big-file client: CONNS keep-alive connections (one thread each) GET the URL
again and again for SECS seconds, reading into a 1 MiB buffer. wrk reads 8 KiB per call and
tops out near 0.75 GB/s here, so it, not the server, would set the pace of a 100 MiB download.

    download.py [--conns N] [--secs S] http://HOST:PORT/PATH

Prints "metric<TAB>value" lines after a "download<TAB>1" line: requests (whole responses),
bytes (every byte read: heads, bodies, and the part of the responses cut at the end), wall_s,
rps, p99_us (request sent to last byte, whole responses), non2xx, errors (failed connections,
answers without Content-Length, early ends).
"""
import argparse
import socket
import threading
import time
import urllib.parse

BUF = 1 << 20


class Conn(threading.Thread):
    def __init__(self, host, port, request, deadline):
        super().__init__(daemon=True)
        self.addr, self.request, self.deadline = (host, port), request, deadline
        self.requests = self.bytes = self.non2xx = self.errors = 0
        self.latencies = []
        self.buf = bytearray(BUF)

    def run(self):
        try:
            with socket.create_connection(self.addr, timeout=10) as s:
                while time.monotonic() < self.deadline and self.one(s):
                    pass
        except (OSError, ValueError, IndexError):  # no connection, a bad head
            self.errors += 1

    def one(self, s):
        """One request and its answer; False once the deadline cut it or it went wrong."""
        buf = self.buf
        view = memoryview(buf)
        t0 = time.monotonic()
        s.sendall(self.request)
        have = 0
        while (end := buf.find(b"\r\n\r\n", 0, have)) < 0:
            n = s.recv_into(view[have:]) if have < BUF else 0
            if n == 0:
                self.errors += 1
                return False
            have += n
        self.bytes += have
        head = bytes(buf[:end]).decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        length = [int(h.split(":", 1)[1]) for h in head[1:]
                  if h.lower().startswith("content-length:")]
        if not length:
            self.errors += 1
            return False
        left = length[0] - (have - end - 4)
        while left > 0:
            if time.monotonic() >= self.deadline:
                return False
            n = s.recv_into(view[:min(left, BUF)])
            if n == 0:
                self.errors += 1
                return False
            self.bytes += n
            left -= n
        self.requests += 1
        self.latencies.append(time.monotonic() - t0)
        if status // 100 != 2:
            self.non2xx += 1
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--secs", type=float, default=5)
    ap.add_argument("url")
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    request = f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode()
    t0 = time.monotonic()
    conns = [Conn(u.hostname, u.port or 80, request, t0 + a.secs) for _ in range(a.conns)]
    for c in conns:
        c.start()
    for c in conns:
        c.join()
    wall = time.monotonic() - t0
    lat = sorted(x for c in conns for x in c.latencies)
    n = sum(c.requests for c in conns)
    print("download\t1")
    print(f"requests\t{n}")
    print(f"bytes\t{sum(c.bytes for c in conns)}")
    print(f"wall_s\t{wall:.6f}")
    print(f"rps\t{n / wall:.6g}")
    print(f"p99_us\t{lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e6 if lat else 0:.0f}")
    print(f"non2xx\t{sum(c.non2xx for c in conns)}")
    print(f"errors\t{sum(c.errors for c in conns)}")


if __name__ == "__main__":
    main()
