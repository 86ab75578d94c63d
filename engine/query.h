/* SPDX-License-Identifier: MIT */
/*
 * query: percent-decoding and query-string lookup (application/x-www-form-urlencoded style:
 * '&' separates pairs, '=' splits name from value, '+' is a space in the query).
 */
#ifndef COIL_QUERY_H
#define COIL_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "coil.h"

/*
 * Decodes src[0..n) into dst (room for n bytes; dst may equal src). Returns the decoded length,
 * or -1 for a '%' not followed by two hex digits. plus_is_space: '+' decodes to ' '.
 */
ssize_t coil__pct_decode(char *dst, const char *src, size_t n, bool plus_is_space);

/*
 * Finds the first pair in query whose decoded name equals name[0..name_len). Returns 1 and the
 * raw (still encoded) value slice, 0 if absent (a bare "name" without '=' has an empty value).
 */
int coil__query_find(struct coil_str query, const char *name, size_t name_len,
                     struct coil_str *raw_value);

#endif
