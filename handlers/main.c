/* SPDX-License-Identifier: MIT */
/*
 * main.c: the demo API and the HttpArena workloads. It is built exactly as a user's program is:
 * coil.h, routes, run.
 */
#include <stdio.h>

#include "handlers.h"

int main(int argc, char **argv)
{
    struct coil_app *app = coil_app_create(argc, argv);
    if (demo_routes(app) < 0 || kv_routes(app) < 0 || arena_routes(app) < 0 ||
        wait_routes(app) < 0 || relay_routes(app) < 0 || db_routes(app) < 0) {
        fprintf(stderr, "coil: cannot register the demo routes\n");
        return 1;
    }
    return coil_app_run(app);
}
