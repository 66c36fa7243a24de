/* SPDX-License-Identifier: MIT
 *
 * lmdb_raw.c: the disk's limit for bench/compare: an LMDB append loop with
 * no network, no decoding, no indexes, in one process.
 *
 * The environment is opened as lianxind opens its store (MDB_NOTLS, no
 * NOSYNC/NOMETASYNC flags: every commit fdatasyncs the data, then the meta
 * page). Records are (u64 big-endian seq, --size bytes), put with
 * MDB_APPEND into one database.
 *
 *   sync    one write transaction per event: put, commit; the latency is the
 *           put and the commit
 *   pipe    group commit: --batch events per transaction (compare passes
 *           clients x window, the most lianxind can have in hand in the same
 *           workload); each event's latency is from its put to the end of its
 *           batch's commit
 *   replay  one read transaction, a cursor from the first record to the last,
 *           each value copied out (as a client receiving it would)
 *
 * --target is the environment's directory (made if missing).
 */
#include "common.h"

#include <lmdb.h>
#include <sys/stat.h>

static MDB_env *g_env;
static MDB_dbi g_dbi;
static uint64_t g_seq; /* the last seq stored */

#define CHECK(call)                                                                          \
  do {                                                                                       \
    int rc_ = (call);                                                                        \
    if (rc_)                                                                                 \
      die("lmdb_raw: %s: %s", #call, mdb_strerror(rc_));                                     \
  } while (0)

static void open_env(const char *dir)
{
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  mkdir(dir, 0750);
  CHECK(mdb_env_create(&g_env));
  CHECK(mdb_env_set_mapsize(g_env, (size_t)16 << 30));
  CHECK(mdb_env_set_maxdbs(g_env, 4));
  CHECK(mdb_env_open(g_env, dir, MDB_NOTLS, 0640));
  CHECK(mdb_txn_begin(g_env, NULL, 0, &txn));
  CHECK(mdb_dbi_open(txn, "log", MDB_CREATE, &g_dbi));
  CHECK(mdb_cursor_open(txn, g_dbi, &cur));
  if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 8) {
    const unsigned char *p = k.mv_data;
    for (int i = 0; i < 8; i++)
      g_seq = g_seq << 8 | p[i];
  }
  mdb_cursor_close(cur);
  CHECK(mdb_txn_commit(txn));
}

static void put(MDB_txn *txn, char *ev, size_t size)
{
  unsigned char key[8];
  uint64_t s = ++g_seq;
  for (int i = 7; i >= 0; i--, s >>= 8)
    key[i] = (unsigned char)s;
  MDB_val k = {8, key}, v = {size, ev};
  CHECK(mdb_put(txn, g_dbi, &k, &v, MDB_APPEND));
}

/* One thread, no server: the "client" is this loop. --batch 1 is mode sync. */
static void *loop(void *arg)
{
  bclient_t *c = arg;
  const bopts_t *o = c->o;
  long batch = is_mode(o, "sync") ? 1 : o->batch;
  char *ev = malloc((size_t)o->size);
  int64_t *put_ns = malloc((size_t)batch * sizeof *put_ns);
  bc_start(c);
  while (bc_may_send(c)) {
    MDB_txn *txn;
    long n = 0;
    CHECK(mdb_txn_begin(g_env, NULL, 0, &txn));
    while (n < batch && bc_may_send(c)) {
      make_payload(ev, o, c->index, c->sent);
      put_ns[n++] = mono_ns();
      put(txn, ev, (size_t)o->size);
      c->sent++;
    }
    int rc = mdb_txn_commit(txn);
    int64_t now = mono_ns();
    for (long i = 0; i < n; i++) {
      if (rc == 0)
        bc_acked_at(c, put_ns[i], now);
      else
        bc_fail(c, "commit: %s", mdb_strerror(rc));
    }
    if (rc)
      break;
  }
  bc_finish(c);
  free(put_ns);
  free(ev);
  return NULL;
}

static int replay(const bopts_t *o)
{
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  char *buf = malloc(65536);
  long got = 0;
  uint64_t sum = 0;
  double cpu0 = self_cpu_s();
  int64_t t0 = mono_ns(), stop = t0 + (int64_t)(o->max_seconds * 1e9);
  CHECK(mdb_txn_begin(g_env, NULL, MDB_RDONLY, &txn));
  CHECK(mdb_cursor_open(txn, g_dbi, &cur));
  /* Bounded by the database (read-only snapshot) and --max-seconds. */
  for (int op = MDB_FIRST; mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op) == 0; op = MDB_NEXT) {
    size_t n = v.mv_size < 65536 ? v.mv_size : 65536;
    memcpy(buf, v.mv_data, n);
    sum += (unsigned char)buf[n - 1];
    got++;
    if ((got & 0xfff) == 0 && mono_ns() > stop)
      break;
  }
  double secs = (double)(mono_ns() - t0) / 1e9;
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  replay_report(got, secs, cpu0);
  if (sum == 0)
    fprintf(stderr, "lmdb_raw: (checksum 0)\n");
  free(buf);
  return (uint64_t)got == g_seq ? 0 : 1;
}

int main(int argc, char **argv)
{
  bopts_t o = BOPTS_DEFAULTS;
  bopts_parse(&o, argc, argv,
              "  --target DIR        the LMDB environment\n"
              "  --batch B           pipe mode: events per write transaction\n");
  open_env(o.target);
  int rc;
  if (is_mode(&o, "replay")) {
    rc = replay(&o);
  } else {
    /* One loop, whatever --clients says: LMDB has a single writer anyway. */
    o.clients = 1;
    o.window = is_mode(&o, "sync") ? 1 : o.batch;
    rc = run_clients(&o, loop, NULL) == 0 ? 0 : 1;
  }
  mdb_env_close(g_env);
  return rc;
}
