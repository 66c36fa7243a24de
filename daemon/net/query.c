/* SPDX-License-Identifier: MIT
 *
 * query.c: the query socket (PROTOCOL.md "Query socket"): replay, appeal,
 * head, units, stats, the gateway's appeals (census.c computes the
 * gateway's figures), and the ops plugins answer (rank, quota, …).
 *
 * Each request is answered at once from its own LMDB read transaction, so
 * it sees one consistent snapshot and never waits for a writer. A replay
 * reply is bounded three ways (limit, REPLY_BYTES_MAX, SCAN_MAX records
 * looked at) so no request can hold the loop for long; `next` always says
 * where to go on.
 */
#include <stdlib.h>
#include <string.h>

#include "appeal.h"
#include "auth.h"
#include "census.h"
#include "clock.h"
#include "daemon.h"
#include "log.h"
#include "plugin_host.h"

#define REQUESTS_PER_WAKEUP 64
#define REPLAY_LIMIT_DEFAULT 1000
#define REPLAY_LIMIT_MAX 10000
#define REPLY_BYTES_MAX (16u * 1024 * 1024)
#define SCAN_MAX 200000
#define QUERY_MAX_DEPTH 4

typedef struct req {
  lx_daemon_t *d;
  const lx_client_t *client; /* with keys: who asks; NULL without keys */
  MDB_txn *txn;
  msgpack_packer pk;
  msgpack_sbuffer *out;
  msgpack_zone *zone;
  lx_error_t err;
} req_t;

/* The keys each op takes; everything else is E_BADREQ. */
typedef struct op_keys {
  const char *op;
  const char *keys[12];
} op_keys_t;

static const op_keys_t op_table[] = {
    {"replay", {"op", "from", "limit", "to", "since", "until", "unit", "types", "appeal", NULL}},
    {"appeal", {"op", "appeal", "at", NULL}},
    {"head", {"op", NULL}},
    {"units", {"op", "counts", NULL}},
    {"stats", {"op", NULL}},
    {"appeals", {"op", "appeal", "unit", "category", "status", "since", "until", "after", "limit", NULL}},
};

static int check_keys(const op_keys_t *ok, const msgpack_object *m, lx_error_t *e) {
  for (uint32_t i = 0; i < m->via.map.size; i++) {
    const msgpack_object *k = &m->via.map.ptr[i].key;
    if (k->type != MSGPACK_OBJECT_STR)
      return lx_fail(e, LX_EBADREQ, "map keys must be strings");
    bool known = false;
    for (int j = 0; ok->keys[j] && !known; j++)
      known = lx_mp_str_eq(k, ok->keys[j]);
    for (uint32_t j = 0; j < i && known; j++)
      if (k->via.str.size == m->via.map.ptr[j].key.via.str.size &&
          (k->via.str.size == 0 ||
           memcmp(k->via.str.ptr, m->via.map.ptr[j].key.via.str.ptr, k->via.str.size) == 0))
        return lx_fail(e, LX_EDECODE, "repeated key \"%.*s\"", (int)k->via.str.size,
                       k->via.str.ptr);
    if (!known)
      return lx_fail(e, LX_EBADREQ, "%.*s: unknown key for op \"%s\"",
                     (int)(k->via.str.size > 64 ? 64 : k->via.str.size), k->via.str.ptr, ok->op);
  }
  return 0;
}

/* Reads an optional unsigned integer; returns 1 if present, 0 if absent,
 * or E_BADREQ naming the key. */
static int opt_uint(const msgpack_object *m, const char *key, uint64_t *out, lx_error_t *e) {
  const msgpack_object *o = lx_mp_get(m, key);
  if (!o)
    return 0;
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return lx_fail(e, LX_EBADREQ, "%s: expected a non-negative integer", key);
  *out = o->via.u64;
  return 1;
}

static int opt_str(const msgpack_object *m, const char *key, lx_str_t *out, lx_error_t *e) {
  const msgpack_object *o = lx_mp_get(m, key);
  if (!o)
    return 0;
  if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size > LX_STR_MAX)
    return lx_fail(e, LX_EBADREQ, "%s: expected a string of 1 to %d bytes", key, LX_STR_MAX);
  *out = (lx_str_t){o->via.str.ptr, o->via.str.size};
  return 1;
}

/* --- replay -------------------------------------------------------------- */

typedef struct replay {
  req_t *r;
  uint64_t hi;           /* last seq to look at */
  uint64_t limit, sent, scanned, last;
  lx_str_t unit, appeal;
  uint64_t since, until;
  bool has_since, has_until;
  unsigned types;        /* bit per enum lx_ev_type; 0 = all */
  lx_str_t ptypes[8];    /* plugin type names asked for (bit LX_EV_PLUGIN) */
  int n_ptypes;
  bool stopped;          /* a bound was hit before hi */
  msgpack_sbuffer *out;  /* the reply: records are written straight into it */
} replay_t;

static bool unit_matches(lx_str_t prefix, lx_str_t unit) {
  if (unit.n < prefix.n || memcmp(unit.p, prefix.p, prefix.n) != 0)
    return false;
  return unit.n == prefix.n || unit.p[prefix.n] == '.';
}

static bool record_matches(replay_t *rp, const lx_record_t *rec) {
  if ((rp->has_since && rec->rat < rp->since) || (rp->has_until && rec->rat > rp->until))
    return false;
  if (!rp->unit.n && !rp->types)
    return true;
  lx_event_t ev;
  msgpack_zone_clear(rp->r->zone);
  if (lx_event_parse_stored(rec->ev, rec->ev_len, rp->r->zone, &ev))
    return false;
  if (rp->types && !(rp->types & (1u << ev.type)))
    return false;
  if (ev.type == LX_EV_PLUGIN && rp->types) {
    bool named = false;
    for (int i = 0; i < rp->n_ptypes && !named; i++)
      named = rp->ptypes[i].n == ev.type_name.n &&
              memcmp(rp->ptypes[i].p, ev.type_name.p, ev.type_name.n) == 0;
    if (!named)
      return false;
  }
  return !rp->unit.n || unit_matches(rp->unit, ev.unit);
}

static uint8_t *put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
  return p + n;
}

/* Writes {"seq", "rat", "hash", "ev"} in two writes: replay is the hot
 * read path (a million records a second is the target), so the fixed part
 * is laid out by hand, with 64-bit integer forms (valid MessagePack,
 * decoded like any other). */
static void put_record(msgpack_sbuffer *out, const lx_record_t *rec) {
  uint8_t h[96], *p = h;
  *p++ = 0x84;
  memcpy(p, "\xa3seq\xcf", 5), p = put_be(p + 5, rec->seq, 8);
  memcpy(p, "\xa3rat\xcf", 5), p = put_be(p + 5, rec->rat, 8);
  memcpy(p, "\xa4hash\xc4\x20", 7), p += 7;
  memcpy(p, rec->hash, LX_HASH_LEN), p += LX_HASH_LEN;
  memcpy(p, "\xa2" "ev", 3), p += 3;
  if (rec->ev_len < 256)
    *p++ = 0xc4, *p++ = (uint8_t)rec->ev_len;
  else if (rec->ev_len < 65536)
    *p++ = 0xc5, p = put_be(p, rec->ev_len, 2);
  else
    *p++ = 0xc6, p = put_be(p, rec->ev_len, 4);
  msgpack_sbuffer_write(out, (const char *)h, (size_t)(p - h));
  msgpack_sbuffer_write(out, (const char *)rec->ev, rec->ev_len);
}

static int replay_one(void *arg, const lx_record_t *rec) {
  replay_t *rp = arg;
  if (rec->seq > rp->hi)
    return 1;
  if (rp->sent >= rp->limit || rp->scanned >= SCAN_MAX || rp->out->size >= REPLY_BYTES_MAX) {
    rp->stopped = true;
    return 1;
  }
  rp->scanned++;
  rp->last = rec->seq;
  if (!record_matches(rp, rec))
    return 0;
  put_record(rp->out, rec);
  rp->sent++;
  return 0;
}

static int replay_appeal_seq(void *arg, uint64_t seq) {
  replay_t *rp = arg;
  lx_record_t rec;
  if (seq > rp->hi)
    return 1;
  int rc = lx_store_get(rp->r->d->store, rp->r->txn, seq, &rec);
  return rc ? rc : replay_one(arg, &rec);
}

/* Reads `types`: the protocol's type names and those the plugins declared. */
static int parse_types(lx_daemon_t *d, const msgpack_object *m, replay_t *rp, lx_error_t *e) {
  const msgpack_object *o = lx_mp_get(m, "types");
  if (!o)
    return 0;
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return lx_fail(e, LX_EBADREQ, "types: expected a list of type names");
  for (uint32_t i = 0; i < o->via.array.size; i++) {
    const msgpack_object *t = &o->via.array.ptr[i];
    if (t->type != MSGPACK_OBJECT_STR)
      return lx_fail(e, LX_EBADREQ, "types[%u]: expected a type name", i);
    int ty = lx_ev_type_parse(t->via.str.ptr, t->via.str.size);
    if (!ty && lx_plugins_has_type(d, t->via.str.ptr, t->via.str.size) &&
        rp->n_ptypes < (int)(sizeof rp->ptypes / sizeof rp->ptypes[0])) {
      ty = LX_EV_PLUGIN;
      rp->ptypes[rp->n_ptypes++] = (lx_str_t){t->via.str.ptr, t->via.str.size};
    }
    if (!ty)
      return lx_fail(e, LX_EBADREQ, "types[%u]: not an event type name", i);
    rp->types |= 1u << ty;
  }
  return 0;
}

static int parse_replay(const msgpack_object *m, replay_t *rp, uint64_t *from, uint64_t *to,
                        bool *has_to, lx_error_t *e) {
  int rc;
  *from = 1;
  rp->limit = REPLAY_LIMIT_DEFAULT;
  if ((rc = opt_uint(m, "from", from, e)) < 0 || (rc = opt_uint(m, "limit", &rp->limit, e)) < 0 ||
      (rc = opt_uint(m, "to", to, e)) < 0)
    return rc;
  *has_to = rc == 1;
  if ((rc = opt_uint(m, "since", &rp->since, e)) < 0)
    return rc;
  rp->has_since = rc == 1;
  if ((rc = opt_uint(m, "until", &rp->until, e)) < 0)
    return rc;
  rp->has_until = rc == 1;
  if (opt_str(m, "unit", &rp->unit, e) < 0 || opt_str(m, "appeal", &rp->appeal, e) < 0 ||
      parse_types(rp->r->d, m, rp, e) < 0)
    return e->code;
  /* "qd.hx." (a topic) names the same prefix as "qd.hx". */
  if (rp->unit.n > 1 && rp->unit.p[rp->unit.n - 1] == '.')
    rp->unit.n--;
  if (rp->limit == 0)
    return lx_fail(e, LX_EBADREQ, "limit: must be at least 1");
  if (rp->limit > REPLAY_LIMIT_MAX)
    rp->limit = REPLAY_LIMIT_MAX;
  if (*from == 0)
    *from = 1;
  return 0;
}

/* Supervisors and field keys see only their jurisdiction; auditors and
 * admins see everything. */
static bool confined(const req_t *r) {
  return r->client && r->client->role != LX_ROLE_AUDITOR && r->client->role != LX_ROLE_ADMIN;
}

/* A confined replay's unit filter is forced inside the jurisdiction: a
 * filter inside it stays, a wider one (or none) becomes the jurisdiction,
 * one elsewhere is refused. */
static int confine_unit(req_t *r, lx_str_t *unit) {
  const lx_client_t *c = r->client;
  if (!confined(r) || (unit->n && lx_within(c->jur, c->jur_len, unit->p, unit->n)))
    return 0;
  if (unit->n && !lx_within(unit->p, unit->n, c->jur, c->jur_len))
    return lx_fail(&r->err, LX_EDENIED, "unit: \"%.*s\" is outside the jurisdiction of key \"%s\" (%s)",
                   (int)(unit->n > 100 ? 100 : unit->n), unit->p, c->name, c->jur);
  *unit = (lx_str_t){c->jur, c->jur_len};
  return 0;
}

static int do_replay(req_t *r, const msgpack_object *m) {
  replay_t rp = {.r = r};
  uint64_t from, to = 0;
  bool has_to;
  if (parse_replay(m, &rp, &from, &to, &has_to, &r->err) || confine_unit(r, &rp.unit))
    return r->err.code;
  lx_store_t *s = r->d->store;
  lx_head_t h;
  if (lx_store_read_head(s, r->txn, &h))
    return lx_fail(&r->err, LX_EINTERNAL, "reading the head failed");
  uint64_t snap = h.seq; /* this snapshot's head */
  uint64_t end = has_to ? to : snap;       /* what the client asked for */
  rp.hi = end < snap ? end : snap;
  bool cut = false;                        /* nothing after hi can ever match */
  uint64_t lo = from;
  if (rp.has_since && snap) {
    uint64_t first = lx_store_seq_for_time(s, r->txn, rp.since, false);
    if (first == 0)
      lo = snap + 1; /* all records are older than since */
    else if (first > lo)
      lo = first;
  }
  if (rp.has_until && snap) {
    uint64_t last = lx_store_seq_for_time(s, r->txn, rp.until, true);
    if (last < snap) { /* later records all have rat > until */
      cut = true;
      if (last < rp.hi)
        rp.hi = last;
    }
  }
  /* {"ok", "records": [...], "next", "head"}: the records' count is known
   * at the end, so the array takes the 32-bit count form, filled in then. */
  msgpack_pack_map(&r->pk, 4);
  lx_mp_pack_cstr(&r->pk, "ok");
  msgpack_pack_true(&r->pk);
  lx_mp_pack_cstr(&r->pk, "records");
  size_t count_at = r->out->size;
  msgpack_sbuffer_write(r->out, "\xdd\0\0\0\0", 5);
  rp.out = r->out;
  int rc = 0;
  if (lo <= rp.hi)
    rc = rp.appeal.n ? lx_store_appeal_scan(s, r->txn, rp.appeal, lo, replay_appeal_seq, &rp)
                     : lx_store_scan(s, r->txn, lo, rp.hi, replay_one, &rp);
  if (rc < 0)
    return lx_fail(&r->err, LX_EINTERNAL, "reading the log failed");
  put_be((uint8_t *)r->out->data + count_at + 1, rp.sent, 4);
  uint64_t next;
  if (lo > rp.hi)
    next = cut ? (end > snap ? end : snap) + 1 : (lo > rp.hi + 1 ? lo : rp.hi + 1);
  else if (rp.stopped)
    next = rp.last + 1;
  else
    next = cut ? (end > snap ? end : snap) + 1 : rp.hi + 1;
  lx_mp_pack_cstr(&r->pk, "next");
  msgpack_pack_uint64(&r->pk, next);
  lx_mp_pack_cstr(&r->pk, "head");
  msgpack_pack_uint64(&r->pk, snap);
  return 0;
}

/* --- appeal ---------------------------------------------------------------- */

typedef struct rebuild {
  req_t *r;
  lx_str_t id;
  uint64_t at;
  bool has_at, exists;
  lx_appeal_t a;
  uint64_t seqs[4096]; /* the history shown; longer ones are cut, see below */
  size_t n;
  size_t total;
} rebuild_t;

/* Rebuilds the appeal as it stood at `at`, from its own history, with the
 * same state machine the live path uses. */
static int rebuild_one(void *arg, uint64_t seq) {
  rebuild_t *rb = arg;
  lx_record_t rec;
  int rc = lx_store_get(rb->r->d->store, rb->r->txn, seq, &rec);
  if (rc)
    return rc;
  if (rb->has_at) {
    if (rec.rat > rb->at)
      return 1; /* history is in seq order, and so in rat order */
    lx_event_t ev;
    lx_error_t e;
    msgpack_zone_clear(rb->r->zone);
    int64_t deadline;
    if (lx_event_parse_stored(rec.ev, rec.ev_len, rb->r->zone, &ev) == 0 &&
        lx_appeal_apply(&rb->a, rb->exists, &ev, seq, (int64_t)rec.rat, &e) == 0) {
      rb->exists = true;
      /* What a plugin set while this record was applied comes after the
       * state machine, as it did then. */
      if (lx_store_deadline_of(rb->r->d->store, rb->r->txn, rb->id, seq, &deadline) == 0)
        rb->a.deadline = deadline;
    }
  }
  if (rb->n < sizeof rb->seqs / sizeof rb->seqs[0])
    rb->seqs[rb->n++] = seq;
  rb->total++;
  return 0;
}

static void pack_appeal(msgpack_packer *pk, lx_str_t id, const lx_appeal_t *a,
                        const rebuild_t *rb) {
  msgpack_pack_map(pk, 9);
  lx_mp_pack_cstr(pk, "appeal");
  lx_mp_pack_str(pk, id.p, id.n);
  lx_mp_pack_cstr(pk, "unit");
  lx_mp_pack_cstr(pk, a->unit);
  lx_mp_pack_cstr(pk, "status");
  lx_mp_pack_cstr(pk, lx_status_name(a->status));
  lx_mp_pack_cstr(pk, "tier");
  lx_mp_pack_cstr(pk, lx_tier_name(a->tier));
  lx_mp_pack_cstr(pk, "deadline");
  a->deadline < 0 ? msgpack_pack_nil(pk) : msgpack_pack_int64(pk, a->deadline);
  lx_mp_pack_cstr(pk, "opened");
  msgpack_pack_int64(pk, a->opened);
  lx_mp_pack_cstr(pk, "category");
  lx_mp_pack_cstr(pk, a->category);
  lx_mp_pack_cstr(pk, "priority");
  lx_mp_pack_cstr(pk, a->urgent ? "urgent" : "normal");
  lx_mp_pack_cstr(pk, "events");
  msgpack_pack_array(pk, rb->n);
  for (size_t i = 0; i < rb->n; i++)
    msgpack_pack_uint64(pk, rb->seqs[i]);
}

static int do_appeal(req_t *r, const msgpack_object *m) {
  rebuild_t *rb = calloc(1, sizeof *rb);
  int rc;
  if (!rb)
    return lx_fail(&r->err, LX_EINTERNAL, "out of memory");
  rb->r = r;
  if ((rc = opt_str(m, "appeal", &rb->id, &r->err)) <= 0 ||
      (rc = opt_uint(m, "at", &rb->at, &r->err)) < 0) {
    if (rc == 0)
      rc = lx_fail(&r->err, LX_EBADREQ, "appeal: required");
    goto out;
  }
  rb->has_at = rc == 1;
  if (!rb->has_at) {
    rc = lx_store_appeal_get(r->d->store, r->txn, rb->id, &rb->a);
    rb->exists = rc == 0;
    if (rc && rc != LX_ENOTFOUND)
      goto fail;
  }
  /* The history gives the list of records, and with `at` the state too. */
  if (lx_store_appeal_scan(r->d->store, r->txn, rb->id, 1, rebuild_one, rb) < 0)
    goto fail;
  if (rb->exists && confined(r) &&
      !lx_within(r->client->jur, r->client->jur_len, rb->a.unit, strlen(rb->a.unit))) {
    rc = lx_fail(&r->err, LX_EDENIED, "appeal: \"%.*s\" is outside the jurisdiction of key \"%s\" (%s)",
                 (int)rb->id.n, rb->id.p, r->client->name, r->client->jur);
    goto out;
  }
  if (!rb->exists) {
    rc = lx_fail(&r->err, LX_ENOTFOUND, "appeal: no appeal \"%.*s\"%s", (int)rb->id.n, rb->id.p,
                 rb->has_at ? " at that time" : "");
    goto out;
  }
  msgpack_pack_map(&r->pk, 2);
  lx_mp_pack_cstr(&r->pk, "ok");
  msgpack_pack_true(&r->pk);
  lx_mp_pack_cstr(&r->pk, "appeal");
  pack_appeal(&r->pk, rb->id, &rb->a, rb);
  rc = 0;
  goto out;
fail:
  rc = lx_fail(&r->err, LX_EINTERNAL, "reading the appeal failed");
out:
  free(rb);
  return rc;
}

/* --- head, units, stats --------------------------------------------------- */

static int do_head(req_t *r, const msgpack_object *m) {
  lx_head_t h;
  if (lx_store_read_head(r->d->store, r->txn, &h))
    return lx_fail(&r->err, LX_EINTERNAL, "reading the head failed");
  msgpack_pack_map(&r->pk, 4);
  lx_mp_pack_cstr(&r->pk, "ok");
  msgpack_pack_true(&r->pk);
  lx_mp_pack_cstr(&r->pk, "seq");
  msgpack_pack_uint64(&r->pk, h.seq);
  lx_mp_pack_cstr(&r->pk, "hash");
  msgpack_pack_bin_with_body(&r->pk, h.hash, LX_HASH_LEN);
  lx_mp_pack_cstr(&r->pk, "checkpoint");
  h.checkpoint ? msgpack_pack_uint64(&r->pk, h.checkpoint) : msgpack_pack_nil(&r->pk);
  return 0;
}

/* `counts: true` (for the gateway) adds open, due_soon and overdue to each
 * unit row. */
static int units_counts(req_t *r, const msgpack_object *m, uint64_t now,
                        uint32_t (**counts)[3]) {
  const msgpack_object *o = lx_mp_get(m, "counts");
  *counts = NULL;
  if (!o)
    return 0;
  if (o->type != MSGPACK_OBJECT_BOOLEAN)
    return lx_fail(&r->err, LX_EBADREQ, "counts: expected true or false");
  if (!o->via.boolean)
    return 0;
  *counts = calloc(r->d->cfg.n_units ? r->d->cfg.n_units : 1, sizeof **counts);
  if (!*counts)
    return lx_fail(&r->err, LX_EINTERNAL, "out of memory");
  if (lx_census_unit_counts(r->d, r->txn, (int64_t)now, *counts) < 0) {
    free(*counts);
    return lx_fail(&r->err, LX_EINTERNAL, "reading the appeals failed");
  }
  return 0;
}

static void pack_unit_counts(msgpack_packer *pk, const uint32_t c[3]) {
  static const char *const names[3] = {"open", "due_soon", "overdue"};
  for (int k = 0; k < 3; k++) {
    lx_mp_pack_cstr(pk, names[k]);
    msgpack_pack_uint32(pk, c[k]);
  }
}

static int do_units(req_t *r, const msgpack_object *m) {
  const lx_config_t *cfg = &r->d->cfg;
  msgpack_packer *pk = &r->pk;
  uint32_t(*counts)[3];
  uint64_t now = lx_clock_now_ms(); /* one reading: the counts and `now` agree */
  if (units_counts(r, m, now, &counts))
    return r->err.code;
  msgpack_pack_map(pk, 5);
  lx_mp_pack_cstr(pk, "ok");
  msgpack_pack_true(pk);
  /* An addition to the protocol: the daemon's clock, which the counts are
   * taken against and by which the gateway places "the last 90 days". */
  lx_mp_pack_cstr(pk, "now");
  msgpack_pack_uint64(pk, now);
  lx_mp_pack_cstr(pk, "units");
  msgpack_pack_array(pk, cfg->n_units);
  for (size_t i = 0; i < cfg->n_units; i++) {
    msgpack_pack_map(pk, counts ? 6 : 3);
    lx_mp_pack_cstr(pk, "path");
    lx_mp_pack_cstr(pk, cfg->units[i].path);
    lx_mp_pack_cstr(pk, "name");
    lx_mp_pack_cstr(pk, cfg->units[i].name);
    lx_mp_pack_cstr(pk, "tier");
    lx_mp_pack_cstr(pk, lx_tier_name(cfg->units[i].tier));
    if (counts)
      pack_unit_counts(pk, counts[i]);
  }
  free(counts);
  lx_mp_pack_cstr(pk, "categories");
  msgpack_pack_array(pk, cfg->n_categories);
  for (size_t i = 0; i < cfg->n_categories; i++)
    lx_mp_pack_cstr(pk, cfg->categories[i].code);
  /* An addition to the protocol: the names a person reads, by code. */
  lx_mp_pack_cstr(pk, "category_names");
  msgpack_pack_map(pk, cfg->n_categories);
  for (size_t i = 0; i < cfg->n_categories; i++) {
    lx_mp_pack_cstr(pk, cfg->categories[i].code);
    lx_mp_pack_cstr(pk, cfg->categories[i].name);
  }
  return 0;
}

static void pack_counter(msgpack_packer *pk, const char *name, uint64_t v) {
  lx_mp_pack_cstr(pk, name);
  msgpack_pack_uint64(pk, v);
}

static int do_stats(req_t *r, const msgpack_object *m) {
  const lx_counters_t *c = lx_store_counters(r->d->store);
  const lx_stats_t *st = &r->d->stats;
  msgpack_packer *pk = &r->pk;
  msgpack_sbuffer extra;
  msgpack_sbuffer_init(&extra);
  size_t n_extra = lx_plugins_stats(r->d, &extra); /* e.g. the mirror's lag */
  msgpack_pack_map(pk, 13 + LX_CENSUS_STATS_ENTRIES + n_extra);
  lx_mp_pack_cstr(pk, "ok");
  msgpack_pack_true(pk);
  pack_counter(pk, "events", lx_store_head(r->d->store)->seq);
  pack_counter(pk, "appeals", c->appeals);
  pack_counter(pk, "appeals_open", c->appeals_open);
  pack_counter(pk, "escalations", c->escalations);
  pack_counter(pk, "uptime_ms", lx_clock_now_ms() - r->d->started_ms);
  pack_counter(pk, "accepted", st->accepted);
  pack_counter(pk, "duplicates", st->duplicates);
  pack_counter(pk, "rejected", st->rejected);
  pack_counter(pk, "batches", st->batches);
  pack_counter(pk, "replies_lost", st->replies_lost);
  pack_counter(pk, "queries", st->queries);
  MDB_envinfo info;
  mdb_env_info(lx_store_env(r->d->store), &info);
  pack_counter(pk, "map_size", info.me_mapsize);
  lx_census_pack_stats(r->d, pk);
  msgpack_sbuffer_write(pk->data, extra.data, extra.size);
  msgpack_sbuffer_destroy(&extra);
  return 0;
}

/* --- appeals (for the gateway: pages of appeal states) ----------------------- */

static int appeals_statuses(req_t *r, const msgpack_object *m, unsigned *bits) {
  const msgpack_object *o = lx_mp_get(m, "status");
  if (!o)
    return 0;
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return lx_fail(&r->err, LX_EBADREQ, "status: expected a list of statuses");
  for (uint32_t i = 0; i < o->via.array.size; i++) {
    const msgpack_object *t = &o->via.array.ptr[i];
    int st = 0;
    for (int k = LX_ST_OPEN; k <= LX_ST_CLOSED && !st; k++)
      st = lx_mp_str_eq(t, lx_status_name(k)) ? k : 0;
    if (!st)
      return lx_fail(&r->err, LX_EBADREQ, "status[%u]: not an appeal status", i);
    *bits |= 1u << st;
  }
  return 0;
}

static int do_appeals(req_t *r, const msgpack_object *m) {
  lx_census_filter_t f = {.limit = LX_CENSUS_APPEALS_LIMIT_DEFAULT};
  int rc;
  if (opt_str(m, "unit", &f.unit, &r->err) < 0 || opt_str(m, "category", &f.category, &r->err) < 0 ||
      opt_str(m, "after", &f.after, &r->err) < 0 || opt_str(m, "appeal", &f.only, &r->err) < 0 ||
      opt_uint(m, "limit", &f.limit, &r->err) < 0 ||
      appeals_statuses(r, m, &f.statuses) < 0)
    return r->err.code;
  if ((rc = opt_uint(m, "since", &f.since, &r->err)) < 0)
    return rc;
  f.has_since = rc == 1;
  if ((rc = opt_uint(m, "until", &f.until, &r->err)) < 0)
    return rc;
  f.has_until = rc == 1;
  if (f.unit.n > 1 && f.unit.p[f.unit.n - 1] == '.')
    f.unit.n--;
  if (f.limit == 0)
    return lx_fail(&r->err, LX_EBADREQ, "limit: must be at least 1");
  if (f.limit > LX_CENSUS_APPEALS_LIMIT_MAX)
    f.limit = LX_CENSUS_APPEALS_LIMIT_MAX;
  if (confine_unit(r, &f.unit))
    return r->err.code;
  if (lx_census_appeals(r->d, r->txn, &f, r->out, r->zone))
    return lx_fail(&r->err, LX_EINTERNAL, "reading the appeals failed");
  return 0;
}

/* --- dispatch ---------------------------------------------------------------- */

typedef int (*op_fn)(req_t *r, const msgpack_object *m);
static const op_fn op_fns[] = {do_replay, do_appeal, do_head, do_units, do_stats, do_appeals};

/* What each role may ask (PROTOCOL.md's roles): everyone reads `units`;
 * field keys also their own appeals; supervisors also replay (confined),
 * head and stats; auditors and admins everything. */
static bool role_may(const req_t *r, const char *op) {
  if (!r->client || r->client->role != LX_ROLE_FIELD)
    return true;
  return strcmp(op, "units") == 0 || strcmp(op, "appeal") == 0;
}

/* An op a plugin declared (lx/plugin.h `ops`), answered by the plugin from
 * a read transaction of the host's. Field keys may not read assessments. */
static int plugin_op(req_t *r, const msgpack_object *op, const uint8_t *buf, size_t len) {
  char name[33];
  if (op->type != MSGPACK_OBJECT_STR || op->via.str.size >= sizeof name)
    return lx_fail(&r->err, LX_EBADREQ, "op: unknown operation");
  memcpy(name, op->via.str.ptr, op->via.str.size);
  name[op->via.str.size] = 0;
  if (!lx_plugins_has_op(r->d, name))
    return lx_fail(&r->err, LX_EBADREQ, "op: unknown operation");
  if (r->client && r->client->role == LX_ROLE_FIELD)
    return lx_fail(&r->err, LX_EDENIED, "op: key \"%s\" (role %s) may not use \"%s\"",
                   r->client->name, lx_role_name(r->client->role), name);
  if (lx_store_read_begin(r->d->store, &r->txn))
    return lx_fail(&r->err, LX_EINTERNAL, "cannot read the store");
  int rc = lx_plugins_query(r->d, name, buf, len, confined(r) ? r->client->jur : "", r->txn,
                            r->out, &r->err);
  lx_store_read_end(r->d->store, r->txn);
  return rc;
}

static int dispatch(req_t *r, const uint8_t *buf, size_t len) {
  msgpack_object root;
  size_t off = 0;
  if (len > LX_MSG_MAX)
    return lx_fail(&r->err, LX_ETOOBIG, "request is %zu bytes; the limit is %d", len, LX_MSG_MAX);
  if (lx_mp_check(buf, len, QUERY_MAX_DEPTH, &r->err))
    return r->err.code;
  if (msgpack_unpack((const char *)buf, len, &off, r->zone, &root) != MSGPACK_UNPACK_SUCCESS ||
      root.type != MSGPACK_OBJECT_MAP)
    return lx_fail(&r->err, LX_EDECODE, "expected one MessagePack map");
  const msgpack_object *op = lx_mp_get(&root, "op");
  if (!op)
    return lx_fail(&r->err, LX_EBADREQ, "op: required");
  for (size_t i = 0; i < sizeof op_table / sizeof op_table[0]; i++) {
    if (!lx_mp_str_eq(op, op_table[i].op))
      continue;
    if (check_keys(&op_table[i], &root, &r->err))
      return r->err.code;
    if (lx_store_read_begin(r->d->store, &r->txn))
      return lx_fail(&r->err, LX_EINTERNAL, "cannot read the store");
    if (!role_may(r, op_table[i].op)) {
      lx_store_read_end(r->d->store, r->txn);
      return lx_fail(&r->err, LX_EDENIED, "op: key \"%s\" (role %s) may not use \"%s\"",
                     r->client->name, lx_role_name(r->client->role), op_table[i].op);
    }
    int rc = op_fns[i](r, &root);
    lx_store_read_end(r->d->store, r->txn);
    return rc;
  }
  return plugin_op(r, op, buf, len);
}

static void pack_error(msgpack_packer *pk, const lx_error_t *e) {
  msgpack_pack_map(pk, 3);
  lx_mp_pack_cstr(pk, "ok");
  msgpack_pack_false(pk);
  lx_mp_pack_cstr(pk, "code");
  lx_mp_pack_cstr(pk, lx_strerror(e->code));
  lx_mp_pack_cstr(pk, "error");
  lx_mp_pack_cstr(pk, e->msg);
}

int lx_query_answer(lx_daemon_t *d, const lx_client_t *client, const uint8_t *buf, size_t len,
                    msgpack_sbuffer *out, msgpack_zone *zone) {
  req_t r = {.d = d, .client = client, .out = out, .zone = zone};
  msgpack_packer_init(&r.pk, out, msgpack_sbuffer_write);
  int rc = d->secure && !client
               ? lx_fail(&r.err, LX_EDENIED, "the key that sent this is no longer registered")
           : buf ? dispatch(&r, buf, len)
                 : lx_fail(&r.err, LX_EDECODE, "a request is exactly one frame");
  if (rc) {
    msgpack_sbuffer_clear(out);
    pack_error(&r.pk, &r.err);
  }
  d->stats.queries++;
  return rc;
}

static void on_query(lx_zsock_t *zs) {
  lx_daemon_t *d = zs->data;
  msgpack_sbuffer *out = &d->query_out;
  for (int i = 0; i < REQUESTS_PER_WAKEUP; i++) {
    lx_peer_t peer;
    zmq_msg_t frame;
    bool shape_ok;
    int got = lx_router_recv(d->query_sock, &peer, &frame, &shape_ok);
    if (got <= 0) {
      zmq_msg_close(&frame);
      break;
    }
    lx_query_answer(d, lx_auth_client(d, &frame), shape_ok ? zmq_msg_data(&frame) : NULL,
                    zmq_msg_size(&frame), out, &d->query_zone);
    if (lx_router_send(d->query_sock, &peer, out->data, out->size))
      d->stats.replies_lost++;
    zmq_msg_close(&frame);
    msgpack_sbuffer_clear(out);
    msgpack_zone_clear(&d->query_zone);
  }
  lx_zsock_rearm(zs);
}

int lx_query_start(lx_daemon_t *d) {
  lx_census_start(d);
  /* One reply buffer for the daemon's life: a replay page of megabytes is
   * not grown from nothing for every request. */
  msgpack_sbuffer_init(&d->query_out);
  msgpack_zone_init(&d->query_zone, 4096);
  d->query_ready = true;
  return lx_zsock_init(d->loop, &d->query_z, d->query_sock, on_query, d);
}

void lx_query_stop(lx_daemon_t *d) {
  lx_zsock_close(&d->query_z);
  lx_census_stop(d);
  if (d->query_ready) {
    msgpack_sbuffer_destroy(&d->query_out);
    msgpack_zone_destroy(&d->query_zone);
    d->query_ready = false;
  }
}
