/* SPDX-License-Identifier: MIT
 *
 * config_values.c: checks what a config document holds against the schema
 * tables (config_internal.h): each value against its field, each mapping
 * against its section, and the shape of the whole tree.
 *
 * These are the loader's checks that know nothing of any one section, so
 * config.c and config_calendar.c share them: the YAML node helpers (null,
 * quoting a value for a message, key paths, repeated keys), the structure
 * scan (repeated and non-string keys, aliases, deep nesting), the scalar
 * checks (integers, sizes, UTC offsets and times of day, endpoints, codes,
 * text) and lx__cfg_check_map(), which every section walker starts from.
 * Every problem goes to config.c's problem list through lx__cfg_err().
 */
#include "config.h"
#include "config_internal.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ------------------------------------------------------------ yaml nodes */

bool lx__cfg_is_null(const yaml_node_t *n)
{
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  const char *v = sval(n);
  return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
         !strcmp(v, "NULL");
}

bool lx__cfg_same_scalar(const yaml_node_t *a, const yaml_node_t *b)
{
  return a->type == YAML_SCALAR_NODE && b->type == YAML_SCALAR_NODE && slen(a) == slen(b) &&
         !memcmp(sval(a), sval(b), slen(a));
}

const char *lx__cfg_kind_noun(const yaml_node_t *n)
{
  if (n->type == YAML_SEQUENCE_NODE)
    return "a list";
  if (n->type == YAML_MAPPING_NODE)
    return "a mapping";
  return lx__cfg_is_null(n) ? "an empty value" : "a string";
}

static const char *type_noun(enum cfg_type t)
{
  static const char *const noun[] = {
    [CT_STRING] = "a string", [CT_CODE] = "a code", [CT_NAME] = "a name",
    [CT_ENDPOINT] = "an endpoint", [CT_INT] = "an integer", [CT_SIZE] = "a size",
    [CT_OFFSET] = "a UTC offset", [CT_TIME] = "a time of day",
    [CT_MAP] = "a mapping", [CT_LIST] = "a list",
  };
  return noun[t];
}

/* Copies a scalar, quoted, into buf for a message: control bytes escaped,
 * long values cut at a character boundary so a hostile value cannot flood
 * the log. buf must hold at least 16 bytes. */
const char *lx__cfg_show(const yaml_node_t *n, char *buf, size_t size)
{
  const unsigned char *s = n->data.scalar.value;
  size_t len = slen(n), o = 0, i = 0;
  buf[o++] = '"';
  while (i < len) {
    unsigned char ch = s[i];
    size_t w = ch < 0x80 ? 1 : ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : 2;
    bool ctl = ch < 0x20 || ch == 0x7f;
    size_t need = ctl ? 4 : w;
    if (w > len - i)
      w = len - i;
    if (o + need + 5 > size) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    if (ctl)
      o += (size_t)snprintf(buf + o, 5, "\\x%02x", ch);
    else
      memcpy(buf + o, s + i, w), o += w;
    i += ctl ? 1 : w;
  }
  buf[o++] = '"';
  buf[o] = '\0';
  return buf;
}

/* key paths: "units[0].townships[1].code"; control bytes in keys become '?' */
void lx__cfg_path_key(char *out, const char *base, const char *key)
{
  size_t o = (size_t)snprintf(out, CFG_PATH, "%s%s", base, *base ? "." : "");
  for (; *key && o + 1 < CFG_PATH; key++)
    out[o++] = (unsigned char)*key < 0x20 ? '?' : *key;
  out[o < CFG_PATH ? o : CFG_PATH - 1] = '\0';
}

void lx__cfg_path_idx(char *out, const char *base, size_t i)
{
  snprintf(out, CFG_PATH, "%s[%zu]", base, i);
}

/* Returns the earlier key of this mapping equal to PAIR's key, or NULL. */
yaml_node_t *lx__cfg_earlier_key(cfg_ctx_t *c, const yaml_node_t *map, const yaml_node_pair_t *pair)
{
  yaml_node_t *k = yaml_document_get_node(c->doc, pair->key);
  for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
    yaml_node_t *e = yaml_document_get_node(c->doc, p->key);
    if (lx__cfg_same_scalar(e, k))
      return e;
  }
  return NULL;
}

/* ------------------------------------------------------ structure scan */

typedef struct cfg_scan {
  unsigned char *seen; /* per node: reached once already */
  bool fatal;
} cfg_scan_t;

static void scan_node(cfg_ctx_t *c, cfg_scan_t *s, yaml_node_t *n, int line, const char *path,
                      int depth);

static void scan_mapping(cfg_ctx_t *c, cfg_scan_t *s, yaml_node_t *n, const char *path,
                         int depth)
{
  char kpath[CFG_PATH];
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
    yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
    if (k->type != YAML_SCALAR_NODE) {
      lx__cfg_err(c, node_line(k), path, "a key must be a string, not %s", lx__cfg_kind_noun(k));
      s->fatal = true;
      continue;
    }
    lx__cfg_path_key(kpath, path, sval(k));
    yaml_node_t *first = lx__cfg_earlier_key(c, n, p);
    if (first)
      lx__cfg_err(c, node_line(k), kpath, "duplicate key; first at line %d", node_line(first));
    scan_node(c, s, v, node_line(k), kpath, depth + 1);
  }
}

/* Reports what no schema table can: repeated keys, keys that are not
 * strings, shared (aliased) nodes and nesting deep enough to hurt. */
static void scan_node(cfg_ctx_t *c, cfg_scan_t *s, yaml_node_t *n, int line, const char *path,
                      int depth)
{
  size_t idx = (size_t)(n - c->doc->nodes.start);
  if (s->seen[idx]) {
    lx__cfg_err(c, line, path, "YAML aliases are not supported; write the value out");
    s->fatal = true;
    return;
  }
  s->seen[idx] = 1;
  if (depth > CFG_MAX_DEPTH) {
    lx__cfg_err(c, line, path, "nested deeper than %d levels", CFG_MAX_DEPTH);
    s->fatal = true;
    return;
  }
  if (n->type == YAML_MAPPING_NODE)
    scan_mapping(c, s, n, path, depth);
  if (n->type != YAML_SEQUENCE_NODE)
    return;
  char ipath[CFG_PATH];
  for (size_t i = 0; i < seq_len(n) && !s->fatal; i++) {
    yaml_node_t *item = seq_item(c, n, i);
    lx__cfg_path_idx(ipath, path, i);
    scan_node(c, s, item, node_line(item), ipath, depth + 1);
  }
}

/* Returns false if the document must not be walked any further. */
bool lx__cfg_scan_tree(cfg_ctx_t *c, yaml_node_t *root)
{
  size_t n = (size_t)(c->doc->nodes.top - c->doc->nodes.start);
  cfg_scan_t s = {calloc(n ? n : 1, 1), false};
  if (!s.seen) {
    c->oom = true;
    return false;
  }
  scan_node(c, &s, root, node_line(root), "", 0);
  free(s.seen);
  return !s.fatal;
}

/* ----------------------------------------------------------- scalar checks */

static int parse_int(const char *s, int64_t *out)
{
  const char *p = s + (*s == '-' || *s == '+');
  if (!*p)
    return -1;
  for (const char *q = p; *q; q++)
    if (*q < '0' || *q > '9')
      return -1;
  errno = 0;
  long long v = strtoll(s, NULL, 10);
  if (errno == ERANGE)
    return -2;
  *out = v;
  return 0;
}

/* "4096", "64MiB" or "64 MiB". Returns 0, -1 for bad syntax or -2 when the
 * value does not fit 64 bits. Decimal KB/MB are refused on purpose: a map
 * size of "64MB" is ambiguous, and ambiguity in a size is a later outage. */
static int parse_size(const char *s, uint64_t *out)
{
  static const struct { const char *sfx; uint64_t mult; } sfx[] = {
    {"", 1}, {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB}, {"TiB", TIB},
  };
  uint64_t v = 0;
  bool big = false;
  if (*s < '0' || *s > '9')
    return -1;
  for (; *s >= '0' && *s <= '9'; s++) {
    unsigned d = (unsigned)(*s - '0');
    big = big || v > (UINT64_MAX - d) / 10;
    v = v * 10 + d;
  }
  bool space = *s == ' ';
  s += space;
  for (size_t i = space ? 1 : 0; i < sizeof sfx / sizeof sfx[0]; i++) {
    if (strcmp(s, sfx[i].sfx))
      continue;
    if (big || v > UINT64_MAX / sfx[i].mult)
      return -2;
    *out = v * sfx[i].mult;
    return 0;
  }
  return -1;
}

const char *lx__cfg_fmt_size(uint64_t v, char *buf, size_t size)
{
  static const struct { const char *sfx; uint64_t mult; } u[] = {
    {"TiB", TIB}, {"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB},
  };
  for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
    if (v && v % u[i].mult == 0) {
      snprintf(buf, size, "%llu %s", (unsigned long long)(v / u[i].mult), u[i].sfx);
      return buf;
    }
  snprintf(buf, size, "%llu bytes", (unsigned long long)v);
  return buf;
}

/* Returns the offset of the first byte outside [a-z0-9-] (plus '_' for
 * names), or len if there is none. */
static size_t code_bad(const char *s, size_t len, bool underscore)
{
  for (size_t i = 0; i < len; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
          (underscore && ch == '_')))
      return i;
  }
  return len;
}

static bool endpoint_ok(const char *s, size_t len)
{
  const char *sep = strstr(s, "://");
  return len >= 1 && len <= CFG_EP_MAX && sep && sep > s && sep[3];
}

static bool check_text(cfg_ctx_t *c, const cfg_field_t *f, const yaml_node_t *v, int line,
                       const char *path, void *dest)
{
  char vb[64];
  const char *s = sval(v);
  size_t len = slen(v), bad;
  if (f->type == CT_ENDPOINT && !endpoint_ok(s, len)) {
    lx__cfg_err(c, line, path,
                "%s is not a ZeroMQ endpoint: expected transport://address, at most %d bytes",
                lx__cfg_show(v, vb, sizeof vb), CFG_EP_MAX);
    return false;
  }
  if (len == 0 && f->min > 0) {
    lx__cfg_err(c, line, path, "must not be empty");
    return false;
  }
  if ((int64_t)len > f->max) {
    lx__cfg_err(c, line, path, "%s is too long: %zu bytes, at most %lld",
                lx__cfg_show(v, vb, sizeof vb), len, (long long)f->max);
    return false;
  }
  if ((f->type == CT_CODE || f->type == CT_NAME) &&
      (bad = code_bad(s, len, f->type == CT_NAME)) < len) {
    lx__cfg_err(c, line, path, "%s has a character other than a-z, 0-9%s and - at byte %zu",
                lx__cfg_show(v, vb, sizeof vb), f->type == CT_NAME ? ", _" : "", bad);
    return false;
  }
  if (f->off != NO_OFF) {
    char **slot = (char **)((char *)dest + f->off), *copy = strdup(s);
    if (!copy)
      c->oom = true;
    free(*slot);
    *slot = copy;
  }
  return true;
}

static bool check_int(cfg_ctx_t *c, const cfg_field_t *f, const yaml_node_t *v, int line,
                      const char *path, void *dest)
{
  char vb[64];
  int64_t x = 0;
  int r = parse_int(sval(v), &x);
  if (r == -1) {
    lx__cfg_err(c, line, path, "expected an integer, got %s", lx__cfg_show(v, vb, sizeof vb));
    return false;
  }
  if (r == -2 || x < f->min || x > f->max) {
    /* only digits by now, but maybe thousands of them */
    lx__cfg_err(c, line, path, "%.40s%s is out of range %lld..%lld", sval(v),
                slen(v) > 40 ? "..." : "", (long long)f->min, (long long)f->max);
    return false;
  }
  if (f->off != NO_OFF)
    *(int *)((char *)dest + f->off) = (int)x;
  return true;
}

static bool check_size(cfg_ctx_t *c, const cfg_field_t *f, const yaml_node_t *v, int line,
                       const char *path, void *dest)
{
  char vb[64], lo[32], hi[32];
  uint64_t x = 0;
  int r = parse_size(sval(v), &x);
  if (r == -1) {
    lx__cfg_err(c, line, path,
                "bad size %s: write a number of bytes, optionally followed by KiB, MiB, GiB or TiB",
                lx__cfg_show(v, vb, sizeof vb));
    return false;
  }
  if (r == -2 || x < (uint64_t)f->min || x > (uint64_t)f->max) {
    lx__cfg_err(c, line, path, "%s is out of range %s..%s", lx__cfg_show(v, vb, sizeof vb),
                lx__cfg_fmt_size((uint64_t)f->min, lo, sizeof lo),
                lx__cfg_fmt_size((uint64_t)f->max, hi, sizeof hi));
    return false;
  }
  if (f->off != NO_OFF)
    *(uint64_t *)((char *)dest + f->off) = x;
  return true;
}

/* "HH:MM", or with sign "+HH:MM" / "-HH:MM", into minutes. Minutes past
 * 59 are malformed; hours are left to the range check. */
static bool parse_hhmm(const char *s, bool sign, int *out)
{
  bool neg = false;
  if (sign && *s != '+' && *s != '-')
    return false;
  if (sign)
    neg = *s++ == '-';
  if (strlen(s) != 5 || s[2] != ':')
    return false;
  for (int i = 0; i < 5; i++)
    if (i != 2 && (s[i] < '0' || s[i] > '9'))
      return false;
  int h = (s[0] - '0') * 10 + (s[1] - '0'), m = (s[3] - '0') * 10 + (s[4] - '0');
  if (m > 59)
    return false;
  *out = neg ? -(h * 60 + m) : h * 60 + m;
  return true;
}

const char *lx__cfg_fmt_hhmm(int min, bool sign, char *buf, size_t size)
{
  int a = min < 0 ? -min : min;
  snprintf(buf, size, "%s%02d:%02d", !sign ? "" : min < 0 ? "-" : "+", a / 60, a % 60);
  return buf;
}

/* CT_OFFSET and CT_TIME: written as clock times, checked and stored as
 * minutes, so the range in the table reads like the values. */
static bool check_clock(cfg_ctx_t *c, const cfg_field_t *f, const yaml_node_t *v, int line,
                        const char *path, void *dest)
{
  char vb[64], lo[16], hi[16];
  bool sign = f->type == CT_OFFSET;
  int x = 0;
  if (!parse_hhmm(sval(v), sign, &x)) {
    lx__cfg_err(c, line, path, "expected %s such as \"%s\", got %s", type_noun(f->type),
                sign ? "+08:00" : "18:00", lx__cfg_show(v, vb, sizeof vb));
    return false;
  }
  if (x < f->min || x > f->max) {
    lx__cfg_err(c, line, path, "%s is out of range %s..%s", lx__cfg_show(v, vb, sizeof vb),
                lx__cfg_fmt_hhmm((int)f->min, sign, lo, sizeof lo),
                lx__cfg_fmt_hhmm((int)f->max, sign, hi, sizeof hi));
    return false;
  }
  if (f->off != NO_OFF)
    *(int *)((char *)dest + f->off) = x;
  return true;
}

/* A nested section: right kind, and for a list the right number of
 * entries. A bare "key:" (null) on an optional section means "defaults". */
static yaml_node_t *check_nested(cfg_ctx_t *c, const cfg_field_t *f, yaml_node_t *v, int line,
                                 const char *path)
{
  yaml_node_type_t want = f->type == CT_MAP ? YAML_MAPPING_NODE : YAML_SEQUENCE_NODE;
  if (lx__cfg_is_null(v) && !f->required)
    return NULL;
  if (v->type != want) {
    lx__cfg_err(c, line, path, "expected %s, got %s", type_noun(f->type), lx__cfg_kind_noun(v));
    return NULL;
  }
  if (f->type != CT_LIST)
    return v;
  size_t n = seq_len(v);
  if (n == 0 && f->min > 0) {
    lx__cfg_err(c, line, path, "must not be empty");
    return NULL;
  }
  if ((int64_t)n < f->min || (int64_t)n > f->max) {
    lx__cfg_err(c, line, path, "has %zu entries; %lld..%lld allowed", n, (long long)f->min,
                (long long)f->max);
    return NULL;
  }
  return v;
}

/* Checks one value against its field and stores it (when the field has an
 * offset). Returns the value's node if it is good, else reports and
 * returns NULL. line is the key's line: that is where a reader looks. */
yaml_node_t *lx__cfg_field_value(cfg_ctx_t *c, const cfg_field_t *f, yaml_node_t *v, int line,
                                 const char *path, void *dest)
{
  if (f->type == CT_MAP || f->type == CT_LIST)
    return check_nested(c, f, v, line, path);
  if (v->type != YAML_SCALAR_NODE || lx__cfg_is_null(v)) {
    lx__cfg_err(c, line, path, "expected %s, got %s", type_noun(f->type), lx__cfg_kind_noun(v));
    return NULL;
  }
  if (strlen(sval(v)) != slen(v)) {
    lx__cfg_err(c, line, path, "must not contain a NUL byte");
    return NULL;
  }
  bool ok;
  if (f->type == CT_INT)
    ok = check_int(c, f, v, line, path, dest);
  else if (f->type == CT_SIZE)
    ok = check_size(c, f, v, line, path, dest);
  else if (f->type == CT_OFFSET || f->type == CT_TIME)
    ok = check_clock(c, f, v, line, path, dest);
  else
    ok = check_text(c, f, v, line, path, dest);
  return ok ? v : NULL;
}

static void unknown_key(cfg_ctx_t *c, int line, const char *path, const cfg_section_t *sec)
{
  char list[256];
  size_t o = 0;
  list[0] = '\0';
  for (size_t i = 0; i < sec->n && o < sizeof list; i++)
    o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", sec->fields[i].key);
  lx__cfg_err(c, line, path, "unknown key; valid keys: %s", list);
}

/* Checks mapping NODE (at key path PATH) against SEC: reports unknown keys,
 * missing required keys and bad values, stores scalar values into DEST by
 * offset, and sets got[i] to the node of each good, present field (NULL
 * otherwise). Returns false if NODE is not a mapping at all. */
bool lx__cfg_check_map(cfg_ctx_t *c, yaml_node_t *node, const char *path,
                       const cfg_section_t *sec, void *dest, yaml_node_t **got)
{
  bool seen[CFG_MAX_FIELDS] = {false};
  char kpath[CFG_PATH];
  assert(sec->n <= CFG_MAX_FIELDS);
  for (size_t i = 0; i < sec->n; i++)
    got[i] = NULL;
  if (node->type != YAML_MAPPING_NODE) {
    lx__cfg_err(c, node_line(node), path, "expected a mapping, got %s", lx__cfg_kind_noun(node));
    return false;
  }
  for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top;
       p++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
    if (k->type != YAML_SCALAR_NODE || lx__cfg_earlier_key(c, node, p))
      continue; /* reported by scan_node */
    lx__cfg_path_key(kpath, path, sval(k));
    size_t i = 0;
    while (i < sec->n && strcmp(sec->fields[i].key, sval(k)))
      i++;
    if (i == sec->n) {
      if (!sec->open)
        unknown_key(c, node_line(k), kpath, sec);
      continue;
    }
    seen[i] = true;
    yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
    got[i] = lx__cfg_field_value(c, &sec->fields[i], v, node_line(k), kpath, dest);
  }
  for (size_t i = 0; i < sec->n; i++)
    if (sec->fields[i].required && !seen[i]) {
      lx__cfg_path_key(kpath, path, sec->fields[i].key);
      lx__cfg_err(c, node_line(node), kpath, "required key missing");
    }
  return true;
}
