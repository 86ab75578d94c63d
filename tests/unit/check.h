/* SPDX-License-Identifier: MIT */
/*
 * check.h: the unit tests' assertion. CHECK(cond) prints the file, line and expression of a
 * failed condition and exits with status 1, so CTest reports the test as failed at the first
 * broken expectation. Unlike assert(), it is never compiled out.
 */
#ifndef COIL_TEST_CHECK_H
#define COIL_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
