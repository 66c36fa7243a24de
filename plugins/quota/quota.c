/* SPDX-License-Identifier: MIT
 *
 * quota.c: field-day quotas (驻村天数, 下沉): every cadre owes days_per_year
 * distinct local dates of visits a year (PROTOCOL.md "Assessment"), and at
 * each month's end each township with a cadre behind gets a `quota` record
 * and alert. The query op `quota` recomputes the table on request.
 *
 * Design: apply keeps three databases in step with the log,
 *   day:  year | actor | local day             -> rat of its first visit
 *   town: year | actor | rat month | township  -> visits, earliest (at, seq)
 *   sent: year | month | township              -> "" (a quota record stored)
 *   mismatch: u64be seq                          -> "" (a quota record that is
 *                                                   not what the log implies)
 * (actor = length byte + bytes; "rat month" = months from January of the
 * year to the month the visits were received in). Keeping the first rat of
 * a date and bucketing the township counts by the month they arrived in
 * lets every figure be taken exactly "as of" any month's end from the
 * databases alone: a visit recorded offline and received after the month
 * ended does not change that month's record, so a record appended late
 * (after downtime) says what one appended on time would have said, and an
 * auditor recomputes it from the log with the same rule.
 *
 * on_timer examines the 13 months that ended last, so the catch-up after
 * downtime (or a crash between deciding and committing) is the same code as
 * the monthly run; a township's record for a month is appended only while
 * `sent` does not hold it, and the record's own apply fills `sent` in the
 * transaction that stores it: exactly one per township and month.
 *
 * That apply also recomputes the record's body from the databases (as of
 * the month's end, which the buckets make exact) and notes a record whose
 * body differs in `mismatch`. An honest daemon never notes one; an audit
 * that rebuilds the databases from a log whose quota record was rewritten
 * (chain and all) does, so the rewrite shows as a database difference.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/lxp.h"

#define ACTOR_MAX 64
#define PATH_MAX_ 100
#define CATCH_UP_MONTHS 13
#define YEAR_MIN 1970
#define YEAR_MAX 9999

typedef struct qt_override {
  char actor[ACTOR_MAX + 1];
  long days;
} qt_override_t;

typedef struct qt {
  const lx_host_api_t *api;
  lx_host_t *host;
  lx_db_t day, town, sent, mismatch;
  long days_per_year;
  qt_override_t *over;
  size_t n_over;
} qt_t;

/* One row of the table: a cadre, its home township and its figures. */
typedef struct qt_row {
  uint8_t akey[1 + ACTOR_MAX]; /* length byte + actor, as in the keys */
  char unit[PATH_MAX_];
  long days, required, expected;
  /* choosing the home township while its entries are read */
  uint32_t best_count;
  int64_t best_at;
  uint64_t best_seq;
} qt_row_t;

typedef struct qt_table {
  qt_row_t *rows;
  size_t n, cap;
} qt_table_t;

static const char *const qt_types[] = {"quota", NULL};
static const char *const qt_ops[] = {"quota", NULL};

/* --- config ---------------------------------------------------------------- */

static int conf_actors(qt_t *q) {
  const lx_conf_item_t *items;
  size_t n;
  int rc = q->api->conf_items(q->host, "actors", LX_CONF_MAP, &items, &n);
  if (rc)
    return rc < 0 ? -1 : 0;
  q->over = calloc(n ? n : 1, sizeof *q->over);
  if (!q->over)
    return -1;
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    char *end;
    long d = strtol(items[i].value, &end, 10);
    if (strlen(items[i].key) > ACTOR_MAX || !*items[i].key) {
      q->api->conf_item_error(q->host, "actors", &items[i], "an actor id is 1 to %d bytes", ACTOR_MAX);
      bad = -1;
    } else if (!*items[i].value || *end || d < 0 || d > 366) {
      q->api->conf_item_error(q->host, "actors", &items[i], "expected field days from 0 to 366");
      bad = -1;
    } else {
      snprintf(q->over[q->n_over].actor, sizeof q->over[0].actor, "%s", items[i].key);
      q->over[q->n_over++].days = d;
    }
  }
  return bad;
}

static int qt_init(const lx_host_api_t *api, lx_host_t *host, void **state) {
  qt_t *q = calloc(1, sizeof *q);
  if (!q)
    return -1;
  q->api = api;
  q->host = host;
  int bad = lxp_conf_int(api, host, "days_per_year", 60, 0, 366, &q->days_per_year);
  bad |= conf_actors(q);
  if (bad || api->db_open(host, "day", &q->day) || api->db_open(host, "town", &q->town) ||
      api->db_open(host, "sent", &q->sent) || api->db_open(host, "mismatch", &q->mismatch)) {
    free(q->over);
    free(q);
    return -1;
  }
  *state = q;
  return 0;
}

static void qt_close(void *state) {
  qt_t *q = state;
  free(q->over);
  free(q);
}

static long required_of(const qt_t *q, const uint8_t *akey) {
  for (size_t i = 0; i < q->n_over; i++)
    if (strlen(q->over[i].actor) == akey[0] && memcmp(q->over[i].actor, akey + 1, akey[0]) == 0)
      return q->over[i].days;
  return q->days_per_year;
}

/* --- apply ------------------------------------------------------------------- */

static size_t year_actor(uint8_t *k, int year, const char *actor, size_t n) {
  lxp_put_be(k, (uint64_t)year, 2);
  k[2] = (uint8_t)n;
  memcpy(k + 3, actor, n);
  return 3 + n;
}

/* A visit: its local date (of `at`, or of `rat` when `at` is later) and its
 * township, for the cadre that recorded it. */
static void apply_visit(qt_t *q, lx_txn_t *t, const lx_rec_t *r) {
  char town[PATH_MAX_];
  int off = (int)(q->api->utc_offset_ms(q->host) / 60000);
  if (r->actor.n <= ACTOR_MAX && r->actor.n > 0 &&
      q->api->unit_at_tier(q->host, r->unit, LX_TOWNSHIP, town) == 0) {
    int64_t eff = r->at < r->rat ? r->at : r->rat, day = lxp_local_day(eff, off);
    int y, m, d, ry, rm;
    lxp_civil_from_days(day, &y, &m, &d);
    lxp_civil_from_days(lxp_local_day(r->rat, off), &ry, &rm, &d);
    if (y >= YEAR_MIN && y <= YEAR_MAX) {
      uint8_t k[3 + ACTOR_MAX + 1 + PATH_MAX_], v[20];
      const void *old;
      size_t n = year_actor(k, y, r->actor.p, r->actor.n), vn;
      lxp_put_be(k + n, (uint64_t)(day - lxp_days_from_civil(YEAR_MIN, 1, 1)), 4);
      lxp_put_be(v, (uint64_t)r->rat, 8);
      if (q->api->get(t, q->day, k, n + 4, &old, &vn) == 1)
        q->api->put(t, q->day, k, n + 4, v, 8);
      int midx = (ry - y) * 12 + rm - 1;
      k[n] = (uint8_t)(midx > 255 ? 255 : midx);
      memcpy(k + n + 1, town, strlen(town));
      n += 1 + strlen(town);
      uint32_t count = 1;
      int64_t e_at = eff;
      uint64_t e_seq = r->seq;
      if (q->api->get(t, q->town, k, n, &old, &vn) == 0 && vn == 20) {
        count = (uint32_t)lxp_get_be(old, 4) + 1;
        if ((int64_t)lxp_get_be((const uint8_t *)old + 4, 8) <= eff) { /* the earlier stays */
          e_at = (int64_t)lxp_get_be((const uint8_t *)old + 4, 8);
          e_seq = lxp_get_be((const uint8_t *)old + 12, 8);
        }
      }
      lxp_put_be(v, count, 4);
      lxp_put_be(v + 4, (uint64_t)e_at, 8);
      lxp_put_be(v + 12, e_seq, 8);
      q->api->put(t, q->town, k, n, v, 20);
    }
  }
}

static size_t sent_key(uint8_t *k, int year, int month, lx_slice_t unit) {
  lxp_put_be(k, (uint64_t)year, 2);
  k[2] = (uint8_t)month;
  memcpy(k + 3, unit.p, unit.n);
  return 3 + unit.n;
}

/* --- the table, as of a time ------------------------------------------------- */

typedef struct qt_scan {
  const qt_t *q;
  qt_table_t *tab;
  uint8_t year[2];
  int64_t before;  /* day: count dates whose first visit was received before this */
  int months;      /* town: count visits received in the first `months` months */
  size_t at;       /* town: the row of the actor being read */
  int failed;
} qt_scan_t;

static int akey_cmp(const uint8_t *a, const uint8_t *b) {
  return memcmp(a, b, 1 + (a[0] < b[0] ? a[0] : b[0]));
}

static int scan_days(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
  qt_scan_t *s = arg;
  const uint8_t *k = key;
  if (klen < 3 || memcmp(k, s->year, 2) != 0)
    return 1;
  if (klen != 3u + k[2] + 4 || vlen != 8 || (int64_t)lxp_get_be(val, 8) >= s->before)
    return 0;
  qt_table_t *tb = s->tab;
  if (tb->n == 0 || akey_cmp(tb->rows[tb->n - 1].akey, k + 2) != 0) {
    if (tb->n == tb->cap) {
      size_t cap = tb->cap ? tb->cap * 2 : 64;
      qt_row_t *p = realloc(tb->rows, cap * sizeof *p);
      if (!p)
        return s->failed = 1;
      tb->rows = p;
      tb->cap = cap;
    }
    qt_row_t *row = &tb->rows[tb->n++];
    memset(row, 0, sizeof *row);
    memcpy(row->akey, k + 2, 1u + k[2]);
    row->required = required_of(s->q, row->akey);
  }
  tb->rows[tb->n - 1].days++;
  return 0;
}

/* Entries of one actor come together; its townships' totals are summed
 * over the months counted, so each (actor, township) pair is looked up in
 * a small list kept while that actor is read. */
typedef struct qt_town {
  char unit[PATH_MAX_];
  uint32_t count;
  int64_t e_at;
  uint64_t e_seq;
} qt_town_t;

typedef struct qt_towns {
  qt_town_t *t;
  size_t n, cap;
} qt_towns_t;

static void choose_home(qt_row_t *row, const qt_towns_t *tw) {
  for (size_t i = 0; i < tw->n; i++) {
    const qt_town_t *c = &tw->t[i];
    bool better = c->count > row->best_count ||
                  (c->count == row->best_count &&
                   (c->e_at < row->best_at || (c->e_at == row->best_at && c->e_seq < row->best_seq)));
    if (better) {
      row->best_count = c->count;
      row->best_at = c->e_at;
      row->best_seq = c->e_seq;
      snprintf(row->unit, sizeof row->unit, "%s", c->unit);
    }
  }
}

typedef struct qt_tscan {
  qt_scan_t s;
  qt_towns_t tw;
  uint8_t cur[1 + ACTOR_MAX];
} qt_tscan_t;

static qt_row_t *find_row(qt_table_t *tb, const uint8_t *akey) {
  size_t lo = 0, hi = tb->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = akey_cmp(tb->rows[mid].akey, akey);
    if (c == 0)
      return &tb->rows[mid];
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

static void flush_actor(qt_tscan_t *ts) {
  qt_row_t *row = ts->tw.n ? find_row(ts->s.tab, ts->cur) : NULL;
  if (row)
    choose_home(row, &ts->tw);
  ts->tw.n = 0;
}

static int town_add(qt_tscan_t *ts, const char *unit, size_t un, const uint8_t *v) {
  size_t i = 0;
  while (i < ts->tw.n && !(strlen(ts->tw.t[i].unit) == un && memcmp(ts->tw.t[i].unit, unit, un) == 0))
    i++;
  if (i == ts->tw.n) {
    if (ts->tw.n == ts->tw.cap) {
      size_t cap = ts->tw.cap ? ts->tw.cap * 2 : 8;
      qt_town_t *p = realloc(ts->tw.t, cap * sizeof *p);
      if (!p)
        return -1;
      ts->tw.t = p;
      ts->tw.cap = cap;
    }
    qt_town_t *c = &ts->tw.t[ts->tw.n++];
    snprintf(c->unit, sizeof c->unit, "%.*s", (int)un, unit);
    c->count = 0;
    c->e_at = INT64_MAX;
    c->e_seq = UINT64_MAX;
  }
  qt_town_t *c = &ts->tw.t[i];
  int64_t at = (int64_t)lxp_get_be(v + 4, 8);
  uint64_t seq = lxp_get_be(v + 12, 8);
  c->count += (uint32_t)lxp_get_be(v, 4);
  if (at < c->e_at || (at == c->e_at && seq < c->e_seq)) {
    c->e_at = at;
    c->e_seq = seq;
  }
  return 0;
}

static int scan_towns(void *arg, const void *key, size_t klen, const void *val, size_t vlen) {
  qt_tscan_t *ts = arg;
  const uint8_t *k = key;
  if (klen < 3 || memcmp(k, ts->s.year, 2) != 0)
    return 1;
  size_t an = 3u + k[2];
  if (klen <= an + 1 || klen - an - 1 >= PATH_MAX_ || vlen != 20)
    return 0;
  if (akey_cmp(ts->cur, k + 2) != 0) {
    flush_actor(ts);
    memcpy(ts->cur, k + 2, 1u + k[2]);
  }
  if (k[an] >= ts->s.months)
    return 0;
  if (town_add(ts, (const char *)k + an + 1, klen - an - 1, val))
    return ts->s.failed = 1;
  return 0;
}

static int row_cmp(const void *a, const void *b) {
  const qt_row_t *x = a, *y = b;
  int c = strcmp(x->unit, y->unit);
  if (c)
    return c;
  size_t n = x->akey[0] < y->akey[0] ? x->akey[0] : y->akey[0];
  c = memcmp(x->akey + 1, y->akey + 1, n);
  return c ? c : (int)x->akey[0] - (int)y->akey[0];
}

/* The table of `year` as of `before` (visits received before it; `months`
 * of the year's months received in), with `ended` months owed: rows sorted
 * by township, then actor. Returns 0 or -1. */
static int qt_table(const qt_t *q, lx_txn_t *t, int year, int64_t before, int months, int ended,
                    qt_table_t *tab) {
  qt_tscan_t ts = {.s = {.q = q, .tab = tab, .before = before, .months = months}};
  memset(tab, 0, sizeof *tab);
  lxp_put_be(ts.s.year, (uint64_t)year, 2);
  if (q->api->scan(t, q->day, ts.s.year, 2, scan_days, &ts.s) < 0 || ts.s.failed)
    return -1;
  ts.cur[0] = 0xff; /* no actor is 255 bytes long */
  int rc = q->api->scan(t, q->town, ts.s.year, 2, scan_towns, &ts);
  flush_actor(&ts);
  free(ts.tw.t);
  if (rc < 0 || ts.s.failed)
    return -1;
  size_t kept = 0;
  for (size_t i = 0; i < tab->n; i++) {
    qt_row_t *row = &tab->rows[i];
    row->expected = (row->required * ended + 11) / 12;
    if (row->unit[0]) /* a date without a township: a unit no longer configured */
      tab->rows[kept++] = *row;
  }
  tab->n = kept;
  if (tab->n > 1)
    qsort(tab->rows, tab->n, sizeof *tab->rows, row_cmp);
  return 0;
}

static void pack_row(msgpack_packer *pk, const qt_row_t *row, bool full) {
  msgpack_pack_map(pk, full ? 6 : 4);
  lxp_pack_kv_str(pk, "actor", (const char *)row->akey + 1, row->akey[0]);
  if (full)
    lxp_pack_kv_str(pk, "unit", row->unit, strlen(row->unit));
  lxp_pack_kv_int(pk, "days", row->days);
  lxp_pack_kv_int(pk, "required", row->required);
  lxp_pack_kv_int(pk, "expected", row->expected);
  if (full) {
    lxp_pack_key(pk, "behind");
    row->days < row->expected ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
  }
}

/* The body of a township's record: rows [from, to) of the table, the ones
 * behind. Returns how many are behind. */
static size_t pack_body(msgpack_sbuffer *sb, const qt_table_t *tab, size_t from, size_t to,
                        int year, int month) {
  msgpack_packer pk;
  size_t behind = 0;
  for (size_t i = from; i < to; i++)
    behind += tab->rows[i].days < tab->rows[i].expected;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 3);
  lxp_pack_kv_int(&pk, "year", year);
  lxp_pack_kv_int(&pk, "month", month);
  lxp_pack_key(&pk, "behind");
  msgpack_pack_array(&pk, (uint32_t)behind);
  for (size_t i = from; i < to; i++)
    if (tab->rows[i].days < tab->rows[i].expected)
      pack_row(&pk, &tab->rows[i], false);
  return behind;
}

/* --- apply of a quota record -------------------------------------------------- */

/* Whether `body` is the body on_timer makes for unit's month. */
static bool body_holds(const qt_t *q, lx_txn_t *t, const msgpack_object *body, int year, int month,
                       lx_slice_t unit) {
  qt_table_t tab;
  msgpack_sbuffer want, got;
  bool same = false;
  int off = (int)(q->api->utc_offset_ms(q->host) / 60000);
  msgpack_sbuffer_init(&want);
  msgpack_sbuffer_init(&got);
  if (qt_table(q, t, year, lxp_month_start(year, month + 1, off), month, month, &tab) == 0) {
    size_t i = 0, j;
    while (i < tab.n && !(strlen(tab.rows[i].unit) == unit.n && memcmp(tab.rows[i].unit, unit.p, unit.n) == 0))
      i++;
    for (j = i; j < tab.n && strcmp(tab.rows[j].unit, tab.rows[i].unit) == 0; j++)
      ;
    pack_body(&want, &tab, i, j, year, month);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &got, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *body);
    same = want.size == got.size && memcmp(want.data, got.data, got.size) == 0;
  }
  free(tab.rows);
  msgpack_sbuffer_destroy(&want);
  msgpack_sbuffer_destroy(&got);
  return same;
}

/* A quota record: that township's month is told; a body the log does not
 * imply is noted. */
static void apply_quota(qt_t *q, lx_txn_t *t, const lx_rec_t *r) {
  msgpack_zone z;
  msgpack_object root;
  int64_t y, m;
  bool good = false;
  msgpack_zone_init(&z, 1024);
  const msgpack_object *body = lxp_unpack_ev(r, &z, &root) ? lxp_get(&root, "body") : NULL;
  if (lxp_int(lxp_get(body, "year"), &y) && lxp_int(lxp_get(body, "month"), &m) &&
      y >= YEAR_MIN && y <= YEAR_MAX && m >= 1 && m <= 12 && r->unit.n <= PATH_MAX_) {
    uint8_t k[3 + PATH_MAX_];
    q->api->put(t, q->sent, k, sent_key(k, (int)y, (int)m, r->unit), "", 0);
    good = body_holds(q, t, body, (int)y, (int)m, r->unit);
  }
  if (!good) {
    uint8_t k[8];
    lxp_put_be(k, r->seq, 8);
    q->api->put(t, q->mismatch, k, 8, "", 0);
  }
  msgpack_zone_destroy(&z);
}

static void qt_apply(void *state, lx_txn_t *t, const lx_rec_t *r) {
  if (r->type == LX_REC_VISIT)
    apply_visit(state, t, r);
  else if (r->type == LX_REC_PLUGIN && lxp_slice_is(r->type_name, "quota"))
    apply_quota(state, t, r);
}

/* --- on_timer: each month's end ------------------------------------------------ */

static bool is_sent(qt_t *q, lx_txn_t *t, int year, int month, const char *unit) {
  uint8_t k[3 + PATH_MAX_];
  const void *v;
  size_t n;
  lx_slice_t u = {unit, strlen(unit)};
  return q->api->get(t, q->sent, k, sent_key(k, year, month, u), &v, &n) == 0;
}

/* Appends the record of one township (rows [from, to) of the table). */
static void append_township(qt_t *q, const qt_table_t *tab, size_t from, size_t to, int year,
                            int month) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  const char *unit = tab->rows[from].unit;
  if (pack_body(&sb, tab, from, to, year, month)) {
    int rc = q->api->append(q->host, "quota", (lx_slice_t){unit, strlen(unit)},
                            (const uint8_t *)sb.data, sb.size);
    if (rc)
      q->api->log(q->host, LX_PLOG_ERROR, "cannot append the quota of %s for %d-%02d: %d", unit,
                  year, month, rc);
  }
  msgpack_sbuffer_destroy(&sb);
}

static void month_end(qt_t *q, lx_txn_t *t, int year, int month, int off) {
  qt_table_t tab;
  if (qt_table(q, t, year, lxp_month_start(year, month + 1, off), month, month, &tab)) {
    q->api->log(q->host, LX_PLOG_ERROR, "cannot compute the quotas of %d-%02d", year, month);
    free(tab.rows);
    return;
  }
  for (size_t i = 0, j; i < tab.n; i = j) {
    for (j = i; j < tab.n && strcmp(tab.rows[j].unit, tab.rows[i].unit) == 0; j++)
      ;
    if (!is_sent(q, t, year, month, tab.rows[i].unit))
      append_township(q, &tab, i, j, year, month);
  }
  free(tab.rows);
}

static void qt_on_timer(void *state, int64_t now) {
  qt_t *q = state;
  int off = (int)(q->api->utc_offset_ms(q->host) / 60000), y, m, d;
  lxp_civil_from_days(lxp_local_day(now, off), &y, &m, &d);
  lx_txn_t *t = q->api->read_begin(q->host);
  if (t) {
    for (int back = CATCH_UP_MONTHS; back >= 1; back--) {
      int idx = y * 12 + (m - 1) - back;
      if (idx / 12 >= YEAR_MIN)
        month_end(q, t, idx / 12, idx % 12 + 1, off);
    }
    q->api->read_end(t);
  }
  q->api->arm(q->host, lxp_month_start(y, m + 1, off));
}

/* --- react --------------------------------------------------------------------- */

static void qt_react(void *state, const lx_rec_t *r) {
  qt_t *q = state;
  if (r->type == LX_REC_PLUGIN && lxp_slice_is(r->type_name, "quota"))
    lxp_publish_body(q->api, q->host, r, "quota");
}

/* --- the query op ----------------------------------------------------------------- */

static int bad(lx_query_t *x, int code, const char *fmt, const char *arg) {
  snprintf(x->error, sizeof x->error, fmt, arg);
  return code;
}

/* Reads {op, year, unit?}; unit must be a configured path. */
static int read_request(qt_t *q, lx_query_t *x, msgpack_zone *z, int64_t *year, char *unit) {
  msgpack_object root;
  size_t off = 0;
  if (msgpack_unpack((const char *)x->req, x->req_len, &off, z, &root) != MSGPACK_UNPACK_SUCCESS)
    return bad(x, LX_QE_BADREQ, "%sexpected one MessagePack map", "");
  for (uint32_t i = 0; i < root.via.map.size; i++) {
    const msgpack_object *k = &root.via.map.ptr[i].key;
    if (!lxp_key_is(k, "op") && !lxp_key_is(k, "year") && !lxp_key_is(k, "unit")) {
      char name[65] = "?";
      if (k->type == MSGPACK_OBJECT_STR)
        snprintf(name, sizeof name, "%.*s", (int)(k->via.str.size > 64 ? 64 : k->via.str.size),
                 k->via.str.ptr);
      return bad(x, LX_QE_BADREQ, "%s: unknown key", name);
    }
  }
  const msgpack_object *yo = lxp_get(&root, "year"), *uo = lxp_get(&root, "unit");
  if (!yo)
    return bad(x, LX_QE_BADREQ, "%s: required", "year");
  if (!lxp_int(yo, year) || *year < YEAR_MIN || *year > YEAR_MAX)
    return bad(x, LX_QE_BADREQ, "%s: expected a year from 1970 to 9999", "year");
  unit[0] = 0;
  if (uo) {
    char out[PATH_MAX_];
    bool known = false;
    if (uo->type != MSGPACK_OBJECT_STR || uo->via.str.size == 0 || uo->via.str.size >= PATH_MAX_)
      return bad(x, LX_QE_BADREQ, "%s: expected a unit path", "unit");
    memcpy(unit, uo->via.str.ptr, uo->via.str.size);
    unit[uo->via.str.size] = 0;
    for (int tier = LX_COMMUNITY; tier <= LX_COUNTY && !known; tier++)
      known = q->api->unit_at_tier(q->host, (lx_slice_t){unit, strlen(unit)}, tier, out) == 0 &&
              strcmp(out, unit) == 0;
    if (!known)
      return bad(x, LX_QE_BADREQ, "unit: \"%.100s\" is not a configured unit", unit);
  }
  return 0;
}

static int qt_query(void *state, lx_query_t *x) {
  qt_t *q = state;
  msgpack_zone z;
  int64_t year;
  char unit[PATH_MAX_];
  msgpack_zone_init(&z, 1024);
  int rc = read_request(q, x, &z, &year, unit);
  msgpack_zone_destroy(&z);
  if (rc)
    return rc;
  int off = (int)(q->api->utc_offset_ms(q->host) / 60000), y, m, d;
  lxp_civil_from_days(lxp_local_day(x->now, off), &y, &m, &d);
  /* Now for this year (its ended months owed), the year's end for a past one. */
  bool past = year < y;
  int64_t as_of = past ? lxp_month_start((int)year, 13, off) : x->now;
  int ended = past ? 12 : year == y ? m - 1 : 0;
  qt_table_t tab;
  if (qt_table(q, x->txn, (int)year, past ? as_of : INT64_MAX, past ? 12 : 255, ended, &tab)) {
    free(tab.rows);
    return bad(x, -1, "%scannot read the quotas", "");
  }
  size_t n = 0;
  for (size_t i = 0; i < tab.n; i++)
    n += lxp_under(tab.rows[i].unit, x->jurisdiction) && lxp_under(tab.rows[i].unit, unit);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 3);
  lxp_pack_kv_int(&pk, "year", year);
  lxp_pack_kv_int(&pk, "as_of", as_of);
  lxp_pack_key(&pk, "rows");
  msgpack_pack_array(&pk, (uint32_t)n);
  for (size_t i = 0; i < tab.n; i++)
    if (lxp_under(tab.rows[i].unit, x->jurisdiction) && lxp_under(tab.rows[i].unit, unit))
      pack_row(&pk, &tab.rows[i], true);
  free(tab.rows);
  x->reply = (uint8_t *)sb.data; /* the host frees it */
  x->reply_len = sb.size;
  return 0;
}

const lx_plugin_t lx_plugin_entry = {
    .abi = LX_PLUGIN_ABI,
    .name = "quota",
    .description = "field-day quotas: distinct local dates of each cadre's visits, told monthly",
    .types = qt_types,
    .init = qt_init,
    .apply = qt_apply,
    .react = qt_react,
    .on_timer = qt_on_timer,
    .close = qt_close,
    .ops = qt_ops,
    .query = qt_query,
};
