/* SPDX-License-Identifier: MIT
 *
 * mock_host.c: see mock_host.h. The store, config and calendar functions of
 * the host table are daemon/plugins/plugin_txn.c's, and the records are applied as
 * in daemon/plugins/plugin_host.c (same record view, same write transaction), so a
 * plugin that passes here meets the store as lianxind gives it; the loop,
 * the sockets and the clock are what the test replaces.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "apply.h"
#include "calendar.h"
#include "mock_host.h"
#include "plugin_txn.h"

_Static_assert(offsetof(struct lx_host, env) == 0, "plugin_txn.c finds the env at the host");

#define ROUNDS_MAX 1000     /* plugin appends answered by more appends: a runaway */
#define FIRES_MAX 100000    /* timer firings in one mh_advance */

/* --- where things are ------------------------------------------------------ */

static char *sample_config(void) {
  const char *src = getenv("LX_SOURCE_DIR");
  char *p = NULL;
  if (src) {
    assert_true(asprintf(&p, "%s/config/lianxin.yaml", src) > 0);
  } else { /* run by hand: find the repo from this file's path */
    const char *me = __FILE__, *cut = strstr(me, "tests/unit/mock_host.c");
    assert_non_null(cut);
    assert_true(asprintf(&p, "%.*sconfig/lianxin.yaml", (int)(cut - me), me) > 0);
  }
  return p;
}

/* --- reading MessagePack maps back ------------------------------------------ */

static void copy_str(char *out, size_t cap, const msgpack_object *v, const char *key) {
  if (v->type != MSGPACK_OBJECT_STR)
    fail_msg("%s: expected a string", key);
  if (v->via.str.size >= cap)
    fail_msg("%s: %u bytes is too long", key, v->via.str.size);
  memcpy(out, v->via.str.ptr, v->via.str.size);
  out[v->via.str.size] = 0;
}

static int64_t int_or_nil(const msgpack_object *v, const char *key) {
  if (v->type == MSGPACK_OBJECT_NIL)
    return -1;
  if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    return (int64_t)v->via.u64;
  if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return v->via.i64;
  fail_msg("%s: expected an integer or nil", key);
  return 0;
}

static void read_fields(const msgpack_object *m, mh_fields_t *f) {
  *f = (mh_fields_t){.deadline = MH_ABSENT, .next = MH_ABSENT, .due = MH_ABSENT};
  if (!m)
    return;
  assert_int_equal(m->type, MSGPACK_OBJECT_MAP);
  f->n = (int)m->via.map.size;
  for (uint32_t i = 0; i < m->via.map.size; i++) {
    const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
    assert_int_equal(k->type, MSGPACK_OBJECT_STR);
    char key[32];
    copy_str(key, sizeof key, k, "a key");
    if (!strcmp(key, "appeal"))
      copy_str(f->appeal, sizeof f->appeal, v, key);
    else if (!strcmp(key, "kind"))
      copy_str(f->kind, sizeof f->kind, v, key);
    else if (!strcmp(key, "tier"))
      copy_str(f->tier, sizeof f->tier, v, key);
    else if (!strcmp(key, "from"))
      copy_str(f->from, sizeof f->from, v, key);
    else if (!strcmp(key, "to"))
      copy_str(f->to, sizeof f->to, v, key);
    else if (!strcmp(key, "deadline"))
      f->deadline = int_or_nil(v, key);
    else if (!strcmp(key, "next"))
      f->next = int_or_nil(v, key);
    else if (!strcmp(key, "due"))
      f->due = int_or_nil(v, key);
  }
}

/* Reads the map in buf; with `member`, the map under that key of it. */
static void read_map(const uint8_t *buf, size_t len, const char *member, mh_fields_t *f) {
  msgpack_zone z;
  msgpack_object o;
  size_t off = 0;
  msgpack_zone_init(&z, 1024);
  assert_int_equal(msgpack_unpack((const char *)buf, len, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(off, len);
  read_fields(member ? lx_mp_get(&o, member) : &o, f);
  if (member && !lx_mp_get(&o, member))
    fail_msg("the map has no %s", member);
  msgpack_zone_destroy(&z);
}

/* --- host functions ----------------------------------------------------------- */

static void h_log(lx_host_t *h, int level, const char *fmt, ...) {
  char text[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (level <= LX_PLOG_WARN)
    h->log_errors++;
  if (level <= LX_PLOG_WARN || getenv("MH_VERBOSE"))
    fprintf(stderr, "[plugin:%s %d] %s\n", h->plugin->name, level, text);
}

static int64_t h_now(lx_host_t *h) {
  if (h->in_apply)
    fail_msg("apply read the clock (lx/plugin.h: apply is deterministic)");
  return h->now;
}

static void h_report(lx_host_t *h, int line, const char *key, const char *text) {
  h->conf_errors++;
  size_t n = strlen(h->conf_error_keys);
  snprintf(h->conf_error_keys + n, sizeof h->conf_error_keys - n, "%s ", key);
  if (getenv("MH_VERBOSE"))
    fprintf(stderr, "[conf_error] line %d: %s: %s\n", line, key, text);
}

/* The daemon's read_begin, with the contract's check around it. */
static lx_txn_t *h_read_begin(lx_host_t *h) {
  if (h->in_apply)
    fail_msg("apply began a read transaction (it has its own)");
  lx_txn_t *t = lx_plugin_read_begin(h);
  if (t)
    h->reads++;
  return t;
}

static int h_append(lx_host_t *h, const char *type, lx_slice_t unit, const uint8_t *body,
                    size_t body_len) {
  if (h->in_apply)
    fail_msg("apply appended a %s (lx/plugin.h: only react and on_timer may)", type);
  if (h->nq == sizeof h->queue / sizeof h->queue[0])
    fail_msg("more than %zu appends before a commit", h->nq);
  mh_queued_t *q = &h->queue[h->nq++];
  snprintf(q->type, sizeof q->type, "%s", type);
  snprintf(q->unit, sizeof q->unit, "%.*s", (int)unit.n, unit.p);
  q->body = malloc(body_len ? body_len : 1);
  assert_non_null(q->body);
  memcpy(q->body, body, body_len);
  q->len = body_len;
  return 0;
}

static int h_publish(lx_host_t *h, const lx_rec_t *rec, const char *kind, lx_slice_t unit,
                     const uint8_t *extra, size_t extra_len) {
  if (h->in_apply)
    fail_msg("apply published an alert (lx/plugin.h: only react and on_timer may)");
  if (rec->seq == 0 || rec->seq > lx_store_head(h->d.store)->seq)
    fail_msg("alert %s about seq %llu, which is not committed", kind,
             (unsigned long long)rec->seq);
  if (h->n_alerts == MH_MAX)
    fail_msg("more than %d alerts", MH_MAX);
  mh_alert_t *a = &h->alerts[h->n_alerts++];
  a->seq = rec->seq;
  a->at = rec->rat;
  snprintf(a->kind, sizeof a->kind, "%s", kind);
  snprintf(a->unit, sizeof a->unit, "%.*s", (int)unit.n, unit.p);
  if (extra)
    read_map(extra, extra_len, NULL, &a->extra);
  else
    read_fields(NULL, &a->extra);
  return 0;
}

static int h_arm(lx_host_t *h, int64_t at) {
  if (h->in_apply)
    fail_msg("apply armed the timer (lx/plugin.h: only react and on_timer may)");
  h->armed = at;
  return 0;
}

/* The table the plugin is given: the mock's clock, log, config errors,
 * timer, append and publish; the daemon's store, config and calendar slots
 * (plugin_txn.c), with read_begin wrapped in the contract's check. */
static void api_init(mh_t *h) {
  h->api = (lx_host_api_t){.abi = LX_PLUGIN_ABI, .log = h_log, .now = h_now,
                           .append = h_append,
                           .publish = h_publish, .arm = h_arm};
  lx_plugin_txn_fill(&h->api);
  h->api.read_begin = h_read_begin;
}

/* --- records: the daemon's path, one batch at a time ----------------------------- */

typedef struct item {
  msgpack_sbuffer frame; /* as a client (or the daemon, for a plugin) sends it */
  msgpack_sbuffer norm;  /* as it is stored */
  lx_event_t ev;
  uint64_t seq;
} item_t;

static bool plugin_type(void *arg, const char *name, size_t len) {
  mh_t *h = (mh_t *)((char *)arg - offsetof(mh_t, d));
  for (const char *const *t = h->plugin->types; t && *t; t++)
    if (strlen(*t) == len && memcmp(*t, name, len) == 0)
      return true;
  return false;
}

static void encode(msgpack_sbuffer *sb, const char *id, const char *type, int64_t at,
                   const char *unit, const char *actor, const uint8_t *body, size_t len) {
  msgpack_packer pk;
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 7);
  lx_mp_pack_cstr(&pk, "v");
  msgpack_pack_uint8(&pk, LX_PROTO_VERSION);
  lx_mp_pack_cstr(&pk, "id");
  lx_mp_pack_cstr(&pk, id);
  lx_mp_pack_cstr(&pk, "type");
  lx_mp_pack_cstr(&pk, type);
  lx_mp_pack_cstr(&pk, "at");
  msgpack_pack_int64(&pk, at);
  lx_mp_pack_cstr(&pk, "unit");
  lx_mp_pack_cstr(&pk, unit);
  lx_mp_pack_cstr(&pk, "actor");
  lx_mp_pack_cstr(&pk, actor);
  lx_mp_pack_cstr(&pk, "body");
  msgpack_sbuffer_write(sb, (const char *)body, len);
}

/* The record as lianxind hands it to plugins (the daemon's own builder). */
static lx_rec_t rec_from(const item_t *it, int64_t rat) {
  lx_rec_t r;
  lx_plugin_rec_init(&r, it->seq, (uint64_t)rat, &it->ev, (const uint8_t *)it->norm.data,
                     it->norm.size);
  return r;
}

static void keep_record(mh_t *h, const item_t *it, int64_t rat) {
  if (h->n_recs == MH_MAX)
    fail_msg("more than %d plugin records", MH_MAX);
  mh_rec_t *r = &h->recs[h->n_recs++];
  r->seq = it->seq;
  r->rat = rat;
  snprintf(r->type, sizeof r->type, "%.*s", (int)it->ev.type_name.n, it->ev.type_name.p);
  snprintf(r->actor, sizeof r->actor, "%.*s", (int)it->ev.actor.n, it->ev.actor.p);
  snprintf(r->unit, sizeof r->unit, "%.*s", (int)it->ev.unit.n, it->ev.unit.p);
  read_map((const uint8_t *)it->norm.data, it->norm.size, "body", &r->body);
  msgpack_zone z;
  msgpack_object o;
  size_t off = 0;
  msgpack_zone_init(&z, 1024);
  assert_int_equal(msgpack_unpack(it->norm.data, it->norm.size, &off, &z, &o), MSGPACK_UNPACK_SUCCESS);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_object(&pk, *lx_mp_get(&o, "body"));
  /* Larger bodies (a ranking's rows) are not kept: tests read those from the store. */
  r->raw_len = sb.size <= sizeof r->raw ? sb.size : 0;
  memcpy(r->raw, sb.data, r->raw_len);
  msgpack_sbuffer_destroy(&sb);
  msgpack_zone_destroy(&z);
}

/* The group commit of ingest.c for n decoded items: one write transaction
 * in which each record is applied (core, then the plugin), one commit, then
 * react for each in log order. */
static void commit_batch(mh_t *h, item_t *items, size_t n, bool internal) {
  int64_t rat = (int64_t)lx_store_next_rat(h->d.store, (uint64_t)h->now);
  MDB_txn *txn;
  assert_int_equal(lx_store_begin(h->d.store, &txn), 0);
  for (size_t i = 0; i < n; i++) {
    item_t *it = &items[i];
    lx_apply_t a = {.ev = &it->ev, .bytes = (const uint8_t *)it->norm.data, .len = it->norm.size,
                    .content = (const uint8_t *)it->norm.data, .content_len = it->norm.size,
                    .rat = (uint64_t)rat};
    assert_int_equal(lx_apply_record(&h->d, txn, &a), 0);
    if (a.err.code)
      fail_msg("%s refused: %s %s", internal ? "a plugin's event" : "an event",
               lx_strerror(a.err.code), a.err.msg);
    assert_false(a.dup);
    it->seq = a.seq;
    lx_txn_t t;
    lx_plugin_txn_init(&t, h->d.store, txn, it->seq);
    lx_rec_t r = rec_from(it, rat);
    h->in_apply = true;
    if (h->plugin->apply)
      h->plugin->apply(h->state, &t, &r);
    h->in_apply = false;
    /* lx_plugins_apply's answer; the daemon would abort the batch. */
    int rc = lx_plugin_txn_result(&t);
    if (rc)
      fail_msg("a write of the plugin's apply failed: %s", lx_strerror(rc));
  }
  assert_int_equal(lx_store_commit(h->d.store, txn), 0);
  for (size_t i = 0; i < n; i++) {
    if (internal)
      keep_record(h, &items[i], rat);
    lx_rec_t r = rec_from(&items[i], rat);
    if (h->plugin->react)
      h->plugin->react(h->state, &r);
    if (h->env.rtxn.txn)
      fail_msg("react returned with its read transaction open");
  }
}

static void decode_item(mh_t *h, item_t *it, msgpack_zone *zone, bool internal) {
  lx_schema_ctx_t ctx;
  lx_error_t err = {0};
  lx_daemon_schema_ctx(&h->d, &ctx);
  if (internal) {
    ctx.allow_daemon_types = true;
    ctx.plugin_type = plugin_type;
  }
  msgpack_sbuffer_init(&it->norm);
  if (lx_event_decode((const uint8_t *)it->frame.data, it->frame.size, &ctx, zone, &it->ev,
                      &it->norm, &err))
    fail_msg("%s does not validate: %s %s", internal ? "a plugin's event" : "an event",
             lx_strerror(err.code), err.msg);
}

static void free_items(item_t *items, size_t n) {
  for (size_t i = 0; i < n; i++) {
    msgpack_sbuffer_destroy(&items[i].frame);
    msgpack_sbuffer_destroy(&items[i].norm);
  }
}

/* lx_ingest_flush_queue: commits what the plugin appended, and what that
 * makes it append in turn. */
static void flush(mh_t *h) {
  item_t *items = calloc(MH_QUEUE, sizeof *items);
  assert_non_null(items);
  for (int round = 0; h->nq; round++) {
    if (round == ROUNDS_MAX)
      fail_msg("the plugin keeps appending");
    size_t n = h->nq;
    int64_t rat = (int64_t)lx_store_next_rat(h->d.store, (uint64_t)h->now);
    msgpack_zone zone;
    msgpack_zone_init(&zone, 4096);
    for (size_t i = 0; i < n; i++) {
      char id[40];
      snprintf(id, sizeof id, "lx-%032llx", (unsigned long long)++h->next_id);
      encode(&items[i].frame, id, h->queue[i].type, rat, h->queue[i].unit, h->plugin->name,
             h->queue[i].body, h->queue[i].len);
      free(h->queue[i].body);
      decode_item(h, &items[i], &zone, true);
    }
    h->nq = 0;
    if (h->refuse > 0 && h->refuse_after-- <= 0) {
      /* ingest.c on E_FULL: nothing stored, the timer armed a second later */
      h->refuse--;
      h->armed = h->now + 1000;
    } else {
      commit_batch(h, items, n, true);
      h->max_batch = n > h->max_batch ? n : h->max_batch;
      if (h->n_batches < sizeof h->batches / sizeof *h->batches)
        h->batches[h->n_batches++] = n;
    }
    free_items(items, n);
    msgpack_zone_destroy(&zone);
  }
  free(items);
}

static void fire(mh_t *h) {
  h->fires++;
  if (h->slow_turns > 0) {
    h->slow_turns--;
    usleep((useconds_t)h->turn_ms * 1000);
  }
  if (h->plugin->on_timer)
    h->plugin->on_timer(h->state, h->now);
  if (h->env.rtxn.txn)
    fail_msg("on_timer returned with its read transaction open");
  flush(h);
}

uint64_t mh_submit(mh_t *h, const char *type, const char *unit, const uint8_t *body,
                   size_t len) {
  return mh_submit_as(h, type, unit, "cadre-07", h->now, body, len);
}

uint64_t mh_submit_as(mh_t *h, const char *type, const char *unit, const char *actor, int64_t at,
                      const uint8_t *body, size_t len) {
  item_t it;
  char id[40];
  msgpack_zone zone;
  msgpack_zone_init(&zone, 4096);
  snprintf(id, sizeof id, "test-event-%012llu", (unsigned long long)++h->next_id);
  encode(&it.frame, id, type, at, unit, actor, body, len);
  decode_item(h, &it, &zone, false);
  commit_batch(h, &it, 1, false);
  free_items(&it, 1);
  msgpack_zone_destroy(&zone);
  flush(h);
  return it.seq;
}

uint64_t mh_submit_daemon(mh_t *h, const char *type, const char *unit, const uint8_t *body,
                          size_t len) {
  item_t it;
  char id[40];
  msgpack_zone zone;
  msgpack_zone_init(&zone, 4096);
  snprintf(id, sizeof id, "lx-%032llx", (unsigned long long)++h->next_id);
  encode(&it.frame, id, type, h->now, unit, "escalate", body, len);
  decode_item(h, &it, &zone, true);
  commit_batch(h, &it, 1, true);
  free_items(&it, 1);
  msgpack_zone_destroy(&zone);
  flush(h);
  return it.seq;
}

/* --- bodies a field app sends ----------------------------------------------------- */

typedef struct body {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} body_t;

static void body_begin(body_t *b, uint32_t n) {
  msgpack_sbuffer_init(&b->sb);
  msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
  msgpack_pack_map(&b->pk, n);
}

static void kv(body_t *b, const char *k, const char *v) {
  lx_mp_pack_cstr(&b->pk, k);
  lx_mp_pack_cstr(&b->pk, v);
}

static uint64_t body_submit(mh_t *h, body_t *b, const char *type, const char *unit) {
  uint64_t seq = mh_submit(h, type, unit, (const uint8_t *)b->sb.data, b->sb.size);
  msgpack_sbuffer_destroy(&b->sb);
  return seq;
}

uint64_t mh_appeal(mh_t *h, const char *id, const char *unit, const char *category, bool urgent) {
  body_t b;
  body_begin(&b, 5);
  kv(&b, "appeal", id);
  kv(&b, "household", "hh-0042");
  kv(&b, "category", category);
  kv(&b, "priority", urgent ? "urgent" : "normal");
  kv(&b, "summary", "test appeal");
  return body_submit(h, &b, "appeal", unit);
}

uint64_t mh_visit(mh_t *h, const char *appeal, const char *unit) {
  body_t b;
  body_begin(&b, 3);
  kv(&b, "household", "hh-0042");
  kv(&b, "mode", "roving");
  kv(&b, "appeal", appeal);
  return body_submit(h, &b, "visit", unit);
}

uint64_t mh_visit_as(mh_t *h, const char *actor, const char *unit, int64_t at) {
  body_t b;
  body_begin(&b, 2);
  kv(&b, "household", "hh-0042");
  kv(&b, "mode", "periodic");
  uint64_t seq = mh_submit_as(h, "visit", unit, actor, at, (const uint8_t *)b.sb.data, b.sb.size);
  msgpack_sbuffer_destroy(&b.sb);
  return seq;
}

uint64_t mh_resolution(mh_t *h, const char *appeal, const char *unit, const char *outcome) {
  body_t b;
  body_begin(&b, 3);
  kv(&b, "appeal", appeal);
  kv(&b, "outcome", outcome);
  kv(&b, "note", "test resolution");
  return body_submit(h, &b, "resolution", unit);
}

uint64_t mh_feedback(mh_t *h, const char *appeal, const char *unit, bool satisfied) {
  body_t b;
  body_begin(&b, 2);
  kv(&b, "appeal", appeal);
  lx_mp_pack_cstr(&b.pk, "satisfied");
  satisfied ? msgpack_pack_true(&b.pk) : msgpack_pack_false(&b.pk);
  return body_submit(h, &b, "feedback", unit);
}

/* n appeals of one category at one unit, received now in one batch, as a
 * pipelining client's burst reaches the daemon: apply for all, one commit,
 * then react for each (which so sees the state after the whole batch). */
void mh_appeal_batch(mh_t *h, const char *prefix, int n, const char *unit, const char *category) {
  item_t *items = calloc((size_t)n, sizeof *items);
  msgpack_zone zone;
  assert_non_null(items);
  msgpack_zone_init(&zone, 65536);
  for (int i = 0; i < n; i++) {
    body_t b;
    char id[40], appeal[64];
    snprintf(id, sizeof id, "test-event-%012llu", (unsigned long long)++h->next_id);
    snprintf(appeal, sizeof appeal, "%s-%d", prefix, i);
    body_begin(&b, 4);
    kv(&b, "appeal", appeal);
    kv(&b, "household", "hh-0042");
    kv(&b, "category", category);
    kv(&b, "summary", "test appeal");
    encode(&items[i].frame, id, "appeal", h->now, unit, "cadre-07", (const uint8_t *)b.sb.data,
           b.sb.size);
    msgpack_sbuffer_destroy(&b.sb);
    decode_item(h, &items[i], &zone, false);
  }
  commit_batch(h, items, (size_t)n, false);
  free_items(items, (size_t)n);
  free(items);
  msgpack_zone_destroy(&zone);
  flush(h);
}

/* --- the clock ------------------------------------------------------------------- */

void mh_advance(mh_t *h, int64_t to) {
  assert_true(to >= h->now);
  for (int fires = 0; h->armed >= 0 && h->armed <= to; fires++) {
    if (fires == FIRES_MAX)
      fail_msg("the timer keeps firing (armed for %lld)", (long long)h->armed);
    /* A time already past fires at once, as uv_timer_start with delay 0. */
    if (h->armed > h->now)
      h->now = h->armed;
    h->armed = -1;
    fire(h);
  }
  h->now = to;
}

int mh_query(mh_t *h, const char *op, const uint8_t *req, size_t len, const char *jurisdiction,
             lx_query_t *q) {
  MDB_txn *txn;
  assert_non_null(h->plugin->query);
  assert_int_equal(lx_store_read_begin(h->d.store, &txn), 0);
  lx_txn_t t = {.store = h->d.store, .txn = txn};
  *q = (lx_query_t){.req = req, .req_len = len, .jurisdiction = jurisdiction, .txn = &t,
                    .now = h->now};
  q->op = op;
  int rc = h->plugin->query(h->state, q);
  lx_store_read_end(h->d.store, txn);
  q->txn = NULL;
  return rc;
}

static int count_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
  (*(int *)arg)++;
  return 0;
}

int mh_db_count(mh_t *h, const char *name) {
  lx_db_t db;
  int n = 0;
  assert_int_equal(h->api.db_open(h, name, &db), 0);
  lx_txn_t *t = h->api.read_begin(h);
  assert_int_equal(h->api.scan(t, db, NULL, 0, count_one, &n), 0);
  h->api.read_end(t);
  return n;
}

lx_appeal_t mh_appeal_state(mh_t *h, const char *id) {
  MDB_txn *txn;
  lx_appeal_t a;
  assert_int_equal(lx_store_read_begin(h->d.store, &txn), 0);
  assert_int_equal(lx_store_appeal_get(h->d.store, txn, (lx_str_t){id, strlen(id)}, &a), 0);
  lx_store_read_end(h->d.store, txn);
  return a;
}

/* --- life cycle ------------------------------------------------------------------- */

static void open_store(mh_t *h) {
  char err[256];
  if (lx_store_open(&h->d.store, h->dir, 16u << 20, 1u << 30, err, sizeof err))
    fail_msg("store: %s", err);
}

/* uv_dlopen, the fixed symbol, the ABI check: load_one in plugin_host.c. */
static void load(mh_t *h) {
  void *sym = NULL;
  if (uv_dlopen(h->so_path, &h->lib))
    fail_msg("cannot load %s: %s", h->so_path, uv_dlerror(&h->lib));
  h->lib_open = true;
  if (uv_dlsym(&h->lib, LX_PLUGIN_ENTRY_SYMBOL, &sym) || !sym)
    fail_msg("%s exports no %s", h->so_path, LX_PLUGIN_ENTRY_SYMBOL);
  h->plugin = sym;
  assert_int_equal(h->plugin->abi, LX_PLUGIN_ABI);
  lx_plugin_env_init(&h->env, h->d.store, &h->d.cfg, h->cal, h->plugin->name, h->kv, h->n_kv,
                     h->used, h_report);
}

static void unload(mh_t *h) {
  if (h->inited && h->plugin->close)
    h->plugin->close(h->state);
  h->inited = false;
  h->state = NULL;
  if (h->lib_open)
    uv_dlclose(&h->lib);
  h->lib_open = false;
  h->plugin = NULL;
  lx_store_free(&h->d.store);
}

mh_t *mh_new(const char *so_path, const char *plugin, const lx_conf_kv_t *kv, size_t n_kv,
             int64_t now) {
  mh_t *h = calloc(1, sizeof *h);
  char *file = sample_config(), *err = NULL;
  assert_non_null(h);
  h->so_path = so_path;
  h->now = now;
  h->armed = -1;
  if (lx_config_load(file, &h->d.cfg, &err))
    fail_msg("%s", err);
  free(file);
  assert_int_equal(lx_calendar_new(&h->d.cfg, &h->cal), 0);
  h->kv = kv;
  h->n_kv = n_kv;
  for (size_t i = 0; !kv && i < h->d.cfg.n_plugins; i++)
    if (strcmp(h->d.cfg.plugins[i].name, plugin) == 0) {
      h->kv = h->d.cfg.plugins[i].kv;
      h->n_kv = h->d.cfg.plugins[i].n_kv;
    }
  if (!h->kv)
    fail_msg("config/lianxin.yaml has no plugin %s", plugin);
  assert_true(h->n_kv <= sizeof h->used / sizeof h->used[0]);
  snprintf(h->dir, sizeof h->dir, "/tmp/lx-test-plugin-XXXXXX");
  assert_non_null(mkdtemp(h->dir));
  open_store(h);
  load(h);
  return h;
}

void mh_api(mh_t *h) {
  memset(h->used, 0, sizeof h->used);
  api_init(h);
}

int mh_init(mh_t *h) {
  mh_api(h);
  int rc = h->plugin->init(&h->api, h, &h->state);
  h->inited = rc == 0;
  return rc;
}

void mh_start(mh_t *h) {
  fire(h);
  mh_advance(h, h->now); /* what it armed for a time already past fires at once */
}

void mh_restart(mh_t *h, int64_t now) {
  assert_int_equal(h->nq, 0);
  assert_true(now >= h->now);
  unload(h);
  h->armed = -1;
  h->now = now;
  open_store(h);
  load(h);
  assert_int_equal(mh_init(h), 0);
  mh_start(h);
}

void mh_free(mh_t **hp) {
  mh_t *h = *hp;
  char cmd[100];
  if (!h)
    return;
  unload(h);
  for (size_t i = 0; i < h->nq; i++)
    free(h->queue[i].body);
  lx_calendar_free(&h->cal);
  lx_config_free(&h->d.cfg);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", h->dir);
  free(h);
  *hp = NULL;
}
