/* SPDX-License-Identifier: MIT
 *
 * daemon.h: what one running lianxind holds, shared by its subsystems.
 * There is exactly one per process, created by main.c; the subsystems
 * (ingest.c, query.c) get a pointer to it and never keep globals.
 */
#ifndef LX_DAEMON_H
#define LX_DAEMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "config.h"
#include "registry.h"
#include "store.h"
#include "zsock.h"

typedef struct lx_ingest lx_ingest_t;
typedef struct lx_host lx_host_t;
typedef struct lx_calendar lx_calendar_t;
typedef struct lx_ckpt lx_ckpt_t;
typedef struct lx_notify lx_notify_t;

typedef struct lx_stats {
  uint64_t accepted;      /* events stored since start */
  uint64_t duplicates;    /* retries answered dup:true */
  uint64_t rejected;      /* events answered ok:false */
  uint64_t batches;       /* write transactions committed */
  uint64_t replies_lost;  /* replies a peer was not there to take */
  uint64_t queries;
  uint64_t alerts;        /* alerts published */
  uint64_t internal;      /* events the daemon's plugins appended */
} lx_stats_t;

/* census.c: counts by name (record types, alert kinds), in memory. */
#define LX_TALLY_SLOTS 32
typedef struct lx_tally_slot {
  char name[32];
  uint64_t count;
} lx_tally_slot_t;
typedef struct lx_tally {
  lx_tally_slot_t slot[LX_TALLY_SLOTS];
  int n;
  uint64_t other; /* names that found no free slot */
} lx_tally_t;
typedef struct lx_census {
  lx_tally_t types;   /* records in the log, by type */
  lx_tally_t kinds;   /* alerts published since start, by kind */
  /* The records stored before this start, 1..scan_end, are counted by a
   * thread of their own (started by the first `stats`) into `scanned`,
   * which the loop adds to `types` once scan_done is set (census.c). */
  atomic_bool scan_done; /* set by the thread when `scanned` is complete */
  atomic_bool scan_stop; /* set by the loop at shutdown */
  pthread_t scan_thread;
  uint64_t scan_end;
  lx_store_t *scan_store;
  lx_tally_t scanned;
  /* The loop's own flags, kept apart from the atomics above: a load the
   * compiler merges over neighbouring bools must not cover them. */
  bool scan_tried;      /* the thread was asked for */
  bool scanning;        /* the thread was started and not yet joined */
  bool scan_merged;     /* `scanned` is in `types` */
} lx_census_t;

typedef struct lx_daemon {
  uv_loop_t *loop;
  lx_config_t cfg;
  lx_store_t *store;
  void *zctx;
  void *ingest_sock, *alerts_sock, *query_sock;
  lx_zsock_t ingest_z, alerts_z, query_z;
  bool alerts_sent;      /* alerts.c: sent since the socket's input was last checked */
  msgpack_sbuffer query_out; /* query.c: the reply being built */
  msgpack_zone query_zone;
  bool query_ready;
  lx_ingest_t *ingest;
  lx_calendar_t *cal;
  lx_ckpt_t *ckpt;       /* NULL when checkpoints are off */
  lx_notify_t *notify;   /* NULL without NOTIFY_SOCKET (notify.c) */
  lx_host_t **hosts;     /* one per configured plugin, in config order */
  size_t n_hosts;
  uv_signal_t sigint, sigterm;
  /* security (auth.c): CURVE and the registry; all zero when plain */
  bool secure;
  lx_registry_t registry;
  char server_secret[41];
  void *zap_sock;
  lx_zsock_t zap_z;
  uv_signal_t sighup;
  uint64_t started_ms;
  lx_stats_t stats;
  lx_census_t census;
  int stopping;
  /* What the command line set (main.c), which a reload keeps. */
  const char *opt_data, *opt_ingest, *opt_alerts, *opt_query;
  bool opt_log_format, opt_log_level;
  uv_timer_t reload_timer; /* reload.c: SIGHUPs of one loop turn make one reload */
} lx_daemon_t;

/* ingest.c: the ingest socket's handler and the group commit. */
int lx_ingest_start(lx_daemon_t *d);
void lx_ingest_stop(lx_daemon_t *d);

/* Queues an event written by the daemon (a plugin's), to be validated and
 * committed like any other, with the next internal batch: `at` is its
 * receive time, `actor` the plugin's name. Returns 0 or a negative code. */
int lx_ingest_queue(lx_daemon_t *d, const char *actor, const char *type, lx_str_t unit,
                    const uint8_t *body, size_t body_len);
/* Commits what is queued (and what that makes plugins queue in turn). */
void lx_ingest_flush_queue(lx_daemon_t *d);
/* The same after a plugin's on_timer, taking the clients' requests waiting
 * on the ingest socket into the same commit. */
void lx_ingest_flush_timer(lx_daemon_t *d);

/* alerts.c: the alerts socket. publish sends topic "unit." and the map
 * {seq, kind, unit, at} plus the entries of `extra` (a MessagePack map or
 * NULL); it never blocks (a slow subscriber loses alerts, not the daemon). */
int lx_alerts_start(lx_daemon_t *d);
void lx_alerts_stop(lx_daemon_t *d);
int lx_alerts_publish(lx_daemon_t *d, uint64_t seq, uint64_t at, const char *kind, lx_str_t unit,
                      const uint8_t *extra, size_t extra_len);
/* After a run of publishes (a batch's reactions, a plugin's on_timer):
 * checks once whether subscriptions wait to be read (a send may have taken
 * the socket's edge-triggered wake-up). */
void lx_alerts_sent(lx_daemon_t *d);

/* query.c: the query socket's handler. lx_query_answer decodes one request
 * frame (buf NULL: the frames had the wrong shape) from client (NULL
 * without keys) and writes the reply into out; returns 0 or the error code
 * it answered with. */
int lx_query_answer(lx_daemon_t *d, const lx_client_t *client, const uint8_t *buf, size_t len,
                    msgpack_sbuffer *out, msgpack_zone *zone);
int lx_query_start(lx_daemon_t *d);
void lx_query_stop(lx_daemon_t *d);

/* The validator's view of the configuration (units and categories). */
void lx_daemon_schema_ctx(lx_daemon_t *d, lx_schema_ctx_t *ctx);

#endif
