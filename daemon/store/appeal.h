/* SPDX-License-Identifier: MIT
 *
 * appeal.h: the appeal state machine of PROTOCOL.md.
 *
 *   (appeal) -> open -(resolution)-> resolved | explained | referred
 *   resolved | explained | referred -(feedback satisfied)-> closed
 *                                   -(feedback unsatisfied)-> open, at the tier that resolved it
 *   explained | referred -(resolution)-> any outcome again
 *
 * One function serves both the live path (inside the batch's write
 * transaction) and rebuilding a past state from an appeal's history, so the
 * two can never disagree.
 */
#ifndef LX_APPEAL_H
#define LX_APPEAL_H

#include "lx_proto.h"
#include "store.h"

/* Applies a validated event that names an appeal to its state *a. `exists`
 * says whether *a holds a stored appeal. Returns 0, or LX_ESTATE /
 * LX_ECONFLICT with a reason naming the field, leaving *a unchanged. An
 * event that names no appeal is a no-op. */
int lx_appeal_apply(lx_appeal_t *a, bool exists, const lx_event_t *ev, uint64_t seq,
                    int64_t rat, lx_error_t *e);

/* True when the status counts as open for the appeals_open counter. */
bool lx_appeal_is_open(int status);

#endif
