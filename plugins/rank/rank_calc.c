/* SPDX-License-Identifier: MIT
 *
 * rank_calc.c: periods, the facts of an appeal, and the figures of a
 * ranking (see rank.h and PROTOCOL.md "Assessment"). Pure: no host calls,
 * no clock; everything comes in the arguments, so apply, on_timer and the
 * query compute the same figures from the same facts.
 */
#define _DEFAULT_SOURCE /* timegm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rank.h"

/* --- periods ------------------------------------------------------------------ */

static int digits(const char *s, size_t n) {
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

int rk_period_parse(const char *s, size_t n, rk_period_t *p) {
  int year = n >= 4 ? digits(s, 4) : -1;
  if (year < 1970 || year > 9999)
    return -1;
  *p = (rk_period_t){.kind = RK_YEAR, .year = year};
  if (n == 4)
    return 0;
  if (n == 7 && s[4] == '-' && s[5] == 'Q' && s[6] >= '1' && s[6] <= '4') {
    *p = (rk_period_t){RK_QUARTER, year, s[6] - '0'};
    return 0;
  }
  int month = n == 7 && s[4] == '-' ? digits(s + 5, 2) : -1;
  if (month < 1 || month > 12)
    return -1;
  *p = (rk_period_t){RK_MONTH, year, month};
  return 0;
}

void rk_period_format(const rk_period_t *p, char out[16]) {
  if (p->kind == RK_MONTH)
    snprintf(out, 16, "%04d-%02d", p->year, p->num);
  else if (p->kind == RK_QUARTER)
    snprintf(out, 16, "%04d-Q%d", p->year, p->num);
  else
    snprintf(out, 16, "%04d", p->year);
}

static int first_month(const rk_period_t *p) {
  return p->kind == RK_MONTH ? p->num : p->kind == RK_QUARTER ? 3 * p->num - 2 : 1;
}

int64_t rk_period_start(const rk_period_t *p, int64_t off_ms) {
  struct tm tm = {.tm_year = p->year - 1900, .tm_mon = first_month(p) - 1, .tm_mday = 1};
  return (int64_t)timegm(&tm) * 1000 - off_ms;
}

rk_period_t rk_period_next(const rk_period_t *p) {
  rk_period_t q = *p;
  int last = p->kind == RK_MONTH ? 12 : p->kind == RK_QUARTER ? 4 : 0;
  if (q.num < last) {
    q.num++;
  } else {
    q.year++;
    q.num = last ? 1 : 0;
  }
  return q;
}

int64_t rk_period_end(const rk_period_t *p, int64_t off_ms) {
  rk_period_t q = rk_period_next(p);
  return rk_period_start(&q, off_ms);
}

rk_period_t rk_period_of(int kind, int64_t t, int64_t off_ms) {
  int64_t local = t + off_ms;
  time_t secs = (time_t)(local >= 0 ? local / 1000 : (local - 999) / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  int month = tm.tm_mon + 1;
  rk_period_t p = {kind, tm.tm_year + 1900, 0};
  if (kind == RK_MONTH)
    p.num = month;
  else if (kind == RK_QUARTER)
    p.num = (month + 2) / 3;
  return p;
}

/* --- facts -------------------------------------------------------------------- */

static rk_head_t *head(const rk_fact_t *f) { return (rk_head_t *)f->buf; }

size_t rk_fact_size(const rk_fact_t *f) {
  return sizeof(rk_head_t) + head(f)->n_ev * sizeof(rk_ev_t);
}

static int reserve(rk_fact_t *f, size_t need) {
  if (need <= f->cap)
    return 0;
  size_t cap = f->cap ? f->cap : 256;
  while (cap < need)
    cap *= 2;
  uint8_t *b = f->lent ? malloc(cap) : realloc(f->buf, cap);
  if (!b)
    return -1;
  if (f->lent)
    memcpy(b, f->buf, f->cap);
  f->buf = b;
  f->cap = cap;
  f->lent = false;
  return 0;
}

int rk_fact_new(rk_fact_t *f, const lx_rec_t *rec, int64_t due) {
  if (reserve(f, sizeof(rk_head_t)))
    return -1;
  rk_head_t *h = head(f);
  memset(h, 0, sizeof *h); /* padding too: the stored bytes must be reproducible */
  h->opened = rec->rat;
  h->due = due;
  h->first_resp = -1;
  h->top = LX_COMMUNITY;
  memcpy(h->unit, rec->unit.p, rec->unit.n < sizeof h->unit - 1 ? rec->unit.n : sizeof h->unit - 1);
  return 0;
}

int rk_fact_load(rk_fact_t *f, const void *v, size_t n) {
  if (n < sizeof(rk_head_t) || reserve(f, n))
    return -1;
  memcpy(f->buf, v, n);
  return rk_fact_size(f) == n ? 0 : -1;
}

static int add_ev(rk_fact_t *f, int64_t rat, int kind, int arg) {
  size_t at = rk_fact_size(f);
  if (reserve(f, at + sizeof(rk_ev_t)))
    return -1;
  rk_ev_t ev;
  memset(&ev, 0, sizeof ev);
  ev.rat = rat;
  ev.kind = kind;
  ev.arg = arg;
  memcpy(f->buf + at, &ev, sizeof ev);
  head(f)->n_ev++;
  return 1;
}

int rk_fact_apply(rk_fact_t *f, const lx_rec_t *r) {
  rk_head_t *h = head(f);
  bool first = h->first_resp < 0 && (r->type == LX_REC_VISIT || r->type == LX_REC_RESOLUTION);
  if (first)
    h->first_resp = r->rat;
  switch (r->type) {
  case LX_REC_RESOLUTION:
    return add_ev(f, r->rat, RK_EV_OUTCOME, r->outcome);
  case LX_REC_FEEDBACK:
    return add_ev(f, r->rat, RK_EV_FEEDBACK, r->satisfied ? 1 : 0);
  case LX_REC_ESCALATION:
    /* Only a move up counts; overdue and reminder stay at the county. */
    if (r->esc_kind.n == 9 && memcmp(r->esc_kind.p, "escalated", 9) == 0 && r->esc_to > h->top) {
      h->top = r->esc_to;
      return add_ev(f, r->rat, RK_EV_TIER, r->esc_to);
    }
    return first;
  default:
    return first;
  }
}

void rk_fact_free(rk_fact_t *f) {
  if (!f->lent)
    free(f->buf);
  f->buf = NULL;
  f->cap = 0;
  f->lent = false;
}

/* --- one appeal as of the period's end ------------------------------------------ */

typedef struct rk_state {
  bool responded, feedback, satisfied, reopened;
  int status; /* LX_OPEN, LX_RESOLVED, LX_EXPLAINED, LX_REFERRED (closed: its last outcome) */
  int top;
} rk_state_t;

static void state_at(const uint8_t *fact, size_t n, int64_t end, rk_state_t *s) {
  rk_head_t h;
  memcpy(&h, fact, sizeof h);
  *s = (rk_state_t){.status = LX_OPEN, .top = LX_COMMUNITY};
  s->responded = h.first_resp >= 0 && h.first_resp < end && h.first_resp <= h.due;
  int outcome = 0;
  for (uint32_t i = 0; i < h.n_ev && sizeof h + (i + 1) * sizeof(rk_ev_t) <= n; i++) {
    rk_ev_t ev;
    memcpy(&ev, fact + sizeof h + i * sizeof ev, sizeof ev);
    if (ev.rat >= end)
      break; /* events are in log order, and rat never decreases */
    if (ev.kind == RK_EV_OUTCOME) {
      outcome = s->status = ev.arg;
    } else if (ev.kind == RK_EV_FEEDBACK) {
      s->feedback = true;
      s->satisfied = ev.arg;
      /* Satisfied: closed, counted under its last outcome. Unsatisfied:
       * open again, and the resolution is lost until the next one. */
      s->status = ev.arg ? outcome : LX_OPEN;
      s->reopened |= !ev.arg;
    } else if (ev.kind == RK_EV_TIER && ev.arg > s->top) {
      s->top = ev.arg;
    }
  }
}

/* --- rows ---------------------------------------------------------------------- */

static int cmp_path(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, ((const rk_row_t *)b)->unit);
}

static rk_row_t *find_row(rk_calc_t *c, int ti, const char *path) {
  return bsearch(&path, c->rows[ti], c->n[ti], sizeof(rk_row_t), cmp_path);
}

int rk_calc_init(rk_calc_t *c, const rk_units_t units[2], const double w[RK_RATES], int64_t end) {
  *c = (rk_calc_t){.end = end, .units = units};
  memcpy(c->w, w, sizeof c->w);
  for (int ti = 0; ti < 2; ti++) {
    c->n[ti] = units[ti].n;
    if (!(c->rows[ti] = calloc(units[ti].n ? units[ti].n : 1, sizeof(rk_row_t)))) {
      rk_calc_free(c);
      return -1;
    }
    for (size_t i = 0; i < units[ti].n; i++)
      c->rows[ti][i].unit = units[ti].path[i];
  }
  return 0;
}

void rk_calc_free(rk_calc_t *c) {
  free(c->rows[0]);
  free(c->rows[1]);
  c->rows[0] = c->rows[1] = NULL;
}

static void count(rk_row_t *row, const rk_state_t *s, int tier) {
  row->received++;
  row->responded += s->responded;
  row->resolved += s->status == LX_RESOLVED;
  row->explained += s->status == LX_EXPLAINED;
  row->referred += s->status == LX_REFERRED;
  row->escalated += s->top > tier;
  row->feedback += s->feedback;
  row->satisfied += s->feedback && s->satisfied;
  row->reopened += s->reopened;
}

void rk_calc_add(rk_calc_t *c, const void *fact, size_t n) {
  rk_head_t h;
  rk_state_t s;
  if (n < sizeof h)
    return;
  memcpy(&h, fact, sizeof h);
  h.unit[sizeof h.unit - 1] = 0;
  if (h.opened >= c->end)
    return;
  state_at(fact, n, c->end, &s);
  rk_row_t *row = find_row(c, 0, h.unit);
  if (row)
    count(row, &s, LX_COMMUNITY);
  char town[100];
  const char *dot = strchr(h.unit, '.');
  dot = dot ? strchr(dot + 1, '.') : NULL;
  if (!dot)
    return;
  snprintf(town, sizeof town, "%.*s", (int)(dot - h.unit), h.unit);
  if ((row = find_row(c, 1, town)))
    count(row, &s, LX_TOWNSHIP);
}

static void rate(rk_row_t *r, int i, int64_t num, int64_t den) {
  r->has_rate[i] = den > 0;
  r->rate[i] = den > 0 ? (double)num / (double)den : 0;
}

static void score(rk_row_t *r, const double w[RK_RATES]) {
  double sum = 0, wsum = 0;
  rate(r, RK_RESPONSE, r->responded, r->received);
  rate(r, RK_RESOLUTION, r->resolved, r->received);
  rate(r, RK_SATISFACTION, r->satisfied, r->feedback);
  for (int i = 0; i < RK_RATES; i++)
    if (r->has_rate[i]) {
      sum += w[i] * r->rate[i];
      wsum += w[i];
    }
  r->has_score = r->received > 0 && wsum > 0;
  r->score = r->has_score ? sum / wsum : 0;
}

/* Ranked first (higher score, then more received, then path), then the
 * unranked by path. */
static int cmp_rank(const void *pa, const void *pb) {
  const rk_row_t *a = pa, *b = pb;
  if (a->has_score != b->has_score)
    return a->has_score ? -1 : 1;
  if (a->has_score && a->score != b->score)
    return a->score > b->score ? -1 : 1;
  if (a->has_score && a->received != b->received)
    return a->received > b->received ? -1 : 1;
  return strcmp(a->unit, b->unit);
}

void rk_calc_finish(rk_calc_t *c) {
  for (int ti = 0; ti < 2; ti++) {
    for (size_t i = 0; i < c->n[ti]; i++)
      score(&c->rows[ti][i], c->w);
    qsort(c->rows[ti], c->n[ti], sizeof(rk_row_t), cmp_rank);
    for (size_t i = 0; i < c->n[ti]; i++)
      c->rows[ti][i].rank = c->rows[ti][i].has_score ? (int)i + 1 : 0;
  }
}

/* --- packing ------------------------------------------------------------------- */

bool rk_within(const char *path, const char *prefix) {
  size_t n = strlen(prefix);
  return n == 0 || (strncmp(path, prefix, n) == 0 && (path[n] == 0 || path[n] == '.'));
}

static void key(msgpack_packer *pk, const char *k) {
  msgpack_pack_str(pk, strlen(k));
  msgpack_pack_str_body(pk, k, strlen(k));
}

static void kv_int(msgpack_packer *pk, const char *k, int64_t v) {
  key(pk, k);
  msgpack_pack_int64(pk, v);
}

static void kv_float(msgpack_packer *pk, const char *k, bool has, double v) {
  key(pk, k);
  if (has)
    msgpack_pack_double(pk, v);
  else
    msgpack_pack_nil(pk);
}

static void pack_row(const rk_row_t *r, msgpack_packer *pk) {
  msgpack_pack_map(pk, 15);
  key(pk, "unit");
  key(pk, r->unit);
  kv_int(pk, "received", r->received);
  kv_int(pk, "responded", r->responded);
  kv_int(pk, "resolved", r->resolved);
  kv_int(pk, "explained", r->explained);
  kv_int(pk, "referred", r->referred);
  kv_int(pk, "escalated", r->escalated);
  kv_int(pk, "feedback", r->feedback);
  kv_int(pk, "satisfied", r->satisfied);
  kv_int(pk, "reopened", r->reopened);
  kv_float(pk, "response_rate", r->has_rate[RK_RESPONSE], r->rate[RK_RESPONSE]);
  kv_float(pk, "resolution_rate", r->has_rate[RK_RESOLUTION], r->rate[RK_RESOLUTION]);
  kv_float(pk, "satisfaction_rate", r->has_rate[RK_SATISFACTION], r->rate[RK_SATISFACTION]);
  kv_float(pk, "score", r->has_score, r->score);
  key(pk, "rank");
  if (r->rank)
    msgpack_pack_int(pk, r->rank);
  else
    msgpack_pack_nil(pk);
}

/* Paths of the ranked rows [from, to) that lie within jur. */
static void pack_list(const rk_row_t *rows, size_t from, size_t to, const char *jur,
                      msgpack_packer *pk) {
  uint32_t n = 0;
  for (size_t i = from; i < to; i++)
    n += rk_within(rows[i].unit, jur);
  msgpack_pack_array(pk, n);
  for (size_t i = from; i < to; i++)
    if (rk_within(rows[i].unit, jur))
      key(pk, rows[i].unit);
}

void rk_calc_pack(const rk_calc_t *c, int ti, const char *period, int list_size, const char *jur,
                  msgpack_packer *pk) {
  const rk_row_t *rows = c->rows[ti];
  size_t ranked = 0, n = 0, ls = (size_t)list_size;
  for (size_t i = 0; i < c->n[ti]; i++) {
    ranked += rows[i].rank != 0;
    n += rk_within(rows[i].unit, jur);
  }
  size_t red = ranked < ls ? ranked : ls;
  size_t black = ranked - red < ls ? red : ranked - ls;
  msgpack_pack_map(pk, 6);
  key(pk, "period");
  key(pk, period);
  key(pk, "tier");
  key(pk, ti == 0 ? "community" : "township");
  key(pk, "weights");
  msgpack_pack_map(pk, 3);
  kv_float(pk, "response", true, c->w[RK_RESPONSE]);
  kv_float(pk, "resolution", true, c->w[RK_RESOLUTION]);
  kv_float(pk, "satisfaction", true, c->w[RK_SATISFACTION]);
  key(pk, "rows");
  msgpack_pack_array(pk, (uint32_t)n);
  for (size_t i = 0; i < c->n[ti]; i++)
    if (rk_within(rows[i].unit, jur))
      pack_row(&rows[i], pk);
  key(pk, "red");
  pack_list(rows, 0, red, jur, pk);
  key(pk, "black");
  pack_list(rows, black, ranked, jur, pk);
}
