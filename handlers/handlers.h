/* SPDX-License-Identifier: MIT */
/*
 * handlers.h: the demo API's handler families; each registers its routes on an app.
 */
#ifndef COIL_HANDLERS_H
#define COIL_HANDLERS_H

#include <coil.h>

/* /plaintext, /json, /healthz, /readyz, /echo, /stats, /whoami (JWT claims) */
int demo_routes(struct coil_app *app);
/* /kv/:key: an in-memory store replicated to every worker by background jobs */
int kv_routes(struct coil_app *app);
/* /baseline11, /pipeline, /json/:count (compressed when asked: json-comp): the HttpArena
 * workloads, and the --dataset option */
int arena_routes(struct coil_app *app);
/* /delay/:ms and /events (Server-Sent Events): responses that wait on timers */
int wait_routes(struct coil_app *app);
/* /relay/PATH: one call to the --backend service per request (coil_fetch) */
int relay_routes(struct coil_app *app);

/* /async-db and /crud/items: HttpArena's database workloads (--database-url) */
int db_routes(struct coil_app *app);

#endif
