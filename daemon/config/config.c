/* SPDX-License-Identifier: MIT
 *
 * config.c: loads and checks the daemon's YAML configuration (config.h):
 * the file, the problem list, the API and every section but deadlines and
 * calendar.
 *
 * A broken config should cost the operator one edit, not one restart per
 * mistake, so the loader never stops at the first problem. It reads the file
 * with libyaml's document API (every node keeps its line), checks it against
 * the schema tables below and collects every problem as
 * "FILE:LINE: key.path: reason". Only a clean file yields a config.
 *
 * Design. Three passes over one yaml_document_t:
 *  1. lx__cfg_scan_tree() walks the whole tree once and reports duplicate
 *     keys, non-string keys, aliases and absurd nesting. Later passes skip
 *     a repeated key; aliases stop the load, because a few aliased lists
 *     can stand for billions of units.
 *  2. lx__cfg_check_map() checks one mapping against a table of fields
 *     (type, required, range), rejects unknown keys by listing the valid
 *     ones, writes scalar values by offset and hands back the nodes of
 *     nested sections, which small per-section walkers descend into.
 *  3. Checks that span keys (map_max against map_size, deadline overrides
 *     against the category list, exchanged workdays against the weekend)
 *     run after the sections they need and are reported at the line of the
 *     key that caused them.
 * Problems are sorted by line at the end, so they read in file order.
 * The same tables print the key reference (lx_config_print_schema).
 *
 * The checks that know no section (passes 1 and 2: YAML node helpers,
 * the structure scan, scalar values, mappings) are in config_values.c. The
 * two sections that decide when an appeal is due, deadlines and calendar
 * (with its per-year files), are checked in config_calendar.c.
 * config_internal.h is what the three files share: the schema types, the
 * context and the helpers, whose shared ones are named lx__cfg_*.
 */
#include "config.h"
#include "config_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <yaml.h>

/* ---------------------------------------------------------------- schema */

static const cfg_field_t top_fields[] = {
  {"listen", CT_MAP, false, 0, 0, NO_OFF, NULL, "the ZeroMQ endpoints the daemon binds"},
  {"store", CT_MAP, false, 0, 0, NO_OFF, NULL, "where and how big the LMDB store is"},
  {"units", CT_LIST, true, 1, INT32_MAX, NO_OFF, NULL,
   "the counties, each with its townships and their communities"},
  {"categories", CT_LIST, true, 1, INT32_MAX, NO_OFF, NULL, "the appeal categories"},
  {"deadlines", CT_MAP, false, 0, 0, NO_OFF, NULL, "working days allowed at each tier"},
  {"calendar", CT_MAP, false, 0, 0, NO_OFF, NULL,
   "the working-day calendar that deadlines are counted on"},
  {"plugins", CT_LIST, false, 0, INT32_MAX, NO_OFF, "[]", "the plugins to load, in order"},
  {"checkpoints", CT_MAP, false, 0, 0, NO_OFF, NULL, "signed checkpoint records (off if absent)"},
  {"security", CT_MAP, false, 0, 0, NO_OFF, NULL,
   "CURVE keys and the client registry (plain sockets on loopback if absent)"},
  {"web", CT_MAP, false, 0, 0, NO_OFF, NULL,
   "the web gateway's own settings (lianxin-web reads them; the daemon ignores them)"},
  {"log", CT_MAP, false, 0, 0, NO_OFF, NULL, "how the daemon logs on stderr"},
};
enum {
  TOP_LISTEN, TOP_STORE, TOP_UNITS, TOP_CATEGORIES, TOP_DEADLINES, TOP_CALENDAR, TOP_PLUGINS,
  TOP_CHECKPOINTS, TOP_SECURITY, TOP_WEB, TOP_LOG
};

static const cfg_field_t log_fields[] = {
  {"format", CT_NAME, false, 1, 8, offsetof(lx_log_conf_t, format), "text",
   "text (one line per message) or json (one JSON object per line); --log-format wins"},
  {"level", CT_NAME, false, 1, 8, offsetof(lx_log_conf_t, level), "info",
   "error, warn, info or debug; --log-level wins"},
};

static const cfg_field_t checkpoints_fields[] = {
  {"key", CT_STRING, true, 1, CFG_PATH_MAX, offsetof(lx_checkpoint_conf_t, key), NULL,
   "the daemon's Ed25519 key, a .sign.key file (lianxin keygen --sign); relative to the "
   "config file's directory"},
  {"every", CT_INT, false, 1, 100000000, offsetof(lx_checkpoint_conf_t, every), "10000",
   "a checkpoint after this many records"},
  {"interval", CT_INT, false, 1, 86400, offsetof(lx_checkpoint_conf_t, interval), "60",
   "and at least every this many seconds while records arrive (and at clean shutdown)"},
};

static const cfg_field_t security_fields[] = {
  {"server_key", CT_STRING, true, 1, CFG_PATH_MAX, offsetof(lx_security_conf_t, server_key),
   NULL, "the daemon's CURVE key pair, a .key file (lianxin keygen); relative to the config "
   "file's directory"},
  {"clients", CT_STRING, true, 1, CFG_PATH_MAX, offsetof(lx_security_conf_t, clients), NULL,
   "the client registry: a YAML list of {name, key, role, jurisdiction}; reloaded on SIGHUP"},
};

static const cfg_field_t listen_fields[] = {
  {"ingest", CT_ENDPOINT, false, 1, CFG_EP_MAX, offsetof(lx_config_t, ingest_ep),
   "tcp://127.0.0.1:7601", "ROUTER socket: events in, acks out"},
  {"alerts", CT_ENDPOINT, false, 1, CFG_EP_MAX, offsetof(lx_config_t, alerts_ep),
   "tcp://127.0.0.1:7602", "XPUB socket: alerts out, by topic"},
  {"query", CT_ENDPOINT, false, 1, CFG_EP_MAX, offsetof(lx_config_t, query_ep),
   "tcp://127.0.0.1:7603", "ROUTER socket: replay, appeal look-up, stats, head"},
};

static const cfg_field_t store_fields[] = {
  {"path", CT_STRING, false, 1, CFG_PATH_MAX, offsetof(lx_config_t, store_path), "data",
   "the LMDB directory; relative to the config file's directory"},
  {"map_size", CT_SIZE, false, (int64_t)MIB, (int64_t)TIB, offsetof(lx_config_t, map_size),
   "64MiB", "initial map size: bytes, or a number with KiB, MiB, GiB or TiB"},
  {"map_max", CT_SIZE, false, (int64_t)MIB, (int64_t)TIB, offsetof(lx_config_t, map_max),
   "16GiB", "the map may grow up to this; at least map_size"},
};
enum { STORE_PATH, STORE_MAP_SIZE, STORE_MAP_MAX };

/* The three tiers share code and name; a county lists townships and a
 * township lists communities, always in the third slot. */
#define UNIT_FIELDS(what, within)                                                          \
  {"code", CT_CODE, true, 1, LX_CODE_MAX, NO_OFF, NULL, "the " what "'s code, unique " within}, \
  {"name", CT_STRING, true, 1, CFG_NAME_MAX, NO_OFF, NULL, "the " what "'s name, UTF-8"}
static const cfg_field_t county_fields[] = {
  UNIT_FIELDS("county", "among counties"),
  {"townships", CT_LIST, true, 1, INT32_MAX, NO_OFF, NULL, "the county's townships (streets)"},
};
static const cfg_field_t township_fields[] = {
  UNIT_FIELDS("township", "in its county"),
  {"communities", CT_LIST, true, 1, INT32_MAX, NO_OFF, NULL,
   "the township's communities (villages)"},
};
static const cfg_field_t community_fields[] = {
  UNIT_FIELDS("community", "in its township"),
};
enum { UNIT_CODE, UNIT_NAME, UNIT_CHILDREN };

static const cfg_field_t category_fields[] = {
  {"code", CT_CODE, true, 1, LX_CODE_MAX, NO_OFF, NULL,
   "what travels on the wire; unique among categories"},
  {"name", CT_STRING, true, 1, CFG_NAME_MAX, NO_OFF, NULL, "what a person reads, UTF-8"},
};


static const cfg_section_t top_sec = SECTION("", top_fields, false);
static const cfg_section_t listen_sec = SECTION("listen", listen_fields, false);
static const cfg_section_t store_sec = SECTION("store", store_fields, false);
static const cfg_section_t unit_secs[] = {
  [LX_TIER_COUNTY] = SECTION("units[]", county_fields, false),
  [LX_TIER_TOWNSHIP] = SECTION("units[].townships[]", township_fields, false),
  [LX_TIER_COMMUNITY] = SECTION("units[].townships[].communities[]", community_fields, false),
};
static const cfg_section_t category_sec = SECTION("categories[]", category_fields, false);
static const cfg_section_t checkpoints_sec = SECTION("checkpoints", checkpoints_fields, false);
static const cfg_section_t security_sec = SECTION("security", security_fields, false);
static const cfg_section_t log_sec = SECTION("log", log_fields, false);

static const cfg_section_t *const all_secs[] = {
  &top_sec, &listen_sec, &store_sec, &unit_secs[LX_TIER_COUNTY],
  &unit_secs[LX_TIER_TOWNSHIP], &unit_secs[LX_TIER_COMMUNITY], &category_sec,
  &lx__cfg_deadlines_sec, &lx__cfg_normal_sec, &lx__cfg_urgent_sec, &lx__cfg_override_sec,
  &lx__cfg_override_tiers_sec, &lx__cfg_calendar_sec, &lx__cfg_cal_year_sec, &lx__cfg_plugin_sec,
  &checkpoints_sec, &security_sec, &log_sec,
};

/* ------------------------------------------------------------- problems */

typedef struct cfg_problem {
  int line;   /* in the config file */
  int entry;  /* 1 + the calendar.files entry it concerns, or 0 */
  int sub;    /* in a per-year file named at `line`; 0 for the config file */
  size_t seq; /* report order, so sorting by line is stable */
  char *text;
} cfg_problem_t;

static char *vformat(const char *fmt, va_list ap)
{
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  char *s = n < 0 ? NULL : malloc((size_t)n + 1);
  if (s)
    vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

static char *format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = vformat(fmt, ap);
  va_end(ap);
  return s;
}

/* Grows an array to hold n + 1 elements; returns it (maybe moved) or NULL,
 * leaving the old array in place, on out of memory. */
void *lx__cfg_grow(cfg_ctx_t *c, void *arr, size_t *cap, size_t n, size_t size)
{
  if (n < *cap)
    return arr;
  size_t ncap = *cap ? *cap * 2 : 8;
  void *p = realloc(arr, ncap * size);
  if (!p) {
    c->oom = true;
    return NULL;
  }
  *cap = ncap;
  return p;
}

/* Records one problem. line 0 leaves out the line, path NULL the key path
 * (used for "cannot open"); an empty path is the document itself. */
void lx__cfg_err(cfg_ctx_t *c, int line, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *reason = vformat(fmt, ap);
  va_end(ap);
  char *text = NULL, at[24] = "";
  if (line > 0)
    snprintf(at, sizeof at, ":%d", line);
  if (reason && path)
    text = format("%s%s: %s: %s\n", c->file, at, *path ? path : "(top)", reason);
  else if (reason)
    text = format("%s%s: %s\n", c->file, at, reason);
  free(reason);
  cfg_problem_t *p = text ? lx__cfg_grow(c, c->probs, &c->cap_probs, c->n_probs, sizeof *p) : NULL;
  if (!p) {
    free(text);
    c->oom = true;
    return;
  }
  c->probs = p;
  if (c->include_line)
    p[c->n_probs] = (cfg_problem_t){c->include_line, c->file_entry, line, c->n_probs, text};
  else
    p[c->n_probs] = (cfg_problem_t){line, c->file_entry, 0, c->n_probs, text};
  c->n_probs++;
}

static int by_line(const void *a, const void *b)
{
  const cfg_problem_t *x = a, *y = b;
  if (x->line != y->line)
    return x->line < y->line ? -1 : 1;
  if (x->entry != y->entry) /* several files named on one line */
    return x->entry < y->entry ? -1 : 1;
  if (x->sub != y->sub)
    return x->sub < y->sub ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Joins the problems, sorted by line, into one malloc'd string and frees
 * them. Returns NULL only if even that allocation fails. */
static char *take_problems(cfg_ctx_t *c)
{
  static const char oom[] = ": out of memory\n";
  qsort(c->probs, c->n_probs, sizeof *c->probs, by_line);
  size_t total = strlen(c->file) + sizeof oom;
  for (size_t i = 0; i < c->n_probs; i++)
    total += strlen(c->probs[i].text);
  char *s = malloc(total), *o = s;
  for (size_t i = 0; i < c->n_probs; i++) {
    if (s)
      o = stpcpy(o, c->probs[i].text);
    free(c->probs[i].text);
  }
  if (s && (c->oom || !c->n_probs))
    stpcpy(stpcpy(o, c->file), oom);
  free(c->probs);
  c->probs = NULL;
  c->n_probs = c->cap_probs = 0;
  return s;
}

/* ------------------------------------------------------------- sections */

char *lx__cfg_resolve(cfg_ctx_t *c, const char *p)
{
  const char *dir = c->cfg->dir;
  size_t dl = strlen(dir);
  char *s = p[0] == '/' ? strdup(p) : format("%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", p);
  if (!s)
    c->oom = true;
  return s;
}

/* Reports V if an earlier sibling in seen[0..n) has the same value. */
bool lx__cfg_sibling_dup(cfg_ctx_t *c, yaml_node_t *const *seen, size_t n, const yaml_node_t *v,
                         const char *ipath, const char *key, const char *what)
{
  char kpath[CFG_PATH], vb[64];
  for (size_t j = 0; j < n; j++) {
    if (!seen[j] || !lx__cfg_same_scalar(seen[j], v))
      continue;
    lx__cfg_path_key(kpath, ipath, key);
    lx__cfg_err(c, node_line(v), kpath, "duplicate %s %s; first at line %d", what,
                lx__cfg_show(v, vb, sizeof vb), node_line(seen[j]));
    return true;
  }
  return false;
}

static void check_store(cfg_ctx_t *c, yaml_node_t *node)
{
  yaml_node_t *got[CFG_MAX_FIELDS];
  lx_config_t *cfg = c->cfg;
  size_t before = c->n_probs;
  char a[32], b[32];
  if (!lx__cfg_check_map(c, node, "store", &store_sec, cfg, got) || c->n_probs != before)
    return; /* a bad size would make the comparison below noise */
  if (cfg->map_max >= cfg->map_size)
    return;
  if (got[STORE_MAP_MAX])
    lx__cfg_err(c, node_line(got[STORE_MAP_MAX]), "store.map_max",
                "%s is smaller than store.map_size (%s)",
                lx__cfg_fmt_size(cfg->map_max, a, sizeof a),
                lx__cfg_fmt_size(cfg->map_size, b, sizeof b));
  else
    lx__cfg_err(c, node_line(got[STORE_MAP_SIZE]), "store.map_size",
                "%s is larger than store.map_max (default %s)",
                lx__cfg_fmt_size(cfg->map_size, a, sizeof a),
                lx__cfg_fmt_size(cfg->map_max, b, sizeof b));
}

/* Appends a unit under PARENT (-1 for a county). Returns its index, or -2
 * when it cannot be stored (bad or repeated code, or a parent that was
 * not stored), so its children are still checked but not stored. */
static int unit_add(cfg_ctx_t *c, yaml_node_t **got, int tier, int parent)
{
  lx_config_t *cfg = c->cfg;
  if (!got[UNIT_CODE] || parent == -2)
    return -2;
  lx_unit_t *u = lx__cfg_grow(c, cfg->units, &c->cap_units, cfg->n_units, sizeof *u);
  if (!u)
    return -2;
  cfg->units = u;
  u += cfg->n_units;
  memset(u, 0, sizeof *u);
  /* Codes are at most LX_CODE_MAX and there are three tiers, so it fits. */
  size_t pl = parent < 0 ? 0 : strlen(cfg->units[parent].path), cl = slen(got[UNIT_CODE]);
  assert(pl + 1 + cl <= LX_PATH_MAX);
  if (parent >= 0) {
    memcpy(u->path, cfg->units[parent].path, pl);
    u->path[pl++] = '.';
  }
  memcpy(u->path + pl, sval(got[UNIT_CODE]), cl + 1);
  u->name = got[UNIT_NAME] ? strdup(sval(got[UNIT_NAME])) : NULL;
  c->oom = c->oom || (got[UNIT_NAME] && !u->name);
  u->tier = tier;
  u->parent = parent;
  return (int)cfg->n_units++;
}

/* Walks a list of units of TIER (counties first), storing them parents
 * first: each unit, then its children, depth first. */
static void walk_units(cfg_ctx_t *c, yaml_node_t *seq, const char *path, int tier, int parent)
{
  size_t n = seq_len(seq);
  yaml_node_t **codes = calloc(n ? n : 1, sizeof *codes), *got[CFG_MAX_FIELDS];
  char ipath[CFG_PATH], cpath[CFG_PATH];
  if (!codes) {
    c->oom = true;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    lx__cfg_path_idx(ipath, path, i);
    if (!lx__cfg_check_map(c, seq_item(c, seq, i), ipath, &unit_secs[tier], NULL, got))
      continue;
    if (got[UNIT_CODE] && lx__cfg_sibling_dup(c, codes, i, got[UNIT_CODE], ipath, "code", "code"))
      got[UNIT_CODE] = NULL;
    codes[i] = got[UNIT_CODE];
    int self = unit_add(c, got, tier, parent);
    if (tier == LX_TIER_COMMUNITY || !got[UNIT_CHILDREN])
      continue;
    lx__cfg_path_key(cpath, ipath, unit_secs[tier].fields[UNIT_CHILDREN].key);
    walk_units(c, got[UNIT_CHILDREN], cpath, tier - 1, self);
  }
  free(codes);
}

static void category_add(cfg_ctx_t *c, yaml_node_t *code, yaml_node_t *name)
{
  lx_config_t *cfg = c->cfg;
  lx_category_t *k = lx__cfg_grow(c, cfg->categories, &c->cap_cats, cfg->n_categories, sizeof *k);
  if (!k)
    return;
  cfg->categories = k;
  k += cfg->n_categories++;
  k->code = strdup(sval(code));
  k->name = name ? strdup(sval(name)) : NULL;
  c->oom = c->oom || !k->code || (name && !k->name);
}

static void walk_categories(cfg_ctx_t *c, yaml_node_t *seq)
{
  size_t n = seq_len(seq);
  yaml_node_t **codes = calloc(n ? n : 1, sizeof *codes), *got[CFG_MAX_FIELDS];
  char ipath[CFG_PATH];
  if (!codes) {
    c->oom = true;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    lx__cfg_path_idx(ipath, "categories", i);
    if (!lx__cfg_check_map(c, seq_item(c, seq, i), ipath, &category_sec, NULL, got) || !got[0])
      continue;
    if (lx__cfg_sibling_dup(c, codes, i, got[0], ipath, "code", "category code"))
      continue;
    codes[i] = got[0];
    category_add(c, got[0], got[1]);
  }
  free(codes);
}

/* A section of scalars whose path values resolve against the config
 * file's directory (checkpoints, security). The files themselves are read
 * when the daemon starts, which reports problems with them. */
static void check_paths_section(cfg_ctx_t *c, yaml_node_t *node, const char *name,
                                const cfg_section_t *sec, void *dest, int *line, char ***paths)
{
  yaml_node_t *got[CFG_MAX_FIELDS];
  *line = node_line(node);
  lx__cfg_check_map(c, node, name, sec, dest, got);
  for (char ***p = paths; *p; p++) {
    if (!**p)
      continue;
    char *full = lx__cfg_resolve(c, **p);
    free(**p);
    **p = full;
  }
}

static void check_log(cfg_ctx_t *c, yaml_node_t *node)
{
  yaml_node_t *got[CFG_MAX_FIELDS];
  lx_log_conf_t *lc = &c->cfg->log;
  if (!lx__cfg_check_map(c, node, "log", &log_sec, lc, got))
    return;
  if (got[0] && strcmp(lc->format, "text") && strcmp(lc->format, "json"))
    lx__cfg_err(c, node_line(got[0]), "log.format", "expected text or json");
  if (got[1] && strcmp(lc->level, "error") && strcmp(lc->level, "warn") &&
      strcmp(lc->level, "info") && strcmp(lc->level, "debug"))
    lx__cfg_err(c, node_line(got[1]), "log.level", "expected error, warn, info or debug");
}

/* The schema walk. Categories go before deadlines, whose overrides refer
 * to them, whatever the order in the file. */
static void check_doc(cfg_ctx_t *c)
{
  yaml_node_t *root = yaml_document_get_root_node(c->doc), *got[CFG_MAX_FIELDS];
  if (!root) {
    lx__cfg_err(c, 1, "", "the file is empty; expected a mapping with units and categories");
    return;
  }
  if (!lx__cfg_scan_tree(c, root) || !lx__cfg_check_map(c, root, "", &top_sec, NULL, got))
    return;
  if (got[TOP_LISTEN]) {
    yaml_node_t *unused[CFG_MAX_FIELDS];
    lx__cfg_check_map(c, got[TOP_LISTEN], "listen", &listen_sec, c->cfg, unused);
  }
  if (got[TOP_STORE])
    check_store(c, got[TOP_STORE]);
  if (got[TOP_CATEGORIES])
    walk_categories(c, got[TOP_CATEGORIES]);
  c->cats_broken = !got[TOP_CATEGORIES];
  if (got[TOP_UNITS])
    walk_units(c, got[TOP_UNITS], "units", LX_TIER_COUNTY, -1);
  if (got[TOP_DEADLINES])
    lx__cfg_check_deadlines(c, got[TOP_DEADLINES]);
  if (got[TOP_CALENDAR])
    lx__cfg_check_calendar(c, got[TOP_CALENDAR]);
  if (got[TOP_PLUGINS])
    lx__cfg_walk_plugins(c, got[TOP_PLUGINS]);
  if (got[TOP_CHECKPOINTS])
    check_paths_section(c, got[TOP_CHECKPOINTS], "checkpoints", &checkpoints_sec,
                        &c->cfg->checkpoints, &c->cfg->checkpoints.line,
                        (char **[]){&c->cfg->checkpoints.key, NULL});
  if (got[TOP_SECURITY])
    check_paths_section(c, got[TOP_SECURITY], "security", &security_sec, &c->cfg->security,
                        &c->cfg->security.line,
                        (char **[]){&c->cfg->security.server_key, &c->cfg->security.clients, NULL});
  if (got[TOP_LOG])
    check_log(c, got[TOP_LOG]);
  char *store = lx__cfg_resolve(c, c->cfg->store_path);
  free(c->cfg->store_path);
  c->cfg->store_path = store;
}

/* ---------------------------------------------------------- file, parser */

static int offset_line(FILE *fp, size_t offset)
{
  int line = 1, ch;
  rewind(fp);
  for (size_t i = 0; i < offset && (ch = getc(fp)) != EOF; i++)
    line += ch == '\n';
  return line;
}

static void syntax_error(cfg_ctx_t *c, const yaml_parser_t *p, FILE *fp)
{
  const char *problem = p->problem ? p->problem : "unknown error";
  if (p->error == YAML_MEMORY_ERROR)
    c->oom = true;
  else if (p->error == YAML_READER_ERROR)
    lx__cfg_err(c, offset_line(fp, p->problem_offset), "syntax error", "%s at byte %zu", problem,
                p->problem_offset);
  else if (p->context)
    lx__cfg_err(c, (int)p->problem_mark.line + 1, "syntax error", "%s (%s at line %d)", problem,
                p->context, (int)p->context_mark.line + 1);
  else
    lx__cfg_err(c, (int)p->problem_mark.line + 1, "syntax error", "%s", problem);
}

/* Loads the first document into *doc. A second document is an error (the
 * daemon would silently ignore it), but the first is still checked. */
bool lx__cfg_parse_doc(cfg_ctx_t *c, FILE *fp, yaml_document_t *doc)
{
  yaml_parser_t p;
  yaml_document_t more;
  if (!yaml_parser_initialize(&p)) {
    c->oom = true;
    return false;
  }
  yaml_parser_set_input_file(&p, fp);
  bool ok = yaml_parser_load(&p, doc);
  if (!ok)
    syntax_error(c, &p, fp);
  else if (!yaml_parser_load(&p, &more))
    syntax_error(c, &p, fp);
  else {
    yaml_node_t *root = yaml_document_get_root_node(&more);
    if (root)
      lx__cfg_err(c, node_line(root), "", "only one YAML document is allowed per file");
    yaml_document_delete(&more);
  }
  yaml_parser_delete(&p);
  return ok;
}

static char *dir_of(const char *file)
{
  const char *slash = strrchr(file, '/');
  if (!slash)
    return strdup(".");
  return strndup(file, slash == file ? 1 : (size_t)(slash - file));
}

static bool set_defaults(lx_config_t *cfg, const char *file)
{
  cfg->file = strdup(file);
  cfg->dir = dir_of(file);
  cfg->ingest_ep = strdup("tcp://127.0.0.1:7601");
  cfg->alerts_ep = strdup("tcp://127.0.0.1:7602");
  cfg->query_ep = strdup("tcp://127.0.0.1:7603");
  cfg->store_path = strdup("data");
  cfg->map_size = 64 * MIB;
  cfg->map_max = 16 * GIB;
  cfg->deadlines.normal = (lx_tier_days_t){{0, 3, 5, 10}};
  cfg->deadlines.urgent = (lx_tier_days_t){{0, 1, 2, 3}};
  cfg->calendar.utc_offset_min = 8 * 60;
  cfg->calendar.workday_end_min = 18 * 60;
  cfg->calendar.weekend = LX_CAL_WEEKDAY_BIT(6) | LX_CAL_WEEKDAY_BIT(7);
  cfg->checkpoints.every = 10000;
  cfg->checkpoints.interval = 60;
  return cfg->file && cfg->dir && cfg->ingest_ep && cfg->alerts_ep && cfg->query_ep &&
         cfg->store_path;
}

/* Opens a file for reading; a directory counts as unopenable (EISDIR),
 * since fopen would succeed on it and the parser would then fail oddly. */
FILE *lx__cfg_open_regular(const char *file, int *err)
{
  struct stat st;
  FILE *fp = fopen(file, "rb");
  *err = errno;
  if (fp && fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(fp);
    fp = NULL;
    *err = EISDIR;
  }
  return fp;
}

static FILE *open_file(cfg_ctx_t *c, const char *file)
{
  int err = 0;
  FILE *fp = lx__cfg_open_regular(file, &err);
  if (!fp)
    lx__cfg_err(c, 0, NULL, "cannot open: %s", strerror(err));
  return fp;
}

/* ----------------------------------------------------------------- API */

static int finish_load(cfg_ctx_t *c, lx_config_t *cfg, lx_config_t *out, char **errors);

/* Loads and checks BYTES (kept by the config, which takes them) as FILE. */
static int load_bytes(const char *file, uint8_t *bytes, size_t n, lx_config_t *out,
                      char **errors)
{
  lx_config_t cfg = {0};
  cfg_ctx_t c = {.file = file, .cfg = &cfg};
  yaml_document_t doc;
  cfg.bytes = bytes;
  cfg.n_bytes = n;
  crypto_generichash(cfg.hash, sizeof cfg.hash, bytes, n, NULL, 0);
  /* fmemopen refuses a zero-length buffer: an empty file reads as "\n". */
  FILE *fp = n ? fmemopen(bytes, n, "rb") : fmemopen((void *)"\n", 1, "rb");
  if (!fp) {
    c.oom = true;
  } else {
    if (!set_defaults(&cfg, file))
      c.oom = true;
    else if (lx__cfg_parse_doc(&c, fp, &doc)) {
      c.doc = &doc;
      check_doc(&c);
      yaml_document_delete(&doc);
    }
    fclose(fp);
  }
  return finish_load(&c, &cfg, out, errors);
}

static int finish_load(cfg_ctx_t *c, lx_config_t *cfg, lx_config_t *out, char **errors)
{
  if (!c->n_probs && !c->oom) {
    *out = *cfg;
    return 0;
  }
  lx_config_free(cfg);
  char *text = take_problems(c);
  if (errors)
    *errors = text;
  else
    free(text);
  return -1;
}

/* Reads the whole file: the hash is of exactly the bytes that were parsed. */
static uint8_t *read_all(cfg_ctx_t *c, const char *file, size_t *n)
{
  FILE *fp = open_file(c, file);
  uint8_t *buf = NULL;
  size_t cap = 0;
  *n = 0;
  if (!fp)
    return NULL;
  for (;;) {
    if (*n == cap) {
      uint8_t *p = cap >= LX_CONFIG_BYTES_MAX ? NULL : realloc(buf, cap ? cap * 2 : 4096);
      if (!p) {
        lx__cfg_err(c, 0, NULL, cap >= LX_CONFIG_BYTES_MAX ? "larger than %u bytes"
                    : "out of memory (%u)", LX_CONFIG_BYTES_MAX);
        free(buf);
        fclose(fp);
        return NULL;
      }
      buf = p;
      cap = cap ? cap * 2 : 4096;
    }
    size_t got = fread(buf + *n, 1, cap - *n, fp);
    *n += got;
    if (got == 0)
      break;
  }
  if (ferror(fp)) {
    lx__cfg_err(c, 0, NULL, "cannot read: %s", strerror(errno));
    free(buf);
    buf = NULL;
  }
  fclose(fp);
  return buf;
}

int lx_config_load(const char *file, lx_config_t *out, char **errors)
{
  lx_config_t cfg = {0};
  cfg_ctx_t c = {.file = file, .cfg = &cfg};
  size_t n;
  assert(file && out);
  memset(out, 0, sizeof *out);
  if (errors)
    *errors = NULL;
  uint8_t *bytes = read_all(&c, file, &n);
  if (!bytes)
    return finish_load(&c, &cfg, out, errors);
  return load_bytes(file, bytes, n, out, errors);
}

int lx_config_load_bytes(const char *file, const uint8_t *bytes, size_t n, lx_config_t *out,
                         char **errors)
{
  uint8_t *copy = malloc(n ? n : 1);
  memset(out, 0, sizeof *out);
  if (errors)
    *errors = NULL;
  if (!copy)
    return -1;
  memcpy(copy, bytes, n);
  return load_bytes(file, copy, n, out, errors);
}

void lx_config_free(lx_config_t *cfg)
{
  if (!cfg)
    return;
  free(cfg->file);
  free(cfg->dir);
  free(cfg->bytes);
  free(cfg->ingest_ep);
  free(cfg->alerts_ep);
  free(cfg->query_ep);
  free(cfg->store_path);
  free(cfg->checkpoints.key);
  free(cfg->security.server_key);
  free(cfg->security.clients);
  free(cfg->log.format);
  free(cfg->log.level);
  for (size_t i = 0; i < cfg->n_units; i++)
    free(cfg->units[i].name);
  free(cfg->units);
  for (size_t i = 0; i < cfg->n_categories; i++) {
    free(cfg->categories[i].code);
    free(cfg->categories[i].name);
  }
  free(cfg->categories);
  for (size_t i = 0; i < cfg->deadlines.n_overrides; i++)
    free(cfg->deadlines.overrides[i].category);
  free(cfg->deadlines.overrides);
  lx__cfg_free_plugins(cfg);
  for (size_t i = 0; i < cfg->calendar.n_years; i++)
    free(cfg->calendar.years[i].file);
  free(cfg->calendar.years);
  memset(cfg, 0, sizeof *cfg);
}

int lx_config_find_unit(const lx_config_t *cfg, const char *path, size_t len)
{
  for (size_t i = 0; i < cfg->n_units; i++) {
    const char *p = cfg->units[i].path;
    if (strlen(p) == len && !memcmp(p, path, len))
      return (int)i;
  }
  return -1;
}

const char *lx_config_county(const lx_config_t *cfg)
{
  for (size_t i = 0; i < cfg->n_units; i++)
    if (cfg->units[i].tier == LX_TIER_COUNTY)
      return cfg->units[i].path;
  return "";
}

int lx_config_find_category(const lx_config_t *cfg, const char *code, size_t len)
{
  for (size_t i = 0; i < cfg->n_categories; i++) {
    const char *k = cfg->categories[i].code;
    if (strlen(k) == len && !memcmp(k, code, len))
      return (int)i;
  }
  return -1;
}

static const char *const tier_names[] = {
  [LX_TIER_COMMUNITY] = "community", [LX_TIER_TOWNSHIP] = "township", [LX_TIER_COUNTY] = "county",
};

const char *lx_tier_name(int tier)
{
  return tier >= LX_TIER_COMMUNITY && tier <= LX_TIER_COUNTY ? tier_names[tier] : "?";
}

int lx_tier_parse(const char *s, size_t len)
{
  for (int t = LX_TIER_COMMUNITY; t <= LX_TIER_COUNTY; t++)
    if (strlen(tier_names[t]) == len && !memcmp(tier_names[t], s, len))
      return t;
  return 0;
}

static void print_range(FILE *out, const cfg_field_t *f)
{
  char lo[32], hi[32];
  switch (f->type) {
  case CT_STRING: case CT_CODE: case CT_NAME: case CT_ENDPOINT:
    fprintf(out, "%lld..%lld bytes", (long long)f->min, (long long)f->max);
    break;
  case CT_INT:
    fprintf(out, "%lld..%lld", (long long)f->min, (long long)f->max);
    break;
  case CT_OFFSET: case CT_TIME:
    fprintf(out, "%s..%s", lx__cfg_fmt_hhmm((int)f->min, f->type == CT_OFFSET, lo, sizeof lo),
            lx__cfg_fmt_hhmm((int)f->max, f->type == CT_OFFSET, hi, sizeof hi));
    break;
  case CT_SIZE:
    fprintf(out, "%s..%s", lx__cfg_fmt_size((uint64_t)f->min, lo, sizeof lo),
            lx__cfg_fmt_size((uint64_t)f->max, hi, sizeof hi));
    break;
  case CT_LIST:
    fprintf(out, "%s", f->min ? "non-empty" : "may be empty");
    break;
  case CT_MAP:
    fprintf(out, "-");
    break;
  }
}

void lx_config_print_schema(FILE *out)
{
  static const char *const tname[] = {
    [CT_STRING] = "string", [CT_CODE] = "code", [CT_NAME] = "name", [CT_ENDPOINT] = "endpoint",
    [CT_INT] = "integer", [CT_SIZE] = "size", [CT_OFFSET] = "utc-offset", [CT_TIME] = "time",
    [CT_MAP] = "mapping", [CT_LIST] = "list",
  };
  char key[CFG_PATH];
  for (size_t s = 0; s < sizeof all_secs / sizeof all_secs[0]; s++) {
    const cfg_section_t *sec = all_secs[s];
    for (size_t i = 0; i < sec->n; i++) {
      const cfg_field_t *f = &sec->fields[i];
      lx__cfg_path_key(key, sec->path, f->key);
      fprintf(out, "%s (%s, %s%s; ", key, tname[f->type],
              f->required ? "required" : f->def ? "default " : "optional",
              f->required || !f->def ? "" : f->def);
      print_range(out, f);
      fprintf(out, ")\n    %s\n", f->desc);
    }
    if (sec->open)
      fprintf(out, "%s.* (any)\n    other keys belong to the plugin\n", sec->path);
  }
}
