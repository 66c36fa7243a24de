/* SPDX-License-Identifier: MIT
 *
 * apply.h: what storing one record means, in one place: dedup, the
 * appeal's state, the append with its chain hash, the indexes, the
 * plugins' apply. The live path (ingest.c) and the audit's rebuild
 * (audit.c) both go through it, so a rebuild is the same computation.
 */
#ifndef LX_APPLY_H
#define LX_APPLY_H

#include "daemon.h"

typedef struct lx_apply {
  const lx_event_t *ev;     /* decoded */
  const uint8_t *bytes;     /* what is stored (with `by`, when there is one) */
  size_t len;
  const uint8_t *content;   /* what retries are compared on: the bytes without `by` */
  size_t content_len;
  uint64_t rat;
  /* out */
  uint64_t seq;             /* the new seq, or a dup's original */
  bool dup;
  lx_error_t err;           /* err.code != 0: rejected (E_CONFLICT, E_STATE), nothing stored */
} lx_apply_t;

/* Applies one record inside the batch's write transaction. Returns 0 when
 * it was stored, found to be a dup, or rejected (a->err); a negative code
 * when the store failed and the transaction must be aborted. */
int lx_apply_record(lx_daemon_t *d, MDB_txn *txn, lx_apply_t *a);

#endif
