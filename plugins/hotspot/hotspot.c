/* SPDX-License-Identifier: MIT
 *
 * hotspot.c: early warning (思想动态预警): when the appeals of one category
 * in one community within the last window_days reach max(threshold,
 * factor x baseline), a `hotspot` record is appended and its alert goes to
 * the community's topic (PROTOCOL.md "Assessment"; docs/assessment.md).
 *
 * Design: per (community, category) pair, apply keeps
 *   ap:   pair | u64be rat | u64be seq  -> ""   appeals still needed
 *   pair: pair -> in-window count, baseline count, last rat, last trigger
 *   due:  pair -> u64be trigger seq | the hotspot body, until it is stored
 *   mismatch: u64be seq -> ""   a hotspot record that no trigger made as it is
 * The counts slide with the appeals: an appeal moves the keys that left the
 * window into the baseline and deletes those older than window + baseline,
 * so each key is touched a bounded number of times (a burst of 10,000
 * appeals costs 10,000 small steps, not 10,000 scans) and the database
 * holds at most window + baseline days of appeals per pair.
 *
 * The decision is made in apply, from the state alone (so the audit makes
 * it again): the appeal that crosses the line, at least window_days after
 * the pair's previous trigger, writes `due`. react of that appeal appends
 * the hotspot record; its apply removes `due` in the transaction that
 * stores it. A crash between the two leaves `due` standing, and on_timer at
 * start appends it then: one hotspot per trigger, never two. The record's
 * apply compares its body with `due`: a hotspot the log does not imply
 * (rewritten, chain and all) is noted in `mismatch`, which an honest daemon
 * never writes, so `lianxin audit` shows it as a database difference.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/lxp.h"

#define PAIR_MAX (1 + 100 + 1 + 64)
#define PAIR_VAL 33

typedef struct hs {
  const lx_host_api_t *api;
  lx_host_t *host;
  lx_db_t ap, pair, due, mismatch;
  long window_days, threshold, baseline_days;
  double factor;
  int64_t window_ms, baseline_ms;
  uint64_t hint; /* the last trigger seq apply saw: react reads `due` up to it */
} hs_t;

typedef struct hs_pair {
  uint32_t win, base;
  int64_t last_r;
  bool has_hot;
  int64_t last_hot; /* the rat of the last trigger */
} hs_pair_t;

static const char *const hs_types[] = {"hotspot", NULL};

/* --- config ---------------------------------------------------------------- */

static int conf_factor(hs_t *s) {
  const char *v = s->api->conf_str(s->host, "factor");
  char *end;
  s->factor = 3;
  if (!v)
    return 0;
  double x = strtod(v, &end);
  if (*v == 0 || *end || !(x >= 0 && x <= 1000)) {
    s->api->conf_error(s->host, "factor", "expected a number from 0 to 1000, e.g. 3");
    return -1;
  }
  s->factor = x;
  return 0;
}

static int hs_init(const lx_host_api_t *api, lx_host_t *host, void **state) {
  hs_t *s = calloc(1, sizeof *s);
  if (!s)
    return -1;
  s->api = api;
  s->host = host;
  int bad = lxp_conf_int(api, host, "window_days", 7, 1, 366, &s->window_days);
  bad |= lxp_conf_int(api, host, "threshold", 5, 1, 1000000, &s->threshold);
  bad |= conf_factor(s);
  bad |= lxp_conf_int(api, host, "baseline_days", 90, 1, 3660, &s->baseline_days);
  if (bad || api->db_open(host, "ap", &s->ap) || api->db_open(host, "pair", &s->pair) ||
      api->db_open(host, "due", &s->due) || api->db_open(host, "mismatch", &s->mismatch)) {
    free(s);
    return -1;
  }
  s->window_ms = s->window_days * LXP_DAY_MS;
  s->baseline_ms = s->baseline_days * LXP_DAY_MS;
  *state = s;
  return 0;
}

static void hs_close(void *state) { free(state); }

/* --- keys -------------------------------------------------------------------- */

static size_t pair_key(uint8_t *k, lx_slice_t unit, lx_slice_t category) {
  if (unit.n > 100 || category.n > 64 || unit.n == 0 || category.n == 0)
    return 0;
  k[0] = (uint8_t)unit.n;
  memcpy(k + 1, unit.p, unit.n);
  k[1 + unit.n] = (uint8_t)category.n;
  memcpy(k + 2 + unit.n, category.p, category.n);
  return 2 + unit.n + category.n;
}

static void pair_load(hs_t *s, lx_txn_t *t, const uint8_t *pk, size_t pn, hs_pair_t *p,
                      bool *fresh) {
  const void *v;
  size_t n;
  *p = (hs_pair_t){0};
  *fresh = !(s->api->get(t, s->pair, pk, pn, &v, &n) == 0 && n == PAIR_VAL);
  if (*fresh)
    return;
  const uint8_t *b = v;
  p->win = (uint32_t)lxp_get_be(b, 4);
  p->base = (uint32_t)lxp_get_be(b + 4, 4);
  p->last_r = (int64_t)lxp_get_be(b + 8, 8);
  p->has_hot = b[16];
  p->last_hot = (int64_t)lxp_get_be(b + 17, 8);
}

static void pair_save(hs_t *s, lx_txn_t *t, const uint8_t *pk, size_t pn, const hs_pair_t *p) {
  uint8_t b[PAIR_VAL] = {0};
  lxp_put_be(b, p->win, 4);
  lxp_put_be(b + 4, p->base, 4);
  lxp_put_be(b + 8, (uint64_t)p->last_r, 8);
  b[16] = p->has_hot;
  lxp_put_be(b + 17, (uint64_t)p->last_hot, 8);
  s->api->put(t, s->pair, pk, pn, b, sizeof b);
}

/* --- apply: slide the window ------------------------------------------------------ */

/* Walks the pair's appeal keys from `from` while their rat is <= until. */
typedef struct hs_walk {
  const uint8_t *pk;
  size_t pn;
  int64_t until;
  uint32_t n;          /* keys seen */
  int64_t first;       /* the first key's rat, -1 if none */
  uint8_t *keys;       /* collect: keys to delete, PAIR_MAX + 16 bytes each */
  size_t nkeys, cap;
  int failed;
} hs_walk_t;

static int walk_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
  hs_walk_t *w = arg;
  if (klen != w->pn + 16 || memcmp(key, w->pk, w->pn) != 0)
    return 1;
  int64_t rat = (int64_t)lxp_get_be((const uint8_t *)key + w->pn, 8);
  if (rat > w->until)
    return 1;
  if (w->first < 0)
    w->first = rat;
  w->n++;
  if (w->keys || w->cap) {
    if (w->nkeys == w->cap) {
      size_t cap = w->cap * 2;
      uint8_t *p = realloc(w->keys, cap * (PAIR_MAX + 16));
      if (!p)
        return w->failed = 1;
      w->keys = p;
      w->cap = cap;
    }
    memcpy(w->keys + w->nkeys++ * (PAIR_MAX + 16), key, klen);
  }
  return 0;
}

static hs_walk_t walk(hs_t *s, lx_txn_t *t, const uint8_t *pk, size_t pn, int64_t from,
                      int64_t until, bool collect) {
  hs_walk_t w = {.pk = pk, .pn = pn, .until = until, .first = -1};
  uint8_t k[PAIR_MAX + 8];
  memcpy(k, pk, pn);
  lxp_put_be(k + pn, (uint64_t)(from > 0 ? from : 0), 8);
  if (collect && (w.keys = malloc(16 * (PAIR_MAX + 16))))
    w.cap = 16;
  if (until >= from)
    s->api->scan(t, s->ap, k, pn + 8, walk_one, &w);
  return w;
}

/* Keys that left the window go to the baseline; keys older than window +
 * baseline go. */
static void slide(hs_t *s, lx_txn_t *t, const uint8_t *pk, size_t pn, hs_pair_t *p, int64_t r) {
  hs_walk_t out = walk(s, t, pk, pn, p->last_r - s->window_ms + 1, r - s->window_ms, false);
  p->win -= out.n;
  p->base += out.n;
  hs_walk_t old = walk(s, t, pk, pn, 0, r - s->window_ms - s->baseline_ms, true);
  for (size_t i = 0; i < old.nkeys; i++)
    s->api->del(t, s->ap, old.keys + i * (PAIR_MAX + 16), pn + 16);
  p->base -= (uint32_t)old.nkeys;
  free(old.keys);
}

static void write_due(hs_t *s, lx_txn_t *t, const uint8_t *pk, size_t pn, const lx_rec_t *r,
                      uint32_t count, int64_t first, double baseline) {
  msgpack_sbuffer sb;
  msgpack_packer mp;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&mp, &sb, msgpack_sbuffer_write);
  uint8_t seq[8];
  lxp_put_be(seq, r->seq, 8);
  msgpack_sbuffer_write(&sb, (const char *)seq, 8);
  msgpack_pack_map(&mp, 5);
  lxp_pack_kv_str(&mp, "category", r->category.p, r->category.n);
  lxp_pack_kv_int(&mp, "count", count);
  lxp_pack_kv_int(&mp, "window_days", s->window_days);
  lxp_pack_kv_int(&mp, "first", first);
  lxp_pack_key(&mp, "baseline");
  msgpack_pack_double(&mp, baseline);
  s->api->put(t, s->due, pk, pn, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  s->hint = r->seq;
}

static void apply_appeal(hs_t *s, lx_txn_t *t, const lx_rec_t *r) {
  uint8_t pk[PAIR_MAX], k[PAIR_MAX + 16];
  size_t pn = pair_key(pk, r->unit, r->category);
  hs_pair_t p;
  bool fresh;
  if (!pn)
    return;
  pair_load(s, t, pk, pn, &p, &fresh);
  if (!fresh)
    slide(s, t, pk, pn, &p, r->rat);
  memcpy(k, pk, pn);
  lxp_put_be(k + pn, (uint64_t)r->rat, 8);
  lxp_put_be(k + pn + 8, r->seq, 8);
  s->api->put(t, s->ap, k, pn + 16, "", 0);
  p.win++;
  p.last_r = r->rat;
  /* window: rat > r - window; baseline: the baseline_days before it, scaled */
  double baseline = (double)p.base * (double)s->window_days / (double)s->baseline_days;
  if (p.win >= (uint32_t)s->threshold && (double)p.win >= s->factor * baseline &&
      (!p.has_hot || r->rat - p.last_hot >= s->window_ms)) {
    hs_walk_t w = walk(s, t, pk, pn, r->rat - s->window_ms + 1, r->rat, false);
    p.has_hot = true;
    p.last_hot = r->rat;
    write_due(s, t, pk, pn, r, p.win, w.first, baseline);
  }
  pair_save(s, t, pk, pn, &p);
}

/* Whether the record's body is the one its trigger left in `due`. */
static bool as_due(hs_t *s, lx_txn_t *t, const uint8_t *pk, size_t pn, const msgpack_object *body) {
  const void *v;
  size_t vn;
  msgpack_sbuffer got;
  msgpack_packer mp;
  if (s->api->get(t, s->due, pk, pn, &v, &vn) != 0 || vn < 8)
    return false;
  msgpack_sbuffer_init(&got);
  msgpack_packer_init(&mp, &got, msgpack_sbuffer_write);
  msgpack_pack_object(&mp, *body);
  bool same = got.size == vn - 8 && memcmp(got.data, (const uint8_t *)v + 8, got.size) == 0;
  msgpack_sbuffer_destroy(&got);
  return same;
}

/* The hotspot record is stored: its trigger is done. */
static void apply_hotspot(hs_t *s, lx_txn_t *t, const lx_rec_t *r) {
  msgpack_zone z;
  msgpack_object root;
  uint8_t pk[PAIR_MAX];
  bool good = false;
  msgpack_zone_init(&z, 512);
  const msgpack_object *body = lxp_unpack_ev(r, &z, &root) ? lxp_get(&root, "body") : NULL;
  const msgpack_object *cat = lxp_get(body, "category");
  if (cat && cat->type == MSGPACK_OBJECT_STR) {
    size_t pn = pair_key(pk, r->unit, (lx_slice_t){cat->via.str.ptr, cat->via.str.size});
    if (pn) {
      good = as_due(s, t, pk, pn, body);
      s->api->del(t, s->due, pk, pn);
    }
  }
  if (!good) {
    uint8_t k[8];
    lxp_put_be(k, r->seq, 8);
    s->api->put(t, s->mismatch, k, 8, "", 0);
  }
  msgpack_zone_destroy(&z);
}

static void hs_apply(void *state, lx_txn_t *t, const lx_rec_t *r) {
  if (r->type == LX_REC_APPEAL)
    apply_appeal(state, t, r);
  else if (r->type == LX_REC_PLUGIN && lxp_slice_is(r->type_name, "hotspot"))
    apply_hotspot(state, t, r);
}

/* --- appending what is due --------------------------------------------------------- */

static void append_due(hs_t *s, const uint8_t *pk, const uint8_t *v, size_t vn) {
  lx_slice_t unit = {(const char *)pk + 1, pk[0]};
  int rc = s->api->append(s->host, "hotspot", unit, v + 8, vn - 8);
  if (rc)
    s->api->log(s->host, LX_PLOG_ERROR, "cannot append a hotspot of %.*s: %d", (int)unit.n,
                unit.p, rc);
}

/* on_timer runs once at start: what a crash left due is appended now. */
static int due_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
  hs_t *s = arg;
  if (vlen > 8 && klen >= 2)
    append_due(s, key, val, vlen);
  return 0;
}

static void hs_on_timer(void *state, int64_t now) {
  hs_t *s = state;
  lx_txn_t *t = s->api->read_begin(s->host);
  if (!t)
    return;
  s->api->scan(t, s->due, NULL, 0, due_one, s);
  s->api->read_end(t);
}

static void react_appeal(hs_t *s, const lx_rec_t *r) {
  uint8_t pk[PAIR_MAX];
  size_t pn = pair_key(pk, r->unit, r->category), vn;
  const void *v;
  lx_txn_t *t;
  if (!pn || !(t = s->api->read_begin(s->host)))
    return;
  if (s->api->get(t, s->due, pk, pn, &v, &vn) == 0 && vn > 8 && lxp_get_be(v, 8) == r->seq)
    append_due(s, pk, v, vn);
  s->api->read_end(t);
}

static void hs_react(void *state, const lx_rec_t *r) {
  hs_t *s = state;
  if (r->type == LX_REC_APPEAL && r->seq <= s->hint)
    react_appeal(s, r);
  else if (r->type == LX_REC_PLUGIN && lxp_slice_is(r->type_name, "hotspot"))
    lxp_publish_body(s->api, s->host, r, "hotspot");
}

const lx_plugin_t lx_plugin_entry = {
    .abi = LX_PLUGIN_ABI,
    .name = "hotspot",
    .description = "early warning: a burst of one category's appeals in one community",
    .types = hs_types,
    .init = hs_init,
    .apply = hs_apply,
    .react = hs_react,
    .on_timer = hs_on_timer,
    .close = hs_close,
};
