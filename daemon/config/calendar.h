/* SPDX-License-Identifier: MIT
 *
 * calendar.h: the working-day calendar that escalation deadlines are
 * counted on.
 *
 * Chinese administrative deadlines run in working days: weekends and public
 * holidays do not count, while some weekend days are worked in exchange for
 * a longer holiday (调休上班). The State Council publishes each year's
 * arrangement around November, so the arrangement is data (the `calendar:`
 * section of the config, see docs/config.md), never code. A year the config
 * does not cover is counted as plain weekdays (every day but the configured
 * weekend), and the calendar says so in the log once per year.
 *
 * Every time is milliseconds since the Unix epoch, UTC, as clock.h gives
 * it. "Local" means UTC plus the configured fixed offset (China has no
 * daylight saving time, so a fixed offset is exact and needs no tz data).
 *
 * Threads: the calendar is built once and then only read, except for the
 * set of years already warned about, which the query functions update. Use
 * one calendar from one thread (the event loop's), or give each thread its
 * own.
 */
#ifndef LX_CALENDAR_H
#define LX_CALENDAR_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

typedef struct lx_calendar lx_calendar_t;

/* Builds a calendar from a loaded config (lx_config_load has checked it):
 * a table of working days for each configured year, so no query scans a
 * list. cfg is not kept. Returns 0 and sets *out (caller owns it; free with
 * lx_calendar_free), or LX_EINTERNAL on out of memory or a config the loader
 * would have refused. Does not block. */
int lx_calendar_new(const lx_config_t *cfg, lx_calendar_t **out);

/* Frees *c and sets it to NULL. Safe on NULL and on a pointer to NULL. */
void lx_calendar_free(lx_calendar_t **c);

/* True if the local date of ms is a working day. */
bool lx_calendar_is_workday(const lx_calendar_t *c, int64_t ms);

/* The deadline `days` working days after `from`: the workday_end time of
 * the days-th working day after the local date of `from`. The day of
 * receipt never counts, whatever the hour (期间开始之日不计算在内), so an
 * appeal received on Friday at 10:00 or at 23:00 has the same deadline.
 * days >= 1. */
int64_t lx_calendar_deadline(const lx_calendar_t *c, int64_t from, int days);

/* The end (workday_end) of the first working day whose end is strictly
 * after `from`: the next moment an "every working day" reminder is due. */
int64_t lx_calendar_next_workday_end(const lx_calendar_t *c, int64_t from);

/* True if the config gives the arrangement of `year`; otherwise the
 * calendar counts that year as plain weekdays. Never logs. */
bool lx_calendar_year_covered(const lx_calendar_t *c, int year);

/* Civil (proleptic Gregorian) dates, shared with the config loader.
 * A day number is days since 1970-01-01; months and days count from 1. */
bool lx_date_is_leap(int year);
int lx_date_days_in_month(int year, int month);
int64_t lx_date_to_days(int year, int month, int day);
void lx_date_from_days(int64_t days, int *year, int *month, int *day);
/* ISO weekday of a day number: 1 Monday .. 7 Sunday. */
int lx_date_weekday(int64_t days);

#endif
