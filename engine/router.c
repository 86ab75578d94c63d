/* SPDX-License-Identifier: MIT */
/*
 * router: a segment trie from (method, path) to a route. The trie is built with malloc while the
 * app starts and is never written again, so every worker reads it without locks. A node stands
 * for a pattern prefix; it has literal children (sorted by length then bytes, found by binary
 * search), at most one ":param" child, at most one "*" child (always a leaf), and the routes that
 * end there, one per method. A path is split at '/' after its leading slash, so "/" is the one
 * empty segment and "/a/" is "a" followed by an empty segment. Matching is a depth-first walk
 * trying literal, then param, then wildcard at each segment; it backtracks out of a branch that
 * fails deeper down, and also out of a node whose path matches but that has no route for the
 * method, so "GET /u/new" does not hide "POST /u/:id". Each node is visited at most once per
 * match (the depth fixes the segment), and recursion depth is bounded by the deepest pattern.
 * Parameter names belong to each route, so "GET /u/:id" and "POST /u/:uid" may share a node.
 * Patterns are strict, since a typo would otherwise route silently: literal bytes are visible
 * ASCII other than '?', '#' and '*'; names are [A-Za-z0-9_-]; '*' is a whole, last segment.
 */
#include "router.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One registered (method, pattern): one malloc holding the struct, the method and the pattern. */
struct entry {
    struct coil__route route;               /* handed out by find/match; address is stable */
    const char *method;                     /* NUL-terminated copy, case-sensitive */
    size_t method_len;                      /* strlen(method) */
    uint32_t nparams;                       /* params on the path, the wildcard last */
    struct coil_str names[COIL_MAX_PARAMS]; /* into the pattern copy, or "*" */
};

struct node {
    const char *seg;        /* literal text of this segment (literal children only); owned */
    size_t seg_len;         /* bytes in seg */
    struct node **lits;     /* literal children sorted by (seg_len, bytes) */
    uint32_t nlits;         /* children in lits */
    uint32_t cap_lits;      /* slots allocated in lits */
    struct node *param;     /* ":name" child, or NULL */
    struct node *wild;      /* "*" child (a leaf), or NULL */
    struct entry **entries; /* routes ending here, at most one per method */
    uint32_t nentries;      /* entries in use */
    uint32_t cap_entries;   /* slots allocated in entries */
};

struct coil__router {
    struct node root;   /* the state before the first segment */
    struct entry **all; /* every entry, in registration order (route ids) */
    uint32_t nall, cap_all;
};

/* Pattern segments, read one at a time: the text between slashes after the leading '/'. */
struct segs {
    const char *cur; /* start of the next segment */
    const char *end; /* end of the pattern */
    bool done;       /* the last segment was returned */
};

static const char wild_name[] = "*";

static bool next_seg(struct segs *s, struct coil_str *out)
{
    if (s->done)
        return false;
    const char *slash = memchr(s->cur, '/', (size_t)(s->end - s->cur));
    const char *e = slash ? slash : s->end;
    out->ptr = s->cur;
    out->len = (size_t)(e - s->cur);
    if (slash)
        s->cur = slash + 1;
    else
        s->done = true;
    return true;
}

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool valid_method(const char *m)
{
    if (!m || !*m)
        return false;
    for (; *m; m++)
        if (!is_tchar((unsigned char)*m))
            return false;
    return true;
}

static bool is_name_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == '-';
}

/* Literal pattern bytes: visible ASCII, but not the query/fragment delimiters nor '*'. */
static bool is_literal_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '?' && c != '#' && c != '*';
}

/* Checks one segment; a ":name" or "*" segment is appended to e's names. */
static int check_seg(struct entry *e, struct coil_str seg, bool last)
{
    if (seg.len == 1 && seg.ptr[0] == '*') {
        if (!last || e->nparams == COIL_MAX_PARAMS)
            return -EINVAL;
        e->names[e->nparams++] = (struct coil_str){wild_name, 1};
        return 0;
    }
    if (seg.len > 0 && seg.ptr[0] == ':') {
        struct coil_str name = {seg.ptr + 1, seg.len - 1};
        if (name.len == 0 || e->nparams == COIL_MAX_PARAMS)
            return -EINVAL;
        for (size_t i = 0; i < name.len; i++)
            if (!is_name_char((unsigned char)name.ptr[i]))
                return -EINVAL;
        for (uint32_t i = 0; i < e->nparams; i++)
            if (e->names[i].len == name.len && !memcmp(e->names[i].ptr, name.ptr, name.len))
                return -EINVAL;
        e->names[e->nparams++] = name;
        return 0;
    }
    for (size_t i = 0; i < seg.len; i++)
        if (!is_literal_char((unsigned char)seg.ptr[i]))
            return -EINVAL;
    return 0;
}

/* Validates pattern and fills e->nparams and e->names (pointing into pattern). */
static int parse_pattern(const char *pattern, struct entry *e)
{
    if (!pattern || pattern[0] != '/')
        return -EINVAL;
    struct segs s = {pattern + 1, pattern + strlen(pattern), false};
    struct coil_str seg;
    e->nparams = 0;
    while (next_seg(&s, &seg)) {
        int rc = check_seg(e, seg, s.done);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int cmp_seg(const struct node *n, const char *s, size_t len)
{
    if (n->seg_len != len)
        return n->seg_len < len ? -1 : 1;
    return memcmp(n->seg, s, len);
}

/* Index of the literal child s, or where it would be inserted (*found false). */
static uint32_t lit_index(const struct node *n, const char *s, size_t len, bool *found)
{
    uint32_t lo = 0, hi = n->nlits;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = cmp_seg(n->lits[mid], s, len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static const struct node *find_lit(const struct node *n, const char *s, size_t len)
{
    bool found;
    uint32_t i = lit_index(n, s, len, &found);
    return found ? n->lits[i] : NULL;
}

static struct node *add_lit(struct node *n, const char *s, size_t len)
{
    bool found;
    uint32_t i = lit_index(n, s, len, &found);
    if (found)
        return n->lits[i];
    if (n->nlits == n->cap_lits) {
        uint32_t cap = n->cap_lits ? n->cap_lits * 2 : 4;
        struct node **l = realloc(n->lits, cap * sizeof(*l));
        if (!l)
            return NULL;
        n->lits = l;
        n->cap_lits = cap;
    }
    struct node *c = calloc(1, sizeof(*c));
    char *text = malloc(len + 1);
    if (!c || !text) {
        free(c);
        free(text);
        return NULL;
    }
    memcpy(text, s, len);
    text[len] = '\0';
    c->seg = text;
    c->seg_len = len;
    memmove(&n->lits[i + 1], &n->lits[i], (n->nlits - i) * sizeof(*n->lits));
    n->lits[i] = c;
    n->nlits++;
    return c;
}

/* The child for one pattern segment; created when create is set. NULL if absent or OOM. */
static struct node *child(struct node *n, struct coil_str seg, bool create)
{
    struct node **slot = NULL;
    if (seg.len == 1 && seg.ptr[0] == '*')
        slot = &n->wild;
    else if (seg.len > 0 && seg.ptr[0] == ':')
        slot = &n->param;
    if (!slot) {
        if (create)
            return add_lit(n, seg.ptr, seg.len);
        return (struct node *)find_lit(n, seg.ptr, seg.len);
    }
    if (!*slot && create)
        *slot = calloc(1, sizeof(**slot));
    return *slot;
}

/* The node for a (valid) pattern; NULL if absent (create false) or OOM (create true). */
static struct node *descend(struct coil__router *r, const char *pattern, bool create)
{
    struct segs s = {pattern + 1, pattern + strlen(pattern), false};
    struct coil_str seg;
    struct node *n = &r->root;
    while (n && next_seg(&s, &seg))
        n = child(n, seg, create);
    return n;
}

static struct entry *node_method(const struct node *n, const char *m, size_t len)
{
    for (uint32_t i = 0; i < n->nentries; i++) {
        struct entry *e = n->entries[i];
        if (e->method_len == len && !memcmp(e->method, m, len))
            return e;
    }
    return NULL;
}

static struct entry *entry_create(const char *method, const char *pattern, coil_handler h, void *ud)
{
    size_t mlen = strlen(method), plen = strlen(pattern);
    struct entry *e = malloc(sizeof(*e) + mlen + 1 + plen + 1);
    if (!e)
        return NULL;
    char *mcopy = (char *)(e + 1);
    char *pcopy = mcopy + mlen + 1;
    memcpy(mcopy, method, mlen + 1);
    memcpy(pcopy, pattern, plen + 1);
    e->route =
        (struct coil__route){.handler = h, .ud = ud, .method = mcopy, .pattern = {pcopy, plen}};
    e->method = mcopy;
    e->method_len = mlen;
    int rc = parse_pattern(pcopy, e); /* names now point into our own copy */
    assert(rc == 0);
    (void)rc;
    return e;
}

struct coil__router *coil__router_create(void)
{
    return calloc(1, sizeof(struct coil__router));
}

static void node_free(struct node *n)
{
    for (uint32_t i = 0; i < n->nlits; i++) {
        node_free(n->lits[i]);
        free(n->lits[i]);
    }
    if (n->param)
        node_free(n->param);
    if (n->wild)
        node_free(n->wild);
    for (uint32_t i = 0; i < n->nentries; i++)
        free(n->entries[i]);
    free(n->param);
    free(n->wild);
    free(n->lits);
    free(n->entries);
    free((char *)n->seg);
}

void coil__router_destroy(struct coil__router *r)
{
    if (!r)
        return;
    node_free(&r->root);
    free(r->all);
    free(r);
}

int coil__router_add(struct coil__router *r, const char *method, const char *pattern,
                     coil_handler h, void *ud)
{
    struct entry check;
    assert(r);
    if (!valid_method(method))
        return -EINVAL;
    int rc = parse_pattern(pattern, &check);
    if (rc < 0)
        return rc;
    /* Nodes made before an OOM stay: an empty node matches nothing. */
    struct node *n = descend(r, pattern, true);
    if (!n)
        return -ENOMEM;
    if (node_method(n, method, strlen(method)))
        return -EEXIST;
    if (r->nall == r->cap_all) {
        uint32_t cap = r->cap_all ? r->cap_all * 2 : 16;
        struct entry **all = realloc(r->all, cap * sizeof(*all));
        if (!all)
            return -ENOMEM;
        r->all = all;
        r->cap_all = cap;
    }
    if (n->nentries == n->cap_entries) {
        uint32_t cap = n->cap_entries ? n->cap_entries * 2 : 2;
        struct entry **es = realloc(n->entries, cap * sizeof(*es));
        if (!es)
            return -ENOMEM;
        n->entries = es;
        n->cap_entries = cap;
    }
    struct entry *e = entry_create(method, pattern, h, ud);
    if (!e)
        return -ENOMEM;
    n->entries[n->nentries++] = e;
    e->route.id = r->nall;
    r->all[r->nall++] = e;
    return 0;
}

uint32_t coil__router_count(const struct coil__router *r)
{
    return r->nall;
}

struct coil__route *coil__router_at(const struct coil__router *r, uint32_t id)
{
    return id < r->nall ? &r->all[id]->route : NULL;
}

struct coil__route *coil__router_find(struct coil__router *r, const char *method,
                                      const char *pattern)
{
    struct entry check;
    assert(r);
    if (!valid_method(method) || parse_pattern(pattern, &check) < 0)
        return NULL;
    struct node *n = descend(r, pattern, false);
    struct entry *e = n ? node_method(n, method, strlen(method)) : NULL;
    if (!e)
        return NULL;
    /* Same shape is not enough: the parameter names must be the ones registered. */
    for (uint32_t i = 0; i < e->nparams; i++)
        if (e->names[i].len != check.names[i].len ||
            memcmp(e->names[i].ptr, check.names[i].ptr, check.names[i].len))
            return NULL;
    return &e->route;
}

/* ---- matching -------------------------------------------------------------------------- */

#define MAX_SEEN 16    /* path-matching nodes remembered for the Allow list */
#define MAX_METHODS 32 /* distinct methods in one Allow list */

struct walk {
    const char *p;                         /* the path after its leading '/' */
    size_t len;                            /* bytes in p; a position > len means "no more" */
    struct coil_str method;                /* the request's method */
    bool head;                             /* method is HEAD: GET routes answer too */
    const struct entry *found;             /* the result */
    struct coil_str vals[COIL_MAX_PARAMS]; /* values on the current branch */
    const struct node *seen[MAX_SEEN];     /* nodes whose path matched but not the method */
    uint32_t nseen;                        /* entries in seen */
};

/* The whole path has been consumed and n is where it ended. */
static bool at_end(struct walk *w, const struct node *n, uint32_t nv)
{
    if (n->nentries == 0)
        return false;
    const struct entry *e = node_method(n, w->method.ptr, w->method.len);
    if (!e && w->head)
        e = node_method(n, "GET", 3);
    if (e) {
        assert(e->nparams == nv);
        (void)nv;
        w->found = e;
        return true;
    }
    if (w->nseen < MAX_SEEN)
        w->seen[w->nseen++] = n;
    return false;
}

/* Matches the segments from pos on below n; nv values are set on this branch. */
static bool walk(struct walk *w, const struct node *n, size_t pos, uint32_t nv)
{
    if (pos > w->len)
        return at_end(w, n, nv);
    const char *s = w->p + pos;
    const char *slash = memchr(s, '/', w->len - pos);
    size_t slen = slash ? (size_t)(slash - s) : w->len - pos;
    size_t next = pos + slen + 1;

    const struct node *c = find_lit(n, s, slen);
    if (c && walk(w, c, next, nv))
        return true;
    if (n->param && slen > 0) {
        assert(nv < COIL_MAX_PARAMS);
        w->vals[nv] = (struct coil_str){s, slen};
        if (walk(w, n->param, next, nv + 1))
            return true;
    }
    if (n->wild) {
        assert(nv < COIL_MAX_PARAMS);
        w->vals[nv] = (struct coil_str){s, w->len - pos};
        if (at_end(w, n->wild, nv + 1))
            return true;
    }
    return false;
}

static int cmp_str(struct coil_str a, struct coil_str b)
{
    int c = memcmp(a.ptr, b.ptr, a.len < b.len ? a.len : b.len);
    if (c)
        return c;
    return a.len < b.len ? -1 : a.len > b.len;
}

/* Adds m to the sorted set ms (n entries, room for MAX_METHODS) unless present or full. */
static void add_method(struct coil_str *ms, uint32_t *n, struct coil_str m)
{
    uint32_t i = 0;
    while (i < *n && cmp_str(ms[i], m) < 0)
        i++;
    if ((i < *n && cmp_str(ms[i], m) == 0) || *n == MAX_METHODS)
        return;
    memmove(&ms[i + 1], &ms[i], (*n - i) * sizeof(*ms));
    ms[i] = m;
    (*n)++;
}

/* "DELETE, GET, HEAD" from every node the path reached: each method listed would be routed. */
static void build_allow(const struct walk *w, char *out, size_t cap)
{
    struct coil_str ms[MAX_METHODS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < w->nseen; i++) {
        const struct node *nd = w->seen[i];
        for (uint32_t k = 0; k < nd->nentries; k++) {
            add_method(ms, &n,
                       (struct coil_str){nd->entries[k]->method, nd->entries[k]->method_len});
            if (nd->entries[k]->method_len == 3 && !memcmp(nd->entries[k]->method, "GET", 3))
                add_method(ms, &n, (struct coil_str){"HEAD", 4});
        }
    }
    size_t len = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        size_t sep = i ? 2 : 0;
        if (len + sep + ms[i].len + 1 > cap)
            break; /* whole names only */
        memcpy(out + len, ", ", sep);
        memcpy(out + len + sep, ms[i].ptr, ms[i].len);
        len += sep + ms[i].len;
        out[len] = '\0';
    }
}

int coil__router_match(const struct coil__router *r, struct coil_str method, struct coil_str path,
                       struct coil__match *m)
{
    assert(r && m);
    m->route = NULL;
    m->nparams = 0;
    m->allow[0] = '\0';
    if (path.len == 0 || path.ptr[0] != '/')
        return -404;
    /* Field by field: vals and seen are written before they are read, and zero-filling their
     * 200-odd bytes was a tenth of a static lookup (perf/micro router rows). */
    struct walk w;
    w.p = path.ptr + 1;
    w.len = path.len - 1;
    w.method = method;
    w.head = method.len == 4 && !memcmp(method.ptr, "HEAD", 4);
    w.found = NULL;
    w.nseen = 0;
    if (walk(&w, &r->root, 0, 0)) {
        m->route = &w.found->route;
        m->nparams = w.found->nparams;
        for (uint32_t i = 0; i < m->nparams; i++) {
            m->names[i] = w.found->names[i];
            m->values[i] = w.vals[i];
        }
        return 0;
    }
    if (w.nseen == 0)
        return -404;
    build_allow(&w, m->allow, sizeof(m->allow));
    return -405;
}
