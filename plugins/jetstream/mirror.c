/* SPDX-License-Identifier: MIT
 *
 * mirror.c: the jetstream plugin's thread. It reads the committed log with
 * the host's log_read (a read transaction of its own, never the loop's) and
 * publishes each record to the county's stream with libnats's asynchronous
 * JetStream publish, at most `window` in flight, as PROTOCOL.md's "Mirror to
 * NATS JetStream" says: subject lx.UNIT.TYPE, data = the stored ev bytes,
 * headers Nats-Msg-Id, Lx-Seq, Lx-Rat, Lx-Hash and
 * Nats-Expected-Last-Sequence.
 *
 * Design: the position that counts is `acked`, moved only by JetStream's
 * ack of the next record in order (the ack handler runs on libnats's
 * thread). Any failure (a refusal, an ack out of order, no ack for
 * ACK_TIMEOUT_MS, a lost connection) drops the connection with everything
 * in flight and starts over: connect, make sure the stream exists, read its
 * last message and compare it with the log (sync). The server refuses any
 * message that does not follow the stream's last one, so whatever was in
 * flight when it failed cannot land out of order; sync then finds where
 * the stream really ends. Records are turned into messages inside a short
 * read transaction and published after it ends, so a full window never
 * keeps a transaction open (which would pin pages and hold off the loop's
 * map growth). Retries back off from 100 ms to 5 s. Nothing is
 * buffered beyond the window: a record is read from the log when it is
 * sent, so an outage of any length costs no memory.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nats/nats.h>

#include "mirror.h"

#define READ_CHUNK 256        /* records read from the log per read transaction */
#define ACK_TIMEOUT_MS 5000   /* in flight and no ack for this long: start over */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct js_conn {
  js_state_t *s;
  natsConnection *nc;
  jsCtx *js;
  uint64_t sent;                 /* last seq handed to libnats */
  atomic_int failed;             /* set by the ack handler */
  atomic_int_fast64_t last_ack;  /* ms, monotonic: the last ack (or the start) */
  char why[200];                 /* what failed, for the log (thread side) */
  natsMsg *batch[READ_CHUNK];    /* read from the log, to publish in order */
  size_t n;
} js_conn_t;

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_REALTIME + ms, for pthread_cond_timedwait. */
static struct timespec js_deadline(int64_t ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += ms / 1000;
  until.tv_nsec += (ms % 1000) * 1000000;
  if (until.tv_nsec >= 1000000000) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000;
  }
  return until;
}

/* Waits up to ms for a stop; returns true when stopping. */
static bool js_wait(js_state_t *s, int64_t ms) {
  struct timespec until = js_deadline(ms);
  pthread_mutex_lock(&s->mu);
  if (!s->stop)
    pthread_cond_timedwait(&s->cv, &s->mu, &until);
  bool stop = s->stop;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

/* Caught up: sleeps until react sees a new record (it signals only when
 * `idle` is set, so a busy mirror costs the loop no system call), a stop,
 * or 200 ms (to look at the acks' clock). */
static void js_idle_wait(js_state_t *s, uint64_t sent) {
  struct timespec until = js_deadline(200);
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->idle, true);
  if (!s->stop && atomic_load(&s->head) <= sent)
    pthread_cond_timedwait(&s->cv, &s->mu, &until);
  atomic_store(&s->idle, false);
  pthread_mutex_unlock(&s->mu);
}

static bool js_stopping(js_state_t *s) {
  pthread_mutex_lock(&s->mu);
  bool stop = s->stop;
  pthread_mutex_unlock(&s->mu);
  return stop;
}

static void hex32(const uint8_t *h, char out[65]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    out[2 * i] = digits[h[i] >> 4];
    out[2 * i + 1] = digits[h[i] & 15];
  }
  out[64] = 0;
}

/* --- acks (libnats's thread) -------------------------------------------------- */

static void js_fail(js_conn_t *c, const char *fmt, const char *a, uint64_t n) {
  if (atomic_exchange(&c->failed, 1) == 0)
    snprintf(c->why, sizeof c->why, fmt, a, n);
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
  js_conn_t *c = closure;
  const char *v = NULL;
  uint64_t seq = 0;
  if (natsMsgHeader_Get(msg, "Lx-Seq", &v) == NATS_OK && v)
    seq = strtoull(v, NULL, 10);
  if (pa && !pae && pa->Sequence == seq &&
      seq == atomic_load(&c->s->acked) + 1) {
    atomic_store(&c->s->acked, seq);
    atomic_store(&c->last_ack, mono_ms());
  } else if (!atomic_load(&c->failed)) {
    if (pae)
      js_fail(c, "record %2$" PRIu64 " refused: %1$s", pae->ErrText ? pae->ErrText
              : natsStatus_GetText(pae->Err), seq);
    else
      js_fail(c, "record %2$" PRIu64 " acknowledged as stream message %1$s", pa && pa->Duplicate
              ? "(a duplicate)" : "out of order", seq);
  }
  natsMsg_Destroy(msg);
}

/* --- connecting and the stream -------------------------------------------------- */

/* The connection is closed before the context is destroyed: closing joins
 * libnats's read thread, so no ack is still being delivered to the reply
 * subscription that jsCtx_Destroy frees. The other order raced: CI's ASan
 * run caught a SEGV in libnats's reader (natsConn_processMsg) while this
 * thread tore the context down; nats.c issue 637 reports the same kind of
 * race between a subscription's destruction and its incoming message. */
static void js_disconnect(js_conn_t *c) {
  if (c->nc)
    natsConnection_Close(c->nc);
  jsCtx_Destroy(c->js);
  natsConnection_Destroy(c->nc);
  c->js = NULL;
  c->nc = NULL;
}

static int js_connect(js_conn_t *c) {
  js_state_t *s = c->s;
  natsOptions *o = NULL;
  jsOptions jo;
  natsStatus st = natsOptions_Create(&o);
  if (st == NATS_OK)
    st = natsOptions_SetServers(o, (const char **)s->servers, s->n_servers);
  if (st == NATS_OK)
    st = natsOptions_SetTimeout(o, 2000);
  /* A lost connection is a failure: start over (sync finds where the stream
   * ends). libnats's own reconnect is off, not just capped: with MaxReconnect
   * 0 it still tries each other server of the cluster once, and a reconnect
   * it makes behind our back replays buffered publishes into a context this
   * thread is already tearing down. */
  if (st == NATS_OK)
    st = natsOptions_SetAllowReconnect(o, false);
  if (st == NATS_OK)
    st = natsConnection_Connect(&c->nc, o);
  natsOptions_Destroy(o);
  if (st == NATS_OK) {
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    jo.PublishAsync.MaxPending = s->window;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = c;
    jo.PublishAsync.StallWait = 200;
    st = natsConnection_JetStream(&c->js, c->nc, &jo);
  }
  if (st != NATS_OK) {
    snprintf(c->why, sizeof c->why, "connecting: %s", natsStatus_GetText(st));
    js_disconnect(c);
    return -1;
  }
  return 0;
}

/* The stream exists afterwards, with its state in *si (caller destroys). */
static int js_ensure_stream(js_conn_t *c, jsStreamInfo **si) {
  js_state_t *s = c->s;
  jsErrCode je = 0;
  natsStatus st = js_GetStreamInfo(si, c->js, s->stream, NULL, &je);
  if (st == NATS_NOT_FOUND || je == JSStreamNotFoundErr) {
    char subj[48];
    const char *subjects[1] = {subj};
    jsStreamConfig cfg;
    snprintf(subj, sizeof subj, "lx.%s.>", s->county);
    jsStreamConfig_Init(&cfg);
    cfg.Name = s->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = s->replicas;
    st = js_AddStream(si, c->js, &cfg, NULL, &je);
    if (st == NATS_OK)
      s->api->log(s->host, LX_PLOG_INFO, "created stream %s (subjects %s, file storage, %d "
                  "replicas)", s->stream, subj, s->replicas);
  }
  if (st != NATS_OK) {
    snprintf(c->why, sizeof c->why, "stream %s: %s (jetstream error %d)", s->stream,
             nats_GetLastError(NULL) ? nats_GetLastError(NULL) : natsStatus_GetText(st), (int)je);
    return -1;
  }
  return 0;
}

/* --- sync: where does the stream end, and is it this log? ----------------------- */

typedef struct js_cmp {
  uint64_t seq;
  char hash[65];
  bool found;
} js_cmp_t;

static int take_hash(void *arg, const lx_rec_t *r, const uint8_t *hash) {
  js_cmp_t *m = arg;
  if (r->seq == m->seq) {
    hex32(hash, m->hash);
    m->found = true;
  }
  return 1;
}

static void js_diverged(js_state_t *s, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void js_diverged(js_state_t *s, uint64_t seq, const char *fmt, ...) {
  va_list ap;
  pthread_mutex_lock(&s->mu);
  va_start(ap, fmt);
  vsnprintf(s->diverged_text, sizeof s->diverged_text, fmt, ap);
  va_end(ap);
  s->diverged_seq = seq;
  s->diverged_pending = true;
  pthread_mutex_unlock(&s->mu);
  atomic_store(&s->status, JS_DIVERGED);
  s->api->wake(s->host);
}

/* Checks the stream's last message against the log. Returns 0 with the
 * position set to it, 1 when the stream is not this log's (reported), or
 * -1 when the cluster did not answer. */
static int js_check_last(js_conn_t *c, const jsStreamState *st) {
  js_state_t *s = c->s;
  uint64_t last = st->LastSeq;
  if (st->NumDeleted > 0 || (last > 0 && st->FirstSeq != 1)) {
    js_diverged(s, st->FirstSeq != 1 ? 1 : last, "stream %s lacks %" PRIu64 " message(s) "
                "between 1 and %" PRIu64 ": deleted from the stream", s->stream,
                st->NumDeleted + (st->FirstSeq > 1 ? st->FirstSeq - 1 : 0), last);
    return 1;
  }
  if (last == 0)
    return 0;
  natsMsg *m = NULL;
  jsErrCode je = 0;
  natsStatus ns = js_GetMsg(&m, c->js, s->stream, last, NULL, &je);
  if (ns != NATS_OK && je != JSNoMessageFoundErr) {
    snprintf(c->why, sizeof c->why, "reading message %" PRIu64 ": %s", last, natsStatus_GetText(ns));
    return -1;
  }
  const char *lseq = NULL, *lhash = NULL;
  if (m) {
    natsMsgHeader_Get(m, "Lx-Seq", &lseq);
    natsMsgHeader_Get(m, "Lx-Hash", &lhash);
  }
  js_cmp_t cmp = {.seq = last};
  uint64_t head = 0;
  s->api->log_read(s->host, last, 1, take_hash, &cmp, &head);
  int rc = 0;
  if (!m)
    js_diverged(s, last, "stream %s: its last message %" PRIu64 " is gone", s->stream, last);
  else if (!cmp.found)
    js_diverged(s, last, "stream %s holds message %" PRIu64 " (Lx-Seq %s) but the log ends at "
                "%" PRIu64, s->stream, last, lseq ? lseq : "absent", head);
  else if (!lseq || strtoull(lseq, NULL, 10) != last || !lhash || strcmp(lhash, cmp.hash) != 0)
    js_diverged(s, last, "stream %s message %" PRIu64 ": Lx-Seq %s, Lx-Hash %.64s; the log's "
                "record %" PRIu64 " has hash %s", s->stream, last, lseq ? lseq : "absent",
                lhash ? lhash : "absent", last, cmp.hash);
  rc = atomic_load(&s->status) == JS_DIVERGED ? 1 : 0;
  natsMsg_Destroy(m);
  return rc;
}

static int js_sync(js_conn_t *c) {
  js_state_t *s = c->s;
  jsStreamInfo *si = NULL;
  if (js_ensure_stream(c, &si))
    return -1;
  int rc = js_check_last(c, &si->State);
  uint64_t last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  if (rc)
    return rc;
  if (last < s->saved)
    s->api->log(s->host, LX_PLOG_WARN, "stream %s ends at %" PRIu64 " but had acknowledged up "
                "to %" PRIu64 ": the cluster lost acknowledged messages; sending them again",
                s->stream, last, s->saved);
  atomic_store(&s->acked, last);
  c->sent = last;
  atomic_store(&c->failed, 0);
  atomic_store(&c->last_ack, mono_ms());
  s->api->log(s->host, LX_PLOG_INFO, "mirroring to stream %s after message %" PRIu64,
              s->stream, last);
  return 0;
}

/* --- publishing ------------------------------------------------------------------- */

/* Turns a record into its message (log_read's callback: inside the read
 * transaction, so it only copies; publishing waits outside it). */
static int make_msg(void *arg, const lx_rec_t *r, const uint8_t *hash) {
  js_conn_t *c = arg;
  char subj[256], id[64], seq[24], rat[24], prev[24], hx[65];
  natsMsg *m = NULL;
  snprintf(subj, sizeof subj, "lx.%.*s.%.*s", (int)r->unit.n, r->unit.p, (int)r->type_name.n,
           r->type_name.p);
  snprintf(id, sizeof id, "%s:%" PRIu64, c->s->county, r->seq);
  snprintf(seq, sizeof seq, "%" PRIu64, r->seq);
  snprintf(rat, sizeof rat, "%" PRId64, r->rat);
  snprintf(prev, sizeof prev, "%" PRIu64, r->seq - 1);
  hex32(hash, hx);
  natsStatus st = natsMsg_Create(&m, subj, NULL, (const char *)r->ev, (int)r->ev_len);
  if (st == NATS_OK) st = natsMsgHeader_Set(m, "Nats-Msg-Id", id);
  if (st == NATS_OK) st = natsMsgHeader_Set(m, "Nats-Expected-Last-Sequence", prev);
  if (st == NATS_OK) st = natsMsgHeader_Set(m, "Lx-Seq", seq);
  if (st == NATS_OK) st = natsMsgHeader_Set(m, "Lx-Rat", rat);
  if (st == NATS_OK) st = natsMsgHeader_Set(m, "Lx-Hash", hx);
  if (st != NATS_OK) {
    natsMsg_Destroy(m);
    js_fail(c, "building record %2$" PRIu64 ": %1$s", natsStatus_GetText(st), r->seq);
    return 1;
  }
  c->batch[c->n++] = m;
  return 0;
}

/* Publishes message i of the batch (record sent + 1), waiting (StallWait at
 * a time) while `window` publishes are in flight. Returns 0 or 1. */
static int publish_one(js_conn_t *c, natsMsg **m) {
  natsStatus st = NATS_OK;
  while (!atomic_load(&c->failed)) {
    st = js_PublishMsgAsync(c->js, m, NULL);
    if (st != NATS_TIMEOUT)
      break;
    if (mono_ms() - atomic_load(&c->last_ack) > ACK_TIMEOUT_MS || js_stopping(c->s))
      break;
  }
  if (st != NATS_OK || atomic_load(&c->failed)) {
    if (st != NATS_OK)
      js_fail(c, "publishing record %2$" PRIu64 ": %1$s", natsStatus_GetText(st), c->sent + 1);
    return 1;
  }
  c->sent++;
  return 0;
}

/* One pass: send what the log has beyond `sent`, or wait. Returns -1 when
 * the connection must be dropped. */
static int js_pump(js_conn_t *c) {
  js_state_t *s = c->s;
  uint64_t head = atomic_load(&s->head);
  if (atomic_load(&c->failed))
    return -1;
  if (c->sent > atomic_load(&s->acked) && mono_ms() - atomic_load(&c->last_ack) > ACK_TIMEOUT_MS) {
    js_fail(c, "no ack for %s record %" PRIu64 ": the cluster is away", "", atomic_load(&s->acked) + 1);
    return -1;
  }
  if (c->sent >= head) {
    js_idle_wait(s, c->sent);
    return 0;
  }
  if (c->sent == atomic_load(&s->acked))
    atomic_store(&c->last_ack, mono_ms()); /* nothing was in flight: the clock starts now */
  c->n = 0;
  s->api->log_read(s->host, c->sent + 1, READ_CHUNK, make_msg, c, NULL);
  size_t i = 0;
  while (i < c->n && publish_one(c, &c->batch[i]) == 0)
    i++;
  for (; i < c->n; i++)
    natsMsg_Destroy(c->batch[i]); /* what a failure left unsent */
  return atomic_load(&c->failed) ? -1 : 0;
}

/* The mirror yields the CPU to the loop: when both want it (a burst of
 * ingest, a catch-up after an outage on a busy machine), acks of new events
 * come first and the mirror lags, then catches up when the loop is idle.
 * On Linux a nice value is per thread and inherited by the threads a thread
 * creates, so libnats's own threads, started from this one on the first
 * connect, run at this priority too. */
#define MIRROR_NICE 10

static void *js_main(void *arg) {
  js_state_t *s = arg;
  js_conn_t c = {.s = s};
  if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), MIRROR_NICE) != 0)
    s->api->log(s->host, LX_PLOG_INFO, "mirror thread: cannot lower its priority");
  int64_t backoff = BACKOFF_MIN_MS;
  bool quiet = false; /* a failure is logged once until the mirror runs again */
  while (!js_stopping(s)) {
    int rc = js_connect(&c);
    if (rc == 0)
      rc = js_sync(&c);
    if (rc == 1) {
      js_disconnect(&c);
      break; /* diverged: the loop appends the alert; the mirror stays stopped */
    }
    if (rc == 0) {
      atomic_store(&s->status, JS_RUNNING);
      backoff = BACKOFF_MIN_MS;
      quiet = false;
      while (!js_stopping(s) && js_pump(&c) == 0)
        ;
    }
    js_disconnect(&c);
    if (js_stopping(s))
      break;
    atomic_store(&s->status, JS_RETRYING);
    if (!quiet)
      s->api->log(s->host, LX_PLOG_WARN, "mirror to %s: %s; retrying with backoff", s->stream,
                  c.why[0] ? c.why : "failed");
    quiet = true;
    c.why[0] = 0;
    js_wait(s, backoff);
    backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
  }
  if (atomic_load(&s->status) != JS_DIVERGED)
    atomic_store(&s->status, JS_STOPPED);
  return NULL;
}

int js_mirror_start(js_state_t *s) {
  if (pthread_create(&s->thread, NULL, js_main, s)) {
    s->api->log(s->host, LX_PLOG_ERROR, "cannot start the mirror thread");
    return -1;
  }
  s->started = true;
  return 0;
}

void js_mirror_stop(js_state_t *s) {
  if (!s->started)
    return;
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->thread, NULL);
  s->started = false;
}
