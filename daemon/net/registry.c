/* SPDX-License-Identifier: MIT
 *
 * registry.c: loads the client registry with libyaml (as a document, so
 * every problem has its line). The file is written by people and by other
 * tools, so it is checked strictly where it matters (keys decode, roles
 * are known, jurisdictions exist, nothing repeats) and left open where it
 * does not (extra keys are ignored).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include <zmq.h>

#include "registry.h"

static const char *const role_names[] = {"", "field", "supervisor", "auditor", "admin"};

const char *lx_role_name(int role) {
  return role > 0 && role <= LX_ROLE_ADMIN ? role_names[role] : "?";
}

bool lx_within(const char *jur, size_t jn, const char *unit, size_t un) {
  if (un < jn || memcmp(jur, unit, jn) != 0)
    return false;
  return un == jn || unit[jn] == '.';
}

typedef struct load {
  const char *file;
  yaml_document_t *doc;
  char *errors;
  size_t len;
} load_t;

static void problem(load_t *l, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void problem(load_t *l, int line, const char *fmt, ...) {
  char text[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  char head[300];
  int hn = line ? snprintf(head, sizeof head, "%s:%d: ", l->file, line)
                : snprintf(head, sizeof head, "%s: ", l->file);
  size_t add = (size_t)hn + strlen(text) + 1;
  char *p = realloc(l->errors, l->len + add + 1);
  if (!p)
    return;
  sprintf(p + l->len, "%s%s\n", head, text);
  l->errors = p;
  l->len += add;
}

static const char *scalar(load_t *l, const yaml_node_t *map, const char *key, int *line) {
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(l->doc, p->key);
    yaml_node_t *v = yaml_document_get_node(l->doc, p->value);
    if (k->type == YAML_SCALAR_NODE && strcmp((char *)k->data.scalar.value, key) == 0) {
      *line = (int)v->start_mark.line + 1;
      return v->type == YAML_SCALAR_NODE ? (const char *)v->data.scalar.value : NULL;
    }
  }
  *line = (int)map->start_mark.line + 1;
  return NULL;
}

static int parse_role(const char *s) {
  for (int i = 1; s && i <= LX_ROLE_ADMIN; i++)
    if (strcmp(s, role_names[i]) == 0)
      return i;
  return 0;
}

/* Checks one entry; on success appends it to r. */
static void entry(load_t *l, const lx_config_t *cfg, yaml_node_t *m, size_t i, lx_registry_t *r) {
  int ln, lk, lr, lj, bad = 0;
  lx_client_t c = {0};
  if (m->type != YAML_MAPPING_NODE) {
    problem(l, (int)m->start_mark.line + 1, "[%zu]: expected a mapping of name, key, role, jurisdiction", i);
    return;
  }
  const char *name = scalar(l, m, "name", &ln), *key = scalar(l, m, "key", &lk);
  const char *role = scalar(l, m, "role", &lr), *jur = scalar(l, m, "jurisdiction", &lj);
  if (!name || !*name || strlen(name) > 64)
    bad = 1, problem(l, ln, "[%zu].name: required, 1 to 64 bytes", i);
  if (!key || strlen(key) != 40 || !zmq_z85_decode(c.key, key))
    bad = 1, problem(l, lk, "[%zu].key: expected a 40-character Z85 CURVE public key", i);
  if (!(c.role = parse_role(role)))
    bad = 1, problem(l, lr, "[%zu].role: expected field, supervisor, auditor or admin", i);
  if (!jur || lx_config_find_unit(cfg, jur, strlen(jur)) < 0)
    bad = 1, problem(l, lj, "[%zu].jurisdiction: expected a configured unit path, e.g. %s", i,
                     cfg->n_units ? cfg->units[0].path : "qd");
  for (size_t k = 0; !bad && k < r->n; k++) {
    if (strcmp(r->clients[k].name, name) == 0)
      bad = 1, problem(l, ln, "[%zu].name: \"%s\" is already registered", i, name);
    else if (memcmp(r->clients[k].key, c.key, 32) == 0)
      bad = 1, problem(l, lk, "[%zu].key: already registered to \"%s\"", i, r->clients[k].name);
  }
  if (bad)
    return;
  lx_client_t *grown = realloc(r->clients, (r->n + 1) * sizeof *grown);
  if (!grown)
    return;
  r->clients = grown;
  c.name = strdup(name);
  c.jur = strdup(jur);
  c.jur_len = strlen(jur);
  r->clients[r->n++] = c;
}

int lx_registry_load(const char *file, const lx_config_t *cfg, lx_registry_t *out,
                     char **errors) {
  load_t l = {file, NULL, NULL, 0};
  yaml_parser_t p;
  yaml_document_t doc;
  memset(out, 0, sizeof *out);
  FILE *f = fopen(file, "rb");
  if (!f) {
    problem(&l, 0, "cannot open: %m");
    *errors = l.errors;
    return -1;
  }
  yaml_parser_initialize(&p);
  yaml_parser_set_input_file(&p, f);
  if (!yaml_parser_load(&p, &doc)) {
    problem(&l, (int)p.problem_mark.line + 1, "syntax error: %s", p.problem ? p.problem : "?");
  } else {
    l.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_SEQUENCE_NODE)
      problem(&l, root ? (int)root->start_mark.line + 1 : 1, "expected a list of clients");
    else
      for (yaml_node_item_t *it = root->data.sequence.items.start;
           it < root->data.sequence.items.top; it++)
        entry(&l, cfg, yaml_document_get_node(&doc, *it),
              (size_t)(it - root->data.sequence.items.start), out);
    yaml_document_delete(&doc);
  }
  yaml_parser_delete(&p);
  fclose(f);
  if (l.errors) {
    lx_registry_free(out);
    *errors = l.errors;
    return -1;
  }
  *errors = NULL;
  return 0;
}

void lx_registry_free(lx_registry_t *r) {
  for (size_t i = 0; i < r->n; i++) {
    free(r->clients[i].name);
    free(r->clients[i].jur);
  }
  free(r->clients);
  memset(r, 0, sizeof *r);
}

const lx_client_t *lx_registry_by_key(const lx_registry_t *r, const uint8_t key[32]) {
  for (size_t i = 0; i < r->n; i++)
    if (memcmp(r->clients[i].key, key, 32) == 0)
      return &r->clients[i];
  return NULL;
}

const lx_client_t *lx_registry_by_name(const lx_registry_t *r, const char *name) {
  for (size_t i = 0; name && i < r->n; i++)
    if (strcmp(r->clients[i].name, name) == 0)
      return &r->clients[i];
  return NULL;
}
