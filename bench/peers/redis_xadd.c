/* SPDX-License-Identifier: MIT
 *
 * redis_xadd.c: the Redis Streams peer of bench/compare.
 *
 *   sync    one connection; XADD lx * d EVENT, wait for the reply, repeat
 *   pipe    --clients connections, each keeping --window XADDs in flight
 *           (written in one go, replies read as they come; hiredis)
 *   replay  XRANGE lx in pages of 10000 (exclusive start after the first),
 *           until the stream's length is read
 *
 * The durability is the server's: bench/compare starts redis-server with
 * appendonly yes and appendfsync always (the reply to a write is sent only
 * after the AOF is fsynced; Redis fsyncs once per event-loop pass, so
 * pipelined writes share one fsync) or everysec. --target is HOST:PORT.
 */
#include "common.h"

#include <hiredis/hiredis.h>
#include <sys/time.h>

static char g_host[256];
static int g_port;

static redisContext *connect_redis(void)
{
  struct timeval tv = {10, 0};
  redisContext *c = redisConnectWithTimeout(g_host, g_port, tv);
  if (!c || c->err)
    die("redis_xadd: connect %s:%d: %s", g_host, g_port, c ? c->errstr : "out of memory");
  redisSetTimeout(c, tv); /* every read waits at most 10 s */
  return c;
}

/* An XADD reply is the new entry's id (a string). */
static bool reply_ok(bclient_t *c, redisReply *r)
{
  bool ok = r && r->type == REDIS_REPLY_STRING;
  if (!ok)
    bc_fail(c, "XADD: %s", r && r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
  if (r)
    freeReplyObject(r);
  return ok;
}

static void *setup(bclient_t *c)
{
  (void)c;
  return connect_redis();
}

static void *client_sync(void *arg)
{
  bclient_t *c = arg;
  redisContext *rc = c->user;
  char *ev = malloc((size_t)c->o->size);
  bc_start(c);
  while (bc_may_send(c)) {
    long n = c->sent;
    make_payload(ev, c->o, c->index, n);
    bc_sent(c);
    redisReply *r = redisCommand(rc, "XADD lx * d %b", ev, (size_t)c->o->size);
    if (!r) {
      bc_fail(c, "XADD: %s", rc->errstr);
      break;
    }
    int64_t now = mono_ns();
    if (reply_ok(c, r))
      bc_acked_n(c, n, now);
  }
  bc_finish(c);
  free(ev);
  redisFree(rc);
  return NULL;
}

static void *client_pipe(void *arg)
{
  bclient_t *c = arg;
  redisContext *rc = c->user;
  const bopts_t *o = c->o;
  char *ev = malloc((size_t)o->size);
  long done = 0; /* replies read (ok or not), in order */
  bc_start(c);
  for (;;) {
    /* Fill the window, write it all, then wait for one reply and take every
     * reply that is already there. */
    while (c->sent - done < o->window && bc_may_send(c)) {
      make_payload(ev, o, c->index, c->sent);
      redisAppendCommand(rc, "XADD lx * d %b", ev, (size_t)o->size);
      bc_sent(c);
    }
    int wdone = 0;
    while (!wdone)
      if (redisBufferWrite(rc, &wdone) != REDIS_OK)
        break;
    if (done == c->sent)
      break;
    void *r = NULL;
    if (redisGetReply(rc, &r) != REDIS_OK) {
      bc_fail(c, "reply: %s", rc->errstr);
      break;
    }
    do {
      int64_t now = mono_ns();
      if (reply_ok(c, r))
        bc_acked_n(c, done, now);
      done++;
      r = NULL;
    } while (done < c->sent && redisReaderGetReply(rc->reader, &r) == REDIS_OK && r);
  }
  bc_finish(c);
  free(ev);
  redisFree(rc);
  return NULL;
}

static int replay(const bopts_t *o)
{
  redisContext *rc = connect_redis();
  redisReply *len = redisCommand(rc, "XLEN lx");
  long want = len && len->type == REDIS_REPLY_INTEGER ? (long)len->integer : 0;
  freeReplyObject(len);
  char start[64] = "-";
  long got = 0;
  double cpu0 = self_cpu_s();
  int64_t t0 = mono_ns(), stop = t0 + (int64_t)(o->max_seconds * 1e9);
  /* Bounded: every page advances by up to 10000 entries, at most want/1 pages. */
  for (long page = 0; got < want && page <= want && mono_ns() < stop; page++) {
    redisReply *r = redisCommand(rc, "XRANGE lx %s + COUNT 10000", start);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
      fprintf(stderr, "redis_xadd: XRANGE: %s\n", r && r->str ? r->str : rc->errstr);
      freeReplyObject(r);
      break;
    }
    if (r->elements == 0) {
      freeReplyObject(r);
      break;
    }
    got += (long)r->elements;
    redisReply *last = r->element[r->elements - 1];
    snprintf(start, sizeof start, "(%s", last->element[0]->str);
    freeReplyObject(r);
  }
  double secs = (double)(mono_ns() - t0) / 1e9;
  replay_report(got, secs, cpu0);
  redisFree(rc);
  return got == want ? 0 : 1;
}

int main(int argc, char **argv)
{
  bopts_t o = BOPTS_DEFAULTS;
  bopts_parse(&o, argc, argv, "  --target HOST:PORT  the redis-server\n");
  const char *colon = strrchr(o.target, ':');
  if (!colon || (size_t)(colon - o.target) >= sizeof g_host)
    die("redis_xadd: --target must be HOST:PORT");
  memcpy(g_host, o.target, (size_t)(colon - o.target));
  g_port = atoi(colon + 1);
  if (is_mode(&o, "replay"))
    return replay(&o);
  long bad = run_clients(&o, is_mode(&o, "sync") ? client_sync : client_pipe, setup);
  return bad == 0 ? 0 : 1;
}
