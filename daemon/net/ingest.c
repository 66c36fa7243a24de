/* SPDX-License-Identifier: MIT
 *
 * ingest.c: events in, durable, acked (PROTOCOL.md "Events" and "Ack").
 *
 * Design: group commit. Each time the ingest socket has input, everything
 * waiting (up to BATCH_MAX requests) is read and decoded; the valid events
 * go into one LMDB write transaction (dedup, state checks, append, indexes),
 * which is committed with one flush; then every request of the batch is
 * answered, in the order it arrived, rejections included, so a pipelining
 * peer sees its replies in order. An ack is never sent before the commit
 * has returned. While a commit flushes, new requests queue in ZeroMQ and
 * form the next batch: latency stays near one flush, and throughput grows
 * with load.
 *
 * A full map aborts the whole batch, grows the map and runs the batch
 * again; at the ceiling (or on a full disk) every event of the batch is
 * answered E_FULL and nothing of it is stored.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "auth.h"
#include "census.h"
#include "checkpoint.h"
#include "clock.h"
#include "daemon.h"
#include "log.h"
#include "plugin_host.h"

#define BATCH_MAX 4096
#define ROUNDS_PER_WAKEUP 8
#define QUEUE_ROUNDS 64

typedef struct pending {
  bool internal;    /* written by the daemon: no peer to answer */
  lx_peer_t peer;
  zmq_msg_t frame;
  lx_event_t ev;
  lx_error_t err;   /* err.code 0 while the event is still good */
  size_t norm_off, norm_len;
  size_t content_off, content_len; /* in norm: the event without `by` (retries compare it) */
  uint64_t seq;
  bool dup;
} pending_t;

/* An event a plugin appended, waiting for the next internal batch. */
typedef struct queued {
  char *actor, *type, *unit;
  uint8_t *body;
  size_t body_len;
} queued_t;

struct lx_ingest {
  lx_daemon_t *d;
  pending_t *batch;
  size_t n;
  queued_t *queue;
  size_t nq, capq;
  lx_schema_ctx_t internal_schema;
  msgpack_zone zone;
  msgpack_sbuffer norm;  /* every event's normalised bytes, end to end */
  msgpack_sbuffer reply;
  msgpack_sbuffer scratch; /* an event being rewritten (with `by`) */
  msgpack_sbuffer enc;     /* a queued event being encoded */
  lx_schema_ctx_t schema;
  char id_prefix[20];      /* "lx-" and 16 random hex digits, made at start */
  uint64_t id_next;        /* the counter after it */
};

/* --- one event inside the transaction ---------------------------------- */

/* Runs one decoded event through apply.c (dedup, the appeal's state, the
 * append, the plugins). Returns 0 when the event was stored or answered
 * (dup, or rejected in p->err), or a store error that dooms the batch. */
static int apply_one(lx_ingest_t *in, MDB_txn *txn, pending_t *p, uint64_t rat) {
  lx_apply_t a = {.ev = &p->ev, .bytes = (const uint8_t *)in->norm.data + p->norm_off,
                  .len = p->norm_len,
                  .content = (const uint8_t *)in->norm.data + p->content_off,
                  .content_len = p->content_len, .rat = rat};
  int rc = lx_apply_record(in->d, txn, &a);
  p->seq = a.seq;
  p->dup = a.dup;
  if (a.err.code)
    p->err = a.err;
  return rc;
}

/* --- the batch ------------------------------------------------------------ */

static void reset_outcome(pending_t *p) {
  p->seq = 0;
  p->dup = false;
}

/* One attempt at the whole batch in one transaction. Returns 0 when it was
 * committed, or the error that aborted it (nothing of it stored). */
static int commit_batch(lx_ingest_t *in, uint64_t rat) {
  lx_store_t *s = in->d->store;
  MDB_txn *txn;
  int rc = lx_store_begin(s, &txn);
  if (rc)
    return rc;
  uint64_t seq0 = lx_store_head(s)->seq;
  for (size_t i = 0; i < in->n && rc == 0; i++) {
    pending_t *p = &in->batch[i];
    if (p->err.code)
      continue;
    reset_outcome(p);
    rc = apply_one(in, txn, p, rat);
  }
  /* A batch of only retries and rejections wrote nothing: no flush needed,
   * and it still answers when the map is full. */
  bool wrote = lx_store_next_seq(s) != seq0 + 1;
  if (rc == 0 && wrote)
    rc = lx_plugins_progress_write(in->d, txn); /* rides on this flush: no fsync of its own */
  if (rc || !wrote) {
    lx_store_abort(s, txn);
    return rc;
  }
  rc = lx_store_commit(s, txn);
  if (rc == 0)
    lx_plugins_progress_committed(in->d);
  return rc;
}

/* Commits the batch, growing the map as often as that helps. Events that
 * could not be stored get the batch's error. */
static void commit_with_growth(lx_ingest_t *in, uint64_t rat) {
  int rc;
  /* apply_one may reject an event (E_STATE) on one attempt; a retry after
   * growth must start from the decoded state, so keep which were good. */
  static bool good[BATCH_MAX]; /* the loop thread is the only caller */
  for (size_t i = 0; i < in->n; i++)
    good[i] = in->batch[i].err.code == 0;
  for (;;) {
    rc = commit_batch(in, rat);
    if (rc != LX_EFULL || lx_store_grow(in->d->store) != 0)
      break;
    for (size_t i = 0; i < in->n; i++)
      if (good[i])
        in->batch[i].err.code = 0;
  }
  if (rc) {
    if (rc == LX_EFULL)
      lx_warn("ingest", "store full: %zu event(s) answered E_FULL", in->n);
    for (size_t i = 0; i < in->n; i++)
      if (good[i])
        lx_fail(&in->batch[i].err, rc,
                rc == LX_EFULL ? "the store is full; nothing was stored, retry later"
                               : "the store failed; nothing was stored, retry later");
  } else {
    in->d->stats.batches++;
  }
}

/* --- replies --------------------------------------------------------------- */

static void pack_reply(msgpack_packer *pk, const pending_t *p) {
  bool ok = p->err.code == 0;
  msgpack_pack_map(pk, 4);
  lx_mp_pack_cstr(pk, "ok");
  ok ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
  lx_mp_pack_cstr(pk, "id");
  if (p->ev.id.p)
    lx_mp_pack_str(pk, p->ev.id.p, p->ev.id.n);
  else
    msgpack_pack_nil(pk);
  if (ok) {
    lx_mp_pack_cstr(pk, "seq");
    msgpack_pack_uint64(pk, p->seq);
    lx_mp_pack_cstr(pk, "dup");
    p->dup ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
  } else {
    lx_mp_pack_cstr(pk, "code");
    lx_mp_pack_cstr(pk, lx_strerror(p->err.code));
    lx_mp_pack_cstr(pk, "error");
    lx_mp_pack_cstr(pk, p->err.msg);
  }
}

static void answer_batch(lx_ingest_t *in) {
  msgpack_packer pk;
  lx_stats_t *st = &in->d->stats;
  msgpack_packer_init(&pk, &in->reply, msgpack_sbuffer_write);
  for (size_t i = 0; i < in->n; i++) {
    pending_t *p = &in->batch[i];
    msgpack_sbuffer_clear(&in->reply);
    pack_reply(&pk, p);
    if (p->err.code)
      st->rejected++;
    else if (p->dup)
      st->duplicates++;
    else
      st->accepted++;
    if (p->internal) {
      st->internal += p->err.code == 0;
      if (p->err.code) {
        /* A plugin's event that does not validate is a plugin bug; one the
         * store refused (E_FULL) is tried again when its timer fires. */
        lx_error("ingest", "event of %.*s refused: %s %s", (int)p->ev.actor.n, p->ev.actor.p,
                 lx_strerror(p->err.code), p->err.msg);
        lx_plugins_retry_later(in->d, p->ev.actor.p, p->ev.actor.n);
      }
    } else if (lx_router_send(in->d->ingest_sock, &p->peer, in->reply.data, in->reply.size)) {
      st->replies_lost++;
    }
  }
}

/* Offers each newly stored record to the plugins' react, in log order. */
static void react_batch(lx_ingest_t *in, uint64_t rat) {
  for (size_t i = 0; i < in->n; i++) {
    pending_t *p = &in->batch[i];
    if (p->err.code == 0 && !p->dup)
      lx_census_record(&in->d->census, &p->ev);
    if (p->err.code == 0 && !p->dup)
      lx_plugins_react(in->d, p->seq, rat, &p->ev,
                       (const uint8_t *)in->norm.data + p->norm_off, p->norm_len);
  }
  lx_alerts_sent(in->d);
}

static void clear_batch(lx_ingest_t *in) {
  for (size_t i = 0; i < in->n; i++)
    zmq_msg_close(&in->batch[i].frame);
  in->n = 0;
  msgpack_sbuffer_clear(&in->norm);
  msgpack_zone_clear(&in->zone);
}

/* Everything after the decode: one commit, the answers, the reactions. */
static void finish_batch(lx_ingest_t *in, uint64_t rat) {
  commit_with_growth(in, rat);
  answer_batch(in);
  react_batch(in, rat);
  clear_batch(in);
}

/* --- reading ---------------------------------------------------------------- */

/* With keys: only a field (or admin) key may publish, only inside its
 * jurisdiction, and the stored event names the key (`by`). */
static void authorize(lx_ingest_t *in, pending_t *p) {
  const lx_client_t *c = lx_auth_client(in->d, &p->frame);
  if (!c) {
    lx_fail(&p->err, LX_EDENIED, "the key that sent this is no longer registered");
    return;
  }
  if (c->role != LX_ROLE_FIELD && c->role != LX_ROLE_ADMIN) {
    lx_fail(&p->err, LX_EDENIED, "key \"%s\" (role %s) may not publish events", c->name,
            lx_role_name(c->role));
    return;
  }
  if (!lx_within(c->jur, c->jur_len, p->ev.unit.p, p->ev.unit.n)) {
    lx_fail(&p->err, LX_EDENIED, "unit: \"%.*s\" is outside the jurisdiction of key \"%s\" (%s)",
            (int)p->ev.unit.n, p->ev.unit.p, c->name, c->jur);
    return;
  }
  /* The stored bytes (with `by`) are built aside, since writing into norm
   * may move it under the bytes being read, then added after the rest; the
   * slices in p->ev point into the frame, which lives as long as the batch. */
  msgpack_sbuffer_clear(&in->scratch);
  if (lx_event_add_by((const uint8_t *)in->norm.data + p->norm_off, p->norm_len, c->name,
                      strlen(c->name), &in->scratch)) {
    lx_fail(&p->err, LX_EINTERNAL, "cannot record the publishing key");
    return;
  }
  p->norm_off = in->norm.size;
  p->norm_len = in->scratch.size;
  msgpack_sbuffer_write(&in->norm, in->scratch.data, in->scratch.size);
}

static void decode_one(lx_ingest_t *in, pending_t *p, bool shape_ok) {
  const lx_schema_ctx_t *schema = p->internal ? &in->internal_schema : &in->schema;
  memset(&p->ev, 0, sizeof p->ev);
  p->err.code = 0;
  p->dup = false;
  p->norm_off = in->norm.size;
  if (!shape_ok) {
    lx_fail(&p->err, LX_EDECODE, "a request is exactly one frame");
    return;
  }
  if (lx_event_decode(zmq_msg_data(&p->frame), zmq_msg_size(&p->frame), schema, &in->zone,
                      &p->ev, &in->norm, &p->err))
    return;
  p->norm_len = in->norm.size - p->norm_off;
  p->content_off = p->norm_off;
  p->content_len = p->norm_len;
  if (in->d->secure && !p->internal)
    authorize(in, p);
}

/* Reads up to BATCH_MAX waiting requests; returns how many. */
static size_t read_batch(lx_ingest_t *in) {
  bool shape_ok;
  while (in->n < BATCH_MAX) {
    pending_t *p = &in->batch[in->n];
    int rc = lx_router_recv(in->d->ingest_sock, &p->peer, &p->frame, &shape_ok);
    if (rc <= 0) {
      if (rc < 0)
        zmq_msg_close(&p->frame);
      break;
    }
    p->internal = false;
    decode_one(in, p, shape_ok);
    in->n++;
  }
  return in->n;
}

static void on_ingest(lx_zsock_t *zs) {
  lx_ingest_t *in = zs->data;
  for (int round = 0; round < ROUNDS_PER_WAKEUP; round++) {
    if (read_batch(in) == 0)
      break;
    finish_batch(in, lx_store_next_rat(in->d->store, lx_clock_now_ms()));
    lx_ingest_flush_queue(in->d);
    lx_checkpoint_maybe(in->d);
  }
  lx_ingest_flush_queue(in->d);
  lx_zsock_rearm(zs);
}

static bool unit_ok(void *arg, const char *path, size_t len, bool community) {
  const lx_config_t *cfg = &((lx_daemon_t *)arg)->cfg;
  int i = lx_config_find_unit(cfg, path, len);
  return i >= 0 && (!community || cfg->units[i].tier == LX_TIER_COMMUNITY);
}

static bool category_ok(void *arg, const char *code, size_t len) {
  return lx_config_find_category(&((lx_daemon_t *)arg)->cfg, code, len) >= 0;
}

void lx_daemon_schema_ctx(lx_daemon_t *d, lx_schema_ctx_t *ctx) {
  *ctx = (lx_schema_ctx_t){.unit_ok = unit_ok, .category_ok = category_ok, .arg = d};
}

static bool plugin_type(void *arg, const char *name, size_t len) {
  return lx_plugins_has_type(arg, name, len);
}

/* --- events the daemon writes --------------------------------------------------- */

/* A queued event is one allocation (a catch-up queues thousands per loop
 * turn): actor, type and unit NUL-terminated, then the body. */
static void free_queued(queued_t *q) { free(q->actor); }

int lx_ingest_queue(lx_daemon_t *d, const char *actor, const char *type, lx_str_t unit,
                    const uint8_t *body, size_t body_len) {
  lx_ingest_t *in = d->ingest;
  if (!in || body_len > LX_MSG_MAX)
    return LX_EINTERNAL;
  if (in->nq == in->capq) {
    size_t cap = in->capq ? in->capq * 2 : 64;
    queued_t *q = realloc(in->queue, cap * sizeof *q);
    if (!q)
      return LX_EINTERNAL;
    in->queue = q;
    in->capq = cap;
  }
  size_t na = strlen(actor) + 1, nt = strlen(type) + 1, nu = unit.n + 1;
  char *block = malloc(na + nt + nu + body_len);
  if (!block)
    return LX_EINTERNAL;
  memcpy(block, actor, na);
  memcpy(block + na, type, nt);
  memcpy(block + na + nt, unit.p, unit.n);
  block[na + nt + unit.n] = 0;
  memcpy(block + na + nt + nu, body, body_len);
  in->queue[in->nq++] = (queued_t){block, block + na, block + na + nt,
                                   (uint8_t *)block + na + nt + nu, body_len};
  return 0;
}

/* Encodes a queued event as a client would send it, with `at` = its
 * receive time, into p->frame. Its id is the run's random prefix and a
 * counter: unique, and ascending within a run, so a catch-up's thousands of
 * ids land on the same few leaves of the id index instead of a random leaf
 * each (which made every slice's commit write a page per record). */
static int encode_queued(lx_ingest_t *in, const queued_t *q, uint64_t rat, pending_t *p) {
  char id[40];
  snprintf(id, sizeof id, "%s%016llx", in->id_prefix, (unsigned long long)in->id_next++);
  msgpack_sbuffer *sb = &in->enc;
  msgpack_packer pk;
  msgpack_sbuffer_clear(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 7);
  const char *keys[] = {"v", "id", "type", "at", "unit", "actor", "body"};
  lx_mp_pack_cstr(&pk, keys[0]);
  msgpack_pack_uint8(&pk, LX_PROTO_VERSION);
  lx_mp_pack_cstr(&pk, keys[1]);
  lx_mp_pack_cstr(&pk, id);
  lx_mp_pack_cstr(&pk, keys[2]);
  lx_mp_pack_cstr(&pk, q->type);
  lx_mp_pack_cstr(&pk, keys[3]);
  msgpack_pack_uint64(&pk, rat);
  lx_mp_pack_cstr(&pk, keys[4]);
  lx_mp_pack_cstr(&pk, q->unit);
  lx_mp_pack_cstr(&pk, keys[5]);
  lx_mp_pack_cstr(&pk, q->actor);
  lx_mp_pack_cstr(&pk, keys[6]);
  msgpack_sbuffer_write(sb, (const char *)q->body, q->body_len);
  int rc = zmq_msg_init_size(&p->frame, sb->size);
  if (rc == 0)
    memcpy(zmq_msg_data(&p->frame), sb->data, sb->size);
  return rc;
}

/* Moves up to BATCH_MAX queued events into the batch. */
static void take_queue(lx_ingest_t *in, uint64_t rat) {
  size_t k = 0;
  for (; k < in->nq && in->n < BATCH_MAX; k++) {
    pending_t *p = &in->batch[in->n];
    p->internal = true;
    if (encode_queued(in, &in->queue[k], rat, p) == 0) {
      decode_one(in, p, true);
      in->n++;
    }
    free_queued(&in->queue[k]);
  }
  memmove(in->queue, in->queue + k, (in->nq - k) * sizeof *in->queue);
  in->nq -= k;
}

/* Commits what plugins queued. With `clients`, the first batch also takes
 * the requests waiting on the ingest socket, after the queued events (which
 * were decided first): a plugin's slice of a catch-up and the clients
 * waiting meanwhile share one commit, and those clients wait for one flush,
 * not two. */
static void flush_queue(lx_daemon_t *d, bool clients) {
  lx_ingest_t *in = d->ingest;
  for (int round = 0; in && in->nq && round < QUEUE_ROUNDS; round++) {
    uint64_t rat = lx_store_next_rat(d->store, lx_clock_now_ms());
    take_queue(in, rat);
    if (clients && round == 0)
      read_batch(in);
    finish_batch(in, rat);
  }
  if (in && in->nq) /* a plugin keeps appending: yield to the sockets, go on next turn */
    lx_zsock_kick(&d->ingest_z);
  else if (in && clients)
    lx_zsock_rearm(&d->ingest_z); /* the reads above may have taken the socket's wake-up */
}

void lx_ingest_flush_queue(lx_daemon_t *d) { flush_queue(d, false); }

void lx_ingest_flush_timer(lx_daemon_t *d) { flush_queue(d, true); }

int lx_ingest_start(lx_daemon_t *d) {
  lx_ingest_t *in = calloc(1, sizeof *in);
  if (!in || !(in->batch = calloc(BATCH_MAX, sizeof *in->batch))) {
    free(in);
    return -1;
  }
  in->d = d;
  uint8_t rnd[8];
  randombytes_buf(rnd, sizeof rnd);
  strcpy(in->id_prefix, "lx-");
  sodium_bin2hex(in->id_prefix + 3, sizeof in->id_prefix - 3, rnd, sizeof rnd);
  msgpack_zone_init(&in->zone, 64 * 1024);
  msgpack_sbuffer_init(&in->norm);
  msgpack_sbuffer_init(&in->reply);
  msgpack_sbuffer_init(&in->scratch);
  msgpack_sbuffer_init(&in->enc);
  lx_daemon_schema_ctx(d, &in->schema);
  in->internal_schema = in->schema;
  in->internal_schema.allow_daemon_types = true;
  in->internal_schema.plugin_type = plugin_type;
  d->ingest = in;
  return lx_zsock_init(d->loop, &d->ingest_z, d->ingest_sock, on_ingest, in);
}

void lx_ingest_stop(lx_daemon_t *d) {
  lx_ingest_t *in = d->ingest;
  if (!in)
    return;
  lx_zsock_close(&d->ingest_z);
  msgpack_zone_destroy(&in->zone);
  msgpack_sbuffer_destroy(&in->norm);
  msgpack_sbuffer_destroy(&in->reply);
  msgpack_sbuffer_destroy(&in->scratch);
  msgpack_sbuffer_destroy(&in->enc);
  for (size_t i = 0; i < in->nq; i++)
    free_queued(&in->queue[i]);
  free(in->queue);
  free(in->batch);
  free(in);
  d->ingest = NULL;
}
