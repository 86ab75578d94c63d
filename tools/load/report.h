/* SPDX-License-Identifier: MIT */
/*
 * report: the results of one attack and how they are printed: a text report like vegeta's,
 * the same fields as one JSON object (vegeta's JSON report field names where one exists), and
 * the .hgrm distribution (hist.h).
 */
#ifndef LOAD_REPORT_H
#define LOAD_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "hist.h"

enum load_err {
    LOAD_ERR_CONNECT,  /* connection refused or failed */
    LOAD_ERR_RESET,    /* connection reset or closed with requests outstanding */
    LOAD_ERR_TIMEOUT,  /* no response within -timeout */
    LOAD_ERR_PARSE,    /* malformed response */
    LOAD_ERR_OVERLOAD, /* the generator could not send on schedule (its queue was full) */
    LOAD_ERR_KINDS
};

struct load_result {
    uint64_t requests;    /* requests scheduled (sent, or counted as errors) */
    uint64_t responses;   /* complete responses */
    uint64_t success;     /* responses with status 200..399 */
    uint64_t bytes_in;    /* response bytes read (headers and bodies) */
    uint64_t bytes_out;   /* request bytes sent */
    uint64_t status[600]; /* responses per status code */
    uint64_t errors[LOAD_ERR_KINDS];
    uint64_t duration_ns;  /* from the first scheduled send to the last one */
    uint64_t wait_ns;      /* from the last send to the last response */
    int64_t start_unix_ns; /* wall clock at the first send (for "earliest") */
    double target_rate;    /* requests/s asked for; 0 for closed loop */
    struct load_hist hist; /* latency of each successful or failed response, ns */
};

void load_result_init(struct load_result *r);
void load_result_merge(struct load_result *dst, const struct load_result *src);

/* Requests / duration. */
double load_result_rate(const struct load_result *r);
/* Successful responses / (duration + wait). */
double load_result_throughput(const struct load_result *r);
/* success / requests, 0..1 */
double load_result_success_ratio(const struct load_result *r);

int load_report_text(const struct load_result *r, FILE *f);
int load_report_json(const struct load_result *r, FILE *f);

#endif
