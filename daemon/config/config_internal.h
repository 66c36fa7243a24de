/* SPDX-License-Identifier: MIT
 *
 * config_internal.h: what the config loader's three files share, and no
 * other part of the daemon needs.
 *
 * config.c holds the file, the problem list, the API and most sections;
 * config_values.c the checks that know no section (the YAML helpers, the
 * structure scan, the checks of values and mappings); config_calendar.c
 * the deadlines and calendar sections; config_plugins.c the plugin list. All use the schema types below.
 * The helpers one file calls in another are declared here, named
 * lx__cfg_*, and config_calendar.c's section tables are exported so that
 * config.c prints them in the key reference with all the others.
 */
#ifndef LX_CONFIG_INTERNAL_H
#define LX_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <yaml.h>

#include "config.h"

#define CFG_PATH 512        /* a key path in a message; longer ones are cut */
#define CFG_MAX_FIELDS 12    /* the widest section */
#define CFG_MAX_DEPTH 64    /* deeper nesting is an error, not a stack overflow */
#define CFG_NAME_MAX 256    /* human names, bytes of UTF-8 */
#define CFG_PATH_MAX 4096   /* file paths in the config */
#define CFG_EP_MAX 255      /* ZeroMQ endpoints */
#define CFG_PLUGIN_MAX 64   /* plugin names */
#define NO_OFF ((size_t)-1) /* the field is not stored by offset */

#define KIB 1024ULL /* the size units CT_SIZE values are written in */
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

/* ---------------------------------------------------------------- schema */

enum cfg_type {
  CT_STRING,   /* UTF-8, min..max bytes */
  CT_CODE,     /* min..max of [a-z0-9-]: unit and category codes */
  CT_NAME,     /* min..max of [a-z0-9_-]: plugin names */
  CT_ENDPOINT, /* a ZeroMQ endpoint: transport://address, 1..255 bytes */
  CT_INT,      /* a decimal integer min..max, stored as int */
  CT_SIZE,     /* bytes, or a number with KiB/MiB/GiB/TiB; stored as uint64_t */
  CT_OFFSET,   /* a UTC offset "+HH:MM" or "-HH:MM"; stored as int minutes */
  CT_TIME,     /* a local time of day "HH:MM" (up to 24:00); stored as int minutes */
  CT_MAP,      /* a nested mapping, walked by the caller */
  CT_LIST,     /* a list of min..max entries, walked by the caller */
};

typedef struct cfg_field {
  const char *key;
  enum cfg_type type;
  bool required;
  int64_t min, max; /* value range; byte length for text; entries for lists */
  size_t off;       /* where lx__cfg_check_map stores a scalar in dest, or NO_OFF */
  const char *def;  /* the default as the reference shows it, or NULL */
  const char *desc;
} cfg_field_t;

typedef struct cfg_section {
  const char *path; /* as the reference shows it: "units[].townships[]" */
  const cfg_field_t *fields;
  size_t n;
  bool open; /* keys outside the table belong to someone else (plugins) */
} cfg_section_t;

#define SECTION(p, f, o) {p, f, sizeof(f) / sizeof((f)[0]), o}

/* One load's state: the document being checked, the config being filled
 * and the problems found so far (config.c's list, sorted at the end). */
typedef struct cfg_ctx {
  const char *file;
  yaml_document_t *doc;
  lx_config_t *cfg;
  struct cfg_problem *probs;
  size_t n_probs, cap_probs;
  size_t cap_units, cap_cats, cap_overrides, cap_plugins, cap_years;
  int include_line; /* checking a per-year file named at this line; 0: the config */
  int file_entry;   /* 1 + the calendar.files entry being checked, or 0 */
  bool cats_broken; /* no usable category list: skip cross-checks on it */
  bool weekend_broken; /* calendar.weekend is bad: skip checks of workdays on it */
  bool oom;
} cfg_ctx_t;

/* ------------------------------------------------------------ yaml nodes */

static inline int node_line(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }
static inline const char *sval(const yaml_node_t *n)
{
  return (const char *)n->data.scalar.value;
}
static inline size_t slen(const yaml_node_t *n) { return n->data.scalar.length; }

static inline size_t seq_len(const yaml_node_t *n)
{
  return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
}

static inline yaml_node_t *seq_item(cfg_ctx_t *c, const yaml_node_t *n, size_t i)
{
  return yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
}

/* --------------------------------------------------------------- config.c */

/* Reports V if an earlier sibling in seen[0..n) has the same value. */
bool lx__cfg_sibling_dup(cfg_ctx_t *c, yaml_node_t *const *seen, size_t n, const yaml_node_t *v,
                         const char *ipath, const char *key, const char *what);
/* Records one problem at LINE of the file being checked (see config.c). */
void lx__cfg_err(cfg_ctx_t *c, int line, const char *path, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
/* Grows arr to hold n + 1 elements; NULL (and c->oom) on out of memory. */
void *lx__cfg_grow(cfg_ctx_t *c, void *arr, size_t *cap, size_t n, size_t size);
/* P resolved against the config file's directory; malloc'd, NULL on OOM. */
char *lx__cfg_resolve(cfg_ctx_t *c, const char *p);
/* Loads the first YAML document of fp into *doc; false after reporting. */
bool lx__cfg_parse_doc(cfg_ctx_t *c, FILE *fp, yaml_document_t *doc);
/* fopen for reading that refuses a directory; NULL with *err set. */
FILE *lx__cfg_open_regular(const char *file, int *err);

/* --------------------------------------------------------- config_values.c */

/* True for a plain empty scalar, "~" or a spelling of null. */
bool lx__cfg_is_null(const yaml_node_t *n);
/* True if A and B are scalars with the same bytes. */
bool lx__cfg_same_scalar(const yaml_node_t *a, const yaml_node_t *b);
/* What N is, for a message: "a list", "a mapping", "an empty value" or
 * "a string". */
const char *lx__cfg_kind_noun(const yaml_node_t *n);
/* A scalar quoted for a message, cut to fit buf (at least 16 bytes). */
const char *lx__cfg_show(const yaml_node_t *n, char *buf, size_t size);
/* Key paths into out (CFG_PATH bytes): "base.key" and "base[i]". */
void lx__cfg_path_key(char *out, const char *base, const char *key);
void lx__cfg_path_idx(char *out, const char *base, size_t i);
/* The earlier key of mapping MAP equal to PAIR's key, or NULL. */
yaml_node_t *lx__cfg_earlier_key(cfg_ctx_t *c, const yaml_node_t *map,
                                 const yaml_node_pair_t *pair);
/* Reports duplicate keys, aliases and deep nesting in the tree under
 * ROOT; false if the document must not be walked any further. */
bool lx__cfg_scan_tree(cfg_ctx_t *c, yaml_node_t *root);
/* Checks one value against its field, storing it in dest by offset; the
 * node if it is good, else NULL after reporting. */
yaml_node_t *lx__cfg_field_value(cfg_ctx_t *c, const cfg_field_t *f, yaml_node_t *v, int line,
                                 const char *path, void *dest);
/* Checks mapping NODE against SEC (see config_values.c); got[i] is the
 * node of each good, present field. False if NODE is not a mapping. */
bool lx__cfg_check_map(cfg_ctx_t *c, yaml_node_t *node, const char *path,
                       const cfg_section_t *sec, void *dest, yaml_node_t **got);
/* A size in buf as a message and the key reference show it: "64 MiB",
 * "1000 bytes". Returns buf. */
const char *lx__cfg_fmt_size(uint64_t v, char *buf, size_t size);
/* MIN minutes in buf as "HH:MM", or with SIGN as "+HH:MM" / "-HH:MM".
 * Returns buf. */
const char *lx__cfg_fmt_hhmm(int min, bool sign, char *buf, size_t size);

/* --------------------------------------------------- config_calendar.c */

/* The deadlines and calendar sections, in the order the key reference
 * lists them. */
extern const cfg_section_t lx__cfg_deadlines_sec, lx__cfg_normal_sec, lx__cfg_urgent_sec,
  lx__cfg_override_sec, lx__cfg_override_tiers_sec, lx__cfg_calendar_sec, lx__cfg_cal_year_sec;

/* deadlines: NODE is the section's mapping. Categories must be checked
 * first: overrides refer to them. */
void lx__cfg_check_deadlines(cfg_ctx_t *c, yaml_node_t *node);
/* calendar: NODE is the section's mapping; per-year files are read and
 * checked here too. */
void lx__cfg_check_calendar(cfg_ctx_t *c, yaml_node_t *node);

/* ---------------------------------------------------- config_plugins.c */

extern const cfg_section_t lx__cfg_plugin_sec;
/* plugins: SEQ is the list; keeps each entry's own keys for its plugin. */
void lx__cfg_walk_plugins(cfg_ctx_t *c, yaml_node_t *seq);
/* Frees cfg->plugins and everything each entry holds. */
void lx__cfg_free_plugins(lx_config_t *cfg);

#endif
