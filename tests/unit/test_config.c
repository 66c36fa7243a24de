/* SPDX-License-Identifier: MIT
 *
 * test_config.c: unit tests of the YAML configuration loader (config.c).
 *
 * The sample config/lianxin.yaml must load with the tree and categories the
 * other tests rely on. Then each kind of mistake an operator makes gets its
 * own small file (written with mkstemp under /tmp), and the test asserts the
 * exact "FILE:LINE: key.path: reason" the operator will read, because that
 * message is the loader's whole user interface. Runs under ASan/LSan, so
 * every failure path is also checked for leaks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "config.h"

/* A minimal valid file: lines 1..10. Tests add their mistake after it (from
 * line 11) or build their own. */
#define MIN_UNITS                       \
  "units:\n"                            \
  "  - code: qd\n"                      \
  "    name: 青德县\n"                  \
  "    townships:\n"                    \
  "      - code: hx\n"                  \
  "        name: 和兴镇\n"              \
  "        communities:\n"              \
  "          - {code: dy, name: 东园社区}\n"
#define MIN_CATS            \
  "categories:\n"           \
  "  - {code: jobs, name: 就业}\n"
#define MIN MIN_UNITS MIN_CATS

/* Writes text to a fresh file under /tmp; returns its malloc'd name. */
static char *write_tmp(const char *text)
{
  char *name = strdup("/tmp/lx-test-config-XXXXXX");
  assert_non_null(name);
  int fd = mkstemp(name);
  assert_true(fd >= 0);
  size_t len = strlen(text);
  assert_int_equal(write(fd, text, len), (ssize_t)len);
  close(fd);
  return name;
}

static int load_text(const char *text, lx_config_t *cfg, char **err, char **file)
{
  *file = write_tmp(text);
  return lx_config_load(*file, cfg, err);
}

static void assert_zeroed(const lx_config_t *cfg)
{
  static const lx_config_t zero;
  assert_memory_equal(cfg, &zero, sizeof zero);
}

/* Asserts that loading TEXT fails and the errors contain "FILE:LINE: WHAT". */
static void expect_error(const char *text, int line, const char *what)
{
  lx_config_t cfg;
  char *err = NULL, *file, needle[1024];
  assert_int_equal(load_text(text, &cfg, &err, &file), -1);
  assert_zeroed(&cfg);
  assert_non_null(err);
  snprintf(needle, sizeof needle, "%s:%d: %s", file, line, what);
  if (!strstr(err, needle))
    fail_msg("expected\n  %s\nin\n%s", needle, err);
  unlink(file);
  free(file);
  free(err);
}

/* Like expect_error, for messages whose middle is too long to spell out:
 * "FILE:LINE: HEAD" and, later on the same line, TAIL. */
static void expect_error_ends(const char *text, int line, const char *head, const char *tail)
{
  lx_config_t cfg;
  char *err = NULL, *file, needle[1024];
  assert_int_equal(load_text(text, &cfg, &err, &file), -1);
  assert_zeroed(&cfg);
  snprintf(needle, sizeof needle, "%s:%d: %s", file, line, head);
  const char *hit = strstr(err, needle), *end = hit ? strchr(hit, '\n') : NULL;
  const char *t = hit ? strstr(hit, tail) : NULL;
  if (!hit || !end || !t || t + strlen(tail) > end + 1)
    fail_msg("expected\n  %s ... %s\nin\n%s", needle, tail, err);
  unlink(file);
  free(file);
  free(err);
}

static int count_bits(const uint8_t *map)
{
  int n = 0;
  for (int i = 0; i < LX_CAL_BYTES; i++)
    n += __builtin_popcount(map[i]);
  return n;
}

static bool has_bit(const uint8_t *map, int d) { return map[d / 8] >> (d % 8) & 1; }

static char *sample_path(void)
{
  const char *src = getenv("LX_SOURCE_DIR");
  char *p = NULL;
  if (src)
    assert_true(asprintf(&p, "%s/config/lianxin.yaml", src) > 0);
  else { /* run by hand: find the repo from this file's path */
    const char *me = __FILE__, *cut = strstr(me, "tests/unit/test_config.c");
    assert_non_null(cut);
    assert_true(asprintf(&p, "%.*sconfig/lianxin.yaml", (int)(cut - me), me) > 0);
  }
  return p;
}

/* ------------------------------------------------------------ good files */

static void test_sample_loads(void **state)
{
  lx_config_t cfg;
  char *err = NULL, *file = sample_path();
  int rc = lx_config_load(file, &cfg, &err);
  if (rc)
    fail_msg("%s", err);
  assert_null(err);
  assert_int_equal(cfg.n_units, 13);
  assert_int_equal(cfg.n_categories, 9);
  assert_string_equal(cfg.file, file);
  assert_string_equal(cfg.ingest_ep, "tcp://127.0.0.1:7601");
  assert_string_equal(cfg.alerts_ep, "tcp://127.0.0.1:7602");
  assert_string_equal(cfg.query_ep, "tcp://127.0.0.1:7603");
  assert_non_null(strstr(cfg.store_path, "config/../data"));
  assert_int_equal(cfg.map_size, 64ULL << 20);
  assert_int_equal(cfg.map_max, 16ULL << 30);
  assert_int_equal(cfg.n_plugins, 4); /* escalate first, then the assessment plugins */
  assert_string_equal(cfg.plugins[0].name, "escalate");
  assert_null(cfg.plugins[0].path);
  assert_int_equal(cfg.plugins[0].n_kv, 4);
  for (size_t i = 1; i < cfg.n_plugins; i++) {
    const lx_plugin_conf_t *p = &cfg.plugins[i];
    if (strcmp(p->name, "quota") == 0) { /* days_per_year 60, actors {leader-1: 90} */
      assert_int_equal(p->n_kv, 2);
      assert_string_equal(p->kv[0].value, "60");
      assert_int_equal(p->kv[1].shape, LX_CONF_MAP);
      assert_int_equal(p->kv[1].n_items, 1);
      assert_string_equal(p->kv[1].items[0].key, "leader-1");
      assert_string_equal(p->kv[1].items[0].value, "90");
    } else if (strcmp(p->name, "rank") == 0) { /* after escalate: rank counts by its clock */
      assert_int_equal(i, 1);
      assert_int_equal(p->n_kv, 3);
      assert_int_equal(p->kv[1].shape, LX_CONF_MAP);
      assert_int_equal(p->kv[1].n_items, 3);
    } else if (strcmp(p->name, "hotspot") == 0) {
      assert_int_equal(p->n_kv, 4); /* window_days, threshold, factor, baseline_days */
    }
  }

  /* parents first: the county, then each township followed by its communities */
  assert_string_equal(cfg.units[0].path, "qd");
  assert_string_equal(cfg.units[0].name, "青德县");
  assert_int_equal(cfg.units[0].tier, LX_TIER_COUNTY);
  assert_int_equal(cfg.units[0].parent, -1);
  assert_string_equal(cfg.units[1].path, "qd.hx");
  assert_int_equal(cfg.units[1].tier, LX_TIER_TOWNSHIP);
  assert_int_equal(cfg.units[1].parent, 0);
  assert_string_equal(cfg.units[2].path, "qd.hx.dy");
  assert_string_equal(cfg.units[2].name, "东园社区");
  assert_int_equal(cfg.units[2].tier, LX_TIER_COMMUNITY);
  assert_int_equal(cfg.units[2].parent, 1);
  assert_string_equal(cfg.units[5].path, "qd.xs");
  assert_string_equal(cfg.units[12].path, "qd.nh.yj");
  assert_int_equal(cfg.units[12].parent, 9);

  assert_int_equal(lx_config_find_unit(&cfg, "qd.xs.lq", 8), 7);
  assert_string_equal(cfg.units[7].name, "柳桥村");
  assert_int_equal(lx_config_find_unit(&cfg, "qd.nhXXX", 5), 9); /* not NUL-terminated */
  assert_int_equal(lx_config_find_unit(&cfg, "qd.h", 4), -1);     /* no prefix matches */
  assert_int_equal(lx_config_find_unit(&cfg, "qd.hx.dy.x", 10), -1);
  assert_int_equal(lx_config_find_unit(&cfg, "", 0), -1);

  assert_string_equal(cfg.categories[0].code, "jobs");
  assert_string_equal(cfg.categories[0].name, "就业");
  assert_int_equal(lx_config_find_category(&cfg, "labour-disputeZ", 14), 6);
  assert_int_equal(lx_config_find_category(&cfg, "other", 5), 8);
  assert_int_equal(lx_config_find_category(&cfg, "job", 3), -1);

  const lx_deadlines_t *d = &cfg.deadlines;
  assert_int_equal(d->normal.days[LX_TIER_COMMUNITY], 3);
  assert_int_equal(d->normal.days[LX_TIER_TOWNSHIP], 5);
  assert_int_equal(d->normal.days[LX_TIER_COUNTY], 10);
  assert_int_equal(d->urgent.days[LX_TIER_COMMUNITY], 1);
  assert_int_equal(d->urgent.days[LX_TIER_COUNTY], 3);
  assert_int_equal(d->n_overrides, 1);
  assert_string_equal(d->overrides[0].category, "housing");
  assert_int_equal(d->overrides[0].normal.days[LX_TIER_COMMUNITY], 5);
  assert_int_equal(d->overrides[0].normal.days[LX_TIER_TOWNSHIP], 0);
  assert_int_equal(d->overrides[0].urgent.days[LX_TIER_COMMUNITY], 0);
  assert_true(d->overrides[0].line > 0);

  const lx_calendar_conf_t *k = &cfg.calendar;
  assert_int_equal(k->utc_offset_min, 8 * 60);
  assert_int_equal(k->workday_end_min, 18 * 60);
  assert_int_equal(k->weekend, LX_CAL_WEEKDAY_BIT(6) | LX_CAL_WEEKDAY_BIT(7));
  assert_int_equal(k->n_years, 1);
  assert_int_equal(k->years[0].year, 2026);
  assert_string_equal(k->years[0].file, file);
  assert_int_equal(count_bits(k->years[0].holiday), 3 + 9 + 3 + 5 + 3 + 3 + 7);
  assert_int_equal(count_bits(k->years[0].workday), 6);
  assert_true(has_bit(k->years[0].holiday, 31 + 14)); /* 2026-02-15 */
  assert_true(has_bit(k->years[0].workday, 3));       /* 2026-01-04 */

  lx_config_free(&cfg);
  assert_zeroed(&cfg);
  lx_config_free(&cfg); /* safe twice */
  free(file);
}

static void test_defaults(void **state)
{
  lx_config_t cfg;
  char *err = NULL, *file, *want;
  assert_int_equal(load_text(MIN, &cfg, &err, &file), 0);
  assert_null(err);
  assert_string_equal(cfg.dir, "/tmp");
  assert_string_equal(cfg.store_path, "/tmp/data");
  assert_string_equal(cfg.query_ep, "tcp://127.0.0.1:7603");
  assert_int_equal(cfg.map_size, 64ULL << 20);
  assert_int_equal(cfg.map_max, 16ULL << 30);
  assert_int_equal(cfg.deadlines.normal.days[LX_TIER_TOWNSHIP], 5);
  assert_int_equal(cfg.deadlines.urgent.days[LX_TIER_TOWNSHIP], 2);
  assert_int_equal(cfg.deadlines.n_overrides, 0);
  assert_int_equal(cfg.n_units, 3);
  assert_int_equal(cfg.n_plugins, 0);
  assert_int_equal(cfg.calendar.utc_offset_min, 480);
  assert_int_equal(cfg.calendar.workday_end_min, 1080);
  assert_int_equal(cfg.calendar.weekend, LX_CAL_WEEKDAY_BIT(6) | LX_CAL_WEEKDAY_BIT(7));
  assert_int_equal(cfg.calendar.n_years, 0);
  assert_true(asprintf(&want, "%s", file) > 0);
  assert_string_equal(cfg.file, want);
  free(want);
  lx_config_free(&cfg);
  unlink(file);
  free(file);
}

static void test_values_and_plugins(void **state)
{
  lx_config_t cfg;
  char *err = NULL, *file;
  const char *text = MIN
    "listen: {ingest: 'ipc:///run/lx/ingest'}\n"        /* 11 */
    "store: {path: /var/lib/lx, map_size: 1 GiB, map_max: 1TiB}\n"
    "deadlines:\n"
    "  urgent: {county: 4}\n"
    "  categories:\n"
    "    jobs: {urgent: {township: 7}}\n"                 /* 16 */
    "plugins:\n"
    "  - name: escalate\n"                                /* 18 */
    "    path: plugins/escalate.so\n"
    "    every: 60          # the plugin's own key\n"
    "    share: 0.8\n"
    "  - {name: rank_2, path: /opt/rank.so}\n"            /* 22 */
    "  - {name: audit}\n";
  int rc = load_text(text, &cfg, &err, &file);
  if (rc)
    fail_msg("%s", err);
  assert_string_equal(cfg.ingest_ep, "ipc:///run/lx/ingest");
  assert_string_equal(cfg.alerts_ep, "tcp://127.0.0.1:7602");
  assert_string_equal(cfg.store_path, "/var/lib/lx");
  assert_int_equal(cfg.map_size, 1ULL << 30);
  assert_int_equal(cfg.map_max, 1ULL << 40);
  assert_int_equal(cfg.deadlines.urgent.days[LX_TIER_COUNTY], 4);
  assert_int_equal(cfg.deadlines.urgent.days[LX_TIER_COMMUNITY], 1);
  assert_int_equal(cfg.deadlines.n_overrides, 1);
  assert_int_equal(cfg.deadlines.overrides[0].line, 16);
  assert_int_equal(cfg.deadlines.overrides[0].urgent.days[LX_TIER_TOWNSHIP], 7);
  assert_int_equal(cfg.n_plugins, 3);
  assert_string_equal(cfg.plugins[0].name, "escalate");
  assert_string_equal(cfg.plugins[0].path, "/tmp/plugins/escalate.so");
  assert_int_equal(cfg.plugins[0].line, 18);
  /* The plugin's own keys are kept as written, with their lines. */
  assert_int_equal(cfg.plugins[0].n_kv, 2);
  assert_string_equal(cfg.plugins[0].kv[0].key, "every");
  assert_string_equal(cfg.plugins[0].kv[0].value, "60");
  assert_int_equal(cfg.plugins[0].kv[0].line, 20);
  assert_string_equal(cfg.plugins[0].kv[1].value, "0.8");
  assert_int_equal(cfg.plugins[1].n_kv, 0);
  assert_string_equal(cfg.plugins[1].path, "/opt/rank.so");
  assert_int_equal(cfg.plugins[1].line, 22);
  assert_null(cfg.plugins[2].path);
  lx_config_free(&cfg);
  unlink(file);
  free(file);
}

static void test_tiers(void **state)
{
  assert_string_equal(lx_tier_name(LX_TIER_COMMUNITY), "community");
  assert_string_equal(lx_tier_name(LX_TIER_TOWNSHIP), "township");
  assert_string_equal(lx_tier_name(LX_TIER_COUNTY), "county");
  assert_string_equal(lx_tier_name(0), "?");
  assert_string_equal(lx_tier_name(4), "?");
  assert_int_equal(lx_tier_parse("county", 6), LX_TIER_COUNTY);
  assert_int_equal(lx_tier_parse("townships", 8), LX_TIER_TOWNSHIP);
  assert_int_equal(lx_tier_parse("community", 9), LX_TIER_COMMUNITY);
  assert_int_equal(lx_tier_parse("count", 5), 0);
  assert_int_equal(lx_tier_parse("", 0), 0);
}

static void test_free_zeroed(void **state)
{
  lx_config_t cfg = {0};
  lx_config_free(&cfg);
  lx_config_free(NULL);
}

static void test_print_schema(void **state)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  assert_non_null(out);
  lx_config_print_schema(out);
  fclose(out);
  assert_non_null(strstr(buf, "store.map_size (size, default 64MiB; 1 MiB..1 TiB)"));
  assert_non_null(strstr(buf, "units[].townships[].communities[].code (code, required"));
  assert_non_null(strstr(buf, "deadlines.normal.county (integer, default 10; 1..365)"));
  assert_non_null(strstr(buf, "calendar.utc_offset (utc-offset, default +08:00; -14:00..+14:00)"));
  assert_non_null(strstr(buf, "calendar.workday_end (time, default 18:00; 00:01..24:00)"));
  assert_non_null(strstr(buf, "calendar.years[].year (integer, required; 1970..9999)"));
  free(buf);
}

/* ------------------------------------------------------------- mistakes */

static void test_missing_file(void **state)
{
  lx_config_t cfg;
  char *err = NULL;
  assert_int_equal(lx_config_load("/tmp/lx-no-such-dir/lianxin.yaml", &cfg, &err), -1);
  assert_zeroed(&cfg);
  assert_string_equal(err, "/tmp/lx-no-such-dir/lianxin.yaml: cannot open: "
                           "No such file or directory\n");
  free(err);
  assert_int_equal(lx_config_load("/tmp", &cfg, &err), -1);
  assert_string_equal(err, "/tmp: cannot open: Is a directory\n");
  free(err);
  assert_int_equal(lx_config_load("/tmp/lx-no-such-dir/x", &cfg, NULL), -1);
}

static void test_syntax_error(void **state)
{
  expect_error(MIN "store:\n  path: x\n   map_size: 1MiB\n", 13,
               "syntax error: mapping values are not allowed in this context");
  expect_error(MIN "deadlines: {normal: [1, 2}\n", 11, "syntax error: did not find expected ',' or ']'");
  expect_error("units: \xff\n", 1, "syntax error: invalid leading UTF-8 octet");
  expect_error("", 1, "(top): the file is empty");
  expect_error("- a\n- b\n", 1, "(top): expected a mapping, got a list");
  expect_error(MIN "---\nunits: []\n", 12, "(top): only one YAML document is allowed per file");
}

static void test_unknown_keys(void **state)
{
  expect_error(MIN "colour: blue\n", 11,
               "colour: unknown key; valid keys: listen, store, units, categories, "
               "deadlines, calendar, plugins, checkpoints, security, web, log\n");
  expect_error(MIN "store:\n  pathh: x\n", 12,
               "store.pathh: unknown key; valid keys: path, map_size, map_max\n");
  expect_error(MIN_UNITS "          - {code: xc, nmae: 新村}\n" MIN_CATS, 9,
               "units[0].townships[0].communities[1].nmae: unknown key; valid keys: code, name\n");
  expect_error(MIN "deadlines: {normal: {village: 2}}\n", 11,
               "deadlines.normal.village: unknown key; valid keys: community, township, county\n");
}

static void test_missing_required(void **state)
{
  expect_error(MIN_UNITS "          - {code: xc}\n" MIN_CATS, 9,
               "units[0].townships[0].communities[1].name: required key missing\n");
  expect_error(MIN_UNITS, 1, "categories: required key missing\n");
  expect_error(MIN_CATS, 1, "units: required key missing\n");
  expect_error("units:\n  - code: qd\n    name: 青德县\n" MIN_CATS, 2,
               "units[0].townships: required key missing\n");
  expect_error(MIN "plugins:\n  - path: x.so\n", 12, "plugins[0].name: required key missing\n");
}

static void test_wrong_type(void **state)
{
  expect_error("units: qd\n" MIN_CATS, 1, "units: expected a list, got a string\n");
  expect_error("units:\n" MIN_CATS, 1, "units: expected a list, got an empty value\n");
  expect_error(MIN_UNITS "categories: {code: jobs}\n", 9,
               "categories: expected a list, got a mapping\n");
  expect_error(MIN_UNITS "          - {code: xc, name: [a, b]}\n" MIN_CATS, 9,
               "units[0].townships[0].communities[1].name: expected a string, got a list\n");
  expect_error(MIN_UNITS "          - xc\n" MIN_CATS, 9,
               "units[0].townships[0].communities[1]: expected a mapping, got a string\n");
  expect_error(MIN "listen: [tcp://a:1]\n", 11, "listen: expected a mapping, got a list\n");
  expect_error(MIN "deadlines: {normal: {county: {x: 1}}}\n", 11,
               "deadlines.normal.county: expected an integer, got a mapping\n");
  expect_error(MIN "store: {path: \"a\\0b\"}\n", 11, "store.path: must not contain a NUL byte\n");
  expect_error(MIN "? [a, b]\n: c\n", 11, "(top): a key must be a string, not a list\n");
}

static void test_bad_codes(void **state)
{
  expect_error("units:\n  - code: Qd\n", 2,
               "units[0].code: \"Qd\" has a character other than a-z, 0-9 and - at byte 0\n");
  expect_error(MIN_UNITS "          - {code: x_c, name: x}\n" MIN_CATS, 9,
               "units[0].townships[0].communities[1].code: \"x_c\" has a character other than "
               "a-z, 0-9 and - at byte 1\n");
  expect_error(MIN_UNITS "categories:\n  - {code: 就业, name: 就业}\n", 10,
               "categories[0].code: \"就业\" has a character other than a-z, 0-9 and - at byte 0\n");
  expect_error(MIN_UNITS "categories:\n  - {code: '', name: x}\n", 10,
               "categories[0].code: must not be empty\n");
  expect_error(MIN "plugins: [{name: Esc}]\n", 11,
               "plugins[0].name: \"Esc\" has a character other than a-z, 0-9, _ and - at byte 0\n");
}

static void test_code_too_long(void **state)
{
  /* 32 is the limit and fine; 33 is not */
  lx_config_t cfg;
  char *err = NULL, *file;
  assert_int_equal(load_text(MIN_UNITS "categories:\n  - {code: abcdefghijklmnopqrstuvwxyz012345, "
                                       "name: x}\n",
                             &cfg, &err, &file),
                   0);
  lx_config_free(&cfg);
  unlink(file);
  free(file);
  expect_error(MIN_UNITS "categories:\n  - {code: abcdefghijklmnopqrstuvwxyz0123456, name: x}\n",
               10, "categories[0].code: \"abcdefghijklmnopqrstuvwxyz0123456\" is too long: "
                   "33 bytes, at most 32\n");
  char name[400] = MIN "plugins: [{name: ";
  size_t o = strlen(name);
  memset(name + o, 'p', 65);
  strcpy(name + o + 65, "}]\n");
  expect_error_ends(name, 11, "plugins[0].name: \"pppppppppp",
                    "ppp...\" is too long: 65 bytes, at most 64\n");
}

static void test_duplicate_codes(void **state)
{
  expect_error(MIN_UNITS "          - {code: dy, name: 又一个}\n" MIN_CATS, 9,
               "units[0].townships[0].communities[1].code: duplicate code \"dy\"; "
               "first at line 8\n");
  expect_error(MIN_UNITS "      - {code: hx, name: x, communities: [{code: a, name: b}]}\n" MIN_CATS,
               9, "units[0].townships[1].code: duplicate code \"hx\"; first at line 5\n");
  expect_error(MIN "  - {code: jobs, name: 工作}\n", 11,
               "categories[1].code: duplicate category code \"jobs\"; first at line 10\n");

  /* the same code under different parents is fine */
  lx_config_t cfg;
  char *err = NULL, *file;
  assert_int_equal(
    load_text(MIN_UNITS "      - {code: xs, name: 西山镇, communities: [{code: dy, name: x}]}\n" MIN_CATS,
              &cfg, &err, &file),
    0);
  assert_int_equal(lx_config_find_unit(&cfg, "qd.xs.dy", 8), 4);
  assert_int_equal(cfg.units[4].parent, 3);
  lx_config_free(&cfg);
  unlink(file);
  free(file);
}

static void test_duplicate_yaml_key(void **state)
{
  expect_error(MIN "store:\n  path: a\n  path: b\n", 13, "store.path: duplicate key; first at line 12\n");
  expect_error(MIN "units: []\n", 11, "units: duplicate key; first at line 1\n");
  expect_error(MIN "plugins:\n  - {name: a, x: 1, x: 2}\n", 12,
               "plugins[0].x: duplicate key; first at line 12\n");
  expect_error(MIN "deadlines:\n  categories:\n    jobs: {}\n    jobs: {}\n", 14,
               "deadlines.categories.jobs: duplicate key; first at line 13\n");
}

static void test_empty_lists(void **state)
{
  expect_error("units: []\n" MIN_CATS, 1, "units: must not be empty\n");
  expect_error(MIN_UNITS "categories: []\n", 9, "categories: must not be empty\n");
  expect_error("units:\n  - {code: qd, name: x, townships: []}\n" MIN_CATS, 2,
               "units[0].townships: must not be empty\n");

  /* an empty plugin list, or a bare "plugins:", is fine */
  lx_config_t cfg;
  char *err = NULL, *file;
  assert_int_equal(load_text(MIN "plugins:\n  # - name: escalate\n", &cfg, &err, &file), 0);
  assert_int_equal(cfg.n_plugins, 0);
  lx_config_free(&cfg);
  unlink(file);
  free(file);
}

static void test_deadline_range(void **state)
{
  expect_error(MIN "deadlines: {normal: {county: 400}}\n", 11,
               "deadlines.normal.county: 400 is out of range 1..365\n");
  expect_error(MIN "deadlines:\n  urgent:\n    community: 0\n", 13,
               "deadlines.urgent.community: 0 is out of range 1..365\n");
  expect_error(MIN "deadlines: {urgent: {township: 2.5}}\n", 11,
               "deadlines.urgent.township: expected an integer, got \"2.5\"\n");
  expect_error(MIN "deadlines:\n  categories:\n    jobs: {normal: {township: 99999999999999999999}}\n",
               13, "deadlines.categories.jobs.normal.township: 99999999999999999999 is out of "
                   "range 1..365\n");
}

static void test_sizes(void **state)
{
  expect_error(MIN "store: {map_size: 64MB}\n", 11,
               "store.map_size: bad size \"64MB\": write a number of bytes, optionally followed "
               "by KiB, MiB, GiB or TiB\n");
  expect_error(MIN "store: {map_size: -1}\n", 11, "store.map_size: bad size \"-1\"");
  expect_error(MIN "store: {map_max: 512KiB}\n", 11,
               "store.map_max: \"512KiB\" is out of range 1 MiB..1 TiB\n");
  expect_error(MIN "store: {map_size: 2TiB}\n", 11,
               "store.map_size: \"2TiB\" is out of range 1 MiB..1 TiB\n");
  expect_error(MIN "store: {map_size: 99999999999999999999999}\n", 11,
               "store.map_size: \"99999999999999999999999\" is out of range");
  expect_error(MIN "store: {map_size: 18014398509481984 TiB}\n", 11,
               "store.map_size: \"18014398509481984 TiB\" is out of range");
}

static void test_map_max_below_map_size(void **state)
{
  expect_error(MIN "store:\n  map_size: 2GiB\n  map_max: 1GiB\n", 13,
               "store.map_max: 1 GiB is smaller than store.map_size (2 GiB)\n");
  expect_error(MIN "store:\n  map_size: 32GiB\n", 12,
               "store.map_size: 32 GiB is larger than store.map_max (default 16 GiB)\n");
}

static void test_unknown_override(void **state)
{
  expect_error(MIN "deadlines:\n  categories:\n    parking: {normal: {community: 2}}\n", 13,
               "deadlines.categories.parking: unknown category; configured categories: jobs\n");
  expect_error(MIN "deadlines:\n  categories:\n    jobs: {normal: {village: 2}}\n", 13,
               "deadlines.categories.jobs.normal.village: unknown key; valid keys: community, "
               "township, county\n");
  expect_error(MIN "deadlines:\n  categories:\n    jobs: 3\n", 13,
               "deadlines.categories.jobs: expected a mapping, got a string\n");

  /* a broken category list is reported once, not again by every override */
  lx_config_t cfg;
  char *err = NULL, *file;
  assert_int_equal(load_text(MIN_UNITS "categories: []\ndeadlines: {categories: {jobs: {}}}\n",
                             &cfg, &err, &file), -1);
  assert_non_null(strstr(err, ":9: categories: must not be empty\n"));
  assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
  unlink(file);
  free(file);
  free(err);
}

static void test_bad_endpoint(void **state)
{
  expect_error(MIN "listen:\n  ingest: 127.0.0.1:7601\n", 12,
               "listen.ingest: \"127.0.0.1:7601\" is not a ZeroMQ endpoint: expected "
               "transport://address, at most 255 bytes\n");
  expect_error(MIN "listen: {query: 'tcp://'}\n", 11, "listen.query: \"tcp://\" is not a ZeroMQ endpoint");
  expect_error(MIN "listen: {alerts: ''}\n", 11, "listen.alerts: \"\" is not a ZeroMQ endpoint");
  char text[600] = MIN "listen: {alerts: 'tcp://";
  size_t o = strlen(text);
  memset(text + o, 'a', 250);
  strcpy(text + o + 250, "'}\n");
  expect_error(text, 11, "listen.alerts: \"tcp://aaaa");
}

static void test_duplicate_plugin(void **state)
{
  expect_error(MIN "plugins:\n  - name: escalate\n  - name: rank\n  - name: escalate\n    path: x.so\n",
               14, "plugins[2].name: duplicate plugin name \"escalate\"; first at line 12\n");
}

/* A plugin setting may be a list or a map of single values; each entry
 * keeps its own line for the plugin's errors. Deeper nesting is refused at
 * the entry's line. */
static void test_plugin_settings_lists_and_maps(void **state)
{
  lx_config_t cfg;
  char *err = NULL, *file;
  const char *text = MIN "plugins:\n"
                         "  - name: mirror\n"
                         "    servers: [nats://a:4222, nats://b:4222]\n"
                         "    weights:\n"
                         "      response: 0.3\n"
                         "      resolution: 0.7\n"
                         "    period: month\n"
                         "    none: []\n";
  if (load_text(text, &cfg, &err, &file))
    fail_msg("%s", err);
  assert_int_equal(cfg.n_plugins, 1);
  const lx_plugin_conf_t *pl = &cfg.plugins[0];
  assert_int_equal(pl->n_kv, 4);
  assert_string_equal(pl->kv[0].key, "servers");
  assert_null(pl->kv[0].value);
  assert_int_equal(pl->kv[0].shape, LX_CONF_LIST);
  assert_int_equal(pl->kv[0].n_items, 2);
  assert_null(pl->kv[0].items[0].key);
  assert_string_equal(pl->kv[0].items[1].value, "nats://b:4222");
  assert_int_equal(pl->kv[0].items[1].line, 13);
  assert_int_equal(pl->kv[1].shape, LX_CONF_MAP);
  assert_string_equal(pl->kv[1].items[1].key, "resolution");
  assert_string_equal(pl->kv[1].items[1].value, "0.7");
  assert_int_equal(pl->kv[1].items[1].line, 16);
  assert_string_equal(pl->kv[2].value, "month");
  assert_int_equal(pl->kv[3].shape, LX_CONF_LIST);
  assert_int_equal(pl->kv[3].n_items, 0);
  lx_config_free(&cfg);
  unlink(file);
  free(file);
  expect_error(MIN "plugins:\n  - name: escalate\n    tiers: [1, [2]]\n", 13,
               "plugins[0].tiers[1]: a plugin setting's entries are single values, not a list");
  expect_error(MIN "plugins:\n  - name: rank\n    weights:\n      response: {a: 1}\n", 14,
               "plugins[0].weights.response: a plugin setting's entries are single values, "
               "not a mapping");
  expect_error(MIN "plugins:\n  - name: rank\n    weights: {response: 1, response: 2}\n", 13,
               "plugins[0].weights.response: duplicate key");
}

static void test_checkpoints_and_security(void **state)
{
  lx_config_t cfg;
  char *err = NULL, *file;
  const char *text = MIN
    "checkpoints: {key: keys/lx.sign.key, every: 500}\n"
    "security: {server_key: /etc/lx/server.key, clients: clients.yaml}\n";
  if (load_text(text, &cfg, &err, &file))
    fail_msg("%s", err);
  assert_string_equal(cfg.checkpoints.key, "/tmp/keys/lx.sign.key");
  assert_int_equal(cfg.checkpoints.every, 500);
  assert_int_equal(cfg.checkpoints.interval, 60);
  assert_string_equal(cfg.security.server_key, "/etc/lx/server.key");
  assert_string_equal(cfg.security.clients, "/tmp/clients.yaml");
  lx_config_free(&cfg);
  unlink(file);
  free(file);
  expect_error(MIN "checkpoints: {every: 5}\n", 11, "checkpoints.key: required");
  expect_error(MIN "checkpoints: {key: k, interval: 0}\n", 11, "checkpoints.interval: ");
  expect_error(MIN "security: {server_key: s.key}\n", 11, "security.clients: required");
  expect_error(MIN "security: {server_key: s.key, clients: c, extra: 1}\n", 11,
               "security.extra: unknown key");
}

/* The gateway's section is accepted whatever it holds: lianxin-web checks
 * it, the daemon does not read it. It must still be a mapping. */
static void test_web_section_ignored(void **state)
{
  lx_config_t cfg;
  char *err = NULL, *file;
  const char *text = MIN
    "web:\n  listen: 127.0.0.1:7680\n  users: users.yaml\n"
    "  open311: {publish_summary: true}\n  anything: [1, 2]\n";
  if (load_text(text, &cfg, &err, &file))
    fail_msg("%s", err);
  lx_config_free(&cfg);
  unlink(file);
  free(file);
  expect_error(MIN "web: [1]\n", 11, "web: ");
}

static void test_aliases_refused(void **state)
{
  expect_error("units: &u\n  - {code: qd, name: x, townships: [{code: a, name: b, communities: "
               "[{code: c, name: d}]}]}\nmore: *u\n" MIN_CATS,
               3, "more: YAML aliases are not supported");
}

static void test_deep_nesting(void **state)
{
  char text[300] = "units: ";
  size_t o = strlen(text);
  for (int i = 0; i < 100; i++)
    text[o++] = '[';
  for (int i = 0; i < 100; i++)
    text[o++] = ']';
  strcpy(text + o, "\n");
  expect_error_ends(text, 1, "units[0][0][0]", "][0]: nested deeper than 64 levels\n");
}

/* Every mistake in a file is reported, one per line, in file order. */
static void test_many_mistakes(void **state)
{
  const char *text =
    "listen: {ingest: nowhere}\n"                        /* 1: bad endpoint */
    "store:\n"
    "  map_size: lots\n"                                 /* 3: bad size */
    "units:\n"
    "  - code: QD\n"                                     /* 5: bad code */
    "    name: 青德县\n"
    "    townships:\n"
    "      - code: hx\n"                                  /* 8: missing name */
    "        communities:\n"
    "          - {code: dy, name: 东园社区, extra: 1}\n"  /* 10: unknown key */
    "categories:\n"
    "  - {code: jobs, name: 就业}\n"
    "  - {code: jobs, name: 工作}\n"                      /* 13: duplicate */
    "deadlines:\n"
    "  normal: {county: 0}\n"                            /* 15: range */
    "  categories: {parking: {}}\n"                      /* 16: unknown category */
    "plugins: [{name: a}, {name: a}]\n"                  /* 17: duplicate plugin */
    "colour: blue\n";                                    /* 18: unknown key */
  static const char *const want[] = {
    ":1: listen.ingest: ",
    ":3: store.map_size: ",
    ":5: units[0].code: ",
    ":8: units[0].townships[0].name: required key missing",
    ":10: units[0].townships[0].communities[0].extra: unknown key",
    ":13: categories[1].code: duplicate category code",
    ":15: deadlines.normal.county: 0 is out of range",
    ":16: deadlines.categories.parking: unknown category",
    ":17: plugins[1].name: duplicate plugin name",
    ":18: colour: unknown key",
  };
  size_t n = sizeof want / sizeof want[0];
  lx_config_t cfg;
  char *err = NULL, *file;
  assert_int_equal(load_text(text, &cfg, &err, &file), -1);
  assert_zeroed(&cfg);
  size_t lines = 0;
  for (const char *p = err; *p; p++)
    lines += *p == '\n';
  if (lines != n)
    fail_msg("want %zu problems, got:\n%s", n, err);
  const char *at = err;
  for (size_t i = 0; i < n; i++) {
    char needle[256];
    snprintf(needle, sizeof needle, "%s%s", file, want[i]);
    const char *hit = strstr(at, needle);
    if (!hit)
      fail_msg("expected (in this order) %s in\n%s", needle, err);
    at = hit + 1;
  }
  unlink(file);
  free(file);
  free(err);
}

/* ------------------------------------------------------------- calendar */

/* Writes a per-year file beside the config (both under /tmp), so a config
 * can name it by its base name. Returns its malloc'd full name. */
static char *year_file(const char *text) { return write_tmp(text); }

static const char *base(const char *path) { return strrchr(path, '/') + 1; }

/* Asserts that loading TEXT fails with "IN:LINE: WHAT" (IN: a per-year
 * file) and that "IN" problems are not reported under the config's name. */
static void expect_error_in(const char *text, const char *in, int line, const char *what)
{
  lx_config_t cfg;
  char *err = NULL, *file, needle[1024];
  assert_int_equal(load_text(text, &cfg, &err, &file), -1);
  assert_zeroed(&cfg);
  snprintf(needle, sizeof needle, "%s:%d: %s", in, line, what);
  if (!strstr(err, needle))
    fail_msg("expected\n  %s\nin\n%s", needle, err);
  unlink(file);
  free(file);
  free(err);
}

static void test_calendar_values(void **state)
{
  lx_config_t cfg;
  char *err = NULL, *file, text[1024];
  char *y27 = year_file("# 2027, as a per-year file\n"
                        "year: 2027\n"
                        "holidays: [2027-01-01]\n"
                        "workdays: []\n");
  snprintf(text, sizeof text,
           MIN "calendar:\n"
           "  utc_offset: -03:30\n"                                   /* 12 */
           "  workday_end: 17:30\n"
           "  weekend: [fri, sat]\n"
           "  years:\n"
           "    - year: 2026\n"                                       /* 16 */
           "      holidays: [2026-02-15..2026-02-17, 2026-12-31]\n"
           "      workdays: [2026-01-02]\n"                           /* a Friday */
           "  files: [%s]\n",
           base(y27));
  int rc = load_text(text, &cfg, &err, &file);
  if (rc)
    fail_msg("%s", err);
  const lx_calendar_conf_t *k = &cfg.calendar;
  assert_int_equal(k->utc_offset_min, -210);
  assert_int_equal(k->workday_end_min, 17 * 60 + 30);
  assert_int_equal(k->weekend, LX_CAL_WEEKDAY_BIT(5) | LX_CAL_WEEKDAY_BIT(6));
  assert_int_equal(k->n_years, 2);
  assert_int_equal(k->years[0].year, 2026);
  assert_string_equal(k->years[0].file, file);
  assert_int_equal(k->years[0].line, 16);
  assert_int_equal(count_bits(k->years[0].holiday), 4);
  assert_true(has_bit(k->years[0].holiday, 31 + 16));
  assert_true(has_bit(k->years[0].holiday, 364));
  assert_int_equal(count_bits(k->years[0].workday), 1);
  assert_true(has_bit(k->years[0].workday, 1));
  assert_int_equal(k->years[1].year, 2027);
  assert_string_equal(k->years[1].file, y27);
  assert_int_equal(k->years[1].line, 2);
  assert_int_equal(count_bits(k->years[1].holiday), 1);
  assert_true(has_bit(k->years[1].holiday, 0));
  lx_config_free(&cfg);
  unlink(file);
  free(file);
  unlink(y27);
  free(y27);

  /* a bare "calendar:" and "weekend: []" (no weekend at all) are fine */
  assert_int_equal(load_text(MIN "calendar:\n", &cfg, &err, &file), 0);
  assert_int_equal(cfg.calendar.workday_end_min, 18 * 60);
  lx_config_free(&cfg);
  unlink(file);
  free(file);
  assert_int_equal(load_text(MIN "calendar: {weekend: [], utc_offset: '+14:00', "
                                 "workday_end: '24:00'}\n", &cfg, &err, &file), 0);
  assert_int_equal(cfg.calendar.weekend, 0);
  assert_int_equal(cfg.calendar.utc_offset_min, 14 * 60);
  assert_int_equal(cfg.calendar.workday_end_min, 24 * 60);
  lx_config_free(&cfg);
  unlink(file);
  free(file);
}

static void test_calendar_clock_values(void **state)
{
  expect_error(MIN "calendar:\n  utc_offset: 8\n", 12,
               "calendar.utc_offset: expected a UTC offset such as \"+08:00\", got \"8\"\n");
  expect_error(MIN "calendar: {utc_offset: '08:00'}\n", 11,
               "calendar.utc_offset: expected a UTC offset such as \"+08:00\", got \"08:00\"\n");
  expect_error(MIN "calendar: {utc_offset: '+15:00'}\n", 11,
               "calendar.utc_offset: \"+15:00\" is out of range -14:00..+14:00\n");
  expect_error(MIN "calendar: {utc_offset: '-14:01'}\n", 11,
               "calendar.utc_offset: \"-14:01\" is out of range -14:00..+14:00\n");
  expect_error(MIN "calendar: {workday_end: 6pm}\n", 11,
               "calendar.workday_end: expected a time of day such as \"18:00\", got \"6pm\"\n");
  expect_error(MIN "calendar: {workday_end: '18:60'}\n", 11,
               "calendar.workday_end: expected a time of day such as \"18:00\", got \"18:60\"\n");
  expect_error(MIN "calendar: {workday_end: '00:00'}\n", 11,
               "calendar.workday_end: \"00:00\" is out of range 00:01..24:00\n");
  expect_error(MIN "calendar: {workday_end: '24:01'}\n", 11,
               "calendar.workday_end: \"24:01\" is out of range 00:01..24:00\n");
  expect_error(MIN "calendar: {workday_end: [18]}\n", 11,
               "calendar.workday_end: expected a time of day, got a list\n");
  expect_error(MIN "calendar:\n  timezone: Asia/Shanghai\n", 12,
               "calendar.timezone: unknown key; valid keys: utc_offset, workday_end, weekend, "
               "years, files\n");
  expect_error(MIN "calendar: [2026]\n", 11, "calendar: expected a mapping, got a list\n");
}

static void test_calendar_weekend(void **state)
{
  expect_error(MIN "calendar:\n  weekend: [sat, saturday]\n", 12,
               "calendar.weekend[1]: \"saturday\" is not a day; expected mon, tue, wed, thu, fri, "
               "sat or sun\n");
  expect_error(MIN "calendar:\n  weekend:\n    - sun\n    - sun\n", 14,
               "calendar.weekend[1]: duplicate day \"sun\"; first at line 13\n");
  expect_error(MIN "calendar:\n  weekend: [mon, tue, wed, thu, fri, sat, sun]\n", 12,
               "calendar.weekend: lists all seven days; at least one day of the week must be a "
               "working day\n");
  expect_error(MIN "calendar: {weekend: sat}\n", 11,
               "calendar.weekend: expected a list, got a string\n");
  expect_error(MIN "calendar: {weekend: [[sat]]}\n", 11,
               "calendar.weekend[0]: expected a string, got a list\n");

  /* a broken weekend is reported once: workdays are not judged against it */
  lx_config_t cfg;
  char *err = NULL, *file;
  assert_int_equal(load_text(MIN "calendar:\n  weekend: [sat, funday]\n"
                                 "  years: [{year: 2026, workdays: [2026-01-05]}]\n",
                             &cfg, &err, &file), -1);
  assert_non_null(strstr(err, ":12: calendar.weekend[1]: \"funday\" is not a day"));
  assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1);
  unlink(file);
  free(file);
  free(err);
}

static void test_calendar_years(void **state)
{
  expect_error(MIN "calendar:\n  years:\n    - holidays: [2026-01-01]\n", 13,
               "calendar.years[0].year: required key missing\n");
  expect_error(MIN "calendar:\n  years:\n    - year: 1969\n", 13,
               "calendar.years[0].year: 1969 is out of range 1970..9999\n");
  expect_error(MIN "calendar:\n  years:\n    - year: twenty\n", 13,
               "calendar.years[0].year: expected an integer, got \"twenty\"\n");
  expect_error(MIN "calendar:\n  years:\n    - {year: 2026, holiday: [2026-01-01]}\n", 13,
               "calendar.years[0].holiday: unknown key; valid keys: year, holidays, workdays\n");
  expect_error(MIN "calendar:\n  years:\n    - year: 2026\n    - year: 2027\n    - year: 2026\n",
               15, "calendar.years[2].year: duplicate year 2026; first at line 13\n");
  expect_error(MIN "calendar:\n  years: {year: 2026}\n", 12,
               "calendar.years: expected a list, got a mapping\n");
}

/* Each kind of mistake in a holidays or workdays entry. Line 13 is the
 * entry itself. */
static void test_calendar_dates(void **state)
{
#define Y2026 MIN "calendar:\n  years:\n    - year: 2026\n"
  expect_error(Y2026 "      holidays: [2026-1-1]\n", 14,
               "calendar.years[0].holidays[0]: \"2026-1-1\" is not a date: write YYYY-MM-DD, or "
               "YYYY-MM-DD..YYYY-MM-DD for a range\n");
  expect_error(Y2026 "      holidays: ['2026-01-01 .. 2026-01-03']\n", 14,
               "calendar.years[0].holidays[0]: \"2026-01-01 .. 2026-01-03\" is not a date");
  expect_error(Y2026 "      holidays: [2026-02-30]\n", 14,
               "calendar.years[0].holidays[0]: \"2026-02-30\": 2026-02-30 is not a valid date\n");
  expect_error(Y2026 "      holidays: [2026-02-27..2026-02-29]\n", 14,
               "calendar.years[0].holidays[0]: \"2026-02-27..2026-02-29\": 2026-02-29 is not a "
               "valid date\n");
  expect_error(Y2026 "      holidays: [2027-01-01]\n", 14,
               "calendar.years[0].holidays[0]: \"2027-01-01\" is outside the year 2026\n");
  expect_error(Y2026 "      holidays: [2026-12-31..2027-01-02]\n", 14,
               "calendar.years[0].holidays[0]: \"2026-12-31..2027-01-02\" is outside the year "
               "2026\n");
  expect_error(Y2026 "      holidays: [2026-02-23..2026-02-15]\n", 14,
               "calendar.years[0].holidays[0]: \"2026-02-23..2026-02-15\" ends before it "
               "starts\n");
  expect_error(Y2026 "      holidays:\n        - 2026-10-01..2026-10-07\n        - 2026-10-03\n",
               16, "calendar.years[0].holidays[1]: 2026-10-03 is already listed at line 15\n");
  expect_error(Y2026 "      holidays: [2026-02-15..2026-02-23]\n"
                     "      workdays: [2026-02-14, 2026-02-15]\n",
               15, "calendar.years[0].workdays[1]: 2026-02-15 is also listed as a holiday at "
                   "line 14\n");
  expect_error(Y2026 "      workdays: [2026-01-04, 2026-01-05]\n", 14,
               "calendar.years[0].workdays[1]: 2026-01-05 is a Monday, a working day anyway; "
               "list only weekend days worked in exchange\n");
  expect_error(Y2026 "      workdays: [2026-01-03..2026-01-05]\n", 14,
               "calendar.years[0].workdays[0]: 2026-01-05 is a Monday");
  expect_error(Y2026 "      workdays: [[2026-01-04]]\n", 14,
               "calendar.years[0].workdays[0]: expected a string, got a list\n");
  expect_error(Y2026 "      holidays: [~]\n", 14,
               "calendar.years[0].holidays[0]: expected a string, got an empty value\n");
  /* with the year missing, the form of the dates is still checked */
  expect_error(MIN "calendar:\n  years:\n    - holidays: [2026-13-01]\n", 13,
               "calendar.years[0].holidays[0]: \"2026-13-01\": 2026-13-01 is not a valid date\n");
#undef Y2026
}

static void test_calendar_files(void **state)
{
  char text[1024];
  expect_error(MIN "calendar:\n  files: [lx-no-such-calendar.yaml]\n", 12,
               "calendar.files[0]: cannot open /tmp/lx-no-such-calendar.yaml: No such file or "
               "directory\n");
  expect_error(MIN "calendar:\n  files: [/tmp]\n", 12,
               "calendar.files[0]: cannot open /tmp: Is a directory\n");
  expect_error(MIN "calendar:\n  files: ['']\n", 12, "calendar.files[0]: must not be empty\n");

  char *y = year_file("year: 2026\n");
  snprintf(text, sizeof text, MIN "calendar:\n  files:\n    - %s\n    - %s\n", base(y), y);
  expect_error(text, 14, "calendar.files[1]: \"/tmp/lx-test-config-"); /* two spellings */
  expect_error_ends(text, 14, "calendar.files[1]: ", "is the same file as calendar.files[0]\n");
  unlink(y);
  free(y);
}

/* A mistake inside a per-year file names that file and its line. */
static void test_calendar_file_mistakes(void **state)
{
  char text[1024];
  struct { const char *body; int line; const char *what; } cases[] = {
    {"# 2026\nyear: 2026\nholidays:\n  - 2026-02-30\n", 4,
     "holidays[0]: \"2026-02-30\": 2026-02-30 is not a valid date\n"},
    {"year: 2026\nworkdays: [2026-01-05]\n", 2,
     "workdays[0]: 2026-01-05 is a Monday, a working day anyway"},
    {"year: 2026\nholidays: [2026-01-01\n", 3, "syntax error: did not find expected ',' or ']'"},
    {"year: 2026\nholidays: []\nholidays: []\n", 3, "holidays: duplicate key; first at line 2\n"},
    {"year: 2026\nweekend: [sat]\n", 2,
     "weekend: unknown key; valid keys: year, holidays, workdays\n"},
    {"holidays: []\n", 1, "year: required key missing\n"},
    {"- year: 2026\n", 1, "(top): expected a mapping, got a list\n"},
    {"", 1, "(top): the file is empty; expected a mapping with year, holidays and workdays\n"},
    {"year: 2026\n---\nyear: 2027\n", 3, "(top): only one YAML document is allowed per file\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *y = year_file(cases[i].body);
    snprintf(text, sizeof text, MIN "calendar:\n  files: [%s]\n", base(y));
    expect_error_in(text, y, cases[i].line, cases[i].what);
    unlink(y);
    free(y);
  }

  /* the same year inline and in a file: the file's entry is the second */
  lx_config_t cfg;
  char *err = NULL, *file, needle[512];
  char *y = year_file("# the next year, by mistake the same\n\nyear: 2026\n");
  snprintf(text, sizeof text, MIN "calendar:\n  years: [{year: 2026}]\n  files: [%s]\n", base(y));
  assert_int_equal(load_text(text, &cfg, &err, &file), -1);
  snprintf(needle, sizeof needle, "%s:3: year: duplicate year 2026; first at %s:12\n", y, file);
  if (!strstr(err, needle))
    fail_msg("expected\n  %s\nin\n%s", needle, err);
  unlink(file);
  free(file);
  free(err);
  unlink(y);
  free(y);
}

/* Problems in a per-year file are listed where the config names the file,
 * between the config's own problems before and after that line. */
static void test_calendar_problem_order(void **state)
{
  lx_config_t cfg;
  char *err = NULL, *file, text[1024], want[5][512];
  char *y = year_file("year: 2026\nholidays: [2026-02-30]\nworkdays: [2026-01-05]\n");
  snprintf(text, sizeof text,
           MIN "calendar:\n"
           "  utc_offset: '+8'\n"                              /* 12 */
           "  files: [%s, lx-no-such-calendar.yaml]\n"         /* 13 */
           "colour: blue\n",                                   /* 14 */
           base(y));
  assert_int_equal(load_text(text, &cfg, &err, &file), -1);
  snprintf(want[0], sizeof want[0], "%s:12: calendar.utc_offset: ", file);
  snprintf(want[1], sizeof want[1], "%s:2: holidays[0]: ", y);
  snprintf(want[2], sizeof want[2], "%s:3: workdays[0]: ", y);
  snprintf(want[3], sizeof want[3], "%s:13: calendar.files[1]: cannot open", file);
  snprintf(want[4], sizeof want[4], "%s:14: colour: ", file);
  const char *at = err;
  for (int i = 0; i < 5; i++) {
    const char *hit = strstr(at, want[i]);
    if (!hit)
      fail_msg("expected (in this order) %s in\n%s", want[i], err);
    at = hit + 1;
  }
  unlink(file);
  free(file);
  free(err);
  unlink(y);
  free(y);
}

/* The hash is BLAKE2b-256 of the bytes as read, and loading the same bytes
 * from memory (a configuration kept in the store) gives the same config. */
static void test_hash_and_load_bytes(void **state)
{
  lx_config_t a, b;
  char *err = NULL, *file;
  uint8_t h[32];
  assert_int_equal(load_text(MIN, &a, &err, &file), 0);
  crypto_generichash(h, sizeof h, (const uint8_t *)MIN, strlen(MIN), NULL, 0);
  assert_memory_equal(a.hash, h, 32);
  assert_int_equal(a.n_bytes, strlen(MIN));
  assert_int_equal(lx_config_load_bytes(file, a.bytes, a.n_bytes, &b, &err), 0);
  assert_memory_equal(b.hash, a.hash, 32);
  assert_string_equal(b.units[2].path, "qd.hx.dy");
  lx_config_free(&b);
  /* Bytes that do not check name the file they stand for. */
  assert_int_equal(lx_config_load_bytes(file, (const uint8_t *)"units: [\n", 9, &b, &err), -1);
  assert_non_null(strstr(err, file));
  free(err);
  lx_config_free(&a);
  unlink(file);
  free(file);
}

static void load_ok(const char *text, lx_config_t *cfg)
{
  char *err = NULL, *file;
  assert_int_equal(load_text(text, cfg, &err, &file), 0);
  unlink(file);
  free(file);
}

/* What a config record's `changes` says. */
static void test_diff(void **state)
{
  lx_config_t a, b;
  char **ch;
  size_t n;
  load_ok(MIN "deadlines: {normal: {township: 5}}\n", &a);
  load_ok(MIN_UNITS "          - {code: xc, name: 新村}\n"
          "categories:\n  - {code: jobs, name: 工作}\n  - {code: health, name: 医疗}\n"
          "deadlines: {normal: {township: 4}}\n", &b);
  assert_int_equal(lx_config_diff(&a, &b, &ch, &n), 0);
  assert_int_equal(n, 4);
  assert_string_equal(ch[0], "unit qd.hx.xc added (community, 新村)");
  assert_string_equal(ch[1], "category jobs renamed from 就业 to 工作");
  assert_string_equal(ch[2], "category health added (医疗)");
  assert_string_equal(ch[3], "deadlines: normal township 5 -> 4 working days");
  lx_config_changes_free(ch, n);
  assert_int_equal(lx_config_diff(&b, &a, &ch, &n), 0);
  assert_string_equal(ch[0], "unit qd.hx.xc removed");
  assert_string_equal(ch[2], "category health removed");
  lx_config_changes_free(ch, n);
  assert_int_equal(lx_config_diff(&a, &a, &ch, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(ch[0], "the file changed; no setting differs");
  lx_config_changes_free(ch, n);
  lx_config_free(&a);
  lx_config_free(&b);
}

/* Plugin entries compare by their settings, not their lines. */
static void test_plugin_same(void **state)
{
  lx_config_t a, b, c;
  load_ok(MIN "plugins:\n  - name: escalate\n    reminder_days: 1\n    w: {a: 1}\n", &a);
  load_ok(MIN "\nplugins:\n  - name: escalate\n    reminder_days: 1\n    w: {a: 1}\n", &b);
  load_ok(MIN "plugins:\n  - name: escalate\n    reminder_days: 1\n    w: {a: 2}\n", &c);
  assert_true(lx_config_plugin_same(&a.plugins[0], &b.plugins[0]));
  assert_false(lx_config_plugin_same(&a.plugins[0], &c.plugins[0]));
  lx_config_free(&a);
  lx_config_free(&b);
  lx_config_free(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_sample_loads),
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_values_and_plugins),
    cmocka_unit_test(test_tiers),
    cmocka_unit_test(test_plugin_settings_lists_and_maps),
    cmocka_unit_test(test_checkpoints_and_security),
    cmocka_unit_test(test_web_section_ignored),
    cmocka_unit_test(test_free_zeroed),
    cmocka_unit_test(test_print_schema),
    cmocka_unit_test(test_missing_file),
    cmocka_unit_test(test_syntax_error),
    cmocka_unit_test(test_unknown_keys),
    cmocka_unit_test(test_missing_required),
    cmocka_unit_test(test_wrong_type),
    cmocka_unit_test(test_bad_codes),
    cmocka_unit_test(test_code_too_long),
    cmocka_unit_test(test_duplicate_codes),
    cmocka_unit_test(test_duplicate_yaml_key),
    cmocka_unit_test(test_empty_lists),
    cmocka_unit_test(test_deadline_range),
    cmocka_unit_test(test_sizes),
    cmocka_unit_test(test_map_max_below_map_size),
    cmocka_unit_test(test_unknown_override),
    cmocka_unit_test(test_bad_endpoint),
    cmocka_unit_test(test_duplicate_plugin),
    cmocka_unit_test(test_aliases_refused),
    cmocka_unit_test(test_deep_nesting),
    cmocka_unit_test(test_many_mistakes),
    cmocka_unit_test(test_calendar_values),
    cmocka_unit_test(test_calendar_clock_values),
    cmocka_unit_test(test_calendar_weekend),
    cmocka_unit_test(test_calendar_years),
    cmocka_unit_test(test_calendar_dates),
    cmocka_unit_test(test_calendar_files),
    cmocka_unit_test(test_calendar_file_mistakes),
    cmocka_unit_test(test_calendar_problem_order),
    cmocka_unit_test(test_hash_and_load_bytes),
    cmocka_unit_test(test_diff),
    cmocka_unit_test(test_plugin_same),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
