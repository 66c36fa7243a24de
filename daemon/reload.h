/* SPDX-License-Identifier: MIT
 *
 * reload.h: SIGHUP reloads the configuration (see reload.c).
 */
#ifndef LX_RELOAD_H
#define LX_RELOAD_H

#include "daemon.h"

/* Starts the SIGHUP handler. */
void lx_reload_start(lx_daemon_t *d);
/* Closes it (the loop must then run). */
void lx_reload_stop(lx_daemon_t *d);

#endif
