/* SPDX-License-Identifier: MIT
 *
 * plugin_host.c: loads plugins and serves the host functions of
 * lx/plugin.h.
 *
 * Design: one lx_host_t per plugin instance holds the loaded object, the
 * instance state, its timer and its config section. Plugins see the store
 * only through lx_txn_t (a borrowed LMDB transaction) and their own named
 * databases ("p.<plugin>.<name>"), so what a plugin keeps commits or aborts
 * with the batch that made it; those host functions live in plugin_txn.c,
 * which the unit tests' mock host shares. Appends go to the ingest queue and
 * so through the same validation and group commit as client events.
 *
 * A plugin that arms for a time already come (a catch-up that goes on in
 * slices) runs again on the next loop turn, after the sockets have been
 * polled: from a uv_idle_t, not a zero-delay timer, because libuv before
 * 1.48 runs a timer restarted with delay 0 from its own callback again in
 * the same pass (libuv#4245), which would starve every client until the
 * whole catch-up was done.
 */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "daemon.h"
#include "log.h"
#include "plugin_host.h"
#include "plugin_txn.h"

#define HOST_DBS_MAX 16

struct lx_host {
  lx_plugin_env_t env;  /* first: what plugin_txn.c serves the store-side slots from */
  lx_daemon_t *d;
  int index;
  const lx_plugin_conf_t *conf;
  const lx_plugin_t *plugin;
  void *state;
  uv_lib_t lib;
  bool lib_open, inited, timer_open, wake_open;
  uv_timer_t timer;     /* armed for a time to come */
  uv_idle_t due;        /* armed for a time already come: the next loop turn */
  uv_async_t wake;      /* wake: another thread asks for on_timer */
  int handles;          /* open libuv handles (timer, due, wake); h is freed when the last closes */
  uint64_t progress, progress_txn, progress_saved; /* progress_set, written with a batch */
  bool *used;           /* which config keys the plugin read (env.used; owned here) */
  lx_host_api_t api;    /* what init is given: plugin_txn.c's slots and the ones below */
  char **errors;        /* where conf_error writes while loading */
  int failed;
  void *next;           /* a reload's new state, until it is taken or dropped */
  bool *next_used;      /* the used flags of the new entry's keys */
};
_Static_assert(offsetof(struct lx_host, env) == 0, "plugin_txn.c finds the env at the host");

/* --- host functions -------------------------------------------------------- */

static void h_log(lx_host_t *h, int level, const char *fmt, ...) {
  if (level > lx_log_level)
    return;
  char text[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  lx_log_write(level, h->env.sub, "%s", text);
}

static int64_t h_now(lx_host_t *h) { return (int64_t)lx_clock_now_ms(); }

static void h_report(lx_host_t *h, int line, const char *key, const char *text) {
  h->failed = 1;
  if (h->errors)
    lx_errors_add(h->errors, "%s:%d: plugins[%d].%s: %s", h->d->cfg.file, line ? line : h->conf->line,
              h->index, key, text);
  else
    lx_error(h->env.sub, "%s: %s", key, text);
}

static int h_append(lx_host_t *h, const char *type, lx_slice_t unit, const uint8_t *body,
                    size_t body_len) {
  return lx_ingest_queue(h->d, h->plugin->name, type, (lx_str_t){unit.p, unit.n}, body, body_len);
}

static int h_publish(lx_host_t *h, const lx_rec_t *rec, const char *kind, lx_slice_t unit,
                     const uint8_t *extra, size_t extra_len) {
  return lx_alerts_publish(h->d, rec->seq, rec->rat, kind, (lx_str_t){unit.p, unit.n}, extra,
                           extra_len);
}

/* Runs on_timer and commits what it appended before anything else runs,
 * so the plugin's next on_timer sees its decisions stored (or refused). */
static void fire(lx_host_t *h) {
  if (h->plugin->on_timer)
    h->plugin->on_timer(h->state, (int64_t)lx_clock_now_ms());
  lx_alerts_sent(h->d);
  lx_ingest_flush_timer(h->d);
}

static void on_timer(uv_timer_t *t) { fire(t->data); }

static void on_due(uv_idle_t *i) {
  uv_idle_stop(i);
  fire(i->data);
}

static int h_arm(lx_host_t *h, int64_t at) {
  if (!h->timer_open)
    return -1;
  int64_t now = (int64_t)lx_clock_now_ms();
  if (at <= now) {
    uv_timer_stop(&h->timer);
    return uv_idle_start(&h->due, on_due) ? -1 : 0;
  }
  uv_idle_stop(&h->due);
  uint64_t delay = lx_clock_real_delay_ms((uint64_t)(at - now));
  return uv_timer_start(&h->timer, on_timer, delay, 0) ? -1 : 0;
}

static void on_wake(uv_async_t *a) { on_timer(&((lx_host_t *)a->data)->timer); }

static int h_wake(lx_host_t *h) { return h->wake_open && uv_async_send(&h->wake) == 0 ? 0 : -1; }

static int h_progress_set(lx_host_t *h, uint64_t seq) {
  h->progress = seq;
  return 0;
}

/* The table a plugin is given: the loop's and sockets' functions above,
 * and the store, config and calendar ones of plugin_txn.c. */
static void api_init(lx_host_api_t *api) {
  *api = (lx_host_api_t){.abi = LX_PLUGIN_ABI, .log = h_log, .now = h_now,
                         .append = h_append,
                         .publish = h_publish, .arm = h_arm,
                         .progress_set = h_progress_set, .wake = h_wake};
  lx_plugin_txn_fill(api);
}

/* --- loading ----------------------------------------------------------------- */

static void default_path(const char *name, char *out, size_t len) {
  char exe[PATH_MAX - 128]; /* room for "/plugins/NAME.so" in out */
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = 0;
  char *slash = strrchr(exe, '/');
  if (slash)
    *slash = 0;
  snprintf(out, len, "%s/plugins/%.64s.so", n > 0 ? exe : ".", name);
}

static int load_one(lx_host_t *h, char **errors) {
  const char *where = h->d->cfg.file;
  char path[PATH_MAX];
  if (h->conf->path)
    snprintf(path, sizeof path, "%s", h->conf->path);
  else
    default_path(h->conf->name, path, sizeof path);
  if (uv_dlopen(path, &h->lib)) {
    lx_errors_add(errors, "%s:%d: plugins[%d] (%s): cannot load %s: %s", where, h->conf->line,
              h->index, h->conf->name, path, uv_dlerror(&h->lib));
    uv_dlclose(&h->lib);
    return -1;
  }
  h->lib_open = true;
  void *sym = NULL;
  if (uv_dlsym(&h->lib, LX_PLUGIN_ENTRY_SYMBOL, &sym) || !sym) {
    lx_errors_add(errors, "%s:%d: plugins[%d] (%s): %s exports no %s", where, h->conf->line,
              h->index, h->conf->name, path, LX_PLUGIN_ENTRY_SYMBOL);
    return -1;
  }
  h->plugin = sym;
  if (h->plugin->abi != LX_PLUGIN_ABI) {
    lx_errors_add(errors, "%s:%d: plugins[%d] (%s): %s was built for plugin ABI %u; this daemon has %u: rebuild it",
              where, h->conf->line, h->index, h->conf->name, path, h->plugin->abi, LX_PLUGIN_ABI);
    return -1;
  }
  static const char *const core_ops[] = {"replay", "appeal", "head", "units", "stats", NULL};
  for (const char *const *o = h->plugin->ops; o && *o; o++)
    for (const char *const *k = core_ops; *k; k++)
      if (strcmp(*o, *k) == 0) {
        lx_errors_add(errors, "%s:%d: plugins[%d] (%s): %s declares the query op \"%s\", which is "
                  "the daemon's own", where, h->conf->line, h->index, h->conf->name, path, *o);
        return -1;
      }
  return 0;
}

static int init_one(lx_host_t *h, char **errors) {
  h->errors = errors;
  lx_plugin_env_init(&h->env, h->d->store, &h->d->cfg, h->d->cal, h->plugin->name, h->conf->kv,
                     h->conf->n_kv, h->used, h_report);
  api_init(&h->api);
  uv_timer_init(h->d->loop, &h->timer);
  uv_idle_init(h->d->loop, &h->due);
  h->timer.data = h->due.data = h;
  h->timer_open = true;
  h->wake_open = uv_async_init(h->d->loop, &h->wake, on_wake) == 0;
  h->wake.data = h;
  h->handles = 2 + h->wake_open;
  if (h->api.progress_get(h, &h->progress) == 0)
    h->progress_saved = h->progress_txn = h->progress;
  int rc = h->plugin->init ? h->plugin->init(&h->api, h, &h->state) : 0;
  /* A plugin that reported a bad value still read its keys: name the
   * unknown ones too, so one run shows every mistake. */
  for (size_t i = 0; i < h->conf->n_kv && (rc == 0 || h->failed); i++)
    if (!h->used[i])
      h->api.conf_error(h, h->conf->kv[i].key, "unknown key for plugin %s", h->plugin->name);
  if (rc || h->failed) {
    if (rc == 0 && h->plugin->close)
      h->plugin->close(h->state);
    if (!h->failed)
      lx_errors_add(errors, "%s:%d: plugins[%d] (%s): init failed (see the log)", h->d->cfg.file,
                h->conf->line, h->index, h->conf->name);
    return -1;
  }
  h->inited = true;
  h->errors = NULL;
  return 0;
}

int lx_plugins_load(lx_daemon_t *d, char **errors) {
  *errors = NULL;
  d->n_hosts = d->cfg.n_plugins;
  d->hosts = calloc(d->n_hosts ? d->n_hosts : 1, sizeof *d->hosts);
  if (!d->hosts)
    return -1;
  int bad = 0;
  /* A plugin that fails does not stop the others' checks: one run (a start
   * or --check-config) names every plugin's mistakes. */
  for (size_t i = 0; i < d->n_hosts; i++) {
    lx_host_t *h = calloc(1, sizeof *h);
    d->hosts[i] = h;
    if (!h) {
      bad = 1;
      break;
    }
    h->d = d;
    h->index = (int)i;
    h->conf = &d->cfg.plugins[i];
    h->used = calloc(h->conf->n_kv + 1, sizeof *h->used);
    if (!h->used || load_one(h, errors) || init_one(h, errors))
      bad = 1;
    else
      lx_info(h->env.sub, "loaded %s", h->plugin->description ? h->plugin->description : "");
  }
  if (bad)
    lx_plugins_close(d);
  return bad ? -1 : 0;
}

static void on_timer_closed(uv_handle_t *t) {
  lx_host_t *h = t->data;
  if (--h->handles > 0)
    return;
  if (h->lib_open)
    uv_dlclose(&h->lib);
  free(h->used);
  free(h->next_used);
  free(h);
}

void lx_plugins_close(lx_daemon_t *d) {
  for (size_t i = d->n_hosts; i-- > 0;) {
    lx_host_t *h = d->hosts[i];
    if (!h)
      continue;
    if (h->inited && h->plugin->close)
      h->plugin->close(h->state);
    if (h->timer_open) {
      if (h->wake_open)
        uv_close((uv_handle_t *)&h->wake, on_timer_closed);
      uv_close((uv_handle_t *)&h->timer, on_timer_closed);
      uv_close((uv_handle_t *)&h->due, on_timer_closed); /* the last close frees h */
    } else {
      if (h->lib_open)
        uv_dlclose(&h->lib);
      free(h->used);
      free(h);
    }
  }
  free(d->hosts);
  d->hosts = NULL;
  d->n_hosts = 0;
}

/* --- reload ----------------------------------------------------------------- */

/* Calls one plugin's reload with the new entry (and config and calendar)
 * in view, then puts its view back. */
static int reload_one(lx_host_t *h, const lx_config_t *nc, const lx_calendar_t *ncal,
                      char **errors) {
  const lx_plugin_conf_t *pc = &nc->plugins[h->index], *old = h->conf;
  lx_plugin_env_t saved = h->env;
  if (!(h->next_used = calloc(pc->n_kv + 1, sizeof *h->next_used)))
    return -1;
  h->conf = pc;
  h->env.cfg = nc;
  h->env.cal = ncal;
  h->env.kv = pc->kv;
  h->env.n_kv = pc->n_kv;
  h->env.used = h->next_used;
  h->errors = errors;
  h->failed = 0;
  int rc = h->plugin->reload(h->state, &h->next);
  for (size_t i = 0; i < pc->n_kv && (rc == 0 || h->failed); i++)
    if (!h->next_used[i])
      h->api.conf_error(h, pc->kv[i].key, "unknown key for plugin %s", h->plugin->name);
  if ((rc || h->failed) && !h->failed)
    lx_errors_add(errors, "%s:%d: plugins[%d] (%s): reload failed (see the log)", nc->file,
              pc->line, h->index, pc->name);
  if (rc == 0 && h->failed && h->plugin->close)
    h->plugin->close(h->next);
  if (rc || h->failed)
    h->next = NULL;
  h->env = saved;
  h->conf = old;
  h->errors = NULL;
  return h->next ? 0 : -1;
}

int lx_plugins_reload_check(lx_daemon_t *d, const lx_config_t *nc, const lx_calendar_t *ncal,
                            char **errors) {
  int bad = 0;
  for (size_t i = 0; i < d->n_hosts; i++) {
    lx_host_t *h = d->hosts[i];
    const lx_plugin_conf_t *pc = &nc->plugins[i];
    if (lx_config_plugin_same(h->conf, pc))
      continue;
    if (!h->plugin->reload) {
      lx_errors_add(errors, "%s:%d: plugins[%d] (%s): its settings changed, but this plugin cannot "
                "reload them: restart the daemon to apply them", nc->file, pc->line, h->index,
                pc->name);
      bad = 1;
    } else if (reload_one(h, nc, ncal, errors)) {
      bad = 1;
    }
  }
  if (bad)
    lx_plugins_reload_drop(d);
  return bad ? -1 : 0;
}

void lx_plugins_reload_drop(lx_daemon_t *d) {
  for (size_t i = 0; i < d->n_hosts; i++) {
    lx_host_t *h = d->hosts[i];
    if (h->next && h->plugin->close)
      h->plugin->close(h->next);
    h->next = NULL;
    free(h->next_used);
    h->next_used = NULL;
  }
}

void lx_plugins_reload_take(lx_daemon_t *d) {
  for (size_t i = 0; i < d->n_hosts; i++) {
    lx_host_t *h = d->hosts[i];
    if (h->next) {
      if (h->plugin->close)
        h->plugin->close(h->state);
      h->state = h->next;
      h->next = NULL;
      free(h->used);
      h->used = h->next_used;
      h->next_used = NULL;
      lx_info(h->env.sub, "settings reloaded");
    }
    h->conf = &d->cfg.plugins[i];
    h->env.cfg = &d->cfg;
    h->env.cal = d->cal;
    h->env.kv = h->conf->kv;
    h->env.n_kv = h->conf->n_kv;
    h->env.used = h->used;
  }
}

/* --- records ------------------------------------------------------------------- */

int lx_plugins_apply(lx_daemon_t *d, MDB_txn *txn, uint64_t seq, uint64_t rat,
                     const lx_event_t *ev, const uint8_t *bytes, size_t len, lx_appeal_t *held) {
  lx_rec_t r;
  lx_txn_t t;
  if (!d->n_hosts)
    return 0;
  lx_plugin_txn_init(&t, d->store, txn, seq);
  t.held = held;
  t.held_id = ev->appeal;
  lx_plugin_rec_init(&r, seq, rat, ev, bytes, len);
  for (size_t i = 0; i < d->n_hosts && !t.failed; i++)
    if (d->hosts[i]->plugin->apply)
      d->hosts[i]->plugin->apply(d->hosts[i]->state, &t, &r);
  return lx_plugin_txn_result(&t);
}

void lx_plugins_react(lx_daemon_t *d, uint64_t seq, uint64_t rat, const lx_event_t *ev,
                      const uint8_t *bytes, size_t len) {
  lx_rec_t r;
  if (!d->n_hosts)
    return;
  lx_plugin_rec_init(&r, seq, rat, ev, bytes, len);
  for (size_t i = 0; i < d->n_hosts; i++)
    if (d->hosts[i]->plugin->react)
      d->hosts[i]->plugin->react(d->hosts[i]->state, &r);
}

void lx_plugins_start(lx_daemon_t *d) {
  int64_t now = (int64_t)lx_clock_now_ms();
  for (size_t i = 0; i < d->n_hosts; i++)
    if (d->hosts[i]->plugin->on_timer)
      d->hosts[i]->plugin->on_timer(d->hosts[i]->state, now);
  lx_alerts_sent(d);
  lx_ingest_flush_queue(d);
}

bool lx_plugins_has_type(void *daemon, const char *name, size_t len) {
  lx_daemon_t *d = daemon;
  for (size_t i = 0; i < d->n_hosts; i++)
    for (const char *const *t = d->hosts[i]->plugin->types; t && *t; t++)
      if (strlen(*t) == len && memcmp(*t, name, len) == 0)
        return true;
  return false;
}

const char *const *lx_plugins_types(lx_daemon_t *d, size_t i) {
  return i < d->n_hosts ? d->hosts[i]->plugin->types : NULL;
}

void lx_plugins_retry_later(lx_daemon_t *d, const char *actor, size_t len) {
  for (size_t i = 0; i < d->n_hosts; i++) {
    lx_host_t *h = d->hosts[i];
    if (strlen(h->plugin->name) == len && memcmp(h->plugin->name, actor, len) == 0)
      h_arm(h, (int64_t)lx_clock_now_ms() + 1000);
  }
}

int lx_plugins_progress_write(lx_daemon_t *d, MDB_txn *txn) {
  int rc = 0;
  for (size_t i = 0; i < d->n_hosts && rc == 0; i++) {
    lx_host_t *h = d->hosts[i];
    if (h->progress != h->progress_saved &&
        (rc = lx_store_progress_put(d->store, txn, h->plugin->name, h->progress)) == 0)
      h->progress_txn = h->progress;
  }
  return rc;
}

void lx_plugins_progress_committed(lx_daemon_t *d) {
  for (size_t i = 0; i < d->n_hosts; i++)
    d->hosts[i]->progress_saved = d->hosts[i]->progress_txn;
}

size_t lx_plugins_stats(lx_daemon_t *d, msgpack_sbuffer *out) {
  size_t n = 0;
  for (size_t i = 0; i < d->n_hosts; i++) {
    lx_host_t *h = d->hosts[i];
    uint8_t *map = NULL;
    size_t len = 0, off = 0;
    msgpack_zone z;
    msgpack_object o;
    if (!h->plugin->stats || h->plugin->stats(h->state, &map, &len) || !map)
      continue;
    msgpack_zone_init(&z, 1024);
    if (msgpack_unpack((const char *)map, len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS &&
        o.type == MSGPACK_OBJECT_MAP) {
      msgpack_packer pk;
      msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
      for (uint32_t j = 0; j < o.via.map.size; j++, n++) {
        msgpack_pack_object(&pk, o.via.map.ptr[j].key);
        msgpack_pack_object(&pk, o.via.map.ptr[j].val);
      }
    }
    msgpack_zone_destroy(&z);
    free(map);
  }
  return n;
}

/* --- query ops ------------------------------------------------------------------ */

_Static_assert((int)LX_QE_DENIED == (int)LX_EDENIED && (int)LX_QE_BADREQ == (int)LX_EBADREQ &&
                   (int)LX_QE_NOTFOUND == (int)LX_ENOTFOUND,
               "lx/plugin.h's query codes are the wire codes");

static lx_host_t *host_of_op(lx_daemon_t *d, const char *name) {
  for (size_t i = 0; i < d->n_hosts; i++)
    for (const char *const *o = d->hosts[i]->plugin->ops; o && *o; o++)
      if (strcmp(*o, name) == 0 && d->hosts[i]->plugin->query)
        return d->hosts[i];
  return NULL;
}

bool lx_plugins_has_op(lx_daemon_t *d, const char *name) { return host_of_op(d, name) != NULL; }

/* {ok: true} followed by the entries of the plugin's map. */
static int pack_reply(const uint8_t *reply, size_t len, msgpack_sbuffer *out) {
  msgpack_zone z;
  msgpack_object o;
  size_t off = 0;
  msgpack_zone_init(&z, 4096);
  int rc = msgpack_unpack((const char *)reply, len, &off, &z, &o) == MSGPACK_UNPACK_SUCCESS &&
                   o.type == MSGPACK_OBJECT_MAP
               ? 0
               : -1;
  if (rc == 0) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, o.via.map.size + 1);
    lx_mp_pack_cstr(&pk, "ok");
    msgpack_pack_true(&pk);
    for (uint32_t i = 0; i < o.via.map.size; i++) {
      msgpack_pack_object(&pk, o.via.map.ptr[i].key);
      msgpack_pack_object(&pk, o.via.map.ptr[i].val);
    }
  }
  msgpack_zone_destroy(&z);
  return rc;
}

int lx_plugins_query(lx_daemon_t *d, const char *op, const uint8_t *req, size_t len,
                     const char *jurisdiction, MDB_txn *txn, msgpack_sbuffer *out,
                     lx_error_t *err) {
  lx_host_t *h = host_of_op(d, op);
  if (!h)
    return lx_fail(err, LX_EBADREQ, "op: unknown operation");
  lx_txn_t t = {.store = d->store, .txn = txn};
  lx_query_t q = {.op = op, .req = req, .req_len = len, .jurisdiction = jurisdiction,
                  .txn = &t, .now = (int64_t)lx_clock_now_ms()};
  int rc = h->plugin->query(h->state, &q);
  if (rc == 0 && (!q.reply || pack_reply(q.reply, q.reply_len, out))) {
    lx_error(h->env.sub, "%s: the plugin's reply is not a MessagePack map", op);
    rc = lx_fail(err, LX_EINTERNAL, "the %s plugin gave no answer", h->plugin->name);
  } else if (rc) {
    if (rc != LX_EDENIED && rc != LX_EBADREQ && rc != LX_ENOTFOUND)
      rc = LX_EINTERNAL;
    lx_fail(err, rc, "%s", q.error[0] ? q.error : "the request was refused");
  }
  free(q.reply);
  return rc;
}

/* --- the audit -------------------------------------------------------------------- */

int lx_plugins_check(lx_daemon_t *d, MDB_txn *txn, uint64_t seq, uint64_t rat,
                     const lx_event_t *ev, const uint8_t *bytes, size_t len, char *why,
                     size_t cap) {
  lx_rec_t r;
  lx_txn_t t;
  if (ev->type != LX_EV_PLUGIN)
    return 0;
  lx_plugin_rec_init(&r, seq, rat, ev, bytes, len);
  for (size_t i = 0; i < d->n_hosts; i++) {
    const lx_plugin_t *p = d->hosts[i]->plugin;
    for (const char *const *ty = p->types; p->check && ty && *ty; ty++)
      if (strlen(*ty) == ev->type_name.n && memcmp(*ty, ev->type_name.p, ev->type_name.n) == 0) {
        lx_plugin_txn_init(&t, d->store, txn, seq);
        t.write = false; /* the check only reads */
        return p->check(d->hosts[i]->state, &t, &r, why, cap) ? 1 : 0;
      }
  }
  return 0;
}
