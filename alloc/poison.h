/* SPDX-License-Identifier: MIT */
/*
 * poison: marks memory the allocators hold but nobody may touch (a reset arena, a freed slab
 * object, an idle pooled buffer), so AddressSanitizer builds fault on use after free. Without
 * ASan the macros compile to nothing.
 */
#ifndef COIL_POISON_H
#define COIL_POISON_H

#if defined(__SANITIZE_ADDRESS__)
#define COIL__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define COIL__ASAN 1
#endif
#endif

#ifdef COIL__ASAN
#include <sanitizer/asan_interface.h>
#define poison(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define unpoison(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define poison(p, n) ((void)(p), (void)(n))
#define unpoison(p, n) ((void)(p), (void)(n))
#endif

#endif
