/* SPDX-License-Identifier: MIT
 *
 * timeparse.c: the one parser of times that people type (see cli.h).
 *
 * PROTOCOL.md's times are milliseconds since the Unix epoch; a person
 * would rather write a date. Accepted, whole string only:
 *
 *   1767225600000                 milliseconds since the epoch, as before
 *   2026-11-01                    local midnight that day
 *   2026-11-01T08:00              local time (seconds and up to nine
 *   2026-11-01T08:00:30.250         fraction digits optional; a space may
 *                                   stand for the T)
 *   2026-11-01T08:00+08:00        with an offset from UTC (+0800 and +08
 *   2026-11-01T08:00Z               are taken too); Z means UTC
 *
 * "Local" is this machine's time zone (TZ), resolved by mktime, so a date
 * in summer time gets the summer offset. Fields are range-checked (no 31st
 * of April, no hour 24); the result must not be before the epoch.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Reads exactly n decimal digits at *p. */
static bool digits(const char **p, int n, int *out)
{
  int v = 0;
  for (int i = 0; i < n; i++) {
    char ch = (*p)[i];
    if (ch < '0' || ch > '9')
      return false;
    v = v * 10 + (ch - '0');
  }
  *p += n;
  *out = v;
  return true;
}

static bool leap(int y)
{
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool lx_time_parse(const char *s, int64_t *ms_out)
{
  size_t n = strlen(s);
  if (n > 0 && strspn(s, "0123456789") == n)
    return parse_i64(s, 0, INT64_MAX, ms_out);

  const char *p = s;
  int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
  bool has_zone = false;
  int64_t zone_min = 0;
  if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
      !digits(&p, 2, &d))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > month_days(y, mo))
    return false;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || h > 23 || mi > 59)
      return false;
    if (*p == ':') {
      p++;
      if (!digits(&p, 2, &sec) || sec > 59)
        return false;
      if (*p == '.' || *p == ',') {
        p++;
        int nd = 0, scale = 100;
        for (; *p >= '0' && *p <= '9'; p++, nd++) {
          if (nd < 3)
            ms += (*p - '0') * scale;
          scale /= 10;
        }
        if (nd < 1 || nd > 9)
          return false;
      }
    }
    if (*p == 'Z' || *p == 'z') {
      p++;
      has_zone = true;
    } else if (*p == '+' || *p == '-') {
      int sign = *p++ == '-' ? -1 : 1, zh, zm = 0;
      if (!digits(&p, 2, &zh))
        return false;
      if (*p == ':') {
        p++;
        if (!digits(&p, 2, &zm))
          return false;
      } else if (*p >= '0' && *p <= '9' && !digits(&p, 2, &zm)) {
        return false;
      }
      if (zh > 23 || zm > 59)
        return false;
      has_zone = true;
      zone_min = sign * (zh * 60 + zm);
    }
  }
  if (*p != '\0')
    return false;

  int64_t secs;
  if (has_zone) {
    secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - zone_min * 60;
  } else {
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec, .tm_isdst = -1};
    time_t t = mktime(&tm);
    if (t == (time_t)-1 && !(tm.tm_year == 69 && tm.tm_mon == 11 && tm.tm_mday == 31))
      return false;
    secs = (int64_t)t;
  }
  if (secs < 0)
    return false;
  *ms_out = secs * 1000 + ms;
  return true;
}
