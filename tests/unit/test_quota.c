/* SPDX-License-Identifier: MIT
 *
 * test_quota.c: the field-day quota plugin (plugins/quota/quota.c) through
 * the mock host (mock_host.c) with a fake clock: distinct local dates at
 * UTC+8 (the sample's calendar), per-cadre overrides, the majority-township
 * rule and its tie rule, the month-end records (one per township with a
 * cadre behind, none repeated across restarts, missed months caught up),
 * and the `quota` query op with its errors and narrowing.
 *
 * Every expected figure is worked out by hand beside it; the times are
 * literal milliseconds for local (UTC+8) times, converted with Python's
 * datetime.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mock_host.h"

#ifndef LX_QUOTA_SO
#error "LX_QUOTA_SO must name the built quota.so (tests/CMakeLists.txt)"
#endif

/* Local times, UTC+8. */
#define FEB20_1000 1771552800000LL
#define MAR01_2330 1772379000000LL /* 15:30Z */
#define MAR01_2359 1772380740000LL /* 15:59Z */
#define MAR02_0001 1772380860000LL /* 16:01Z on 1 Mar: a new local date, the same UTC date */
#define MAR02_0730 1772407800000LL /* 23:30Z on 1 Mar */
#define MAR03_0030 1772469000000LL /* 16:30Z on 2 Mar */
#define MAR03_2330 1772551800000LL /* 15:30Z on 3 Mar: another UTC date, the same local one */
#define MAR10_1200 1773115200000LL
#define MAR15_1000 1773540000000LL
#define APR01_0000 1774972800000LL /* March ends */
#define APR02_1000 1775095200000LL
#define MAY01_0000 1777564800000LL /* April ends */
#define MAY15_1000 1778810400000LL
#define JAN01_2027 1798732800000LL
#define FEB10_2027 1802188800000LL

static const char *so_path(void) {
  const char *env = getenv("LX_QUOTA_SO");
  return env && *env ? env : LX_QUOTA_SO;
}

/* --- reading rows back ---------------------------------------------------------- */

typedef struct row {
  char actor[65], unit[100];
  int64_t days, required, expected;
  int behind; /* -1 when the map has no `behind` */
} row_t;

static void str_of(const msgpack_object *o, char *out, size_t cap) {
  assert_non_null(o);
  assert_int_equal(o->type, MSGPACK_OBJECT_STR);
  assert_true(o->via.str.size < cap);
  memcpy(out, o->via.str.ptr, o->via.str.size);
  out[o->via.str.size] = 0;
}

static int64_t int_of(const msgpack_object *o) {
  assert_non_null(o);
  assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  return (int64_t)o->via.u64;
}

static size_t read_rows(const msgpack_object *list, row_t *rows, size_t cap) {
  assert_non_null(list);
  assert_int_equal(list->type, MSGPACK_OBJECT_ARRAY);
  assert_true(list->via.array.size <= cap);
  for (uint32_t i = 0; i < list->via.array.size; i++) {
    const msgpack_object *m = &list->via.array.ptr[i];
    row_t *r = &rows[i];
    memset(r, 0, sizeof *r);
    str_of(lx_mp_get(m, "actor"), r->actor, sizeof r->actor);
    if (lx_mp_get(m, "unit"))
      str_of(lx_mp_get(m, "unit"), r->unit, sizeof r->unit);
    r->days = int_of(lx_mp_get(m, "days"));
    r->required = int_of(lx_mp_get(m, "required"));
    r->expected = int_of(lx_mp_get(m, "expected"));
    const msgpack_object *b = lx_mp_get(m, "behind");
    r->behind = b ? b->type == MSGPACK_OBJECT_BOOLEAN && b->via.boolean : -1;
  }
  return list->via.array.size;
}

static void row_is(const row_t *r, const char *actor, const char *unit, int64_t days,
                   int64_t required, int64_t expected) {
  assert_string_equal(r->actor, actor);
  if (unit)
    assert_string_equal(r->unit, unit);
  assert_int_equal(r->days, days);
  assert_int_equal(r->required, required);
  assert_int_equal(r->expected, expected);
  if (r->behind >= 0)
    assert_int_equal(r->behind, days < expected);
}

/* Asks `quota` for year (unit NULL for all); returns the rows, *as_of. */
static size_t ask(mh_t *h, int64_t year, const char *unit, const char *jur, row_t *rows,
                  size_t cap, int64_t *as_of) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, unit ? 3 : 2);
  lx_mp_pack_cstr(&pk, "op");
  lx_mp_pack_cstr(&pk, "quota");
  lx_mp_pack_cstr(&pk, "year");
  msgpack_pack_int64(&pk, year);
  if (unit) {
    lx_mp_pack_cstr(&pk, "unit");
    lx_mp_pack_cstr(&pk, unit);
  }
  lx_query_t q;
  int rc = mh_query(h, "quota", (const uint8_t *)sb.data, sb.size, jur, &q);
  msgpack_sbuffer_destroy(&sb);
  if (rc)
    fail_msg("quota refused: %d %s", rc, q.error);
  msgpack_zone z;
  msgpack_object o;
  size_t off = 0;
  msgpack_zone_init(&z, 4096);
  assert_int_equal(msgpack_unpack((const char *)q.reply, q.reply_len, &off, &z, &o),
                   MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(int_of(lx_mp_get(&o, "year")), year);
  *as_of = int_of(lx_mp_get(&o, "as_of"));
  size_t n = read_rows(lx_mp_get(&o, "rows"), rows, cap);
  msgpack_zone_destroy(&z);
  free(q.reply);
  return n;
}

/* The rows of the quota record h->recs[i], checked for township and month. */
static size_t record_rows(mh_t *h, size_t i, const char *unit, int64_t month, row_t *rows,
                          size_t cap) {
  assert_true(i < h->n_recs);
  assert_string_equal(h->recs[i].type, "quota");
  assert_string_equal(h->recs[i].actor, "quota");
  assert_string_equal(h->recs[i].unit, unit);
  msgpack_zone z;
  msgpack_object o;
  size_t off = 0;
  msgpack_zone_init(&z, 4096);
  assert_int_equal(msgpack_unpack((const char *)h->recs[i].raw, h->recs[i].raw_len, &off, &z, &o),
                   MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(o.via.map.size, 3);
  assert_int_equal(int_of(lx_mp_get(&o, "year")), 2026);
  assert_int_equal(int_of(lx_mp_get(&o, "month")), month);
  size_t n = read_rows(lx_mp_get(&o, "behind"), rows, cap);
  msgpack_zone_destroy(&z);
  return n;
}


/* --- config ------------------------------------------------------------------------- */

static void test_config(void **state) {
  mh_t *h = mh_new(so_path(), "quota", NULL, 0, MAR10_1200);
  assert_int_equal(mh_init(h), 0);
  assert_int_equal(h->conf_errors, 0);
  assert_string_equal(h->plugin->name, "quota");
  assert_string_equal(h->plugin->types[0], "quota");
  assert_string_equal(h->plugin->ops[0], "quota");
  mh_free(&h);

  static const lx_conf_item_t actors[] = {{"leader-1", "90", 41}, {"leader-2", "ninety", 42},
                                          {"leader-3", "-1", 43}, {"leader-4", "367", 44}};
  static const lx_conf_kv_t bad[] = {
      {.key = "days_per_year", .value = "sixty", .line = 40},
      {.key = "actors", .line = 41, .shape = LX_CONF_MAP, .items = (lx_conf_item_t *)actors,
       .n_items = 4},
  };
  h = mh_new(so_path(), "quota", bad, 2, MAR10_1200);
  assert_int_not_equal(mh_init(h), 0);
  assert_int_equal(h->conf_errors, 4);
  assert_string_equal(h->conf_error_keys,
                      "days_per_year actors.leader-2 actors.leader-3 actors.leader-4 ");
  mh_free(&h);

  /* actors must be a map, not a single value or a list */
  static const lx_conf_kv_t scalar[] = {{.key = "actors", .value = "leader-1", .line = 41}};
  h = mh_new(so_path(), "quota", scalar, 1, MAR10_1200);
  assert_int_not_equal(mh_init(h), 0);
  assert_string_equal(h->conf_error_keys, "actors ");
  mh_free(&h);
}

/* --- the scenario --------------------------------------------------------------------- */

/* days_per_year 60; leader-1 owes 90, c4 owes nothing. */
static const lx_conf_item_t over[] = {{"leader-1", "90", 51}, {"c4", "0", 52}};
static const lx_conf_kv_t kv[] = {
    {.key = "days_per_year", .value = "60", .line = 50},
    {.key = "actors", .line = 51, .shape = LX_CONF_MAP, .items = (lx_conf_item_t *)over, .n_items = 2},
};

static mh_t *scenario(void) {
  mh_t *h = mh_new(so_path(), "quota", kv, 2, MAR10_1200);
  assert_int_equal(mh_init(h), 0);
  mh_start(h);
  assert_int_equal(h->n_recs, 0);
  assert_int_equal(h->armed, APR01_0000);
  /* c1: 23:59 and 00:01 are two local dates, 00:01 and 07:30 one; a visit
   * dated in the future counts on its receive date (10 Mar): 3 days. */
  mh_visit_as(h, "c1", "qd.hx.dy", MAR01_2359);
  mh_visit_as(h, "c1", "qd.hx.dy", MAR02_0001);
  mh_visit_as(h, "c1", "qd.hx.dy", MAR02_0730);
  mh_visit_as(h, "c1", "qd.hx.dy", MAR10_1200 + 3 * 86400000LL);
  /* c4: two UTC dates, one local date (3 Mar): 1 day. */
  mh_visit_as(h, "c4", "qd.nh.hb", MAR03_0030);
  mh_visit_as(h, "c4", "qd.nh.hb", MAR03_2330);
  /* leader-1: 1 day. */
  mh_visit_as(h, "leader-1", "qd.hx.xc", MAR02_0730);
  /* c2: 2 visits in hx, 3 in xs -> xs; dates 1, 2, 3 Mar and 20 Feb: 4 days. */
  mh_visit_as(h, "c2", "qd.hx.dy", MAR01_2330);
  mh_visit_as(h, "c2", "qd.hx.dy", MAR02_0730);
  mh_visit_as(h, "c2", "qd.xs.sq", MAR03_0030);
  mh_visit_as(h, "c2", "qd.xs.sq", MAR03_2330);
  mh_visit_as(h, "c2", "qd.xs.sq", FEB20_1000);
  /* c3: one visit each; the earliest visit (20 Feb, received second) is in
   * hx, so hx: 2 days. */
  mh_visit_as(h, "c3", "qd.xs.lq", MAR01_2330);
  mh_visit_as(h, "c3", "qd.hx.bl", FEB20_1000);
  /* an appeal is no visit */
  mh_appeal(h, "ap-1", "qd.xs.gy", "jobs", false);
  return h;
}

static void test_days_overrides_and_townships(void **state) {
  mh_t *h = scenario();
  row_t rows[16];
  int64_t as_of;
  /* 10 Mar: January and February have ended: 60 x 2 / 12 = 10, 90 x 2 / 12 = 15. */
  size_t n = ask(h, 2026, NULL, "", rows, 16, &as_of);
  assert_int_equal(as_of, MAR10_1200);
  assert_int_equal(n, 5);
  row_is(&rows[0], "c1", "qd.hx", 3, 60, 10);
  row_is(&rows[1], "c3", "qd.hx", 2, 60, 10);
  row_is(&rows[2], "leader-1", "qd.hx", 1, 90, 15);
  row_is(&rows[3], "c4", "qd.nh", 1, 0, 0);
  row_is(&rows[4], "c2", "qd.xs", 4, 60, 10);
  assert_int_equal(rows[3].behind, 0);

  /* A supervisor of xs sees xs; a unit narrows further; a community holds no township. */
  n = ask(h, 2026, NULL, "qd.xs", rows, 16, &as_of);
  assert_int_equal(n, 1);
  row_is(&rows[0], "c2", "qd.xs", 4, 60, 10);
  assert_int_equal(ask(h, 2026, "qd.hx", "", rows, 16, &as_of), 3);
  assert_int_equal(ask(h, 2026, "qd.hx", "qd.xs", rows, 16, &as_of), 0);
  assert_int_equal(ask(h, 2026, "qd.hx.dy", "", rows, 16, &as_of), 0);
  assert_int_equal(ask(h, 2026, "qd", "", rows, 16, &as_of), 5);
  /* no visit in 2025 */
  assert_int_equal(ask(h, 2025, NULL, "", rows, 16, &as_of), 0);
  assert_int_equal(as_of, JAN01_2027 - 365 * 86400000LL);
  mh_free(&h);
}

static void test_month_end_restart_and_catch_up(void **state) {
  mh_t *h = scenario();
  row_t rows[16];
  int64_t as_of;
  mh_advance(h, APR01_0000 - 1);
  assert_int_equal(h->n_recs, 0);
  /* March ends: 60 x 3 / 12 = 15, 90 x 3 / 12 = 22.5 -> 23. c4 owes 0: no
   * record for nh. */
  mh_advance(h, APR01_0000);
  assert_int_equal(h->n_recs, 2);
  assert_int_equal(h->recs[0].rat, APR01_0000);
  assert_int_equal(record_rows(h, 0, "qd.hx", 3, rows, 16), 3);
  row_is(&rows[0], "c1", NULL, 3, 60, 15);
  row_is(&rows[1], "c3", NULL, 2, 60, 15);
  row_is(&rows[2], "leader-1", NULL, 1, 90, 23);
  assert_int_equal(record_rows(h, 1, "qd.xs", 3, rows, 16), 1);
  row_is(&rows[0], "c2", NULL, 4, 60, 15);
  assert_int_equal(h->n_alerts, 2);
  assert_string_equal(h->alerts[0].kind, "quota");
  assert_string_equal(h->alerts[0].unit, "qd.hx");
  assert_int_equal(h->alerts[0].seq, h->recs[0].seq);
  assert_string_equal(h->alerts[1].unit, "qd.xs");
  assert_int_equal(h->armed, MAY01_0000);

  /* A visit made in March, received in April: the query counts it now. */
  mh_advance(h, APR02_1000);
  mh_visit_as(h, "c2", "qd.xs.sq", MAR15_1000);
  assert_int_equal(ask(h, 2026, "qd.xs", "", rows, 16, &as_of), 1);
  row_is(&rows[0], "c2", "qd.xs", 5, 60, 15);

  /* A restart re-examines March: nothing new. */
  mh_restart(h, APR02_1000 + 1000);
  assert_int_equal(h->n_recs, 2);
  /* Down over April's end: at start April's records come, once. */
  mh_restart(h, MAY15_1000);
  assert_int_equal(h->n_recs, 4);
  assert_int_equal(record_rows(h, 2, "qd.hx", 4, rows, 16), 3);
  row_is(&rows[0], "c1", NULL, 3, 60, 20);
  row_is(&rows[2], "leader-1", NULL, 1, 90, 30);
  assert_int_equal(record_rows(h, 3, "qd.xs", 4, rows, 16), 1);
  row_is(&rows[0], "c2", NULL, 5, 60, 20);
  mh_restart(h, MAY15_1000 + 1000);
  assert_int_equal(h->n_recs, 4);
  /* every record is what the log implies: apply noted no mismatch */
  assert_int_equal(mh_db_count(h, "mismatch"), 0);

  /* 2027: 2026 as of its end, all twelve months owed. */
  h->armed = -1; /* eight month ends on the way are not this test's subject */
  mh_advance(h, FEB10_2027);
  assert_int_equal(ask(h, 2026, NULL, "", rows, 16, &as_of), 5);
  assert_int_equal(as_of, JAN01_2027);
  row_is(&rows[0], "c1", "qd.hx", 3, 60, 60);
  row_is(&rows[2], "leader-1", "qd.hx", 1, 90, 90);
  assert_int_equal(ask(h, 2027, NULL, "", rows, 16, &as_of), 0);
  assert_int_equal(as_of, FEB10_2027);
  mh_free(&h);
}

/* Bad requests name the key. */
static void expect_bad(mh_t *h, const char *json_key, const uint8_t *req, size_t len) {
  lx_query_t q;
  assert_int_equal(mh_query(h, "quota", req, len, "", &q), LX_QE_BADREQ);
  assert_null(q.reply);
  if (strncmp(q.error, json_key, strlen(json_key)) != 0)
    fail_msg("error \"%s\" does not name %s", q.error, json_key);
}

static void test_bad_requests(void **state) {
  mh_t *h = scenario();
  /* {op: quota} */
  expect_bad(h, "year", (const uint8_t *)"\x81\xa2op\xa5quota", 10);
  /* {op: quota, year: "2026"} */
  expect_bad(h, "year", (const uint8_t *)"\x82\xa2op\xa5quota\xa4year\xa4" "2026", 20);
  /* {op: quota, year: 1969} */
  expect_bad(h, "year", (const uint8_t *)"\x82\xa2op\xa5quota\xa4year\xcd\x07\xb1", 18);
  /* {op: quota, year: 2026, unit: "qd.zz"} */
  expect_bad(h, "unit", (const uint8_t *)"\x83\xa2op\xa5quota\xa4year\xcd\x07\xea\xa4unit\xa5qd.zz", 29);
  /* {op: quota, year: 2026, unit: 7} */
  expect_bad(h, "unit", (const uint8_t *)"\x83\xa2op\xa5quota\xa4year\xcd\x07\xea\xa4unit\x07", 24);
  /* {op: quota, year: 2026, yaer: 1} */
  expect_bad(h, "yaer", (const uint8_t *)"\x83\xa2op\xa5quota\xa4year\xcd\x07\xea\xa4yaer\x01", 24);
  mh_free(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config),
      cmocka_unit_test(test_days_overrides_and_townships),
      cmocka_unit_test(test_month_end_restart_and_catch_up),
      cmocka_unit_test(test_bad_requests),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
