/* SPDX-License-Identifier: MIT */
/*
 * log.c: the engine's own log lines on stderr, as text ("coil: message") or as JSON lines
 * ({"time":..., "level":..., "msg":...}) for a log pipeline (--log-format), and a debug level
 * (--log-level debug) for what is too noisy to log by default (refused credentials, failed
 * handshakes). Lines are rare (start, stop, faults), so one write per line is fine; the access
 * log, which is per request, is alog.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

static bool log_json;
static bool log_debug;

/* ISO 8601 UTC with milliseconds: "2026-12-02T03:04:05.123Z" (24 bytes and a NUL). */
size_t coil__iso_time(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return n;
}

/* Bytes of the well-formed UTF-8 sequence starting s[0..n), or 0: RFC 3629's table, so no
 * overlong form, no surrogate, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf; /* lo, hi: the second byte's range */
    size_t len;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : lo;
        hi = c == 0xed ? 0x9f : hi;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* s as the inside of a JSON string (quotes and control characters escaped), cut to fit. What
 * is logged comes from clients (targets, user agents) and need not be UTF-8, but a JSON text
 * must be: a byte outside a well-formed sequence is written as the code point of its value
 * (\u00XX, its Latin-1 reading), so the line stays parseable and the byte readable. */
size_t coil__json_escape(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        size_t u = c >= 0x80 ? utf8_len((const unsigned char *)s + i, len - i) : 0;
        if (u) {
            if (o + u > cap)
                break;
            memcpy(out + o, s + i, u);
            o += u;
            i += u - 1;
        } else if (c == '"' || c == '\\') {
            if (o + 2 > cap)
                break;
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            if (o + 6 > cap)
                break;
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[c >> 4];
            out[o + 5] = hex[c & 15];
            o += 6;
        } else {
            if (o + 1 > cap)
                break;
            out[o++] = (char)c;
        }
    }
    return o;
}

static void emit(const char *level, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    char line[1400];
    int n;
    if (log_json) {
        char t[32], esc[1200];
        coil__iso_time(t);
        size_t e = coil__json_escape(esc, sizeof(esc), msg, strlen(msg));
        n = snprintf(line, sizeof(line), "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%.*s\"}\n", t,
                     level, (int)e, esc);
    } else {
        n = snprintf(line, sizeof(line), "coil: %s\n", msg);
    }
    if (n > (int)sizeof(line) - 1)
        n = (int)sizeof(line) - 1;
    /* One write per line, so lines from several threads never interleave. */
    ssize_t rc = write(STDERR_FILENO, line, (size_t)n);
    (void)rc;
}

void coil__log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit("info", fmt, ap);
    va_end(ap);
}

void coil__debug(const char *fmt, ...)
{
    if (!log_debug)
        return;
    va_list ap;
    va_start(ap, fmt);
    emit("debug", fmt, ap);
    va_end(ap);
}

bool coil__debugging(void)
{
    return log_debug;
}

static int format_option(const char *v, void *ud)
{
    (void)ud;
    if (strcmp(v, "json") && strcmp(v, "text"))
        return -1;
    log_json = !strcmp(v, "json");
    return 0;
}

static int level_option(const char *v, void *ud)
{
    (void)ud;
    if (strcmp(v, "debug") && strcmp(v, "info"))
        return -1;
    log_debug = !strcmp(v, "debug");
    return 0;
}

int coil__log_setup(struct coil_app *app)
{
    log_json = log_debug = false;
    if (coil_app_option(app, "log-format", "COIL_LOG_FORMAT", "text|json",
                        "the engine's log lines on stderr: \"coil: ...\" or JSON lines [text]",
                        format_option, NULL) < 0 ||
        coil_app_option(app, "log-level", "COIL_LOG_LEVEL", "info|debug",
                        "debug adds refused credentials and other noisy detail [info]",
                        level_option, NULL) < 0)
        return -ENOMEM;
    return 0;
}
