/* SPDX-License-Identifier: MIT
 *
 * test_store.c: unit tests of the LMDB store (daemon/store/store.c): append and
 * the hash chain, the dedup index, appeals and their history, reopening
 * after close, time-to-seq search, a full map that must abort cleanly
 * and grow, and the counts of open appeals (by tier, unit and deadline)
 * kept as appeals change, across restarts and from an older store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>

#include "store.h"

static char dir[256];

static int setup(void **state) {
  snprintf(dir, sizeof dir, "/tmp/lx-test-store-XXXXXX");
  assert_non_null(mkdtemp(dir));
  return 0;
}

static int teardown(void **state) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd);
}

static lx_store_t *open_store(uint64_t map, uint64_t max) {
  lx_store_t *s = NULL;
  char err[256];
  if (lx_store_open(&s, dir, map, max, err, sizeof err))
    fail_msg("open: %s", err);
  return s;
}

static lx_str_t S(const char *s) { return (lx_str_t){s, strlen(s)}; }

/* Appends n records of the given text, one transaction. */
static void append_n(lx_store_t *s, int n, uint64_t rat, const char *text) {
  MDB_txn *txn;
  assert_int_equal(lx_store_begin(s, &txn), 0);
  for (int i = 0; i < n; i++) {
    uint64_t seq;
    assert_int_equal(lx_store_append(s, txn, rat, (const uint8_t *)text, strlen(text), &seq), 0);
  }
  assert_int_equal(lx_store_commit(s, txn), 0);
}

typedef struct chk {
  uint8_t h[LX_HASH_LEN];
  uint64_t expect;
} chk_t;

static int check_chain(void *arg, const lx_record_t *r) {
  chk_t *c = arg;
  uint8_t h[LX_HASH_LEN];
  assert_int_equal(r->seq, c->expect);
  lx_chain_hash(c->h, r->seq, r->rat, r->ev, r->ev_len, h);
  assert_memory_equal(h, r->hash, LX_HASH_LEN);
  memcpy(c->h, h, LX_HASH_LEN);
  c->expect++;
  return 0;
}

static void verify(lx_store_t *s, uint64_t n) {
  MDB_txn *txn;
  chk_t c = {{0}, 1};
  assert_int_equal(lx_store_read_begin(s, &txn), 0);
  assert_int_equal(lx_store_scan(s, txn, 1, UINT64_MAX, check_chain, &c), 0);
  lx_store_read_end(s, txn);
  assert_int_equal(c.expect, n + 1);
  assert_memory_equal(c.h, lx_store_head(s)->hash, LX_HASH_LEN);
}

static void test_append_chain_reopen(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  assert_int_equal(lx_store_head(s)->seq, 0);
  append_n(s, 3, 1000, "alpha");
  append_n(s, 2, 2000, "beta");
  assert_int_equal(lx_store_head(s)->seq, 5);
  verify(s, 5);
  uint8_t head[LX_HASH_LEN];
  memcpy(head, lx_store_head(s)->hash, LX_HASH_LEN);
  lx_store_free(&s);
  assert_null(s);
  s = open_store(1 << 20, 1 << 20);
  assert_int_equal(lx_store_head(s)->seq, 5);
  assert_int_equal(lx_store_head(s)->rat, 2000);
  assert_memory_equal(lx_store_head(s)->hash, head, LX_HASH_LEN);
  append_n(s, 1, 3000, "gamma");
  verify(s, 6);
  lx_store_free(&s);
}

static void test_abort_leaves_nothing(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  append_n(s, 1, 10, "one");
  MDB_txn *txn;
  uint64_t seq;
  assert_int_equal(lx_store_begin(s, &txn), 0);
  assert_int_equal(lx_store_append(s, txn, 20, (const uint8_t *)"two", 3, &seq), 0);
  assert_int_equal(seq, 2);
  lx_store_abort(s, txn);
  assert_int_equal(lx_store_head(s)->seq, 1);
  append_n(s, 1, 30, "three");
  assert_int_equal(lx_store_head(s)->seq, 2);
  verify(s, 2);
  lx_store_free(&s);
}

/* Ingest claims an id in one step: the first claim wins, a second one is
 * told the seq that holds it, and a claim taken back frees the id. */
static void test_id_claim(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  uint64_t held = 0, seq;
  MDB_txn *txn;
  assert_int_equal(lx_store_begin(s, &txn), 0);
  assert_int_equal(lx_store_id_claim(s, txn, S("event-claim-1"), 3, &held), 0);
  assert_int_equal(lx_store_id_claim(s, txn, S("event-claim-1"), 9, &held), 1);
  assert_int_equal(held, 3);
  assert_int_equal(lx_store_id_get(s, txn, S("event-claim-1"), &seq), 0);
  assert_int_equal(seq, 3); /* the losing claim changed nothing */
  assert_int_equal(lx_store_id_claim(s, txn, S("event-claim-2"), 4, &held), 0);
  assert_int_equal(lx_store_id_del(s, txn, S("event-claim-2")), 0);
  assert_int_equal(lx_store_id_get(s, txn, S("event-claim-2"), &seq), LX_ENOTFOUND);
  assert_int_equal(lx_store_id_claim(s, txn, S("event-claim-2"), 5, &held), 0);
  assert_int_equal(lx_store_commit(s, txn), 0);
  lx_store_free(&s);
}

/* The deadline history: one note per record, the last note of a record
 * wins (noted `again`), other records' notes are untouched, and "none"
 * (-1) survives. */
static void test_deadline_notes(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  int64_t dl = 0;
  MDB_txn *txn;
  assert_int_equal(lx_store_begin(s, &txn), 0);
  assert_int_equal(lx_store_deadline_of(s, txn, S("ap-1"), 3, &dl), LX_ENOTFOUND);
  assert_int_equal(lx_store_deadline_note(s, txn, S("ap-1"), 3, 1790000000000, false), 0);
  assert_int_equal(lx_store_deadline_note(s, txn, S("ap-1"), 3, 1790000999000, true), 0);
  assert_int_equal(lx_store_deadline_note(s, txn, S("ap-1"), 9, -1, false), 0);
  assert_int_equal(lx_store_deadline_note(s, txn, S("ap-2"), 4, 1800000000000, false), 0);
  assert_int_equal(lx_store_commit(s, txn), 0);
  assert_int_equal(lx_store_read_begin(s, &txn), 0);
  assert_int_equal(lx_store_deadline_of(s, txn, S("ap-1"), 3, &dl), 0);
  assert_true(dl == 1790000999000);
  assert_int_equal(lx_store_deadline_of(s, txn, S("ap-1"), 9, &dl), 0);
  assert_true(dl == -1);
  assert_int_equal(lx_store_deadline_of(s, txn, S("ap-1"), 4, &dl), LX_ENOTFOUND);
  assert_int_equal(lx_store_deadline_of(s, txn, S("ap-2"), 4, &dl), 0);
  assert_true(dl == 1800000000000);
  assert_int_equal(lx_store_deadline_of(s, txn, S("ap-3"), 4, &dl), LX_ENOTFOUND);
  lx_store_read_end(s, txn);
  lx_store_free(&s);
}

static void test_dedup_index(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  uint64_t seq;
  MDB_txn *txn;
  assert_int_equal(lx_store_begin(s, &txn), 0);
  assert_int_equal(lx_store_id_get(s, txn, S("event-0000000001"), &seq), LX_ENOTFOUND);
  assert_int_equal(lx_store_id_put(s, txn, S("event-0000000001"), 7), 0);
  /* Visible inside the same transaction: a retry within one batch is a dup. */
  assert_int_equal(lx_store_id_get(s, txn, S("event-0000000001"), &seq), 0);
  assert_int_equal(seq, 7);
  assert_int_equal(lx_store_commit(s, txn), 0);
  lx_store_free(&s);
  s = open_store(1 << 20, 1 << 20);
  assert_int_equal(lx_store_read_begin(s, &txn), 0);
  assert_int_equal(lx_store_id_get(s, txn, S("event-0000000001"), &seq), 0);
  assert_int_equal(seq, 7);
  lx_store_read_end(s, txn);
  lx_store_free(&s);
}

static int collect(void *arg, uint64_t seq) {
  uint64_t *v = arg;
  v[++v[0]] = seq;
  return 0;
}

static void test_appeals_and_history(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  lx_appeal_t a = {.layout = LX_APPEAL_LAYOUT, .status = LX_ST_OPEN, .tier = 1, .deadline = -1},
              b;
  strcpy(a.unit, "qd.hx.dy");
  MDB_txn *txn;
  assert_int_equal(lx_store_begin(s, &txn), 0);
  assert_int_equal(lx_store_appeal_put(s, txn, S("ap-1"), NULL, &a), 0);
  assert_int_equal(lx_store_appeal_link(s, txn, S("ap-1"), 9), 0);
  assert_int_equal(lx_store_appeal_link(s, txn, S("ap-1"), 3), 0);
  assert_int_equal(lx_store_appeal_link(s, txn, S("ap-10"), 4), 0);
  assert_int_equal(lx_store_appeal_link(s, txn, S("ap-1"), 300), 0);
  assert_int_equal(lx_store_commit(s, txn), 0); /* the put counted it open */
  assert_int_equal(lx_store_counters(s)->appeals_open, 1);
  assert_int_equal(lx_store_read_begin(s, &txn), 0);
  assert_int_equal(lx_store_appeal_get(s, txn, S("ap-1"), &b), 0);
  assert_string_equal(b.unit, "qd.hx.dy");
  assert_int_equal(lx_store_appeal_get(s, txn, S("ap-2"), &b), LX_ENOTFOUND);
  uint64_t seqs[8] = {0};
  assert_int_equal(lx_store_appeal_scan(s, txn, S("ap-1"), 1, collect, seqs), 0);
  assert_int_equal(seqs[0], 3); /* in seq order, ap-10's not mixed in */
  assert_int_equal(seqs[1], 3);
  assert_int_equal(seqs[2], 9);
  assert_int_equal(seqs[3], 300);
  memset(seqs, 0, sizeof seqs);
  assert_int_equal(lx_store_appeal_scan(s, txn, S("ap-1"), 5, collect, seqs), 0);
  assert_int_equal(seqs[0], 2);
  assert_int_equal(seqs[1], 9);
  lx_store_read_end(s, txn);
  lx_store_free(&s);
  s = open_store(1 << 20, 1 << 20);
  assert_int_equal(lx_store_counters(s)->appeals_open, 1);
  lx_store_free(&s);
}

static void test_seq_for_time(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  MDB_txn *txn;
  append_n(s, 2, 100, "a"); /* seq 1-2 at 100 */
  append_n(s, 3, 200, "b"); /* seq 3-5 at 200 */
  append_n(s, 1, 300, "c"); /* seq 6 at 300 */
  assert_int_equal(lx_store_read_begin(s, &txn), 0);
  assert_int_equal(lx_store_seq_for_time(s, txn, 50, false), 1);
  assert_int_equal(lx_store_seq_for_time(s, txn, 150, false), 3);
  assert_int_equal(lx_store_seq_for_time(s, txn, 200, false), 3);
  assert_int_equal(lx_store_seq_for_time(s, txn, 301, false), 0);
  assert_int_equal(lx_store_seq_for_time(s, txn, 50, true), 0);
  assert_int_equal(lx_store_seq_for_time(s, txn, 200, true), 5);
  assert_int_equal(lx_store_seq_for_time(s, txn, 299, true), 5);
  assert_int_equal(lx_store_seq_for_time(s, txn, 1000, true), 6);
  lx_store_read_end(s, txn);
  /* rat never goes backwards, whatever the clock says. */
  assert_int_equal(lx_store_next_rat(s, 250), 300);
  assert_int_equal(lx_store_next_rat(s, 350), 350);
  lx_store_free(&s);
}

/* A map that fills: the put fails with E_FULL, the aborted batch leaves
 * nothing, growing lets the same batch through. */
static void test_map_full_and_grow(void **state) {
  lx_store_t *s = open_store(1 << 20, 4 << 20);
  static uint8_t blob[3000];
  memset(blob, 'x', sizeof blob);
  MDB_txn *txn;
  uint64_t seq;
  int rc = 0, n = 0;
  assert_int_equal(lx_store_begin(s, &txn), 0);
  while (rc == 0 && n < 10000) {
    rc = lx_store_append(s, txn, 1, blob, sizeof blob, &seq);
    n++;
  }
  assert_int_equal(rc, LX_EFULL);
  lx_store_abort(s, txn);
  assert_int_equal(lx_store_head(s)->seq, 0);
  int want = n - 1;
  /* Grow and retry until it fits; the ceiling is 4 MiB. */
  for (;;) {
    assert_int_equal(lx_store_begin(s, &txn), 0);
    rc = 0;
    for (int i = 0; i < want && rc == 0; i++)
      rc = lx_store_append(s, txn, 1, blob, sizeof blob, &seq);
    if (rc == 0)
      rc = lx_store_commit(s, txn);
    else
      lx_store_abort(s, txn);
    if (rc == 0)
      break;
    assert_int_equal(rc, LX_EFULL);
    assert_int_equal(lx_store_grow(s), 0);
  }
  assert_int_equal(lx_store_head(s)->seq, (uint64_t)want);
  verify(s, want);
  /* At the ceiling, growth says no. */
  while (lx_store_grow(s) == 0)
    ;
  assert_int_equal(lx_store_grow(s), LX_EFULL);
  lx_store_free(&s);
}

/* A thread of a plugin (the JetStream mirror) reads with shared read
 * transactions while this thread appends and grows the map: every read
 * sees a whole committed prefix, and growth waits for open reads. */
typedef struct reader {
  lx_store_t *s;
  atomic_int stop;
  uint64_t reads, max_seen;
  int bad;
} reader_t;

static int count_rec(void *arg, const lx_record_t *r) {
  (*(uint64_t *)arg)++;
  return 0;
}

static void *reader_main(void *arg) {
  reader_t *rd = arg;
  while (!atomic_load(&rd->stop)) {
    MDB_txn *txn;
    lx_head_t h;
    uint64_t n = 0;
    if (lx_store_read_begin_shared(rd->s, &txn)) {
      rd->bad++;
      continue;
    }
    lx_store_read_head(rd->s, txn, &h);
    lx_store_scan(rd->s, txn, 1, h.seq, count_rec, &n);
    lx_store_read_end_shared(rd->s, txn);
    rd->bad += n != h.seq;
    rd->max_seen = h.seq > rd->max_seen ? h.seq : rd->max_seen;
    rd->reads++;
  }
  return NULL;
}

static void test_shared_reads_beside_growth(void **state) {
  lx_store_t *s = open_store(1 << 20, 64 << 20);
  reader_t rd = {.s = s};
  pthread_t t;
  static uint8_t blob[2000];
  memset(blob, 'y', sizeof blob);
  assert_int_equal(pthread_create(&t, NULL, reader_main, &rd), 0);
  uint64_t total = 0;
  for (int batch = 0; batch < 200; batch++) {
    MDB_txn *txn;
    uint64_t seq;
    int rc;
    do {
      assert_int_equal(lx_store_begin(s, &txn), 0);
      rc = 0;
      for (int i = 0; i < 50 && rc == 0; i++)
        rc = lx_store_append(s, txn, 1, blob, sizeof blob, &seq);
      rc = rc ? (lx_store_abort(s, txn), rc) : lx_store_commit(s, txn);
    } while (rc == LX_EFULL && lx_store_grow(s) == 0);
    assert_int_equal(rc, 0);
    total += 50;
  }
  atomic_store(&rd.stop, 1);
  pthread_join(t, NULL);
  assert_int_equal(rd.bad, 0);
  assert_true(rd.reads > 0);
  assert_true(rd.max_seen <= total);
  verify(s, total);
  lx_store_free(&s);
}

static void test_progress(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  MDB_txn *txn;
  uint64_t seq = 99;
  assert_int_equal(lx_store_read_begin(s, &txn), 0);
  assert_int_equal(lx_store_progress_get(s, txn, "jetstream", &seq), 0);
  assert_int_equal(seq, 0); /* never set: no database yet */
  lx_store_read_end(s, txn);
  append_n(s, 1, 1, "r");
  assert_int_equal(lx_store_begin(s, &txn), 0);
  assert_int_equal(lx_store_progress_put(s, txn, "jetstream", 42), 0);
  assert_int_equal(lx_store_commit(s, txn), 0);
  lx_store_free(&s);
  s = open_store(1 << 20, 1 << 20); /* it survives a restart */
  assert_int_equal(lx_store_read_begin(s, &txn), 0);
  assert_int_equal(lx_store_progress_get(s, txn, "jetstream", &seq), 0);
  assert_int_equal(seq, 42);
  assert_int_equal(lx_store_progress_get(s, txn, "other", &seq), 0);
  assert_int_equal(seq, 0);
  lx_store_read_end(s, txn);
  lx_store_free(&s);
}

/* --- open appeals, counted as they change ------------------------------------ */

typedef struct seen {
  char text[512];
} seen_t;

static int seen_unit(void *arg, lx_str_t unit, uint64_t n) {
  seen_t *o = arg;
  size_t at = strlen(o->text);
  snprintf(o->text + at, sizeof o->text - at, "%.*s=%llu ", (int)unit.n, unit.p,
           (unsigned long long)n);
  return 0;
}

static int seen_due(void *arg, lx_str_t id, int64_t deadline, lx_str_t unit) {
  seen_t *o = arg;
  size_t at = strlen(o->text);
  snprintf(o->text + at, sizeof o->text - at, "%.*s@%lld:%.*s ", (int)id.n, id.p,
           (long long)deadline, (int)unit.n, unit.p);
  return 0;
}

/* What the store says of its open appeals: the counters, the units and the
 * appeals due by `until`, as one line. */
static void tallies(lx_store_t *s, int64_t until, char *out, size_t len) {
  const lx_counters_t *c = lx_store_counters(s);
  seen_t units = {""}, due = {""};
  MDB_txn *txn;
  assert_int_equal(lx_store_read_begin(s, &txn), 0);
  assert_int_equal(lx_store_units_open_each(s, txn, seen_unit, &units), 0);
  assert_int_equal(lx_store_open_due_each(s, txn, until, seen_due, &due), 0);
  lx_store_read_end(s, txn);
  snprintf(out, len, "open %llu tiers %llu/%llu/%llu | %s| %s", (unsigned long long)c->appeals_open,
           (unsigned long long)c->open_tier[0], (unsigned long long)c->open_tier[1],
           (unsigned long long)c->open_tier[2], units.text, due.text);
}

static lx_appeal_t new_appeal(const char *unit) {
  lx_appeal_t a = {.layout = LX_APPEAL_LAYOUT, .status = LX_ST_OPEN,
                   .tier = LX_TIER_COMMUNITY, .deadline = -1};
  strcpy(a.unit, unit);
  return a;
}

/* Moves appeal id from *a to next in its own transaction. */
static void move(lx_store_t *s, const char *id, lx_appeal_t *a, lx_appeal_t next, bool is_new) {
  MDB_txn *txn;
  assert_int_equal(lx_store_begin(s, &txn), 0);
  assert_int_equal(lx_store_appeal_put(s, txn, S(id), is_new ? NULL : a, &next), 0);
  assert_int_equal(lx_store_commit(s, txn), 0);
  *a = next;
}

static void test_open_tallies(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  char got[700];
  lx_appeal_t a = new_appeal("qd.hx.dy"), b = new_appeal("qd.xs.sq"), n;
  move(s, "A", &a, a, true);
  move(s, "B", &b, b, true);
  tallies(s, 1 << 30, got, sizeof got);
  assert_string_equal(got, "open 2 tiers 2/0/0 | qd.hx.dy=1 qd.xs.sq=1 | ");
  n = a, n.deadline = 1000; /* the plugin's set_deadline */
  move(s, "A", &a, n, false);
  n = b, n.deadline = 500;
  move(s, "B", &b, n, false);
  tallies(s, 999, got, sizeof got); /* only what is due by `until` */
  assert_string_equal(got, "open 2 tiers 2/0/0 | qd.hx.dy=1 qd.xs.sq=1 | B@500:qd.xs.sq ");
  n = a, n.tier = LX_TIER_TOWNSHIP, n.deadline = 2000; /* escalated */
  move(s, "A", &a, n, false);
  n = b, n.status = LX_ST_RESOLVED, n.resolved_tier = b.tier;
  move(s, "B", &b, n, false);
  tallies(s, 1 << 30, got, sizeof got);
  assert_string_equal(got, "open 1 tiers 0/1/0 | qd.hx.dy=1 | A@2000:qd.hx.dy ");
  n = b, n.status = LX_ST_OPEN; /* unsatisfied feedback reopens it */
  move(s, "B", &b, n, false);
  tallies(s, 1 << 30, got, sizeof got);
  assert_string_equal(got, "open 2 tiers 1/1/0 | qd.hx.dy=1 qd.xs.sq=1 | B@500:qd.xs.sq A@2000:qd.hx.dy ");
  /* An aborted batch leaves nothing of its moves. */
  MDB_txn *txn;
  n = a, n.status = LX_ST_CLOSED;
  assert_int_equal(lx_store_begin(s, &txn), 0);
  assert_int_equal(lx_store_appeal_put(s, txn, S("A"), &a, &n), 0);
  lx_store_abort(s, txn);
  n = a, n.tier = LX_TIER_COUNTY;
  move(s, "A", &a, n, false);
  lx_store_free(&s);
  s = open_store(1 << 20, 1 << 20); /* and they survive a restart */
  tallies(s, 1 << 30, got, sizeof got);
  assert_string_equal(got, "open 2 tiers 1/0/1 | qd.hx.dy=1 qd.xs.sq=1 | B@500:qd.xs.sq A@2000:qd.hx.dy ");
  lx_store_free(&s);
}

/* Sets the head seq "open_tier" is stamped with, or deletes the entry
 * (seq 0), as an older lianxind leaves it; with wipe, the unit_open and
 * open_due databases go too. */
static void make_stale(lx_store_t *s, uint64_t seq, bool wipe) {
  MDB_txn *txn;
  MDB_dbi meta, dbi;
  MDB_val k = {9, "open_tier"}, v;
  assert_int_equal(mdb_txn_begin(lx_store_env(s), NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
  if (seq == 0) {
    assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
  } else {
    uint8_t buf[32];
    assert_int_equal(mdb_get(txn, meta, &k, &v), 0);
    assert_int_equal(v.mv_size, sizeof buf);
    memcpy(buf, v.mv_data, sizeof buf);
    lx_put_u64be(buf, seq);
    v = (MDB_val){sizeof buf, buf};
    assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
  }
  for (int i = 0; wipe && i < 2; i++) {
    assert_int_equal(mdb_dbi_open(txn, i ? "open_due" : "unit_open", 0, &dbi), 0);
    assert_int_equal(mdb_drop(txn, dbi, 1), 0);
  }
  assert_int_equal(mdb_txn_commit(txn), 0);
}

/* A store written before the open tallies (no "open_tier", no unit_open
 * or open_due rows), or by an older lianxind after a newer one (stamped
 * with an older head), is counted again when it is opened; a current one
 * is not. */
static void test_stale_tallies_counted_again(void **state) {
  lx_store_t *s = open_store(1 << 20, 1 << 20);
  char want[700], got[700];
  lx_appeal_t a = new_appeal("qd.hx.dy"), b = new_appeal("qd.hx.dy"), c = new_appeal("qd.nh.hb"),
              n;
  append_n(s, 3, 1, "r"); /* a head to stamp */
  move(s, "A", &a, a, true);
  move(s, "B", &b, b, true);
  move(s, "C", &c, c, true);
  n = a, n.tier = LX_TIER_COUNTY, n.deadline = 7000;
  move(s, "A", &a, n, false);
  n = c, n.status = LX_ST_CLOSED;
  move(s, "C", &c, n, false);
  tallies(s, 1 << 30, want, sizeof want);
  assert_string_equal(want, "open 2 tiers 1/0/1 | qd.hx.dy=2 | A@7000:qd.hx.dy ");
  make_stale(s, 0, true);
  lx_store_free(&s);
  s = open_store(1 << 20, 1 << 20);
  tallies(s, 1 << 30, got, sizeof got);
  assert_string_equal(got, want);
  /* An older lianxind closed A and moved the head without the tallies. */
  MDB_txn *txn;
  MDB_dbi dbi;
  n = a, n.status = LX_ST_CLOSED;
  assert_int_equal(mdb_txn_begin(lx_store_env(s), NULL, 0, &txn), 0);
  assert_int_equal(mdb_dbi_open(txn, "appeals", 0, &dbi), 0);
  MDB_val k = {1, "A"}, v = {sizeof n, &n};
  assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
  assert_int_equal(mdb_txn_commit(txn), 0);
  make_stale(s, 2, false);
  lx_store_free(&s);
  s = open_store(1 << 20, 1 << 20);
  tallies(s, 1 << 30, got, sizeof got);
  assert_string_equal(got, "open 1 tiers 1/0/0 | qd.hx.dy=1 | ");
  lx_store_free(&s);
}

/* An older store that filled its map, with none of the open tallies' rows:
 * its first count at open needs room it does not have, and the map grows
 * (up to the ceiling) instead of the open failing. */
static void test_stale_tallies_grow_the_map(void **state) {
  lx_store_t *s = open_store(1 << 20, 16 << 20);
  MDB_txn *txn;
  MDB_dbi dbi;
  int n = 0, rc = 0;
  append_n(s, 1, 1, "r");
  while (rc == 0) { /* appeals as an older lianxind stored them: no tallies */
    char id[16];
    lx_appeal_t a = new_appeal("qd.hx.dy");
    a.deadline = 1000 + n;
    snprintf(id, sizeof id, "ap-%06d", n);
    assert_int_equal(mdb_txn_begin(lx_store_env(s), NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "appeals", 0, &dbi), 0);
    MDB_val k = {strlen(id), id}, v = {sizeof a, &a};
    rc = mdb_put(txn, dbi, &k, &v, 0);
    if (rc == 0)
      rc = mdb_txn_commit(txn);
    else
      mdb_txn_abort(txn);
    n += rc == 0;
  }
  assert_int_equal(rc, MDB_MAP_FULL);
  make_stale(s, 0, true);
  lx_store_free(&s);
  s = open_store(1 << 20, 16 << 20);
  MDB_envinfo info;
  mdb_env_info(lx_store_env(s), &info);
  assert_true(info.me_mapsize > (1 << 20));
  assert_int_equal(lx_store_counters(s)->appeals_open, (uint64_t)n);
  assert_int_equal(lx_store_counters(s)->open_tier[0], (uint64_t)n);
  lx_store_free(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_append_chain_reopen, setup, teardown),
      cmocka_unit_test_setup_teardown(test_abort_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dedup_index, setup, teardown),
      cmocka_unit_test_setup_teardown(test_id_claim, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_notes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_appeals_and_history, setup, teardown),
      cmocka_unit_test_setup_teardown(test_seq_for_time, setup, teardown),
      cmocka_unit_test_setup_teardown(test_map_full_and_grow, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shared_reads_beside_growth, setup, teardown),
      cmocka_unit_test_setup_teardown(test_progress, setup, teardown),
      cmocka_unit_test_setup_teardown(test_open_tallies, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stale_tallies_counted_again, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stale_tallies_grow_the_map, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
