/* SPDX-License-Identifier: MIT */
/*
 * arena_items: one HttpArena dataset item and how /json/:count writes it. Kept apart from
 * arena.c (which loads the dataset with jansson) so perf/micro times the handler's own writer.
 */
#ifndef COIL_ARENA_ITEMS_H
#define COIL_ARENA_ITEMS_H

#include <coil.h>

struct arena_item {
    int64_t id;
    struct coil_str name;
    struct coil_str category;
    int64_t price;
    int64_t quantity;
    bool active;
    size_t ntags;          /* entries in tags */
    struct coil_str *tags; /* NULL if ntags is 0 */
    int64_t score;         /* rating.score */
    int64_t votes;         /* rating.count */
};

/* price*quantity*m; false if it does not fit in 64 bits. */
bool arena_item_total(const struct arena_item *it, int64_t m, int64_t *total);
/* The item as one JSON object, its fields in the dataset's order, then "total". */
void arena_item_write(struct coil_json *j, const struct arena_item *it, int64_t total);

/* Query parameter name as an integer: 1 and *out, 0 if absent, -EINVAL or -ERANGE. */
int arena_query_int(struct coil_req *req, const char *name, int64_t *out);

#endif
