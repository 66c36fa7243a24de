/* SPDX-License-Identifier: MIT
 *
 * plugin_txn.h: what a plugin may do inside a transaction and with the
 * config and calendar: the slots of lx_host_api_t that need no loop, socket
 * or timer (conf_str, conf_items, conf_error, conf_item_error, deadline, next_workday_end, tier_days, unit_at_tier,
 * db_open, get, put, del, scan, read_begin, read_end, appeal, set_deadline,
 * log_scan, response_due, utc_offset_ms, unit_path, log_read, county, progress_get).
 *
 * The daemon's host (plugin_host.c) and the unit tests' mock host
 * (tests/unit/mock_host.c) both serve these slots from here, so a plugin
 * under test meets the store exactly as lianxind gives it; each host adds
 * only its own log, clock, config errors, timer, append and publish.
 *
 * Design: the host functions receive only an lx_host_t *, whose layout is
 * each host's own. Every struct lx_host therefore begins with an
 * lx_plugin_env_t (as every libuv handle begins with the uv_handle_t
 * fields), and the functions here read that first member.
 */
#ifndef LX_PLUGIN_TXN_H
#define LX_PLUGIN_TXN_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "lx_proto.h"
#include "lx/plugin.h"
#include "store.h"

typedef struct lx_calendar lx_calendar_t;

/* A store transaction lent to a plugin: the batch's write transaction in
 * apply, or the host's one read transaction in react and on_timer. */
struct lx_txn {
  lx_store_t *store;
  MDB_txn *txn;
  bool write;
  uint64_t seq; /* write: the record being applied */
  int failed;   /* write: 0, or the first failed write's LX_EFULL / LX_EINTERNAL (dooms the txn) */
  bool noted;   /* write: a deadline was noted for this record already */
  /* write: the appeal the record names, in the state the record leaves it,
   * which the core stores only after every plugin's apply (lx_apply_record):
   * appeal and set_deadline on that id read and change this copy, so an
   * appeal's deadline costs no second read and write of its row. NULL when
   * the record names no appeal (or in the tests' mock host). */
  lx_str_t held_id;
  lx_appeal_t *held;
};

/* What the functions here see of one plugin instance. Must be the first
 * member of the host's struct lx_host. Borrows everything it points to: the
 * store, config, calendar and keys must outlive the instance. */
typedef struct lx_plugin_env {
  lx_store_t *store;
  const lx_config_t *cfg;
  const lx_calendar_t *cal;
  const char *name;          /* the plugin's: its databases are "p.<name>.<db>" */
  const lx_conf_kv_t *kv;    /* the keys of its config entry */
  size_t n_kv;
  bool *used;                /* n_kv flags: which keys conf_str was asked for */
  /* The host's own way to report a config problem at LINE (0: the entry's
   * line) about KEY ("weights.response", "servers[1]"). */
  void (*report)(lx_host_t *h, int line, const char *key, const char *text);
  char sub[80];              /* the log prefix: "plugin:escalate" */
  struct lx_txn rtxn;        /* the one read transaction lent out at a time */
} lx_plugin_env_t;

/* Sets up env for the plugin called `name` with the config keys kv[n_kv]
 * (all borrowed, as is used[n_kv], which the host clears and then reads for
 * the keys the plugin never asked for), with no read transaction lent out. */
void lx_plugin_env_init(lx_plugin_env_t *env, lx_store_t *store, const lx_config_t *cfg,
                        const lx_calendar_t *cal, const char *name, const lx_conf_kv_t *kv,
                        size_t n_kv, bool *used,
                        void (*report)(lx_host_t *h, int line, const char *key, const char *text));

/* Fills the slots listed at the top of this file and leaves the others (abi,
 * log, now, append, publish, arm) as they are. The functions it
 * installs cast their lx_host_t * to lx_plugin_env_t *. */
void lx_plugin_txn_fill(lx_host_api_t *api);

/* The read_begin slot, for a host that wraps it with checks of its own.
 * Returns the host's read transaction, or NULL when it is already lent out
 * or LMDB refuses. Does not block. */
lx_txn_t *lx_plugin_read_begin(lx_host_t *h);

/* Fills r with the record at seq as plugins see it; its slices point into
 * ev and bytes. */
void lx_plugin_rec_init(lx_rec_t *r, uint64_t seq, uint64_t rat, const lx_event_t *ev,
                        const uint8_t *bytes, size_t len);

/* Lends txn, the batch's write transaction, to the plugins' apply of the
 * record at seq. */
void lx_plugin_txn_init(lx_txn_t *t, lx_store_t *store, MDB_txn *txn, uint64_t seq);

/* What the plugins' writes through t came to. LMDB refuses a transaction
 * after a failed write, so anything but 0 means the batch must be aborted:
 * LX_EFULL when the map was full (grow it and run the batch again), or
 * LX_EINTERNAL, logged, for any other LMDB error. */
int lx_plugin_txn_result(const lx_txn_t *t);

#endif
