/* SPDX-License-Identifier: MIT
 *
 * reload.h: SIGHUP reloads the whole configuration, and the `config`
 * record (see reload.c).
 */
#ifndef LX_RELOAD_H
#define LX_RELOAD_H

#include "daemon.h"

/* Starts the SIGHUP handler. */
void lx_reload_start(lx_daemon_t *d);
/* Closes it (the loop must then run). */
void lx_reload_stop(lx_daemon_t *d);

/* Puts the command line's --data, --ingest, --alerts and --query (kept in
 * d) over cfg's values. */
void lx_reload_overrides(lx_daemon_t *d, lx_config_t *cfg);

/* At start, once the store is open and ingest runs, before the plugins
 * catch up: keeps the configuration's bytes in the store, and appends a
 * `config` record when it differs from the last one in force (not on the
 * first start of a store). Returns 0 or -1 (logged). */
int lx_reload_record_start(lx_daemon_t *d);

/* The part of a reload the audit shares: builds the calendar of nc and asks
 * every plugin whose settings changed for its next state (appending
 * problems to *errors; on failure nothing is kept), then commit puts nc in
 * force (taking its contents; nc is zeroed) and frees what it replaced. */
struct lx_calendar;
int lx_reload_prepare(lx_daemon_t *d, const lx_config_t *nc, struct lx_calendar **ncal,
                      char **errors);
void lx_reload_commit(lx_daemon_t *d, lx_config_t *nc, struct lx_calendar *ncal);

#endif
