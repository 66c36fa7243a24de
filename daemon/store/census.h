/* SPDX-License-Identifier: MIT
 *
 * census.h: the figures behind the web gateway (census.c): records by
 * type, alerts by kind, open appeals by tier and by unit, pages of appeal
 * states. Runs on the loop thread, inside the query's read transaction,
 * but for the count of the records stored before the start (its own thread).
 */
#ifndef LX_CENSUS_H
#define LX_CENSUS_H

#include "appeal.h"
#include "daemon.h"

/* Answers {"op": "appeals", ...} (proto/README.md) into out, which is
 * empty; returns 0 or a negative code (out is then discarded). */
typedef struct lx_census_filter {
  lx_str_t unit;       /* path prefix, already confined to the jurisdiction */
  lx_str_t category;
  lx_str_t after;      /* page after this appeal id */
  lx_str_t only;       /* just this appeal (the filters still apply) */
  unsigned statuses;   /* bit per enum lx_status; 0 = all */
  uint64_t since, until, limit;
  bool has_since, has_until;
} lx_census_filter_t;

#define LX_CENSUS_APPEALS_LIMIT_DEFAULT 100
#define LX_CENSUS_APPEALS_LIMIT_MAX 1000

int lx_census_appeals(lx_daemon_t *d, MDB_txn *txn, const lx_census_filter_t *f,
                      msgpack_sbuffer *out, msgpack_zone *zone);

/* Called once the store is open and the plugins loaded: starts the thread
 * that counts the records stored before, which lx_census_stop stops (before
 * the store is closed). */
void lx_census_start(lx_daemon_t *d);
void lx_census_stop(lx_daemon_t *d);
/* Counts a record as stored (after its commit). */
void lx_census_record(lx_census_t *c, const lx_event_t *ev);
/* Counts one under name (alerts by kind). */
void lx_census_count(lx_tally_t *t, const char *name, size_t n);

/* The stats entries this file adds; LX_CENSUS_STATS_ENTRIES of them. */
#define LX_CENSUS_STATS_ENTRIES 6
void lx_census_pack_stats(lx_daemon_t *d, msgpack_packer *pk);

/* counts[i] = {open, due_soon, overdue} of cfg.units[i]: appeals filed in
 * the unit or below it, open now wherever they are held; due against the
 * clock reading now (ms). Reads the store's
 * open counts per unit and the open appeals due by the end of the next
 * working day, not every appeal. Returns 0 or a negative LX_E*. */
int lx_census_unit_counts(lx_daemon_t *d, MDB_txn *txn, int64_t now, uint32_t (*counts)[3]);

#endif
