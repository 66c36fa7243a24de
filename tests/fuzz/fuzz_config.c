/* SPDX-License-Identifier: MIT
 *
 * fuzz_config.c: libFuzzer harness for the YAML config loader
 * (daemon/config/config.c, on libyaml's document API), the path of
 * `lianxind --check-config FILE` and of every start.
 *
 * Input: the config file's bytes. Each input is written to
 * lianxin.yaml in a scratch directory, which also holds three per-year
 * calendar files the input may name in calendar.files: cn-2027.yaml and
 * calendar/cn-2028.yaml (valid) and bad-year.yaml (with mistakes). Relative
 * paths resolve against that directory; the seed corpus uses those names.
 *
 * Promises checked for every input:
 *  - success: no error text; units are stored parents first with sane tiers
 *    and each path found at its own index; category codes and calendar
 *    years are unique; the config names the file; lx_config_free zeroes it;
 *  - failure: *out is left zeroed; the error text is non-empty, ends in a
 *    newline, and every line begins with "FILE:" where FILE is the config
 *    file or a per-year file the loader opened ("FILE:LINE: key: reason").
 */
#include <fcntl.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"

static char g_dir[PATH_MAX], g_file[PATH_MAX];

static void put_file(const char *name, const char *text) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  FILE *f = fopen(path, "w");
  if (!f || fputs(text, f) < 0 || fclose(f)) {
    perror(path);
    abort();
  }
}

static void cleanup(void) { fuzz_rmtree(g_dir); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char sub[PATH_MAX + 16];
  fuzz_mkdtemp(g_dir, sizeof g_dir, "config");
  atexit(cleanup);
  snprintf(g_file, sizeof g_file, "%s/lianxin.yaml", g_dir);
  snprintf(sub, sizeof sub, "%s/calendar", g_dir);
  if (mkdir(sub, 0755))
    abort();
  put_file("cn-2027.yaml", "# 2027, as a per-year file\n"
                           "year: 2027\n"
                           "holidays: [2027-01-01, 2027-02-05..2027-02-11]\n"
                           "workdays: [2027-02-20]\n");
  put_file("calendar/cn-2028.yaml", "year: 2028\nholidays:\n  - 2028-01-01\nworkdays: []\n");
  put_file("bad-year.yaml", "year: 2026\n"
                            "holidays:\n"
                            "  - 2026-02-30\n"
                            "workdays: [2026-01-05]\n"
                            "weekend: [sat]\n");
  return 0;
}

static void write_input(const uint8_t *data, size_t size) {
  int fd = open(g_file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror(g_file);
    abort();
  }
  while (size > 0) {
    ssize_t n = write(fd, data, size);
    if (n <= 0) {
      perror(g_file);
      abort();
    }
    data += n, size -= (size_t)n;
  }
  close(fd);
}

static bool all_zero(const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    if (b[i])
      return false;
  return true;
}

/* True when LINE (of length n) begins with "F:" for a file F the loader may
 * name: the config itself, or any file that exists and is not a directory (a
 * per-year file it opened: calendar.files may name any path, /dev/zero too). */
static bool names_a_file(const char *line, size_t n) {
  size_t fl = strlen(g_file);
  if (n > fl && memcmp(line, g_file, fl) == 0 && line[fl] == ':')
    return true;
  char path[PATH_MAX];
  for (size_t k = 1; k < n && k < sizeof path; k++) {
    if (line[k] != ':')
      continue;
    memcpy(path, line, k);
    path[k] = 0;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISDIR(st.st_mode))
      return true;
  }
  return false;
}

static void check_errors(const char *err) {
  FUZZ_CHECK(err != NULL, "failure without error text");
  size_t len = strlen(err);
  FUZZ_CHECK(len > 0 && err[len - 1] == '\n', "error text does not end in a newline: %s", err);
  for (const char *p = err; *p;) {
    const char *nl = strchr(p, '\n');
    size_t n = (size_t)(nl - p);
    FUZZ_CHECK(names_a_file(p, n), "error line does not begin with a file name: \"%.*s\"",
               (int)n, p);
    p = nl + 1;
  }
}

static void check_config(const lx_config_t *cfg) {
  FUZZ_CHECK(cfg->file && strcmp(cfg->file, g_file) == 0, "config names another file");
  FUZZ_CHECK(cfg->dir && cfg->ingest_ep && cfg->alerts_ep && cfg->query_ep && cfg->store_path,
             "a string setting is missing");
  FUZZ_CHECK(cfg->map_max >= cfg->map_size, "map_max below map_size");
  for (size_t i = 0; i < cfg->n_units; i++) {
    const lx_unit_t *u = &cfg->units[i];
    FUZZ_CHECK(u->tier >= LX_TIER_COMMUNITY && u->tier <= LX_TIER_COUNTY, "unit %zu tier %d", i,
               u->tier);
    FUZZ_CHECK(memchr(u->path, 0, sizeof u->path) && u->path[0], "unit %zu path", i);
    FUZZ_CHECK(u->name != NULL, "unit %zu has no name", i);
    if (u->tier == LX_TIER_COUNTY)
      FUZZ_CHECK(u->parent == -1, "county %s has a parent", u->path);
    else
      FUZZ_CHECK(u->parent >= 0 && (size_t)u->parent < i &&
                     cfg->units[u->parent].tier == u->tier + 1,
                 "unit %s has parent %d", u->path, u->parent);
    FUZZ_CHECK(lx_config_find_unit(cfg, u->path, strlen(u->path)) == (int)i,
               "unit path %s is not unique", u->path);
  }
  for (size_t i = 0; i < cfg->n_categories; i++) {
    const lx_category_t *c = &cfg->categories[i];
    FUZZ_CHECK(c->code && c->name, "category %zu", i);
    FUZZ_CHECK(lx_config_find_category(cfg, c->code, strlen(c->code)) == (int)i,
               "category %s is not unique", c->code);
  }
  for (size_t i = 0; i < cfg->deadlines.n_overrides; i++)
    FUZZ_CHECK(lx_config_find_category(cfg, cfg->deadlines.overrides[i].category,
                                       strlen(cfg->deadlines.overrides[i].category)) >= 0,
               "deadline override for an unknown category");
  for (size_t i = 0; i < cfg->n_plugins; i++)
    FUZZ_CHECK(cfg->plugins[i].name != NULL, "plugin %zu has no name", i);
  const lx_calendar_conf_t *cal = &cfg->calendar;
  FUZZ_CHECK(cal->workday_end_min >= 1 && cal->workday_end_min <= 1440, "workday_end %d",
             cal->workday_end_min);
  for (size_t i = 0; i < cal->n_years; i++) {
    FUZZ_CHECK(cal->years[i].year >= LX_CAL_YEAR_MIN && cal->years[i].year <= LX_CAL_YEAR_MAX,
               "year %d", cal->years[i].year);
    FUZZ_CHECK(cal->years[i].file != NULL, "year %d has no file", cal->years[i].year);
    for (size_t j = 0; j < i; j++)
      FUZZ_CHECK(cal->years[i].year != cal->years[j].year, "year %d twice", cal->years[i].year);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lx_config_t cfg;
  char *err = (char *)"unset";
  write_input(data, size);
  memset(&cfg, 0xa5, sizeof cfg);
  int rc = lx_config_load(g_file, &cfg, &err);
  if (fuzz_verbose())
    fprintf(stderr, "fuzz_config: %s", rc == 0 ? "loaded\n" : err ? err : "(no text)\n");
  if (rc == 0) {
    FUZZ_CHECK(err == NULL, "success with error text: %s", err);
    check_config(&cfg);
    lx_config_free(&cfg);
    FUZZ_CHECK(all_zero(&cfg, sizeof cfg), "lx_config_free left data behind");
  } else {
    FUZZ_CHECK(rc == -1, "returned %d", rc);
    FUZZ_CHECK(all_zero(&cfg, sizeof cfg), "a failed load left *out filled");
    check_errors(err);
    free(err);
  }
  return 0;
}
