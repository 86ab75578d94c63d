/* SPDX-License-Identifier: MIT */
/*
 * load.h: coil-load's configuration and its workers. The main thread parses flags and
 * targets, starts one pinned worker thread per -workers, each with its own io_uring ring and
 * its share of the connections and of the request schedule, then merges their results.
 * Workers share only the read-only config and targets, and publish progress counters that the
 * main thread reads relaxed for the progress line.
 */
#ifndef LOAD_LOAD_H
#define LOAD_LOAD_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "report.h"
#include "targets.h"

struct load_config {
    double rate; /* requests/s; 0 = closed loop */
    uint64_t duration_ns;
    uint32_t connections; /* over all workers */
    uint32_t pipeline;    /* requests in flight per connection */
    uint64_t timeout_ns;
    unsigned workers;
    struct load_targets targets;
    struct sockaddr_storage addr; /* the server */
    socklen_t addr_len;
};

struct load_worker {
    unsigned id;
    int cpu; /* pinned to; -1 if not */
    const struct load_config *cfg;
    uint32_t nconns;    /* this worker's connections */
    uint64_t nrequests; /* open loop: requests this worker schedules */
    double rate;        /* this worker's share of the rate */
    uint64_t t0;        /* CLOCK_MONOTONIC ns of the first scheduled send */
    struct load_result result;
    _Atomic uint64_t sent; /* progress, read by the main thread */
    _Atomic uint64_t received;
    _Atomic uint64_t failed;
    _Atomic int ready;          /* connections set up; waiting for t0 */
    _Atomic uint64_t *start_at; /* set by the main thread once every worker is ready */
    int err;                    /* -errno if the worker could not start */
    pthread_t thread;
};

uint64_t load_now_ns(void);
void *load_worker_main(void *arg);

#endif
