/* SPDX-License-Identifier: MIT
 *
 * store.c: the LMDB event store (see store.h for the layout).
 *
 * Design: the daemon's loop thread is the only writer, and writes a whole
 * batch in one transaction, so the head and the counters are staged in
 * memory while the transaction is open and written to `meta` just before
 * the commit; they become the committed values only when mdb_txn_commit
 * returns 0 (which is after LMDB's fdatasync). MDB_MAP_FULL and ENOSPC
 * become LX_EFULL: the caller aborts the batch, may grow the map, and
 * retries; nothing of an aborted batch is ever visible.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <time.h>
#include <unistd.h>

#include "appeal.h"
#include "log.h"
#include "store.h"

#define META_HEAD "head"
#define META_COUNTERS "counters"
#define REC_HDR (8 + LX_HASH_LEN)
/* "counters" holds the fields before open_tier, as stores always did;
 * open_tier goes under its own key (write_meta). */
#define META_OPEN_TIER "open_tier"
#define COUNTERS_BYTES offsetof(lx_counters_t, open_tier)
#define OPEN_TIERS (LX_TIER_COUNTY - LX_TIER_COMMUNITY + 1)

struct lx_store {
  MDB_env *env;
  char *dir;
  MDB_dbi log, ids, appeals, appeal_ev, appeal_dl, unit_open, open_due, meta;
  uint64_t map_size, map_max;
  lx_head_t head, head_tx;          /* committed, and staged in the open txn */
  lx_counters_t cnt, cnt_tx;
  lx_commit_hist_t hist;            /* how long each mdb_txn_commit took */
  /* Readers on other threads (a plugin's log_read) hold it shared for the
   * life of their transaction; growing the map holds it exclusively, since
   * mdb_env_set_mapsize must not run while any transaction of the process
   * is open. The loop's own transactions never overlap a growth. */
  pthread_rwlock_t grow_lock;
};

/* Maps an LMDB or errno result onto the project's codes, logging the
 * unexpected ones with the operation that failed. */
static int store_err(int rc, const char *op) {
  if (rc == 0)
    return 0;
  if (rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT)
    return LX_EFULL;
  if (rc == MDB_NOTFOUND)
    return LX_ENOTFOUND;
  lx_error("store", "%s: %s", op, mdb_strerror(rc));
  return LX_EINTERNAL;
}

void lx_chain_hash(const uint8_t prev[LX_HASH_LEN], uint64_t seq, uint64_t rat,
                   const uint8_t *ev, size_t len, uint8_t out[LX_HASH_LEN]) {
  crypto_generichash_state st;
  uint8_t nums[16];
  lx_put_u64be(nums, seq);
  lx_put_u64be(nums + 8, rat);
  crypto_generichash_init(&st, NULL, 0, LX_HASH_LEN);
  crypto_generichash_update(&st, prev, LX_HASH_LEN);
  crypto_generichash_update(&st, nums, sizeof nums);
  crypto_generichash_update(&st, ev, len);
  crypto_generichash_final(&st, out, LX_HASH_LEN);
}

int lx_store_read_head(lx_store_t *s, MDB_txn *txn, lx_head_t *h) {
  MDB_val k = {strlen(META_HEAD), META_HEAD}, v;
  int rc = mdb_get(txn, s->meta, &k, &v);
  memset(h, 0, sizeof *h);
  if (rc == MDB_NOTFOUND)
    return 0; /* an empty log: seq 0, zero hash */
  if (rc)
    return store_err(rc, "mdb_get meta head");
  if (v.mv_size != 24 + LX_HASH_LEN)
    return store_err(MDB_CORRUPTED, "meta head");
  const uint8_t *p = v.mv_data;
  h->seq = lx_get_u64be(p);
  h->rat = lx_get_u64be(p + 8);
  memcpy(h->hash, p + 16, LX_HASH_LEN);
  h->checkpoint = lx_get_u64be(p + 16 + LX_HASH_LEN);
  return 0;
}

/* Reads the head and the counters. *stale is set when the open tallies
 * (open_tier, unit_open, open_due) cannot be trusted: a store from before
 * them has no "open_tier" entry, and one that an older lianxind wrote after
 * a newer one has an entry stamped with an older head than the store's. */
static int load_meta(lx_store_t *s, MDB_txn *txn, bool *stale) {
  int rc = lx_store_read_head(s, txn, &s->head);
  if (rc)
    return rc;
  MDB_val k = {strlen(META_COUNTERS), META_COUNTERS}, v;
  rc = mdb_get(txn, s->meta, &k, &v);
  if (rc == 0 && v.mv_size == COUNTERS_BYTES)
    memcpy(&s->cnt, v.mv_data, COUNTERS_BYTES);
  else if (rc != MDB_NOTFOUND)
    return store_err(rc ? rc : MDB_CORRUPTED, "meta counters");
  k = (MDB_val){strlen(META_OPEN_TIER), META_OPEN_TIER};
  rc = mdb_get(txn, s->meta, &k, &v);
  if (rc == MDB_NOTFOUND) {
    *stale = s->head.seq > 0;
    return 0;
  }
  if (rc || v.mv_size != 8 * (1 + OPEN_TIERS))
    return store_err(rc ? rc : MDB_CORRUPTED, "meta open_tier");
  const uint8_t *p = v.mv_data;
  for (int t = 0; t < OPEN_TIERS; t++)
    s->cnt.open_tier[t] = lx_get_u64be(p + 8 * (1 + t));
  *stale = lx_get_u64be(p) != s->head.seq;
  return 0;
}

static int write_meta(lx_store_t *s, MDB_txn *txn);
static int upgrade_tallies(lx_store_t *s, MDB_txn *txn);

static int open_dbs(lx_store_t *s, const char **op) {
  MDB_txn *txn;
  int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
  if (rc) { *op = "mdb_txn_begin"; return rc; }
  if ((rc = mdb_dbi_open(txn, "log", MDB_CREATE, &s->log)) ||
      (rc = mdb_dbi_open(txn, "ids", MDB_CREATE, &s->ids)) ||
      (rc = mdb_dbi_open(txn, "appeals", MDB_CREATE, &s->appeals)) ||
      (rc = mdb_dbi_open(txn, "appeal_ev", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED,
                         &s->appeal_ev)) ||
      (rc = mdb_dbi_open(txn, "appeal_dl", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED,
                         &s->appeal_dl)) ||
      (rc = mdb_dbi_open(txn, "unit_open", MDB_CREATE, &s->unit_open)) ||
      (rc = mdb_dbi_open(txn, "open_due", MDB_CREATE, &s->open_due)) ||
      (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &s->meta))) {
    *op = "mdb_dbi_open";
    mdb_txn_abort(txn);
    return rc;
  }
  bool stale = false;
  if (load_meta(s, txn, &stale)) {
    *op = "reading meta";
    mdb_txn_abort(txn);
    return MDB_CORRUPTED;
  }
  if (stale && (rc = upgrade_tallies(s, txn))) {
    *op = "counting the open appeals of an older store";
    mdb_txn_abort(txn);
    /* Full: the caller grows the map and tries again; else the reason is logged. */
    return rc == LX_EFULL ? MDB_MAP_FULL : MDB_CORRUPTED;
  }
  if ((rc = mdb_txn_commit(txn)))
    *op = "mdb_txn_commit";
  return rc;
}

int lx_store_open(lx_store_t **out, const char *dir, uint64_t map_size, uint64_t map_max,
                  char *err, size_t errlen) {
  lx_store_t *s = calloc(1, sizeof *s);
  const char *op = "calloc";
  int rc = ENOMEM, dead = 0;
  if (!s)
    goto fail;
  s->map_size = map_size;
  s->map_max = map_max < map_size ? map_size : map_max;
  if (!(s->dir = strdup(dir)))
    goto fail;
  pthread_rwlock_init(&s->grow_lock, NULL);
  if (mkdir(dir, 0750) && errno != EEXIST) {
    rc = errno;
    op = "mkdir";
    goto fail;
  }
  if ((rc = mdb_env_create(&s->env))) { op = "mdb_env_create"; goto fail; }
  mdb_env_set_maxdbs(s->env, 64);
  mdb_env_set_maxreaders(s->env, 256);
  if ((rc = mdb_env_set_mapsize(s->env, map_size))) { op = "mdb_env_set_mapsize"; goto fail; }
  /* MDB_NOTLS: read transactions are not tied to a thread slot, so the loop
   * can keep and renew them. Durability comes from the default: each commit
   * fdatasyncs the data and then the meta page. */
  if ((rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0640))) { op = "mdb_env_open"; goto fail; }
  /* A reader that died (a killed backup or audit tool) leaves its slot
   * pinning old pages; clear those before we start. */
  mdb_reader_check(s->env, &dead);
  if (dead)
    lx_warn("store", "cleared %d stale reader slot(s)", dead);
  MDB_envinfo info;
  mdb_env_info(s->env, &info);
  s->map_size = info.me_mapsize; /* an existing, larger store keeps its size */
  /* An older store's first count adds rows (open_due, unit_open) that may
   * not fit a store that was nearly full: the map grows, up to map_max. */
  while ((rc = open_dbs(s, &op)) == MDB_MAP_FULL && lx_store_grow(s) == 0)
    ;
  if (rc)
    goto fail;
  *out = s;
  return 0;
fail:
  snprintf(err, errlen, "%s: %s: %s", dir, op, mdb_strerror(rc));
  if (s && s->env)
    mdb_env_close(s->env);
  if (s)
    free(s->dir);
  free(s);
  return -1;
}

void lx_store_free(lx_store_t **sp) {
  lx_store_t *s = *sp;
  if (!s)
    return;
  mdb_env_close(s->env);
  pthread_rwlock_destroy(&s->grow_lock);
  free(s->dir);
  free(s);
  *sp = NULL;
}

int lx_store_open_scratch(lx_store_t **out, char *tmpl, uint64_t map_size, uint64_t map_max,
                          char *err, size_t errlen) {
  if (!mkdtemp(tmpl)) {
    snprintf(err, errlen, "%s: mkdtemp: %s", tmpl, strerror(errno));
    return -1;
  }
  return lx_store_open(out, tmpl, map_size, map_max, err, errlen);
}

void lx_store_scratch_free(lx_store_t **s, const char *dir) {
  static const char *const files[] = {"data.mdb", "lock.mdb"};
  char path[PATH_MAX];
  lx_store_free(s);
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, files[i]);
    unlink(path);
  }
  rmdir(dir);
}

const lx_head_t *lx_store_head(const lx_store_t *s) { return &s->head; }
const lx_counters_t *lx_store_counters(const lx_store_t *s) { return &s->cnt; }
MDB_env *lx_store_env(lx_store_t *s) { return s->env; }
lx_counters_t *lx_store_counters_mut(lx_store_t *s) { return &s->cnt_tx; }
void lx_store_set_checkpoint(lx_store_t *s, uint64_t seq) { s->head_tx.checkpoint = seq; }

const uint8_t *lx_store_head_tx_hash(const lx_store_t *s) { return s->head_tx.hash; }

uint64_t lx_store_next_seq(const lx_store_t *s) { return s->head_tx.seq + 1; }

uint64_t lx_store_next_rat(const lx_store_t *s, uint64_t now_ms) {
  return now_ms > s->head_tx.rat ? now_ms : s->head_tx.rat;
}

int lx_store_begin(lx_store_t *s, MDB_txn **txn) {
  int rc = mdb_txn_begin(s->env, NULL, 0, txn);
  if (rc)
    return store_err(rc, "mdb_txn_begin");
  s->head_tx = s->head;
  s->cnt_tx = s->cnt;
  return 0;
}

static int write_meta(lx_store_t *s, MDB_txn *txn) {
  uint8_t buf[24 + LX_HASH_LEN], tiers[8 * (1 + OPEN_TIERS)];
  lx_put_u64be(buf, s->head_tx.seq);
  lx_put_u64be(buf + 8, s->head_tx.rat);
  memcpy(buf + 16, s->head_tx.hash, LX_HASH_LEN);
  lx_put_u64be(buf + 16 + LX_HASH_LEN, s->head_tx.checkpoint);
  MDB_val k = {strlen(META_HEAD), META_HEAD}, v = {sizeof buf, buf};
  int rc = mdb_put(txn, s->meta, &k, &v, 0);
  if (rc)
    return store_err(rc, "mdb_put meta head");
  k = (MDB_val){strlen(META_COUNTERS), META_COUNTERS};
  v = (MDB_val){COUNTERS_BYTES, &s->cnt_tx};
  if ((rc = mdb_put(txn, s->meta, &k, &v, 0)))
    return store_err(rc, "mdb_put meta counters");
  /* Stamped with the head it goes with: an older lianxind moves the head
   * without it, and the next open then counts again (load_meta). */
  lx_put_u64be(tiers, s->head_tx.seq);
  for (int t = 0; t < OPEN_TIERS; t++)
    lx_put_u64be(tiers + 8 * (1 + t), s->cnt_tx.open_tier[t]);
  k = (MDB_val){strlen(META_OPEN_TIER), META_OPEN_TIER};
  v = (MDB_val){sizeof tiers, tiers};
  return store_err(mdb_put(txn, s->meta, &k, &v, 0), "mdb_put meta open_tier");
}

/* True when the store's filesystem has less than 4 MiB left. */
static bool disk_nearly_full(const lx_store_t *s) {
  struct statvfs v;
  return statvfs(s->dir, &v) == 0 && (uint64_t)v.f_bavail * v.f_frsize < (4u << 20);
}

const double lx_commit_bounds[LX_COMMIT_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                     0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

/* The commit is where the flush to disk happens, so its time is what an
 * ack waits for; kept per bucket (not cumulative) for /metrics. */
static void hist_add(lx_commit_hist_t *h, uint64_t ns) {
  double sec = (double)ns / 1e9;
  int i = 0;
  while (i < LX_COMMIT_BUCKETS && sec > lx_commit_bounds[i])
    i++;
  h->counts[i]++;
  h->count++;
  h->sum_ns += ns;
}

const lx_commit_hist_t *lx_store_commit_hist(const lx_store_t *s) { return &s->hist; }

int lx_store_commit(lx_store_t *s, MDB_txn *txn) {
  int rc = write_meta(s, txn);
  if (rc) {
    mdb_txn_abort(txn);
    return rc;
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  rc = mdb_txn_commit(txn); /* frees txn whatever the outcome */
  clock_gettime(CLOCK_MONOTONIC, &t1);
  hist_add(&s->hist, (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u +
                         (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec);
  if (rc == EIO && disk_nearly_full(s))
    rc = ENOSPC; /* LMDB reports a short write as EIO: here it was a full disk */
  if (rc)
    return store_err(rc, "mdb_txn_commit");
  s->head = s->head_tx;
  s->cnt = s->cnt_tx;
  return 0;
}

void lx_store_abort(lx_store_t *s, MDB_txn *txn) {
  mdb_txn_abort(txn);
  s->head_tx = s->head;
  s->cnt_tx = s->cnt;
}

int lx_store_grow(lx_store_t *s) {
  if (s->map_size >= s->map_max)
    return LX_EFULL;
  uint64_t next = s->map_size * 2 > s->map_max ? s->map_max : s->map_size * 2;
  pthread_rwlock_wrlock(&s->grow_lock);
  int rc = mdb_env_set_mapsize(s->env, next);
  pthread_rwlock_unlock(&s->grow_lock);
  if (rc) {
    lx_error("store", "growing the map to %llu bytes: %s", (unsigned long long)next,
             mdb_strerror(rc));
    return LX_EFULL;
  }
  lx_info("store", "map grown from %llu to %llu bytes", (unsigned long long)s->map_size,
          (unsigned long long)next);
  s->map_size = next;
  return 0;
}

int lx_store_append(lx_store_t *s, MDB_txn *txn, uint64_t rat, const uint8_t *ev, size_t len,
                    uint64_t *seq) {
  uint8_t key[8];
  uint64_t n = s->head_tx.seq + 1;
  lx_put_u64be(key, n);
  MDB_val k = {8, key}, v = {REC_HDR + len, NULL};
  /* MDB_RESERVE: LMDB hands us the space and we write the record in place. */
  int rc = mdb_put(txn, s->log, &k, &v, MDB_APPEND | MDB_RESERVE);
  if (rc)
    return store_err(rc, "mdb_put log");
  uint8_t *p = v.mv_data;
  lx_put_u64be(p, rat);
  lx_chain_hash(s->head_tx.hash, n, rat, ev, len, p + 8);
  memcpy(p + REC_HDR, ev, len);
  memcpy(s->head_tx.hash, p + 8, LX_HASH_LEN);
  s->head_tx.seq = n;
  s->head_tx.rat = rat;
  *seq = n;
  return 0;
}

static MDB_val str_key(lx_str_t id) { return (MDB_val){id.n, (void *)id.p}; }

int lx_store_id_get(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t *seq) {
  MDB_val k = str_key(id), v;
  int rc = mdb_get(txn, s->ids, &k, &v);
  if (rc)
    return store_err(rc, "mdb_get ids");
  if (v.mv_size != 8)
    return store_err(MDB_CORRUPTED, "ids value");
  *seq = lx_get_u64be(v.mv_data);
  return 0;
}

int lx_store_id_put(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq) {
  uint8_t buf[8];
  lx_put_u64be(buf, seq);
  MDB_val k = str_key(id), v = {sizeof buf, buf};
  return store_err(mdb_put(txn, s->ids, &k, &v, 0), "mdb_put ids");
}

int lx_store_id_claim(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq, uint64_t *held) {
  uint8_t buf[8];
  lx_put_u64be(buf, seq);
  MDB_val k = str_key(id), v = {sizeof buf, buf};
  /* One descent of the tree: on MDB_KEYEXIST LMDB leaves the stored value in v. */
  int rc = mdb_put(txn, s->ids, &k, &v, MDB_NOOVERWRITE);
  if (rc != MDB_KEYEXIST)
    return store_err(rc, "mdb_put ids");
  if (v.mv_size != 8)
    return store_err(MDB_CORRUPTED, "ids value");
  *held = lx_get_u64be(v.mv_data);
  return 1;
}

int lx_store_id_del(lx_store_t *s, MDB_txn *txn, lx_str_t id) {
  MDB_val k = str_key(id);
  return store_err(mdb_del(txn, s->ids, &k, NULL), "mdb_del ids");
}

int lx_store_appeal_get(lx_store_t *s, MDB_txn *txn, lx_str_t id, lx_appeal_t *a) {
  MDB_val k = str_key(id), v;
  int rc = mdb_get(txn, s->appeals, &k, &v);
  if (rc)
    return store_err(rc, "mdb_get appeals");
  if (v.mv_size != sizeof *a)
    return store_err(MDB_CORRUPTED, "appeals value");
  memcpy(a, v.mv_data, sizeof *a);
  return a->layout == LX_APPEAL_LAYOUT ? 0 : store_err(MDB_VERSION_MISMATCH, "appeal layout");
}

/* --- open appeals, counted as they change ---------------------------------- */

/* Adds delta (+1 or -1) to the open appeals filed in unit. */
static int unit_add(lx_store_t *s, MDB_txn *txn, const char *unit, int delta) {
  uint8_t buf[8];
  MDB_val k = {strlen(unit), (void *)unit}, v;
  int rc = mdb_get(txn, s->unit_open, &k, &v);
  if (rc && rc != MDB_NOTFOUND)
    return store_err(rc, "mdb_get unit_open");
  uint64_t n = rc == 0 && v.mv_size == 8 ? lx_get_u64be(v.mv_data) : 0;
  n += (uint64_t)(int64_t)delta;
  if (n == 0) /* no key for none, so counting and a walk leave the same keys */
    return store_err(rc == 0 ? mdb_del(txn, s->unit_open, &k, NULL) : 0, "mdb_del unit_open");
  lx_put_u64be(buf, n);
  v = (MDB_val){sizeof buf, buf};
  return store_err(mdb_put(txn, s->unit_open, &k, &v, 0), "mdb_put unit_open");
}

/* Puts (add) or deletes the open_due entry of appeal id with a's deadline. */
static int due_set(lx_store_t *s, MDB_txn *txn, lx_str_t id, const lx_appeal_t *a, bool add) {
  uint8_t key[8 + 255];
  size_t n = id.n < sizeof key - 8 ? id.n : sizeof key - 8; /* ids are at most 64 bytes */
  lx_put_u64be(key, (uint64_t)a->deadline);
  memcpy(key + 8, id.p, n);
  MDB_val k = {8 + n, key}, v = {strlen(a->unit), (void *)a->unit};
  return add ? store_err(mdb_put(txn, s->open_due, &k, &v, 0), "mdb_put open_due")
             : store_err(mdb_del(txn, s->open_due, &k, NULL), "mdb_del open_due");
}

static bool tier_counted(int tier) { return tier >= LX_TIER_COMMUNITY && tier <= LX_TIER_COUNTY; }

/* Moves an appeal in the open counts from state b (NULL or not open: not
 * counted) to state a. Only what changed is written. */
static int tally_move(lx_store_t *s, MDB_txn *txn, lx_str_t id, const lx_appeal_t *b,
                      const lx_appeal_t *a) {
  lx_counters_t *c = &s->cnt_tx;
  bool was = b && lx_appeal_is_open(b->status), is = lx_appeal_is_open(a->status);
  bool was_due = was && b->deadline >= 0, is_due = is && a->deadline >= 0;
  int rc = 0;
  c->appeals_open += is;
  c->appeals_open -= was;
  if (is && tier_counted(a->tier))
    c->open_tier[a->tier - LX_TIER_COMMUNITY]++;
  if (was && tier_counted(b->tier))
    c->open_tier[b->tier - LX_TIER_COMMUNITY]--;
  bool same_unit = was && is && strcmp(a->unit, b->unit) == 0;
  if (!same_unit && was)
    rc = unit_add(s, txn, b->unit, -1);
  if (!same_unit && is && rc == 0)
    rc = unit_add(s, txn, a->unit, +1);
  if (was_due && is_due && a->deadline == b->deadline && same_unit)
    return rc;
  if (was_due && rc == 0)
    rc = due_set(s, txn, id, b, false);
  if (is_due && rc == 0)
    rc = due_set(s, txn, id, a, true);
  return rc;
}

int lx_store_appeal_put(lx_store_t *s, MDB_txn *txn, lx_str_t id, const lx_appeal_t *before,
                        const lx_appeal_t *a) {
  MDB_val k = str_key(id), v = {sizeof *a, (void *)a};
  int rc = store_err(mdb_put(txn, s->appeals, &k, &v, 0), "mdb_put appeals");
  return rc ? rc : tally_move(s, txn, id, before, a);
}

/* Counts every stored appeal into the open tallies, from nothing: the one
 * walk a store from before them needs, inside the opening transaction. */
static int upgrade_tallies(lx_store_t *s, MDB_txn *txn) {
  struct timespec t0, t1;
  MDB_cursor *c;
  MDB_val k, v;
  uint64_t n = 0, open_before = s->cnt.appeals_open;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  s->head_tx = s->head;
  s->cnt_tx = s->cnt;
  s->cnt_tx.appeals_open = 0;
  memset(s->cnt_tx.open_tier, 0, sizeof s->cnt_tx.open_tier);
  int rc = mdb_drop(txn, s->unit_open, 0), out = 0;
  if (rc == 0)
    rc = mdb_drop(txn, s->open_due, 0);
  if (rc == 0)
    rc = mdb_cursor_open(txn, s->appeals, &c);
  if (rc)
    return store_err(rc, "clearing the open tallies");
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && out == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    lx_appeal_t a;
    if (v.mv_size != sizeof a)
      continue;
    memcpy(&a, v.mv_data, sizeof a); /* LMDB's data need not be aligned */
    out = tally_move(s, txn, (lx_str_t){k.mv_data, k.mv_size}, NULL, &a);
    n++;
  }
  mdb_cursor_close(c);
  if (out == 0 && rc != MDB_NOTFOUND)
    out = store_err(rc, "mdb_cursor_get appeals");
  if (out || (out = write_meta(s, txn)))
    return out;
  s->cnt = s->cnt_tx;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  lx_info("store", "open appeals counted again (a store from before the counts, or written "
          "by an older lianxind since): %llu open of %llu, by tier, unit and deadline, in %.3f s", (unsigned long long)s->cnt.appeals_open,
          (unsigned long long)n,
          (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  if (s->cnt.appeals_open != open_before)
    lx_warn("store", "the stored appeals_open was %llu, the appeals say %llu: taken from them",
            (unsigned long long)open_before, (unsigned long long)s->cnt.appeals_open);
  return 0;
}

int lx_store_units_open_each(lx_store_t *s, MDB_txn *txn, lx_unit_open_cb cb, void *arg) {
  MDB_cursor *c;
  MDB_val k, v;
  int rc = mdb_cursor_open(txn, s->unit_open, &c), out = 0;
  if (rc)
    return store_err(rc, "mdb_cursor_open unit_open");
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && out == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
    if (v.mv_size == 8)
      out = cb(arg, (lx_str_t){k.mv_data, k.mv_size}, lx_get_u64be(v.mv_data));
  mdb_cursor_close(c);
  if (rc && rc != MDB_NOTFOUND && out == 0)
    return store_err(rc, "mdb_cursor_get unit_open");
  return out;
}

int lx_store_open_due_each(lx_store_t *s, MDB_txn *txn, int64_t until, lx_due_cb cb, void *arg) {
  MDB_cursor *c;
  MDB_val k, v;
  int rc = mdb_cursor_open(txn, s->open_due, &c), out = 0;
  if (rc)
    return store_err(rc, "mdb_cursor_open open_due");
  for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && out == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if (k.mv_size < 8)
      continue;
    int64_t dl = (int64_t)lx_get_u64be(k.mv_data);
    if (dl > until)
      break;
    out = cb(arg, (lx_str_t){(const char *)k.mv_data + 8, k.mv_size - 8}, dl,
             (lx_str_t){v.mv_data, v.mv_size});
  }
  mdb_cursor_close(c);
  if (rc && rc != MDB_NOTFOUND && out == 0)
    return store_err(rc, "mdb_cursor_get open_due");
  return out;
}

int lx_store_appeal_link(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq) {
  uint8_t buf[8];
  lx_put_u64be(buf, seq);
  MDB_val k = str_key(id), v = {8, buf};
  return store_err(mdb_put(txn, s->appeal_ev, &k, &v, 0), "mdb_put appeal_ev");
}

/* appeal_dl: appeal -> (seq, deadline) pairs, 16 bytes big-endian, so the
 * dups sort by seq. One pair per record: a later note for the same record
 * replaces the earlier one. */

/* Puts c on the pair of record seq; 0, or MDB_NOTFOUND when it has none. */
static int dl_seek(MDB_cursor *c, lx_str_t id, uint64_t seq, MDB_val *v) {
  uint8_t probe[16] = {0};
  lx_put_u64be(probe, seq);
  MDB_val k = str_key(id);
  *v = (MDB_val){sizeof probe, probe};
  int rc = mdb_cursor_get(c, &k, v, MDB_GET_BOTH_RANGE);
  if (rc == 0 && (v->mv_size != sizeof probe || lx_get_u64be(v->mv_data) != seq))
    rc = MDB_NOTFOUND;
  return rc;
}

int lx_store_deadline_note(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq,
                           int64_t deadline, bool again) {
  uint8_t pair[16];
  MDB_val k = str_key(id), v = {sizeof pair, pair};
  lx_put_u64be(pair, seq);
  lx_put_u64be(pair + 8, (uint64_t)deadline);
  if (!again)
    return store_err(mdb_put(txn, s->appeal_dl, &k, &v, 0), "writing appeal_dl");
  MDB_cursor *c;
  int rc = mdb_cursor_open(txn, s->appeal_dl, &c);
  if (rc)
    return store_err(rc, "mdb_cursor_open appeal_dl");
  MDB_val old;
  rc = dl_seek(c, id, seq, &old);
  rc = rc == 0 ? mdb_cursor_del(c, 0) : rc == MDB_NOTFOUND ? 0 : rc;
  if (rc == 0)
    rc = mdb_cursor_put(c, &k, &v, 0);
  mdb_cursor_close(c);
  return store_err(rc, "writing appeal_dl");
}

int lx_store_deadline_of(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq,
                         int64_t *deadline) {
  MDB_cursor *c;
  MDB_val v;
  int rc = mdb_cursor_open(txn, s->appeal_dl, &c);
  if (rc)
    return store_err(rc, "mdb_cursor_open appeal_dl");
  rc = dl_seek(c, id, seq, &v);
  if (rc == 0)
    *deadline = (int64_t)lx_get_u64be((const uint8_t *)v.mv_data + 8);
  mdb_cursor_close(c);
  return store_err(rc, "mdb_cursor_get appeal_dl");
}

int lx_store_read_begin(lx_store_t *s, MDB_txn **txn) {
  return store_err(mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn), "mdb_txn_begin read");
}

void lx_store_read_end(lx_store_t *s, MDB_txn *txn) { mdb_txn_abort(txn); }

int lx_store_read_begin_shared(lx_store_t *s, MDB_txn **txn) {
  pthread_rwlock_rdlock(&s->grow_lock);
  int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
  if (rc)
    pthread_rwlock_unlock(&s->grow_lock);
  return store_err(rc, "mdb_txn_begin (read, shared)");
}

void lx_store_read_end_shared(lx_store_t *s, MDB_txn *txn) {
  mdb_txn_abort(txn);
  pthread_rwlock_unlock(&s->grow_lock);
}

static int to_record(const MDB_val *k, const MDB_val *v, lx_record_t *r) {
  if (k->mv_size != 8 || v->mv_size < REC_HDR)
    return store_err(MDB_CORRUPTED, "log record");
  const uint8_t *p = v->mv_data;
  r->seq = lx_get_u64be(k->mv_data);
  r->rat = lx_get_u64be(p);
  r->hash = p + 8;
  r->ev = p + REC_HDR;
  r->ev_len = v->mv_size - REC_HDR;
  return 0;
}

int lx_store_get(lx_store_t *s, MDB_txn *txn, uint64_t seq, lx_record_t *r) {
  uint8_t key[8];
  lx_put_u64be(key, seq);
  MDB_val k = {8, key}, v;
  int rc = mdb_get(txn, s->log, &k, &v);
  if (rc)
    return store_err(rc, "mdb_get log");
  return to_record(&k, &v, r);
}

int lx_store_scan(lx_store_t *s, MDB_txn *txn, uint64_t from, uint64_t to, lx_record_cb cb,
                  void *arg) {
  MDB_cursor *c;
  uint8_t key[8];
  int rc = mdb_cursor_open(txn, s->log, &c);
  if (rc)
    return store_err(rc, "mdb_cursor_open log");
  lx_put_u64be(key, from);
  MDB_val k = {8, key}, v;
  lx_record_t r;
  int out = 0;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0 && out == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    if ((out = to_record(&k, &v, &r)))
      break;
    if (r.seq > to)
      break;
    out = cb(arg, &r);
  }
  mdb_cursor_close(c);
  if (rc && rc != MDB_NOTFOUND && out == 0)
    return store_err(rc, "mdb_cursor_get log");
  return out;
}

int lx_store_appeal_scan(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t from, lx_seq_cb cb,
                         void *arg) {
  MDB_cursor *c;
  uint8_t key[8];
  int rc = mdb_cursor_open(txn, s->appeal_ev, &c);
  if (rc)
    return store_err(rc, "mdb_cursor_open appeal_ev");
  lx_put_u64be(key, from);
  MDB_val k = str_key(id), v = {8, key};
  int out = 0;
  for (rc = mdb_cursor_get(c, &k, &v, MDB_GET_BOTH_RANGE); rc == 0 && out == 0;
       rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP))
    out = cb(arg, lx_get_u64be(v.mv_data));
  mdb_cursor_close(c);
  if (rc && rc != MDB_NOTFOUND && out == 0)
    return store_err(rc, "mdb_cursor_get appeal_ev");
  return out;
}

int lx_store_appeals_each(lx_store_t *s, MDB_txn *txn, lx_str_t after, lx_appeal_cb cb,
                          void *arg) {
  MDB_cursor *c;
  int rc = mdb_cursor_open(txn, s->appeals, &c);
  if (rc)
    return store_err(rc, "mdb_cursor_open appeals");
  MDB_val k = str_key(after), v;
  int out = 0;
  rc = after.n ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(c, &k, &v, MDB_FIRST);
  /* SET_RANGE lands on `after` itself when it exists: the page starts past it. */
  if (rc == 0 && after.n && k.mv_size == after.n && memcmp(k.mv_data, after.p, after.n) == 0)
    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
  for (; rc == 0 && out == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
    lx_appeal_t a;
    if (v.mv_size != sizeof a)
      continue;
    memcpy(&a, v.mv_data, sizeof a); /* LMDB's data need not be aligned */
    out = cb(arg, (lx_str_t){k.mv_data, k.mv_size}, &a);
  }
  mdb_cursor_close(c);
  if (rc && rc != MDB_NOTFOUND && out == 0)
    return store_err(rc, "mdb_cursor_get appeals");
  return out;
}

static uint64_t rat_of(lx_store_t *s, MDB_txn *txn, uint64_t seq) {
  lx_record_t r;
  return lx_store_get(s, txn, seq, &r) ? 0 : r.rat;
}

uint64_t lx_store_seq_for_time(lx_store_t *s, MDB_txn *txn, uint64_t ms, bool last_le) {
  MDB_stat st;
  uint64_t lo = 1, hi = s->head.seq;
  /* The committed head may be newer than this read transaction's snapshot. */
  if (mdb_stat(txn, s->log, &st) == 0 && st.ms_entries < hi)
    hi = st.ms_entries;
  if (hi == 0)
    return 0;
  if (last_le) { /* last seq with rat <= ms */
    if (rat_of(s, txn, 1) > ms)
      return 0;
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo + 1) / 2;
      if (rat_of(s, txn, mid) <= ms) lo = mid; else hi = mid - 1;
    }
    return lo;
  }
  if (rat_of(s, txn, hi) < ms) /* first seq with rat >= ms */
    return 0;
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (rat_of(s, txn, mid) >= ms) hi = mid; else lo = mid + 1;
  }
  return lo;
}

/* --- progress of outside systems ------------------------------------------------ */

/* "x." databases hold what does not follow from the log (an audit skips
 * them). Opened on first use, inside the caller's transaction, so a store
 * restored from a compacted backup needs no page before the first batch. */
#define PROGRESS_DB "x.progress"

int lx_store_progress_put(lx_store_t *s, MDB_txn *txn, const char *name, uint64_t seq) {
  MDB_dbi dbi;
  uint8_t buf[8];
  int rc = mdb_dbi_open(txn, PROGRESS_DB, MDB_CREATE, &dbi);
  if (rc)
    return store_err(rc, "mdb_dbi_open " PROGRESS_DB);
  lx_put_u64be(buf, seq);
  MDB_val k = {strlen(name), (void *)name}, v = {sizeof buf, buf};
  return store_err(mdb_put(txn, dbi, &k, &v, 0), "mdb_put " PROGRESS_DB);
}

int lx_store_progress_get(lx_store_t *s, MDB_txn *txn, const char *name, uint64_t *seq) {
  MDB_dbi dbi;
  MDB_val k = {strlen(name), (void *)name}, v;
  *seq = 0;
  int rc = mdb_dbi_open(txn, PROGRESS_DB, 0, &dbi);
  if (rc == MDB_NOTFOUND)
    return 0;
  if (rc == 0 && (rc = mdb_get(txn, dbi, &k, &v)) == 0 && v.mv_size == 8)
    *seq = lx_get_u64be(v.mv_data);
  return rc == MDB_NOTFOUND ? 0 : store_err(rc, "mdb_get " PROGRESS_DB);
}
