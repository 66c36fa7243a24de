/* SPDX-License-Identifier: MIT
 *
 * appeal.c: the appeal state machine (see appeal.h). Pure: no I/O, no
 * clock; everything it needs comes in the event and its receive time.
 */
#include <string.h>

#include "appeal.h"

bool lx_appeal_is_open(int status) { return status == LX_ST_OPEN; }

static int open_new(lx_appeal_t *a, bool exists, const lx_event_t *ev, uint64_t seq,
                    int64_t rat, lx_error_t *e) {
  if (exists)
    return lx_fail(e, LX_ECONFLICT, "body.appeal: appeal \"%.*s\" already exists (seq %llu)",
                   (int)ev->appeal.n, ev->appeal.p, (unsigned long long)a->seq);
  memset(a, 0, sizeof *a);
  a->layout = LX_APPEAL_LAYOUT;
  a->status = LX_ST_OPEN;
  a->tier = LX_TIER_COMMUNITY;
  a->resolved_tier = 0;
  a->urgent = ev->urgent;
  a->opened = rat;
  a->deadline = -1;
  a->first_response = -1;
  a->seq = seq;
  memcpy(a->unit, ev->unit.p, ev->unit.n < LX_PATH_MAX ? ev->unit.n : LX_PATH_MAX);
  memcpy(a->category, ev->category.p, ev->category.n < 64 ? ev->category.n : 64);
  return 0;
}

int lx_appeal_apply(lx_appeal_t *a, bool exists, const lx_event_t *ev, uint64_t seq,
                    int64_t rat, lx_error_t *e) {
  if (ev->appeal.n == 0)
    return 0;
  if (ev->type == LX_EV_APPEAL)
    return open_new(a, exists, ev, seq, rat, e);
  if (!exists)
    return lx_fail(e, LX_ESTATE, "body.appeal: no appeal \"%.*s\"", (int)ev->appeal.n,
                   ev->appeal.p);
  switch (ev->type) {
  case LX_EV_VISIT:
    if (a->first_response < 0)
      a->first_response = rat;
    return 0;
  case LX_EV_RESOLUTION:
    if (a->status == LX_ST_RESOLVED || a->status == LX_ST_CLOSED)
      return lx_fail(e, LX_ESTATE, "body.appeal: appeal \"%.*s\" is already %s",
                     (int)ev->appeal.n, ev->appeal.p, lx_status_name(a->status));
    a->status = ev->outcome;
    a->resolved_tier = a->tier;
    return 0;
  case LX_EV_FEEDBACK:
    if (a->status == LX_ST_OPEN || a->status == LX_ST_CLOSED)
      return lx_fail(e, LX_ESTATE, "body.appeal: appeal \"%.*s\" is %s: feedback comes after a resolution",
                     (int)ev->appeal.n, ev->appeal.p, lx_status_name(a->status));
    if (ev->satisfied) {
      a->status = LX_ST_CLOSED;
    } else {
      a->status = LX_ST_OPEN;
      a->tier = a->resolved_tier ? a->resolved_tier : a->tier;
    }
    return 0;
  case LX_EV_ESCALATION:
    /* Only a move up a tier brings a new deadline; overdue and reminder
     * records keep the county's deadline that passed. */
    a->tier = ev->esc_to;
    if (ev->esc_kind.n == 9 && memcmp(ev->esc_kind.p, "escalated", 9) == 0)
      a->deadline = ev->esc_next;
    return 0;
  default:
    return 0;
  }
}
