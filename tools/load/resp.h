/* SPDX-License-Identifier: MIT */
/*
 * resp: an incremental HTTP/1.1 response parser for the load generator. It consumes bytes as
 * they arrive, split anywhere, keeps only the current line (bounded), and never keeps a body:
 * bodies are framed (Content-Length, chunked, or until the connection closes) and counted.
 * Interim 1xx responses are skipped.
 */
#ifndef LOAD_RESP_H
#define LOAD_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOAD_RESP_MAX_LINE 8192

struct load_resp {
    uint8_t state;
    bool head; /* the request was HEAD: no body whatever the headers say */
    bool chunked;
    bool has_length;
    bool close;         /* Connection: close */
    int status;         /* of the response being parsed */
    uint64_t length;    /* Content-Length */
    uint64_t remaining; /* body or chunk bytes left */
    uint32_t line_len;  /* bytes in line[] */
    char line[LOAD_RESP_MAX_LINE];
};

/* Starts a new response; head: the request it answers was HEAD. */
void load_resp_start(struct load_resp *r, bool head);
/*
 * Feeds buf[0..len). Returns 1 when a response is complete (*used = bytes consumed, the rest
 * belongs to the next response), 0 when all len bytes were consumed and more are needed, -1 for
 * a malformed response. A response framed by the end of the connection completes only through
 * load_resp_eof.
 */
int load_resp_feed(struct load_resp *r, const char *buf, size_t len, size_t *used);
/* The peer closed: 1 if that completes the response (a body read until close), else 0. */
int load_resp_eof(struct load_resp *r);
/* True when no byte of a response has arrived yet. */
bool load_resp_idle(const struct load_resp *r);

#endif
