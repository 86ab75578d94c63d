/* SPDX-License-Identifier: MIT */
/*
 * micro_json: the coil_json_* writer, one document per operation, as a handler produces it: the
 * request arena is reset, a writer is initialised on it (coil__json_init, as coil_res_json
 * does), the document is written and coil__json_finish checks it. The arena is the worker's
 * size (64 KiB first chunk), so the buffer grows in place from 256 bytes the way it does in
 * the engine. Three documents: TechEmpower's {"message":"Hello, World!"}; one object of eleven
 * mixed fields with strings that need escaping (quotes, newline, tab, backslash) and UTF-8,
 * negative and fractional doubles, booleans and null; and /json/50 of the HttpArena demo (50
 * items shaped like HttpArena's dataset (tools/dataset), written by handlers/arena_items.c, the
 * handler's own code). Each output is compared byte for byte with the expected text first; for
 * the items that text is built independently with snprintf. ns/B is per output byte.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "arena.h"
#include "arena_items.h"
#include "bench.h"
#include "json.h"
#include "walloc.h"

#define NITEMS 50
#define ARENA_FIRST (64 * 1024) /* the worker's request arena (loop.c) */

static struct coil_walloc wa;
static struct coil_arena arena;

/* ---- documents -------------------------------------------------------------------------- */

static void write_tfb(struct coil_json *j)
{
    coil_json_object_open(j);
    coil_json_key(j, "message");
    coil_json_string(j, "Hello, World!");
    coil_json_object_close(j);
}

static const char tfb_want[] = "{\"message\":\"Hello, World!\"}";

static void write_mixed(struct coil_json *j)
{
    coil_json_object_open(j);
    coil_json_key(j, "id");
    coil_json_int(j, 123456789);
    coil_json_key(j, "name");
    coil_json_string(j, "Jane \"JD\" Doe");
    coil_json_key(j, "email");
    coil_json_string(j, "jane.doe@example.com");
    coil_json_key(j, "bio");
    coil_json_string(j, "Line one\nLine two\ttabbed, C:\\path");
    coil_json_key(j, "city");
    coil_json_string(j, "Z\xc3\xbcrich");
    coil_json_key(j, "age");
    coil_json_int(j, 34);
    coil_json_key(j, "balance");
    coil_json_double(j, -1234.56);
    coil_json_key(j, "ratio");
    coil_json_double(j, 0.1);
    coil_json_key(j, "verified");
    coil_json_bool(j, true);
    coil_json_key(j, "deleted");
    coil_json_bool(j, false);
    coil_json_key(j, "manager");
    coil_json_null(j);
    coil_json_object_close(j);
}

static const char mixed_want[] =
    "{\"id\":123456789,\"name\":\"Jane \\\"JD\\\" Doe\",\"email\":\"jane.doe@example.com\","
    "\"bio\":\"Line one\\nLine two\\ttabbed, C:\\\\path\",\"city\":\"Z\xc3\xbcrich\",\"age\":34,"
    "\"balance\":-1234.56,\"ratio\":0.1,\"verified\":true,\"deleted\":false,\"manager\":null}";

static struct arena_item items[NITEMS];
static char names[NITEMS][32];
static struct coil_str item_tags[NITEMS][4];

/* Deterministic items with the dataset's vocabulary and value ranges. */
static void make_items(void)
{
    static const char *const adj[] = {"Alpha", "Pro",   "Core",  "Edge",
                                      "Nano",  "Ultra", "Smart", "Mega"};
    static const char *const noun[] = {"Widget", "Valve",  "Relay",  "Link",
                                       "Gadget", "Driver", "Sensor", "Hub"};
    static const char *const cats[] = {"electronics", "tools", "books", "clothing",
                                       "sports",      "toys",  "home"};
    static const char *const tags[] = {"sale",     "heavy-duty", "popular", "fast",   "new",
                                       "wireless", "eco",        "limited", "premium"};
    for (int i = 0; i < NITEMS; i++) {
        struct arena_item *it = &items[i];
        snprintf(names[i], sizeof(names[i]), "%s %s", adj[i % 8], noun[(i * 3 + i / 8) % 8]);
        it->id = i + 1;
        it->name = (struct coil_str){names[i], strlen(names[i])};
        it->category = (struct coil_str){cats[i % 7], strlen(cats[i % 7])};
        it->price = 10 + (i * 37) % 490;
        it->quantity = (i * 13) % 100;
        it->active = i % 3 != 0;
        it->ntags = 1 + (size_t)(i * 5 % 4);
        it->tags = item_tags[i];
        for (size_t t = 0; t < it->ntags; t++) {
            const char *tag = tags[((size_t)i + 2 * t) % 9]; /* distinct within an item */
            it->tags[t] = (struct coil_str){tag, strlen(tag)};
        }
        it->score = (i * 7) % 50;
        it->votes = (i * 31) % 400;
    }
}

static void write_items(struct coil_json *j)
{
    coil_json_object_open(j);
    coil_json_key(j, "items");
    coil_json_array_open(j);
    for (int i = 0; i < NITEMS; i++)
        arena_item_write(j, &items[i], items[i].price * items[i].quantity);
    coil_json_array_close(j);
    coil_json_key(j, "count");
    coil_json_int(j, NITEMS);
    coil_json_object_close(j);
}

/* The items document, written with snprintf: plain ASCII strings need no escaping. */
static size_t items_want(char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "{\"items\":[");
    for (int i = 0; i < NITEMS; i++) {
        const struct arena_item *it = &items[i];
        n += (size_t)snprintf(out + n, cap - n,
                              "%s{\"id\":%" PRId64 ",\"name\":\"%s\",\"category\":\"%s\","
                              "\"price\":%" PRId64 ",\"quantity\":%" PRId64
                              ",\"active\":%s,\"tags\":[",
                              i ? "," : "", it->id, it->name.ptr, it->category.ptr, it->price, it->quantity,
                              it->active ? "true" : "false");
        for (size_t t = 0; t < it->ntags; t++)
            n += (size_t)snprintf(out + n, cap - n, "%s\"%s\"", t ? "," : "", it->tags[t].ptr);
        n += (size_t)snprintf(out + n, cap - n,
                              "],\"rating\":{\"score\":%" PRId64 ",\"count\":%" PRId64
                              "},\"total\":%" PRId64 "}",
                              it->score, it->votes, it->price * it->quantity);
    }
    n += (size_t)snprintf(out + n, cap - n, "],\"count\":%d}", NITEMS);
    BENCH_REQUIRE(n < cap, "expected items document truncated");
    return n;
}

/* ---- the benchmark ---------------------------------------------------------------------- */

struct doc {
    const char *name;
    void (*write)(struct coil_json *j);
    size_t len; /* output bytes (set by validation) */
};

static struct doc docs[] = {
    {"json/tfb-message", write_tfb, 0},
    {"json/mixed-11-fields", write_mixed, 0},
    {"json/items-50", write_items, 0},
};

/* One request's worth: reset the arena, write, finish. */
static int write_doc(const struct doc *d, struct coil_json *j)
{
    coil__arena_reset(&arena);
    coil__json_init(j, &arena);
    d->write(j);
    return coil__json_finish(j);
}

static void validate(struct doc *d, const char *want, size_t want_len)
{
    struct coil_json j;
    int rc = write_doc(d, &j);
    BENCH_REQUIRE(rc == 0, "%s: finish %d", d->name, rc);
    BENCH_REQUIRE(j.len == want_len && !memcmp(j.buf, want, want_len),
                  "%s: output differs:\n got  %.*s\n want %.*s", d->name, (int)j.len, j.buf,
                  (int)want_len, want);
    d->len = j.len;
}

static uint64_t bm_json(void *arg, uint64_t iters)
{
    const struct doc *d = arg;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < iters; i++) {
        struct coil_json j;
        acc += (uint64_t)write_doc(d, &j) + j.len + (unsigned char)j.buf[j.len - 1];
    }
    return acc;
}

void micro_json(void)
{
    static char want[16384];
    BENCH_REQUIRE(coil__walloc_init(&wa) == 0, "walloc");
    BENCH_REQUIRE(coil__arena_init(&arena, &wa, ARENA_FIRST) == 0, "arena");
    make_items();

    validate(&docs[0], tfb_want, sizeof(tfb_want) - 1);
    validate(&docs[1], mixed_want, sizeof(mixed_want) - 1);
    validate(&docs[2], want, items_want(want, sizeof(want)));

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        struct bench b = {docs[i].name, "doc", bm_json, &docs[i], 1, (double)docs[i].len};
        bench_run(&b);
    }
    coil__arena_fini(&arena);
    coil__walloc_fini(&wa);
}
