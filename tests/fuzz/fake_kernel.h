/* SPDX-License-Identifier: MIT */
/*
 * fake_kernel.h: io_uring and sockets without a kernel, for fuzz_http1 and fuzz_client. The engine's real
 * transport (tcp.c) runs on top of it unchanged: it prepares SQEs with liburing's inline
 * io_uring_prep_* helpers into a submission array this file hands out (coil__sqe), and the fake
 * kernel reads them, keeps the operations in flight (a multishot accept on the listener, one
 * multishot recv and one send per socket, cancels) and completes them when the harness says so,
 * by building a struct io_uring_cqe and calling the handler tcp.c registered for its op with
 * coil__loop_handle, as loop.c does. It also stands in for the rest of loop.c (the loop's
 * hooks, the wheel's coil__timer_at, precise timers, the clock, coil__give_back, coil__log) and
 * for the globals of app.c, so no ring, no thread and no real socket is involved.
 *
 * Sockets are fake descriptors (FK_FD_BASE and up, never valid in the process); tcp.c's close()
 * and shutdown() reach fk's versions through the linker (-Wl,--wrap=close,--wrap=shutdown), so
 * the kernel sees the FIN, the abort and the close the moment they happen. Provided buffers are
 * a few recv_buf_size slots in w->br_mem; a slot the kernel owns is poisoned for ASan, and so
 * is the part of a lent slot past the bytes received.
 *
 * The kernel checks what a kernel would refuse or what would break the engine's own design:
 * a malformed SQE, a second recv or send on a socket, a recv armed after the socket was shut
 * down or after its EOF was delivered, a send after the FIN or without MSG_NOSIGNAL, an SQE for
 * a closed socket or a connection that is gone, a socket closed with an operation in flight,
 * a provided buffer given back twice or never, a send buffer changed while in flight.
 */
#ifndef COIL_FAKE_KERNEL_H
#define COIL_FAKE_KERNEL_H

#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* Checked even under NDEBUG. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define FK_FD_BASE 0x70000000 /* fake descriptors: far above any real one */

/* Calls to coil__sqe that fail (NULL, as when the SQ stays full): each failure uses one. Set by
 * the harness. */
extern unsigned fk_sqe_failures;

/* ---- the worker ---- */

/* Registers tcp.c's and wait.c's handlers and hooks (coil__tcp_init, coil__wait_init), once. */
void fk_init(void);
/* A worker as loop.c starts one (walloc, wheel, Date line, provided buffers, a listener, the
 * modules' per-worker state as coil__modules_start makes it), then EV_SERVE: tcp.c arms its
 * multishot accept. */
void fk_worker_start(struct coil__worker *w, struct coil_app *app, uint64_t now_ms);
/* The end of the worker as the loop ends it: graceful shutdown begins if it has not (EV_DRAIN:
 * the accept is cancelled, the listener closed), completions still queued arrive, then the
 * kernel must be idle (no operation in flight but a listener's accept whose cancel could not be
 * submitted, every socket closed, every provided buffer back) and coil__modules_stop's order
 * frees the worker; every walloc allocation must have been freed. */
void fk_worker_stop(struct coil__worker *w);

/* The clock moves to now_ms (never backwards). */
void fk_set_clock(struct coil__worker *w, uint64_t now_ms);
/* One loop iteration after the harness's completions: submit, completions the kernel makes on
 * its own (cancels and what they cancelled), due wheel timers, due precise timers, the drain
 * deadline (EV_FORCE while past it), then EV_BATCH (connections resume and send). */
void fk_loop_tail(struct coil__worker *w);
void fk_drain(struct coil__worker *w); /* graceful shutdown begins (loop.c begin_drain) */
void fk_force(struct coil__worker *w); /* EV_FORCE */

/* ---- the kernel's view of a socket, and completions ---- */

struct fk_io {
    bool open;           /* not closed */
    bool recv;           /* a multishot recv is in flight */
    bool recv_cancelled; /* ... and an ASYNC_CANCEL reached it */
    bool send;           /* a send is in flight */
    size_t send_len;     /* its length */
    bool shut_rd;        /* the server shut its read side (an abort) */
    bool shut_wr;        /* the server shut its write side (FIN or abort) */
};
/* Submits what is queued, then describes fd; false if fd is not a socket fk made. */
bool fk_io(int fd, struct fk_io *io);

/* A connection arrives: the multishot accept completes with a new socket. Returns its fd (the
 * engine may already have closed it: max_conns, no memory), or -1 when no accept is armed. */
int fk_accept(struct coil__worker *w);
/* The accept completes with -err; more: it stays armed (IORING_CQE_F_MORE). false if none is
 * armed. */
bool fk_accept_error(struct coil__worker *w, int err, bool more);
/* A recv completion on fd: n bytes of data in a provided buffer (-ENOBUFS instead when none is
 * free), with IORING_CQE_F_MORE unless last; or, with data NULL, res (0: EOF, or -errno), which
 * ends the multishot recv. */
void fk_recv_data(struct coil__worker *w, int fd, const void *data, size_t n, bool last);
void fk_recv_end(struct coil__worker *w, int fd, int res);
/* The send in flight on fd completes: res > 0 bytes reached the peer, or -errno. */
void fk_send(struct coil__worker *w, int fd, long res);

/* ---- outbound connections (tcp.c's coil__tcp_connect: socket() reaches fk through
 * -Wl,--wrap=socket and gets a fake descriptor; setsockopt on it fails harmlessly) ---- */

/* socket() calls that fail with EMFILE. Set by the harness. */
extern unsigned fk_socket_failures;
/* The connect in flight on fd completes with res (0, or -errno); false if none is. */
bool fk_connect(struct coil__worker *w, int fd, int res);
/* The k-th open outbound socket (in the kernel's order), or -1; *connecting: its connect is in
 * flight. */
int fk_outbound(unsigned k, bool *connecting);
bool fk_is_outbound(int fd);

/* The live connection on fd, or NULL. */
struct coil_conn *fk_conn(struct coil__worker *w, int fd);
/* Between two harness steps (no engine code on the stack): every connection's inflight count is
 * exactly its recv and send in flight (hold/release balanced), its flags agree with the kernel
 * (RECV_ARMED, SENDING, CLOSING shut down, LINGER FIN sent), it is not BUSY, w->open counts the
 * connections, every accepted socket still open has one, and no provided buffer is lent. */
void fk_check(struct coil__worker *w);

/* ---- what the peer sees (implemented by the harness) ---- */

/* Bytes the peer received on socket fd (a send completed). */
void fuzz_peer_output(int fd, const char *data, size_t n);
/* The server shut its write side (shutdown(SHUT_WR): the graceful close's FIN). */
void fuzz_peer_fin(int fd);
/* The server closed socket fd. */
void fuzz_peer_closed(int fd);

#endif
