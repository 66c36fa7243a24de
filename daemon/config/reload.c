/* SPDX-License-Identifier: MIT
 *
 * reload.c: SIGHUP reloads the whole configuration, without a restart,
 * without dropping a connection or losing an event; and the `config`
 * record of PROTOCOL.md, on a reload or a start that changes the file.
 *
 * Design: check everything, then swap. The new file is loaded and checked
 * as --check-config does; then what cannot change while the daemon runs
 * (endpoints, the store, the CURVE key, the plugin list) is compared, units
 * and categories it removes are looked up in the log, and every part that
 * is rebuilt (calendar, client registry, checkpoint key, plugin states
 * through their reload callbacks) is built beside the one in force. Any
 * problem refuses the whole file, logged as FILE:LINE: key: reason, and
 * drops what was built: the old configuration stays in force. Only then is
 * everything swapped, in one loop callback: nothing else runs on the loop
 * thread meanwhile, and no batch is half done between callbacks, so every
 * event is validated and applied under one configuration or the other. The
 * `config` record is committed in the same callback, before any event the
 * new configuration governs. What was replaced is freed last.
 *
 * Plugin entries whose settings did not change keep their config structs
 * (moved into the new configuration), since a plugin may hold pointers into
 * them (conf_items is valid until close).
 */
#include <msgpack.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "calendar.h"
#include "cfgstore.h"
#include "checkpoint.h"
#include "log.h"
#include "notify.h"
#include "plugin_host.h"
#include "reload.h"

/* --- what only a restart can change ----------------------------------------- */

static int same(const char *a, const char *b) {
  return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

void lx_reload_overrides(lx_daemon_t *d, lx_config_t *cfg) {
  const char *vals[] = {d->opt_data, d->opt_ingest, d->opt_alerts, d->opt_query};
  char **slots[] = {&cfg->store_path, &cfg->ingest_ep, &cfg->alerts_ep, &cfg->query_ep};
  for (int i = 0; i < 4; i++)
    if (vals[i]) {
      free(*slots[i]);
      *slots[i] = strdup(vals[i]);
    }
}

/* What only a restart can change. */
static void check_fixed(lx_daemon_t *d, const lx_config_t *nc, char **errors) {
  const lx_config_t *o = &d->cfg;
  const char *names[] = {"listen.ingest", "listen.alerts", "listen.query", "store.path"};
  const char *was[] = {o->ingest_ep, o->alerts_ep, o->query_ep, o->store_path};
  const char *now[] = {nc->ingest_ep, nc->alerts_ep, nc->query_ep, nc->store_path};
  for (int i = 0; i < 4; i++)
    if (!same(was[i], now[i]))
      lx_errors_add(errors, "%s: %s: changed from %s to %s: needs a restart", nc->file, names[i], was[i],
          now[i]);
  if (o->map_size != nc->map_size || o->map_max != nc->map_max)
    lx_errors_add(errors, "%s: store: map_size or map_max changed: needs a restart", nc->file);
  if (!same(o->security.server_key, nc->security.server_key))
    lx_errors_add(errors, "%s:%d: security.server_key: %s: needs a restart", nc->file, nc->security.line,
        o->security.server_key && nc->security.server_key ? "changed"
        : nc->security.server_key ? "CURVE turned on" : "CURVE turned off");
  bool list_same = o->n_plugins == nc->n_plugins;
  for (size_t i = 0; list_same && i < o->n_plugins; i++)
    list_same = same(o->plugins[i].name, nc->plugins[i].name) &&
                same(o->plugins[i].path, nc->plugins[i].path);
  if (!list_same)
    lx_errors_add(errors, "%s: plugins: the list of plugins (names, order or paths) changed: needs a "
        "restart", nc->file);
}

/* --- units and categories that records use ---------------------------------- */

typedef struct removed {
  const char **units, **cats; /* removed paths and codes */
  uint64_t *unit_seq, *cat_seq; /* the first record that uses each, 0 if none */
  size_t n_units, n_cats, left;
  msgpack_zone zone;
} removed_t;

static int scan_one(void *arg, const lx_record_t *r) {
  removed_t *rm = arg;
  lx_event_t ev;
  msgpack_zone_clear(&rm->zone);
  if (lx_event_parse_stored(r->ev, r->ev_len, &rm->zone, &ev))
    return 0;
  for (size_t i = 0; i < rm->n_units; i++)
    if (!rm->unit_seq[i] && lx_within(rm->units[i], strlen(rm->units[i]), ev.unit.p, ev.unit.n)) {
      rm->unit_seq[i] = r->seq;
      rm->left--;
    }
  for (size_t i = 0; i < rm->n_cats && ev.category.n; i++)
    if (!rm->cat_seq[i] && strlen(rm->cats[i]) == ev.category.n &&
        memcmp(rm->cats[i], ev.category.p, ev.category.n) == 0) {
      rm->cat_seq[i] = r->seq;
      rm->left--;
    }
  return rm->left == 0;
}

/* Removing a unit (of any tier) or a category is refused while a record
 * uses it: the log must stay readable under the configuration in force.
 * This reads the log once, and only when the file removes something. */
static void check_removed(lx_daemon_t *d, const lx_config_t *nc, char **errors) {
  const lx_config_t *o = &d->cfg;
  removed_t rm = {0};
  rm.units = calloc(o->n_units + 1, sizeof *rm.units);
  rm.cats = calloc(o->n_categories + 1, sizeof *rm.cats);
  rm.unit_seq = calloc(o->n_units + 1, sizeof *rm.unit_seq);
  rm.cat_seq = calloc(o->n_categories + 1, sizeof *rm.cat_seq);
  for (size_t i = 0; rm.units && i < o->n_units; i++)
    if (lx_config_find_unit(nc, o->units[i].path, strlen(o->units[i].path)) < 0)
      rm.units[rm.n_units++] = o->units[i].path;
  for (size_t i = 0; rm.cats && i < o->n_categories; i++)
    if (lx_config_find_category(nc, o->categories[i].code, strlen(o->categories[i].code)) < 0)
      rm.cats[rm.n_cats++] = o->categories[i].code;
  rm.left = rm.n_units + rm.n_cats;
  MDB_txn *txn;
  if (rm.unit_seq && rm.cat_seq && rm.left && lx_store_read_begin(d->store, &txn) == 0) {
    msgpack_zone_init(&rm.zone, 4096);
    lx_store_scan(d->store, txn, 1, lx_store_head(d->store)->seq, scan_one, &rm);
    msgpack_zone_destroy(&rm.zone);
    lx_store_read_end(d->store, txn);
  }
  for (size_t i = 0; i < rm.n_units; i++)
    if (rm.unit_seq[i])
      lx_errors_add(errors, "%s: units: unit %s is removed, but records use it (the first at seq %llu); "
          "a unit that records use cannot be removed", nc->file, rm.units[i],
          (unsigned long long)rm.unit_seq[i]);
  for (size_t i = 0; i < rm.n_cats; i++)
    if (rm.cat_seq[i])
      lx_errors_add(errors, "%s: categories: category %s is removed, but records use it (the first at "
          "seq %llu); a category that records use cannot be removed", nc->file, rm.cats[i],
          (unsigned long long)rm.cat_seq[i]);
  free(rm.units);
  free(rm.cats);
  free(rm.unit_seq);
  free(rm.cat_seq);
}

/* --- the config record -------------------------------------------------------- */

static void pack_record(msgpack_sbuffer *sb, const uint8_t hash[32], char **changes, size_t n) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  lx_mp_pack_cstr(&pk, "hash");
  msgpack_pack_bin_with_body(&pk, hash, 32);
  lx_mp_pack_cstr(&pk, "changes");
  msgpack_pack_array(&pk, (uint32_t)n);
  for (size_t i = 0; i < n; i++)
    lx_mp_pack_cstr(&pk, changes[i]);
}

/* Keeps d->cfg's bytes and commits a `config` record naming them, now,
 * before anything else is committed. */
static int append_record(lx_daemon_t *d, char **changes, size_t n) {
  msgpack_sbuffer sb;
  const char *county = lx_config_county(&d->cfg);
  if (lx_cfgstore_keep(d->store, &d->cfg, false))
    return -1;
  msgpack_sbuffer_init(&sb);
  pack_record(&sb, d->cfg.hash, changes, n);
  int rc = lx_ingest_queue(d, "config", "config", (lx_str_t){county, strlen(county)},
                           (const uint8_t *)sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
  if (rc) {
    lx_error("config", "cannot append the config record: %s", lx_strerror(rc));
    return -1;
  }
  lx_ingest_flush_queue(d);
  return 0;
}

/* The hash in force according to the store; 1 when none is kept yet. */
static int hash_in_force(lx_daemon_t *d, uint8_t hash[32]) {
  MDB_txn *txn;
  if (lx_store_read_begin(d->store, &txn))
    return -1;
  int rc = lx_cfgstore_hash(txn, "current", hash);
  lx_store_read_end(d->store, txn);
  return rc;
}

/* The configuration in force before, rebuilt from its bytes in the store,
 * for the list of changes. */
static int load_in_force(lx_daemon_t *d, const uint8_t hash[32], lx_config_t *out) {
  MDB_txn *txn;
  const uint8_t *bytes;
  size_t n;
  char *errors = NULL;
  int rc = -1;
  if (lx_store_read_begin(d->store, &txn))
    return -1;
  if (lx_cfgstore_bytes(txn, hash, &bytes, &n) == 0 &&
      (rc = lx_config_load_bytes(d->cfg.file, bytes, n, out, &errors)) == 0)
    lx_reload_overrides(d, out); /* the command line applied then as now */
  lx_store_read_end(d->store, txn);
  free(errors);
  return rc;
}

int lx_reload_record_start(lx_daemon_t *d) {
  uint8_t hash[32];
  int rc = hash_in_force(d, hash);
  if (rc == 1) /* a new store, or one from before configurations were kept */
    return lx_cfgstore_keep(d->store, &d->cfg, true) ? -1 : 0;
  if (rc)
    return -1;
  if (memcmp(hash, d->cfg.hash, 32) == 0)
    return 0;
  lx_config_t old;
  char **changes = NULL;
  size_t n = 0;
  static char unread[] = "the configuration in force before could not be read back";
  char *fallback[] = {unread};
  if (load_in_force(d, hash, &old) == 0) {
    lx_config_diff(&old, &d->cfg, &changes, &n);
    lx_config_free(&old);
  }
  lx_logf(LX_LOG_INFO, "config", "the configuration differs from the last one in force",
          LXF_I("changes", n));
  rc = append_record(d, changes ? changes : fallback, changes ? n : 1);
  lx_config_changes_free(changes, n);
  return rc;
}

/* --- check, then swap ----------------------------------------------------------- */

int lx_reload_prepare(lx_daemon_t *d, const lx_config_t *nc, lx_calendar_t **ncal,
                      char **errors) {
  *ncal = NULL;
  if (lx_calendar_new(nc, ncal)) {
    lx_errors_add(errors, "%s: calendar: cannot be built (out of memory)", nc->file);
    return -1;
  }
  if (lx_plugins_reload_check(d, nc, *ncal, errors)) {
    lx_calendar_free(ncal);
    return -1;
  }
  return 0;
}

void lx_reload_commit(lx_daemon_t *d, lx_config_t *nc, lx_calendar_t *ncal) {
  lx_config_t old = d->cfg;
  lx_calendar_t *old_cal = d->cal;
  /* Unchanged plugin entries keep their structs: plugins may point into
   * them. Both lists name the same plugins in the same order. */
  for (size_t i = 0; i < nc->n_plugins && i < old.n_plugins; i++)
    if (lx_config_plugin_same(&old.plugins[i], &nc->plugins[i])) {
      lx_plugin_conf_t t = old.plugins[i];
      old.plugins[i] = nc->plugins[i];
      nc->plugins[i] = t;
    }
  d->cfg = *nc;
  memset(nc, 0, sizeof *nc);
  d->cal = ncal;
  lx_plugins_reload_take(d);
  lx_config_free(&old);
  lx_calendar_free(&old_cal);
}

static void apply_log_settings(lx_daemon_t *d) {
  if (!d->opt_log_format)
    lx_log_format = d->cfg.log.format ? lx_log_format_parse(d->cfg.log.format) : LX_LOG_TEXT;
  if (!d->opt_log_level)
    lx_log_level = d->cfg.log.level ? lx_log_level_parse(d->cfg.log.level) : LX_LOG_INFO;
}

/* Everything that can refuse the file, with nothing changed yet. */
static int check_all(lx_daemon_t *d, const lx_config_t *nc, lx_registry_t *reg,
                     lx_calendar_t **ncal, char **errors) {
  char *reg_errors = NULL, err[600];
  check_fixed(d, nc, errors);
  check_removed(d, nc, errors);
  if (nc->checkpoints.key && lx_checkpoint_key_ok(nc->checkpoints.key, err, sizeof err))
    lx_errors_add(errors, "%s:%d: checkpoints.key: %s", nc->file, nc->checkpoints.line, err);
  if (lx_auth_reload(d, nc, reg, &reg_errors)) {
    lx_errors_add(errors, "%s:%d: security.clients: the client registry has errors:", nc->file,
        nc->security.line);
    if (reg_errors)
      lx_errors_add(errors, "%.*s", (int)strlen(reg_errors) - 1, reg_errors);
  }
  free(reg_errors);
  if (*errors || lx_reload_prepare(d, nc, ncal, errors)) {
    lx_registry_free(reg);
    return -1;
  }
  return 0;
}

static bool checkpoints_changed(const lx_checkpoint_conf_t *a, const lx_checkpoint_conf_t *b) {
  return !same(a->key, b->key) || a->every != b->every || a->interval != b->interval;
}

/* Loads, checks and (if all is well) applies the file. Returns 0 when the
 * new configuration is in force, -1 when the old one stays. */
static int reload(lx_daemon_t *d) {
  lx_config_t nc;
  lx_registry_t reg = {0};
  lx_calendar_t *ncal = NULL;
  char *errors = NULL, **changes = NULL;
  size_t n_changes = 0;
  bool bad = lx_config_load(d->cfg.file, &nc, &errors) != 0;
  if (!bad) {
    lx_reload_overrides(d, &nc);
    if ((bad = check_all(d, &nc, &reg, &ncal, &errors) != 0))
      lx_config_free(&nc);
  }
  if (bad) {
    lx_logf(LX_LOG_ERROR, "reload", "the new configuration is refused; the old one stays in force",
            LXF_S("file", d->cfg.file));
    lx_log_lines(LX_LOG_ERROR, "reload", errors ? errors : "out of memory");
    free(errors);
    return -1;
  }
  bool changed = memcmp(nc.hash, d->cfg.hash, 32) != 0;
  bool ckpt = checkpoints_changed(&d->cfg.checkpoints, &nc.checkpoints);
  if (changed)
    lx_config_diff(&d->cfg, &nc, &changes, &n_changes);
  lx_reload_commit(d, &nc, ncal);
  if (d->secure) {
    lx_registry_free(&d->registry);
    d->registry = reg;
    lx_info("reload", "registry reloaded, %zu client(s)", d->registry.n);
  }
  apply_log_settings(d);
  char err[600];
  if (ckpt && lx_checkpoint_restart(d, err, sizeof err))
    lx_error("reload", "checkpoints: %s; checkpoints are off until the next reload", err);
  uint8_t in_force[32];
  if (changed && (hash_in_force(d, in_force) != 0 || memcmp(in_force, d->cfg.hash, 32)))
    append_record(d, changes, n_changes);
  lx_logf(LX_LOG_INFO, "reload", changed ? "configuration reloaded" : "configuration unchanged",
          LXF_S("file", d->cfg.file), LXF_I("changes", n_changes), LXF_I("units", d->cfg.n_units),
          LXF_I("categories", d->cfg.n_categories), LXF_I("clients", d->registry.n));
  for (size_t i = 0; i < n_changes; i++)
    lx_logf(LX_LOG_INFO, "reload", "changed", LXF_S("what", changes[i]));
  lx_config_changes_free(changes, n_changes);
  return 0;
}

static void on_reload_timer(uv_timer_t *t) {
  lx_daemon_t *d = t->data;
  if (d->stopping)
    return;
  lx_notify_reloading(d);
  int rc = reload(d);
  lx_notify_reloaded(d, rc ? "reload refused, old configuration in force" : "reloaded");
}

/* SIGHUPs that arrive within one loop turn make one reload. */
static void on_hup(uv_signal_t *h, int signum) {
  lx_daemon_t *d = h->data;
  uv_timer_start(&d->reload_timer, on_reload_timer, 0, 0);
}

void lx_reload_start(lx_daemon_t *d) {
  uv_signal_init(d->loop, &d->sighup);
  d->sighup.data = d;
  uv_signal_start(&d->sighup, on_hup, SIGHUP);
  uv_timer_init(d->loop, &d->reload_timer);
  d->reload_timer.data = d;
}

void lx_reload_stop(lx_daemon_t *d) {
  if (uv_is_active((uv_handle_t *)&d->sighup) && !uv_is_closing((uv_handle_t *)&d->sighup)) {
    uv_close((uv_handle_t *)&d->sighup, NULL);
    uv_close((uv_handle_t *)&d->reload_timer, NULL);
  }
}
