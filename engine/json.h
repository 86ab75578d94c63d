/* SPDX-License-Identifier: MIT */
/*
 * json: the writer behind coil_json_* (coil.h). Output grows in a buffer from the request
 * arena. Commas are inserted from a per-depth "first element" bit; strings are escaped per
 * RFC 8259 (", \, control characters as \n \r \t \b \f or \u00XX; invalid UTF-8 bytes are
 * replaced by U+FFFD so the output is always valid JSON). Misuse (a value where a key is due,
 * closing the wrong container, depth over 64) sets err and further calls do nothing.
 */
#ifndef COIL_JSON_H
#define COIL_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "coil.h"

struct coil_json {
    struct coil_arena *arena; /* where buf grows */
    char *buf;                /* output; not NUL-terminated */
    size_t len;               /* bytes written */
    size_t cap;               /* bytes allocated */
    uint64_t first;           /* bit d: nothing written yet at depth d */
    uint64_t is_object;       /* bit d: depth d is an object */
    uint8_t depth;            /* open containers */
    uint8_t want_value;       /* a key was written; its value is due */
    int err;                  /* 0, or -ENOMEM / -EINVAL after misuse */
};

void coil__json_init(struct coil_json *j, struct coil_arena *a);
/* 0 when the document is complete and balanced, else -EINVAL or the recorded error. */
int coil__json_finish(const struct coil_json *j);

#endif
