/* SPDX-License-Identifier: MIT
 *
 * rank.c: the red and black lists (红黑榜) of PROTOCOL.md "Assessment":
 * at each period's end one `ranking` record per tier (community, township)
 * ranks the units on response, resolution and satisfaction (响应率, 解决率,
 * 满意率), and the `rank` query op recomputes any period's ranking.
 *
 * Design: three databases of the plugin's own, changed only in apply:
 *   facts   u64be(opened) | appeal id -> rk_head_t + events (rank.h): what
 *           the figures need of each appeal, keyed by filing time so a
 *           period's cohort is one range of keys;
 *   done    "PERIOD/TIER" -> u64 seq of its ranking record: the apply of a
 *           ranking marks it in the transaction that stores it, so a crash
 *           leaves either the record with its mark or neither, and on_timer
 *           appends only what is not marked: exactly once per period and
 *           tier across restarts, SIGKILL and catch-up;
 *   meta    "since" -> rat of the first record this plugin applied. Appeals
 *           filed before it are not in `facts`; a period that starts at or
 *           before it is computed from a scan of the log instead (rank_q.c),
 *           which needs no state at all.
 * Figures are computed by rank_calc.c, the same code for the record and the
 * query, from records with rat before the period's end.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/lxp.h"
#include "rank_plugin.h"

static const char *const rk_types[] = {"ranking", NULL};
static const char *const rk_ops[] = {"rank", NULL};
static const char *const rate_names[RK_RATES] = {"response", "resolution", "satisfaction"};

/* --- config ---------------------------------------------------------------- */

static int conf_period(rk_t *r) {
  const char *v = r->api->conf_str(r->host, "period");
  r->kind = RK_MONTH;
  if (!v)
    return 0;
  if (!strcmp(v, "month") || !strcmp(v, "quarter") || !strcmp(v, "year")) {
    r->kind = v[0] == 'm' ? RK_MONTH : v[0] == 'q' ? RK_QUARTER : RK_YEAR;
    return 0;
  }
  r->api->conf_error(r->host, "period", "expected month, quarter or year");
  return -1;
}

/* weights: {response, resolution, satisfaction}; a name left out weighs 0;
 * the weights are normalised to sum to 1 (scores do not change by it: a
 * score is a weighted mean). */
static int conf_weights(rk_t *r) {
  const lx_conf_item_t *items;
  size_t n;
  static const double dflt[RK_RATES] = {0.30, 0.35, 0.35};
  int rc = r->api->conf_items(r->host, "weights", LX_CONF_MAP, &items, &n);
  memcpy(r->w, dflt, sizeof r->w);
  if (rc)
    return rc < 0 ? -1 : 0;
  int bad = 0;
  double sum = 0;
  memset(r->w, 0, sizeof r->w);
  for (size_t i = 0; i < n; i++) {
    int k = 0;
    while (k < RK_RATES && strcmp(items[i].key, rate_names[k]))
      k++;
    char *end;
    double x = strtod(items[i].value, &end);
    if (k == RK_RATES) {
      r->api->conf_item_error(r->host, "weights", &items[i],
                              "unknown weight: expected response, resolution or satisfaction");
      bad = -1;
    } else if (!*items[i].value || *end || !isfinite(x) || x < 0) {
      r->api->conf_item_error(r->host, "weights", &items[i],
                              "expected a number of 0 or more, e.g. 0.35");
      bad = -1;
    } else {
      r->w[k] = x;
      sum += x;
    }
  }
  if (!bad && !(sum > 0)) {
    r->api->conf_error(r->host, "weights", "at least one weight must be above 0");
    bad = -1;
  }
  /* Weights that sum to 1 as written (0.30 + 0.35 + 0.35 is 0.9999999999999999
   * in binary) are kept as written, so they are published as written. */
  for (int k = 0; k < RK_RATES && !bad && fabs(sum - 1) > 1e-9; k++)
    r->w[k] /= sum;
  return bad;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The configured communities and townships, each sorted by path. */
static int load_units(rk_t *r) {
  int tier;
  size_t total = 0;
  while (r->api->unit_path(r->host, total, &tier))
    total++;
  for (int ti = 0; ti < 2; ti++)
    if (!(r->units[ti].path = calloc(total ? total : 1, sizeof(char *))))
      return -1;
  for (size_t i = 0; i < total; i++) {
    const char *p = r->api->unit_path(r->host, i, &tier);
    if (tier == LX_COMMUNITY || tier == LX_TOWNSHIP)
      r->units[tier - 1].path[r->units[tier - 1].n++] = p;
    else if (!r->county)
      r->county = p;
  }
  for (int ti = 0; ti < 2; ti++)
    qsort(r->units[ti].path, r->units[ti].n, sizeof(char *), cmp_str);
  return r->county ? 0 : -1;
}

static void rk_close(void *state) {
  rk_t *r = state;
  if (!r)
    return;
  free(r->units[0].path);
  free(r->units[1].path);
  rk_fact_free(&r->fact);
  rk_compute_free(r);
  free(r);
}

static int rk_init(const lx_host_api_t *api, lx_host_t *host, void **state) {
  rk_t *r = calloc(1, sizeof *r);
  if (!r)
    return -1;
  r->api = api;
  r->host = host;
  int bad = conf_period(r);
  bad |= conf_weights(r);
  bad |= lxp_conf_int_i(r->api, r->host, "list_size", 3, 1, 1000, &r->list_size);
  if (bad || load_units(r) || api->db_open(host, "facts", &r->facts) ||
      api->db_open(host, "done", &r->done) || api->db_open(host, "meta", &r->meta)) {
    rk_close(r);
    return -1;
  }
  r->off = api->utc_offset_ms(host);
  *state = r;
  return 0;
}

/* --- apply: keep the facts and marks in step with the log ---------------------- */

size_t rk_fact_key(uint8_t *k, int64_t opened, lx_slice_t appeal) {
  uint64_t v = (uint64_t)opened;
  for (int i = 7; i >= 0; i--, v >>= 8)
    k[i] = (uint8_t)v;
  memcpy(k + 8, appeal.p, appeal.n);
  return 8 + appeal.n;
}

static bool is_key(const msgpack_object *k, const char *name) {
  size_t n = strlen(name);
  return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
         memcmp(k->via.str.ptr, name, n) == 0;
}

static bool slice_is(lx_slice_t s, const char *name) {
  return s.n == strlen(name) && memcmp(s.p, name, s.n) == 0;
}

/* Calls fn for each entry of the record's body; stops when it returns
 * non-zero. */
int rk_body_each(const lx_rec_t *rec, int (*fn)(void *, const msgpack_object_kv *), void *arg) {
  msgpack_zone z;
  msgpack_object o;
  size_t off = 0;
  int rc = -1;
  msgpack_zone_init(&z, 2048);
  if (msgpack_unpack((const char *)rec->ev, rec->ev_len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS &&
      o.type == MSGPACK_OBJECT_MAP)
    for (uint32_t i = 0; i < o.via.map.size; i++) {
      const msgpack_object *b = &o.via.map.ptr[i].val;
      if (!is_key(&o.via.map.ptr[i].key, "body") || b->type != MSGPACK_OBJECT_MAP)
        continue;
      rc = 0;
      for (uint32_t j = 0; j < b->via.map.size && rc == 0; j++)
        rc = fn(arg, &b->via.map.ptr[j]);
    }
  msgpack_zone_destroy(&z);
  return rc;
}

/* "PERIOD/TIER" from a ranking's body. */
static int mark_part(void *arg, const msgpack_object_kv *kv) {
  char *mark = arg;
  int slot = is_key(&kv->key, "period") ? 0 : is_key(&kv->key, "tier") ? 1 : -1;
  if (slot < 0 || kv->val.type != MSGPACK_OBJECT_STR || kv->val.via.str.size > 15)
    return 0;
  char *at = mark + slot * 16;
  memcpy(at, kv->val.via.str.ptr, kv->val.via.str.size);
  at[kv->val.via.str.size] = 0;
  return 0;
}

size_t rk_mark_key(char *out, size_t cap, const char *period, const char *tier) {
  return (size_t)snprintf(out, cap, "%s/%s", period, tier);
}

static void apply_ranking(rk_t *r, lx_txn_t *t, const lx_rec_t *rec) {
  char parts[32] = {0}, key[40];
  const void *v;
  size_t n;
  rk_body_each(rec, mark_part, parts);
  if (!parts[0] || !parts[16])
    return;
  size_t kn = rk_mark_key(key, sizeof key, parts, parts + 16);
  if (r->api->get(t, r->done, key, kn, &v, &n) != 0) /* the first one stands */
    r->api->put(t, r->done, key, kn, &rec->seq, sizeof rec->seq);
}

static void apply_fact(rk_t *r, lx_txn_t *t, const lx_rec_t *rec) {
  uint8_t key[8 + 64];
  const void *v;
  size_t n;
  int changed;
  if (rec->appeal.n > 64)
    return;
  if (rec->type == LX_REC_APPEAL) {
    int64_t due = r->api->response_due(r->host, rec->rat, rec->urgent);
    changed = rk_fact_new(&r->fact, rec, due) ? -1 : 1;
    rk_fact_key(key, rec->rat, rec->appeal);
  } else {
    lx_appeal_view_t a;
    if (r->api->appeal(t, rec->appeal, &a) != 0)
      return;
    rk_fact_key(key, a.opened, rec->appeal);
    if (r->api->get(t, r->facts, key, 8 + rec->appeal.n, &v, &n) != 0)
      return; /* filed before this plugin was loaded: the query scans the log */
    changed = rk_fact_load(&r->fact, v, n) ? -1 : rk_fact_apply(&r->fact, rec);
  }
  if (changed > 0)
    r->api->put(t, r->facts, key, 8 + rec->appeal.n, r->fact.buf, rk_fact_size(&r->fact));
  else if (changed < 0)
    r->api->log(r->host, LX_PLOG_ERROR, "out of memory keeping appeal %.*s", (int)rec->appeal.n,
                rec->appeal.p);
}

static void rk_apply(void *state, lx_txn_t *t, const lx_rec_t *rec) {
  rk_t *r = state;
  const void *v;
  size_t n;
  /* since_stored only skips a look-up that would find the key: it is set
   * after a commit (react), so apply writes the same with or without it. */
  if (!r->since_stored && r->api->get(t, r->meta, "since", 5, &v, &n) == 1)
    r->api->put(t, r->meta, "since", 5, &rec->rat, sizeof rec->rat);
  if (rec->type == LX_REC_PLUGIN && slice_is(rec->type_name, "ranking"))
    apply_ranking(r, t, rec);
  else if (rec->appeal.n)
    apply_fact(r, t, rec);
}

/* --- on_timer: rank each period that has ended, once ------------------------------ */

bool rk_marked(rk_t *r, lx_txn_t *t, const char *period, int ti) {
  char key[40];
  const void *v;
  size_t n;
  size_t kn = rk_mark_key(key, sizeof key, period, ti ? "township" : "community");
  return r->api->get(t, r->done, key, kn, &v, &n) == 0;
}

int64_t rk_since(rk_t *r, lx_txn_t *t) {
  const void *v;
  size_t n;
  int64_t since = -1;
  if (r->api->get(t, r->meta, "since", 5, &v, &n) == 0 && n == sizeof since)
    memcpy(&since, v, sizeof since);
  return since;
}

/* Appends the rankings of period p that are not marked; returns how many. */
static int rank_period(rk_t *r, lx_txn_t *t, const rk_period_t *p) {
  char name[16];
  rk_calc_t c;
  int made = 0;
  rk_period_format(p, name);
  if (rk_marked(r, t, name, 0) && rk_marked(r, t, name, 1))
    return 0;
  if (rk_compute(r, t, p, &c))
    return 0;
  for (int ti = 0; ti < 2; ti++) {
    if (rk_marked(r, t, name, ti))
      continue;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rk_calc_pack(&c, ti, name, r->list_size, "", &pk);
    lx_slice_t county = {r->county, strlen(r->county)};
    /* An event is at most 64 KiB with its envelope: too many units for one
     * record is said, not retried every second. */
    int rc = sb.size > RK_BODY_MAX ? -1
             : r->api->append(r->host, "ranking", county, (const uint8_t *)sb.data, sb.size);
    if (rc)
      r->api->log(r->host, LX_PLOG_ERROR, "ranking %s/%s (%zu bytes) was not appended (%d)", name,
                  ti ? "township" : "community", sb.size, rc);
    made += rc == 0;
    msgpack_sbuffer_destroy(&sb);
  }
  rk_calc_free(&c);
  return made;
}

static void rk_on_timer(void *state, int64_t now) {
  rk_t *r = state;
  lx_txn_t *t = r->api->read_begin(r->host);
  if (!t)
    return;
  int64_t since = rk_since(r, t);
  rk_period_t cur = rk_period_of(r->kind, now, r->off);
  int64_t next = rk_period_end(&cur, r->off);
  int done = 0;
  /* Every period that ended after this plugin saw its first record. */
  if (since >= 0)
    for (rk_period_t p = rk_period_of(r->kind, since, r->off); rk_period_end(&p, r->off) <= now;
         p = rk_period_next(&p)) {
      if (done >= RK_PERIODS_PER_TURN) {
        next = now; /* the rest after this batch is committed */
        break;
      }
      done += rank_period(r, t, &p) > 0;
    }
  r->api->read_end(t);
  r->api->arm(r->host, next);
}

/* --- react: tell the county ------------------------------------------------------ */

static int alert_part(void *arg, const msgpack_object_kv *kv) {
  msgpack_packer *pk = arg;
  if (is_key(&kv->key, "period") || is_key(&kv->key, "tier") || is_key(&kv->key, "red") ||
      is_key(&kv->key, "black")) {
    msgpack_pack_object(pk, kv->key);
    msgpack_pack_object(pk, kv->val);
  }
  return 0;
}

static void rk_react(void *state, const lx_rec_t *rec) {
  rk_t *r = state;
  r->since_stored = true; /* this record's apply stored it, or an earlier one did */
  if (rec->type != LX_REC_PLUGIN || !slice_is(rec->type_name, "ranking"))
    return;
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 4);
  if (rk_body_each(rec, alert_part, &pk) == 0)
    r->api->publish(r->host, rec, "ranking", rec->unit, (const uint8_t *)sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

const lx_plugin_t lx_plugin_entry = {
    .abi = LX_PLUGIN_ABI,
    .name = "rank",
    .description = "ranks units on response, resolution and satisfaction each period (red and black lists)",
    .types = rk_types,
    .init = rk_init,
    .apply = rk_apply,
    .react = rk_react,
    .on_timer = rk_on_timer,
    .close = rk_close,
    .ops = rk_ops,
    .query = rk_query,
    .check = rk_check,
};
