/* SPDX-License-Identifier: MIT
 *
 * notify.h: telling systemd how the daemon is doing (see notify.c). Every
 * function does nothing when the daemon was not started with NOTIFY_SOCKET.
 */
#ifndef LX_NOTIFY_H
#define LX_NOTIFY_H

#include "daemon.h"

/* Reads NOTIFY_SOCKET and WATCHDOG_USEC (garbage in the latter: a warning,
 * no watchdog) and starts the loop's timer for WATCHDOG=1 and STATUS=.
 * Call once the store is open and every socket is bound: it sends READY=1. */
void lx_notify_ready(lx_daemon_t *d);
/* RELOADING=1 before a reload; READY=1 (and a fresh STATUS=) after it,
 * whether the new configuration was taken or refused. */
void lx_notify_reloading(lx_daemon_t *d);
void lx_notify_reloaded(lx_daemon_t *d, const char *outcome);
/* STOPPING=1, then the timer is closed (the loop can then end). */
void lx_notify_stopping(lx_daemon_t *d);

#endif
