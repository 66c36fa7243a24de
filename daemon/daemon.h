/* SPDX-License-Identifier: MIT
 *
 * daemon.h: what one running lianxind holds, shared by its subsystems.
 * There is exactly one per process, created by main.c; the subsystems
 * (ingest.c, query.c) get a pointer to it and never keep globals.
 */
#ifndef LX_DAEMON_H
#define LX_DAEMON_H

#include <uv.h>

#include "config.h"
#include "store.h"
#include "zsock.h"

typedef struct lx_ingest lx_ingest_t;

typedef struct lx_stats {
  uint64_t accepted;      /* events stored since start */
  uint64_t duplicates;    /* retries answered dup:true */
  uint64_t rejected;      /* events answered ok:false */
  uint64_t batches;       /* write transactions committed */
  uint64_t replies_lost;  /* replies a peer was not there to take */
  uint64_t queries;
} lx_stats_t;

typedef struct lx_daemon {
  uv_loop_t *loop;
  lx_config_t cfg;
  lx_store_t *store;
  void *zctx;
  void *ingest_sock, *alerts_sock, *query_sock;
  lx_zsock_t ingest_z, alerts_z, query_z;
  lx_ingest_t *ingest;
  uv_signal_t sigint, sigterm;
  uint64_t started_ms;
  lx_stats_t stats;
  int stopping;
} lx_daemon_t;

/* ingest.c: the ingest socket's handler and the group commit. */
int lx_ingest_start(lx_daemon_t *d);
void lx_ingest_stop(lx_daemon_t *d);

/* query.c: the query socket's handler. */
int lx_query_start(lx_daemon_t *d);
void lx_query_stop(lx_daemon_t *d);

/* The validator's view of the configuration (units and categories). */
void lx_daemon_schema_ctx(lx_daemon_t *d, lx_schema_ctx_t *ctx);

#endif
