/* SPDX-License-Identifier: MIT
 *
 * apply.c: see apply.h. Everything here runs inside one LMDB write
 * transaction and changes the log and the state beside it together.
 */
#include <string.h>

#include "appeal.h"
#include "apply.h"
#include "cfgstore.h"
#include "plugin_host.h"

/* True when the record at seq holds the same content (its bytes without
 * `by`, which names the key that sent it, not what was said). */
static bool same_content(lx_store_t *s, MDB_txn *txn, uint64_t seq, const lx_apply_t *a) {
  lx_record_t r;
  lx_event_t ev;
  msgpack_zone zone;
  msgpack_sbuffer content;
  if (lx_store_get(s, txn, seq, &r))
    return false;
  msgpack_zone_init(&zone, 1024);
  msgpack_sbuffer_init(&content);
  bool same = lx_event_content(r.ev, r.ev_len, &zone, &ev, &content) == 0 &&
              content.size == a->content_len &&
              memcmp(content.data, a->content, a->content_len) == 0;
  msgpack_sbuffer_destroy(&content);
  msgpack_zone_destroy(&zone);
  return same;
}

/* Claims the event's id for the seq it is about to get, which is also how a
 * retry is found: the same id with the same content is a dup carrying the
 * original seq; with other content it is E_CONFLICT. Retries are rare, so
 * the comparison reads the stored record rather than keeping a hash. */
static int claim_id(lx_store_t *s, MDB_txn *txn, lx_apply_t *a) {
  uint64_t seq;
  int rc = lx_store_id_claim(s, txn, a->ev->id, lx_store_next_seq(s), &seq);
  if (rc <= 0)
    return rc;
  if (!same_content(s, txn, seq, a)) {
    lx_fail(&a->err, LX_ECONFLICT, "id: \"%.*s\" is already stored (seq %llu) with other content",
            (int)a->ev->id.n, a->ev->id.p, (unsigned long long)seq);
    return 0;
  }
  a->dup = true;
  a->seq = seq;
  return 0;
}

/* Moves the named appeal to its new state, records the event in its
 * history, and keeps the counters (the open ones through the put). */
static int store_appeal(lx_store_t *s, MDB_txn *txn, const lx_apply_t *a,
                        const lx_appeal_t *before, bool exists, lx_appeal_t *after) {
  lx_counters_t *c = lx_store_counters_mut(s);
  if (a->ev->type == LX_EV_APPEAL) {
    after->seq = a->seq;
    c->appeals++;
  }
  if (a->ev->type == LX_EV_ESCALATION)
    c->escalations++;
  int rc = lx_store_appeal_put(s, txn, a->ev->appeal, exists ? before : NULL, after);
  return rc ? rc : lx_store_appeal_link(s, txn, a->ev->appeal, a->seq);
}

int lx_apply_record(lx_daemon_t *d, MDB_txn *txn, lx_apply_t *a) {
  lx_store_t *s = d->store;
  a->seq = 0;
  a->dup = false;
  a->err.code = 0;
  int rc = claim_id(s, txn, a);
  if (rc || a->dup || a->err.code)
    return rc;
  lx_appeal_t before, after;
  bool exists = false;
  if (a->ev->appeal.n) {
    rc = lx_store_appeal_get(s, txn, a->ev->appeal, &before);
    if (rc && rc != LX_ENOTFOUND)
      return rc;
    exists = rc == 0;
    after = before;
    if (lx_appeal_apply(&after, exists, a->ev, 0, (int64_t)a->rat, &a->err))
      return lx_store_id_del(s, txn, a->ev->id); /* E_STATE or E_CONFLICT: answered, nothing stored */
  }
  if ((rc = lx_store_append(s, txn, a->rat, a->bytes, a->len, &a->seq)))
    return rc;
  if (a->ev->type == LX_EV_CHECKPOINT)
    lx_store_set_checkpoint(s, a->seq);
  if (a->ev->type == LX_EV_CONFIG && a->ev->cfg_hash.n == 32 &&
      (rc = lx_cfgstore_set_current(txn, (const uint8_t *)a->ev->cfg_hash.p)))
    return rc == MDB_MAP_FULL ? LX_EFULL : LX_EINTERNAL;
  /* The appeal's new state is stored after the plugins have seen it, with
   * the deadline one of them may set: one write of its row per record. */
  bool held = a->ev->appeal.n != 0;
  if ((rc = lx_plugins_apply(d, txn, a->seq, a->rat, a->ev, a->bytes, a->len,
                             held ? &after : NULL)))
    return rc;
  return held ? store_appeal(s, txn, a, &before, exists, &after) : 0;
}
