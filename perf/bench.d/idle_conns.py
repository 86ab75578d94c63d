#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Memory per idle keep-alive connection, as the server's own RSS sees it.

Opens N connections to 127.0.0.1:PORT, sends one GET on each, reads the whole response, and
leaves the connection open and idle. The server's VmRSS (of MEASURE_PID: for nginx the
worker, not the master) is read before the first connect and again once all N are idle, so
the growth divided by N is the user-space memory an idle keep-alive connection costs. Kernel
socket buffers are not in RSS and so are not counted.

Connects are kept to a bounded number in flight so that the listen backlog never overflows
(an overflow costs a 1 s SYN retransmit and makes the run slow, not wrong). The sockets are
closed with SO_LINGER 0 (RST), so repeated runs leave no TIME_WAIT behind on loopback.

Prints "metric<TAB>value" lines: rss_before_kib, rss_after_kib, conns, closed (idle connections
the server had closed by the time RSS was read), bytes_per_conn.

    idle_conns.py PORT MEASURE_PID [N=10000] [PATH=/plaintext]
"""
import selectors
import socket
import struct
import sys
import time

IN_FLIGHT = 256     # connections between connect() and a complete response
SETTLE_S = 1.0      # let the server finish freeing per-request memory before reading RSS
DEADLINE_S = 60.0   # give up: something is wrong with the server


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def response_complete(buf):
    """True once buf holds a whole response head plus its Content-Length body."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return len(buf) >= end + 4 + length


def open_idle(port, n, path):
    """Returns the list of idle sockets, each having served one request."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    idle, opened, pending = [], 0, 0
    deadline = time.monotonic() + DEADLINE_S
    while len(idle) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(idle)} of {n} connections served in {DEADLINE_S}s")
        while pending < IN_FLIGHT and opened < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            sel.register(s, selectors.EVENT_WRITE, [b""])
            opened += 1
            pending += 1
        for key, events in sel.select(timeout=1.0):
            s, state = key.fileobj, key.data
            if events & selectors.EVENT_WRITE:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise RuntimeError(f"connect: {err}")
                s.sendall(request)  # tiny: fits the empty send buffer
                sel.modify(s, selectors.EVENT_READ, state)
                continue
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("server closed a connection before answering")
            state[0] += chunk
            if response_complete(state[0]):
                sel.unregister(s)
                idle.append(s)
                pending -= 1
    sel.close()
    return idle


def count_closed(socks):
    """How many of the idle connections the server has closed meanwhile."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed = len(sel.select(timeout=0))
    sel.close()
    return closed


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    path = sys.argv[4] if len(sys.argv) > 4 else "/plaintext"
    before = rss_kib(pid)
    socks = open_idle(port, n, path)
    time.sleep(SETTLE_S)
    after = rss_kib(pid)
    closed = count_closed(socks)
    linger = struct.pack("ii", 1, 0)
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.close()
    print(f"rss_before_kib\t{before}\nrss_after_kib\t{after}\nconns\t{n}\nclosed\t{closed}")
    print(f"bytes_per_conn\t{(after - before) * 1024 / n:.1f}")


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError) as e:
        sys.exit(f"idle_conns: {e}")
