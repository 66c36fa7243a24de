/* SPDX-License-Identifier: MIT
 *
 * plugin_host.h: the daemon's side of lx/plugin.h: loading plugins,
 * offering them records, and the host functions they call.
 */
#ifndef LX_PLUGIN_HOST_H
#define LX_PLUGIN_HOST_H

#include <lmdb.h>
#include <stdbool.h>

#include "config.h"
#include "lx/plugin.h"
#include "lx_proto.h"

struct lx_daemon;

/* Loads every plugin of the config (uv_dlopen), checks its ABI, and calls
 * init in config order; after any failure goes on with the others (to
 * report their problems too), then closes the ones initialised, in reverse
 * order. The store must be open (plugins open their databases
 * in init). Returns 0, or -1 with every problem in *errors (caller frees),
 * one per line. */
int lx_plugins_load(struct lx_daemon *d, char **errors);

/* Calls close in reverse order, stops the timers, unloads the objects. The
 * loop must then run until the timers' close callbacks are done. */
void lx_plugins_close(struct lx_daemon *d);

/* A reload, in two steps. check: every plugin whose entry in nc differs
 * from the one in force builds its next state from nc (and the calendar
 * ncal) through its reload callback; a plugin without one, or one that
 * refuses, fails the whole check: every next state is dropped, and the
 * problems are appended to *errors. nc's plugin list must name the same
 * plugins, in the same order, as the one in force. take: after d->cfg and
 * d->cal hold the new configuration, closes the old states of the
 * reloaded plugins and points every instance at the new config. drop:
 * closes the next states instead. */
int lx_plugins_reload_check(struct lx_daemon *d, const lx_config_t *nc,
                            const struct lx_calendar *ncal, char **errors);
void lx_plugins_reload_take(struct lx_daemon *d);
void lx_plugins_reload_drop(struct lx_daemon *d);

/* Offers a record to every plugin's apply, inside the write transaction.
 * held: the appeal the record names, in the state the record leaves it, not
 * yet stored (NULL if it names none): the plugins read it and set its
 * deadline there, and the caller stores it afterwards. Returns 0, or
 * LX_EFULL / LX_EINTERNAL when a plugin's write failed: LMDB then refuses
 * the whole transaction, so the batch is aborted (and, for a full map,
 * grown and run again). */
int lx_plugins_apply(struct lx_daemon *d, MDB_txn *txn, uint64_t seq, uint64_t rat,
                     const lx_event_t *ev, const uint8_t *bytes, size_t len,
                     struct lx_appeal *held);

/* Offers a committed record to every plugin's react. */
void lx_plugins_react(struct lx_daemon *d, uint64_t seq, uint64_t rat, const lx_event_t *ev,
                      const uint8_t *bytes, size_t len);

/* Runs every plugin's on_timer once (catch-up at start). */
void lx_plugins_start(struct lx_daemon *d);

/* True when a loaded plugin declared this event type. */
bool lx_plugins_has_type(void *daemon, const char *name, size_t len);
/* The record types the i-th loaded plugin declared (NULL-terminated), or
 * NULL past the last plugin. */
const char *const *lx_plugins_types(struct lx_daemon *d, size_t i);

/* True when a loaded plugin answers the query op `name`. */
bool lx_plugins_has_op(struct lx_daemon *d, const char *name);

/* Answers one request of a plugin's op from read transaction txn: writes
 * {ok: true, …the plugin's fields} to out and returns 0, or returns the
 * plugin's (or the host's) error code with err filled. Rows are confined to
 * jurisdiction ("" for everything). */
int lx_plugins_query(struct lx_daemon *d, const char *op, const uint8_t *req, size_t len,
                     const char *jurisdiction, MDB_txn *txn, msgpack_sbuffer *out,
                     lx_error_t *err);

/* In an audit, before the record at seq is rebuilt into txn: asks the
 * plugin that declared its type (if it has a check) whether the record is
 * what it would have written. Returns 0, or 1 with the difference in
 * why[cap]. */
int lx_plugins_check(struct lx_daemon *d, MDB_txn *txn, uint64_t seq, uint64_t rat,
                     const lx_event_t *ev, const uint8_t *bytes, size_t len, char *why,
                     size_t cap);

/* Writes each plugin's progress_set value that the store does not hold yet
 * into the batch's transaction; after that transaction commits, call
 * progress_committed. Returns 0, LX_EFULL or LX_EINTERNAL. */
int lx_plugins_progress_write(struct lx_daemon *d, MDB_txn *txn);
void lx_plugins_progress_committed(struct lx_daemon *d);

/* Appends the plugins' fields for the `stats` reply (key, value, key, …)
 * to out; returns how many entries. */
size_t lx_plugins_stats(struct lx_daemon *d, msgpack_sbuffer *out);

/* After an appended event of this plugin failed to commit: try again soon. */
void lx_plugins_retry_later(struct lx_daemon *d, const char *actor, size_t len);

#endif
