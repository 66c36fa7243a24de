/* SPDX-License-Identifier: MIT
 *
 * alerts.c: the follower thread and its ring of recent alerts (alerts.h).
 *
 * The SUB socket brings alerts as they happen; a socket monitor says when
 * it (re)connects to the daemon, and each time the follower replays the
 * alert records after the last one it holds, so alerts published while the
 * daemon or the link was down are not lost. An alert whose seq is not
 * after the last one held is a repeat (the replay already brought it) and
 * is skipped: the ring stays in seq order without duplicates.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "alerts.h"
#include "auth.h"

#define RING_SLOTS 4096
#define TYPES_MAX 32

typedef struct slot {
  uint64_t seq;
  char unit[LXW_JUR_MAX + 1];
  char *text;
  size_t len;
} slot_t;

static slot_t g_ring[RING_SLOTS];
static size_t g_head, g_count; /* next slot to write; slots in use */
static uint64_t g_base, g_last, g_gen;
static bool g_ready;
static char g_types[TYPES_MAX][32];
static int g_n_types;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_t g_thread;
static atomic_bool g_stop;
static const lxw_conf_t *g_conf;

/* The record types that are not alerts; every other type is one. */
static const char *const not_alerts[] = {"visit", "appeal", "resolution", "feedback",
                                         "checkpoint", "config", NULL};

int lxw_buf_put(lxw_buf_t *b, const char *s, size_t n) {
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap * 2 : 4096;
    while (cap < b->n + n)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
      return -1;
    b->p = p, b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  return 0;
}

/* "id: SEQ\nevent: KIND\ndata: JSON\n\n" */
static int put_event(lxw_buf_t *out, uint64_t seq, const char *kind, cJSON *j) {
  char *data = cJSON_PrintUnformatted(j);
  char head[128];
  if (!data)
    return -1;
  int hn = snprintf(head, sizeof head, "id: %llu\nevent: %.60s\ndata: ", (unsigned long long)seq, kind);
  int rc = lxw_buf_put(out, head, (size_t)hn) || lxw_buf_put(out, data, strlen(data)) ||
                   lxw_buf_put(out, "\n\n", 2)
               ? -1
               : 0;
  free(data);
  return rc;
}

static bool is_alert_type(const char *t) {
  for (int i = 0; not_alerts[i]; i++)
    if (strcmp(t, not_alerts[i]) == 0)
      return false;
  return true;
}

/* The alert map a record stands for, as the daemon publishes it: seq,
 * kind, unit, at, the body's fields (its kind becomes the alert's), and
 * for an escalation the tier that must act now. */
static cJSON *alert_of_event(uint64_t seq, const msgpack_object *ev, char *kind, size_t kn,
                             char *unit, size_t un) {
  char type[64];
  const msgpack_object *body = lxw_mp_get(ev, "body");
  lxw_mp_str(lxw_mp_get(ev, "type"), type, sizeof type);
  lxw_mp_str(lxw_mp_get(ev, "unit"), unit, un);
  if (!type[0] || !is_alert_type(type) || !unit[0] || !body || body->type != MSGPACK_OBJECT_MAP)
    return NULL;
  bool esc = strcmp(type, "escalation") == 0;
  if (esc)
    lxw_mp_str(lxw_mp_get(body, "kind"), kind, kn);
  else
    snprintf(kind, kn, "%s", type);
  cJSON *j = cJSON_CreateObject();
  cJSON_AddNumberToObject(j, "seq", (double)seq);
  cJSON_AddStringToObject(j, "kind", kind);
  cJSON_AddStringToObject(j, "unit", unit);
  cJSON_AddNumberToObject(j, "at", (double)lxw_mp_int(lxw_mp_get(ev, "at"), 0));
  cJSON *b = lxw_mp_to_json(body);
  for (cJSON *it = b ? b->child : NULL, *next; it; it = next) {
    next = it->next;
    if (strcmp(it->string, "kind") != 0)
      cJSON_AddItemToObject(j, it->string, cJSON_DetachItemViaPointer(b, it));
  }
  cJSON_Delete(b);
  if (esc) {
    char to[16];
    cJSON_AddStringToObject(j, "tier", lxw_mp_str(lxw_mp_get(body, "to"), to, sizeof to));
  }
  return j;
}

int lxw_alert_from_record(const msgpack_object *rec, const char *prefix, lxw_buf_t *out,
                          uint64_t *seq, char *unit, size_t un) {
  const msgpack_object *evb = lxw_mp_get(rec, "ev");
  *seq = (uint64_t)lxw_mp_int(lxw_mp_get(rec, "seq"), 0);
  if (!evb || evb->type != MSGPACK_OBJECT_BIN)
    return 0;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  int rc = 0;
  char kind[64];
  if (msgpack_unpack_next(&u, evb->via.bin.ptr, evb->via.bin.size, &off) == MSGPACK_UNPACK_SUCCESS) {
    cJSON *j = alert_of_event(*seq, &u.data, kind, sizeof kind, unit, un);
    if (j && (!prefix || lxw_within(prefix, unit, strlen(unit))))
      rc = put_event(out, *seq, kind, j) ? -1 : 1;
    cJSON_Delete(j);
  }
  msgpack_unpacked_destroy(&u);
  return rc;
}

void lxw_alerts_pack_types(msgpack_packer *pk) {
  pthread_mutex_lock(&g_mu);
  msgpack_pack_array(pk, (uint32_t)g_n_types);
  for (int i = 0; i < g_n_types; i++)
    lxw_mp_pack_cstr(pk, g_types[i]);
  pthread_mutex_unlock(&g_mu);
}

/* --- the ring ------------------------------------------------------------------ */

/* Appends one alert (seq after g_last); returns true if it was new. */
static bool ring_push(uint64_t seq, const char *unit, const char *text, size_t len) {
  char *copy = malloc(len);
  if (!copy)
    return false;
  memcpy(copy, text, len);
  pthread_mutex_lock(&g_mu);
  bool fresh = seq > g_last;
  if (fresh) {
    slot_t *s = &g_ring[g_head];
    if (g_count == RING_SLOTS) { /* the oldest leaves: the ring now starts after it */
      g_base = s->seq;
      free(s->text);
    } else {
      g_count++;
    }
    s->seq = seq;
    snprintf(s->unit, sizeof s->unit, "%s", unit);
    s->text = copy, s->len = len;
    g_head = (g_head + 1) % RING_SLOTS;
    g_last = seq;
    g_gen++;
  }
  pthread_mutex_unlock(&g_mu);
  if (!fresh)
    free(copy);
  return fresh;
}

int lxw_ring_read(uint64_t *cursor, const char *prefix, lxw_buf_t *out, size_t max,
                  uint64_t *gen, uint64_t *base) {
  int rc = 0;
  pthread_mutex_lock(&g_mu);
  *gen = g_gen;
  *base = g_base;
  if (!g_ready || *cursor < g_base) {
    rc = g_ready ? -1 : 0;
  } else {
    size_t first = (g_head + RING_SLOTS - g_count) % RING_SLOTS;
    for (size_t i = 0; i < g_count && out->n < max; i++) {
      const slot_t *s = &g_ring[(first + i) % RING_SLOTS];
      if (s->seq <= *cursor)
        continue;
      *cursor = s->seq;
      if (lxw_within(prefix, s->unit, strlen(s->unit))) {
        if (lxw_buf_put(out, s->text, s->len))
          break;
        rc = 1;
      }
    }
    if (out->n < max && g_last > *cursor)
      *cursor = g_last; /* nothing else in its prefix */
  }
  pthread_mutex_unlock(&g_mu);
  return rc;
}

uint64_t lxw_ring_generation(void) {
  pthread_mutex_lock(&g_mu);
  uint64_t g = g_gen;
  pthread_mutex_unlock(&g_mu);
  return g;
}

uint64_t lxw_ring_last(void) {
  pthread_mutex_lock(&g_mu);
  uint64_t l = g_last;
  pthread_mutex_unlock(&g_mu);
  return l;
}

bool lxw_alerts_ready(void) {
  pthread_mutex_lock(&g_mu);
  bool r = g_ready;
  pthread_mutex_unlock(&g_mu);
  return r;
}

/* --- the follower thread ------------------------------------------------------- */

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Learns the alert types from the daemon's stats: every type it lists
 * that is not one of not_alerts. */
static int fetch_types(void) {
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  int rc = lxw_dc_op("stats", 0, NULL, NULL, &u);
  const msgpack_object *t = rc ? NULL : lxw_mp_get(&u.data, "types");
  if (t && t->type == MSGPACK_OBJECT_MAP) {
    pthread_mutex_lock(&g_mu);
    g_n_types = 0;
    for (uint32_t i = 0; i < t->via.map.size && g_n_types < TYPES_MAX; i++) {
      char name[32];
      lxw_mp_str(&t->via.map.ptr[i].key, name, sizeof name);
      if (name[0] && is_alert_type(name))
        strcpy(g_types[g_n_types++], name);
    }
    pthread_mutex_unlock(&g_mu);
  } else {
    rc = -1;
  }
  msgpack_unpacked_destroy(&u);
  return rc;
}

typedef struct page_req {
  uint64_t from;
} page_req_t;

static void pack_page(msgpack_packer *pk, void *arg) {
  page_req_t *p = arg;
  lxw_mp_pack_cstr(pk, "from");
  msgpack_pack_uint64(pk, p->from);
  lxw_mp_pack_cstr(pk, "limit");
  msgpack_pack_uint32(pk, 1000);
  lxw_mp_pack_cstr(pk, "types");
  lxw_alerts_pack_types(pk);
}

/* Replays the alert records after the last one held into the ring. */
static int catch_up(void) {
  page_req_t pr;
  for (;;) {
    pthread_mutex_lock(&g_mu);
    pr.from = g_last + 1;
    pthread_mutex_unlock(&g_mu);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = lxw_dc_op("replay", 3, pack_page, &pr, &u);
    const msgpack_object *recs = rc ? NULL : lxw_mp_get(&u.data, "records");
    if (!recs || recs->type != MSGPACK_OBJECT_ARRAY) {
      msgpack_unpacked_destroy(&u);
      return -1;
    }
    lxw_buf_t b = {0};
    for (uint32_t i = 0; i < recs->via.array.size; i++) {
      uint64_t seq;
      char unit[LXW_JUR_MAX + 1];
      b.n = 0;
      if (lxw_alert_from_record(&recs->via.array.ptr[i], NULL, &b, &seq, unit, sizeof unit) == 1)
        ring_push(seq, unit, b.p, b.n);
    }
    free(b.p);
    uint64_t next = (uint64_t)lxw_mp_int(lxw_mp_get(&u.data, "next"), 0);
    uint64_t head = (uint64_t)lxw_mp_int(lxw_mp_get(&u.data, "head"), 0);
    msgpack_unpacked_destroy(&u);
    pthread_mutex_lock(&g_mu);
    if (next - 1 > g_last) /* no alert up to next-1: the ring is complete to there */
      g_last = next - 1, g_gen++;
    pthread_mutex_unlock(&g_mu);
    if (next > head)
      return 0;
  }
}

/* After each (re)connection: learn the types, then start the ring at the
 * head (first time) or fill it from the log (later times). */
static int sync_with_daemon(void) {
  if (fetch_types())
    return -1;
  if (!lxw_alerts_ready()) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = lxw_dc_op("head", 0, NULL, NULL, &u);
    if (rc == 0 && lxw_mp_ok(&u.data)) {
      pthread_mutex_lock(&g_mu);
      g_base = g_last = (uint64_t)lxw_mp_int(lxw_mp_get(&u.data, "seq"), 0);
      g_ready = true;
      pthread_mutex_unlock(&g_mu);
    }
    msgpack_unpacked_destroy(&u);
    return rc;
  }
  int rc = catch_up();
  lxw_sse_wake_all();
  return rc;
}

static void on_live(void *sub) {
  zmq_msg_t topic, body;
  zmq_msg_init(&topic);
  zmq_msg_init(&body);
  int more = 0;
  size_t ml = sizeof more;
  if (zmq_msg_recv(&topic, sub, ZMQ_DONTWAIT) < 0 ||
      (zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &ml), !more) ||
      zmq_msg_recv(&body, sub, ZMQ_DONTWAIT) < 0)
    goto out;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  if (lxw_alerts_ready() &&
      msgpack_unpack_next(&u, zmq_msg_data(&body), zmq_msg_size(&body), &off) == MSGPACK_UNPACK_SUCCESS) {
    uint64_t seq = (uint64_t)lxw_mp_int(lxw_mp_get(&u.data, "seq"), 0);
    char kind[64], unit[LXW_JUR_MAX + 1];
    lxw_mp_str(lxw_mp_get(&u.data, "kind"), kind, sizeof kind);
    lxw_mp_str(lxw_mp_get(&u.data, "unit"), unit, sizeof unit);
    cJSON *j = lxw_mp_to_json(&u.data);
    lxw_buf_t b = {0};
    if (j && seq && kind[0] && put_event(&b, seq, kind, j) == 0 && ring_push(seq, unit, b.p, b.n))
      lxw_sse_wake_all();
    free(b.p);
    cJSON_Delete(j);
  }
  msgpack_unpacked_destroy(&u);
out:
  zmq_msg_close(&topic);
  zmq_msg_close(&body);
}

/* Reads one monitor event; returns its id. */
static int monitor_event(void *mon) {
  zmq_msg_t m;
  int ev = 0, more = 0;
  size_t ml = sizeof more;
  zmq_msg_init(&m);
  if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) >= 0 && zmq_msg_size(&m) >= 2) {
    uint16_t id;
    memcpy(&id, zmq_msg_data(&m), 2);
    ev = id;
  }
  zmq_getsockopt(mon, ZMQ_RCVMORE, &more, &ml);
  while (more) { /* the address frame */
    zmq_msg_close(&m);
    zmq_msg_init(&m);
    zmq_msg_recv(&m, mon, 0);
    zmq_getsockopt(mon, ZMQ_RCVMORE, &more, &ml);
  }
  zmq_msg_close(&m);
  return ev;
}

static void *follow(void *arg) {
  void *ctx = lxw_dc_context();
  void *sub = zmq_socket(ctx, ZMQ_SUB), *mon = zmq_socket(ctx, ZMQ_PAIR);
  int zero = 0, ivl = 100, hwm = 100000;
  zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(sub, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
  zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm);
  zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero);
  lxw_dc_secure(sub);
  zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
  zmq_socket_monitor(sub, "inproc://lxw-alerts-monitor", ZMQ_EVENT_CONNECTED);
  zmq_connect(mon, "inproc://lxw-alerts-monitor");
  zmq_connect(sub, g_conf->alerts);
  int64_t sync_at = -1; /* when to sync with the daemon; -1: not needed */
  int64_t keepalive_at = now_ms() + 5000;
  while (!atomic_load(&g_stop)) {
    zmq_pollitem_t it[2] = {{sub, 0, ZMQ_POLLIN, 0}, {mon, 0, ZMQ_POLLIN, 0}};
    zmq_poll(it, 2, 200);
    for (int i = 0; i < 256 && (it[0].revents & ZMQ_POLLIN); i++) {
      on_live(sub);
      zmq_pollitem_t again = {sub, 0, ZMQ_POLLIN, 0};
      if (zmq_poll(&again, 1, 0) != 1)
        break;
    }
    /* Connected: give the subscription a moment to reach the daemon,
     * then fill in from the log what went by meanwhile. */
    if ((it[1].revents & ZMQ_POLLIN) && monitor_event(mon) == ZMQ_EVENT_CONNECTED)
      sync_at = now_ms() + 150;
    if (sync_at >= 0 && now_ms() >= sync_at)
      sync_at = sync_with_daemon() == 0 ? -1 : now_ms() + 1000;
    if (now_ms() >= keepalive_at) { /* parked streams send a comment when due */
      lxw_sse_wake_all();
      keepalive_at = now_ms() + 5000;
    }
  }
  zmq_socket_monitor(sub, NULL, 0);
  zmq_close(mon);
  zmq_close(sub);
  return NULL;
}

int lxw_alerts_start(const lxw_conf_t *c, char *err, size_t errlen) {
  g_conf = c;
  if (pthread_create(&g_thread, NULL, follow, NULL)) {
    snprintf(err, errlen, "cannot start the alerts thread");
    return -1;
  }
  return 0;
}

void lxw_alerts_stop(void) {
  atomic_store(&g_stop, true);
  pthread_join(g_thread, NULL);
}
