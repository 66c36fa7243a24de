/* SPDX-License-Identifier: MIT
 *
 * test_calendar.c: unit tests of the working-day calendar (calendar.c).
 *
 * The calendar is built from the sample config/lianxin.yaml (the 2026
 * arrangement of the State Council) and from small configs written under
 * /tmp. Expected times are spelled as literal milliseconds, worked out by
 * hand (and checked with Python's datetime), each with its local time in a
 * comment, so a mistake in the calendar cannot hide behind the same mistake
 * in a test helper. A brute-force reference (one day at a time, through
 * lx_calendar_is_workday) then checks the fast bitmap search on many
 * random inputs across configured and unconfigured years.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "calendar.h"
#include "lx_proto.h"

#define H (3600 * 1000LL)
#define DAY (24 * H)

/* The smallest valid config; tests append a calendar section. */
#define MIN                                \
  "units:\n"                               \
  "  - code: qd\n"                         \
  "    name: x\n"                          \
  "    townships:\n"                       \
  "      - {code: hx, name: x, communities: [{code: dy, name: x}]}\n" \
  "categories: [{code: jobs, name: x}]\n"

static char *sample_path(void)
{
  const char *src = getenv("LX_SOURCE_DIR");
  char *p = NULL;
  if (src)
    assert_true(asprintf(&p, "%s/config/lianxin.yaml", src) > 0);
  else { /* run by hand: find the repo from this file's path */
    const char *me = __FILE__, *cut = strstr(me, "tests/unit/test_calendar.c");
    assert_non_null(cut);
    assert_true(asprintf(&p, "%.*sconfig/lianxin.yaml", (int)(cut - me), me) > 0);
  }
  return p;
}

static lx_calendar_t *calendar_from(const char *file)
{
  lx_config_t cfg;
  lx_calendar_t *c = NULL;
  char *err = NULL;
  if (lx_config_load(file, &cfg, &err))
    fail_msg("%s", err);
  assert_int_equal(lx_calendar_new(&cfg, &c), 0);
  assert_non_null(c);
  lx_config_free(&cfg); /* the calendar keeps nothing of it */
  return c;
}

static lx_calendar_t *sample(void)
{
  char *file = sample_path();
  lx_calendar_t *c = calendar_from(file);
  free(file);
  return c;
}

/* A calendar from MIN plus TEXT (a calendar: section). */
static lx_calendar_t *calendar_text(const char *text)
{
  char name[] = "/tmp/lx-test-calendar-XXXXXX";
  int fd = mkstemp(name);
  assert_true(fd >= 0);
  FILE *fp = fdopen(fd, "w");
  assert_non_null(fp);
  fprintf(fp, "%s%s", MIN, text);
  fclose(fp);
  lx_calendar_t *c = calendar_from(name);
  unlink(name);
  return c;
}

/* Runs fn with stderr going to a file; returns what was written (caller
 * frees). The calendar logs through log.h, which writes to stderr. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
  char name[] = "/tmp/lx-test-calendar-log-XXXXXX";
  int fd = mkstemp(name), saved = dup(2);
  assert_true(fd >= 0 && saved >= 0);
  fflush(stderr);
  dup2(fd, 2);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  off_t len = lseek(fd, 0, SEEK_END);
  char *text = calloc(1, (size_t)len + 1);
  assert_non_null(text);
  assert_int_equal(pread(fd, text, (size_t)len, 0), len);
  close(fd);
  unlink(name);
  return text;
}

static int count(const char *hay, const char *needle)
{
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)); p++)
    n++;
  return n;
}

/* ------------------------------------------------------------ civil dates */

static void test_dates(void **state)
{
  assert_int_equal(lx_date_to_days(1970, 1, 1), 0);
  assert_int_equal(lx_date_to_days(1969, 12, 31), -1);
  assert_int_equal(lx_date_to_days(2026, 1, 1), 20454);
  assert_int_equal(lx_date_to_days(2000, 3, 1), 11017);
  assert_int_equal(lx_date_weekday(0), 4);                               /* Thursday */
  assert_int_equal(lx_date_weekday(-1), 3);                              /* Wednesday */
  assert_int_equal(lx_date_weekday(lx_date_to_days(2026, 2, 14)), 6);    /* Saturday */
  assert_int_equal(lx_date_weekday(lx_date_to_days(2026, 1, 4)), 7);     /* Sunday */
  assert_int_equal(lx_date_weekday(lx_date_to_days(2027, 1, 1)), 5);     /* Friday */
  assert_true(lx_date_is_leap(2000) && lx_date_is_leap(2028));
  assert_false(lx_date_is_leap(1900) || lx_date_is_leap(2026));
  assert_int_equal(lx_date_days_in_month(2028, 2), 29);
  assert_int_equal(lx_date_days_in_month(2026, 2), 28);
  assert_int_equal(lx_date_days_in_month(2026, 12), 31);
  /* every day from 1960 to 2100 round-trips, in order */
  int py = 1959, pm = 12, pd = 31;
  for (int64_t z = lx_date_to_days(1960, 1, 1); z < lx_date_to_days(2100, 1, 1); z++) {
    int y, m, d;
    lx_date_from_days(z, &y, &m, &d);
    assert_int_equal(lx_date_to_days(y, m, d), z);
    bool next = (y == py && m == pm && d == pd + 1) || (y == py && m == pm + 1 && d == 1) ||
                (y == py + 1 && m == 1 && d == 1);
    assert_true(next);
    py = y, pm = m, pd = d;
  }
}

/* ------------------------------------------------------ the 2026 sample */

static void test_is_workday_2026(void **state)
{
  lx_calendar_t *c = sample();
  assert_false(lx_calendar_is_workday(c, 1767240000000));  /* Thu 2026-01-01 12:00, New Year */
  assert_true(lx_calendar_is_workday(c, 1767456000000));   /* Sun 2026-01-04 00:00, exchanged */
  assert_true(lx_calendar_is_workday(c, 1767542340000));   /* Sun 2026-01-04 23:59 */
  assert_false(lx_calendar_is_workday(c, 1767456000000 - 1)); /* Sat 01-03 23:59:59.999 */
  assert_true(lx_calendar_is_workday(c, 1767585600000));   /* Mon 2026-01-05 12:00 */
  assert_false(lx_calendar_is_workday(c, 1768017600000));  /* Sat 2026-01-10 12:00 */
  assert_true(lx_calendar_is_workday(c, 1771063200000));   /* Sat 2026-02-14 18:00, exchanged */
  assert_false(lx_calendar_is_workday(c, 1771819200000));  /* Mon 2026-02-23 12:00, holiday */
  assert_true(lx_calendar_year_covered(c, 2026));
  assert_false(lx_calendar_year_covered(c, 2025));
  assert_false(lx_calendar_year_covered(c, 2027));
  lx_calendar_free(&c);
  assert_null(c);
  lx_calendar_free(&c); /* safe twice */
  lx_calendar_free(NULL);
}

static void test_spring_festival(void **state)
{
  lx_calendar_t *c = sample();
  /* Fri 02-13 10:00: Sat 14 is worked (1), 15..23 are off, Tue 24 (2),
   * Wed 25 (3): due Wed 2026-02-25 18:00+08:00. */
  assert_int_equal(lx_calendar_deadline(c, 1770948000000, 3), 1772013600000);
  assert_int_equal(lx_calendar_deadline(c, 1770948000000, 1), 1771063200000); /* Sat 02-14 18:00 */
  assert_int_equal(lx_calendar_deadline(c, 1770948000000, 2), 1771927200000); /* Tue 02-24 18:00 */
  lx_calendar_free(&c);
}

static void test_national_day(void **state)
{
  lx_calendar_t *c = sample();
  /* Wed 09-30 10:00: 1..7 Oct off, Thu 8 (1), Fri 9 (2), Sat 10 worked (3). */
  assert_int_equal(lx_calendar_deadline(c, 1790733600000, 3), 1791626400000); /* Sat 10-10 18:00 */
  /* Thu 09-24 10:00: Mid-Autumn 25..27 Sep off, Mon 28 (1). */
  assert_int_equal(lx_calendar_deadline(c, 1790215200000, 1), 1790589600000); /* Mon 09-28 18:00 */
  lx_calendar_free(&c);
}

static void test_exchanged_saturday_counts(void **state)
{
  lx_calendar_t *c = sample();
  /* Fri 05-08 09:00, 1 day: Sat 05-09 is worked. */
  assert_int_equal(lx_calendar_deadline(c, 1778202000000, 1), 1778320800000);
  /* Fri 02-27 15:00, 1 day: Sat 02-28 is worked. */
  assert_int_equal(lx_calendar_deadline(c, 1772175600000, 1), 1772272800000);
  lx_calendar_free(&c);
}

static void test_weekend_skipped(void **state)
{
  lx_calendar_t *c = sample();
  /* Fri 03-06 10:00: 1 day is Mon 03-09, 5 days Fri 03-13 (18:00). */
  assert_int_equal(lx_calendar_deadline(c, 1772762400000, 1), 1773050400000);
  assert_int_equal(lx_calendar_deadline(c, 1772762400000, 5), 1773396000000);
  lx_calendar_free(&c);
}

static void test_receipt_time_of_day(void **state)
{
  lx_calendar_t *c = sample();
  /* Mon 03-09 at 10:00 or at 19:30 (after the working day): the day of
   * receipt never counts, so both are due Tue 03-10 18:00. */
  assert_int_equal(lx_calendar_deadline(c, 1773021600000, 1), 1773136800000);
  assert_int_equal(lx_calendar_deadline(c, 1773055800000, 1), 1773136800000);
  /* Tue 03-10 01:00+08:00 is still Monday in UTC; the local date counts,
   * so it is due Wed 03-11 18:00. */
  assert_int_equal(lx_calendar_deadline(c, 1773075600000, 1), 1773223200000);
  lx_calendar_free(&c);
}

static void test_receipt_on_holiday(void **state)
{
  lx_calendar_t *c = sample();
  /* Sat 02-21 (Spring Festival): Tue 24, Wed 25, Thu 26. */
  assert_int_equal(lx_calendar_deadline(c, 1771639200000, 3), 1772100000000);
  /* Sat 10-03 (National Day): Thu 8, Fri 9. */
  assert_int_equal(lx_calendar_deadline(c, 1790992800000, 2), 1791540000000);
  lx_calendar_free(&c);
}

static void test_next_workday_end(void **state)
{
  lx_calendar_t *c = sample();
  /* Mon 03-09: before 18:00 it is today's end, from 18:00 on tomorrow's. */
  assert_int_equal(lx_calendar_next_workday_end(c, 1773021600000), 1773050400000);
  assert_int_equal(lx_calendar_next_workday_end(c, 1773050400000 - 1), 1773050400000);
  assert_int_equal(lx_calendar_next_workday_end(c, 1773050400000), 1773136800000);
  assert_int_equal(lx_calendar_next_workday_end(c, 1773055800000), 1773136800000);
  /* Fri 03-13 19:00: the weekend is skipped, Mon 03-16 18:00. */
  assert_int_equal(lx_calendar_next_workday_end(c, 1773399600000), 1773655200000);
  /* Fri 02-13 19:00: Sat 02-14 is worked, so Sat 18:00. */
  assert_int_equal(lx_calendar_next_workday_end(c, 1770980400000), 1771063200000);
  /* Sun 02-15 10:00, a holiday: Tue 02-24 18:00. */
  assert_int_equal(lx_calendar_next_workday_end(c, 1771120800000), 1771927200000);
  lx_calendar_free(&c);
}

/* ------------------------------------------------- unconfigured years */

static void deadlines_into_2027(void *arg)
{
  lx_calendar_t *c = arg;
  /* Thu 2026-12-31 10:00, 2 days: 2027 is not configured, so Fri
   * 2027-01-01 counts as a plain weekday (1), then Mon 01-04 (2). */
  for (int i = 0; i < 3; i++)
    assert_int_equal(lx_calendar_deadline(c, 1798682400000, 2), 1799056800000);
  assert_true(lx_calendar_is_workday(c, 1799056800000));
  assert_int_equal(lx_calendar_next_workday_end(c, 1798682400000 + 9 * H), 1798797600000);
}

static void test_unconfigured_year(void **state)
{
  lx_calendar_t *c = sample();
  char *log = capture_stderr(deadlines_into_2027, c);
  assert_int_equal(count(log, "[calendar] year 2027 is not configured"), 1);
  assert_int_equal(count(log, "[calendar]"), 1); /* 2026 is configured: not logged */
  free(log);
  assert_false(lx_calendar_year_covered(c, 2027));
  lx_calendar_free(&c);
}

static void two_years(void *arg)
{
  lx_calendar_t *c = arg;
  int64_t fri_2027 = 1799056800000 - 3 * DAY; /* Fri 2027-01-01 18:00+08:00 */
  /* 2028 is configured with 2028-01-03 (Mon) off; 2027 between is not. */
  assert_true(lx_calendar_year_covered(c, 2026));
  assert_false(lx_calendar_year_covered(c, 2027));
  assert_true(lx_calendar_year_covered(c, 2028));
  assert_true(lx_calendar_is_workday(c, fri_2027));
  /* Fri 2027-12-31 10:00+08:00, 1 day: Mon 2028-01-03 is off, Tue 01-04. */
  int64_t from = (lx_date_to_days(2027, 12, 31) * DAY) + 2 * H;
  assert_int_equal(lx_calendar_deadline(c, from, 1), lx_date_to_days(2028, 1, 4) * DAY + 10 * H);
}

static void test_gap_between_years(void **state)
{
  lx_calendar_t *c = calendar_text("calendar:\n"
                                   "  years:\n"
                                   "    - {year: 2028, holidays: [2028-01-03]}\n"
                                   "    - {year: 2026}\n");
  char *log = capture_stderr(two_years, c);
  assert_int_equal(count(log, "year 2027 is not configured"), 1);
  assert_int_equal(count(log, "[calendar]"), 1);
  free(log);
  lx_calendar_free(&c);
}

static void far_years(void *arg)
{
  lx_calendar_t *c = arg;
  /* no years at all: Mon..Fri everywhere; clamped at both ends */
  assert_true(lx_calendar_is_workday(c, 0));                /* Thu 1970-01-01 */
  assert_false(lx_calendar_is_workday(c, 2 * DAY));         /* Sat 1970-01-03 */
  assert_true(lx_calendar_is_workday(c, -5 * DAY));         /* clamped to 1970-01-01 */
  assert_true(lx_calendar_is_workday(c, INT64_MAX));        /* Fri 9999-12-31 */
  int64_t d = lx_calendar_deadline(c, INT64_MAX, 1);        /* clamped to 9999-12-31 */
  assert_int_equal(d, lx_date_to_days(10000, 1, 3) * DAY + 10 * H); /* Mon 10000-01-03 */
}

static void test_no_years(void **state)
{
  lx_calendar_t *c = calendar_text("calendar: {utc_offset: '+00:00', workday_end: '10:00'}\n");
  char *log = capture_stderr(far_years, c);
  assert_int_equal(count(log, "year 1970 is not configured"), 1);
  assert_int_equal(count(log, "year 9999 is not configured"), 1);
  assert_int_equal(count(log, "year 10000 is outside 1970..9999"), 1);
  free(log);
  lx_calendar_free(&c);
}

/* ---------------------------------------------------- other settings */

static const char *const cal_2026_west =
  "calendar:\n"
  "  utc_offset: '-05:00'\n"
  "  workday_end: '17:30'\n"
  "  years:\n"
  "    - year: 2026\n"
  "      holidays: [2026-02-15..2026-02-23]\n"
  "      workdays: [2026-02-14]\n";

static void test_other_offset(void **state)
{
  lx_calendar_t *c = calendar_text(cal_2026_west);
  /* Fri 02-13 20:00-05:00 is already Sat 02-14 01:00 UTC. The local date,
   * Friday, counts: 1 day is Sat 02-14 (worked) 17:30-05:00. */
  assert_int_equal(lx_calendar_deadline(c, 1771030800000, 1), 1771108200000);
  assert_int_equal(lx_calendar_deadline(c, 1771030800000, 2), 1771972200000); /* Tue 02-24 */
  assert_int_equal(lx_calendar_next_workday_end(c, 1771030800000), 1771108200000);
  lx_calendar_free(&c);

  /* +05:45: Fri 02-13 23:00 local, 1 day: Sat 02-14 17:00+05:45 */
  c = calendar_text("calendar:\n  utc_offset: '+05:45'\n  workday_end: '17:00'\n"
                    "  years: [{year: 2026, workdays: [2026-02-14]}]\n");
  assert_int_equal(lx_calendar_deadline(c, 1771002900000, 1), 1771067700000);
  lx_calendar_free(&c);
}

static void test_workday_end_midnight(void **state)
{
  /* 24:00: a working day ends at the next local midnight. */
  lx_calendar_t *c = calendar_text("calendar:\n  workday_end: '24:00'\n"
                                   "  years: [{year: 2026, workdays: [2026-02-14]}]\n");
  int64_t sat_midnight = 1771063200000 + 6 * H; /* Sun 2026-02-15 00:00+08:00 */
  assert_int_equal(lx_calendar_deadline(c, 1770948000000, 1), sat_midnight);
  assert_int_equal(lx_calendar_next_workday_end(c, 1770980400000), 1770998400000); /* Fri's */
  assert_int_equal(lx_calendar_next_workday_end(c, sat_midnight - 1), sat_midnight);
  lx_calendar_free(&c);
}

static void test_custom_weekend(void **state)
{
  /* A Friday-only weekend; 2026-01-02 (Fri) off by the weekend rule. */
  lx_calendar_t *c = calendar_text("calendar:\n  weekend: [fri]\n"
                                   "  years: [{year: 2026, workdays: [2026-01-09]}]\n");
  int64_t thu = lx_date_to_days(2026, 1, 1) * DAY + 2 * H; /* Thu 01-01 10:00+08:00 */
  assert_int_equal(lx_calendar_deadline(c, thu, 1), thu + 2 * DAY + 8 * H);   /* Sat 01-03 */
  assert_false(lx_calendar_is_workday(c, thu + DAY));
  assert_true(lx_calendar_is_workday(c, thu + 8 * DAY));                     /* Fri 01-09 */
  lx_calendar_free(&c);
}

static void test_new_refuses_bad_conf(void **state)
{
  lx_config_t cfg = {0};
  lx_calendar_t *c = (lx_calendar_t *)&cfg;
  cfg.calendar.workday_end_min = 18 * 60;
  cfg.calendar.weekend = 0x7f; /* no working day at all: the loader refuses it */
  assert_int_equal(lx_calendar_new(&cfg, &c), LX_EINTERNAL);
  assert_null(c);
  cfg.calendar.weekend = 0;
  cfg.calendar.workday_end_min = 0;
  assert_int_equal(lx_calendar_new(&cfg, &c), LX_EINTERNAL);
}

/* ------------------------------------------------------ against a model */

static int64_t ref_deadline(const lx_calendar_t *c, int64_t from, int days, int64_t off,
                            int64_t end)
{
  int64_t local = from + off, day = (local - (local % DAY + DAY) % DAY) / DAY;
  while (days > 0) {
    day++;
    days -= lx_calendar_is_workday(c, day * DAY - off);
  }
  return day * DAY + end - off;
}

static int64_t ref_next_end(const lx_calendar_t *c, int64_t from, int64_t off, int64_t end)
{
  int64_t local = from + off, day = (local - (local % DAY + DAY) % DAY) / DAY;
  while (!lx_calendar_is_workday(c, day * DAY - off) || day * DAY + end - off <= from)
    day++;
  return day * DAY + end - off;
}

static void random_checks(void *arg)
{
  lx_calendar_t *c = arg;
  int64_t lo = lx_date_to_days(2025, 6, 1) * DAY, span = 900 * DAY;
  srand(42);
  for (int i = 0; i < 20000; i++) {
    int64_t from = lo + (int64_t)((double)rand() / RAND_MAX * (double)span);
    int days = 1 + rand() % 200; /* reaches 2028, not 2029 */
    assert_int_equal(lx_calendar_deadline(c, from, days),
                     ref_deadline(c, from, days, 8 * H, 18 * H));
    assert_int_equal(lx_calendar_next_workday_end(c, from), ref_next_end(c, from, 8 * H, 18 * H));
  }
}

static void test_matches_reference(void **state)
{
  lx_calendar_t *c = sample();
  char *log = capture_stderr(random_checks, c);
  assert_int_equal(count(log, "year 2025 is not configured"), 1);
  assert_int_equal(count(log, "year 2027 is not configured"), 1);
  assert_int_equal(count(log, "year 2028 is not configured"), 1);
  assert_int_equal(count(log, "[calendar]"), 3);
  free(log);
  lx_calendar_free(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_dates),
    cmocka_unit_test(test_is_workday_2026),
    cmocka_unit_test(test_spring_festival),
    cmocka_unit_test(test_national_day),
    cmocka_unit_test(test_exchanged_saturday_counts),
    cmocka_unit_test(test_weekend_skipped),
    cmocka_unit_test(test_receipt_time_of_day),
    cmocka_unit_test(test_receipt_on_holiday),
    cmocka_unit_test(test_next_workday_end),
    cmocka_unit_test(test_unconfigured_year),
    cmocka_unit_test(test_gap_between_years),
    cmocka_unit_test(test_no_years),
    cmocka_unit_test(test_other_offset),
    cmocka_unit_test(test_workday_end_midnight),
    cmocka_unit_test(test_custom_weekend),
    cmocka_unit_test(test_new_refuses_bad_conf),
    cmocka_unit_test(test_matches_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
