/* SPDX-License-Identifier: MIT */
/* arena_items.c: see arena_items.h. */
#include <errno.h>

#include "arena_items.h"

bool arena_item_total(const struct arena_item *it, int64_t m, int64_t *total)
{
    int64_t pq;
    return !__builtin_mul_overflow(it->price, it->quantity, &pq) &&
           !__builtin_mul_overflow(pq, m, total);
}

void arena_item_write(struct coil_json *j, const struct arena_item *it, int64_t total)
{
    coil_json_object_open(j);
    coil_json_key(j, "id");
    coil_json_int(j, it->id);
    coil_json_key(j, "name");
    coil_json_stringn(j, it->name.ptr, it->name.len);
    coil_json_key(j, "category");
    coil_json_stringn(j, it->category.ptr, it->category.len);
    coil_json_key(j, "price");
    coil_json_int(j, it->price);
    coil_json_key(j, "quantity");
    coil_json_int(j, it->quantity);
    coil_json_key(j, "active");
    coil_json_bool(j, it->active);
    coil_json_key(j, "tags");
    coil_json_array_open(j);
    for (size_t t = 0; t < it->ntags; t++)
        coil_json_stringn(j, it->tags[t].ptr, it->tags[t].len);
    coil_json_array_close(j);
    coil_json_key(j, "rating");
    coil_json_object_open(j);
    coil_json_key(j, "score");
    coil_json_int(j, it->score);
    coil_json_key(j, "count");
    coil_json_int(j, it->votes);
    coil_json_object_close(j);
    coil_json_key(j, "total");
    coil_json_int(j, total);
    coil_json_object_close(j);
}

/* Query parameter name as an integer: 1 and *out, 0 if absent, -EINVAL / -ERANGE. */
int arena_query_int(struct coil_req *req, const char *name, int64_t *out)
{
    struct coil_str s;
    int r = coil_req_query_param(req, name, &s);
    if (r <= 0)
        return r;
    r = coil_parse_int64(s.ptr, s.len, out);
    return r < 0 ? r : 1;
}
