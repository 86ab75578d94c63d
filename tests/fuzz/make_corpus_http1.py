#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_http1 (tests/fuzz/corpus_http1/): programs in the encoding
described at the top of fuzz_http1.c. Run it again after changing the encoding:
    python3 tests/fuzz/make_corpus_http1.py
"""
import os
import struct

ACCEPT, SELECT, RAW, REQ, RECV, RECV_ALL, CLOCK, SEND, SEND_ALL, EOF, RESET, BATCH, DRAIN, \
    FORCE, ENOBUFS, SQEFAIL, SEND_ERR, PUMP, ALLOCFAIL = range(19)

# routes (enum route in fuzz_http1.c)
TEXT, JSON, ECHO, UPLOAD, DEFER, NOW, STREAM, HANG, ENOMEM, UNOWNED, NOPE, DELETE, SMALL, \
    PARAM, FAIL, STREAMNOW, EARLY, EARLYNOW = range(18)

# REQ flags
F_HEAD, F_10, F_CLOSE, F_KA, F_EXPECT, F_CHUNKED, F_BIG, F_FILL = (1 << i for i in range(8))

# EARLY operand b (op_req in fuzz_http1.c): the reader's pause mode (0 never, 1 every other
# call, 2 each new piece once, 3 the first piece twice), the resume timer (stream_ms), answer
# from a timer after the end, start reading from a timer, the 64-byte route /earlys; b & 128
# with a & 1: the handler returns -EIO after coil_req_read.
def early_b(pause=0, rms=0, fin=False, late=False, small=False, rc=False):
    return pause | rms << 2 | fin << 4 | late << 5 | small << 6 | rc << 7


# EARLYNOW operands: b: the new piece it answers at (0: in the handler), fail, sync (no defer),
# -EIO from the handler, COIL_BODY_PAUSE from the answering call, answer from the timer of a
# pause at that piece; a: the fail status (400, 413, 502, 504), the pause mode, the resume timer.
def earlynow_ab(after=0, fail=None, sync=False, rc=False, pp=False, ap=False, pause=0, rms=0):
    b = after | (fail is not None) << 2 | sync << 3 | rc << 4 | pp << 5 | ap << 6
    a = (fail or 0) | pause << 2 | rms << 4
    return a, b


def req(route, flags=0, length=0, a=0, b=0, chunk=0):
    return bytes([REQ, route, flags]) + struct.pack('<H', length) + bytes([a, b, chunk])


def raw(data):
    return bytes([RAW]) + struct.pack('<H', len(data)) + data


def recv(n, race=False, last=False):
    """One recv completion of up to n bytes (n < 0x4000; 0: 16384); last: without
    IORING_CQE_F_MORE."""
    return bytes([RECV]) + struct.pack('<H', n | (0x8000 if race else 0) | (0x4000 if last else 0))


# SQEFAIL with the high bit: the multishot accept fails with one of these (accept_errs)
EMFILE, ENFILE, ENOBUFS_, ENOMEM_, ECONNABORTED, EINTR, EAGAIN, EPERM = range(8)


def accept_err(err, more=False):
    return bytes([SQEFAIL, 0x80 | err | (8 if more else 0)])


def recv_all(piece=0):
    return bytes([RECV_ALL, piece])


def clock(t):
    return bytes([CLOCK, t])


def send(k=0):
    return bytes([SEND]) + struct.pack('<H', k)


def op(*codes):
    return bytes(codes)


def ms(n):
    """The CLOCK operand for about n milliseconds (see ms_of in fuzz_http1.c)."""
    if n < 64:
        return n
    if n < 6400:
        return 64 + n // 100
    if n < 64000:
        return 128 + n // 1000
    return min(255, 192 + n // 10000)


SEEDS = {
    'pipelined_gets': req(TEXT) + req(JSON, a=5) + req(TEXT, F_HEAD) + req(PARAM, a=0x41, b=1)
    + req(TEXT, F_CLOSE) + op(PUMP),
    'chunked_post_small_pieces': req(ECHO, F_CHUNKED, 300, chunk=7) + req(ECHO, 0, 40)
    + recv_all(3) + op(BATCH, SEND_ALL, PUMP),
    'expect_100_continue': req(ECHO, F_EXPECT, 2000) + recv(60) + op(BATCH) + send(10)
    + op(SEND_ALL) + recv_all(100) + op(PUMP),
    'deferred_pipelined': req(DEFER, 0, 0, a=20) + req(TEXT) + req(DEFER, 0, 500, a=5, b=4)
    + req(UNOWNED, a=3) + req(DEFER, 0, 0, a=1, b=3) + op(PUMP)
    + (clock(ms(30)) + op(SEND_ALL, PUMP)) * 4,
    'stream_timers_chunked': req(STREAM, a=5, b=4 | (2 << 3)) + req(TEXT) + op(PUMP)
    + (clock(ms(10)) + op(SEND_ALL)) * 8 + op(PUMP),
    'stream_backpressure': req(STREAM, a=32, b=7) + req(STREAM, a=4, b=5 | (1 << 5)) + op(PUMP)
    + (send(5000) + op(BATCH)) * 6 + op(SEND_ALL, PUMP, SEND_ALL),
    'upload_streaming': req(UPLOAD, F_CHUNKED, 40000, chunk=100) + req(UPLOAD, 0, 65000, a=3, b=8)
    + recv_all(200) + op(BATCH) + clock(ms(10)) + op(SEND_ALL, PUMP)
    + req(UPLOAD, 0, 5000, a=2, b=1 | (2 << 1)) + op(PUMP),
    'hang_handler_timeout': req(HANG, b=1) + req(TEXT) + op(PUMP) + clock(ms(31000))
    + op(SEND_ALL, PUMP),
    'engine_answers': req(ENOMEM) + req(ENOMEM, b=1) + req(NOW) + req(NOW, b=1) + req(FAIL)
    + req(NOPE, a=9) + req(DELETE) + req(STREAMNOW) + req(JSON, b=1) + req(SMALL, 0, 10)
    + req(SMALL, 0, 100) + op(PUMP),
    'garbage': raw(b'GET /text HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE \x00\xff\r\n\r\n') + op(PUMP)
    + op(ACCEPT) + raw(b'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab')
    + op(PUMP) + clock(ms(31000)) + op(SEND_ALL, PUMP),
    'http10_stream_and_head': req(TEXT, F_10 | F_KA) + req(STREAM, F_10 | F_KA, a=3, b=2)
    + op(PUMP) + (clock(ms(1)) + op(SEND_ALL)) * 4 + op(ACCEPT) + req(STREAM, F_HEAD, a=2, b=2)
    + req(DEFER, F_HEAD, a=2) + op(PUMP) + (clock(ms(3)) + op(SEND_ALL)) * 3,
    'conns_drain_eof_reset': req(DEFER, a=50) + req(TEXT) + op(ACCEPT) + req(HANG) + op(ACCEPT)
    + req(TEXT) + op(EOF) + op(SELECT, 0) + recv_all() + op(SELECT, 1) + recv_all()
    + op(RESET) + op(SELECT, 2) + recv_all() + op(BATCH, DRAIN) + clock(ms(60))
    + op(SEND_ALL) + clock(ms(31000)) + op(SEND_ALL),
    'alloc_failures': op(ALLOCFAIL, 3) + req(DEFER, 0, 100, a=2, b=4) + req(STREAM, a=3, b=3)
    + op(PUMP) + clock(ms(5)) + op(ALLOCFAIL, 1) + op(SEND_ALL) + clock(ms(5)) + op(PUMP),
    'body_too_large': req(ECHO, F_BIG, 40000) + recv_all() + op(BATCH, SEND_ALL)
    + op(ACCEPT) + req(UPLOAD, F_CHUNKED | F_BIG, 60000, chunk=0) + op(PUMP),
    'pause_and_cancel_race': req(TEXT, 0, 0, a=255, b=8) + req(TEXT, 0, 0, a=255, b=8)
    + req(TEXT) + recv(0) + recv(100, race=True) + op(BATCH) + op(ENOBUFS) + send(1000)
    + op(SQEFAIL, 0, SEND_ALL, PUMP),
    # the listener: accept errors pause accepting (ACCEPT finds nothing armed) until the timer
    'accept_errors_pause': accept_err(EMFILE) + op(ACCEPT) + clock(ms(50)) + op(ACCEPT)
    + clock(ms(100)) + op(ACCEPT) + req(TEXT) + accept_err(ENFILE, more=True) + op(BATCH, ACCEPT)
    + clock(ms(200)) + accept_err(ECONNABORTED) + accept_err(EINTR, more=True) + accept_err(EPERM)
    + op(ACCEPT) + req(JSON) + op(PUMP),
    # a fifth connection while four are open: the engine refuses it (max_conns)
    'max_conns_refused': op(ACCEPT, ACCEPT, ACCEPT, ACCEPT) + op(SELECT, 3) + req(TEXT)
    + op(SELECT, 0) + req(TEXT) + op(PUMP, FORCE, BATCH, ACCEPT) + req(TEXT) + op(PUMP),
    # data completions that end the multishot recv (CQ overflow): it is re-armed
    'recv_without_more': req(ECHO, 0, 3000) + recv(100, last=True) + recv(1000) + recv(50, last=True)
    + op(BATCH) + recv(0, last=True) + req(UPLOAD, 0, 20000, a=1) + recv(5000, last=True)
    + op(PUMP),
    # the connection fails under coil_res_stream inside the handler (the flush list cannot
    # grow): -EPIPE, on_abort ran, res is gone (found by the fuzzer: the harness expected it not)
    'streamnow_conn_fails': req(STREAMNOW, F_HEAD | F_10, 63, a=11, b=7, chunk=0xf3)
    + op(ALLOCFAIL, 7) + recv_all(3),
    # the accept's cancel finds no SQE at the drain: a connection still arrives and is closed
    'drain_accept_race': req(DEFER, a=20) + op(RECV_ALL, 0, SQEFAIL, 0, DRAIN, ACCEPT, ACCEPT)
    + clock(ms(30)) + op(SEND_ALL, PUMP) + clock(ms(31000)) + op(SEND_ALL),
    # early routes (the handler runs at the head, then reads the body with coil_req_read):
    # pausing readers resumed by timers, Content-Length and chunked bodies, pipelined requests
    # held behind the body and answered after the early request
    'early_pipelined': req(EARLY, 0, 3000, b=early_b(pause=1)) + req(TEXT)
    + req(EARLY, F_CHUNKED, 2000, b=early_b(pause=2, rms=1), chunk=50) + req(ECHO, 0, 10)
    + req(EARLY, 0, 0, b=early_b(fin=True)) + req(JSON) + recv_all(100) + op(BATCH)
    + (clock(ms(1)) + op(SEND_ALL, PUMP)) * 8,
    'early_expect_100': req(EARLY, F_EXPECT, 5000, b=early_b(pause=3))
    + req(EARLY, F_EXPECT | F_CHUNKED, 700, chunk=13 | 0x80, b=early_b(pause=2, rms=2, fin=True))
    + req(TEXT) + recv(80) + op(BATCH) + op(SEND_ALL) + recv_all(200)
    + (clock(ms(10)) + op(SEND_ALL, PUMP)) * 6,
    # answered before the body is read: the connection closes after the answer and what was
    # pipelined behind the body is never parsed
    'early_answer_unread': req(EARLYNOW, 0, 4000, b=1) + req(TEXT) + recv_all(100) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, F_CHUNKED, 500, chunk=20) + req(TEXT) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, 0, 100, *earlynow_ab(sync=True)) + req(TEXT) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, F_EXPECT, 30, *earlynow_ab(after=2)) + req(TEXT)
    + op(PUMP),
    'early_fail_pause_answer': req(EARLYNOW, 0, 3000, *earlynow_ab(after=2, fail=2))
    + req(TEXT) + recv_all(131) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, 0, 2000, *earlynow_ab(after=1, ap=True, rms=2))
    + recv_all(130) + op(BATCH) + clock(ms(10)) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, F_CHUNKED, 300, *earlynow_ab(after=1, pp=True, pause=2),
                       chunk=30) + req(TEXT) + recv_all(40) + op(BATCH, PUMP)
    + op(ACCEPT) + req(EARLYNOW, 0, 0, *earlynow_ab(fail=3, rc=True)) + req(TEXT)
    + op(PUMP),
    'early_late_read_small': req(EARLY, 0, 2000, b=early_b(late=True, rms=2)) + req(TEXT)
    + recv_all(100) + op(BATCH) + clock(ms(10)) + op(SEND_ALL, PUMP)
    + req(EARLY, 0, 60, b=early_b(small=True)) + req(EARLY, F_CHUNKED, 200, chunk=10,
                                                      b=early_b(small=True, pause=1))
    + op(PUMP) + op(ACCEPT) + req(EARLY, 0, 100, b=early_b(small=True)) + op(PUMP)
    + op(ACCEPT) + req(EARLY, 0, 100, a=1, b=early_b(rc=True)) + req(TEXT) + op(PUMP),
    # a reader paused when the client goes away, the handler timeout, a drain
    'early_abort_drain': req(EARLY, 0, 8000, b=early_b(pause=2, rms=3)) + recv_all(135)
    + op(BATCH, EOF) + recv_all() + op(ACCEPT) + req(EARLY, F_CHUNKED, 5000, chunk=0,
                                                    b=early_b(pause=1, rms=3))
    + recv(200) + op(BATCH, DRAIN) + clock(ms(100)) + op(PUMP) + op(ACCEPT)
    + req(EARLY, 0, 500, b=early_b(late=True, rms=3)) + recv(100) + clock(ms(31000))
    + op(SEND_ALL, PUMP),
}


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus_http1')
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
