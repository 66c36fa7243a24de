/* SPDX-License-Identifier: MIT
 *
 * test_hotspot.c: the early-warning plugin (plugins/hotspot/hotspot.c)
 * through the mock host (mock_host.c) with a fake clock: the window's edge
 * on both sides, one hotspot per pair per window, the baseline raising the
 * bar, the pruned store, a burst of 10,000 appeals giving one hotspot, and
 * a restart that repeats nothing.
 *
 * The rule (docs/assessment.md "Hotspots"): at an appeal received at r, the
 * window holds the pair's appeals with rat in (r - window, r], the baseline
 * those in (r - window - baseline_days, r - window], scaled to one window;
 * a hotspot needs count >= max(threshold, factor x baseline) and r at least
 * window_days after the pair's previous one. Figures are worked by hand.
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

#ifndef LX_HOTSPOT_SO
#error "LX_HOTSPOT_SO must name the built hotspot.so (tests/CMakeLists.txt)"
#endif

#define DAY 86400000LL
#define T0 1772330400000LL /* 2026-03-01 10:00 +08:00 */

static const char *so_path(void) {
  const char *env = getenv("LX_HOTSPOT_SO");
  return env && *env ? env : LX_HOTSPOT_SO;
}

typedef struct hot {
  char category[65];
  int64_t count, window_days, first;
  double baseline;
} hot_t;

static hot_t hot_of(mh_t *h, size_t i, const char *unit) {
  hot_t x = {0};
  assert_true(i < h->n_recs);
  assert_string_equal(h->recs[i].type, "hotspot");
  assert_string_equal(h->recs[i].actor, "hotspot");
  assert_string_equal(h->recs[i].unit, unit);
  msgpack_zone z;
  msgpack_object o;
  size_t off = 0;
  msgpack_zone_init(&z, 1024);
  assert_int_equal(msgpack_unpack((const char *)h->recs[i].raw, h->recs[i].raw_len, &off, &z, &o),
                   MSGPACK_UNPACK_SUCCESS);
  assert_int_equal(o.via.map.size, 5);
  const msgpack_object *c = lx_mp_get(&o, "category"), *b = lx_mp_get(&o, "baseline");
  assert_true(c && c->type == MSGPACK_OBJECT_STR && c->via.str.size < sizeof x.category);
  memcpy(x.category, c->via.str.ptr, c->via.str.size);
  assert_true(b && b->type == MSGPACK_OBJECT_FLOAT64);
  x.baseline = b->via.f64;
  x.count = (int64_t)lx_mp_get(&o, "count")->via.u64;
  x.window_days = (int64_t)lx_mp_get(&o, "window_days")->via.u64;
  x.first = (int64_t)lx_mp_get(&o, "first")->via.u64;
  msgpack_zone_destroy(&z);
  return x;
}

static mh_t *start_with(const lx_conf_kv_t *kv, size_t n, int64_t now) {
  mh_t *h = mh_new(so_path(), "hotspot", kv, n, now);
  assert_int_equal(mh_init(h), 0);
  assert_int_equal(h->conf_errors, 0);
  mh_start(h);
  assert_int_equal(h->armed, -1); /* no timer: decisions come with the appeals */
  return h;
}


static int id_seq;

static void appeal_at(mh_t *h, int64_t at, const char *unit, const char *category) {
  char id[32];
  snprintf(id, sizeof id, "ap-%d", ++id_seq);
  mh_advance(h, at);
  mh_appeal(h, id, unit, category, false);
}

static void test_config(void **state) {
  static const lx_conf_kv_t bad[] = {
      {.key = "window_days", .value = "0", .line = 60},
      {.key = "threshold", .value = "five", .line = 61},
      {.key = "factor", .value = "-1", .line = 62},
      {.key = "baseline_days", .value = "3661", .line = 63},
  };
  mh_t *h = mh_new(so_path(), "hotspot", bad, 4, T0);
  assert_int_not_equal(mh_init(h), 0);
  assert_string_equal(h->conf_error_keys, "window_days threshold factor baseline_days ");
  mh_free(&h);
  h = mh_new(so_path(), "hotspot", NULL, 0, T0); /* the sample: 7, 5, 3, 90 */
  assert_int_equal(mh_init(h), 0);
  assert_int_equal(h->conf_errors, 0);
  assert_string_equal(h->plugin->types[0], "hotspot");
  mh_free(&h);
}

/* Threshold 5, window 7 days: four appeals from T0, the fifth 1 ms before
 * T0 + 7 days still sees T0 in its window (count 5: a hotspot); in another
 * category the fifth exactly at T0 + 7 days does not (T0 has left: 4). */
static void test_window_edge(void **state) {
  mh_t *h = start_with(NULL, 0, T0);
  for (int i = 0; i < 4; i++) {
    mh_advance(h, T0 + i * DAY);
    char a[16], b[16];
    snprintf(a, sizeof a, "in-%d", i);
    snprintf(b, sizeof b, "out-%d", i);
    mh_appeal(h, a, "qd.hx.dy", "jobs", false);
    mh_appeal(h, b, "qd.hx.dy", "housing", false);
  }
  assert_int_equal(h->n_recs, 0);
  appeal_at(h, T0 + 7 * DAY - 1, "qd.hx.dy", "jobs");
  assert_int_equal(h->n_recs, 1);
  hot_t x = hot_of(h, 0, "qd.hx.dy");
  assert_string_equal(x.category, "jobs");
  assert_int_equal(x.count, 5);
  assert_int_equal(x.window_days, 7);
  assert_int_equal(x.first, T0);
  assert_true(x.baseline == 0.0);
  assert_int_equal(h->recs[0].rat, T0 + 7 * DAY - 1); /* right after its appeal */
  assert_int_equal(h->n_alerts, 1);
  assert_string_equal(h->alerts[0].kind, "hotspot");
  assert_string_equal(h->alerts[0].unit, "qd.hx.dy");
  assert_int_equal(h->alerts[0].seq, h->recs[0].seq);

  appeal_at(h, T0 + 7 * DAY, "qd.hx.dy", "housing");
  assert_int_equal(h->n_recs, 1);
  /* the sixth housing appeal: T0 + 1 day .. now = 5 in the window */
  appeal_at(h, T0 + 7 * DAY + 1, "qd.hx.dy", "housing");
  assert_int_equal(h->n_recs, 2);
  x = hot_of(h, 1, "qd.hx.dy");
  assert_string_equal(x.category, "housing");
  assert_int_equal(x.count, 5);
  assert_int_equal(x.first, T0 + DAY);
  /* baseline: T0 alone in the 90 days before the window: 1 x 7 / 90 */
  assert_true(x.baseline > 0.0777 && x.baseline < 0.0778);
  mh_free(&h);
}

/* After a hotspot at H, none for that pair before H + 7 days; at H + 7
 * days the window (H, H + 7 days] holds the 4 that followed plus the new
 * one: 5, over a baseline of 5 x 7 / 90 = 0.39 (x 3 = 1.17): the next. */
static void test_once_per_window(void **state) {
  mh_t *h = start_with(NULL, 0, T0);
  for (int i = 0; i < 5; i++)
    appeal_at(h, T0 + i * 3600000LL, "qd.xs.sq", "health");
  assert_int_equal(h->n_recs, 1);
  int64_t H = T0 + 4 * 3600000LL;
  for (int i = 1; i <= 4; i++)
    appeal_at(h, H + i * DAY, "qd.xs.sq", "health");
  appeal_at(h, H + 7 * DAY - 1, "qd.xs.sq", "health"); /* 6 in the window, too soon */
  assert_int_equal(h->n_recs, 1);
  appeal_at(h, H + 7 * DAY, "qd.xs.sq", "health");
  assert_int_equal(h->n_recs, 2);
  hot_t x = hot_of(h, 1, "qd.xs.sq");
  assert_int_equal(x.count, 6); /* H+1d .. H+4d, H+7d-1ms, H+7d */
  assert_int_equal(x.first, H + DAY);
  /* baseline: the first five (T0 .. H, all <= H) x 7 / 90 */
  assert_true(x.baseline > 0.3888 && x.baseline < 0.3889);
  /* other communities and categories are other pairs */
  appeal_at(h, H + 7 * DAY + 1, "qd.xs.lq", "health");
  appeal_at(h, H + 7 * DAY + 2, "qd.xs.sq", "jobs");
  assert_int_equal(h->n_recs, 2);
  /* a restart appends nothing again */
  mh_restart(h, H + 8 * DAY);
  assert_int_equal(h->n_recs, 2);
  /* every record is what the log implies: apply noted no mismatch */
  assert_int_equal(mh_db_count(h, "mismatch"), 0);
  mh_free(&h);
}

/* threshold 2, factor 3: nine appeals 10 days apart (one per window, never
 * two) make a baseline of 9 x 7 / 90 = 0.7; 3 x 0.7 = 2.1 > 2, so the
 * second appeal of a burst is not enough and the third is. */
static void test_baseline_raises_the_bar(void **state) {
  static const lx_conf_kv_t kv[] = {
      {.key = "window_days", .value = "7", .line = 60},
      {.key = "threshold", .value = "2", .line = 61},
      {.key = "factor", .value = "3", .line = 62},
      {.key = "baseline_days", .value = "90", .line = 63},
  };
  mh_t *h = start_with(kv, 4, T0);
  for (int i = 0; i < 9; i++)
    appeal_at(h, T0 + i * 10 * DAY, "qd.nh.hb", "environment");
  assert_int_equal(h->n_recs, 0);
  int64_t B = T0 + 88 * DAY; /* the ninth was at T0 + 80 days */
  appeal_at(h, B, "qd.nh.hb", "environment");
  /* window (B - 7d, B]: B alone (T0 + 80d is 8 days back): 1 */
  appeal_at(h, B + 1000, "qd.nh.hb", "environment");
  assert_int_equal(h->n_recs, 0); /* 2 < 2.1 */
  appeal_at(h, B + 2000, "qd.nh.hb", "environment");
  assert_int_equal(h->n_recs, 1);
  hot_t x = hot_of(h, 0, "qd.nh.hb");
  assert_int_equal(x.count, 3);
  assert_int_equal(x.first, B);
  assert_true(x.baseline > 0.6999 && x.baseline < 0.7001);

  /* 200 days on, everything older than 97 days is pruned: the store keeps
   * the new appeal alone. */
  appeal_at(h, B + 200 * DAY, "qd.nh.hb", "environment");
  assert_int_equal(mh_db_count(h, "ap"), 1);
  mh_free(&h);
}

/* 10,000 appeals of one category in one community: 40 batches of 250 a
 * minute apart, as a pipelining client's burst arrives. One hotspot (at the
 * fifth appeal of the first batch), not 9,996; and the same when each
 * appeal is a batch of its own. */
static void test_burst(void **state) {
  mh_t *h = start_with(NULL, 0, T0);
  for (int i = 0; i < 40; i++) {
    char prefix[16];
    snprintf(prefix, sizeof prefix, "b%d", i);
    mh_advance(h, T0 + i * 60000LL);
    mh_appeal_batch(h, prefix, 250, "qd.hx.xc", "public-order");
  }
  assert_int_equal(h->n_recs, 1);
  hot_t x = hot_of(h, 0, "qd.hx.xc");
  assert_int_equal(x.count, 5);
  assert_int_equal(x.first, T0);
  assert_int_equal(h->recs[0].seq, 250 + 1); /* after the batch that held its appeal */
  assert_int_equal(h->n_alerts, 1);
  for (int i = 0; i < 300; i++)
    appeal_at(h, T0 + 3600000LL + i * 300, "qd.hx.xc", "public-order");
  assert_int_equal(h->n_recs, 1);
  mh_free(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config),
      cmocka_unit_test(test_window_edge),
      cmocka_unit_test(test_once_per_window),
      cmocka_unit_test(test_baseline_raises_the_bar),
      cmocka_unit_test(test_burst),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
