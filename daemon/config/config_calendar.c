/* SPDX-License-Identifier: MIT
 *
 * config_calendar.c: checks the two config sections that decide when an
 * appeal is due: deadlines (working days allowed at each tier, with
 * per-category overrides) and calendar (which days are working days).
 *
 * The two are one subject, and they hold most of the loader's checks that
 * span keys: an override must name a configured category, and an exchanged
 * workday must be a day of the configured weekend. They are checked with
 * config_values.c's checks and config.c's problem list (config_internal.h),
 * so their problems read like any others and are reported at the line of
 * the key that caused them.
 *
 * The calendar may pull in per-year files (calendar.files): each is parsed
 * and checked the same way with its own document, and its problems carry
 * its own name and lines but sort at the line of the entry naming it.
 */
#include "config.h"
#include "config_internal.h"
#include "calendar.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

/* ---------------------------------------------------------------- schema */

#define TIER(t) offsetof(lx_tier_days_t, days[t])

static const cfg_field_t deadlines_fields[] = {
  {"normal", CT_MAP, false, 0, 0, NO_OFF, NULL, "days per tier for normal appeals"},
  {"urgent", CT_MAP, false, 0, 0, NO_OFF, NULL, "days per tier for urgent appeals"},
  {"categories", CT_MAP, false, 0, 0, NO_OFF, NULL,
   "per-category overrides: a category code maps to {normal, urgent}"},
};

#define TIER_FIELDS(d1, d2, d3)                                                       \
  {"community", CT_INT, false, 1, 365, TIER(LX_TIER_COMMUNITY), d1,                  \
   "working days at the community"},                                                 \
  {"township", CT_INT, false, 1, 365, TIER(LX_TIER_TOWNSHIP), d2,                    \
   "working days at the township"},                                                  \
  {"county", CT_INT, false, 1, 365, TIER(LX_TIER_COUNTY), d3, "working days at the county"}
static const cfg_field_t tiers_normal_fields[] = {TIER_FIELDS("3", "5", "10")};
static const cfg_field_t tiers_urgent_fields[] = {TIER_FIELDS("1", "2", "3")};
static const cfg_field_t tiers_override_fields[] = {
  TIER_FIELDS("inherited", "inherited", "inherited")};

static const cfg_field_t override_fields[] = {
  {"normal", CT_MAP, false, 0, 0, NO_OFF, NULL, "overrides of deadlines.normal"},
  {"urgent", CT_MAP, false, 0, 0, NO_OFF, NULL, "overrides of deadlines.urgent"},
};

/* Offsets are in minutes: UTC-14:00 .. UTC+14:00 spans every zone in use. */
static const cfg_field_t calendar_fields[] = {
  {"utc_offset", CT_OFFSET, false, -14 * 60, 14 * 60,
   offsetof(lx_calendar_conf_t, utc_offset_min), "+08:00",
   "local time as a fixed offset from UTC, \"+HH:MM\" (China has no daylight saving time)"},
  {"workday_end", CT_TIME, false, 1, 24 * 60, offsetof(lx_calendar_conf_t, workday_end_min),
   "18:00", "a working day ends at this local time, \"HH:MM\"; deadlines fall on it"},
  {"weekend", CT_LIST, false, 0, 7, NO_OFF, "[sat, sun]",
   "the days off every week: mon, tue, wed, thu, fri, sat, sun"},
  {"years", CT_LIST, false, 0, 1000, NO_OFF, "[]",
   "each year's holidays and exchanged working days, written here"},
  {"files", CT_LIST, false, 0, 1000, NO_OFF, "[]",
   "per-year files, relative to the config file's directory; each holds one mapping "
   "shaped like a calendar.years[] entry"},
};
enum { CAL_UTC_OFFSET, CAL_WORKDAY_END, CAL_WEEKEND, CAL_YEARS, CAL_FILES };

static const cfg_field_t cal_year_fields[] = {
  {"year", CT_INT, true, LX_CAL_YEAR_MIN, LX_CAL_YEAR_MAX, offsetof(lx_cal_year_t, year), NULL,
   "the year this arrangement is for; each year once"},
  {"holidays", CT_LIST, false, 0, LX_CAL_DAYS, NO_OFF, "[]",
   "days off: \"YYYY-MM-DD\" or an inclusive range \"YYYY-MM-DD..YYYY-MM-DD\" in the year"},
  {"workdays", CT_LIST, false, 0, LX_CAL_DAYS, NO_OFF, "[]",
   "weekend days worked in exchange (调休上班), written the same way"},
};
enum { YEAR_YEAR, YEAR_HOLIDAYS, YEAR_WORKDAYS };

const cfg_section_t lx__cfg_deadlines_sec = SECTION("deadlines", deadlines_fields, false);
const cfg_section_t lx__cfg_normal_sec = SECTION("deadlines.normal", tiers_normal_fields, false);
const cfg_section_t lx__cfg_urgent_sec = SECTION("deadlines.urgent", tiers_urgent_fields, false);
const cfg_section_t lx__cfg_override_sec =
  SECTION("deadlines.categories.CODE", override_fields, false);
const cfg_section_t lx__cfg_override_tiers_sec =
  SECTION("deadlines.categories.CODE.normal|urgent", tiers_override_fields, false);
const cfg_section_t lx__cfg_calendar_sec = SECTION("calendar", calendar_fields, false);
const cfg_section_t lx__cfg_cal_year_sec = SECTION("calendar.years[]", cal_year_fields, false);

/* ------------------------------------------------------------ deadlines */

static void unknown_category(cfg_ctx_t *c, const yaml_node_t *k, const char *path)
{
  const lx_config_t *cfg = c->cfg;
  size_t total = 1;
  for (size_t i = 0; i < cfg->n_categories; i++)
    total += strlen(cfg->categories[i].code) + 2;
  char *list = malloc(total), *o = list;
  if (!list) {
    c->oom = true;
    return;
  }
  *o = '\0';
  for (size_t i = 0; i < cfg->n_categories; i++)
    o = stpcpy(stpcpy(o, i ? ", " : ""), cfg->categories[i].code);
  lx__cfg_err(c, node_line(k), path, "unknown category; configured categories: %s",
              cfg->n_categories ? list : "(none)");
  free(list);
}

static void check_override(cfg_ctx_t *c, yaml_node_t *v, const char *path,
                           lx_deadline_override_t *o)
{
  yaml_node_t *got[CFG_MAX_FIELDS], *unused[CFG_MAX_FIELDS];
  char kpath[CFG_PATH];
  if (!lx__cfg_check_map(c, v, path, &lx__cfg_override_sec, NULL, got))
    return;
  for (int i = 0; i < 2; i++) {
    if (!got[i])
      continue;
    lx__cfg_path_key(kpath, path, override_fields[i].key);
    lx__cfg_check_map(c, got[i], kpath, &lx__cfg_override_tiers_sec, i ? &o->urgent : &o->normal,
                      unused);
  }
}

/* deadlines.categories: each key must name a configured category (checked
 * here, at the key's line, so categories are walked first). */
static void walk_overrides(cfg_ctx_t *c, yaml_node_t *map)
{
  lx_deadlines_t *d = &c->cfg->deadlines;
  char kpath[CFG_PATH];
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
    if (k->type != YAML_SCALAR_NODE || lx__cfg_earlier_key(c, map, p))
      continue; /* reported by scan_node */
    lx__cfg_path_key(kpath, "deadlines.categories", sval(k));
    lx_deadline_override_t o = {.line = node_line(k)};
    bool known = lx_config_find_category(c->cfg, sval(k), slen(k)) >= 0;
    if (!known && !c->cats_broken)
      unknown_category(c, k, kpath);
    check_override(c, yaml_document_get_node(c->doc, p->value), kpath, &o);
    lx_deadline_override_t *a =
      known ? lx__cfg_grow(c, d->overrides, &c->cap_overrides, d->n_overrides, sizeof *a) : NULL;
    if (!a)
      continue;
    d->overrides = a;
    o.category = strdup(sval(k));
    c->oom = c->oom || !o.category;
    a[d->n_overrides++] = o;
  }
}

void lx__cfg_check_deadlines(cfg_ctx_t *c, yaml_node_t *node)
{
  yaml_node_t *got[CFG_MAX_FIELDS], *unused[CFG_MAX_FIELDS];
  lx_deadlines_t *d = &c->cfg->deadlines;
  if (!lx__cfg_check_map(c, node, "deadlines", &lx__cfg_deadlines_sec, NULL, got))
    return;
  if (got[0])
    lx__cfg_check_map(c, got[0], "deadlines.normal", &lx__cfg_normal_sec, &d->normal, unused);
  if (got[1])
    lx__cfg_check_map(c, got[1], "deadlines.urgent", &lx__cfg_urgent_sec, &d->urgent, unused);
  if (got[2])
    walk_overrides(c, got[2]);
}

/* ------------------------------------------------------------- calendar */

static const char *const day_short[8] = {"", "mon", "tue", "wed", "thu", "fri", "sat", "sun"};
static const char *const day_long[8] = {"",         "Monday", "Tuesday",  "Wednesday",
                                        "Thursday", "Friday", "Saturday", "Sunday"};

/* List items that are plain text: a day name, a date, a file name. Checked
 * through lx__cfg_field_value so a list or an empty item reads as anywhere
 * else. */
static const cfg_field_t text_item = {"", CT_STRING, true, 1, CFG_PATH_MAX, NO_OFF, NULL, ""};

/* Per day of one year: the line that listed it, or 0. Holidays and
 * workdays are kept apart so a day in both is caught with both lines. */
typedef struct cal_marks {
  int hol[LX_CAL_DAYS];
  int work[LX_CAL_DAYS];
} cal_marks_t;

/* True if MAP has KEY with a non-empty value (the first, if repeated). */
static bool has_value(cfg_ctx_t *c, const yaml_node_t *map, const char *key)
{
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
    if (k->type == YAML_SCALAR_NODE && !strcmp(sval(k), key))
      return !lx__cfg_is_null(yaml_document_get_node(c->doc, p->value));
  }
  return false;
}

static int day_parse(const yaml_node_t *v)
{
  for (int wd = 1; wd <= 7; wd++)
    if (!strcmp(sval(v), day_short[wd]))
      return wd;
  return 0;
}

/* calendar.weekend. Any problem leaves the default in place and marks the
 * weekend broken, so workdays are not judged against a guess. */
static void walk_weekend(cfg_ctx_t *c, yaml_node_t *seq)
{
  int first[8] = {0};
  unsigned mask = 0;
  size_t before = c->n_probs;
  char ipath[CFG_PATH], vb[64];
  for (size_t i = 0; i < seq_len(seq); i++) {
    yaml_node_t *v = seq_item(c, seq, i);
    lx__cfg_path_idx(ipath, "calendar.weekend", i);
    if (!lx__cfg_field_value(c, &text_item, v, node_line(v), ipath, NULL))
      continue;
    int wd = day_parse(v);
    if (!wd)
      lx__cfg_err(c, node_line(v), ipath,
                  "%s is not a day; expected mon, tue, wed, thu, fri, sat or sun",
                  lx__cfg_show(v, vb, sizeof vb));
    else if (first[wd])
      lx__cfg_err(c, node_line(v), ipath, "duplicate day %s; first at line %d",
                  lx__cfg_show(v, vb, sizeof vb), first[wd]);
    else {
      first[wd] = node_line(v);
      mask |= LX_CAL_WEEKDAY_BIT(wd);
    }
  }
  c->weekend_broken = c->n_probs != before;
  if (!c->weekend_broken && mask == 0x7f) {
    lx__cfg_err(c, node_line(seq), "calendar.weekend",
                "lists all seven days; at least one day of the week must be a working day");
    c->weekend_broken = true;
  }
  if (!c->weekend_broken)
    c->cfg->calendar.weekend = mask;
}

/* "YYYY-MM-DD" (the 10 bytes at s) into a day number. Returns 0, -1 if it
 * is not of that form, -2 if it names no real day. */
static int parse_date(const char *s, int64_t *days)
{
  for (int i = 0; i < 10; i++)
    if (i == 4 || i == 7 ? s[i] != '-' : s[i] < '0' || s[i] > '9')
      return -1;
  int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
  if (m < 1 || m > 12 || d < 1 || d > lx_date_days_in_month(y, m))
    return -2;
  *days = lx_date_to_days(y, m, d);
  return 0;
}

/* One holidays or workdays entry, "A" or an inclusive range "A..B", into
 * day numbers. Reports and returns false if it is not one. */
static bool day_entry(cfg_ctx_t *c, yaml_node_t *v, const char *path, int64_t *from, int64_t *to)
{
  char vb[64];
  if (!lx__cfg_field_value(c, &text_item, v, node_line(v), path, NULL))
    return false;
  const char *s = sval(v);
  size_t len = slen(v);
  bool range = len == 22 && s[10] == '.' && s[11] == '.';
  int ra = len == 10 || range ? parse_date(s, from) : -1;
  int rb = range ? parse_date(s + 12, to) : ra;
  if (ra == -1 || rb == -1) {
    lx__cfg_err(c, node_line(v), path,
                "%s is not a date: write YYYY-MM-DD, or YYYY-MM-DD..YYYY-MM-DD for a range",
                lx__cfg_show(v, vb, sizeof vb));
    return false;
  }
  if (ra || rb) {
    lx__cfg_err(c, node_line(v), path, "%s: %.10s is not a valid date",
                lx__cfg_show(v, vb, sizeof vb), ra ? s : s + 12);
    return false;
  }
  if (!range)
    *to = *from;
  if (*to < *from) {
    lx__cfg_err(c, node_line(v), path, "%s ends before it starts", lx__cfg_show(v, vb, sizeof vb));
    return false;
  }
  return true;
}

/* Marks day d of year y for one entry at LINE. Returns false, having
 * reported it, at the entry's first problem: a day listed twice, a day both
 * holiday and workday, or a "workday" that is a working day anyway (which
 * would change nothing, so it is a mistake for another date). */
static bool mark_day(cfg_ctx_t *c, cal_marks_t *m, lx_cal_year_t *y, int d, bool work, int line,
                     const char *path)
{
  int *mine = work ? m->work : m->hol, dy, dm, dd;
  int64_t day = lx_date_to_days(y->year, 1, 1) + d;
  lx_date_from_days(day, &dy, &dm, &dd);
  int wd = lx_date_weekday(day);
  if (mine[d]) {
    lx__cfg_err(c, line, path, "%04d-%02d-%02d is already listed at line %d", dy, dm, dd, mine[d]);
    return false;
  }
  if (work && m->hol[d]) {
    lx__cfg_err(c, line, path, "%04d-%02d-%02d is also listed as a holiday at line %d", dy, dm, dd,
                m->hol[d]);
    return false;
  }
  if (work && !c->weekend_broken && !(c->cfg->calendar.weekend & LX_CAL_WEEKDAY_BIT(wd))) {
    lx__cfg_err(c, line, path,
                "%04d-%02d-%02d is a %s, a working day anyway; list only weekend days worked in "
                "exchange", dy, dm, dd, day_long[wd]);
    return false;
  }
  mine[d] = line;
  uint8_t *bits = work ? y->workday : y->holiday;
  bits[d / 8] |= (uint8_t)(1u << (d % 8));
  return true;
}

/* A holidays or workdays list. With y->year 0 (the year is missing or bad)
 * only the form of each entry can be checked. */
static void walk_days(cfg_ctx_t *c, yaml_node_t *seq, const char *path, lx_cal_year_t *y,
                      cal_marks_t *m, bool work)
{
  char ipath[CFG_PATH], vb[64];
  int64_t jan1 = y->year ? lx_date_to_days(y->year, 1, 1) : 0;
  int64_t next = y->year ? lx_date_to_days(y->year + 1, 1, 1) : 0;
  for (size_t i = 0; i < seq_len(seq); i++) {
    yaml_node_t *v = seq_item(c, seq, i);
    int64_t from, to;
    lx__cfg_path_idx(ipath, path, i);
    if (!day_entry(c, v, ipath, &from, &to) || !y->year)
      continue;
    if (from < jan1 || to >= next) {
      lx__cfg_err(c, node_line(v), ipath, "%s is outside the year %d",
                  lx__cfg_show(v, vb, sizeof vb), y->year);
      continue;
    }
    for (int64_t d = from; d <= to; d++)
      if (!mark_day(c, m, y, (int)(d - jan1), work, node_line(v), ipath))
        break;
  }
}

/* Keeps a checked year, unless the same year came before (in this file or
 * another: the message names the other file then). */
static void year_add(cfg_ctx_t *c, const lx_cal_year_t *y, const yaml_node_t *v, const char *path)
{
  lx_calendar_conf_t *cal = &c->cfg->calendar;
  char kpath[CFG_PATH];
  for (size_t i = 0; i < cal->n_years; i++) {
    const lx_cal_year_t *e = &cal->years[i];
    if (e->year != y->year)
      continue;
    lx__cfg_path_key(kpath, path, "year");
    if (!strcmp(e->file, c->file))
      lx__cfg_err(c, node_line(v), kpath, "duplicate year %d; first at line %d", y->year, e->line);
    else
      lx__cfg_err(c, node_line(v), kpath, "duplicate year %d; first at %s:%d", y->year, e->file,
                  e->line);
    return;
  }
  lx_cal_year_t *a = lx__cfg_grow(c, cal->years, &c->cap_years, cal->n_years, sizeof *a);
  if (!a)
    return;
  cal->years = a;
  a += cal->n_years++;
  *a = *y;
  a->file = strdup(c->file);
  a->line = node_line(v);
  c->oom = c->oom || !a->file;
}

/* One year's arrangement: a calendar.years[] entry, or the root of a
 * per-year file (PATH ""). */
static void check_year(cfg_ctx_t *c, yaml_node_t *node, const char *path)
{
  yaml_node_t *got[CFG_MAX_FIELDS];
  lx_cal_year_t y = {0};
  char kpath[CFG_PATH];
  cal_marks_t *m = calloc(1, sizeof *m);
  if (!m) {
    c->oom = true;
    return;
  }
  if (lx__cfg_check_map(c, node, path, &lx__cfg_cal_year_sec, &y, got)) {
    lx__cfg_path_key(kpath, path, "holidays");
    if (got[YEAR_HOLIDAYS])
      walk_days(c, got[YEAR_HOLIDAYS], kpath, &y, m, false);
    lx__cfg_path_key(kpath, path, "workdays");
    if (got[YEAR_WORKDAYS])
      walk_days(c, got[YEAR_WORKDAYS], kpath, &y, m, true);
    if (got[YEAR_YEAR])
      year_add(c, &y, got[YEAR_YEAR], path);
  }
  free(m);
}

/* Checks a per-year file as its own document: its problems name it and
 * its lines, and sort at INCLUDE_LINE, the config line that names it. */
static void check_year_file(cfg_ctx_t *c, const char *file, FILE *fp, int include_line)
{
  const char *main_file = c->file;
  yaml_document_t *main_doc = c->doc, doc;
  c->file = file;
  c->include_line = include_line;
  if (lx__cfg_parse_doc(c, fp, &doc)) {
    c->doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root)
      lx__cfg_err(c, 1, "",
                  "the file is empty; expected a mapping with year, holidays and workdays");
    else if (lx__cfg_scan_tree(c, root))
      check_year(c, root, "");
    yaml_document_delete(&doc);
  }
  c->file = main_file;
  c->doc = main_doc;
  c->include_line = 0;
}

/* Opens a per-year file named at V. Returns NULL, having reported it, if it
 * cannot be opened or is the same file as an earlier entry (by device and
 * inode, so "x.yaml" and "./x.yaml" are caught too); seen[0..i) holds the
 * identities of the earlier entries, seen[i] gets this one's. */
static FILE *open_year_file(cfg_ctx_t *c, yaml_node_t *v, const char *file, const char *ipath,
                            struct stat *seen, size_t i)
{
  int err = 0;
  FILE *fp = lx__cfg_open_regular(file, &err);
  if (!fp) {
    /* Control bytes shown as '?': a newline in a file name must not start
     * a line that looks like another problem. */
    char shown[CFG_PATH];
    snprintf(shown, sizeof shown, "%s", file);
    for (char *p = shown; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f)
        *p = '?';
    lx__cfg_err(c, node_line(v), ipath, "cannot open %s: %s", shown, strerror(err));
    return NULL;
  }
  if (fstat(fileno(fp), &seen[i]))
    memset(&seen[i], 0, sizeof seen[i]);
  for (size_t j = 0; j < i; j++) {
    if (!seen[j].st_ino || seen[j].st_dev != seen[i].st_dev || seen[j].st_ino != seen[i].st_ino)
      continue;
    char vb[64];
    lx__cfg_err(c, node_line(v), ipath, "%s is the same file as calendar.files[%zu]",
                lx__cfg_show(v, vb, sizeof vb), j);
    fclose(fp);
    memset(&seen[i], 0, sizeof seen[i]);
    return NULL;
  }
  return fp;
}

static void walk_files(cfg_ctx_t *c, yaml_node_t *seq)
{
  char ipath[CFG_PATH];
  size_t n = seq_len(seq);
  struct stat *seen = calloc(n ? n : 1, sizeof *seen);
  if (!seen) {
    c->oom = true;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *v = seq_item(c, seq, i);
    lx__cfg_path_idx(ipath, "calendar.files", i);
    if (!lx__cfg_field_value(c, &text_item, v, node_line(v), ipath, NULL))
      continue;
    char *file = lx__cfg_resolve(c, sval(v));
    c->file_entry = (int)i + 1;
    FILE *fp = file ? open_year_file(c, v, file, ipath, seen, i) : NULL;
    if (fp) {
      check_year_file(c, file, fp, node_line(v));
      fclose(fp);
    }
    c->file_entry = 0;
    free(file);
  }
  free(seen);
}

/* calendar: the weekend first, since exchanged workdays are checked
 * against it; then inline years, then per-year files, in that order, so a
 * duplicate year is reported at its second appearance. */
void lx__cfg_check_calendar(cfg_ctx_t *c, yaml_node_t *node)
{
  yaml_node_t *got[CFG_MAX_FIELDS];
  char ipath[CFG_PATH];
  if (!lx__cfg_check_map(c, node, "calendar", &lx__cfg_calendar_sec, &c->cfg->calendar, got))
    return;
  c->weekend_broken = !got[CAL_WEEKEND] && has_value(c, node, "weekend");
  if (got[CAL_WEEKEND])
    walk_weekend(c, got[CAL_WEEKEND]);
  for (size_t i = 0; got[CAL_YEARS] && i < seq_len(got[CAL_YEARS]); i++) {
    lx__cfg_path_idx(ipath, "calendar.years", i);
    check_year(c, seq_item(c, got[CAL_YEARS], i), ipath);
  }
  if (got[CAL_FILES])
    walk_files(c, got[CAL_FILES]);
}

/* ----------------------------------------------------------------- API */

int lx_config_tier_days(const lx_config_t *cfg, int tier, const char *category, size_t len,
                        bool urgent)
{
  const lx_deadlines_t *dl = &cfg->deadlines;
  if (tier < LX_TIER_COMMUNITY || tier > LX_TIER_COUNTY)
    return -1;
  for (size_t i = 0; i < dl->n_overrides; i++) {
    const lx_deadline_override_t *o = &dl->overrides[i];
    if (strlen(o->category) != len || memcmp(o->category, category, len) != 0)
      continue;
    int v = urgent ? o->urgent.days[tier] : o->normal.days[tier];
    if (v > 0)
      return v;
  }
  return urgent ? dl->urgent.days[tier] : dl->normal.days[tier];
}
