/* SPDX-License-Identifier: MIT
 *
 * rank_q.c: a period's figures, from the plugin's facts or from the log,
 * and the `rank` query op (PROTOCOL.md "Assessment").
 *
 * Design: a period's cohort is the appeals filed in it, and every record
 * that can change their figures as of the period's end lies between its
 * start and its end. So a scan of the log over the period alone rebuilds
 * the facts of the whole cohort (in a hash table, with the same
 * rk_fact_apply that apply uses). That scan is what makes the answer
 * independent of when the plugin was loaded; for a period that began after
 * the plugin's first record the facts database holds the same facts, and
 * one range of its keys is read instead, which is much faster.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rank_plugin.h"

/* --- from the facts ------------------------------------------------------------- */

typedef struct range {
  rk_calc_t *c;
  int64_t end;
} range_t;

static int add_fact(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
  range_t *rg = arg;
  const uint8_t *k = key;
  int64_t opened = 0;
  for (int i = 0; i < 8 && klen >= 8; i++)
    opened = (opened << 8) | k[i];
  if (klen < 8 || opened >= rg->end)
    return 1;
  rk_calc_add(rg->c, val, vlen);
  return 0;
}

/* --- from the log ---------------------------------------------------------------- */

typedef struct slot {
  char id[64];
  size_t n; /* 0: empty */
  rk_fact_t f;
} slot_t;

typedef struct scan {
  rk_t *r;
  slot_t *slots;
  size_t cap, used;
  int64_t start;
  int failed;
} scan_t;

static uint64_t hash(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
  return h;
}

static slot_t *find(scan_t *s, lx_slice_t id, bool make);

static int grow(scan_t *s) {
  slot_t *old = s->slots;
  size_t cap = s->cap;
  s->cap = cap ? cap * 2 : 1024;
  s->used = 0;
  if (!(s->slots = calloc(s->cap, sizeof *s->slots))) {
    s->slots = old;
    s->cap = cap;
    return -1;
  }
  for (size_t i = 0; i < cap; i++)
    if (old[i].n) {
      slot_t *to = find(s, (lx_slice_t){old[i].id, old[i].n}, true);
      to->f = old[i].f;
    }
  free(old);
  return 0;
}

static slot_t *find(scan_t *s, lx_slice_t id, bool make) {
  if (make && (s->used + 1) * 2 > s->cap && grow(s))
    return NULL;
  if (!s->cap || id.n > sizeof s->slots->id)
    return NULL;
  for (size_t i = hash(id.p, id.n) & (s->cap - 1);; i = (i + 1) & (s->cap - 1)) {
    slot_t *sl = &s->slots[i];
    if (sl->n == id.n && memcmp(sl->id, id.p, id.n) == 0)
      return sl;
    if (sl->n == 0) {
      if (!make)
        return NULL;
      memcpy(sl->id, id.p, id.n);
      sl->n = id.n;
      s->used++;
      return sl;
    }
  }
}

static int scan_one(void *arg, const lx_rec_t *rec) {
  scan_t *s = arg;
  if (rec->appeal.n == 0 || rec->rat < s->start)
    return 0;
  if (rec->type == LX_REC_APPEAL) {
    slot_t *sl = find(s, rec->appeal, true);
    int64_t due = s->r->api->response_due(s->r->host, rec->rat, rec->urgent);
    if (!sl || rk_fact_new(&sl->f, rec, due))
      return s->failed = -1;
    return 0;
  }
  slot_t *sl = find(s, rec->appeal, false);
  if (sl && sl->f.buf && rk_fact_apply(&sl->f, rec) < 0)
    return s->failed = -1;
  return 0;
}

static int from_log(rk_t *r, lx_txn_t *t, int64_t start, int64_t end, rk_calc_t *c) {
  scan_t s = {.r = r, .start = start};
  int rc = grow(&s);
  if (rc == 0)
    rc = r->api->log_scan(t, start, end, scan_one, &s) ? -1 : s.failed;
  for (size_t i = 0; i < s.cap; i++)
    if (s.slots[i].n) {
      if (rc == 0 && s.slots[i].f.buf)
        rk_calc_add(c, s.slots[i].f.buf, rk_fact_size(&s.slots[i].f));
      rk_fact_free(&s.slots[i].f);
    }
  free(s.slots);
  return rc;
}

int rk_compute(rk_t *r, lx_txn_t *t, const rk_period_t *p, rk_calc_t *c) {
  int64_t start = rk_period_start(p, r->off), end = rk_period_end(p, r->off);
  int64_t since = rk_since(r, t);
  if (rk_calc_init(c, r->units, r->w, end))
    return -1;
  int rc;
  if (since >= 0 && start > since) {
    uint8_t from[8];
    range_t rg = {c, end};
    rk_fact_key(from, start, (lx_slice_t){"", 0});
    rc = r->api->scan(t, r->facts, from, 8, add_fact, &rg) < 0 ? -1 : 0;
  } else {
    rc = from_log(r, t, start, end, c);
  }
  if (rc) {
    r->api->log(r->host, LX_PLOG_ERROR, "cannot compute the ranking of the period from %lld",
                (long long)start);
    rk_calc_free(c);
    return -1;
  }
  rk_calc_finish(c);
  return 0;
}

/* --- the rank op ------------------------------------------------------------------ */

typedef struct req {
  rk_period_t period;
  bool has_period;
  int ti; /* 0 community, 1 township, -1 missing */
} req_t;

static int bad(lx_query_t *q, const char *fmt, const char *arg) {
  snprintf(q->error, sizeof q->error, fmt, arg);
  return LX_QE_BADREQ;
}

static int parse_req(lx_query_t *q, req_t *rq) {
  msgpack_zone z;
  msgpack_object o;
  size_t off = 0;
  int rc = 0;
  *rq = (req_t){.ti = -1};
  msgpack_zone_init(&z, 1024);
  if (msgpack_unpack((const char *)q->req, q->req_len, &off, &z, &o) != MSGPACK_UNPACK_SUCCESS ||
      o.type != MSGPACK_OBJECT_MAP)
    rc = bad(q, "%sexpected one MessagePack map", "");
  for (uint32_t i = 0; rc == 0 && i < o.via.map.size; i++) {
    const msgpack_object *k = &o.via.map.ptr[i].key, *v = &o.via.map.ptr[i].val;
    char name[40] = "?";
    if (k->type == MSGPACK_OBJECT_STR)
      snprintf(name, sizeof name, "%.*s", (int)(k->via.str.size < 32 ? k->via.str.size : 32),
               k->via.str.ptr);
    bool str = v->type == MSGPACK_OBJECT_STR;
    if (!strcmp(name, "op")) {
      continue;
    } else if (!strcmp(name, "period")) {
      rq->has_period = true;
      if (!str || rk_period_parse(v->via.str.ptr, v->via.str.size, &rq->period))
        rc = bad(q, "period: expected a month like 2026-11, a quarter like 2026-Q4 or a year "
                    "like 2026%s", "");
    } else if (!strcmp(name, "tier")) {
      if (str && v->via.str.size == 9 && !memcmp(v->via.str.ptr, "community", 9))
        rq->ti = 0;
      else if (str && v->via.str.size == 8 && !memcmp(v->via.str.ptr, "township", 8))
        rq->ti = 1;
      else
        rc = bad(q, "tier: expected community or township%s", "");
    } else {
      rc = bad(q, "%s: unknown key (rank takes period and tier)", name);
    }
  }
  if (rc == 0 && rq->ti < 0)
    rc = bad(q, "tier: required (community or township)%s", "");
  msgpack_zone_destroy(&z);
  return rc;
}

int rk_query(void *state, lx_query_t *q) {
  rk_t *r = state;
  req_t rq;
  rk_calc_t c;
  char name[16];
  int rc = parse_req(q, &rq);
  if (rc)
    return rc;
  if (!rq.has_period)
    rq.period = rk_period_of(r->kind, q->now, r->off);
  if (rk_compute(r, q->txn, &rq.period, &c)) {
    snprintf(q->error, sizeof q->error, "the ranking could not be computed");
    return -1;
  }
  rk_period_format(&rq.period, name);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str(&pk, 7);
  msgpack_pack_str_body(&pk, "ranking", 7);
  rk_calc_pack(&c, rq.ti, name, r->list_size, q->jurisdiction ? q->jurisdiction : "", &pk);
  msgpack_pack_str(&pk, 5);
  msgpack_pack_str_body(&pk, "final", 5);
  if (c.end <= q->now)
    msgpack_pack_true(&pk);
  else
    msgpack_pack_false(&pk);
  rk_calc_free(&c);
  q->reply = (uint8_t *)sb.data; /* the host frees it */
  q->reply_len = sb.size;
  return 0;
}
