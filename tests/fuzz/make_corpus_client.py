#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_client (corpus_client/): small programs in the format of
fuzz_client.c's header comment, each one complete exchange (or a fault) so the fuzzer starts
from fetches that reach the upstream and back. Run from anywhere: python3 make_corpus_client.py"""
import os
import struct

(ACCEPT, SELECT, REQ, CRECV, PUMP, CLOCK, BATCH, CONNECT, UGEN, URAW, URECV, UEOF, URESET, USEND,
 SENDALL, DRAIN, FORCE, SQEFAIL, ALLOCFAIL, SOCKFAIL, CANCEL, RESUME, WRITE, CEOF, CRESET) = range(25)


def req(r, a=0, b=0, c=0, d=0, l=0):
    return bytes([REQ, r, a, b, c, d]) + struct.pack('<H', l)


def ugen(u=0, f=0, st=0, l=100, k=0):
    return bytes([UGEN, u, f, st]) + struct.pack('<H', l) + bytes([k])


def connect(u=0, k=0):
    return bytes([CONNECT, u, k])


def clock(t):
    return bytes([CLOCK, t])


def raw(u, data):
    return bytes([URAW, u, len(data)]) + data


P = bytes([PUMP])
seeds = {
    'get_length': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(l=300) + P + P,
    'get_chunked': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(f=1, l=900, k=5) + P + P,
    'get_chunked_ext': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(f=1, l=90, k=130) + P,
    'get_close': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(f=2, l=500) + bytes([UEOF, 0]) + P + P,
    'get_204': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(f=3) + P + P,
    'head': bytes([ACCEPT]) + req(0, b=2) + P + connect() + P + ugen(l=0) + P + P,
    'interim_conn_close': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(f=4 | 8, l=20) + P + P,
    'keepalive_reuse': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(l=10) + P + req(0) + P + ugen(l=20) + P + P,
    'retry_on_reuse': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(l=10) + P + req(0) + P +
    bytes([UEOF, 0]) + P + connect() + P + ugen(l=5) + P + P,
    'post_body': bytes([ACCEPT]) + req(1, b=4, l=700) + P + connect() + P + ugen(st=1, l=50) + P + P,
    'pipelined_two': bytes([ACCEPT]) + req(0) + req(0) + P + connect() + connect(1) + P +
    ugen(u=0, l=10) + ugen(u=1, l=11) + P + P,
    'queue_full': bytes([ACCEPT]) + req(0) + req(0) + req(0) + req(0) + req(0) + P + clock(80) + P,
    'refused': bytes([ACCEPT]) + req(0) + P + connect(k=2) + P + req(0) + P + connect(k=2) + P + req(0) + P + clock(90) + P + clock(200) + req(0) + P,
    'connect_timeout': bytes([ACCEPT]) + req(0) + P + clock(70) + P + clock(120),
    'head_timeout': bytes([ACCEPT]) + req(0) + P + connect() + P + clock(130) + P,
    'idle_timeout': bytes([ACCEPT]) + req(0) + P + connect() + P + raw(0, b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc') + P + clock(110) + P,
    'bad_chunk': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(f=1 | 16, l=300, k=10) + P + P,
    'garbage_after': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(f=64, l=30) + P + P,
    'pipelined_responses': bytes([ACCEPT]) + req(0) + P + connect() + P + ugen(f=128, l=30) + P + P,
    'reset_mid_body': bytes([ACCEPT]) + req(0) + P + connect() + P + raw(0, b'HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nxx') + P + bytes([URESET, 0]) + P,
    'pause_chunked': bytes([ACCEPT]) + req(0, c=1) + P + connect() + P + ugen(f=1, l=3000, k=3) +
    bytes([URECV, 0, 50, 0, URECV, 0, 60, 0]) + clock(70) + bytes([RESUME, 0]) + P + clock(70) + P + bytes([RESUME, 0]) + P,
    'pause_each': bytes([ACCEPT]) + req(0, c=2) + P + connect() + P + ugen(l=2000) + bytes([URECV, 0, 100, 0]) + clock(60) + P + clock(60) + P,
    'pause_close_eof': bytes([ACCEPT]) + req(0, c=3) + P + connect() + P + ugen(f=2, l=500) + bytes([UEOF, 0, URECV, 0, 10, 0]) + P + clock(60) + P,
    'cancel_return': bytes([ACCEPT]) + req(0, c=1 << 2) + P + connect() + P + ugen(l=300) + P + P,
    'cancel_api': bytes([ACCEPT]) + req(0, c=2 << 2) + P + connect() + P + ugen(f=1, l=3000, k=1) + P + P,
    'cancel_outside': bytes([ACCEPT]) + req(0) + P + bytes([CANCEL, 0]) + P + connect() + P,
    'answer_early': bytes([ACCEPT]) + req(0, d=1) + P + connect() + P + ugen(l=300) + P + P,
    'unowned_client_gone': bytes([ACCEPT]) + req(0, b=16) + P + bytes([CRESET]) + P + connect() + P + ugen(l=30) + P + P,
    'two_servers': bytes([ACCEPT]) + req(0, b=1) + req(0, b=1) + P + connect(0, 2) + P + connect(0) + P + ugen(l=40) + P + P,
    'total_timeout': bytes([ACCEPT]) + req(0, b=1) + P + connect() + P + raw(0, b'HTTP/1.1 200 OK\r\n') + P + clock(100) + clock(100) + clock(100) + clock(100) + P,
    'proxy_get': bytes([ACCEPT]) + req(2) + P + connect() + P + ugen(l=200) + P + P,
    'proxy_get_chunked': bytes([ACCEPT]) + req(2) + P + connect() + P + ugen(f=1, l=20000, k=100) + P + P,
    'proxy_put': bytes([ACCEPT]) + req(2, l=3000) + P + connect() + P + ugen(l=20) + P + P,
    'proxy_post_chunked': bytes([ACCEPT]) + req(2, a=1, l=2500) + P + connect() + P + ugen(l=20) + P + P,
    'proxy_refused': bytes([ACCEPT]) + req(2) + P + connect(k=2) + P,
    'proxy_slow_client': bytes([ACCEPT]) + req(2) + bytes([CRECV, 0, 0]) + connect() + P + ugen(f=1, l=60000 % 20000, k=0) +
    bytes([URECV, 0, 0, 0, URECV, 0, 0, 0, BATCH]) + P,
    # a 380000-byte chunked response read at once while the client reads nothing: the proxy's
    # writes pass COIL_STREAM_HIGH, the fetch pauses, and the client's drain resumes it
    'proxy_backpressure': bytes([ACCEPT]) + req(2) + P + connect() + ugen(f=1, st=128, l=19000) +
    bytes([URECV, 0, 0, 0]) * 30 + bytes([BATCH, SENDALL, PUMP, PUMP]),
    'stream_length': bytes([ACCEPT]) + req(3, l=10) + P + connect() + P + bytes([WRITE, 0, 0, 0]) + P + ugen(l=10) + P + P,
    'stream_chunked': bytes([ACCEPT]) + req(3, a=1, l=100) + P + connect() + P + ugen(l=10) + P + P,
    'stream_partial_sends': bytes([ACCEPT]) + req(3, l=4000) + P + connect() + bytes([USEND, 0, 100, 0, USEND, 0, 200, 0]) + P + ugen(l=1) + P,
    'drain': bytes([ACCEPT]) + req(0) + P + connect() + P + bytes([DRAIN]) + ugen(l=5) + P + clock(250) + P,
    'sockfail': bytes([ACCEPT, SOCKFAIL]) + req(0) + P + req(0) + P + connect() + P + ugen() + P,
    'allocfail': bytes([ACCEPT]) + req(0) + P + connect() + P + bytes([ALLOCFAIL, 3]) + ugen(f=1, l=500, k=2) + P + P,
}
here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, 'corpus_client')
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), 'wb') as f:
        f.write(data)
print(f'{len(seeds)} seeds in {out}')
