/* SPDX-License-Identifier: MIT
 *
 * rank_plugin.h: the rank plugin's instance and what its two files share:
 * rank.c (config, apply, timer, react) and rank_q.c (computing a period
 * from the plugin's facts or from the log, and the `rank` query op).
 */
#ifndef LX_RANK_PLUGIN_H
#define LX_RANK_PLUGIN_H

#include "rank.h"

#define RK_PERIODS_PER_TURN 12 /* periods ranked per on_timer; the rest right after */
#define RK_BODY_MAX (63 * 1024) /* a ranking's body, leaving room for the envelope */

typedef struct rk {
  const lx_host_api_t *api;
  lx_host_t *host;
  lx_db_t facts, done, meta;
  int kind;              /* the configured period: RK_MONTH, RK_QUARTER, RK_YEAR */
  double w[RK_RATES];    /* normalised weights */
  int list_size;
  int64_t off;           /* calendar.utc_offset, ms */
  rk_units_t units[2];   /* communities, townships: sorted paths */
  const char *county;    /* the unit of ranking records */
  bool since_stored;     /* meta "since" is committed: apply need not look */
  rk_fact_t fact;        /* apply's scratch */
  struct rk_blocks *blocks; /* rank_q.c: a log scan's memory, kept for the next scan */
} rk_t;

/* The facts database's key: u64be(opened) | appeal id; k holds 8 + 64. */
size_t rk_fact_key(uint8_t *k, int64_t opened, lx_slice_t appeal);
/* "PERIOD/TIER", the done database's key. */
size_t rk_mark_key(char *out, size_t cap, const char *period, const char *tier);
bool rk_marked(rk_t *r, lx_txn_t *t, const char *period, int ti);
/* The rat of the first record this plugin applied, -1 if none. */
int64_t rk_since(rk_t *r, lx_txn_t *t);
/* Calls fn for each entry of rec's body until it returns non-zero; -1 if
 * the record has no body map. */
int rk_body_each(const lx_rec_t *rec, int (*fn)(void *, const msgpack_object_kv *), void *arg);

/* Computes period p for both tiers, as of its end, into c (rk_calc_finish
 * done; caller frees with rk_calc_free): from the facts when this plugin
 * saw the whole period, else from a scan of the log. Returns 0 or -1. */
int rk_compute(rk_t *r, lx_txn_t *t, const rk_period_t *p, rk_calc_t *c);
/* Frees what rk_compute kept (at close). */
void rk_compute_free(rk_t *r);
/* The `rank` op (lx_plugin_t.query). */
int rk_query(void *state, lx_query_t *q);
/* The audit's re-check of a ranking record (lx_plugin_t.check): its body
 * must equal the period's ranking recomputed from the records before it. */
int rk_check(void *state, lx_txn_t *t, const lx_rec_t *rec, char *why, size_t cap);

#endif
