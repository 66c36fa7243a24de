/* SPDX-License-Identifier: MIT
 *
 * lx/plugin.h: the whole surface between lianxind and its plugins.
 *
 * A plugin is a shared object that exports one symbol, `lx_plugin_entry`, a
 * const lx_plugin_t. The daemon checks its `abi` against LX_PLUGIN_ABI
 * before calling anything, then calls, for each instance in the config:
 *
 *   init(api, host, &state)   once, at start, before any socket is bound.
 *                             Reads its config keys through api->conf_*,
 *                             opens its databases with api->db_open. Returns
 *                             0, or -1 after api->conf_error / api->log.
 *                             `lianxind --check-config` runs init too (then
 *                             close), against a scratch store: so init only
 *                             reads and checks; threads and connections start
 *                             in on_timer, which a check never calls.
 *   apply(state, txn, rec)    for every record appended to the log, inside
 *                             the write transaction that appends it, in log
 *                             order. Deterministic: no I/O, no clock, no
 *                             appends; it may read and write its own
 *                             databases and set an appeal's deadline. What
 *                             it writes commits or aborts with the record.
 *   react(state, rec)         for every record, after its commit, in log
 *                             order: may publish alerts, arm the timer and
 *                             append new events.
 *   on_timer(state, now)      when the armed time has come, and once at
 *                             start (so a plugin can catch up and re-arm).
 *   close(state)              at shutdown, in reverse order of init.
 *   query(state, q)           for a request on the query socket whose op is
 *                             one of the plugin's `ops`, from a read
 *                             transaction of its own (see lx_query_t).
 *   check(state, txn, rec, …) in an audit, before a record of the plugin's
 *                             own types is rebuilt: was it due?
 *   reload(state, &next)      on SIGHUP, when the plugin's entry in the new
 *                             configuration differs from the one in force.
 *                             The new settings (and the new units, calendar
 *                             and deadlines) are visible through api->conf_*
 *                             and the calendar functions during the call.
 *                             Builds a new state in *next from them without
 *                             touching the old one, which keeps serving:
 *                             the host checks every plugin first, then
 *                             either closes every old state and goes on
 *                             with the nexts, or, if any plugin (or any
 *                             other part of the file) was refused, closes
 *                             the nexts. Returns 0, or -1 after
 *                             api->conf_error. NULL: the plugin cannot
 *                             change its settings without a restart, and a
 *                             reload that changes them is refused.
 *   stats(state, &map, &len)  fields the plugin adds to the `stats` reply.
 *
 * Events a plugin appends go through the same validation and group commit
 * as client events, and are themselves offered to every plugin's apply and
 * react. Everything runs on the daemon's one loop thread, but for log_read
 * and wake, which a plugin's own thread may call (see lx_host_api_t).
 */
#ifndef LX_PLUGIN_H
#define LX_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define LX_PLUGIN_ABI 2

typedef struct lx_host lx_host_t; /* the daemon's handle for one plugin instance */
typedef struct lx_txn lx_txn_t;   /* a store transaction lent to the plugin */
typedef unsigned lx_db_t;         /* a database of the plugin's own */

typedef struct lx_slice {
  const char *p; /* not NUL-terminated */
  size_t n;
} lx_slice_t;

/* Record types; a plugin's own types are LX_REC_PLUGIN with type_name. */
enum { LX_REC_VISIT = 1, LX_REC_APPEAL, LX_REC_RESOLUTION, LX_REC_FEEDBACK,
       LX_REC_ESCALATION, LX_REC_CHECKPOINT, LX_REC_CONFIG, LX_REC_PLUGIN = 100 };
/* Appeal states and resolution outcomes. */
enum { LX_OPEN = 1, LX_RESOLVED, LX_EXPLAINED, LX_REFERRED, LX_CLOSED };
/* Tiers. */
enum { LX_COMMUNITY = 1, LX_TOWNSHIP, LX_COUNTY };
/* Log levels for api->log. */
enum { LX_PLOG_ERROR = 0, LX_PLOG_WARN, LX_PLOG_INFO, LX_PLOG_DEBUG };

/* A record as plugins see it. Slices point into the record; they are valid
 * during the callback only. */
typedef struct lx_rec {
  uint64_t seq;
  int64_t rat;            /* receive time, ms: deadlines count from here */
  int type;               /* LX_REC_* */
  lx_slice_t type_name;   /* "visit", …, or the plugin type's name */
  lx_slice_t unit;        /* where it happened: a community path, or the county */
  lx_slice_t appeal;      /* body.appeal, n == 0 if the body names none */
  lx_slice_t category;    /* appeal records */
  int urgent;             /* appeal records: priority urgent */
  int outcome;            /* resolution records: LX_RESOLVED, LX_EXPLAINED, LX_REFERRED */
  int satisfied;          /* feedback records */
  lx_slice_t esc_kind;    /* escalation records: "escalated", "overdue", "reminder" */
  int esc_from, esc_to;   /* escalation records: tiers */
  int64_t esc_deadline;   /* escalation records */
  int64_t esc_next;       /* escalation records: -1 for nil */
  const uint8_t *ev;      /* the stored event, MessagePack */
  size_t ev_len;
  lx_slice_t actor;       /* the envelope's actor (kept here, at the end, so a
                           * plugin need not unpack `ev` for it per record) */
  int64_t at;             /* the envelope's `at`: the client's clock, ms */
} lx_rec_t;

/* An appeal's state as the core keeps it. */
typedef struct lx_appeal_view {
  int status;             /* LX_OPEN … LX_CLOSED */
  int tier;               /* the tier that must act now */
  int resolved_tier;      /* where it was last resolved, 0 if never */
  int urgent;
  int64_t opened;         /* rat of the appeal record */
  int64_t deadline;       /* -1 if none */
  int64_t first_response; /* rat of the first visit naming it, -1 if none */
  char unit[100];         /* its community path, NUL-terminated */
  char category[65];
} lx_appeal_view_t;

/* The shape of a plugin's config value (conf_items). */
enum { LX_CONF_ABSENT = 0, LX_CONF_SCALAR, LX_CONF_LIST, LX_CONF_MAP };

/* One entry of a list or map setting, e.g. `servers: [a, b]` or
 * `weights: {response: 0.3}`. Entries are single values, as written. */
typedef struct lx_conf_item {
  const char *key;   /* the map key; NULL in a list */
  const char *value; /* the value as written, NUL-terminated */
  int line;          /* its line in the config file */
} lx_conf_item_t;

/* log_scan's callback: non-zero stops the scan (and is returned). */
typedef int (*lx_rec_cb)(void *arg, const lx_rec_t *rec);
/* log_read's callback: a record and its chain hash (32 bytes), both valid
 * during the call only; non-zero stops the read (and is returned). */
typedef int (*lx_log_cb)(void *arg, const lx_rec_t *rec, const uint8_t *hash);

/* Wire error codes a plugin's query may answer (PROTOCOL.md). */
enum { LX_QE_DENIED = -9, LX_QE_BADREQ = -12, LX_QE_NOTFOUND = -13 };

/* One request to a plugin's query op. The host has checked that it is one
 * MessagePack map (at most 64 KiB, nesting at most 4) whose `op` is one of
 * the plugin's, and that the asker's role may read assessments (a field key
 * gets E_DENIED before the plugin is called). */
typedef struct lx_query {
  const char *op;           /* one of the plugin's ops */
  const uint8_t *req;       /* the request map as received */
  size_t req_len;
  const char *jurisdiction; /* a unit path prefix the answer must stay within; "" for all */
  lx_txn_t *txn;            /* a read transaction for the whole answer */
  int64_t now;              /* the daemon's clock */
  /* The answer: on success the plugin sets reply to a MessagePack map of the
   * reply's fields besides `ok` (malloc'd; the host frees it) and returns 0;
   * on failure it returns an LX_QE_* code with `error` naming the key. */
  uint8_t *reply;
  size_t reply_len;
  char error[256];
} lx_query_t;

typedef int (*lx_scan_cb)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);

/* What the daemon offers. Every function returns 0 on success and a
 * negative value on failure unless it says otherwise. */
typedef struct lx_host_api {
  uint32_t abi;

  /* Logging, prefixed with the plugin's name. */
  void (*log)(lx_host_t *h, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
  /* The daemon's clock (ms since the epoch, UTC); tests may run it fast. */
  int64_t (*now)(lx_host_t *h);

  /* Config: the keys of the plugin's entry other than `name` and `path`.
   * conf_str returns a single value (NULL if absent) and marks the key
   * used; after init, an unused key is reported as unknown. A list or a map
   * given where conf_str expects a single value is reported as an error.
   * conf_error reports "FILE:LINE: plugins[i].KEY: reason" and makes the
   * start fail. */
  const char *(*conf_str)(lx_host_t *h, const char *key);
  void (*conf_error)(lx_host_t *h, const char *key, const char *fmt, ...)
      __attribute__((format(printf, 3, 4)));

  /* conf_items: the entries of a list or map setting. `want` is
   * LX_CONF_LIST or LX_CONF_MAP. Returns 0 with *items (valid until close)
   * and *n set, 1 if the key is absent, or -1 after reporting a value of
   * another shape. Marks the key used. conf_item_error reports
   * "FILE:LINE: plugins[i].KEY.ITEM: reason" (KEY[j] in a list) at the
   * entry's own line. */
  int (*conf_items)(lx_host_t *h, const char *key, int want, const lx_conf_item_t **items,
                    size_t *n);
  void (*conf_item_error)(lx_host_t *h, const char *key, const lx_conf_item_t *item,
                          const char *fmt, ...) __attribute__((format(printf, 4, 5)));

  /* The configured calendar and deadlines. */
  int64_t (*deadline)(lx_host_t *h, int64_t from, int workdays);
  int64_t (*next_workday_end)(lx_host_t *h, int64_t from);
  /* Working days allowed at a tier for a category and priority. */
  int (*tier_days)(lx_host_t *h, int tier, lx_slice_t category, int urgent);

  /* Databases of the plugin's own (opened at init; names are per plugin). */
  int (*db_open)(lx_host_t *h, const char *name, lx_db_t *db);
  /* Returns 0 and points *val into the store (valid until the txn ends),
   * 1 if the key is absent, negative on error. */
  int (*get)(lx_txn_t *t, lx_db_t db, const void *key, size_t klen, const void **val,
             size_t *vlen);
  int (*put)(lx_txn_t *t, lx_db_t db, const void *key, size_t klen, const void *val,
             size_t vlen);
  /* Returns 0, or 1 if the key was absent. */
  int (*del)(lx_txn_t *t, lx_db_t db, const void *key, size_t klen);
  /* Calls cb for each entry with key >= from, in key order, until cb
   * returns non-zero (returned) or the database ends (0). */
  int (*scan)(lx_txn_t *t, lx_db_t db, const void *from, size_t flen, lx_scan_cb cb, void *arg);
  /* A read transaction for react and on_timer; end it before returning. */
  lx_txn_t *(*read_begin)(lx_host_t *h);
  void (*read_end)(lx_txn_t *t);

  /* The core's appeals. appeal returns 0, or 1 if there is no such appeal.
   * set_deadline (apply only) records the deadline the `appeal` query shows. */
  int (*appeal)(lx_txn_t *t, lx_slice_t id, lx_appeal_view_t *out);
  int (*set_deadline)(lx_txn_t *t, lx_slice_t id, int64_t deadline);
  /* The community path an appeal's unit belongs to → its township and
   * county: writes the path of the unit at `tier` above (or at) `unit`. */
  int (*unit_at_tier)(lx_host_t *h, lx_slice_t unit, int tier, char out[100]);

  /* After the commit only (react, on_timer). append queues an event of the
   * given type (an `escalation` or one of the plugin's own types) at unit,
   * with body a MessagePack map; the daemon fills v, id, at, actor and
   * commits it with the next batch. Returns 0 or a negative LX_E* code. */
  int (*append)(lx_host_t *h, const char *type, lx_slice_t unit, const uint8_t *body,
                size_t body_len);
  /* Publishes an alert about record rec (which must be in the log) on topic
   * "unit." with {seq, kind, unit, at} and the entries of `extra` (a
   * MessagePack map, or NULL). */
  int (*publish)(lx_host_t *h, const lx_rec_t *rec, const char *kind, lx_slice_t unit,
                 const uint8_t *extra, size_t extra_len);
  /* Arms the instance's one timer for `at` (ms, daemon clock); re-arming
   * replaces the previous time. */
  int (*arm)(lx_host_t *h, int64_t at);

  /* The log itself, for plugins that recompute what they publish (query):
   * calls cb for each record with since <= rat < until, in log order, until
   * cb returns non-zero (returned) or the range ends (0). Any transaction. */
  int (*log_scan)(lx_txn_t *t, int64_t since, int64_t until, lx_rec_cb cb, void *arg);

  /* The first-response deadline of an appeal received at `opened`: the one
   * clock both escalate (its `unanswered` record) and rank (`responded`)
   * count by. It is `response_days` working days after `opened` on the
   * calendar, or `urgent_response_hours` hours for an urgent appeal, both
   * read from the config's `escalate` entry (for escalate itself: its own
   * entry), defaults 1 and 2 when the entry or the key is absent. The
   * values are not checked here: escalate's init reports bad ones. */
  int64_t (*response_due)(lx_host_t *h, int64_t opened, int urgent);
  /* calendar.utc_offset in ms (local time minus UTC; +08:00 is 28800000):
   * what local dates and periods are counted in. */
  int64_t (*utc_offset_ms)(lx_host_t *h);
  /* The i-th configured unit (parents first, as in the config), with its
   * tier in *tier; NULL past the last one. Valid until close. */
  const char *(*unit_path)(lx_host_t *h, size_t i, int *tier);
  /* --- added in ABI 2 for plugins that carry the log elsewhere (jetstream) --- */

  /* From ANY thread (the only slots that may be called off the loop, with
   * wake): reads the committed records with seq >= from, at most max, in log
   * order, in a read transaction of its own, calling cb with each record and
   * its chain hash until cb returns non-zero (returned). *head (if not NULL)
   * gets the newest committed seq of that snapshot. May wait while the loop
   * grows the map; never holds the loop up for longer than the read. */
  int (*log_read)(lx_host_t *h, uint64_t from, size_t max, lx_log_cb cb, void *arg,
                  uint64_t *head);
  /* The county code of the config ("qd"), or NULL when it names more than
   * one county. */
  const char *(*county)(lx_host_t *h);
  /* How far an outside system has taken the log (a mirror's acknowledged
   * position), kept in the store under the plugin's name. progress_set (loop
   * thread) is written with the next batch of records, in its transaction,
   * so it costs no flush of its own; it is not derived from the log, so an
   * audit does not compare it. progress_get returns 0 with *seq (0 if never
   * set). */
  int (*progress_set)(lx_host_t *h, uint64_t seq);
  int (*progress_get)(lx_host_t *h, uint64_t *seq);
  /* From ANY thread: the host calls the plugin's on_timer on the loop thread
   * soon (wake-ups may be merged). */
  int (*wake)(lx_host_t *h);
} lx_host_api_t;

typedef struct lx_plugin {
  uint32_t abi;              /* LX_PLUGIN_ABI */
  const char *name;
  const char *description;
  /* Event types this plugin may append besides `escalation`; NULL-ended.
   * Clients may never publish them. Bodies are MessagePack maps whose values
   * are scalars, or lists and maps of scalars, or lists of such maps (a
   * ranking's rows). */
  const char *const *types;
  int (*init)(const lx_host_api_t *api, lx_host_t *host, void **state);
  void (*apply)(void *state, lx_txn_t *txn, const lx_rec_t *rec);
  void (*react)(void *state, const lx_rec_t *rec);
  void (*on_timer)(void *state, int64_t now);
  void (*close)(void *state);
  /* Query ops this plugin answers on the query socket (NULL-ended; NULL for
   * none), and the function that answers them. An op may not be one of the
   * daemon's own (replay, appeal, head, units, stats). */
  const char *const *ops;
  int (*query)(void *state, lx_query_t *q);
  /* For the audit (`lianxin audit`): re-checks a record of one of this
   * plugin's types against the state rebuilt from the records before it
   * (txn: the rebuild's write transaction, read only here). Returns 0 when
   * the record is what the plugin would have written, or 1 with the
   * difference in why[cap]. NULL: the plugin's records are not re-checked. */
  int (*check)(void *state, lx_txn_t *txn, const lx_rec_t *rec, char *why, size_t cap);
  /* SIGHUP with changed settings (see the top of this file); NULL when the
   * plugin cannot reload. Added to ABI 2 at its end, before 2 was released. */
  int (*reload)(void *state, void **next);
  /* Added in ABI 2: fields the plugin adds to the `stats` reply. Sets *map to
   * a MessagePack map (malloc'd; the host frees it) whose entries are
   * appended to the reply, and returns 0; NULL for none. Loop thread. */
  int (*stats)(void *state, uint8_t **map, size_t *len);
} lx_plugin_t;

#define LX_PLUGIN_ENTRY_SYMBOL "lx_plugin_entry"

#endif
