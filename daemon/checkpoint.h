/* SPDX-License-Identifier: MIT
 *
 * checkpoint.h: signed checkpoint records (see checkpoint.c).
 */
#ifndef LX_CHECKPOINT_H
#define LX_CHECKPOINT_H

#include <stddef.h>

#include "daemon.h"

/* Loads the signing key named by the config and starts the interval
 * timer; a config without `checkpoints` turns them off (returns 0).
 * Returns -1 with a reason in err if the key cannot be read. */
int lx_checkpoint_start(lx_daemon_t *d, char *err, size_t errlen);

/* After a commit: writes a checkpoint if `every` records have come since
 * the last one. */
void lx_checkpoint_maybe(lx_daemon_t *d);

/* At clean shutdown: a last checkpoint if anything came since the last
 * one, then the timer is closed. */
void lx_checkpoint_stop(lx_daemon_t *d);

#endif
