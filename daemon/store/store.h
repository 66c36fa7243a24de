/* SPDX-License-Identifier: MIT
 *
 * store.h: the event store, one LMDB environment.
 *
 * Named databases, all changed in the same write transaction:
 *   log        u64be seq -> u64be rat | hash[32] | event bytes
 *   ids        event id  -> u64be seq                      (the dedup index)
 *   appeals    appeal id -> lx_appeal_t                     (current state)
 *   appeal_ev  appeal id -> u64be seq, sorted duplicates    (its history)
 *   appeal_dl  appeal id -> u64be seq | u64be deadline, sorted duplicates
 *   unit_open  unit path -> u64be n: open appeals filed in that unit (none at 0)
 *   open_due   u64be deadline | appeal id -> unit path: open appeals that
 *              have a deadline, soonest first
 *   meta       "head"    -> u64be seq | u64be rat | hash[32] | u64be checkpoint
 *              "counters"-> lx_counters_t up to open_tier (3 native u64)
 *              "open_tier" -> u64be head seq | u64be open appeals at the
 *                            community, township, county
 * unit_open, open_due and open_tier are kept by lx_store_appeal_put, so
 * `stats` and `units` with counts never walk the appeals. When "open_tier"
 * is missing (a store from before them) or names another head than "head"
 * (an older lianxind wrote since), opening the store counts them again by
 * one walk of the appeals.
 * A crash leaves all of them at the last commit, so a restart reads the head
 * from meta and needs no replay. The store runs on the loop thread, but for
 * the shared read transactions below, which other threads may hold.
 */
#ifndef LX_STORE_H
#define LX_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "lx_proto.h"

#define LX_HASH_LEN 32

typedef struct lx_head {
  uint64_t seq;
  uint64_t rat;
  uint8_t hash[LX_HASH_LEN];
  uint64_t checkpoint; /* seq of the newest checkpoint record, 0 if none */
} lx_head_t;

/* Counters kept with the state, so stats survive restarts. */
typedef struct lx_counters {
  uint64_t appeals;
  uint64_t appeals_open;
  uint64_t escalations;
  /* Open appeals by the tier that holds them, [tier - LX_TIER_COMMUNITY];
   * stored under meta "open_tier", not with the fields above. */
  uint64_t open_tier[LX_TIER_COUNTY - LX_TIER_COMMUNITY + 1];
} lx_counters_t;

/* One appeal's state. Stored as these bytes, behind a layout version. */
#define LX_APPEAL_LAYOUT 1
typedef struct lx_appeal {
  uint32_t layout;         /* LX_APPEAL_LAYOUT */
  int32_t status;          /* enum lx_status */
  int32_t tier;            /* enum lx_tier: the tier that must act now */
  int32_t resolved_tier;   /* where it was last resolved, for reopening */
  int32_t urgent;
  int32_t pad;
  int64_t opened;          /* rat of the appeal record */
  int64_t deadline;        /* ms, -1 for none */
  int64_t first_response;  /* rat of the first visit that answered it, -1 */
  uint64_t seq;            /* seq of the appeal record */
  char unit[LX_PATH_MAX + 1];
  char category[65];
} lx_appeal_t;

/* A record as read from the log. Pointers are into LMDB's map: valid until
 * the transaction that read them ends. */
typedef struct lx_record {
  uint64_t seq;
  uint64_t rat;
  const uint8_t *hash;
  const uint8_t *ev;
  size_t ev_len;
} lx_record_t;

typedef struct lx_store lx_store_t;

/* Commit latency: counts per bucket (not cumulative); bucket i holds the
 * commits that took at most lx_commit_bounds[i] seconds and more than the
 * bound before; the last slot holds the slower ones. */
#define LX_COMMIT_BUCKETS 12
extern const double lx_commit_bounds[LX_COMMIT_BUCKETS];
typedef struct lx_commit_hist {
  uint64_t counts[LX_COMMIT_BUCKETS + 1];
  uint64_t count;
  uint64_t sum_ns;
} lx_commit_hist_t;
const lx_commit_hist_t *lx_store_commit_hist(const lx_store_t *s);

/* Opens (creating if needed) the store in directory dir. Clears stale reader
 * slots left by dead processes. Returns 0, or -1 with a reason in err.
 * Caller owns *out; free with lx_store_free. */
int lx_store_open(lx_store_t **out, const char *dir, uint64_t map_size, uint64_t map_max,
                  char *err, size_t errlen);
void lx_store_free(lx_store_t **s);
/* A throwaway store, for an audit's rebuild or a --check-config's plugins:
 * makes a new directory from tmpl ("/tmp/lx-x-XXXXXX", which receives its
 * name) and opens a store there. lx_store_scratch_free closes it and
 * removes the directory (also after a failed open). */
int lx_store_open_scratch(lx_store_t **out, char *tmpl, uint64_t map_size, uint64_t map_max,
                          char *err, size_t errlen);
void lx_store_scratch_free(lx_store_t **s, const char *dir);

/* The newest committed record. */
const lx_head_t *lx_store_head(const lx_store_t *s);
const lx_counters_t *lx_store_counters(const lx_store_t *s);
MDB_env *lx_store_env(lx_store_t *s);

/* --- writing: one transaction per batch -------------------------------- */

/* Begins the batch's write transaction. Returns 0 or a negative LX_E*. */
int lx_store_begin(lx_store_t *s, MDB_txn **txn);
/* Commits: LMDB flushes to disk before this returns. Returns 0, LX_EFULL
 * (map or disk full: the transaction is gone, nothing of it stored) or
 * LX_EINTERNAL. Only after 0 does the new head become visible. */
int lx_store_commit(lx_store_t *s, MDB_txn *txn);
void lx_store_abort(lx_store_t *s, MDB_txn *txn);
/* Doubles the map size up to map_max; call with no transaction open.
 * Returns 0 if it grew, LX_EFULL if it is at the ceiling. */
int lx_store_grow(lx_store_t *s);

/* The receive time for the next record: max(previous rat, now). */
uint64_t lx_store_next_rat(const lx_store_t *s, uint64_t now_ms);

/* The chain hash of the last record appended in the open transaction. */
const uint8_t *lx_store_head_tx_hash(const lx_store_t *s);

/* The seq the next append in the open transaction will get. */
uint64_t lx_store_next_seq(const lx_store_t *s);

/* Appends a record with the next seq, chaining its hash. Writes the seq
 * given to *seq. Returns 0, LX_EFULL or LX_EINTERNAL. */
int lx_store_append(lx_store_t *s, MDB_txn *txn, uint64_t rat, const uint8_t *ev, size_t len,
                    uint64_t *seq);

/* Dedup index: event id -> seq. A retry's content is compared with the
 * stored record itself, so the index holds nothing else. get returns 0
 * (found), LX_ENOTFOUND, or LX_EINTERNAL. */
int lx_store_id_get(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t *seq);
int lx_store_id_put(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq);
/* Ingest's form: maps id to seq unless the id is already there. Returns 0
 * (claimed), 1 (already held: its seq in *held), LX_EFULL or LX_EINTERNAL.
 * del takes a claim back when the event is then refused. */
int lx_store_id_claim(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq, uint64_t *held);
int lx_store_id_del(lx_store_t *s, MDB_txn *txn, lx_str_t id);

/* Appeals and their history. */
int lx_store_appeal_get(lx_store_t *s, MDB_txn *txn, lx_str_t id, lx_appeal_t *a);
/* Stores a as appeal id's state. before is the state it replaces (NULL for
 * a new appeal): what changed between the two moves the appeal in the
 * counts of open appeals (appeals_open, open_tier, unit_open, open_due),
 * in the same transaction. Returns 0, LX_EFULL or LX_EINTERNAL. */
int lx_store_appeal_put(lx_store_t *s, MDB_txn *txn, lx_str_t id, const lx_appeal_t *before,
                        const lx_appeal_t *a);
int lx_store_appeal_link(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq);
/* The deadline a plugin set on an appeal while the record at seq was
 * applied, kept per record so that the appeal can be shown as it stood at
 * any time. With `again`, this record may have noted one already, which
 * this one replaces (a first note of a record skips that look). note: 0,
 * LX_EFULL or LX_EINTERNAL; of: 0, LX_ENOTFOUND (no deadline was set by
 * that record) or LX_EINTERNAL. */
int lx_store_deadline_note(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq,
                           int64_t deadline, bool again);
int lx_store_deadline_of(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t seq,
                         int64_t *deadline);

/* Counters and checkpoint marker, changed inside the batch's transaction. */
lx_counters_t *lx_store_counters_mut(lx_store_t *s);
void lx_store_set_checkpoint(lx_store_t *s, uint64_t seq);

/* --- reading ------------------------------------------------------------ */

/* Read transactions; end with lx_store_read_end. */
int lx_store_read_begin(lx_store_t *s, MDB_txn **txn);
void lx_store_read_end(lx_store_t *s, MDB_txn *txn);

/* The same from a thread other than the loop's (MDB_NOTLS lets any thread
 * own a read transaction): the map cannot grow until read_end_shared, so
 * keep it short. Returns 0 or LX_EINTERNAL. */
int lx_store_read_begin_shared(lx_store_t *s, MDB_txn **txn);
void lx_store_read_end_shared(lx_store_t *s, MDB_txn *txn);

/* The head as of a read transaction's snapshot. Returns 0 or LX_EINTERNAL. */
int lx_store_read_head(lx_store_t *s, MDB_txn *txn, lx_head_t *h);

/* Reads the record at seq. Returns 0, LX_ENOTFOUND or LX_EINTERNAL. */
int lx_store_get(lx_store_t *s, MDB_txn *txn, uint64_t seq, lx_record_t *r);

/* Calls cb for each record from seq `from` up to `to` (inclusive), in order,
 * until cb returns non-zero (that value is returned) or the range ends (0). */
typedef int (*lx_record_cb)(void *arg, const lx_record_t *r);
int lx_store_scan(lx_store_t *s, MDB_txn *txn, uint64_t from, uint64_t to, lx_record_cb cb,
                  void *arg);

/* Calls cb for each seq >= from in the appeal's history, in order, until cb
 * returns non-zero. */
typedef int (*lx_seq_cb)(void *arg, uint64_t seq);
int lx_store_appeal_scan(lx_store_t *s, MDB_txn *txn, lx_str_t id, uint64_t from, lx_seq_cb cb,
                         void *arg);

/* Calls cb for each stored appeal whose id sorts after `after` (all when
 * after.n is 0), in id order, until cb returns non-zero (returned). */
typedef int (*lx_appeal_cb)(void *arg, lx_str_t id, const lx_appeal_t *a);
int lx_store_appeals_each(lx_store_t *s, MDB_txn *txn, lx_str_t after, lx_appeal_cb cb,
                          void *arg);

/* Calls cb for each unit with open appeals filed in it (n of them), in
 * path order, until cb returns non-zero (returned). */
typedef int (*lx_unit_open_cb)(void *arg, lx_str_t unit, uint64_t n);
int lx_store_units_open_each(lx_store_t *s, MDB_txn *txn, lx_unit_open_cb cb, void *arg);

/* Calls cb for each open appeal whose deadline is at or before `until`,
 * soonest first, until cb returns non-zero (returned). Reads only those. */
typedef int (*lx_due_cb)(void *arg, lx_str_t id, int64_t deadline, lx_str_t unit);
int lx_store_open_due_each(lx_store_t *s, MDB_txn *txn, int64_t until, lx_due_cb cb, void *arg);

/* The first seq whose rat is >= ms (ms_inclusive_end false), or the last seq
 * whose rat is <= ms (true). Receive times never decrease, so this is a
 * binary search. Returns 0 when there is none. */
uint64_t lx_store_seq_for_time(lx_store_t *s, MDB_txn *txn, uint64_t ms, bool last_le);

/* How far an outside system (a plugin's mirror) has taken the log, by name,
 * in the database "x.progress", which does not follow from the log. put
 * runs in a write transaction; get returns 0 with *seq (0 if none). */
int lx_store_progress_put(lx_store_t *s, MDB_txn *txn, const char *name, uint64_t seq);
int lx_store_progress_get(lx_store_t *s, MDB_txn *txn, const char *name, uint64_t *seq);

/* Computes the chain hash of a record from its predecessor's. */
void lx_chain_hash(const uint8_t prev[LX_HASH_LEN], uint64_t seq, uint64_t rat,
                   const uint8_t *ev, size_t len, uint8_t out[LX_HASH_LEN]);

#endif
