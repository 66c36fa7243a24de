/* SPDX-License-Identifier: MIT
 *
 * jetstream.c: the jetstream plugin's loop side. It mirrors the county's
 * log to a replicated NATS JetStream stream (PROTOCOL.md, "Mirror to NATS
 * JetStream"); the work itself runs on a thread of its own (mirror.c), so a
 * slow or absent cluster never reaches the daemon's loop.
 *
 * What runs here, on the loop: init reads the config (servers, stream,
 * replicas, window); react only notes the newest committed seq; on_timer
 * starts the thread (the first call, at start: not in an audit or a config
 * check, which never call it), hands the acknowledged position to the store
 * once a second (progress_set, written with the next batch) and, when the
 * thread found the stream and the log disagree, appends a `mirror` record
 * (kind `diverged`), whose react publishes the alert on the county's topic.
 * stats adds the mirror's state, position and lag.
 *
 *   - name: jetstream
 *     servers: [nats://127.0.0.1:4222]   # any node(s) of the cluster
 *     stream: LX_QD                      # default: LX_ and the county code in capitals
 *     replicas: 3                        # when the plugin creates the stream (1 to 5)
 *     window: 1024                       # publishes in flight at most (1 to 65536)
 */
#include <ctype.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <msgpack.h>
#include <nats/nats.h>
#include <stdlib.h>
#include <string.h>

#include "../common/lxp.h"
#include "mirror.h"

#define PROGRESS_EVERY_MS 1000

static const char *const js_types[] = {"mirror", NULL};
static const char *const js_status_names[] = {"starting", "running", "retrying", "diverged",
                                              "stopped"};

/* --- config ------------------------------------------------------------------ */

/* nats://HOST:PORT (or tls://), PORT 1 to 65535. */
static bool js_url_ok(const char *u) {
  const char *p = !strncmp(u, "nats://", 7) ? u + 7 : !strncmp(u, "tls://", 6) ? u + 6 : NULL;
  const char *colon = p ? strrchr(p, ':') : NULL;
  if (!colon || colon == p || strlen(p) > 255)
    return false;
  for (const char *q = p; q < colon; q++)
    if (!isalnum((unsigned char)*q) && !strchr(".-_[]:@", *q))
      return false;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  return colon[1] && !*end && port >= 1 && port <= 65535;
}

static int js_conf_servers(js_state_t *s) {
  const lx_conf_item_t *items;
  size_t n;
  int rc = s->api->conf_items(s->host, "servers", LX_CONF_LIST, &items, &n);
  if (rc == 1 || (rc == 0 && n == 0)) {
    s->api->conf_error(s->host, "servers", "required: a list of nats://HOST:PORT URLs");
    return -1;
  }
  if (rc < 0)
    return -1;
  if (n > JS_SERVERS_MAX) {
    s->api->conf_error(s->host, "servers", "at most %d servers", JS_SERVERS_MAX);
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (!js_url_ok(items[i].value)) {
      s->api->conf_item_error(s->host, "servers", &items[i],
                              "\"%s\" is not a nats://HOST:PORT URL", items[i].value);
      return -1;
    }
    s->servers[s->n_servers++] = strdup(items[i].value);
  }
  return 0;
}

/* A stream name: 1 to 32 of A-Z a-z 0-9 _ - (NATS forbids . * > and spaces). */
static int js_conf_stream(js_state_t *s) {
  const char *v = s->api->conf_str(s->host, "stream");
  if (!v) {
    int n = snprintf(s->stream, sizeof s->stream, "LX_%s", s->county);
    for (int i = 3; i < n; i++)
      s->stream[i] = (char)toupper((unsigned char)s->stream[i]); /* a-z 0-9 -: all valid */
    return 0;
  }
  size_t len = strlen(v);
  bool ok = len >= 1 && len <= 32;
  for (size_t i = 0; ok && i < len; i++)
    ok = isalnum((unsigned char)v[i]) || v[i] == '_' || v[i] == '-';
  if (!ok) {
    s->api->conf_error(s->host, "stream", "1 to 32 of A-Z a-z 0-9 _ -");
    return -1;
  }
  snprintf(s->stream, sizeof s->stream, "%s", v);
  return 0;
}

static void js_free(js_state_t *s) {
  for (int i = 0; i < s->n_servers; i++)
    free(s->servers[i]);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  free(s);
}

/* libnats stays mapped until the process exits. nats_CloseAndWait returns
 * once its last internal thread has released the library, but that thread
 * is still inside libnats for a few instructions more (natsLib_Release
 * unlocking its mutex); unloading libnats with this object then would pull
 * the code from under it (a crash at shutdown, seen under load). */
static void js_keep_libnats(void) {
  Dl_info info;
  if (dladdr((void *)nats_Open, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
}

static int js_init(const lx_host_api_t *api, lx_host_t *host, void **state) {
  js_state_t *s = calloc(1, sizeof *s);
  if (!s)
    return -1;
  js_keep_libnats();
  s->api = api;
  s->host = host;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  const char *county = api->county(host);
  int bad = 0;
  if (!county) {
    api->conf_error(host, "name", "the mirror needs a configuration with exactly one county");
    bad = 1;
  } else {
    snprintf(s->county, sizeof s->county, "%s", county);
  }
  bad |= js_conf_servers(s) != 0;
  bad |= county && js_conf_stream(s) != 0;
  bad |= lxp_conf_int_i(s->api, s->host, "replicas", 3, 1, 5, &s->replicas) != 0;
  bad |= lxp_conf_int_i(s->api, s->host, "window", 1024, 1, 65536, &s->window) != 0;
  if (bad) {
    js_free(s);
    return -1;
  }
  api->progress_get(host, &s->saved);
  uint64_t head = 0;
  api->log_read(host, 0, 0, NULL, NULL, &head);
  atomic_store(&s->head, head);
  atomic_store(&s->acked, s->saved);
  *state = s;
  return 0;
}

/* --- records and the alert ------------------------------------------------------- */

static bool js_is(lx_slice_t s, const char *lit) {
  return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

static void js_react(void *state, const lx_rec_t *r) {
  js_state_t *s = state;
  atomic_store(&s->head, r->seq);
  if (atomic_exchange(&s->idle, false)) {
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
  }
  if (r->type == LX_REC_PLUGIN && js_is(r->type_name, "mirror")) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pthread_mutex_lock(&s->mu); /* the thread has stopped; the lock is for form */
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "stream", 6);
    msgpack_pack_str_with_body(&pk, s->stream, strlen(s->stream));
    msgpack_pack_str_with_body(&pk, "stream_seq", 10);
    msgpack_pack_uint64(&pk, s->diverged_seq);
    msgpack_pack_str_with_body(&pk, "difference", 10);
    msgpack_pack_str_with_body(&pk, s->diverged_text, strlen(s->diverged_text));
    pthread_mutex_unlock(&s->mu);
    s->api->publish(s->host, r, "diverged", r->unit, (const uint8_t *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
  }
}

/* The `mirror` record: {kind: diverged, stream, stream_seq, difference}. */
static void js_append_alert(js_state_t *s) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  pthread_mutex_lock(&s->mu);
  s->diverged_pending = false;
  s->api->log(s->host, LX_PLOG_ERROR, "mirror stopped: %s", s->diverged_text);
  msgpack_pack_map(&pk, 4);
  msgpack_pack_str_with_body(&pk, "kind", 4);
  msgpack_pack_str_with_body(&pk, "diverged", 8);
  msgpack_pack_str_with_body(&pk, "stream", 6);
  msgpack_pack_str_with_body(&pk, s->stream, strlen(s->stream));
  msgpack_pack_str_with_body(&pk, "stream_seq", 10);
  msgpack_pack_uint64(&pk, s->diverged_seq);
  msgpack_pack_str_with_body(&pk, "difference", 10);
  msgpack_pack_str_with_body(&pk, s->diverged_text, strlen(s->diverged_text));
  pthread_mutex_unlock(&s->mu);
  lx_slice_t unit = {s->county, strlen(s->county)};
  if (s->api->append(s->host, "mirror", unit, (const uint8_t *)sb.data, sb.size) == 0)
    s->alerted = true;
  msgpack_sbuffer_destroy(&sb);
}

static void js_on_timer(void *state, int64_t now) {
  js_state_t *s = state;
  if (!s->started && atomic_load(&s->status) == JS_STARTING)
    js_mirror_start(s);
  s->api->progress_set(s->host, atomic_load(&s->acked));
  pthread_mutex_lock(&s->mu);
  bool pending = s->diverged_pending && !s->alerted;
  pthread_mutex_unlock(&s->mu);
  if (pending)
    js_append_alert(s);
  s->api->arm(s->host, now + PROGRESS_EVERY_MS);
}

/* --- stats ------------------------------------------------------------------------ */

static int take_rat(void *arg, const lx_rec_t *r, const uint8_t *hash) {
  *(int64_t *)arg = r->rat;
  return 1;
}

/* mirror_state, mirror_stream, mirror_position (acknowledged by JetStream),
 * mirror_lag_records (committed, not yet acknowledged) and
 * mirror_lag_seconds (how long the oldest of those has been committed). */
static int js_stats(void *state, uint8_t **map, size_t *len) {
  js_state_t *s = state;
  uint64_t acked = atomic_load(&s->acked), head = 0;
  int64_t rat = -1;
  s->api->log_read(s->host, acked + 1, 1, take_rat, &rat, &head);
  double lag_s = rat >= 0 ? (double)(s->api->now(s->host) - rat) / 1000.0 : 0.0;
  int st = atomic_load(&s->status);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 5);
  msgpack_pack_str_with_body(&pk, "mirror_state", 12);
  msgpack_pack_str_with_body(&pk, js_status_names[st], strlen(js_status_names[st]));
  msgpack_pack_str_with_body(&pk, "mirror_stream", 13);
  msgpack_pack_str_with_body(&pk, s->stream, strlen(s->stream));
  msgpack_pack_str_with_body(&pk, "mirror_position", 15);
  msgpack_pack_uint64(&pk, acked);
  msgpack_pack_str_with_body(&pk, "mirror_lag_records", 18);
  msgpack_pack_uint64(&pk, head > acked ? head - acked : 0);
  msgpack_pack_str_with_body(&pk, "mirror_lag_seconds", 18);
  msgpack_pack_double(&pk, lag_s > 0 ? lag_s : 0.0);
  *map = (uint8_t *)sb.data; /* the host frees it */
  *len = sb.size;
  return 0;
}

static void js_close(void *state) {
  js_state_t *s = state;
  bool used = s->started;
  js_mirror_stop(s);
  /* libnats keeps threads of its own beyond every connection; the host
   * unloads this object (and with it libnats) after close, so they must be
   * gone first. That makes one jetstream entry per config the rule. */
  if (used)
    nats_CloseAndWait(5000);
  js_free(s);
}

const lx_plugin_t lx_plugin_entry = {
    .abi = LX_PLUGIN_ABI,
    .name = "jetstream",
    .description = "mirrors the log, in order, to a replicated NATS JetStream stream",
    .types = js_types,
    .init = js_init,
    .react = js_react,
    .on_timer = js_on_timer,
    .close = js_close,
    .stats = js_stats,
};
