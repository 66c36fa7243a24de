/* SPDX-License-Identifier: MIT
 *
 * config.h: the daemon's configuration, loaded from one YAML file.
 *
 * The loader (config.c, with config_values.c for the checks of values and
 * config_calendar.c for the deadlines and calendar sections) reads the file
 * with libyaml's document API so that every node keeps its line; each
 * section is checked against a schema table, unknown keys are errors, and
 * every problem is reported as "FILE:LINE: key.path: reason" before the
 * daemon binds anything.
 */
#ifndef LX_CONFIG_H
#define LX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "lx/plugin.h"

#define LX_CODE_MAX 32            /* a unit code: 1..32 of [a-z0-9-] */
#define LX_PATH_MAX (3 * LX_CODE_MAX + 2)

enum lx_tier {
  LX_TIER_COMMUNITY = 1,
  LX_TIER_TOWNSHIP = 2,
  LX_TIER_COUNTY = 3,
};

/* One node of the tier tree. Units are stored parents first (a county, then
 * its townships, each followed by its communities), so a prefix walk is a
 * linear scan. */
typedef struct lx_unit {
  char path[LX_PATH_MAX + 1]; /* "qd.hx.dy" */
  char *name;                 /* human name, UTF-8, e.g. "东园社区" */
  int tier;                   /* enum lx_tier */
  int parent;                 /* index into lx_config_t.units, -1 for a county */
} lx_unit_t;

typedef struct lx_category {
  char *code; /* what travels on the wire: "jobs" */
  char *name; /* what a person reads: "就业" */
} lx_category_t;

/* Working days allowed at each tier (index 1..3; 0 unused). */
typedef struct lx_tier_days {
  int days[4];
} lx_tier_days_t;

/* A per-category override of the normal (and urgent) deadlines. A value of 0
 * means "not overridden, use the default". */
typedef struct lx_deadline_override {
  char *category;
  lx_tier_days_t normal;
  lx_tier_days_t urgent;
  int line; /* where it was written, for later cross-checks */
} lx_deadline_override_t;

typedef struct lx_deadlines {
  lx_tier_days_t normal;  /* default 3 / 5 / 10 */
  lx_tier_days_t urgent;  /* default 1 / 2 / 3 */
  lx_deadline_override_t *overrides;
  size_t n_overrides;
} lx_deadlines_t;

/* One entry of the plugin list. Only the name and the optional path are the
 * core's business; the rest of the section belongs to the plugin, which
 * checks it in its own init through lx/plugin.h. The loader keeps every
 * line so the plugin's errors can point at it. */
/* One key of a plugin's entry other than name and path: a single value, a
 * list of single values or a map of them (lx/plugin.h's LX_CONF_*). */
typedef struct lx_conf_kv {
  char *key;
  char *value;             /* the scalar as written; NULL for a list or map */
  int line;
  int shape;               /* LX_CONF_LIST or LX_CONF_MAP when value is NULL */
  lx_conf_item_t *items;   /* a list's or map's entries, in file order */
  size_t n_items;
} lx_conf_kv_t;

typedef struct lx_plugin_conf {
  char *name;
  char *path; /* shared object; NULL means "the build's plugin dir" */
  int line;
  lx_conf_kv_t *kv; /* the plugin's own keys, in file order */
  size_t n_kv;
} lx_plugin_conf_t;

/* The working-day calendar (calendar.c builds its day table from this).
 * Days are counted by day of the year: bit d of a bitmap is 1 January + d. */
#define LX_CAL_YEAR_MIN 1970
#define LX_CAL_YEAR_MAX 9999
#define LX_CAL_DAYS 366                          /* days in the longest year */
#define LX_CAL_BYTES ((LX_CAL_DAYS + 7) / 8)     /* one bitmap over a year */

/* One configured year: the State Council's arrangement for it. */
typedef struct lx_cal_year {
  int year;                           /* LX_CAL_YEAR_MIN..LX_CAL_YEAR_MAX */
  uint8_t holiday[LX_CAL_BYTES];      /* days off (public holidays and their bridges) */
  uint8_t workday[LX_CAL_BYTES];      /* weekend days worked in exchange (调休上班) */
  char *file;                         /* where it was written: the config or a per-year file */
  int line;                           /* the line of its `year:` key in that file */
} lx_cal_year_t;

/* Bit (ISO weekday - 1) of lx_calendar_conf_t.weekend: bit 0 is Monday, bit 6
 * Sunday. */
#define LX_CAL_WEEKDAY_BIT(iso) (1u << ((iso) - 1))

typedef struct lx_calendar_conf {
  int utc_offset_min;  /* local time minus UTC, minutes; default +480 (UTC+8) */
  int workday_end_min; /* minutes after local midnight, 1..1440; default 1080 (18:00) */
  unsigned weekend;    /* LX_CAL_WEEKDAY_BIT set; default Saturday and Sunday */
  lx_cal_year_t *years; /* in the order written: inline years first, then files */
  size_t n_years;       /* no two share a year */
} lx_calendar_conf_t;

/* checkpoints: signed checkpoint records (PROTOCOL.md "checkpoint"). */
typedef struct lx_checkpoint_conf {
  char *key;    /* a .sign.key file, resolved; NULL: no checkpoints */
  int every;    /* records between checkpoints; default 10000 */
  int interval; /* seconds between checkpoints; default 60 */
  int line;     /* of the section, for errors about the key file */
} lx_checkpoint_conf_t;

/* security: CURVE on every socket and the client registry. */
typedef struct lx_security_conf {
  char *server_key; /* the daemon's .key file, resolved; NULL: plain sockets */
  char *clients;    /* the registry YAML, resolved */
  int line;
} lx_security_conf_t;

/* log: how the daemon logs (command-line flags win). */
typedef struct lx_log_conf {
  char *format; /* "text" or "json"; NULL: not given */
  char *level;  /* "error", "warn", "info" or "debug"; NULL: not given */
} lx_log_conf_t;

#define LX_CONFIG_BYTES_MAX (16u << 20) /* a larger config file is refused */

typedef struct lx_config {
  char *file; /* the config file as given */
  char *dir;  /* its directory: relative paths in the file resolve here */
  uint8_t *bytes;   /* the file's bytes, as loaded */
  size_t n_bytes;
  uint8_t hash[32]; /* BLAKE2b-256 of bytes: what a `config` record names */

  /* listen: */
  char *ingest_ep; /* default tcp://127.0.0.1:7601 */
  char *alerts_ep; /* default tcp://127.0.0.1:7602 */
  char *query_ep;  /* default tcp://127.0.0.1:7603 */

  /* store: */
  char *store_path;  /* default "data", resolved against dir */
  uint64_t map_size; /* initial LMDB map size, bytes; default 64 MiB */
  uint64_t map_max;  /* the map may grow up to this, bytes; default 16 GiB */

  lx_unit_t *units;
  size_t n_units;

  lx_category_t *categories;
  size_t n_categories;

  lx_deadlines_t deadlines;

  lx_plugin_conf_t *plugins;
  size_t n_plugins;

  lx_calendar_conf_t calendar; /* calendar: */
  lx_checkpoint_conf_t checkpoints; /* checkpoints: */
  lx_security_conf_t security;       /* security: */
  lx_log_conf_t log;                 /* log: */
} lx_config_t;

/* Loads and checks FILE. On success returns 0 and fills *out (caller owns it;
 * free with lx_config_free). On failure returns -1, writes every problem
 * found, one per line, as "FILE:LINE: key.path: reason\n" into a malloc'd
 * string stored in *errors (caller frees), and leaves *out zeroed. */
int lx_config_load(const char *file, lx_config_t *out, char **errors);

/* The same from bytes already read (a configuration kept in the store):
 * FILE names them in messages, and relative paths resolve against FILE's
 * directory. */
int lx_config_load_bytes(const char *file, const uint8_t *bytes, size_t n, lx_config_t *out,
                         char **errors);

/* Appends to *out (a malloc'd array of malloc'd strings, *n of them) what
 * differs from OLD in NEW, in words: "unit qd.hx.new added", "deadlines:
 * normal township 5 -> 4". Returns 0, or -1 out of memory. Free with
 * lx_config_changes_free. */
int lx_config_diff(const lx_config_t *old, const lx_config_t *new, char ***out, size_t *n);
void lx_config_changes_free(char **list, size_t n);

/* True when a plugin entry's own settings are the same in both (lines
 * aside). */
bool lx_config_plugin_same(const lx_plugin_conf_t *a, const lx_plugin_conf_t *b);

/* Frees everything lx_config_load allocated and zeroes *cfg. Safe on a
 * zeroed struct. */
void lx_config_free(lx_config_t *cfg);

/* Finds a unit by its full path; returns its index or -1. path need not be
 * NUL-terminated. */
int lx_config_find_unit(const lx_config_t *cfg, const char *path, size_t len);

/* The path of the (first) county: where daemon-written records stand. */
const char *lx_config_county(const lx_config_t *cfg);

/* Finds a category by code; returns its index or -1. */
int lx_config_find_category(const lx_config_t *cfg, const char *code, size_t len);

/* Working days allowed at `tier` for an appeal of `category` (len bytes)
 * and priority: the category's override if it has one, else the default.
 * Returns -1 for a tier that is not 1..3. */
int lx_config_tier_days(const lx_config_t *cfg, int tier, const char *category, size_t len,
                        bool urgent);

/* Returns the tier name ("community", "township", "county") or "?". */
const char *lx_tier_name(int tier);

/* Parses a tier name; returns 1..3, or 0 if it is not one. */
int lx_tier_parse(const char *s, size_t len);

/* Prints every configuration key with its type, default, range and meaning,
 * from the same schema tables the loader checks against (for
 * `lianxind --help-config`). */
void lx_config_print_schema(FILE *out);

#endif
