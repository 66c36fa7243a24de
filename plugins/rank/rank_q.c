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

/* The appeals of the scan, in filing order, in blocks that never move (so
 * each can lend its fact the room beside it), found through an index of
 * entry numbers with open addressing, each beside the low half of its
 * hash: a probe rarely reads an entry that is not the one sought, and the
 * index grows without reading the entries. A year of a county is some 100,000
 * appeals (30 MB of blocks): the blocks are kept for the next scan, as
 * touching that much fresh memory cost more than the scan itself; and a
 * record's appeal was mostly filed shortly before it, near the end of the
 * blocks, which stays in the cache. */
#define BLOCK 4096
#define ID_MAX 64 /* an appeal id's bytes at most (PROTOCOL.md) */

typedef struct entry {
  uint64_t hash;
  uint8_t n;
  char id[ID_MAX];
  rk_fact_t f;
  uint8_t room[RK_FACT_SMALL]; /* lent to f */
} entry_t;

typedef struct rk_blocks {
  entry_t **block;
  size_t n;
} blocks_t;

typedef struct scan {
  rk_t *r;
  blocks_t *b;     /* r->blocks */
  size_t n;        /* entries in use */
  uint64_t *index; /* 0: empty; else the hash's low half << 32 | entry number + 1 */
  size_t cap;      /* a power of 2, at least twice n */
  int64_t start;
  int failed;
} scan_t;

void rk_compute_free(rk_t *r) {
  for (size_t i = 0; r->blocks && i < r->blocks->n; i++)
    free(r->blocks->block[i]);
  if (r->blocks)
    free(r->blocks->block);
  free(r->blocks);
  r->blocks = NULL;
}

static uint64_t hash(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
  return h ^ (h >> 29); /* FNV's low bits, the index's, mix poorly on their own */
}

static entry_t *entry(const scan_t *s, size_t i) { return &s->b->block[i / BLOCK][i % BLOCK]; }

static uint64_t slot_of(uint64_t hash, size_t i) { return hash << 32 | (i + 1); }

static int grow_index(scan_t *s) {
  size_t cap = s->cap ? s->cap * 2 : 1 << 14;
  uint64_t *ix = calloc(cap, sizeof *ix);
  if (!ix)
    return -1;
  for (size_t i = 0; i < s->cap; i++) {
    if (!s->index[i])
      continue;
    size_t j = (s->index[i] >> 32) & (cap - 1);
    while (ix[j])
      j = (j + 1) & (cap - 1);
    ix[j] = s->index[i];
  }
  free(s->index);
  s->index = ix;
  s->cap = cap;
  return 0;
}

/* The appeal's entry; with make, a new one when there is none (NULL only
 * out of memory or for an id too long to be an appeal's). */
static entry_t *find(scan_t *s, lx_slice_t id, bool make) {
  if (id.n > ID_MAX || (make && (s->n + 1) * 2 > s->cap && grow_index(s)))
    return NULL;
  uint64_t h = hash(id.p, id.n);
  size_t j = h & (s->cap - 1);
  for (; s->index[j]; j = (j + 1) & (s->cap - 1)) {
    if (s->index[j] >> 32 != (uint32_t)h)
      continue;
    entry_t *e = entry(s, (uint32_t)s->index[j] - 1);
    if (e->hash == h && e->n == id.n && memcmp(e->id, id.p, id.n) == 0)
      return e;
  }
  if (!make)
    return NULL;
  if (s->n == s->b->n * BLOCK) {
    entry_t **b = realloc(s->b->block, (s->b->n + 1) * sizeof *b);
    if (!b)
      return NULL;
    s->b->block = b;
    if (!(b[s->b->n] = malloc(BLOCK * sizeof **b)))
      return NULL;
    s->b->n++;
  }
  entry_t *e = entry(s, s->n);
  e->hash = h;
  e->n = (uint8_t)id.n;
  memcpy(e->id, id.p, id.n);
  e->f = (rk_fact_t){.buf = e->room, .cap = sizeof e->room, .lent = true};
  s->index[j] = slot_of(h, s->n++);
  return e;
}

static int scan_one(void *arg, const lx_rec_t *rec) {
  scan_t *s = arg;
  if (rec->appeal.n == 0 || rec->rat < s->start)
    return 0;
  if (rec->type == LX_REC_APPEAL) {
    entry_t *e = find(s, rec->appeal, true);
    int64_t due = s->r->api->response_due(s->r->host, rec->rat, rec->urgent);
    if (!e || rk_fact_new(&e->f, rec, due))
      return s->failed = -1;
    return 0;
  }
  entry_t *e = s->cap ? find(s, rec->appeal, false) : NULL;
  if (e && rk_fact_apply(&e->f, rec) < 0)
    return s->failed = -1;
  return 0;
}

static int from_log(rk_t *r, lx_txn_t *t, int64_t start, int64_t end, rk_calc_t *c) {
  if (!r->blocks && !(r->blocks = calloc(1, sizeof *r->blocks)))
    return -1;
  scan_t s = {.r = r, .b = r->blocks, .start = start};
  int rc = r->api->log_scan(t, start, end, scan_one, &s) ? -1 : s.failed;
  for (size_t i = 0; i < s.n; i++) {
    entry_t *e = entry(&s, i);
    if (rc == 0)
      rk_calc_add(c, e->f.buf, rk_fact_size(&e->f));
    rk_fact_free(&e->f); /* one that outgrew its room */
  }
  free(s.index);
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

/* --- the audit's re-check ----------------------------------------------------------- */

typedef struct stored {
  char period[16], tier[16];
} stored_t;

static int stored_part(void *arg, const msgpack_object_kv *kv) {
  stored_t *st = arg;
  char *to = kv->key.via.str.size == 6 && !memcmp(kv->key.via.str.ptr, "period", 6) ? st->period
             : kv->key.via.str.size == 4 && !memcmp(kv->key.via.str.ptr, "tier", 4) ? st->tier
                                                                                    : NULL;
  if (to && kv->val.type == MSGPACK_OBJECT_STR && kv->val.via.str.size < 16) {
    memcpy(to, kv->val.via.str.ptr, kv->val.via.str.size);
    to[kv->val.via.str.size] = 0;
  }
  return 0;
}

/* The body map of a stored event, or NULL. */
static const msgpack_object *body_of(const msgpack_object *ev) {
  for (uint32_t i = 0; ev->type == MSGPACK_OBJECT_MAP && i < ev->via.map.size; i++) {
    const msgpack_object *k = &ev->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 4 && !memcmp(k->via.str.ptr, "body", 4))
      return &ev->via.map.ptr[i].val;
  }
  return NULL;
}

/* Names the first entry of the recomputed body b that the stored body s
 * does not hold as is (a row by its unit). */
static void explain(const msgpack_object *s, const msgpack_object *b, char *why, size_t cap) {
  snprintf(why, cap, "it differs from the ranking recomputed from the log");
  for (uint32_t i = 0; s->type == MSGPACK_OBJECT_MAP && i < b->via.map.size; i++) {
    const msgpack_object_kv *kv = &b->via.map.ptr[i];
    const msgpack_object *sv = NULL;
    for (uint32_t j = 0; j < s->via.map.size; j++)
      if (msgpack_object_equal(s->via.map.ptr[j].key, kv->key))
        sv = &s->via.map.ptr[j].val;
    if (sv && msgpack_object_equal(*sv, kv->val))
      continue;
    snprintf(why, cap, "%.*s differs from the ranking recomputed from the log",
             (int)kv->key.via.str.size, kv->key.via.str.ptr);
    if (!sv || sv->type != MSGPACK_OBJECT_ARRAY || kv->val.type != MSGPACK_OBJECT_ARRAY)
      return;
    for (uint32_t j = 0; j < kv->val.via.array.size; j++) {
      const msgpack_object *row = &kv->val.via.array.ptr[j];
      if (j < sv->via.array.size && msgpack_object_equal(sv->via.array.ptr[j], *row))
        continue;
      for (uint32_t k = 0; row->type == MSGPACK_OBJECT_MAP && k < row->via.map.size; k++)
        if (row->via.map.ptr[k].val.type == MSGPACK_OBJECT_STR) {
          snprintf(why, cap, "%.*s: the row of %.*s differs from the ranking recomputed from "
                   "the log", (int)kv->key.via.str.size, kv->key.via.str.ptr,
                   (int)row->via.map.ptr[k].val.via.str.size, row->via.map.ptr[k].val.via.str.ptr);
          return;
        }
    }
    return;
  }
}

int rk_check(void *state, lx_txn_t *t, const lx_rec_t *rec, char *why, size_t cap) {
  rk_t *r = state;
  stored_t st = {"", ""};
  rk_period_t p;
  rk_calc_t c;
  rk_body_each(rec, stored_part, &st);
  int ti = !strcmp(st.tier, "community") ? 0 : !strcmp(st.tier, "township") ? 1 : -1;
  if (ti < 0 || rk_period_parse(st.period, strlen(st.period), &p)) {
    snprintf(why, cap, "no valid period and tier");
    return 1;
  }
  if (rec->rat < rk_period_end(&p, r->off)) {
    snprintf(why, cap, "appended before the period %s ended", st.period);
    return 1;
  }
  if (rk_compute(r, t, &p, &c)) {
    snprintf(why, cap, "the ranking could not be recomputed");
    return 1;
  }
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  rk_calc_pack(&c, ti, st.period, r->list_size, "", &pk);
  rk_calc_free(&c);
  msgpack_zone z;
  msgpack_object mine, ev;
  size_t off = 0, off2 = 0;
  int rc = 1;
  msgpack_zone_init(&z, 4096);
  if (msgpack_unpack(sb.data, sb.size, &off, &z, &mine) == MSGPACK_UNPACK_SUCCESS &&
      msgpack_unpack((const char *)rec->ev, rec->ev_len, &off2, &z, &ev) == MSGPACK_UNPACK_SUCCESS) {
    const msgpack_object *body = body_of(&ev);
    rc = body && msgpack_object_equal(*body, mine) ? 0 : 1;
    if (rc)
      explain(body ? body : &mine, &mine, why, cap);
  }
  msgpack_zone_destroy(&z);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}
