/* SPDX-License-Identifier: MIT
 *
 * config_plugins.c: the `plugins:` list of the config. The core checks only
 * each entry's `name` and `path`; every other key belongs to the plugin,
 * which reads and checks it in its init through lx/plugin.h (conf_str,
 * conf_items). What is kept here is each value as written, with its line,
 * so the plugin's own errors point at the file and line like the core's.
 *
 * A plugin setting is a single value, a list of single values
 * (`servers: [nats://a:4222, nats://b:4222]`) or a map of single values
 * (`weights: {response: 0.3}`): enough for every plugin so far, and a shape
 * a plugin can check without a YAML library of its own. Deeper nesting is
 * refused here, at its line. Duplicate map keys are refused for the whole
 * document by the structure scan (config_values.c).
 */
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

static const cfg_field_t plugin_fields[] = {
  {"name", CT_NAME, true, 1, CFG_PLUGIN_MAX, NO_OFF, NULL, "the plugin's name; unique"},
  {"path", CT_STRING, false, 1, CFG_PATH_MAX, NO_OFF, "the build's plugin dir",
   "its shared object; relative to the config file's directory"},
};

const cfg_section_t lx__cfg_plugin_sec = SECTION("plugins[]", plugin_fields, true);

static char *copy(cfg_ctx_t *c, const char *s)
{
  char *p = strdup(s);
  c->oom = c->oom || !p;
  return p;
}

/* The entries of a list or map value, each a single value. */
static void keep_items(cfg_ctx_t *c, yaml_node_t *v, const char *kpath, lx_conf_kv_t *kv)
{
  bool map = v->type == YAML_MAPPING_NODE;
  size_t n = map ? (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start)
                 : seq_len(v);
  kv->shape = map ? LX_CONF_MAP : LX_CONF_LIST;
  kv->items = calloc(n ? n : 1, sizeof *kv->items);
  if (!kv->items) {
    c->oom = true;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *key = map ? yaml_document_get_node(c->doc, v->data.mapping.pairs.start[i].key)
                           : NULL;
    yaml_node_t *val = map ? yaml_document_get_node(c->doc, v->data.mapping.pairs.start[i].value)
                           : seq_item(c, v, i);
    char ipath[CFG_PATH];
    if (map)
      lx__cfg_path_key(ipath, kpath, key->type == YAML_SCALAR_NODE ? sval(key) : "?");
    else
      lx__cfg_path_idx(ipath, kpath, i);
    if ((key && key->type != YAML_SCALAR_NODE) || val->type != YAML_SCALAR_NODE) {
      lx__cfg_err(c, node_line(val), ipath,
                  "a plugin setting's entries are single values, not %s",
                  lx__cfg_kind_noun(key && key->type != YAML_SCALAR_NODE ? key : val));
      continue;
    }
    lx_conf_item_t *it = &kv->items[kv->n_items++];
    it->key = key ? copy(c, sval(key)) : NULL;
    it->value = copy(c, sval(val));
    it->line = node_line(val);
  }
}

/* Keeps the entry's other keys, as written, for the plugin to read and
 * check in its init. */
static void plugin_keys(cfg_ctx_t *c, yaml_node_t *item, const char *ipath, lx_plugin_conf_t *pl)
{
  size_t n = (size_t)(item->data.mapping.pairs.top - item->data.mapping.pairs.start);
  pl->kv = calloc(n ? n : 1, sizeof *pl->kv);
  if (!pl->kv) {
    c->oom = true;
    return;
  }
  for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
    yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
    if (k->type != YAML_SCALAR_NODE || strcmp(sval(k), "name") == 0 || strcmp(sval(k), "path") == 0)
      continue;
    char kpath[CFG_PATH];
    lx__cfg_path_key(kpath, ipath, sval(k));
    lx_conf_kv_t *kv = &pl->kv[pl->n_kv++];
    kv->key = copy(c, sval(k));
    kv->line = node_line(k);
    if (v->type == YAML_SCALAR_NODE) {
      kv->value = copy(c, sval(v));
    } else {
      keep_items(c, v, kpath, kv);
    }
  }
}

static void plugin_add(cfg_ctx_t *c, yaml_node_t *name, yaml_node_t *path, int line)
{
  lx_config_t *cfg = c->cfg;
  lx_plugin_conf_t *pl = lx__cfg_grow(c, cfg->plugins, &c->cap_plugins, cfg->n_plugins, sizeof *pl);
  if (!pl)
    return;
  cfg->plugins = pl;
  pl += cfg->n_plugins++;
  memset(pl, 0, sizeof *pl); /* realloc'd memory: fields not set here must read as empty */
  pl->name = copy(c, sval(name));
  pl->path = path ? lx__cfg_resolve(c, sval(path)) : NULL;
  pl->line = line;
}

void lx__cfg_walk_plugins(cfg_ctx_t *c, yaml_node_t *seq)
{
  size_t n = seq_len(seq);
  yaml_node_t **names = calloc(n ? n : 1, sizeof *names), *got[CFG_MAX_FIELDS];
  char ipath[CFG_PATH];
  if (!names) {
    c->oom = true;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    yaml_node_t *item = seq_item(c, seq, i);
    lx__cfg_path_idx(ipath, "plugins", i);
    if (!lx__cfg_check_map(c, item, ipath, &lx__cfg_plugin_sec, NULL, got) || !got[0])
      continue;
    if (lx__cfg_sibling_dup(c, names, i, got[0], ipath, "name", "plugin name"))
      continue;
    names[i] = got[0];
    plugin_add(c, got[0], got[1], node_line(item));
    if (c->cfg->n_plugins)
      plugin_keys(c, item, ipath, &c->cfg->plugins[c->cfg->n_plugins - 1]);
  }
  free(names);
}

void lx__cfg_free_plugins(lx_config_t *cfg)
{
  for (size_t i = 0; i < cfg->n_plugins; i++) {
    lx_plugin_conf_t *pl = &cfg->plugins[i];
    for (size_t k = 0; k < pl->n_kv; k++) {
      for (size_t j = 0; j < pl->kv[k].n_items; j++) {
        free((char *)pl->kv[k].items[j].key);
        free((char *)pl->kv[k].items[j].value);
      }
      free(pl->kv[k].items);
      free(pl->kv[k].key);
      free(pl->kv[k].value);
    }
    free(pl->kv);
    free(pl->name);
    free(pl->path);
  }
  free(cfg->plugins);
}
