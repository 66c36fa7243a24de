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

/* For a reload: 0 when the .sign.key file at path can be used, else -1
 * with the reason in err. */
int lx_checkpoint_key_ok(const char *path, char *err, size_t errlen);
/* After a reload changed the checkpoint settings: the old timer and key go
 * (no checkpoint is written for the change), and lx_checkpoint_start runs
 * with the settings now in d->cfg. */
int lx_checkpoint_restart(lx_daemon_t *d, char *err, size_t errlen);

/* At clean shutdown: a last checkpoint if anything came since the last
 * one, then the timer is closed. */
void lx_checkpoint_stop(lx_daemon_t *d);

#endif
