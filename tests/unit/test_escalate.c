/* SPDX-License-Identifier: MIT
 *
 * test_escalate.c: the escalation plugin (plugins/escalate/escalate.c),
 * driven through a mock host table with a fake clock (mock_host.c), so
 * escalation over weeks takes milliseconds (STYLE.md item 13).
 *
 * The plugin under test is the built escalate.so (or the one the
 * environment variable LX_ESCALATE_SO names), loaded as lianxind loads it.
 * Deadlines come from config/lianxin.yaml through the config loader and the
 * calendar: community 3 / township 5 / county 10 working days (urgent
 * 1 / 2 / 3; housing 5 at the community), warn_share 0.8, response_days 1,
 * urgent_response_hours 2, reminder_days 1, workday_end 18:00, UTC+8, and
 * the 2026 arrangement (days off 1-3 Jan, 15-23 Feb, 4-6 Apr, 1-5 May,
 * 19-21 Jun, 25-27 Sep, 1-7 Oct; weekend days worked 4 Jan, 14 Feb, 28 Feb,
 * 9 May, 20 Sep, 10 Oct).
 *
 * Expected times are literal milliseconds worked out by hand from that
 * calendar (the working days counted are written beside each), converted
 * with Python's datetime, and checked against an independent day-by-day
 * reading of the calendar (the one in tests/integration/test_escalate.py);
 * none is computed by the code under test. A warning is due at start +
 * 0.8 * (deadline - start) in clock time, the plugin's rule; its expected
 * value is that sum done by hand.
 *
 * For every expected record the test first moves the clock to 1 ms before
 * it and checks that nothing happened, then to the exact time and checks
 * the record (type, fields, receive time) and the alert published about it.
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

#ifndef LX_ESCALATE_SO
#error "LX_ESCALATE_SO must name the built escalate.so (tests/CMakeLists.txt)"
#endif

/* Local times, UTC+8, 2026. */
/* Scenario A: a jobs appeal on Tue 22 Sep, across Mid-Autumn and National Day. */
#define SEP22_1000 1790042400000LL /* received */
#define SEP23_0900 1790125200000LL
#define SEP23_1200 1790136000000LL
#define SEP23_1800 1790157600000LL /* response due: 1 working day (Wed 23) */
#define SEP24_1000 1790215200000LL
#define SEP24_1124 1790220240000LL /* urgent from 23 Sep 09:00: + 0.8 * 33 h */
#define SEP24_1800 1790244000000LL /* urgent from Wed 23, community 1: Thu 24 */
#define SEP25_1400 1790316000000LL /* warn_share 0.5: 22 Sep 10:00 + 0.5 * 152 h */
#define SEP27_1136 1790480160000LL /* 22 Sep 10:00 + 0.8 * 152 h (a holiday, Sunday) */
#define SEP28_1800 1790589600000LL /* community: Wed 23, Thu 24, (25-27 off), Mon 28 */
#define SEP29_1800 1790676000000LL /* urgent township 2 from Thu 24: (25-27 off) Mon 28, Tue 29 */
#define SEP30_1800 1790762400000LL /* response_days 5: 23, 24, (25-27 off), 28, 29, 30 Sep */
#define OCT04_1800 1791108000000LL /* warn_share 0.5: 28 Sep 18:00 + 0.5 * 288 h */
#define OCT08_0824 1791419040000LL /* 28 Sep 18:00 + 0.8 * 288 h */
#define OCT10_1800 1791626400000LL /* township: Tue 29, Wed 30, (1-7 off), Thu 8, Fri 9, Sat 10 (worked) */
#define OCT12_0900 1791766800000LL
#define OCT17_0600 1792188000000LL /* warn_share 0.5: 10 Oct 18:00 + 0.5 * 312 h */
#define OCT21_0336 1792524960000LL /* 10 Oct 18:00 + 0.8 * 312 h */
#define OCT23_1800 1792749600000LL /* county: 12-16, 19-23 Oct */
#define OCT25_0000 1792857600000LL
#define OCT26_1800 1793008800000LL /* next working day after Fri 23: Mon 26 */
#define OCT27_1800 1793095200000LL
#define OCT28_1800 1793181600000LL
#define OCT29_1800 1793268000000LL /* reminder_days 2 from Tue 27: Wed 28, Thu 29 */
/* Scenario B: an urgent health appeal on Fri 13 Feb, across Spring Festival. */
#define FEB13_0900 1770944400000LL /* received */
#define FEB13_1100 1770951600000LL /* response due: 2 hours */
#define FEB14_1124 1771039440000LL /* 13 Feb 09:00 + 0.8 * 33 h */
#define FEB14_1800 1771063200000LL /* community, 1 day: Sat 14 (worked) */
#define FEB23_1312 1771823520000LL /* 14 Feb 18:00 + 0.8 * 264 h (a holiday) */
#define FEB25_1800 1772013600000LL /* township, 2 days: (15-23 off), Tue 24, Wed 25 */
#define FEB28_0336 1772220960000LL /* 25 Feb 18:00 + 0.8 * 72 h */
#define FEB28_1800 1772272800000LL /* county, 3 days: Thu 26, Fri 27, Sat 28 (worked) */
#define MAR02_1800 1772445600000LL /* next working day after Sat 28 Feb: Mon 2 Mar */
/* Scenario C: a housing appeal on Mon 27 Apr, across Labour Day. */
#define APR27_1000 1777255200000LL /* received */
#define APR28_1800 1777370400000LL /* response due: Tue 28 */
#define APR30_1200 1777521600000LL
#define MAY05_1624 1777969440000LL /* 27 Apr 10:00 + 0.8 * 248 h (a holiday) */
#define MAY07_1800 1778148000000LL /* community, housing 5: 28, 29, 30 Apr, (1-5 May off), Wed 6, Thu 7 */
#define MAY08_0900 1778202000000LL
#define MAY12_1312 1778562720000LL /* 7 May 18:00 + 0.8 * 144 h */
#define MAY13_1800 1778666400000LL /* township 5: Fri 8, Sat 9 (worked), Mon 11, Tue 12, Wed 13 */
#define MAY27_1800 1779876000000LL /* county 10: 14, 15, 18-22, 25, 26, 27 May */
/* Scenario D: reopened appeals in November and December. */
#define NOV30_1000 1796004000000LL /* unsatisfied feedback (Mon) */
#define DEC03_0200 1796234400000LL /* 30 Nov 10:00 + 0.8 * 80 h */
#define DEC03_1800 1796292000000LL /* community 3: Tue 1, Wed 2, Thu 3 */
#define DEC07_1000 1796608800000LL
#define DEC08_1000 1796695200000LL /* unsatisfied again, now at the township (Tue) */
#define DEC10_1800 1796896800000LL /* township 5 from Thu 3: Fri 4, Mon 7, Tue 8, Wed 9, Thu 10 */
#define DEC14_0648 1797202080000LL /* 8 Dec 10:00 + 0.8 * 176 h */
#define DEC15_1800 1797328800000LL /* township 5 from Tue 8: Wed 9, Thu 10, Fri 11, Mon 14, Tue 15 */
#define DEC16_1000 1797386400000LL
#define DEC17_1000 1797472800000LL
#define DEC29_1800 1798538400000LL /* county 10: 16-18, 21-25, 28, 29 Dec */
#define DEC31_0000 1798646400000LL

/* One record the plugin must append, and the alert that must follow it. */
typedef struct want {
  int64_t at;        /* when: its receive time, and the moment it must appear */
  const char *type;  /* "escalation", "warning", "unanswered" */
  const char *kind;  /* escalation: "escalated", "overdue", "reminder" */
  const char *tier;  /* warning, unanswered: the body's tier; escalation: the alert's (= to) */
  const char *from, *to;
  int64_t deadline;  /* escalation, warning */
  int64_t next;      /* escalation */
  int64_t due;       /* unanswered */
} want_t;

#define ESC(at_, kind_, from_, to_, deadline_, next_) \
  {at_, "escalation", kind_, to_, from_, to_, deadline_, next_, MH_ABSENT}
#define WARN(at_, tier_, deadline_) \
  {at_, "warning", NULL, tier_, NULL, NULL, deadline_, MH_ABSENT, MH_ABSENT}
#define UNANSWERED(at_, tier_) \
  {at_, "unanswered", NULL, tier_, NULL, NULL, MH_ABSENT, MH_ABSENT, at_}

/* The plugin under test: the build's, or another build of it named by the
 * environment variable LX_ESCALATE_SO. */
static const char *so_path(void) {
  const char *env = getenv("LX_ESCALATE_SO");
  return env && *env ? env : LX_ESCALATE_SO;
}

/* Loads and starts the plugin with the sample's keys (kv NULL) or kv. */
static mh_t *start_with(const lx_conf_kv_t *kv, size_t n_kv, int64_t now) {
  mh_t *h = mh_new(so_path(), "escalate", kv, n_kv, now);
  assert_int_equal(mh_init(h), 0);
  assert_int_equal(h->conf_errors, 0);
  for (size_t i = 0; i < h->n_kv; i++)
    if (!h->used[i])
      fail_msg("the plugin did not read its key %s (the daemon would call it unknown)",
               h->kv[i].key);
  mh_start(h);
  assert_int_equal(h->n_recs, 0);
  return h;
}

static mh_t *start(int64_t now) { return start_with(NULL, 0, now); }

static void done(mh_t **h) {
  assert_int_equal((*h)->log_errors, 0);
  assert_int_equal((*h)->nq, 0);
  mh_free(h);
}

/* Checks record i against w, and the alert that must have been published
 * about it. */
static void check_record(mh_t *h, size_t i, const char *appeal, const char *unit,
                         const want_t *w) {
  assert_true(i < h->n_recs);
  const mh_rec_t *r = &h->recs[i];
  bool esc = strcmp(w->type, "escalation") == 0;
  assert_string_equal(r->type, w->type);
  assert_string_equal(r->actor, "escalate");
  assert_string_equal(r->unit, unit); /* the appeal's community, whatever tier holds it */
  assert_int_equal(r->rat, w->at);
  assert_string_equal(r->body.appeal, appeal);
  if (esc) {
    assert_int_equal(r->body.n, 6);
    assert_string_equal(r->body.kind, w->kind);
    assert_string_equal(r->body.from, w->from);
    assert_string_equal(r->body.to, w->to);
    assert_int_equal(r->body.deadline, w->deadline);
    assert_int_equal(r->body.next, w->next);
  } else {
    assert_int_equal(r->body.n, 3);
    assert_string_equal(r->body.tier, w->tier);
    assert_int_equal(r->body.deadline, w->deadline);
    assert_int_equal(r->body.due, w->due);
  }

  /* Exactly one alert names this record: after its commit, at its unit. */
  const mh_alert_t *a = NULL;
  for (size_t k = 0; k < h->n_alerts; k++)
    if (h->alerts[k].seq == r->seq) {
      assert_null(a);
      a = &h->alerts[k];
    }
  if (!a)
    fail_msg("no alert about %s seq %llu", w->type, (unsigned long long)r->seq);
  assert_string_equal(a->kind, esc ? w->kind : w->type);
  assert_string_equal(a->unit, unit);
  assert_int_equal(a->at, w->at);
  assert_string_equal(a->extra.appeal, appeal);
  assert_string_equal(a->extra.tier, w->tier);
  assert_string_equal(a->extra.kind, ""); /* the kind travels as the alert's own */
  if (esc) {
    assert_int_equal(a->extra.n, 6); /* appeal from to deadline next tier */
    assert_string_equal(a->extra.from, w->from);
    assert_string_equal(a->extra.to, w->to);
    assert_int_equal(a->extra.deadline, w->deadline);
    assert_int_equal(a->extra.next, w->next);
  } else {
    assert_int_equal(a->extra.n, 3);
    assert_int_equal(a->extra.deadline, w->deadline);
    assert_int_equal(a->extra.due, w->due);
  }
}

/* Moves the clock through each expected record: nothing 1 ms before it,
 * exactly it at its time. */
static void expect_timeline(mh_t *h, const char *appeal, const char *unit, const want_t *w,
                            size_t n) {
  for (size_t i = 0; i < n; i++) {
    size_t recs = h->n_recs, alerts = h->n_alerts;
    mh_advance(h, w[i].at - 1);
    if (h->n_recs != recs)
      fail_msg("step %zu (%s at %lld): %s appended early, at %lld", i, w[i].type,
               (long long)w[i].at, h->recs[recs].type, (long long)h->recs[recs].rat);
    assert_int_equal(h->n_alerts, alerts);
    mh_advance(h, w[i].at);
    if (h->n_recs != recs + 1)
      fail_msg("step %zu (%s at %lld): %zu records instead of 1", i, w[i].type,
               (long long)w[i].at, h->n_recs - recs);
    assert_int_equal(h->n_alerts, alerts + 1);
    check_record(h, recs, appeal, unit, &w[i]);
  }
}

/* Nothing at all happens from now up to `to`. */
static void expect_quiet(mh_t *h, int64_t to) {
  size_t recs = h->n_recs, alerts = h->n_alerts;
  mh_advance(h, to);
  if (h->n_recs != recs)
    fail_msg("%s appended at %lld", h->recs[recs].type, (long long)h->recs[recs].rat);
  assert_int_equal(h->n_alerts, alerts);
}

static void expect_state(mh_t *h, const char *appeal, int status, int tier, int64_t deadline) {
  lx_appeal_t a = mh_appeal_state(h, appeal);
  assert_int_equal(a.status, status);
  assert_int_equal(a.tier, tier);
  assert_int_equal(a.deadline, deadline);
}

static size_t count(const mh_t *h, const char *type, const char *kind) {
  size_t n = 0;
  for (size_t i = 0; i < h->n_recs; i++)
    n += strcmp(h->recs[i].type, type) == 0 && (!kind || strcmp(h->recs[i].body.kind, kind) == 0);
  return n;
}

/* --- the descriptor and the config ------------------------------------------------ */

static void test_descriptor_and_config(void **state) {
  mh_t *h = start(SEP22_1000); /* reads all four keys of the sample, no error */
  const lx_plugin_t *p = h->plugin;
  assert_string_equal(p->name, "escalate");
  assert_non_null(p->types);
  assert_string_equal(p->types[0], "warning");
  assert_string_equal(p->types[1], "unanswered");
  assert_null(p->types[2]);
  assert_true(p->init && p->apply && p->react && p->on_timer && p->close);
  assert_int_equal(h->armed, -1); /* an empty store: nothing to wait for */
  done(&h);

  /* Each bad value is reported under its own key, and init fails. */
  static const lx_conf_kv_t bad[] = {
      {.key = "warn_share", .value = "1", .line = 10},           /* must be strictly between 0 and 1 */
      {.key = "response_days", .value = "0", .line = 11},        /* 1..60 */
      {.key = "urgent_response_hours", .value = "2h", .line = 12},
      {.key = "reminder_days", .value = "61", .line = 13},
  };
  h = mh_new(so_path(), "escalate", bad, 4, SEP22_1000);
  assert_int_not_equal(mh_init(h), 0);
  assert_int_equal(h->conf_errors, 4);
  assert_string_equal(h->conf_error_keys,
                      "warn_share response_days urgent_response_hours reminder_days ");
  mh_free(&h);

  /* The bounds themselves are accepted. */
  static const lx_conf_kv_t edge[] = {
      {.key = "warn_share", .value = "0.5", .line = 10},
      {.key = "response_days", .value = "60", .line = 11},
      {.key = "urgent_response_hours", .value = "1", .line = 12},
      {.key = "reminder_days", .value = "1", .line = 13},
  };
  h = mh_new(so_path(), "escalate", edge, 4, SEP22_1000);
  assert_int_equal(mh_init(h), 0);
  assert_int_equal(h->conf_errors, 0);
  mh_free(&h);
}

/* The host's list and map settings (lx/plugin.h conf_items), as any plugin
 * meets them: the shape is checked, each entry keeps its line, and an
 * entry's error is reported under KEY.ITEM or KEY[j]. */
static void test_conf_items(void **state) {
  static const lx_conf_item_t servers[] = {{NULL, "nats://a:4222", 21}, {NULL, "b", 22}};
  static const lx_conf_item_t weights[] = {{"response", "0.3", 31}};
  static const lx_conf_kv_t kv[] = {
      {.key = "servers", .line = 20, .shape = LX_CONF_LIST, .items = (lx_conf_item_t *)servers,
       .n_items = 2},
      {.key = "weights", .line = 30, .shape = LX_CONF_MAP, .items = (lx_conf_item_t *)weights,
       .n_items = 1},
      {.key = "period", .value = "month", .line = 40},
  };
  mh_t *h = mh_new(so_path(), "escalate", kv, 3, SEP22_1000);
  lx_host_t *host = (lx_host_t *)h;
  const lx_conf_item_t *it;
  size_t n;
  mh_api(h);
  assert_int_equal(h->api.conf_items(host, "servers", LX_CONF_LIST, &it, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(it[1].value, "b");
  assert_int_equal(h->api.conf_items(host, "absent", LX_CONF_MAP, &it, &n), 1);
  assert_int_equal(n, 0);
  assert_int_equal(h->conf_errors, 0);
  /* A map where a list belongs, a single value where a map belongs, a list
   * where a single value belongs: each an error under its key. */
  assert_int_equal(h->api.conf_items(host, "weights", LX_CONF_LIST, &it, &n), -1);
  assert_int_equal(h->api.conf_items(host, "period", LX_CONF_MAP, &it, &n), -1);
  assert_null(h->api.conf_str(host, "servers"));
  assert_int_equal(h->api.conf_items(host, "weights", LX_CONF_MAP, &it, &n), 0);
  h->api.conf_item_error(host, "weights", &it[0], "expected a weight from 0 to 1");
  assert_int_equal(h->api.conf_items(host, "servers", LX_CONF_LIST, &it, &n), 0);
  h->api.conf_item_error(host, "servers", &it[1], "expected nats://HOST:PORT");
  assert_int_equal(h->conf_errors, 5);
  assert_string_equal(h->conf_error_keys,
                      "weights period servers weights.response servers[1] ");
  mh_free(&h);
}

/* Without keys the defaults hold (0.8, 1 working day, 1 working day); each
 * key, when given, moves its clock. */
static void test_config_keys_move_the_clocks(void **state) {
  static const lx_conf_kv_t none[] = {{.key = "unused", .value = "", .line = 0}};
  mh_t *h = start_with(none, 0, SEP22_1000);
  mh_appeal(h, "ap-defaults", "qd.hx.bl", "jobs", false);
  static const want_t defaults[] = {
      UNANSWERED(SEP23_1800, "community"),
      WARN(SEP27_1136, "community", SEP28_1800),
      ESC(SEP28_1800, "escalated", "community", "township", SEP28_1800, OCT10_1800),
  };
  expect_timeline(h, "ap-defaults", "qd.hx.bl", defaults, 3);
  done(&h);

  /* Warn at half time; the response is due after 5 working days, so the
   * township, which holds it by then, is told; a reminder every 2 days. */
  static const lx_conf_kv_t keys[] = {
      {.key = "warn_share", .value = "0.5", .line = 10},
      {.key = "response_days", .value = "5", .line = 11},
      {.key = "reminder_days", .value = "2", .line = 12},
  };
  h = start_with(keys, 3, SEP22_1000);
  mh_appeal(h, "ap-keys", "qd.hx.bl", "jobs", false);
  static const want_t moved[] = {
      WARN(SEP25_1400, "community", SEP28_1800),
      ESC(SEP28_1800, "escalated", "community", "township", SEP28_1800, OCT10_1800),
      UNANSWERED(SEP30_1800, "township"),
      WARN(OCT04_1800, "township", OCT10_1800),
      ESC(OCT10_1800, "escalated", "township", "county", OCT10_1800, OCT23_1800),
      WARN(OCT17_0600, "county", OCT23_1800),
      ESC(OCT23_1800, "overdue", "county", "county", OCT23_1800, OCT27_1800),
      ESC(OCT27_1800, "reminder", "county", "county", OCT23_1800, OCT29_1800),
  };
  expect_timeline(h, "ap-keys", "qd.hx.bl", moved, 8);
  done(&h);
}

/* --- scenarios ---------------------------------------------------------------------- */

/* An appeal nobody answers climbs community -> township -> county at its
 * exact working-day deadlines, with a warning at 80% of each tier's time,
 * one `unanswered` after a working day, then overdue and daily reminders. */
static void test_climbs_tiers_across_holidays(void **state) {
  mh_t *h = start(SEP22_1000);
  mh_appeal(h, "ap-jobs-0922", "qd.hx.dy", "jobs", false);
  expect_state(h, "ap-jobs-0922", LX_ST_OPEN, LX_TIER_COMMUNITY, SEP28_1800);
  assert_int_equal(h->armed, SEP23_1800); /* the first clock: the response */

  static const want_t community[] = {
      UNANSWERED(SEP23_1800, "community"),
      WARN(SEP27_1136, "community", SEP28_1800),
      ESC(SEP28_1800, "escalated", "community", "township", SEP28_1800, OCT10_1800),
  };
  expect_timeline(h, "ap-jobs-0922", "qd.hx.dy", community, 3);
  expect_state(h, "ap-jobs-0922", LX_ST_OPEN, LX_TIER_TOWNSHIP, OCT10_1800);

  static const want_t township[] = {
      WARN(OCT08_0824, "township", OCT10_1800),
      ESC(OCT10_1800, "escalated", "township", "county", OCT10_1800, OCT23_1800),
  };
  expect_timeline(h, "ap-jobs-0922", "qd.hx.dy", township, 2);
  expect_state(h, "ap-jobs-0922", LX_ST_OPEN, LX_TIER_COUNTY, OCT23_1800);

  /* Past the county's deadline: overdue once, then a reminder every working
   * day (none on the weekend of 24-25 Oct); the deadline that passed stays. */
  static const want_t county[] = {
      WARN(OCT21_0336, "county", OCT23_1800),
      ESC(OCT23_1800, "overdue", "county", "county", OCT23_1800, OCT26_1800),
      ESC(OCT26_1800, "reminder", "county", "county", OCT23_1800, OCT27_1800),
      ESC(OCT27_1800, "reminder", "county", "county", OCT23_1800, OCT28_1800),
  };
  expect_timeline(h, "ap-jobs-0922", "qd.hx.dy", county, 4);
  expect_state(h, "ap-jobs-0922", LX_ST_OPEN, LX_TIER_COUNTY, OCT23_1800);
  assert_int_equal(h->n_recs, 9);
  done(&h);
}

/* Urgent: the response is due in 2 hours, the tiers get 1 / 2 / 3 working
 * days, and Spring Festival's worked Saturdays (14 and 28 Feb) count. */
static void test_urgent_across_spring_festival(void **state) {
  mh_t *h = start(FEB13_0900);
  mh_appeal(h, "ap-health-0213", "qd.nh.hb", "health", true);
  expect_state(h, "ap-health-0213", LX_ST_OPEN, LX_TIER_COMMUNITY, FEB14_1800);
  static const want_t w[] = {
      UNANSWERED(FEB13_1100, "community"),
      WARN(FEB14_1124, "community", FEB14_1800),
      ESC(FEB14_1800, "escalated", "community", "township", FEB14_1800, FEB25_1800),
      WARN(FEB23_1312, "township", FEB25_1800),
      ESC(FEB25_1800, "escalated", "township", "county", FEB25_1800, FEB28_1800),
      WARN(FEB28_0336, "county", FEB28_1800),
      ESC(FEB28_1800, "overdue", "county", "county", FEB28_1800, MAR02_1800),
  };
  expect_timeline(h, "ap-health-0213", "qd.nh.hb", w, 7);
  expect_quiet(h, MAR02_1800 - 1); /* Sunday 1 Mar brings no reminder */
  expect_state(h, "ap-health-0213", LX_ST_OPEN, LX_TIER_COUNTY, FEB28_1800);
  done(&h);
}

/* A visit stops the response clock; a resolution (even `explained`) stops
 * the tier's clock; unsatisfied feedback reopens at the tier that resolved
 * it with a fresh deadline counted from the feedback. */
static void test_response_and_resolution_stop_the_clock(void **state) {
  mh_t *h = start(SEP22_1000);
  mh_appeal(h, "ap-jobs-stop", "qd.xs.sq", "jobs", false);
  assert_int_equal(h->armed, SEP23_1800);
  mh_advance(h, SEP23_0900);
  mh_visit(h, "ap-jobs-stop", "qd.xs.sq");
  /* The response clock is gone. A removed key does not move the timer (react
   * reads no index): it wakes at 23 Sep 18:00, finds nothing, and waits for
   * the warning. */
  assert_int_equal(h->armed, SEP23_1800);
  expect_quiet(h, SEP24_1000); /* no `unanswered` at 23 Sep 18:00 */
  assert_int_equal(h->armed, SEP27_1136);

  mh_resolution(h, "ap-jobs-stop", "qd.xs.sq", "explained");
  expect_state(h, "ap-jobs-stop", LX_ST_EXPLAINED, LX_TIER_COMMUNITY, -1);
  int fires = h->fires;
  expect_quiet(h, NOV30_1000); /* past every deadline it had: nothing */
  /* Its clocks left the index: the timer wakes once, for the time it was
   * already armed for, and finds nothing more to wait for. */
  assert_int_equal(h->fires - fires, 1);
  assert_int_equal(h->armed, -1);

  mh_feedback(h, "ap-jobs-stop", "qd.xs.sq", false);
  expect_state(h, "ap-jobs-stop", LX_ST_OPEN, LX_TIER_COMMUNITY, DEC03_1800);
  static const want_t reopened[] = {
      WARN(DEC03_0200, "community", DEC03_1800),
      ESC(DEC03_1800, "escalated", "community", "township", DEC03_1800, DEC10_1800),
  };
  expect_timeline(h, "ap-jobs-stop", "qd.xs.sq", reopened, 2);

  /* Resolved at the township, then reopened: it stays there, 5 fresh days. */
  mh_advance(h, DEC07_1000);
  mh_resolution(h, "ap-jobs-stop", "qd.xs.sq", "resolved");
  expect_state(h, "ap-jobs-stop", LX_ST_RESOLVED, LX_TIER_TOWNSHIP, -1);
  expect_quiet(h, DEC08_1000); /* the township's warning (9 Dec) is gone too */
  mh_feedback(h, "ap-jobs-stop", "qd.xs.sq", false);
  expect_state(h, "ap-jobs-stop", LX_ST_OPEN, LX_TIER_TOWNSHIP, DEC15_1800);
  static const want_t again[] = {
      WARN(DEC14_0648, "township", DEC15_1800),
      ESC(DEC15_1800, "escalated", "township", "county", DEC15_1800, DEC29_1800),
  };
  expect_timeline(h, "ap-jobs-stop", "qd.xs.sq", again, 2);

  /* Resolved and closed: nothing more, ever. */
  mh_advance(h, DEC16_1000);
  mh_resolution(h, "ap-jobs-stop", "qd.xs.sq", "resolved");
  mh_advance(h, DEC17_1000);
  mh_feedback(h, "ap-jobs-stop", "qd.xs.sq", true);
  expect_state(h, "ap-jobs-stop", LX_ST_CLOSED, LX_TIER_COUNTY, -1);
  expect_quiet(h, DEC31_0000);
  assert_int_equal(h->n_recs, 4);
  done(&h);
}

/* A restart re-arms from the store: a deadline that passed while the
 * daemon was down escalates once, on start, counting the next tier's time
 * from the true deadline; a second restart decides nothing again. */
static void test_restart_rearms_without_escalating_twice(void **state) {
  mh_t *h = start(APR27_1000);
  mh_appeal(h, "ap-housing-0427", "qd.hx.xc", "housing", false);
  expect_state(h, "ap-housing-0427", LX_ST_OPEN, LX_TIER_COMMUNITY, MAY07_1800);
  static const want_t first[] = {UNANSWERED(APR28_1800, "community")};
  expect_timeline(h, "ap-housing-0427", "qd.hx.xc", first, 1);
  mh_advance(h, APR30_1200);

  /* Close and start again at once: the next clock is the warning. */
  mh_restart(h, APR30_1200);
  assert_int_equal(h->n_recs, 1);
  assert_int_equal(h->armed, MAY05_1624);

  /* Down from 30 Apr to 8 May 09:00: the community's deadline (7 May 18:00)
   * and its warning passed meanwhile. One escalation, no stale warning. */
  mh_restart(h, MAY08_0900);
  assert_int_equal(h->n_recs, 2);
  const want_t caught = ESC(MAY08_0900, "escalated", "community", "township", MAY07_1800,
                            MAY13_1800);
  check_record(h, 1, "ap-housing-0427", "qd.hx.xc", &caught);
  expect_state(h, "ap-housing-0427", LX_ST_OPEN, LX_TIER_TOWNSHIP, MAY13_1800);
  assert_int_equal(h->armed, MAY12_1312);

  /* Again, with no time passed: nothing is decided twice. */
  mh_restart(h, MAY08_0900);
  assert_int_equal(h->n_recs, 2);
  assert_int_equal(h->armed, MAY12_1312);

  static const want_t township[] = {
      WARN(MAY12_1312, "township", MAY13_1800),
      ESC(MAY13_1800, "escalated", "township", "county", MAY13_1800, MAY27_1800),
  };
  expect_timeline(h, "ap-housing-0427", "qd.hx.xc", township, 2);
  assert_int_equal(count(h, "escalation", "escalated"), 2);
  assert_int_equal(count(h, "warning", NULL), 1);
  expect_state(h, "ap-housing-0427", LX_ST_OPEN, LX_TIER_COUNTY, MAY27_1800);
  done(&h);
}

/* Down across two deadlines: on start it climbs both tiers in deadline
 * order, each once, and re-arms for the county's warning. */
static void test_restart_catches_up_two_tiers(void **state) {
  mh_t *h = start(SEP22_1000);
  mh_appeal(h, "ap-jobs-down", "qd.nh.wh", "jobs", false);
  expect_quiet(h, SEP23_1200);

  mh_restart(h, OCT12_0900);
  static const want_t caught[] = {
      UNANSWERED(OCT12_0900, "community"),
      ESC(OCT12_0900, "escalated", "community", "township", SEP28_1800, OCT10_1800),
      ESC(OCT12_0900, "escalated", "township", "county", OCT10_1800, OCT23_1800),
  };
  assert_int_equal(h->n_recs, 3);
  for (size_t i = 0; i < 3; i++) {
    want_t w = caught[i];
    if (i == 0)
      w.due = SEP23_1800; /* the response was due before the stop */
    check_record(h, i, "ap-jobs-down", "qd.nh.wh", &w);
  }
  expect_state(h, "ap-jobs-down", LX_ST_OPEN, LX_TIER_COUNTY, OCT23_1800);
  assert_int_equal(h->armed, OCT21_0336);

  mh_restart(h, OCT12_0900);
  assert_int_equal(h->n_recs, 3);
  assert_int_equal(h->armed, OCT21_0336);

  static const want_t county[] = {
      WARN(OCT21_0336, "county", OCT23_1800),
      ESC(OCT23_1800, "overdue", "county", "county", OCT23_1800, OCT26_1800),
  };
  expect_timeline(h, "ap-jobs-down", "qd.nh.wh", county, 2);
  expect_quiet(h, OCT25_0000);
  done(&h);
}

/* Two appeals share the one timer: each is decided at its own time. */
static void test_one_timer_serves_every_appeal(void **state) {
  mh_t *h = start(SEP22_1000);
  mh_appeal(h, "ap-a", "qd.hx.dy", "jobs", false);   /* community deadline 28 Sep 18:00 */
  mh_advance(h, SEP23_0900);
  mh_visit(h, "ap-a", "qd.hx.dy");
  mh_appeal(h, "ap-b", "qd.xs.gy", "jobs", true);    /* urgent: due 11:00, deadline 24 Sep */
  mh_visit(h, "ap-b", "qd.xs.gy");
  static const want_t b[] = {
      WARN(SEP24_1124, "community", SEP24_1800),
      ESC(SEP24_1800, "escalated", "community", "township", SEP24_1800, SEP29_1800),
  };
  expect_timeline(h, "ap-b", "qd.xs.gy", b, 2);
  static const want_t a[] = {
      WARN(SEP27_1136, "community", SEP28_1800),
  };
  expect_timeline(h, "ap-a", "qd.hx.dy", a, 1);
  expect_state(h, "ap-a", LX_ST_OPEN, LX_TIER_COMMUNITY, SEP28_1800);
  expect_state(h, "ap-b", LX_ST_OPEN, LX_TIER_TOWNSHIP, SEP29_1800);
  done(&h);
}

/* --- catch-up: many deadlines due at once --------------------------------------- */

#define BACKLOG 1100 /* appeals: 4400 records, more than one slice (4096) */
#define SLICE_ACTIONS 4096

static const char *const communities[] = {"qd.hx.dy", "qd.hx.xc", "qd.hx.bl", "qd.xs.sq",
                                          "qd.xs.lq", "qd.xs.gy", "qd.nh.hb", "qd.nh.wh",
                                          "qd.nh.yj"};

/* n jobs appeals on Tue 22 Sep from 10:00, one each 10 s: all have the
 * same deadlines (response 23 Sep, community 28 Sep, township 10 Oct, county
 * 23 Oct, all at 18:00). */
static mh_t *backlog_of(int n) {
  mh_t *h = start(SEP22_1000);
  for (int i = 0; i < n; i++) {
    char id[32];
    snprintf(id, sizeof id, "ap-backlog-%04d", i);
    mh_appeal(h, id, communities[i % 9], "jobs", false);
    h->now += 10000;
  }
  return h;
}

static mh_t *backlog(void) { return backlog_of(BACKLOG); }

/* The deadline a record was decided for: the key it came from. */
static int64_t decided_for(const mh_rec_t *r) {
  return strcmp(r->type, "unanswered") == 0 ? r->body.due : r->body.deadline;
}

/* After the restart on 30 Nov each of the n appeals has four records, each
 * made once, none a stale warning, all in deadline order across appeals. */
static void expect_caught_up_of(mh_t *h, size_t n) {
  static const char *const kinds[] = {"", "escalated", "escalated", "overdue"};
  static const int64_t deadlines[] = {SEP23_1800, SEP28_1800, OCT10_1800, OCT23_1800};
  assert_int_equal(h->n_recs, 4 * n);
  for (size_t i = 0; i < h->n_recs; i++) {
    const mh_rec_t *r = &h->recs[i];
    size_t step = i / n;
    char id[32];
    snprintf(id, sizeof id, "ap-backlog-%04zu", i % n);
    assert_string_equal(r->type, step == 0 ? "unanswered" : "escalation");
    assert_string_equal(r->body.kind, kinds[step]);
    assert_int_equal(decided_for(r), deadlines[step]);
    assert_string_equal(r->body.appeal, id); /* one each, in key order within a deadline */
    assert_string_equal(r->unit, communities[(i % n) % 9]);
  }
  assert_int_equal(count(h, "warning", NULL), 0);
  for (size_t i = 0; i < n; i += 37) {
    char id[32];
    snprintf(id, sizeof id, "ap-backlog-%04zu", i);
    expect_state(h, id, LX_ST_OPEN, LX_TIER_COUNTY, OCT23_1800);
  }
}

static void expect_caught_up(mh_t *h) { expect_caught_up_of(h, BACKLOG); }

/* Down for two months with a backlog: the catch-up goes in slices of at
 * most SLICE_ACTIONS records each, one commit each, in deadline order, and
 * a second restart decides nothing again. */
static void test_catch_up_in_slices_in_deadline_order(void **state) {
  mh_t *h = backlog();
  assert_int_equal(h->n_recs, 0);
  mh_restart(h, NOV30_1000);
  expect_caught_up(h);
  assert_true(h->max_batch <= SLICE_ACTIONS);
  assert_true(h->fires >= 2); /* more than one slice */
  assert_int_equal(h->n_alerts, 4 * BACKLOG);
  for (size_t i = 0; i < h->n_alerts; i++)
    assert_int_equal(h->alerts[i].seq, h->recs[i].seq); /* each alert after its record */
  int64_t armed = h->armed;
  assert_true(armed > NOV30_1000); /* the reminders, one working day on */
  mh_restart(h, NOV30_1000);
  assert_int_equal(h->n_recs, 4 * BACKLOG);
  assert_int_equal(h->armed, armed);
  done(&h);
}

/* A slow loop turn shrinks the next slice, so a client's event waits less
 * behind one: each of eight turns taking 35 ms (over SLICE_TURN_MS, 30)
 * halves the slice, down to 64 records and no further. The catch-up is the
 * same, in order and once each. (That quick turns let the slices grow back
 * depends on this machine's flushes, so it is not asserted.) */
static void test_slow_turns_shrink_the_slices(void **state) {
  mh_t *h = backlog_of(2500);
  h->slow_turns = 8;
  h->turn_ms = 35;
  mh_restart(h, NOV30_1000);
  expect_caught_up_of(h, 2500);
  static const size_t halved[] = {4096, 2048, 1024, 512, 256, 128, 64, 64};
  assert_true(h->n_batches > 8);
  for (size_t i = 0; i < 8; i++)
    assert_int_equal(h->batches[i], halved[i]);
  for (size_t i = 8; i < h->n_batches; i++)
    assert_true(h->batches[i] >= 64 || i == h->n_batches - 1); /* the floor, but for the rest */
  done(&h);
}

/* A slice the store refuses (E_FULL) in the middle of a catch-up is decided
 * again when the daemon retries, a second later, and nothing is decided
 * twice: the sweep goes back to the keys whose records never came. */
static void test_refused_slice_is_decided_again(void **state) {
  mh_t *h = backlog();
  h->refuse_after = 1; /* the first slice is stored, the second refused */
  h->refuse = 1;
  mh_restart(h, NOV30_1000);
  assert_int_equal(h->refuse, 0);
  assert_true(h->n_recs < 4 * BACKLOG);
  assert_int_equal(h->armed, NOV30_1000 + 1000);
  mh_advance(h, NOV30_1000 + 1000);
  expect_caught_up(h);
  /* the same with the first slice refused */
  done(&h);
  h = backlog();
  h->refuse = 1;
  mh_restart(h, NOV30_1000);
  assert_int_equal(h->n_recs, 0);
  mh_advance(h, NOV30_1000 + 1000);
  expect_caught_up(h);
  done(&h);
}

/* React keeps the timer without reading the index: records that put no
 * key earlier than the timer cost no read transaction. */
static void test_react_reads_no_index(void **state) {
  mh_t *h = start(SEP22_1000);
  mh_appeal(h, "ap-quiet", "qd.hx.dy", "jobs", false);
  mh_appeal(h, "ap-other", "qd.hx.dy", "jobs", false); /* same times: the timer stays */
  int reads = h->reads;
  for (int i = 0; i < 20; i++)
    mh_visit(h, "ap-other", "qd.hx.dy");
  mh_visit(h, "ap-quiet", "qd.hx.dy");
  assert_int_equal(h->reads, reads);
  assert_int_equal(h->armed, SEP23_1800); /* a removed key only makes it wake early */
  expect_quiet(h, SEP24_1000);
  assert_int_equal(h->armed, SEP27_1136);
  done(&h);
}

/* The sweep resumes where it stopped (here, at ap-a's warning on 27 Sep);
 * a key put before that place (ap-b's, urgent: response due in 2 hours) is
 * still found: apply notes it and the next sweep starts there. */
static void test_key_put_behind_the_sweep(void **state) {
  const int64_t b_due = SEP24_1000 + 2 * 3600000LL;
  mh_t *h = start(SEP22_1000);
  mh_appeal(h, "ap-a", "qd.hx.dy", "jobs", false);
  mh_advance(h, SEP24_1000); /* ap-a unanswered at 23 Sep 18:00 */
  assert_int_equal(h->n_recs, 1);
  assert_int_equal(h->armed, SEP27_1136);
  mh_appeal(h, "ap-b", "qd.xs.gy", "jobs", true);
  assert_int_equal(h->armed, b_due);
  expect_quiet(h, b_due - 1);
  mh_advance(h, b_due);
  assert_int_equal(h->n_recs, 2);
  assert_string_equal(h->recs[1].type, "unanswered");
  assert_string_equal(h->recs[1].body.appeal, "ap-b");
  assert_int_equal(h->recs[1].rat, b_due);
  done(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_descriptor_and_config),
      cmocka_unit_test(test_conf_items),
      cmocka_unit_test(test_config_keys_move_the_clocks),
      cmocka_unit_test(test_climbs_tiers_across_holidays),
      cmocka_unit_test(test_urgent_across_spring_festival),
      cmocka_unit_test(test_response_and_resolution_stop_the_clock),
      cmocka_unit_test(test_restart_rearms_without_escalating_twice),
      cmocka_unit_test(test_restart_catches_up_two_tiers),
      cmocka_unit_test(test_one_timer_serves_every_appeal),
      cmocka_unit_test(test_catch_up_in_slices_in_deadline_order),
      cmocka_unit_test(test_refused_slice_is_decided_again),
    cmocka_unit_test(test_slow_turns_shrink_the_slices),
      cmocka_unit_test(test_react_reads_no_index),
      cmocka_unit_test(test_key_put_behind_the_sweep),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
