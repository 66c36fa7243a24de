/* SPDX-License-Identifier: MIT
 *
 * config_diff.c: what differs between two loaded configurations, in words,
 * for the `changes` of a `config` record (PROTOCOL.md) and the reload's log
 * line. An auditor reads these; the record's hash and the configuration's
 * bytes in the store are what the audit applies, so the words need not
 * be exhaustive, only true: a change this file does not name (a comment,
 * the layout) is reported as "the file changed; no setting differs".
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

typedef struct changes {
  char **list;
  size_t n, cap;
  int oom;
} changes_t;

static void add(changes_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(changes_t *c, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 16;
    char **p = realloc(c->list, cap * sizeof *p);
    if (!p) {
      c->oom = 1;
      return;
    }
    c->list = p;
    c->cap = cap;
  }
  if (!(c->list[c->n] = strdup(buf)))
    c->oom = 1;
  else
    c->n++;
}

static int streq(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static void diff_units(changes_t *c, const lx_config_t *o, const lx_config_t *n) {
  for (size_t i = 0; i < o->n_units; i++) {
    const lx_unit_t *u = &o->units[i];
    int j = lx_config_find_unit(n, u->path, strlen(u->path));
    if (j < 0)
      add(c, "unit %s removed", u->path);
    else if (!streq(u->name, n->units[j].name))
      add(c, "unit %s renamed from %s to %s", u->path, u->name, n->units[j].name);
  }
  for (size_t j = 0; j < n->n_units; j++)
    if (lx_config_find_unit(o, n->units[j].path, strlen(n->units[j].path)) < 0)
      add(c, "unit %s added (%s, %s)", n->units[j].path, lx_tier_name(n->units[j].tier),
          n->units[j].name);
}

static void diff_categories(changes_t *c, const lx_config_t *o, const lx_config_t *n) {
  for (size_t i = 0; i < o->n_categories; i++) {
    const lx_category_t *k = &o->categories[i];
    int j = lx_config_find_category(n, k->code, strlen(k->code));
    if (j < 0)
      add(c, "category %s removed", k->code);
    else if (!streq(k->name, n->categories[j].name))
      add(c, "category %s renamed from %s to %s", k->code, k->name, n->categories[j].name);
  }
  for (size_t j = 0; j < n->n_categories; j++)
    if (lx_config_find_category(o, n->categories[j].code, strlen(n->categories[j].code)) < 0)
      add(c, "category %s added (%s)", n->categories[j].code, n->categories[j].name);
}

/* Working days per tier, category and priority: every combination that
 * gives a different number. */
static void diff_deadlines(changes_t *c, const lx_config_t *o, const lx_config_t *n) {
  for (int urgent = 0; urgent < 2; urgent++)
    for (int t = LX_TIER_COMMUNITY; t <= LX_TIER_COUNTY; t++) {
      int a = lx_config_tier_days(o, t, "", 0, urgent), b = lx_config_tier_days(n, t, "", 0, urgent);
      if (a != b)
        add(c, "deadlines: %s %s %d -> %d working days", urgent ? "urgent" : "normal",
            lx_tier_name(t), a, b);
      for (size_t i = 0; i < n->n_categories; i++) {
        const char *k = n->categories[i].code;
        if (lx_config_find_category(o, k, strlen(k)) < 0)
          continue;
        int x = lx_config_tier_days(o, t, k, strlen(k), urgent);
        int y = lx_config_tier_days(n, t, k, strlen(k), urgent);
        if (x != y && !(x == a && y == b))
          add(c, "deadlines: %s %s for %s %d -> %d working days", urgent ? "urgent" : "normal",
              lx_tier_name(t), k, x, y);
      }
    }
}

static const lx_cal_year_t *find_year(const lx_calendar_conf_t *cal, int year) {
  for (size_t i = 0; i < cal->n_years; i++)
    if (cal->years[i].year == year)
      return &cal->years[i];
  return NULL;
}

static void diff_calendar(changes_t *c, const lx_calendar_conf_t *o, const lx_calendar_conf_t *n) {
  if (o->utc_offset_min != n->utc_offset_min)
    add(c, "calendar.utc_offset: %+d -> %+d minutes", o->utc_offset_min, n->utc_offset_min);
  if (o->workday_end_min != n->workday_end_min)
    add(c, "calendar.workday_end: %02d:%02d -> %02d:%02d", o->workday_end_min / 60,
        o->workday_end_min % 60, n->workday_end_min / 60, n->workday_end_min % 60);
  if (o->weekend != n->weekend)
    add(c, "calendar.weekend changed");
  for (size_t i = 0; i < o->n_years; i++) {
    const lx_cal_year_t *y = find_year(n, o->years[i].year);
    if (!y)
      add(c, "calendar: year %d removed", o->years[i].year);
    else if (memcmp(y->holiday, o->years[i].holiday, LX_CAL_BYTES) ||
             memcmp(y->workday, o->years[i].workday, LX_CAL_BYTES))
      add(c, "calendar: year %d changed", y->year);
  }
  for (size_t i = 0; i < n->n_years; i++)
    if (!find_year(o, n->years[i].year))
      add(c, "calendar: year %d added", n->years[i].year);
}

static int kv_same(const lx_conf_kv_t *a, const lx_conf_kv_t *b) {
  if (strcmp(a->key, b->key) || !streq(a->value, b->value) || a->n_items != b->n_items ||
      (!a->value && a->shape != b->shape))
    return 0;
  for (size_t i = 0; i < a->n_items; i++)
    if (!streq(a->items[i].key, b->items[i].key) || !streq(a->items[i].value, b->items[i].value))
      return 0;
  return 1;
}

bool lx_config_plugin_same(const lx_plugin_conf_t *a, const lx_plugin_conf_t *b) {
  if (strcmp(a->name, b->name) || !streq(a->path, b->path) || a->n_kv != b->n_kv)
    return false;
  for (size_t i = 0; i < a->n_kv; i++)
    if (!kv_same(&a->kv[i], &b->kv[i]))
      return false;
  return true;
}

static void diff_plugins(changes_t *c, const lx_config_t *o, const lx_config_t *n) {
  for (size_t i = 0; i < o->n_plugins; i++) {
    size_t j = 0;
    while (j < n->n_plugins && strcmp(n->plugins[j].name, o->plugins[i].name))
      j++;
    if (j == n->n_plugins)
      add(c, "plugin %s removed", o->plugins[i].name);
    else if (!lx_config_plugin_same(&o->plugins[i], &n->plugins[j]))
      add(c, "plugin %s: settings changed", o->plugins[i].name);
  }
  for (size_t j = 0; j < n->n_plugins; j++) {
    size_t i = 0;
    while (i < o->n_plugins && strcmp(o->plugins[i].name, n->plugins[j].name))
      i++;
    if (i == o->n_plugins)
      add(c, "plugin %s added", n->plugins[j].name);
  }
}

static void diff_rest(changes_t *c, const lx_config_t *o, const lx_config_t *n) {
  const lx_checkpoint_conf_t *a = &o->checkpoints, *b = &n->checkpoints;
  if (!streq(a->key, b->key) || (a->key && (a->every != b->every || a->interval != b->interval)))
    add(c, "checkpoints changed");
  if (!streq(o->security.server_key, n->security.server_key) ||
      !streq(o->security.clients, n->security.clients))
    add(c, "security changed");
  if (!streq(o->ingest_ep, n->ingest_ep) || !streq(o->alerts_ep, n->alerts_ep) ||
      !streq(o->query_ep, n->query_ep))
    add(c, "listen changed");
  if (!streq(o->store_path, n->store_path) || o->map_size != n->map_size ||
      o->map_max != n->map_max)
    add(c, "store changed");
  if (!streq(o->log.format, n->log.format) || !streq(o->log.level, n->log.level))
    add(c, "log changed");
}

int lx_config_diff(const lx_config_t *o, const lx_config_t *n, char ***out, size_t *count) {
  changes_t c = {0};
  diff_units(&c, o, n);
  diff_categories(&c, o, n);
  diff_deadlines(&c, o, n);
  diff_calendar(&c, &o->calendar, &n->calendar);
  diff_plugins(&c, o, n);
  diff_rest(&c, o, n);
  if (c.n == 0)
    add(&c, "the file changed; no setting differs");
  *out = c.list;
  *count = c.n;
  if (c.oom) {
    lx_config_changes_free(c.list, c.n);
    *out = NULL;
    *count = 0;
    return -1;
  }
  return 0;
}

void lx_config_changes_free(char **list, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(list[i]);
  free(list);
}
