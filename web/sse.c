/* SPDX-License-Identifier: MIT
 *
 * sse.c: the text/event-stream of /api/alerts (alerts.h).
 *
 * Each stream is a libmicrohttpd content reader with a cursor (the seq up
 * to which it has sent or skipped every alert) and a small buffer. When
 * there is nothing to send it parks: it suspends its connection and joins
 * the parked list; the follower resumes every parked stream when an alert
 * arrives, and a timer does so every KEEPALIVE_S so each stream sends a
 * comment (which also finds the clients that went away). A stream only
 * takes bytes when the socket can take them, so a client that never reads
 * holds its own socket buffer and nothing else, and is dropped by the
 * connection timeout. A cursor older than the ring is filled in from the
 * log, one replay page at a time.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "alerts.h"
#include "auth.h"

#define CHUNK_MAX 32768
#define BACKFILL_PAGE 200
#define KEEPALIVE_S 15
#define SNDBUF_BYTES 32768

typedef struct stream {
  struct MHD_Connection *conn;
  struct stream *prev, *next; /* in the parked list */
  bool parked;
  uint64_t cursor;
  char prefix[LXW_JUR_MAX + 2];
  lxw_buf_t buf;
  time_t last_write;
  bool started;
} stream_t;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static stream_t *g_parked;
static atomic_int g_clients;
static atomic_bool g_closing;

int lxw_sse_clients(void) { return atomic_load(&g_clients); }

static void unpark_locked(stream_t *s) {
  if (!s->parked)
    return;
  if (s->prev)
    s->prev->next = s->next;
  else
    g_parked = s->next;
  if (s->next)
    s->next->prev = s->prev;
  s->prev = s->next = NULL;
  s->parked = false;
}

void lxw_sse_wake_all(void) {
  pthread_mutex_lock(&g_mu);
  while (g_parked) {
    stream_t *s = g_parked;
    unpark_locked(s);
    MHD_resume_connection(s->conn);
  }
  pthread_mutex_unlock(&g_mu);
}

void lxw_sse_shutdown(void) {
  atomic_store(&g_closing, true);
  lxw_sse_wake_all();
}

typedef struct backfill_req {
  stream_t *s;
  uint64_t to;
} backfill_req_t;

static void pack_backfill(msgpack_packer *pk, void *arg) {
  backfill_req_t *b = arg;
  lxw_mp_pack_cstr(pk, "from");
  msgpack_pack_uint64(pk, b->s->cursor + 1);
  lxw_mp_pack_cstr(pk, "to");
  msgpack_pack_uint64(pk, b->to);
  lxw_mp_pack_cstr(pk, "limit");
  msgpack_pack_uint32(pk, BACKFILL_PAGE);
  lxw_mp_pack_cstr(pk, "unit");
  lxw_mp_pack_cstr(pk, b->s->prefix);
  lxw_mp_pack_cstr(pk, "types");
  lxw_alerts_pack_types(pk);
}

/* One replay page of the alerts between the cursor and the ring's base.
 * Returns 0, or -1 when the daemon did not answer (the stream ends; the
 * browser reconnects with its Last-Event-ID). */
static int backfill(stream_t *s, uint64_t base) {
  backfill_req_t b = {s, base};
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  int rc = lxw_dc_op("replay", 5, pack_backfill, &b, &u);
  const msgpack_object *recs = rc ? NULL : lxw_mp_get(&u.data, "records");
  if (!recs || recs->type != MSGPACK_OBJECT_ARRAY) {
    msgpack_unpacked_destroy(&u);
    return -1;
  }
  for (uint32_t i = 0; i < recs->via.array.size; i++) {
    uint64_t seq;
    char unit[LXW_JUR_MAX + 1];
    if (lxw_alert_from_record(&recs->via.array.ptr[i], s->prefix, &s->buf, &seq, unit,
                              sizeof unit) < 0)
      rc = -1;
  }
  uint64_t next = (uint64_t)lxw_mp_int(lxw_mp_get(&u.data, "next"), s->cursor + 1);
  s->cursor = next - 1 < base ? next - 1 : base;
  msgpack_unpacked_destroy(&u);
  return rc;
}

/* Refills the stream's buffer; returns 1 when it has bytes, 0 when there
 * is nothing (parked: *gen says what it waited on), -1 to end. */
static int refill(stream_t *s, uint64_t *gen) {
  s->buf.n = s->buf.off = 0;
  for (int tries = 0; tries < 50; tries++) {
    uint64_t base;
    int rc = lxw_ring_read(&s->cursor, s->prefix, &s->buf, CHUNK_MAX, gen, &base);
    if (rc < 0 && backfill(s, base))
      return -1;
    if (s->buf.n)
      return 1;
    if (rc == 0)
      break;
  }
  if (time(NULL) - s->last_write >= KEEPALIVE_S)
    return lxw_buf_put(&s->buf, ": keepalive\n\n", 13) ? -1 : 1;
  return s->buf.n ? 1 : 0;
}

static ssize_t read_stream(void *cls, uint64_t pos, char *out, size_t max) {
  stream_t *s = cls;
  if (atomic_load(&g_closing))
    return MHD_CONTENT_READER_END_OF_STREAM;
  if (!s->started) { /* tell the browser how soon to come back */
    s->started = true;
    if (lxw_buf_put(&s->buf, "retry: 2000\n\n", 13))
      return MHD_CONTENT_READER_END_WITH_ERROR;
  }
  uint64_t gen = 0;
  if (s->buf.off >= s->buf.n) {
    int rc = refill(s, &gen);
    if (rc < 0)
      return MHD_CONTENT_READER_END_OF_STREAM;
    if (rc == 0) {
      /* Park: suspend first, then join the list unless an alert came in
       * meanwhile (then resume at once): no wake-up is lost. */
      MHD_suspend_connection(s->conn);
      pthread_mutex_lock(&g_mu);
      bool missed = lxw_ring_generation() != gen;
      if (!missed) {
        s->parked = true;
        s->next = g_parked;
        if (g_parked)
          g_parked->prev = s;
        g_parked = s;
      }
      pthread_mutex_unlock(&g_mu);
      if (missed)
        MHD_resume_connection(s->conn);
      return 0;
    }
  }
  size_t n = s->buf.n - s->buf.off < max ? s->buf.n - s->buf.off : max;
  memcpy(out, s->buf.p + s->buf.off, n);
  s->buf.off += n;
  s->last_write = time(NULL);
  return (ssize_t)n;
}

static void free_stream(void *cls) {
  stream_t *s = cls;
  pthread_mutex_lock(&g_mu);
  unpark_locked(s);
  pthread_mutex_unlock(&g_mu);
  free(s->buf.p);
  free(s);
  atomic_fetch_sub(&g_clients, 1);
}

struct MHD_Response *lxw_sse_response(struct MHD_Connection *conn, const char *prefix,
                                      uint64_t last_id, bool has_last) {
  stream_t *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->conn = conn;
  snprintf(s->prefix, sizeof s->prefix, "%s", prefix);
  s->cursor = has_last ? last_id : lxw_ring_last();
  s->last_write = time(NULL);
  struct MHD_Response *r =
      MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, read_stream, s, free_stream);
  if (!r) {
    free(s);
    return NULL;
  }
  atomic_fetch_add(&g_clients, 1);
  /* A small kernel buffer: a client that stops reading holds little. */
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  int sndbuf = SNDBUF_BYTES;
  if (ci)
    setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
  MHD_add_response_header(r, "Cache-Control", "no-store");
  MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* behind nginx: do not buffer */
  return r;
}
