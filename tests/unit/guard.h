/* SPDX-License-Identifier: MIT */
/*
 * guard.h: what the two parser tests (test_http_parse, test_chunked) share. Their CHECK counts
 * a failure and goes on, tagged with the case being run (`current`), so one run lists every
 * broken case of a table; main() reports `failures` at the end. Inputs are placed so that they
 * end where a PROT_NONE page begins: a read one byte past the input faults at once.
 * Include it instead of check.h, once per test program.
 */
#ifndef COIL_TEST_GUARD_H
#define COIL_TEST_GUARD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;
static const char *current = ""; /* the case being run, for failure messages */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: [%s] CHECK failed: %s\n", __FILE__, __LINE__, current, #cond); \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define GUARD_ROOM (256 * 1024)

static char *guard_end; /* first byte of the PROT_NONE page; inputs end here */

static inline void guard_setup(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t room = (GUARD_ROOM + page - 1) / page * page;
    char *m = mmap(NULL, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m + room, page, PROT_NONE) != 0) {
        perror("mmap/mprotect");
        exit(1);
    }
    guard_end = m + room;
}

/* Copies n bytes so that they end right before the PROT_NONE page. */
static inline char *guard_place(const void *src, size_t n)
{
    if (n > GUARD_ROOM) {
        fprintf(stderr, "input of %zu bytes does not fit the guard area\n", n);
        exit(1);
    }
    char *p = guard_end - n;
    if (n > 0)
        memcpy(p, src, n);
    return p;
}

#endif
