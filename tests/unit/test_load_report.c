/* SPDX-License-Identifier: MIT */
/*
 * test_load_report: coil-load's reports. Includes report.c to reach its formatting helpers:
 * durations print as Go's time.Duration.String ("0s", "999ns", "512.3µs", "1.234ms", "9.99s",
 * "1m30s", "1h2m3.5s") after vegeta's rounding to the next finer unit, and times as RFC 3339
 * UTC. The JSON report is checked with a small strict JSON parser: exactly one object on one
 * line, the top-level keys in vegeta's order followed by coil's own, known values in place,
 * and no NaN or infinity even when every denominator is zero. The text report is compared
 * line by line with vegeta's layout. Merging sums counters, keeps the longest duration and
 * wait and the earliest non-zero start, and merges the histograms.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "report.c"

#include "check.h"

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        if (strcmp((got), (want)) != 0) {                                                          \
            fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__, (got),         \
                    (want));                                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_HAS(text, part)                                                                      \
    do {                                                                                           \
        if (strstr((text), (part)) == NULL) {                                                      \
            fprintf(stderr, "%s:%d: \"%s\" not found in:\n%s\n", __FILE__, __LINE__, (part),       \
                    (text));                                                                       \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static struct load_result *result_new(void)
{
    struct load_result *r = malloc(sizeof(*r));
    CHECK(r != NULL);
    load_result_init(r);
    return r;
}

/* Runs a report into a tmpfile() and returns its text (malloc'd, NUL-terminated). */
static char *capture(int (*report)(const struct load_result *, FILE *), const struct load_result *r)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK(report(r, f) == 0);
    long len = ftell(f);
    CHECK(len > 0);
    char *text = malloc((size_t)len + 1);
    CHECK(text != NULL);
    rewind(f);
    CHECK(fread(text, 1, (size_t)len, f) == (size_t)len);
    text[len] = '\0';
    fclose(f);
    return text;
}

static void check_duration(uint64_t ns, const char *want)
{
    char buf[FMT_LEN];
    fmt_duration(buf, ns);
    CHECK_STR(buf, want);
}

static void check_rounded(uint64_t ns, const char *want)
{
    char buf[FMT_LEN];
    fmt_duration(buf, round_duration(ns));
    CHECK_STR(buf, want);
}

static void test_durations(void)
{
    check_duration(0, "0s");
    check_duration(1, "1ns");
    check_duration(999, "999ns");
    check_duration(1000, "1µs");
    check_duration(1500, "1.5µs");
    check_duration(512300, "512.3µs");
    check_duration(999999, "999.999µs");
    check_duration(1000000, "1ms");
    check_duration(1234000, "1.234ms");
    check_duration(1234567, "1.234567ms");
    check_duration(1000000000, "1s");
    check_duration(1000000001, "1.000000001s");
    check_duration(9990000000, "9.99s");
    check_duration(59999999999, "59.999999999s");
    check_duration(60000000000, "1m0s");
    check_duration(90000000000, "1m30s");
    check_duration(90500000000, "1m30.5s");
    check_duration(3599000000000, "59m59s");
    check_duration(3600000000000, "1h0m0s");
    check_duration(3723500000000, "1h2m3.5s");
    check_duration(360000000000000, "100h0m0s");
    check_duration(UINT64_MAX, "5124095h34m33.709551615s");

    /* vegeta's rounding: to the next finer unit, halves away from zero. */
    check_rounded(0, "0s");
    check_rounded(999, "999ns");
    check_rounded(512345, "512.345µs");
    check_rounded(1234567, "1.235ms");
    check_rounded(1234499, "1.234ms");
    check_rounded(1499999, "1.5ms");
    check_rounded(9990512300, "9.991s");
    check_rounded(9990499999, "9.99s");
    check_rounded(90400000000, "1m30s");
    check_rounded(90500000000, "1m31s");
    check_rounded(3723500000000, "1h2m0s");
    check_rounded(3749999999999, "1h2m0s");
    check_rounded(3750000000000, "1h3m0s");
    CHECK(round_duration(UINT64_MAX) <= UINT64_MAX); /* no wrap-around */
    CHECK(round_duration(UINT64_MAX) > UINT64_MAX - NS_PER_MIN);
}

static void test_times(void)
{
    char buf[FMT_LEN];
    fmt_time(buf, 0);
    CHECK_STR(buf, "0001-01-01T00:00:00Z");
    fmt_time(buf, 1700000000000000000);
    CHECK_STR(buf, "2023-11-14T22:13:20Z");
    fmt_time(buf, 1700000000123456789);
    CHECK_STR(buf, "2023-11-14T22:13:20.123456789Z");
    fmt_time(buf, 1700000000500000000);
    CHECK_STR(buf, "2023-11-14T22:13:20.5Z");
    fmt_time(buf, -1);
    CHECK_STR(buf, "1969-12-31T23:59:59.999999999Z");
}

/* A strict JSON parser, just enough to validate a report: returns the position after the value
 * or NULL. Top-level object keys are collected into keys[] when keys is non-NULL. */
struct json_keys {
    char names[32][32];
    size_t n;
};

static const char *json_value(const char *p, struct json_keys *keys);

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }
    return p;
}

static const char *json_string(const char *p, char *out, size_t cap)
{
    size_t n = 0;
    if (*p++ != '"') {
        return NULL;
    }
    while (*p != '"') {
        if ((unsigned char)*p < 0x20) {
            return NULL; /* control characters, including the terminating NUL */
        }
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++) {
                    if (!isxdigit((unsigned char)p[i])) {
                        return NULL;
                    }
                }
                p += 4;
            } else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0') {
                return NULL;
            }
        }
        if (out != NULL && n + 1 < cap) {
            out[n++] = *p;
        }
        p++;
    }
    if (out != NULL) {
        out[n] = '\0';
    }
    return p + 1;
}

static const char *json_digits(const char *p)
{
    if (!isdigit((unsigned char)*p)) {
        return NULL;
    }
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    return p;
}

static const char *json_number(const char *p)
{
    if (*p == '-') {
        p++;
    }
    if (*p == '0') {
        p++;
    } else if ((p = json_digits(p)) == NULL) {
        return NULL;
    }
    if (*p == '.' && (p = json_digits(p + 1)) == NULL) {
        return NULL;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') {
            p++;
        }
        p = json_digits(p);
    }
    return p;
}

static const char *json_object(const char *p, struct json_keys *keys)
{
    char key[64];
    p = skip_ws(p + 1);
    if (*p == '}') {
        return p + 1;
    }
    for (;;) {
        if ((p = json_string(skip_ws(p), key, sizeof(key))) == NULL) {
            return NULL;
        }
        if (keys != NULL) {
            CHECK(keys->n < 32 && strlen(key) < 32);
            strcpy(keys->names[keys->n++], key);
        }
        p = skip_ws(p);
        if (*p++ != ':' || (p = json_value(p, NULL)) == NULL) {
            return NULL;
        }
        p = skip_ws(p);
        if (*p == '}') {
            return p + 1;
        }
        if (*p++ != ',') {
            return NULL;
        }
    }
}

static const char *json_array(const char *p)
{
    p = skip_ws(p + 1);
    if (*p == ']') {
        return p + 1;
    }
    for (;;) {
        if ((p = json_value(p, NULL)) == NULL) {
            return NULL;
        }
        p = skip_ws(p);
        if (*p == ']') {
            return p + 1;
        }
        if (*p++ != ',') {
            return NULL;
        }
    }
}

static const char *json_value(const char *p, struct json_keys *keys)
{
    p = skip_ws(p);
    switch (*p) {
    case '{':
        return json_object(p, keys);
    case '[':
        return json_array(p);
    case '"':
        return json_string(p, NULL, 0);
    case 't':
        return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return json_number(p);
    }
}

static const char *const json_key_order[] = {
    "latencies",    "bytes_in", "bytes_out", "earliest",    "latest",       "end",
    "duration",     "wait",     "requests",  "rate",        "throughput",   "success",
    "status_codes", "errors",   "responses", "target_rate", "error_counts",
};

/* One valid object on one line, with the keys in order and no NaN or infinity anywhere. */
static void check_json(const char *text)
{
    struct json_keys keys = {.n = 0};
    size_t len = strlen(text);
    CHECK(len >= 2 && text[len - 1] == '\n');
    CHECK(strchr(text, '\n') == text + len - 1);
    CHECK(text[0] == '{');
    const char *end = json_value(text, &keys);
    CHECK(end != NULL);
    CHECK(strcmp(end, "\n") == 0);
    size_t nkeys = sizeof(json_key_order) / sizeof(json_key_order[0]);
    CHECK(keys.n == nkeys);
    for (size_t i = 0; i < nkeys; i++) {
        CHECK_STR(keys.names[i], json_key_order[i]);
    }
    for (const char *p = text; *p != '\0'; p++) {
        CHECK(strncasecmp(p, "nan", 3) != 0 && strncasecmp(p, "inf", 3) != 0);
    }
}

static void test_json_parser(void)
{
    /* The checker itself must reject what it is there to catch. */
    CHECK(json_value("{\"a\":1}", NULL) != NULL);
    CHECK(json_value("{\"a\":[1,2.5,-3e+7,\"x\\n\",{}],\"b\":null}", NULL) != NULL);
    CHECK(json_value("{\"a\":nan}", NULL) == NULL);
    CHECK(json_value("{\"a\":inf}", NULL) == NULL);
    CHECK(json_value("{\"a\":1,}", NULL) == NULL);
    CHECK(json_value("{\"a\":1", NULL) == NULL);
    CHECK(json_value("{\"a\":01}", NULL) == NULL); /* no leading zeros */
    CHECK(*json_value("{\"a\":[1]}", NULL) == '\0');
    CHECK(json_value("{\"a\":1.}", NULL) == NULL);
    CHECK(json_value("[1 2]", NULL) == NULL);
}

/* 1000 requests over 9.99 s, 997 responses (990 OK, 7 not found), 3 refused connections;
 * latencies 1 ms, 1.001 ms, .., 1.996 ms. */
static void fill_sample(struct load_result *r)
{
    r->requests = 1000;
    r->responses = 997;
    r->success = 990;
    r->bytes_in = 13000;
    r->bytes_out = 0;
    r->status[200] = 990;
    r->status[404] = 7;
    r->errors[LOAD_ERR_CONNECT] = 3;
    r->duration_ns = 9990000000;
    r->wait_ns = 512300;
    r->start_unix_ns = 1700000000123456789;
    r->target_rate = 100;
    for (uint64_t i = 0; i < 997; i++) {
        load_hist_record(&r->hist, 1000000 + i * 1000);
    }
}

static void test_json_report(void)
{
    struct load_result *r = result_new();
    fill_sample(r);
    char *text = capture(load_report_json, r);
    check_json(text);
    CHECK_HAS(text, "{\"latencies\":{\"total\":1493506000,\"mean\":1498000,\"50th\":");
    CHECK_HAS(text, ",\"90th\":");
    CHECK_HAS(text, ",\"95th\":");
    CHECK_HAS(text, ",\"99th\":");
    CHECK_HAS(text, ",\"99.9th\":");
    CHECK_HAS(text, ",\"max\":1996000,\"min\":1000000},");
    CHECK_HAS(text, "\"bytes_in\":{\"total\":13000,\"mean\":13},");
    CHECK_HAS(text, "\"bytes_out\":{\"total\":0,\"mean\":0},");
    CHECK_HAS(text, "\"earliest\":\"2023-11-14T22:13:20.123456789Z\",");
    CHECK_HAS(text, "\"latest\":\"2023-11-14T22:13:30.113456789Z\",");
    CHECK_HAS(text, "\"end\":\"2023-11-14T22:13:30.113969089Z\",");
    CHECK_HAS(text, "\"duration\":9990000000,\"wait\":512300,\"requests\":1000,");
    CHECK_HAS(text, "\"rate\":100.1001001001001,");
    CHECK_HAS(text, "\"success\":0.99,");
    CHECK_HAS(text, "\"status_codes\":{\"200\":990,\"404\":7},");
    CHECK_HAS(text, "\"errors\":[\"connect refused: 3\"],");
    CHECK_HAS(text, "\"responses\":997,\"target_rate\":100,");
    CHECK_HAS(text, "\"error_counts\":{\"connect\":3,\"reset\":0,\"timeout\":0,\"parse\":0,"
                    "\"overload\":0}}\n");
    /* Percentiles from the JSON agree with the histogram. */
    char want[64];
    snprintf(want, sizeof(want), "\"99th\":%llu,",
             (unsigned long long)load_hist_percentile(&r->hist, 99));
    CHECK_HAS(text, want);
    free(text);

    /* Every error kind listed, in enum order. */
    for (int i = 0; i < LOAD_ERR_KINDS; i++) {
        r->errors[i] = (uint64_t)i + 1;
    }
    text = capture(load_report_json, r);
    check_json(text);
    CHECK_HAS(text, "\"errors\":[\"connect refused: 1\",\"reset: 2\",\"timeout: 3\","
                    "\"parse error: 4\",\"overload: 5\"]");
    CHECK_HAS(text, "\"error_counts\":{\"connect\":1,\"reset\":2,\"timeout\":3,\"parse\":4,"
                    "\"overload\":5}");
    free(text);

    /* Zero denominators and extreme numbers still give valid JSON. */
    r->duration_ns = 0;
    r->wait_ns = 0;
    r->target_rate = 1e300;
    text = capture(load_report_json, r);
    check_json(text);
    CHECK_HAS(text, "\"rate\":0,\"throughput\":0,");
    CHECK_HAS(text, "\"target_rate\":1e+300,");
    free(text);
    r->target_rate = 0.0 / 0.0;
    text = capture(load_report_json, r);
    check_json(text);
    CHECK_HAS(text, "\"target_rate\":0,");
    free(text);
    free(r);
}

static void test_json_empty(void)
{
    struct load_result *r = result_new();
    char *text = capture(load_report_json, r);
    check_json(text);
    CHECK_HAS(text, "{\"latencies\":{\"total\":0,\"mean\":0,\"50th\":0,\"90th\":0,\"95th\":0,"
                    "\"99th\":0,\"99.9th\":0,\"max\":0,\"min\":0},");
    CHECK_HAS(text, "\"earliest\":\"0001-01-01T00:00:00Z\",\"latest\":\"0001-01-01T00:00:00Z\","
                    "\"end\":\"0001-01-01T00:00:00Z\",");
    CHECK_HAS(text, "\"rate\":0,\"throughput\":0,\"success\":0,\"status_codes\":{},"
                    "\"errors\":[],");
    free(text);
    free(r);
}

/* Splits text into lines (in place); returns how many. */
static size_t split_lines(char *text, char **lines, size_t cap)
{
    size_t n = 0;
    for (char *p = text; *p != '\0';) {
        char *nl = strchr(p, '\n');
        CHECK(nl != NULL); /* every line ends with a newline */
        *nl = '\0';
        CHECK(n < cap);
        lines[n++] = p;
        p = nl + 1;
    }
    return n;
}

static void test_text_report(void)
{
    struct load_result *r = result_new();
    fill_sample(r);
    char *text = capture(load_report_text, r);
    char *lines[16];
    size_t n = split_lines(text, lines, 16);
    CHECK(n == 9);
    CHECK_STR(lines[0],
              "Requests      [total, rate, throughput]               1000, 100.10, 99.09");
    CHECK_STR(lines[1],
              "Duration      [total, attack, wait]                   9.991s, 9.99s, 512.3µs");
    /* min, mean and max are exact; the percentiles are their buckets' tops (1.504 ms for the
     * exact 1.499 ms), rounded to the microsecond. */
    CHECK_STR(lines[2], "Latencies     [min, mean, 50, 90, 95, 99, 99.9, max]  1ms, 1.498ms, "
                        "1.504ms, 1.904ms, 1.952ms, 1.992ms, 1.996ms, 1.996ms");
    CHECK_STR(lines[3], "Bytes In      [total, mean]                           13000, 13.00");
    CHECK_STR(lines[4], "Bytes Out     [total, mean]                           0, 0.00");
    CHECK_STR(lines[5], "Success       [ratio]                                 99.00%");
    CHECK_STR(lines[6], "Status Codes  [code:count]                            200:990  404:7");
    CHECK_STR(lines[7], "Error Set:");
    CHECK_STR(lines[8], "connect refused: 3");
    free(text);

    r->errors[LOAD_ERR_TIMEOUT] = 12;
    r->errors[LOAD_ERR_OVERLOAD] = 1;
    text = capture(load_report_text, r);
    CHECK_HAS(text, "Error Set:\nconnect refused: 3\ntimeout: 12\noverload: 1\n");
    free(text);
    free(r);
}

static void test_text_empty(void)
{
    struct load_result *r = result_new();
    char *text = capture(load_report_text, r);
    CHECK_STR(text, "Requests      [total, rate, throughput]               0, 0.00, 0.00\n"
                    "Duration      [total, attack, wait]                   0s, 0s, 0s\n"
                    "Latencies     [min, mean, 50, 90, 95, 99, 99.9, max]  "
                    "0s, 0s, 0s, 0s, 0s, 0s, 0s, 0s\n"
                    "Bytes In      [total, mean]                           0, 0.00\n"
                    "Bytes Out     [total, mean]                           0, 0.00\n"
                    "Success       [ratio]                                 0.00%\n"
                    "Status Codes  [code:count]                            \n"
                    "Error Set:\n");
    free(text);
    free(r);
}

static void test_ratios(void)
{
    struct load_result *r = result_new();
    CHECK(load_result_rate(r) == 0.0);
    CHECK(load_result_throughput(r) == 0.0);
    CHECK(load_result_success_ratio(r) == 0.0);
    r->requests = 200;
    r->success = 150;
    r->duration_ns = 2000000000;
    r->wait_ns = 1000000000;
    CHECK(load_result_rate(r) == 100.0);
    CHECK(load_result_throughput(r) == 50.0);
    CHECK(load_result_success_ratio(r) == 0.75);
    r->duration_ns = 0;
    CHECK(load_result_rate(r) == 0.0);
    CHECK(load_result_throughput(r) == 150.0);
    free(r);
}

static void test_merge(void)
{
    struct load_result *a = result_new(), *b = result_new(), *c = result_new();
    struct load_result *total = result_new();
    a->requests = 10;
    a->responses = 9;
    a->success = 8;
    a->bytes_in = 900;
    a->bytes_out = 400;
    a->status[200] = 8;
    a->status[500] = 1;
    a->errors[LOAD_ERR_TIMEOUT] = 1;
    a->duration_ns = 5000000000;
    a->wait_ns = 1000000;
    a->start_unix_ns = 2000;
    a->target_rate = 50;
    load_hist_record(&a->hist, 2000000);
    load_hist_record(&a->hist, 3000000);

    b->requests = 20;
    b->responses = 20;
    b->success = 20;
    b->bytes_in = 2000;
    b->bytes_out = 800;
    b->status[200] = 20;
    b->errors[LOAD_ERR_RESET] = 2;
    b->duration_ns = 4000000000;
    b->wait_ns = 3000000;
    b->start_unix_ns = 1000;
    b->target_rate = 50;
    load_hist_record(&b->hist, 1000000);

    c->requests = 1; /* never started: start 0 must not win the minimum */
    c->errors[LOAD_ERR_CONNECT] = 1;

    load_result_merge(total, a);
    CHECK(total->start_unix_ns == 2000); /* a fresh result takes the first start */
    load_result_merge(total, b);
    load_result_merge(total, c);
    CHECK(total->requests == 31 && total->responses == 29 && total->success == 28);
    CHECK(total->bytes_in == 2900 && total->bytes_out == 1200);
    CHECK(total->status[200] == 28 && total->status[500] == 1 && total->status[404] == 0);
    CHECK(total->errors[LOAD_ERR_TIMEOUT] == 1 && total->errors[LOAD_ERR_RESET] == 2);
    CHECK(total->errors[LOAD_ERR_CONNECT] == 1 && total->errors[LOAD_ERR_PARSE] == 0);
    CHECK(total->duration_ns == 5000000000 && total->wait_ns == 3000000);
    CHECK(total->start_unix_ns == 1000);
    CHECK(total->target_rate == 100.0);
    CHECK(total->hist.count == 3 && total->hist.min == 1000000 && total->hist.max == 3000000);
    CHECK(total->hist.sum == 6000000.0);

    /* Merging c (start 0) into a result that has a start keeps it. */
    load_result_merge(a, c);
    CHECK(a->start_unix_ns == 2000);

    char *text = capture(load_report_json, total);
    check_json(text);
    CHECK_HAS(text, "\"status_codes\":{\"200\":28,\"500\":1},");
    CHECK_HAS(text, "\"errors\":[\"connect refused: 1\",\"reset: 2\",\"timeout: 1\"],");
    free(text);
    free(a);
    free(b);
    free(c);
    free(total);
}

int main(void)
{
    test_durations();
    test_times();
    test_json_parser();
    test_json_report();
    test_json_empty();
    test_text_report();
    test_text_empty();
    test_ratios();
    test_merge();
    printf("test_load_report: ok\n");
    return 0;
}
