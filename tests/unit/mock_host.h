/* SPDX-License-Identifier: MIT
 *
 * mock_host.h: a host table for driving one plugin in a unit test, without
 * the daemon's loop, sockets or real clock (STYLE.md item 13).
 *
 * The plugin is the built shared object, loaded and ABI-checked as lianxind
 * loads it. Behind the table are the project's own parts: the config loader
 * and calendar (config/lianxin.yaml), and a real LMDB store in a mkdtemp
 * directory, written through lx_apply_record, so appeals change state by
 * the core's state machine and a plugin's apply runs inside the same write
 * transaction as the record it sees. The store, config and calendar slots
 * of the host table are the daemon's own (daemon/plugins/plugin_txn.c). What
 * differs from the daemon:
 *
 *   - the clock is mh.now, moved only by the test;
 *   - the timer is mh.armed; mh_advance fires it in order, and what the
 *     plugin appends in on_timer is committed at once, in one batch (as the
 *     daemon's lx_ingest_flush_queue does right after on_timer); a test may
 *     set mh.refuse to have that many such batches refused as a full store
 *     refuses them (nothing stored, the timer armed for a second later);
 *   - alerts are captured, with the record's fields, instead of sent;
 *   - the contract of lx/plugin.h is checked: apply must not read the clock,
 *     append, publish or arm; only one read transaction at a time; alerts
 *     name a committed record. A breach fails the test.
 *
 * Every helper fails the running cmocka test on an unexpected error. A
 * failed test leaves its host as it was (store directory included, for
 * inspection): freeing it mid-callback could not be done safely.
 */
#ifndef LX_MOCK_HOST_H
#define LX_MOCK_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon.h"
#include "lx/plugin.h"
#include "plugin_txn.h"

#define MH_ABSENT INT64_MIN /* an int field that the map does not hold */
#define MH_MAX 12288        /* records and alerts kept per test */
#define MH_QUEUE 4096       /* appends between two commits (a slice, SLICE_ACTIONS) */

/* The fields an escalation-like body or alert may hold; strings are "" and
 * ints MH_ABSENT when missing, ints -1 when nil. */
typedef struct mh_fields {
  char appeal[65], kind[16], tier[16], from[16], to[16];
  int64_t deadline, next, due;
  int n; /* how many keys the map had */
} mh_fields_t;

/* A record a plugin appended, as committed. */
typedef struct mh_rec {
  uint64_t seq;
  int64_t rat;
  char type[32], actor[65], unit[100];
  mh_fields_t body;
  uint8_t raw[1024];  /* the body's MessagePack bytes, for other fields */
  size_t raw_len;     /* 0 when the body was larger than raw */
} mh_rec_t;

/* An alert a plugin published. */
typedef struct mh_alert {
  uint64_t seq; /* the record it is about */
  int64_t at;   /* that record's rat */
  char kind[16], unit[100];
  mh_fields_t extra;
} mh_alert_t;

typedef struct mh_queued {
  char type[32];
  char unit[100];
  uint8_t *body;
  size_t len;
} mh_queued_t;

struct lx_host {
  lx_plugin_env_t env;     /* first, as plugin_txn.c requires; holds the read txn */
  const char *so_path;
  char dir[64];            /* the store's temporary directory */
  lx_daemon_t d;           /* only cfg and store are used (lx_apply_record) */
  lx_calendar_t *cal;
  const lx_conf_kv_t *kv;  /* the plugin's config keys */
  size_t n_kv;
  bool used[32];
  uv_lib_t lib;
  bool lib_open;
  const lx_plugin_t *plugin;
  lx_host_api_t api;       /* plugin_txn.c's slots and the mock's below */
  void *state;
  bool inited;

  int64_t now;             /* the fake clock */
  int64_t armed;           /* the timer, -1 when not armed */
  int fires;               /* on_timer calls */
  bool in_apply;           /* inside apply: the contract forbids side effects */
  int reads;               /* read transactions begun (and so ended) */
  int conf_errors;
  char conf_error_keys[256]; /* "key1 key2 " */
  int log_errors;          /* log lines at LX_PLOG_WARN or worse */
  uint64_t next_id;

  mh_queued_t queue[MH_QUEUE];
  size_t nq;
  size_t max_batch;        /* the most plugin records committed together */
  size_t batches[256];     /* the sizes of the first 256 batches of plugin records */
  size_t n_batches;
  int slow_turns;          /* the next this many timer firings each wait turn_ms first, */
  int turn_ms;             /* as after a slow turn of the loop */
  int refuse_after;        /* batches of plugin records to commit before refusing */
  int refuse;              /* then how many to refuse, as on E_FULL */
  mh_rec_t recs[MH_MAX];   /* records the plugin appended, in log order */
  size_t n_recs;
  mh_alert_t alerts[MH_MAX];
  size_t n_alerts;
};
typedef struct lx_host mh_t;

/* Loads config/lianxin.yaml and its calendar, opens a store in a new
 * temporary directory, loads the plugin at so_path and checks its ABI. The
 * plugin's config keys are those of the sample's plugins entry named
 * `plugin` (kv NULL), or kv/n_kv. Caller frees with mh_free. */
mh_t *mh_new(const char *so_path, const char *plugin, const lx_conf_kv_t *kv, size_t n_kv,
             int64_t now);
/* Calls init; returns what it returned. */
int mh_init(mh_t *h);
/* Fills h->api as init would be given it, without calling init: for tests
 * of the host functions themselves. */
void mh_api(mh_t *h);
/* Runs on_timer once at the current time, as lianxind does at start, and
 * commits what it appended; then fires the timer while it is armed for a
 * time already past, as the loop would at once. */
void mh_start(mh_t *h);
/* A restart: close, unload, close the store; then reopen the store, load,
 * init and start at time `now` (the timer is lost with the process). */
void mh_restart(mh_t *h, int64_t now);
/* close (if inited), unload, close the store, remove its directory. */
void mh_free(mh_t **h);

/* Stores one client event of `type` at `unit` received now, with body `body`
 * (a MessagePack map), in its own batch: apply, commit, react, and then
 * whatever the plugin appended. Returns its seq. */
uint64_t mh_submit(mh_t *h, const char *type, const char *unit, const uint8_t *body, size_t len);
/* The same, by `actor`, with the event's own `at` (field apps record offline). */
uint64_t mh_submit_as(mh_t *h, const char *type, const char *unit, const char *actor, int64_t at,
                      const uint8_t *body, size_t len);
/* A visit by actor at unit that happened at `at` (names no appeal). */
uint64_t mh_visit_as(mh_t *h, const char *actor, const char *unit, int64_t at);
uint64_t mh_appeal(mh_t *h, const char *id, const char *unit, const char *category, bool urgent);
uint64_t mh_visit(mh_t *h, const char *appeal, const char *unit);
uint64_t mh_resolution(mh_t *h, const char *appeal, const char *unit, const char *outcome);
uint64_t mh_feedback(mh_t *h, const char *appeal, const char *unit, bool satisfied);

/* Stores an event of a type only the daemon writes (an `escalation`), as
 * escalate would append it; it is kept in h->recs like the plugin's own. */
uint64_t mh_submit_daemon(mh_t *h, const char *type, const char *unit, const uint8_t *body,
                          size_t len);


/* n appeals (ids PREFIX-0 ..) of category at unit, received now in one batch. */
void mh_appeal_batch(mh_t *h, const char *prefix, int n, const char *unit, const char *category);

/* Moves the clock to `to` (never back), firing the timer each time it is
 * due on the way, at the time it was armed for. */
void mh_advance(mh_t *h, int64_t to);

/* Asks the plugin's query op `op` with request map req[len] at the fake
 * clock, confined to jurisdiction ("" for all), from a read transaction of
 * its own, as the daemon does. Returns what query returned; q->reply (the
 * caller frees it) holds the reply map, q->error the plugin's text. */
int mh_query(mh_t *h, const char *op, const uint8_t *req, size_t len, const char *jurisdiction,
             lx_query_t *q);

/* How many keys the plugin's database `name` holds now. */
int mh_db_count(mh_t *h, const char *name);

/* The core's state of an appeal, read from the store. */
lx_appeal_t mh_appeal_state(mh_t *h, const char *id);

#endif
