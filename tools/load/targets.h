/* SPDX-License-Identifier: MIT */
/*
 * targets: what coil-load sends. A target is one HTTP request (method, URL, headers, body),
 * prebuilt into the exact bytes to write. Targets come from a URL on the command line or from
 * a file in vegeta's HTTP format:
 *
 *     GET http://localhost:8080/plaintext
 *     X-Header: value
 *
 *     POST http://localhost:8080/echo
 *     Content-Type: text/plain
 *     @/path/to/body.txt
 *
 * (a target line "METHOD URL", then header lines "Name: value", then an optional "@path" body
 * line (relative paths are relative to the targets file's directory); blank lines separate
 * targets; lines starting with '#' are comments). http:// only; every target must name the
 * same host and port (coil-load drives one server). Errors name the file, the line and what
 * is wrong.
 */
#ifndef LOAD_TARGETS_H
#define LOAD_TARGETS_H

#include <stddef.h>
#include <stdint.h>

struct load_header {
    char *name;
    char *value;
};

struct load_target {
    char *method; /* "GET" */
    char *path;   /* origin-form target: "/plaintext?x=1" */
    struct load_header *hdrs;
    size_t nhdrs;
    char *body; /* NULL when none */
    size_t body_len;
    char *req; /* the request bytes, ready to send */
    size_t req_len;
    int head; /* method is HEAD: its response has no body */
};

struct load_targets {
    struct load_target *v;
    size_t n;
    char *host;      /* as in the URL: "localhost" or "127.0.0.1" or "[::1]" */
    uint16_t port;   /* from the URL, default 80 */
    char *authority; /* "host:port" as the Host header carries it */
};

/* Splits an http:// URL. -EINVAL with a message in err (https: "https is not supported"). */
int load_url_parse(const char *url, char **host, uint16_t *port, char **path, char *err,
                   size_t errlen);

/* Adds one target from a method and URL (the single-URL form of the command line). */
int load_targets_add_url(struct load_targets *t, const char *method, const char *url, char *err,
                         size_t errlen);
/* Reads a vegeta HTTP-format targets file. -EINVAL with "FILE:LINE: what" in err. */
int load_targets_parse_file(struct load_targets *t, const char *path, char *err, size_t errlen);
/* Reads the body for every target that has none from body_file (the -body @file flag), adds the
 * extra headers (-H, repeatable) to every target, then builds every target's request bytes
 * (Host from the URL unless a Host header is given; Content-Length when there is a body). */
int load_targets_finish(struct load_targets *t, const struct load_header *extra, size_t nextra,
                        const char *body_file, char *err, size_t errlen);
void load_targets_free(struct load_targets *t);

#endif
