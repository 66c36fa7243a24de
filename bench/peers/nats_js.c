/* SPDX-License-Identifier: MIT
 *
 * nats_js.c: the NATS JetStream peer of bench/compare (cnats).
 *
 * Stream LXBENCH, subject lx.ev, file storage, one replica (created if
 * missing).
 *
 *   sync    one connection; js_Publish (publish, wait for the stream's ack),
 *           repeat
 *   pipe    --clients connections, each with js_PublishAsync and at most
 *           --window acks pending (MaxPending); each ack's latency is taken
 *           from the send time carried in the message's first 8 bytes
 *   replay  an ordered push consumer (no acks, flow control) over the whole
 *           stream, counting messages until the stream's count is read
 *
 * A JetStream ack means the server has stored the message; nats-server 2.9
 * writes it to the OS page cache and fsyncs later, on its own timer, so the
 * ack comes before the data is on disk (see bench/README.md).
 * --target is a nats:// URL.
 */
#include "common.h"

#include <nats/nats.h>

#define STREAM "LXBENCH"
#define SUBJECT "lx.ev"

static const char *g_url;

typedef struct nclient {
  natsConnection *nc;
  jsCtx *js;
} nclient_t;

static void nats_die(const char *what, natsStatus s, jsErrCode je)
{
  die("nats_js: %s: %s (%s, jetstream error %d)", what, natsStatus_GetText(s),
      nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "-", (int)je);
}

static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure);

static nclient_t *connect_js(bclient_t *c)
{
  nclient_t *n = calloc(1, sizeof *n);
  natsOptions *opts;
  natsStatus s;
  jsOptions jo;
  natsOptions_Create(&opts);
  natsOptions_SetURL(opts, g_url);
  natsOptions_SetTimeout(opts, 5000);
  natsOptions_SetAllowReconnect(opts, false);
  if ((s = natsConnection_Connect(&n->nc, opts)) != NATS_OK)
    nats_die("connect", s, 0);
  natsOptions_Destroy(opts);
  jsOptions_Init(&jo);
  jo.Wait = 10000; /* a sync publish waits at most 10 s for its ack */
  if (c) {
    jo.PublishAsync.MaxPending = c->o->window;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = c;
    jo.PublishAsync.StallWait = 10000;
  }
  if ((s = natsConnection_JetStream(&n->js, n->nc, &jo)) != NATS_OK)
    nats_die("jetstream context", s, 0);
  return n;
}

static void close_js(nclient_t *n)
{
  jsCtx_Destroy(n->js);
  natsConnection_Destroy(n->nc);
  free(n);
}

/* Runs on the connection's delivery thread, one at a time per client. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
  bclient_t *c = closure;
  (void)js;
  int64_t now = mono_ns(), sent;
  if (pa && !pae && natsMsg_GetDataLength(msg) >= 8) {
    memcpy(&sent, natsMsg_GetData(msg), sizeof sent);
    bc_acked_at(c, sent, now);
  } else {
    bc_fail(c, "publish: %s", pae && pae->ErrText ? pae->ErrText : "no ack");
  }
  natsMsg_Destroy(msg);
}

static void *setup(bclient_t *c) { return connect_js(is_mode(c->o, "pipe") ? c : NULL); }

static void *client_sync(void *arg)
{
  bclient_t *c = arg;
  nclient_t *n = c->user;
  char *ev = malloc((size_t)c->o->size);
  bc_start(c);
  while (bc_may_send(c)) {
    long i = c->sent;
    jsPubAck *pa = NULL;
    jsErrCode je = 0;
    make_payload(ev, c->o, c->index, i);
    bc_sent(c);
    natsStatus s = js_Publish(&pa, n->js, SUBJECT, ev, c->o->size, NULL, &je);
    int64_t now = mono_ns();
    if (s == NATS_OK)
      bc_acked_n(c, i, now);
    else
      bc_fail(c, "publish: %s (jetstream error %d)", natsStatus_GetText(s), (int)je);
    jsPubAck_Destroy(pa);
    if (s == NATS_CONNECTION_CLOSED)
      break;
  }
  bc_finish(c);
  free(ev);
  close_js(n);
  return NULL;
}

static void *client_pipe(void *arg)
{
  bclient_t *c = arg;
  nclient_t *n = c->user;
  char *ev = malloc((size_t)c->o->size);
  bc_start(c);
  while (bc_may_send(c)) {
    int64_t now = mono_ns();
    make_payload(ev, c->o, c->index, c->sent);
    memcpy(ev, &now, sizeof now);
    c->sent++;
    /* Blocks (up to StallWait) while --window acks are pending. */
    natsStatus s = js_PublishAsync(n->js, SUBJECT, ev, c->o->size, NULL);
    if (s != NATS_OK) {
      bc_fail(c, "publish async: %s", natsStatus_GetText(s));
      break;
    }
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = 10000;
  natsStatus s = js_PublishAsyncComplete(n->js, &po);
  if (s != NATS_OK)
    bc_fail(c, "acks still pending after 10 s: %s", natsStatus_GetText(s));
  bc_finish(c);
  free(ev);
  close_js(n);
  return NULL;
}

static void ensure_stream(void)
{
  nclient_t *n = connect_js(NULL);
  jsStreamInfo *si = NULL;
  jsErrCode je = 0;
  if (js_GetStreamInfo(&si, n->js, STREAM, NULL, &je) != NATS_OK) {
    jsStreamConfig cfg;
    const char *subjects[] = {SUBJECT};
    jsStreamConfig_Init(&cfg);
    cfg.Name = STREAM;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = 1;
    natsStatus s = js_AddStream(&si, n->js, &cfg, NULL, &je);
    if (s != NATS_OK)
      nats_die("add stream", s, je);
  }
  jsStreamInfo_Destroy(si);
  close_js(n);
}

static int replay(const bopts_t *o)
{
  nclient_t *n = connect_js(NULL);
  jsStreamInfo *si = NULL;
  jsErrCode je = 0;
  natsStatus s = js_GetStreamInfo(&si, n->js, STREAM, NULL, &je);
  if (s != NATS_OK)
    nats_die("stream info", s, je);
  long want = (long)si->State.Msgs, got = 0;
  jsStreamInfo_Destroy(si);
  double cpu0 = self_cpu_s();
  int64_t t0 = mono_ns(), stop = t0 + (int64_t)(o->max_seconds * 1e9);
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = STREAM;
  so.Ordered = true;
  natsSubscription *sub = NULL;
  if ((s = js_SubscribeSync(&sub, n->js, SUBJECT, NULL, &so, &je)) != NATS_OK)
    nats_die("subscribe", s, je);
  natsSubscription_SetPendingLimits(sub, 1 << 20, 1 << 30);
  /* Bounded by the stream's count, a 5 s wait per message and --max-seconds. */
  while (got < want && mono_ns() < stop) {
    natsMsg *m = NULL;
    if ((s = natsSubscription_NextMsg(&m, sub, 5000)) != NATS_OK) {
      fprintf(stderr, "nats_js: replay: %s after %ld\n", natsStatus_GetText(s), got);
      break;
    }
    got++;
    natsMsg_Destroy(m);
  }
  double secs = (double)(mono_ns() - t0) / 1e9;
  replay_report(got, secs, cpu0);
  natsSubscription_Destroy(sub);
  close_js(n);
  return got == want ? 0 : 1;
}

int main(int argc, char **argv)
{
  bopts_t o = BOPTS_DEFAULTS;
  bopts_parse(&o, argc, argv, "  --target URL        nats://HOST:PORT\n");
  g_url = o.target;
  ensure_stream();
  int rc;
  if (is_mode(&o, "replay"))
    rc = replay(&o);
  else
    rc = run_clients(&o, is_mode(&o, "sync") ? client_sync : client_pipe, setup) == 0 ? 0 : 1;
  nats_CloseAndWait(2000);
  return rc;
}
