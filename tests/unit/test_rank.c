/* SPDX-License-Identifier: MIT
 *
 * test_rank.c: the rank plugin (plugins/rank/), driven through the mock
 * host with a fake clock (mock_host.c), so months pass in milliseconds.
 *
 * The plugin under test is the built rank.so, loaded as lianxind loads it,
 * with config/lianxin.yaml (UTC+8; escalate's response_days 1, so a first
 * response to an appeal received Mon 2 Nov 09:00 is due Tue 3 Nov 18:00).
 * Escalate is not loaded here: the escalation records it would write are
 * stored as the daemon stores them (mh_submit_daemon). Every expected
 * figure is worked out by hand beside the script.
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

#ifndef LX_RANK_SO
#error "LX_RANK_SO must name the built rank.so (tests/CMakeLists.txt)"
#endif

/* Local times, UTC+8. */
#define OCT30_1000 1793325600000LL
#define NOV02_0900 1793581200000LL
#define NOV02_1000 1793584800000LL
#define NOV04_0900 1793754000000LL
#define DEC01_0000 1796054400000LL /* the end of November */
#define JAN01_0000 1798732800000LL
#define FEB01_0000 1801411200000LL

/* --- reading replies ------------------------------------------------------------ */

typedef struct reply {
  msgpack_zone z;
  msgpack_object o;
  uint8_t *buf;
} reply_t;

static const msgpack_object *get(const msgpack_object *m, const char *key) {
  const msgpack_object *v = m ? lx_mp_get(m, key) : NULL;
  if (!v)
    fail_msg("no %s in the map", key);
  return v;
}

static void str_is(const msgpack_object *o, const char *want) {
  assert_int_equal(o->type, MSGPACK_OBJECT_STR);
  assert_int_equal(o->via.str.size, strlen(want));
  assert_memory_equal(o->via.str.ptr, want, strlen(want));
}

static int64_t int_of(const msgpack_object *o) {
  assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
  return (int64_t)o->via.u64;
}

static void float_is(const msgpack_object *o, double want) {
  assert_int_equal(o->type, MSGPACK_OBJECT_FLOAT64);
  if (o->via.f64 < want - 1e-12 || o->via.f64 > want + 1e-12)
    fail_msg("%.15f, not %.15f", o->via.f64, want);
}

static void pack_str(msgpack_packer *pk, const char *s) { lx_mp_pack_cstr(pk, s); }

/* Asks {op: rank, period, tier (, extra: 1)}; returns the plugin's code. */
static int ask(mh_t *h, const char *period, const char *tier, const char *extra,
               const char *jur, reply_t *r, char err[256]) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1 + (period != NULL) + (tier != NULL) + (extra != NULL));
  pack_str(&pk, "op");
  pack_str(&pk, "rank");
  if (period) {
    pack_str(&pk, "period");
    pack_str(&pk, period);
  }
  if (tier) {
    pack_str(&pk, "tier");
    pack_str(&pk, tier);
  }
  if (extra) {
    pack_str(&pk, extra);
    msgpack_pack_int(&pk, 1);
  }
  size_t len, off = 0;
  lx_query_t q;
  int rc = mh_query(h, "rank", (const uint8_t *)sb.data, sb.size, jur, &q);
  snprintf(err, 256, "%s", q.error);
  r->buf = q.reply;
  len = q.reply_len;
  msgpack_sbuffer_destroy(&sb);
  if (rc == 0) {
    msgpack_zone_init(&r->z, 4096);
    assert_int_equal(msgpack_unpack((const char *)r->buf, len, &off, &r->z, &r->o),
                     MSGPACK_UNPACK_SUCCESS);
  }
  return rc;
}

static void reply_free(reply_t *r) {
  msgpack_zone_destroy(&r->z);
  free(r->buf);
}

/* --- the script ------------------------------------------------------------------ */

static mh_t *start(int64_t now, const lx_conf_kv_t *kv, size_t n) {
  mh_t *h = mh_new(LX_RANK_SO, "rank", kv, n, now);
  assert_int_equal(mh_init(h), 0);
  mh_start(h);
  return h;
}

static void escalated(mh_t *h, const char *appeal, const char *unit, const char *from,
                      const char *to) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 6);
  pack_str(&pk, "appeal");
  pack_str(&pk, appeal);
  pack_str(&pk, "kind");
  pack_str(&pk, "escalated");
  pack_str(&pk, "from");
  pack_str(&pk, from);
  pack_str(&pk, "to");
  pack_str(&pk, to);
  pack_str(&pk, "deadline");
  msgpack_pack_int64(&pk, h->now);
  pack_str(&pk, "next");
  msgpack_pack_int64(&pk, h->now + 86400000LL);
  mh_submit_daemon(h, "escalation", unit, (const uint8_t *)sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

/* A visit that answers no appeal. */
static void plain_visit(mh_t *h, const char *unit) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  pack_str(&pk, "household");
  pack_str(&pk, "hh-0001");
  pack_str(&pk, "mode");
  pack_str(&pk, "periodic");
  mh_submit(h, "visit", unit, (const uint8_t *)sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

/* October: one visit, so the plugin has seen the log from then on. November:
 *   r1 dy  visited in time, never resolved
 *   r2 dy  resolved in time, unsatisfied feedback (reopened), escalated to township
 *   r3 sq  explained in time, no feedback
 * dy: received 2, responded 2, resolved 0, escalated 1, feedback 1, satisfied 0,
 *     reopened 1: rates 1, 0, 0: score 0.30.
 * sq: received 1, responded 1, explained 1, feedback 0: rates 1, 0, nil:
 *     score 0.30 / 0.65. */
static mh_t *november(void) {
  mh_t *h = start(OCT30_1000, NULL, 0);
  plain_visit(h, "qd.hx.dy");
  mh_advance(h, NOV02_0900);
  assert_int_equal(h->n_recs, 2); /* October's two, empty */
  mh_appeal(h, "r1", "qd.hx.dy", "jobs", false);
  mh_appeal(h, "r2", "qd.hx.dy", "jobs", false);
  mh_appeal(h, "r3", "qd.xs.sq", "jobs", false);
  mh_advance(h, NOV02_1000);
  mh_visit(h, "r1", "qd.hx.dy");
  mh_resolution(h, "r2", "qd.hx.dy", "resolved");
  mh_resolution(h, "r3", "qd.xs.sq", "explained");
  mh_advance(h, NOV04_0900);
  mh_feedback(h, "r2", "qd.hx.dy", false);
  escalated(h, "r2", "qd.hx.dy", "community", "township");
  assert_int_equal(h->n_recs, 3); /* the escalation */
  mh_advance(h, DEC01_0000 - 1);
  assert_int_equal(h->n_recs, 3);
  mh_advance(h, DEC01_0000);
  return h;
}

static void test_period_end_appends_once_per_tier(void **state) {
  mh_t *h = november();
  assert_int_equal(h->n_recs, 5);
  for (size_t i = 3; i < 5; i++) {
    assert_string_equal(h->recs[i].type, "ranking");
    assert_string_equal(h->recs[i].unit, "qd");
    assert_string_equal(h->recs[i].actor, "rank");
    assert_int_equal(h->recs[i].rat, DEC01_0000);
    assert_string_equal(h->recs[i].body.tier, i == 3 ? "community" : "township");
  }
  /* One alert per record, on the county. */
  assert_int_equal(h->n_alerts, 4);
  assert_string_equal(h->alerts[2].kind, "ranking");
  assert_string_equal(h->alerts[2].unit, "qd");
  assert_int_equal(h->alerts[2].seq, h->recs[3].seq);
  assert_string_equal(h->alerts[3].extra.tier, "township");
  /* A restart after the end makes nothing new; later ends are caught up. */
  mh_restart(h, DEC01_0000 + 5000);
  assert_int_equal(h->n_recs, 5);
  mh_restart(h, FEB01_0000 + 1000);
  assert_int_equal(h->n_recs, 9); /* December and January, two each */
  mh_advance(h, FEB01_0000 + 86400000LL);
  assert_int_equal(h->n_recs, 9);
  mh_free(&h);
}

static void test_figures_by_hand(void **state) {
  mh_t *h = november();
  reply_t r;
  char err[256];
  assert_int_equal(ask(h, "2026-11", "community", NULL, "", &r, err), 0);
  assert_true(get(&r.o, "final")->type == MSGPACK_OBJECT_BOOLEAN && get(&r.o, "final")->via.boolean);
  const msgpack_object *b = get(&r.o, "ranking"), *rows = get(b, "rows");
  str_is(get(b, "period"), "2026-11");
  float_is(get(get(b, "weights"), "satisfaction"), 0.35);
  assert_int_equal(rows->via.array.size, 9);
  const msgpack_object *sq = &rows->via.array.ptr[0], *dy = &rows->via.array.ptr[1];
  str_is(get(sq, "unit"), "qd.xs.sq");
  assert_int_equal(int_of(get(sq, "rank")), 1);
  assert_int_equal(int_of(get(sq, "explained")), 1);
  assert_int_equal(get(sq, "satisfaction_rate")->type, MSGPACK_OBJECT_NIL);
  float_is(get(sq, "score"), 0.30 / 0.65);
  str_is(get(dy, "unit"), "qd.hx.dy");
  assert_int_equal(int_of(get(dy, "rank")), 2);
  assert_int_equal(int_of(get(dy, "received")), 2);
  assert_int_equal(int_of(get(dy, "responded")), 2);
  assert_int_equal(int_of(get(dy, "resolved")), 0); /* reopened: its resolution is lost */
  assert_int_equal(int_of(get(dy, "escalated")), 1);
  assert_int_equal(int_of(get(dy, "reopened")), 1);
  float_is(get(dy, "satisfaction_rate"), 0.0);
  float_is(get(dy, "score"), 0.30);
  /* The rest, unranked, by path. */
  str_is(get(&rows->via.array.ptr[2], "unit"), "qd.hx.bl");
  assert_int_equal(get(&rows->via.array.ptr[2], "rank")->type, MSGPACK_OBJECT_NIL);
  assert_int_equal(get(b, "red")->via.array.size, 2);
  assert_int_equal(get(b, "black")->via.array.size, 0);
  reply_free(&r);
  /* Township: dy's escalation did not reach the county. */
  assert_int_equal(ask(h, "2026-11", "township", NULL, "", &r, err), 0);
  rows = get(get(&r.o, "ranking"), "rows");
  str_is(get(&rows->via.array.ptr[0], "unit"), "qd.xs");
  str_is(get(&rows->via.array.ptr[1], "unit"), "qd.hx");
  assert_int_equal(int_of(get(&rows->via.array.ptr[1], "escalated")), 0);
  reply_free(&r);
  /* A supervisor of qd.hx sees its own rows, with their county-wide ranks. */
  assert_int_equal(ask(h, "2026-11", "community", NULL, "qd.hx", &r, err), 0);
  b = get(&r.o, "ranking");
  rows = get(b, "rows");
  assert_int_equal(rows->via.array.size, 3);
  assert_int_equal(int_of(get(&rows->via.array.ptr[0], "rank")), 2);
  assert_int_equal(get(b, "red")->via.array.size, 1);
  str_is(&get(b, "red")->via.array.ptr[0], "qd.hx.dy");
  reply_free(&r);
  /* The year began before the plugin's first record (30 Oct), so it is
   * recomputed from a scan of the log, not from the facts; its cohort is
   * November's, and nothing happened since: the same rows. */
  reply_t y;
  assert_int_equal(ask(h, "2026-11", "community", NULL, "", &r, err), 0);
  assert_int_equal(ask(h, "2026", "community", NULL, "", &y, err), 0);
  assert_false(get(&y.o, "final")->via.boolean);
  assert_true(msgpack_object_equal(*get(get(&r.o, "ranking"), "rows"),
                                   *get(get(&y.o, "ranking"), "rows")));
  assert_true(msgpack_object_equal(*get(get(&r.o, "ranking"), "black"),
                                   *get(get(&y.o, "ranking"), "black")));
  reply_free(&y);
  reply_free(&r);
  /* The current period: so far. */
  assert_int_equal(ask(h, NULL, "community", NULL, "", &r, err), 0);
  str_is(get(get(&r.o, "ranking"), "period"), "2026-12");
  assert_false(get(&r.o, "final")->via.boolean);
  reply_free(&r);
  mh_free(&h);
}

/* The same figures from the facts (November: the plugin saw all of it) and
 * from a scan of the log (2026: it began before the plugin's first record),
 * over more appeals than the scan's first index and first block hold (it
 * grows at 8,192 appeals; a block is 4,096) and one appeal with more events
 * than the room a scan lends each fact (five): it moves to the heap. */
static void test_log_scan_agrees_with_the_facts(void **state) {
  mh_t *h = start(OCT30_1000, NULL, 0);
  plain_visit(h, "qd.hx.dy");
  mh_advance(h, NOV02_0900);
  mh_appeal_batch(h, "b", 9000, "qd.hx.dy", "jobs");
  mh_appeal(h, "busy", "qd.xs.sq", "jobs", false);
  mh_advance(h, NOV02_1000);
  for (int i = 0; i < 3; i++) { /* resolved, reopened, three times */
    mh_resolution(h, "busy", "qd.xs.sq", "resolved");
    mh_feedback(h, "busy", "qd.xs.sq", false);
  }
  mh_resolution(h, "busy", "qd.xs.sq", "resolved");
  mh_feedback(h, "busy", "qd.xs.sq", true);
  mh_resolution(h, "b-8999", "qd.hx.dy", "explained");
  mh_advance(h, DEC01_0000);
  const char *tiers[] = {"community", "township"};
  for (int ti = 0; ti < 2; ti++) {
    reply_t m, y;
    char err[256];
    assert_int_equal(ask(h, "2026-11", tiers[ti], NULL, "", &m, err), 0);
    assert_int_equal(ask(h, "2026", tiers[ti], NULL, "", &y, err), 0);
    const msgpack_object *rows = get(get(&y.o, "ranking"), "rows");
    assert_true(msgpack_object_equal(*get(get(&m.o, "ranking"), "rows"), *rows));
    if (ti == 0) { /* by hand: dy 9,000 received, 1 explained; sq 1, resolved, reopened */
      const msgpack_object *sq = &rows->via.array.ptr[0], *dy = &rows->via.array.ptr[1];
      str_is(get(sq, "unit"), "qd.xs.sq");
      assert_int_equal(int_of(get(sq, "received")), 1);
      assert_int_equal(int_of(get(sq, "resolved")), 1);
      assert_int_equal(int_of(get(sq, "reopened")), 1);
      assert_int_equal(int_of(get(sq, "satisfied")), 1);
      str_is(get(dy, "unit"), "qd.hx.dy");
      assert_int_equal(int_of(get(dy, "received")), 9000);
      assert_int_equal(int_of(get(dy, "explained")), 1);
      assert_int_equal(int_of(get(dy, "responded")), 1);
    }
    reply_free(&m);
    reply_free(&y);
  }
  mh_free(&h);
}

static void test_bad_requests(void **state) {
  mh_t *h = start(NOV02_0900, NULL, 0);
  reply_t r;
  char err[256];
  static const char *const bad_periods[] = {"2026-13", "2026-00", "2026-Q0", "2026-Q5", "1969",
                                            "2026-1", "2026-11-01", "", "２０２６"};
  for (size_t i = 0; i < sizeof bad_periods / sizeof *bad_periods; i++) {
    assert_int_equal(ask(h, bad_periods[i], "community", NULL, "", &r, err), LX_QE_BADREQ);
    assert_true(strncmp(err, "period:", 7) == 0);
  }
  assert_int_equal(ask(h, "2026-11", "county", NULL, "", &r, err), LX_QE_BADREQ);
  assert_true(strncmp(err, "tier:", 5) == 0);
  assert_int_equal(ask(h, "2026-11", NULL, NULL, "", &r, err), LX_QE_BADREQ);
  assert_true(strncmp(err, "tier:", 5) == 0);
  assert_int_equal(ask(h, "2026-11", "township", "unit", "", &r, err), LX_QE_BADREQ);
  assert_true(strncmp(err, "unit: unknown key", 17) == 0);
  mh_free(&h);
}

static lx_conf_item_t weight_items[3];

static int init_with_weights(mh_t **hp, const char *k1, const char *v1, const char *k2,
                             const char *v2) {
  static lx_conf_kv_t kv[1];
  weight_items[0] = (lx_conf_item_t){k1, v1, 20};
  weight_items[1] = (lx_conf_item_t){k2, v2, 21};
  kv[0] = (lx_conf_kv_t){.key = "weights", .line = 19, .shape = LX_CONF_MAP,
                         .items = weight_items, .n_items = 2};
  *hp = mh_new(LX_RANK_SO, "rank", kv, 1, NOV02_0900);
  return mh_init(*hp);
}

static void test_weights(void **state) {
  mh_t *h;
  assert_int_equal(init_with_weights(&h, "response", "-0.3", "speed", "1"), -1);
  assert_string_equal(h->conf_error_keys, "weights.response weights.speed ");
  mh_free(&h);
  assert_int_equal(init_with_weights(&h, "response", "0.3x", "resolution", "nan"), -1);
  assert_string_equal(h->conf_error_keys, "weights.response weights.resolution ");
  mh_free(&h);
  assert_int_equal(init_with_weights(&h, "response", "0", "resolution", "0"), -1);
  assert_string_equal(h->conf_error_keys, "weights ");
  mh_free(&h);
  /* 3 and 1: normalised to 0.75 and 0.25; satisfaction, left out, weighs 0. */
  assert_int_equal(init_with_weights(&h, "response", "3", "resolution", "1"), 0);
  mh_start(h);
  mh_appeal(h, "w1", "qd.hx.dy", "jobs", false);
  mh_resolution(h, "w1", "qd.hx.dy", "resolved");
  mh_feedback(h, "w1", "qd.hx.dy", false);
  reply_t r;
  char err[256];
  assert_int_equal(ask(h, "2026-11", "community", NULL, "", &r, err), 0);
  const msgpack_object *b = get(&r.o, "ranking"), *w = get(b, "weights");
  float_is(get(w, "response"), 0.75);
  float_is(get(w, "resolution"), 0.25);
  float_is(get(w, "satisfaction"), 0.0);
  /* response 1, resolution 0 (reopened), satisfaction 0 with weight 0. */
  float_is(get(&get(b, "rows")->via.array.ptr[0], "score"), 0.75);
  reply_free(&r);
  mh_free(&h);
}

static void test_host_response_due(void **state) {
  mh_t *h = mh_new(LX_RANK_SO, "rank", NULL, 0, NOV02_0900);
  mh_api(h);
  /* Mon 2 Nov 09:00: 1 working day -> Tue 3 Nov 18:00; urgent: 2 hours. */
  assert_int_equal(h->api.response_due(h, NOV02_0900, 0), NOV02_0900 + 33 * 3600000LL);
  assert_int_equal(h->api.response_due(h, NOV02_0900, 1), NOV02_0900 + 2 * 3600000LL);
  assert_int_equal(h->api.utc_offset_ms(h), 8 * 3600000LL);
  int tier;
  assert_string_equal(h->api.unit_path(h, 0, &tier), "qd");
  assert_int_equal(tier, LX_COUNTY);
  mh_free(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_period_end_appends_once_per_tier),
      cmocka_unit_test(test_figures_by_hand),
      cmocka_unit_test(test_log_scan_agrees_with_the_facts),
      cmocka_unit_test(test_bad_requests),
      cmocka_unit_test(test_weights),
      cmocka_unit_test(test_host_response_due),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
