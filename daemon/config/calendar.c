/* SPDX-License-Identifier: MIT
 *
 * calendar.c: the working-day calendar (calendar.h).
 *
 * An escalation engine asks for many deadlines, so no query walks a list of
 * holidays. Design: at build time each configured year becomes a bitmap of
 * its working days (weekend rule, minus holidays, plus exchanged workdays),
 * held in a dense array from the first to the last configured year. A year
 * outside the configuration uses one of fourteen precomputed plain-weekday
 * bitmaps (by the weekday of 1 January and leap or not), so it costs the
 * same. Counting n working days is then a popcount per 64 days and a bit
 * select in the last word: a 10-day deadline touches one or two words.
 *
 * Day numbers are days since 1970-01-01 in local time (UTC plus the fixed
 * offset); floor division keeps them right before the epoch too.
 */
#include "calendar.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lx_proto.h"

#define DAY_MS 86400000LL
#define MIN_MS 60000LL
#define CAL_WORDS ((LX_CAL_DAYS + 63) / 64)

/* Inputs are clamped to [1970-01-01, 10000-01-01) UTC: every time the
 * daemon handles lies there, and it keeps day arithmetic far from overflow. */
#define CAL_MS_MIN 0LL
#define CAL_MS_MAX 253402300799999LL

/* The working days of one year: bit d is 1 January + d. */
typedef struct cal_bits {
  uint64_t w[CAL_WORDS];
} cal_bits_t;

struct lx_calendar {
  int64_t offset_ms; /* local time minus UTC */
  int64_t end_ms;    /* workday_end after local midnight */
  unsigned weekend;  /* LX_CAL_WEEKDAY_BIT per day off */
  int first_year;    /* years[0] and covered[0] are this year */
  int n_years;       /* first_year .. first_year + n_years - 1 */
  cal_bits_t *years;
  bool *covered;           /* the year is configured (not a gap between two that are) */
  cal_bits_t plain[7][2];  /* unconfigured years, by ISO weekday of 1 January - 1, leap */
  /* Years already reported as unconfigured: bit (year - LX_CAL_YEAR_MIN),
   * plus one last bit for any year outside LX_CAL_YEAR_MIN..MAX. The only
   * state a query changes; kept behind a pointer so the const query API
   * can set it without casting const away. */
  uint8_t *warned;
};

#define WARN_BITS (LX_CAL_YEAR_MAX - LX_CAL_YEAR_MIN + 2)

/* ------------------------------------------------------------ civil dates */

static int64_t floor_div(int64_t a, int64_t b)
{
  int64_t q = a / b;
  return q - ((a % b != 0) && ((a < 0) != (b < 0)));
}

bool lx_date_is_leap(int year)
{
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int lx_date_days_in_month(int year, int month)
{
  static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  assert(month >= 1 && month <= 12);
  return month == 2 && lx_date_is_leap(year) ? 29 : dim[month - 1];
}

/* Howard Hinnant's days_from_civil: exact for every Gregorian date. */
int64_t lx_date_to_days(int year, int month, int day)
{
  int64_t y = (int64_t)year - (month <= 2);
  int64_t era = floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t mp = (month + 9) % 12;
  int64_t doy = (153 * mp + 2) / 5 + day - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void lx_date_from_days(int64_t days, int *year, int *month, int *day)
{
  int64_t z = days + 719468;
  int64_t era = floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *day = (int)(doy - (153 * mp + 2) / 5 + 1);
  *month = m;
  *year = (int)(yoe + era * 400 + (m <= 2));
}

int lx_date_weekday(int64_t days)
{
  /* 1970-01-01 was a Thursday (4). */
  return (int)(days + 3 - floor_div(days + 3, 7) * 7) + 1;
}

static int year_len(int year) { return lx_date_is_leap(year) ? 366 : 365; }

/* ------------------------------------------------------------------ bits */

static bool bit_get(const uint8_t *map, int d) { return map[d / 8] >> (d % 8) & 1; }
static bool word_get(const cal_bits_t *b, int d) { return b->w[d / 64] >> (d % 64) & 1; }

/* Fills b with the working days of a year of len days whose 1 January has
 * ISO weekday wd1, by the weekend rule alone. */
static void plain_fill(cal_bits_t *b, unsigned weekend, int wd1, int len)
{
  memset(b, 0, sizeof *b);
  for (int d = 0; d < len; d++) {
    int wd = (wd1 - 1 + d) % 7 + 1;
    if (!(weekend & LX_CAL_WEEKDAY_BIT(wd)))
      b->w[d / 64] |= 1ULL << (d % 64);
  }
}

/* The configured year y: the weekend rule, then holidays off, then
 * exchanged workdays on (the loader has made sure the two do not meet). */
static void year_fill(cal_bits_t *b, unsigned weekend, const lx_cal_year_t *y)
{
  int len = year_len(y->year);
  plain_fill(b, weekend, lx_date_weekday(lx_date_to_days(y->year, 1, 1)), len);
  for (int d = 0; d < len; d++) {
    uint64_t m = 1ULL << (d % 64);
    if (bit_get(y->holiday, d))
      b->w[d / 64] &= ~m;
    if (bit_get(y->workday, d))
      b->w[d / 64] |= m;
  }
}

/* Returns the day of the year of the n-th working day at or after day `from`
 * of b, or -1 after taking the working days seen from *n. */
static int bits_select(const cal_bits_t *b, int from, int *n)
{
  for (int i = from / 64; i < CAL_WORDS; i++) {
    uint64_t w = b->w[i];
    if (i == from / 64)
      w &= ~0ULL << (from % 64);
    int k = __builtin_popcountll(w);
    if (k < *n) {
      *n -= k;
      continue;
    }
    for (int j = 1; j < *n; j++)
      w &= w - 1; /* drop the lowest working day */
    return i * 64 + __builtin_ctzll(w);
  }
  return -1;
}

/* ----------------------------------------------------------------- years */

static void warn_once(const lx_calendar_t *c, int year)
{
  bool in = year >= LX_CAL_YEAR_MIN && year <= LX_CAL_YEAR_MAX;
  int bit = in ? year - LX_CAL_YEAR_MIN : WARN_BITS - 1;
  if (c->warned[bit / 8] >> (bit % 8) & 1)
    return;
  c->warned[bit / 8] |= (uint8_t)(1u << (bit % 8));
  if (in)
    lx_warn("calendar",
            "year %d is not configured (calendar.years or calendar.files): counting every "
            "day but the weekend as a working day, without public holidays",
            year);
  else
    lx_warn("calendar", "year %d is outside %d..%d: counting every day but the weekend as a "
            "working day (logged once for all such years)", year, LX_CAL_YEAR_MIN,
            LX_CAL_YEAR_MAX);
}

bool lx_calendar_year_covered(const lx_calendar_t *c, int year)
{
  int i = year - c->first_year;
  return year >= c->first_year && i < c->n_years && c->covered[i];
}

/* The working days of a year; an unconfigured one is logged (once) here,
 * since this is where the calendar starts to guess. */
static const cal_bits_t *year_bits(const lx_calendar_t *c, int year)
{
  if (lx_calendar_year_covered(c, year))
    return &c->years[year - c->first_year];
  warn_once(c, year);
  int wd1 = lx_date_weekday(lx_date_to_days(year, 1, 1));
  return &c->plain[wd1 - 1][lx_date_is_leap(year)];
}

/* The day number of the n-th working day at or after day `day` (n >= 1).
 * Ends: every unconfigured year has working days, as the weekend may not
 * hold all seven days. */
static int64_t nth_workday(const lx_calendar_t *c, int64_t day, int n)
{
  int year, month, mday;
  lx_date_from_days(day, &year, &month, &mday);
  int64_t jan1 = lx_date_to_days(year, 1, 1);
  int d = (int)(day - jan1);
  for (;;) {
    int hit = bits_select(year_bits(c, year), d, &n);
    if (hit >= 0)
      return jan1 + hit;
    jan1 += year_len(year);
    year++;
    d = 0;
  }
}

/* --------------------------------------------------------------- times */

static int64_t clamp_ms(int64_t ms)
{
  return ms < CAL_MS_MIN ? CAL_MS_MIN : ms > CAL_MS_MAX ? CAL_MS_MAX : ms;
}

static int64_t local_day(const lx_calendar_t *c, int64_t ms)
{
  return floor_div(clamp_ms(ms) + c->offset_ms, DAY_MS);
}

static int64_t day_end(const lx_calendar_t *c, int64_t day)
{
  return day * DAY_MS + c->end_ms - c->offset_ms;
}

bool lx_calendar_is_workday(const lx_calendar_t *c, int64_t ms)
{
  int64_t day = local_day(c, ms);
  int year, month, mday;
  lx_date_from_days(day, &year, &month, &mday);
  return word_get(year_bits(c, year), (int)(day - lx_date_to_days(year, 1, 1)));
}

int64_t lx_calendar_deadline(const lx_calendar_t *c, int64_t from, int days)
{
  assert(days >= 1);
  if (days < 1)
    days = 1; /* a caller's bug; the nearest sensible answer */
  return day_end(c, nth_workday(c, local_day(c, from) + 1, days));
}

int64_t lx_calendar_next_workday_end(const lx_calendar_t *c, int64_t from)
{
  int64_t day = local_day(c, from);
  if (day_end(c, day) <= clamp_ms(from))
    day++; /* today's working day, if it was one, is over */
  return day_end(c, nth_workday(c, day, 1));
}

/* ------------------------------------------------------------- lifecycle */

static bool conf_ok(const lx_calendar_conf_t *k)
{
  if (k->utc_offset_min < -14 * 60 || k->utc_offset_min > 14 * 60 || k->workday_end_min < 1 ||
      k->workday_end_min > 24 * 60 || (k->weekend & 0x7f) == 0x7f)
    return false;
  for (size_t i = 0; i < k->n_years; i++)
    if (k->years[i].year < LX_CAL_YEAR_MIN || k->years[i].year > LX_CAL_YEAR_MAX)
      return false;
  return true;
}

/* Fills the dense table of configured years; gaps between them keep
 * covered false and are never read. */
static int years_build(lx_calendar_t *c, const lx_calendar_conf_t *k)
{
  int lo = LX_CAL_YEAR_MAX, hi = LX_CAL_YEAR_MIN - 1;
  for (size_t i = 0; i < k->n_years; i++) {
    lo = k->years[i].year < lo ? k->years[i].year : lo;
    hi = k->years[i].year > hi ? k->years[i].year : hi;
  }
  if (hi < lo)
    return 0; /* no years: every year is plain */
  c->first_year = lo;
  c->n_years = hi - lo + 1;
  c->years = calloc((size_t)c->n_years, sizeof *c->years);
  c->covered = calloc((size_t)c->n_years, sizeof *c->covered);
  if (!c->years || !c->covered)
    return LX_EINTERNAL;
  for (size_t i = 0; i < k->n_years; i++) {
    year_fill(&c->years[k->years[i].year - lo], c->weekend, &k->years[i]);
    c->covered[k->years[i].year - lo] = true;
  }
  return 0;
}

int lx_calendar_new(const lx_config_t *cfg, lx_calendar_t **out)
{
  const lx_calendar_conf_t *k = &cfg->calendar;
  assert(out);
  *out = NULL;
  if (!conf_ok(k))
    return LX_EINTERNAL;
  lx_calendar_t *c = calloc(1, sizeof *c);
  if (!c)
    return LX_EINTERNAL;
  c->offset_ms = k->utc_offset_min * MIN_MS;
  c->end_ms = k->workday_end_min * MIN_MS;
  c->weekend = k->weekend & 0x7f;
  for (int wd = 1; wd <= 7; wd++)
    for (int leap = 0; leap < 2; leap++)
      plain_fill(&c->plain[wd - 1][leap], c->weekend, wd, 365 + leap);
  c->warned = calloc((WARN_BITS + 7) / 8, 1);
  if (!c->warned || years_build(c, k)) {
    lx_calendar_free(&c);
    return LX_EINTERNAL;
  }
  *out = c;
  return 0;
}

void lx_calendar_free(lx_calendar_t **c)
{
  if (!c || !*c)
    return;
  free((*c)->years);
  free((*c)->covered);
  free((*c)->warned);
  free(*c);
  *c = NULL;
}
