/* SPDX-License-Identifier: MIT
 *
 * plugin_txn.c: see plugin_txn.h. The host functions a plugin calls on a
 * transaction (its own databases, the core's appeals) and on the config
 * and calendar. Nothing here touches the loop, a socket or a timer, which is
 * why the mock host of the unit tests can use it unchanged.
 */
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "log.h"
#include "plugin_txn.h"

/* Every host's struct lx_host begins with its lx_plugin_env_t. */
static lx_plugin_env_t *env_of(lx_host_t *h) { return (lx_plugin_env_t *)h; }

/* Keeps the first failure of a plugin's write as a project code. LMDB marks
 * a transaction bad after a failed write, so the batch must be aborted: a
 * full map is then grown and the batch run again. */
static void note_failure(lx_txn_t *t, int code) {
  if (!t->failed)
    t->failed = code;
}

static int note_write(lx_txn_t *t, int rc) {
  if (rc && rc != MDB_NOTFOUND) {
    if (rc != MDB_MAP_FULL && !t->failed)
      lx_error("plugin", "a write of a plugin's apply failed: %s", mdb_strerror(rc));
    note_failure(t, rc == MDB_MAP_FULL ? LX_EFULL : LX_EINTERNAL);
  }
  return rc;
}

/* After a failed write LMDB refuses everything on the transaction; the
 * plugin's further calls are refused here, without a log line each. */
static bool usable(const lx_txn_t *t, bool write) { return !t->failed && (t->write || !write); }

void lx_plugin_env_init(lx_plugin_env_t *env, lx_store_t *store, const lx_config_t *cfg,
                        const lx_calendar_t *cal, const char *name, const lx_conf_kv_t *kv,
                        size_t n_kv, bool *used,
                        void (*report)(lx_host_t *h, int line, const char *key, const char *text)) {
  *env = (lx_plugin_env_t){.store = store, .cfg = cfg, .cal = cal, .name = name, .kv = kv,
                           .n_kv = n_kv, .used = used, .report = report};
  snprintf(env->sub, sizeof env->sub, "plugin:%s", name);
}

void lx_plugin_txn_init(lx_txn_t *t, lx_store_t *store, MDB_txn *txn, uint64_t seq) {
  *t = (struct lx_txn){.store = store, .txn = txn, .write = true, .seq = seq};
}

int lx_plugin_txn_result(const lx_txn_t *t) { return t->failed; }

/* --- config and calendar ----------------------------------------------------- */

static const char *const shape_nouns[] = {"nothing", "a single value", "a list", "a map"};

/* The key's entry, marked used; NULL if the entry has no such key. */
static const lx_conf_kv_t *conf_find(lx_host_t *h, const char *key) {
  lx_plugin_env_t *e = env_of(h);
  for (size_t i = 0; i < e->n_kv; i++)
    if (strcmp(e->kv[i].key, key) == 0) {
      e->used[i] = true;
      return &e->kv[i];
    }
  return NULL;
}

static void conf_report(lx_host_t *h, int line, const char *key, const char *fmt, va_list ap) {
  char text[400];
  vsnprintf(text, sizeof text, fmt, ap);
  env_of(h)->report(h, line, key, text);
}

static void h_conf_error(lx_host_t *h, const char *key, const char *fmt, ...) {
  lx_plugin_env_t *e = env_of(h);
  int line = 0;
  for (size_t i = 0; i < e->n_kv && !line; i++)
    if (strcmp(e->kv[i].key, key) == 0)
      line = e->kv[i].line;
  va_list ap;
  va_start(ap, fmt);
  conf_report(h, line, key, fmt, ap);
  va_end(ap);
}

static void h_conf_item_error(lx_host_t *h, const char *key, const lx_conf_item_t *item,
                              const char *fmt, ...) {
  char path[200];
  const lx_conf_kv_t *kv = conf_find(h, key);
  if (item->key)
    snprintf(path, sizeof path, "%s.%s", key, item->key);
  else
    snprintf(path, sizeof path, "%s[%zu]", key, kv ? (size_t)(item - kv->items) : 0);
  va_list ap;
  va_start(ap, fmt);
  conf_report(h, item->line, path, fmt, ap);
  va_end(ap);
}

static const char *h_conf_str(lx_host_t *h, const char *key) {
  const lx_conf_kv_t *kv = conf_find(h, key);
  if (kv && !kv->value) {
    h_conf_error(h, key, "expected a single value, not %s", shape_nouns[kv->shape]);
    return NULL;
  }
  return kv ? kv->value : NULL;
}

static int h_conf_items(lx_host_t *h, const char *key, int want, const lx_conf_item_t **items,
                        size_t *n) {
  const lx_conf_kv_t *kv = conf_find(h, key);
  *items = NULL;
  *n = 0;
  if (!kv)
    return 1;
  int shape = kv->value ? LX_CONF_SCALAR : kv->shape;
  if (shape != want) {
    h_conf_error(h, key, "expected %s, not %s", want == LX_CONF_MAP ? "a map like {key: value}"
                 : "a list like [a, b]", shape_nouns[shape]);
    return -1;
  }
  *items = kv->items;
  *n = kv->n_items;
  return 0;
}

static int64_t h_deadline(lx_host_t *h, int64_t from, int workdays) {
  return lx_calendar_deadline(env_of(h)->cal, from, workdays);
}

static int64_t h_next_workday_end(lx_host_t *h, int64_t from) {
  return lx_calendar_next_workday_end(env_of(h)->cal, from);
}

static int h_tier_days(lx_host_t *h, int tier, lx_slice_t category, int urgent) {
  return lx_config_tier_days(env_of(h)->cfg, tier, category.p, category.n, urgent);
}

static int h_unit_at_tier(lx_host_t *h, lx_slice_t unit, int tier, char out[100]) {
  const lx_config_t *cfg = env_of(h)->cfg;
  int i = lx_config_find_unit(cfg, unit.p, unit.n);
  while (i >= 0 && cfg->units[i].tier < tier)
    i = cfg->units[i].parent;
  if (i < 0 || cfg->units[i].tier != tier)
    return -1;
  snprintf(out, 100, "%s", cfg->units[i].path);
  return 0;
}

/* The value of `key` in the config's escalate entry, as an integer from 1
 * to max, or dflt. For escalate itself its own keys are read (a unit test
 * may give them apart from the file). Marks nothing used. */
static long escalate_int(lx_host_t *h, const char *key, long dflt, long max) {
  lx_plugin_env_t *e = env_of(h);
  const lx_conf_kv_t *kv = NULL;
  size_t n = 0;
  if (strcmp(e->name, "escalate") == 0) {
    kv = e->kv;
    n = e->n_kv;
  } else {
    for (size_t i = 0; i < e->cfg->n_plugins && !kv; i++)
      if (strcmp(e->cfg->plugins[i].name, "escalate") == 0) {
        kv = e->cfg->plugins[i].kv;
        n = e->cfg->plugins[i].n_kv;
      }
  }
  for (size_t i = 0; i < n; i++)
    if (strcmp(kv[i].key, key) == 0 && kv[i].value) {
      char *end;
      long v = strtol(kv[i].value, &end, 10);
      return *kv[i].value && !*end && v >= 1 && v <= max ? v : dflt;
    }
  return dflt;
}

static int64_t h_response_due(lx_host_t *h, int64_t opened, int urgent) {
  if (urgent)
    return opened + escalate_int(h, "urgent_response_hours", 2, 240) * 3600000LL;
  return lx_calendar_deadline(env_of(h)->cal, opened, (int)escalate_int(h, "response_days", 1, 60));
}

static int64_t h_utc_offset_ms(lx_host_t *h) {
  return (int64_t)env_of(h)->cfg->calendar.utc_offset_min * 60000;
}

static const char *h_unit_path(lx_host_t *h, size_t i, int *tier) {
  const lx_config_t *cfg = env_of(h)->cfg;
  if (i >= cfg->n_units)
    return NULL;
  *tier = cfg->units[i].tier;
  return cfg->units[i].path;
}

/* --- the plugin's own databases ------------------------------------------------ */

static int h_db_open(lx_host_t *h, const char *name, lx_db_t *db) {
  lx_plugin_env_t *e = env_of(h);
  char full[160];
  MDB_txn *txn;
  MDB_dbi dbi;
  snprintf(full, sizeof full, "p.%s.%s", e->name, name);
  int rc;
  do { /* a compacted backup has no free page for a new database: grow */
    rc = mdb_txn_begin(lx_store_env(e->store), NULL, 0, &txn);
    if (rc == 0 && (rc = mdb_dbi_open(txn, full, MDB_CREATE, &dbi)) == 0)
      rc = mdb_txn_commit(txn);
    else if (rc == 0)
      mdb_txn_abort(txn);
  } while (rc == MDB_MAP_FULL && lx_store_grow(e->store) == 0);
  if (rc) {
    lx_error(e->sub, "opening database %s: %s", full, mdb_strerror(rc));
    return -1;
  }
  *db = dbi;
  return 0;
}

static int h_get(lx_txn_t *t, lx_db_t db, const void *key, size_t klen, const void **val,
                 size_t *vlen) {
  MDB_val k = {klen, (void *)key}, v;
  if (!usable(t, false))
    return -1;
  int rc = mdb_get(t->txn, db, &k, &v);
  if (rc == MDB_NOTFOUND)
    return 1;
  if (rc)
    return -1;
  *val = v.mv_data;
  *vlen = v.mv_size;
  return 0;
}

static int h_put(lx_txn_t *t, lx_db_t db, const void *key, size_t klen, const void *val,
                 size_t vlen) {
  MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
  if (!usable(t, true))
    return -1;
  return note_write(t, mdb_put(t->txn, db, &k, &v, 0)) ? -1 : 0;
}

static int h_del(lx_txn_t *t, lx_db_t db, const void *key, size_t klen) {
  MDB_val k = {klen, (void *)key};
  if (!usable(t, true))
    return -1;
  int rc = note_write(t, mdb_del(t->txn, db, &k, NULL));
  return rc == MDB_NOTFOUND ? 1 : rc ? -1 : 0;
}

static int h_scan(lx_txn_t *t, lx_db_t db, const void *from, size_t flen, lx_scan_cb cb,
                  void *arg) {
  MDB_cursor *c;
  if (!usable(t, false) || mdb_cursor_open(t->txn, db, &c))
    return -1;
  MDB_val k = {flen, (void *)from}, v;
  int out = 0;
  int rc = mdb_cursor_get(c, &k, &v, flen ? MDB_SET_RANGE : MDB_FIRST);
  for (; rc == 0 && out == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    out = cb(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
  mdb_cursor_close(c);
  return out ? out : (rc == 0 || rc == MDB_NOTFOUND) ? 0 : -1;
}

lx_txn_t *lx_plugin_read_begin(lx_host_t *h) {
  lx_plugin_env_t *e = env_of(h);
  if (e->rtxn.txn)
    return NULL; /* one at a time */
  if (lx_store_read_begin(e->store, &e->rtxn.txn))
    return NULL;
  e->rtxn.store = e->store;
  e->rtxn.write = false;
  return &e->rtxn;
}

static void h_read_end(lx_txn_t *t) {
  if (t && t->txn) {
    lx_store_read_end(t->store, t->txn);
    t->txn = NULL;
  }
}

/* --- the core's appeals ------------------------------------------------------- */

/* The record's own appeal, held by the core until the plugins have applied
 * the record (see lx_txn_t), or NULL for any other id. */
static lx_appeal_t *held(lx_txn_t *t, lx_slice_t id) {
  return t->held && t->held_id.n == id.n && memcmp(t->held_id.p, id.p, id.n) == 0 ? t->held
                                                                                  : NULL;
}

static int h_appeal(lx_txn_t *t, lx_slice_t id, lx_appeal_view_t *out) {
  lx_appeal_t a;
  if (!usable(t, false))
    return -1;
  const lx_appeal_t *h = held(t, id);
  int rc = h ? 0 : lx_store_appeal_get(t->store, t->txn, (lx_str_t){id.p, id.n}, &a);
  if (rc == LX_ENOTFOUND)
    return 1;
  if (rc)
    return -1;
  if (h)
    a = *h;
  *out = (lx_appeal_view_t){a.status, a.tier, a.resolved_tier, a.urgent, a.opened, a.deadline,
                            a.first_response, "", ""};
  snprintf(out->unit, sizeof out->unit, "%s", a.unit);
  snprintf(out->category, sizeof out->category, "%s", a.category);
  return 0;
}

static int h_set_deadline(lx_txn_t *t, lx_slice_t id, int64_t deadline) {
  lx_appeal_t before, a;
  lx_str_t key = {id.p, id.n};
  lx_appeal_t *h = held(t, id);
  int rc = 0;
  if (!usable(t, true))
    return -1;
  if (h) {
    h->deadline = deadline; /* stored with the record's own change */
  } else {
    if (lx_store_appeal_get(t->store, t->txn, key, &before))
      return -1;
    a = before;
    a.deadline = deadline;
    /* The put moves it in the open_due index. */
    rc = lx_store_appeal_put(t->store, t->txn, key, &before, &a);
  }
  /* Noted per record too, for the appeal as it stood at a past time. */
  if (rc == 0)
    rc = lx_store_deadline_note(t->store, t->txn, key, t->seq, deadline, t->noted);
  t->noted = true;
  if (rc)
    note_failure(t, rc); /* LX_EFULL, or LX_EINTERNAL already logged by the store */
  return rc ? -1 : 0;
}

/* --- records ------------------------------------------------------------------- */

static lx_slice_t sl(lx_str_t s) { return (lx_slice_t){s.p, s.n}; }

void lx_plugin_rec_init(lx_rec_t *r, uint64_t seq, uint64_t rat, const lx_event_t *ev,
                        const uint8_t *bytes, size_t len) {
  *r = (lx_rec_t){
      .seq = seq, .rat = (int64_t)rat,
      .type = ev->type == LX_EV_PLUGIN ? LX_REC_PLUGIN : ev->type,
      .type_name = sl(ev->type_name), .unit = sl(ev->unit), .appeal = sl(ev->appeal),
      .category = sl(ev->category), .urgent = ev->urgent, .outcome = ev->outcome,
      .satisfied = ev->satisfied, .esc_kind = sl(ev->esc_kind), .esc_from = ev->esc_from,
      .esc_to = ev->esc_to, .esc_deadline = ev->esc_deadline, .esc_next = ev->esc_next,
      .ev = bytes, .ev_len = len, .actor = sl(ev->actor), .at = ev->at,
  };
}

typedef struct log_scan {
  lx_rec_cb cb;
  void *arg;
  msgpack_zone zone;
} log_scan_t;

static int log_scan_one(void *arg, const lx_record_t *rec) {
  log_scan_t *ls = arg;
  lx_event_t ev;
  lx_rec_t r;
  msgpack_zone_clear(&ls->zone);
  if (lx_event_parse_stored(rec->ev, rec->ev_len, &ls->zone, &ev))
    return 0; /* it validated when stored; the audit reports a record that no longer parses */
  lx_plugin_rec_init(&r, rec->seq, rec->rat, &ev, rec->ev, rec->ev_len);
  return ls->cb(ls->arg, &r);
}

static int h_log_scan(lx_txn_t *t, int64_t since, int64_t until, lx_rec_cb cb, void *arg) {
  if (!t || !t->txn || until <= since || until <= 0)
    return 0;
  uint64_t from = lx_store_seq_for_time(t->store, t->txn, since > 0 ? (uint64_t)since : 0, false);
  uint64_t to = lx_store_seq_for_time(t->store, t->txn, (uint64_t)until - 1, true);
  if (from == 0 || to < from)
    return 0;
  log_scan_t ls = {.cb = cb, .arg = arg};
  msgpack_zone_init(&ls.zone, 4096);
  int rc = lx_store_scan(t->store, t->txn, from, to, log_scan_one, &ls);
  msgpack_zone_destroy(&ls.zone);
  return rc;
}

/* log_read: from any thread, in a shared read transaction of its own. */
typedef struct log_read {
  lx_log_cb cb;
  void *arg;
  size_t left;
  msgpack_zone zone;
} log_read_t;

static int log_read_one(void *arg, const lx_record_t *rec) {
  log_read_t *lr = arg;
  lx_event_t ev;
  lx_rec_t r;
  if (lr->left-- == 0)
    return 1;
  msgpack_zone_clear(&lr->zone);
  if (lx_event_parse_stored(rec->ev, rec->ev_len, &lr->zone, &ev))
    memset(&ev, 0, sizeof ev); /* kept so the reader sees every seq; the audit reports it */
  lx_plugin_rec_init(&r, rec->seq, rec->rat, &ev, rec->ev, rec->ev_len);
  return lr->cb(lr->arg, &r, rec->hash);
}

static int h_log_read(lx_host_t *h, uint64_t from, size_t max, lx_log_cb cb, void *arg,
                      uint64_t *head) {
  lx_store_t *st = env_of(h)->store;
  MDB_txn *txn;
  lx_head_t hd;
  if (lx_store_read_begin_shared(st, &txn))
    return -1;
  int rc = lx_store_read_head(st, txn, &hd);
  if (rc == 0 && head)
    *head = hd.seq;
  if (rc == 0 && max && from <= hd.seq) {
    log_read_t lr = {.cb = cb, .arg = arg, .left = max};
    msgpack_zone_init(&lr.zone, 4096);
    rc = lx_store_scan(st, txn, from ? from : 1, hd.seq, log_read_one, &lr);
    msgpack_zone_destroy(&lr.zone);
    if (rc == 1 && lr.left == (size_t)-1)
      rc = 0; /* stopped at max, not by cb */
  }
  lx_store_read_end_shared(st, txn);
  return rc;
}

static const char *h_county(lx_host_t *h) {
  const lx_config_t *cfg = env_of(h)->cfg;
  const char *found = NULL;
  for (size_t i = 0; i < cfg->n_units; i++)
    if (cfg->units[i].tier == LX_TIER_COUNTY) {
      if (found)
        return NULL;
      found = cfg->units[i].path;
    }
  return found;
}

static int h_progress_get(lx_host_t *h, uint64_t *seq) {
  lx_plugin_env_t *e = env_of(h);
  MDB_txn *txn;
  if (lx_store_read_begin(e->store, &txn))
    return -1;
  int rc = lx_store_progress_get(e->store, txn, e->name, seq);
  lx_store_read_end(e->store, txn);
  return rc ? -1 : 0;
}

/* The slots served here, each by the static h_<slot> above; read_begin is
 * exported instead, for a host that wraps it. One list in the manner of
 * libuv's UV_ERRNO_MAP, so a new slot is one word here. */
#define TXN_SLOT_MAP(XX)                                                                        \
  XX(conf_str) XX(conf_items) XX(conf_error) XX(conf_item_error) XX(deadline) XX(next_workday_end) XX(tier_days) XX(unit_at_tier) XX(db_open)     \
  XX(get) XX(put) XX(del) XX(scan) XX(read_end) XX(appeal) XX(set_deadline) XX(log_scan) \
  XX(response_due) XX(utc_offset_ms) XX(unit_path) XX(log_read) XX(county) XX(progress_get)

void lx_plugin_txn_fill(lx_host_api_t *api) {
#define XX(slot) api->slot = h_##slot;
  TXN_SLOT_MAP(XX)
#undef XX
  api->read_begin = lx_plugin_read_begin;
}
