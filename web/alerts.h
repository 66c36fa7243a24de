/* SPDX-License-Identifier: MIT
 *
 * alerts.h: the gateway's alert feed (alerts.c) and the SSE stream of
 * /api/alerts (sse.c).
 *
 * One follower thread subscribes to the daemon's alerts socket for every
 * topic and keeps the newest alerts in a ring, each already written as an
 * SSE event. The ring is complete from `base` on: every alert record with
 * a seq after base is in it (until it is pushed out). The log fills in
 * what the ring does not hold: at start and at each reconnection to the
 * daemon the follower replays the alert records it missed, and an SSE
 * client whose Last-Event-ID is older than the ring gets them from the log
 * first. So a client sees every alert after its Last-Event-ID once, in seq
 * order, however the connection to it or to the daemon went.
 */
#ifndef LXW_ALERTS_H
#define LXW_ALERTS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "dclient.h"

int lxw_alerts_start(const lxw_conf_t *c, char *err, size_t errlen);
void lxw_alerts_stop(void);

/* The SSE text of an alert record replayed from the log (seq, rat, ev
 * bytes) whose unit lies within prefix (NULL: any); appends it to out (a
 * growing buffer) and writes its unit. Returns 1 if written, 0 if the
 * record is not an alert for prefix, -1 on out of memory. */
typedef struct lxw_buf {
  char *p;
  size_t n, cap, off; /* off: bytes already handed to MHD */
} lxw_buf_t;
int lxw_buf_put(lxw_buf_t *b, const char *s, size_t n);
int lxw_alert_from_record(const msgpack_object *rec, const char *prefix, lxw_buf_t *out,
                          uint64_t *seq, char *unit, size_t un);

/* The alert types (record type names) the daemon knows, packed as a
 * MessagePack list for replay's `types`. */
void lxw_alerts_pack_types(msgpack_packer *pk);

/* SSE connections (sse.c). */
struct MHD_Response *lxw_sse_response(struct MHD_Connection *conn, const char *prefix,
                                      uint64_t last_id, bool has_last);
int lxw_sse_clients(void);
void lxw_sse_wake_all(void);   /* resumes every parked stream */
void lxw_sse_shutdown(void);   /* ends every stream: before MHD_stop_daemon */

/* Ring access for sse.c: under the ring's lock, copies into out the
 * events after *cursor within prefix (up to about max bytes), advancing
 * *cursor. Returns 1 if something was copied, 0 if nothing is new (then
 * *gen is the generation to wait on), -1 if *cursor is older than the
 * ring (the log must fill in up to *base first). */
int lxw_ring_read(uint64_t *cursor, const char *prefix, lxw_buf_t *out, size_t max,
                  uint64_t *gen, uint64_t *base);
uint64_t lxw_ring_generation(void);
/* The seq up to which the follower has seen every alert: where a new
 * stream without Last-Event-ID starts. */
uint64_t lxw_ring_last(void);
bool lxw_alerts_ready(void);

#endif
