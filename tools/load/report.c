/* SPDX-License-Identifier: MIT */
/*
 * report: merging per-worker results and printing them. The text report follows vegeta's
 * layout (columns aligned as its tabwriter does: each column as wide as its widest cell plus
 * two spaces; durations rounded to the next finer unit and printed like Go's
 * time.Duration.String, "1m30s", "9.991s", "512.3µs"). The JSON report is one object on one
 * line with vegeta's field names (durations in integer nanoseconds, times in RFC 3339 UTC with
 * trimmed nanoseconds, Go's zero time when nothing was sent) plus coil's own fields; every
 * ratio whose denominator is zero is written as 0, so no NaN or infinity ever reaches the
 * output. A merged result adds counters and target rates (each worker carries its share of
 * the rate), keeps the longest duration and wait, and the earliest non-zero start.
 */
#include "report.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_US 1000ull
#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define NS_PER_MIN (60 * NS_PER_S)
#define NS_PER_HOUR (60 * NS_PER_MIN)
#define STATUS_CODES (sizeof(((struct load_result *)0)->status) / sizeof(uint64_t))

/* Long enough for any uint64_t nanoseconds ("5124095h34m33.709551615s") or an RFC 3339 time. */
#define FMT_LEN 40

/* Readable names for the text report and the JSON "errors" list; short keys for
 * "error_counts". */
static const char *const err_names[LOAD_ERR_KINDS] = {
    [LOAD_ERR_CONNECT] = "connect refused", [LOAD_ERR_RESET] = "reset",
    [LOAD_ERR_TIMEOUT] = "timeout",         [LOAD_ERR_PARSE] = "parse error",
    [LOAD_ERR_OVERLOAD] = "overload",
};
static const char *const err_keys[LOAD_ERR_KINDS] = {
    [LOAD_ERR_CONNECT] = "connect",   [LOAD_ERR_RESET] = "reset",
    [LOAD_ERR_TIMEOUT] = "timeout",   [LOAD_ERR_PARSE] = "parse",
    [LOAD_ERR_OVERLOAD] = "overload",
};

void load_result_init(struct load_result *r)
{
    memset(r, 0, sizeof(*r));
    load_hist_init(&r->hist);
}

void load_result_merge(struct load_result *dst, const struct load_result *src)
{
    assert(dst != src);
    dst->requests += src->requests;
    dst->responses += src->responses;
    dst->success += src->success;
    dst->bytes_in += src->bytes_in;
    dst->bytes_out += src->bytes_out;
    for (size_t i = 0; i < STATUS_CODES; i++) {
        dst->status[i] += src->status[i];
    }
    for (int i = 0; i < LOAD_ERR_KINDS; i++) {
        dst->errors[i] += src->errors[i];
    }
    if (src->duration_ns > dst->duration_ns) {
        dst->duration_ns = src->duration_ns;
    }
    if (src->wait_ns > dst->wait_ns) {
        dst->wait_ns = src->wait_ns;
    }
    if (src->start_unix_ns != 0 &&
        (dst->start_unix_ns == 0 || src->start_unix_ns < dst->start_unix_ns)) {
        dst->start_unix_ns = src->start_unix_ns;
    }
    dst->target_rate += src->target_rate;
    load_hist_merge(&dst->hist, &src->hist);
}

/* num / den, or 0 when that is not a finite number. */
static double ratio(double num, double den)
{
    if (den == 0.0) {
        return 0.0;
    }
    double q = num / den;
    return isfinite(q) ? q : 0.0;
}

double load_result_rate(const struct load_result *r)
{
    return ratio((double)r->requests, (double)r->duration_ns / (double)NS_PER_S);
}

double load_result_throughput(const struct load_result *r)
{
    double secs = ((double)r->duration_ns + (double)r->wait_ns) / (double)NS_PER_S;
    return ratio((double)r->success, secs);
}

double load_result_success_ratio(const struct load_result *r)
{
    return ratio((double)r->success, (double)r->requests);
}

/* Appends the digits of frac (a fraction of 10^digits) after a '.', without trailing zeros;
 * nothing when frac is 0. Go's fmtFrac. */
static size_t put_frac(char *buf, size_t cap, uint64_t frac, int digits)
{
    if (frac == 0) {
        return 0;
    }
    while (frac % 10 == 0) {
        frac /= 10;
        digits--;
    }
    int n = snprintf(buf, cap, ".%0*llu", digits, (unsigned long long)frac);
    assert(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

/* ns as Go's time.Duration.String prints it: "0s", "12ns", "1.5µs", "1.234ms", "9.99s",
 * "1m30s", "2h0m0.5s". buf holds at least FMT_LEN bytes. */
static void fmt_duration(char *buf, uint64_t ns)
{
    size_t n;
    if (ns == 0) {
        strcpy(buf, "0s");
        return;
    }
    if (ns < NS_PER_US) {
        snprintf(buf, FMT_LEN, "%lluns", (unsigned long long)ns);
        return;
    }
    if (ns < NS_PER_S) {
        uint64_t unit = ns < NS_PER_MS ? NS_PER_US : NS_PER_MS;
        n = (size_t)snprintf(buf, FMT_LEN, "%llu", (unsigned long long)(ns / unit));
        n += put_frac(buf + n, FMT_LEN - n, ns % unit, unit == NS_PER_US ? 3 : 6);
        snprintf(buf + n, FMT_LEN - n, "%s", unit == NS_PER_US ? "µs" : "ms");
        return;
    }
    uint64_t secs = ns / NS_PER_S;
    n = 0;
    if (secs >= 3600) {
        n = (size_t)snprintf(buf, FMT_LEN, "%lluh%llum", (unsigned long long)(secs / 3600),
                             (unsigned long long)(secs / 60 % 60));
    } else if (secs >= 60) {
        n = (size_t)snprintf(buf, FMT_LEN, "%llum", (unsigned long long)(secs / 60));
    }
    n += (size_t)snprintf(buf + n, FMT_LEN - n, "%llu", (unsigned long long)(secs % 60));
    n += put_frac(buf + n, FMT_LEN - n, ns % NS_PER_S, 9);
    snprintf(buf + n, FMT_LEN - n, "s");
}

/* Rounds ns to the unit below its largest one (hours to minutes, minutes to seconds, seconds to
 * milliseconds, milliseconds to microseconds), half away from zero, as vegeta's text report
 * does, so "9.990512300s" prints as "9.991s". */
static uint64_t round_duration(uint64_t ns)
{
    static const uint64_t units[] = {NS_PER_HOUR, NS_PER_MIN, NS_PER_S, NS_PER_MS, NS_PER_US};
    for (size_t i = 0; i + 1 < sizeof(units) / sizeof(units[0]); i++) {
        if (ns >= units[i]) {
            uint64_t m = units[i + 1];
            uint64_t rem = ns % m;
            if (rem < m - rem || ns - rem > UINT64_MAX - m) {
                return ns - rem;
            }
            return ns - rem + m;
        }
    }
    return ns;
}

/* unix_ns as RFC 3339 in UTC with trimmed nanoseconds, like Go's time.RFC3339Nano; 0 (never
 * started) is Go's zero time. buf holds at least FMT_LEN bytes. */
static void fmt_time(char *buf, int64_t unix_ns)
{
    if (unix_ns == 0) {
        strcpy(buf, "0001-01-01T00:00:00Z");
        return;
    }
    int64_t secs = unix_ns / (int64_t)NS_PER_S;
    int64_t nsec = unix_ns % (int64_t)NS_PER_S;
    if (nsec < 0) {
        nsec += (int64_t)NS_PER_S;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    size_t n = 0;
    if (gmtime_r(&t, &tm) != NULL) {
        n = strftime(buf, FMT_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
    }
    if (n == 0) {
        strcpy(buf, "0001-01-01T00:00:00Z");
        return;
    }
    n += put_frac(buf + n, FMT_LEN - n, (uint64_t)nsec, 9);
    snprintf(buf + n, FMT_LEN - n, "Z");
}

/* The latency figures both reports print, in ns; all 0 when nothing was recorded. */
struct latencies {
    uint64_t total, mean, min, max;
    uint64_t p50, p90, p95, p99, p999;
};

static uint64_t to_ns(double x)
{
    if (!(x > 0.0)) {
        return 0;
    }
    double y = x + 0.5;
    return y >= 0x1p64 ? UINT64_MAX : (uint64_t)y;
}

static void get_latencies(const struct load_hist *h, struct latencies *l)
{
    memset(l, 0, sizeof(*l));
    if (h->count == 0) {
        return;
    }
    l->total = to_ns(h->sum);
    l->mean = to_ns(load_hist_mean(h));
    l->min = h->min;
    l->max = h->max;
    l->p50 = load_hist_percentile(h, 50);
    l->p90 = load_hist_percentile(h, 90);
    l->p95 = load_hist_percentile(h, 95);
    l->p99 = load_hist_percentile(h, 99);
    l->p999 = load_hist_percentile(h, 99.9);
}

static int finish(FILE *f)
{
    if (fflush(f) != 0 || ferror(f)) {
        return -EIO;
    }
    return 0;
}

/* The text report's first two columns, padded like vegeta's tabwriter (minimum width 0,
 * padding 2): every cell of a column is as wide as the widest one plus two. */
static const char *const text_rows[][2] = {
    {"Requests", "[total, rate, throughput]"},
    {"Duration", "[total, attack, wait]"},
    {"Latencies", "[min, mean, 50, 90, 95, 99, 99.9, max]"},
    {"Bytes In", "[total, mean]"},
    {"Bytes Out", "[total, mean]"},
    {"Success", "[ratio]"},
    {"Status Codes", "[code:count]"},
};
enum {
    ROW_REQUESTS,
    ROW_DURATION,
    ROW_LATENCIES,
    ROW_BYTES_IN,
    ROW_BYTES_OUT,
    ROW_SUCCESS,
    ROW_STATUS,
    ROWS
};
_Static_assert(sizeof(text_rows) / sizeof(text_rows[0]) == ROWS, "one text_rows entry per row");

static void put_head(FILE *f, int row)
{
    size_t w0 = 0, w1 = 0;
    for (size_t i = 0; i < ROWS; i++) {
        size_t l0 = strlen(text_rows[i][0]), l1 = strlen(text_rows[i][1]);
        w0 = l0 > w0 ? l0 : w0;
        w1 = l1 > w1 ? l1 : w1;
    }
    fprintf(f, "%-*s%-*s", (int)w0 + 2, text_rows[row][0], (int)w1 + 2, text_rows[row][1]);
}

/* Prints the durations rounded as vegeta does, separated by ", ", then a newline. */
static void put_durations(FILE *f, const uint64_t *ns, size_t n)
{
    char buf[FMT_LEN];
    for (size_t i = 0; i < n; i++) {
        fmt_duration(buf, round_duration(ns[i]));
        fprintf(f, "%s%s", i ? ", " : "", buf);
    }
    fputc('\n', f);
}

int load_report_text(const struct load_result *r, FILE *f)
{
    struct latencies l;
    get_latencies(&r->hist, &l);

    put_head(f, ROW_REQUESTS);
    fprintf(f, "%llu, %.2f, %.2f\n", (unsigned long long)r->requests, load_result_rate(r),
            load_result_throughput(r));
    put_head(f, ROW_DURATION);
    uint64_t durations[] = {r->duration_ns + r->wait_ns, r->duration_ns, r->wait_ns};
    put_durations(f, durations, sizeof(durations) / sizeof(durations[0]));
    put_head(f, ROW_LATENCIES);
    uint64_t lats[] = {l.min, l.mean, l.p50, l.p90, l.p95, l.p99, l.p999, l.max};
    put_durations(f, lats, sizeof(lats) / sizeof(lats[0]));
    put_head(f, ROW_BYTES_IN);
    fprintf(f, "%llu, %.2f\n", (unsigned long long)r->bytes_in,
            ratio((double)r->bytes_in, (double)r->requests));
    put_head(f, ROW_BYTES_OUT);
    fprintf(f, "%llu, %.2f\n", (unsigned long long)r->bytes_out,
            ratio((double)r->bytes_out, (double)r->requests));
    put_head(f, ROW_SUCCESS);
    fprintf(f, "%.2f%%\n", 100.0 * load_result_success_ratio(r));
    put_head(f, ROW_STATUS);
    const char *sep = "";
    for (size_t code = 0; code < STATUS_CODES; code++) {
        if (r->status[code] != 0) {
            fprintf(f, "%s%zu:%llu", sep, code, (unsigned long long)r->status[code]);
            sep = "  ";
        }
    }
    fputs("\nError Set:\n", f);
    for (int i = 0; i < LOAD_ERR_KINDS; i++) {
        if (r->errors[i] != 0) {
            fprintf(f, "%s: %llu\n", err_names[i], (unsigned long long)r->errors[i]);
        }
    }
    return finish(f);
}

/* A JSON number for x: the fewest significant digits that read back as x, positional up to
 * 1e21 as Go writes them ("100", not "1e+02"); 0 for NaN or infinity. */
static void put_double(FILE *f, double x)
{
    char buf[48];
    int prec;
    if (!isfinite(x)) {
        x = 0.0;
    }
    for (prec = 1; prec < 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*e", prec - 1, x);
        if (strtod(buf, NULL) == x) {
            break;
        }
    }
    snprintf(buf, sizeof(buf), "%.*e", prec - 1, x);
    int exp10 = atoi(strchr(buf, 'e') + 1);
    if (exp10 >= prec && exp10 < 21) {
        prec = exp10 + 1; /* %g would switch to an exponent */
    }
    snprintf(buf, sizeof(buf), "%.*g", prec, x);
    fputs(buf, f);
}

static void put_key_double(FILE *f, const char *key, double x)
{
    fprintf(f, ",\"%s\":", key);
    put_double(f, x);
}

static void json_latencies(FILE *f, const struct load_hist *h)
{
    struct latencies l;
    get_latencies(h, &l);
    fprintf(f,
            "\"latencies\":{\"total\":%llu,\"mean\":%llu,\"50th\":%llu,\"90th\":%llu,"
            "\"95th\":%llu,\"99th\":%llu,\"99.9th\":%llu,\"max\":%llu,\"min\":%llu}",
            (unsigned long long)l.total, (unsigned long long)l.mean, (unsigned long long)l.p50,
            (unsigned long long)l.p90, (unsigned long long)l.p95, (unsigned long long)l.p99,
            (unsigned long long)l.p999, (unsigned long long)l.max, (unsigned long long)l.min);
}

static void json_bytes(FILE *f, const char *key, uint64_t total, uint64_t requests)
{
    fprintf(f, ",\"%s\":{\"total\":%llu,\"mean\":", key, (unsigned long long)total);
    put_double(f, ratio((double)total, (double)requests));
    fputc('}', f);
}

static void json_times(FILE *f, const struct load_result *r)
{
    char buf[FMT_LEN];
    int64_t latest = 0, end = 0;
    if (r->start_unix_ns != 0) {
        latest = r->start_unix_ns + (int64_t)r->duration_ns;
        end = latest + (int64_t)r->wait_ns;
    }
    fmt_time(buf, r->start_unix_ns);
    fprintf(f, ",\"earliest\":\"%s\"", buf);
    fmt_time(buf, latest);
    fprintf(f, ",\"latest\":\"%s\"", buf);
    fmt_time(buf, end);
    fprintf(f, ",\"end\":\"%s\"", buf);
}

static void json_statuses_errors(FILE *f, const struct load_result *r)
{
    const char *sep = "";
    fputs(",\"status_codes\":{", f);
    for (size_t code = 0; code < STATUS_CODES; code++) {
        if (r->status[code] != 0) {
            fprintf(f, "%s\"%zu\":%llu", sep, code, (unsigned long long)r->status[code]);
            sep = ",";
        }
    }
    fputs("},\"errors\":[", f);
    sep = "";
    for (int i = 0; i < LOAD_ERR_KINDS; i++) {
        if (r->errors[i] != 0) {
            fprintf(f, "%s\"%s: %llu\"", sep, err_names[i], (unsigned long long)r->errors[i]);
            sep = ",";
        }
    }
    fputc(']', f);
}

int load_report_json(const struct load_result *r, FILE *f)
{
    fputc('{', f);
    json_latencies(f, &r->hist);
    json_bytes(f, "bytes_in", r->bytes_in, r->requests);
    json_bytes(f, "bytes_out", r->bytes_out, r->requests);
    json_times(f, r);
    fprintf(f, ",\"duration\":%llu,\"wait\":%llu,\"requests\":%llu",
            (unsigned long long)r->duration_ns, (unsigned long long)r->wait_ns,
            (unsigned long long)r->requests);
    put_key_double(f, "rate", load_result_rate(r));
    put_key_double(f, "throughput", load_result_throughput(r));
    put_key_double(f, "success", load_result_success_ratio(r));
    json_statuses_errors(f, r);
    fprintf(f, ",\"responses\":%llu", (unsigned long long)r->responses);
    put_key_double(f, "target_rate", r->target_rate);
    fputs(",\"error_counts\":{", f);
    for (int i = 0; i < LOAD_ERR_KINDS; i++) {
        fprintf(f, "%s\"%s\":%llu", i ? "," : "", err_keys[i], (unsigned long long)r->errors[i]);
    }
    fputs("}}\n", f);
    return finish(f);
}
