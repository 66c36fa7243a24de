/* SPDX-License-Identifier: MIT
 *
 * zsock.h: a ZeroMQ socket joined to the libuv loop.
 *
 * ZMQ_FD is edge-triggered and only means "look at ZMQ_EVENTS": a wake-up
 * may come with nothing to read, and a message may be waiting with no
 * wake-up to come, if the last look was before a send on the same socket.
 * So the rule here is: the handler reads until ZMQ_EVENTS has no POLLIN or
 * its budget is spent, and then lx_zsock_rearm() looks once more; if input
 * is still waiting it schedules the handler again on the next loop
 * iteration (a uv_idle_t), so one busy socket cannot starve the others.
 */
#ifndef LX_ZSOCK_H
#define LX_ZSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <zmq.h>

typedef struct lx_zsock lx_zsock_t;
typedef void (*lx_zsock_cb)(lx_zsock_t *zs);

struct lx_zsock {
  uv_poll_t poll;
  uv_idle_t idle;
  void *sock;          /* the ZeroMQ socket; owned by whoever created it */
  lx_zsock_cb on_input; /* drains input, then calls lx_zsock_rearm */
  void *data;
  int open_handles;
  bool idle_active;
  bool closing;
};

/* Joins sock to loop; on_input runs whenever input may be waiting.
 * Returns 0 or a libuv error. */
int lx_zsock_init(uv_loop_t *loop, lx_zsock_t *zs, void *sock, lx_zsock_cb on_input,
                  void *data);

/* True when a message can be read now (ZMQ_EVENTS has ZMQ_POLLIN). */
bool lx_zsock_readable(lx_zsock_t *zs);

/* Looks at ZMQ_EVENTS once more and, if input is waiting, runs on_input
 * again on the next loop iteration. Call at the end of every on_input. */
void lx_zsock_rearm(lx_zsock_t *zs);

/* Runs on_input on the next loop iteration, whatever ZMQ_EVENTS says: for
 * work the handler left for later. */
void lx_zsock_kick(lx_zsock_t *zs);

/* Stops watching and closes both handles; the ZeroMQ socket stays open. */
void lx_zsock_close(lx_zsock_t *zs);

/* Who sent a request to a ROUTER socket, so the reply finds its way back. */
typedef struct lx_peer {
  uint8_t rid[255];
  size_t rid_len;
  bool delim; /* the peer is a REQ socket: its reply needs the empty frame */
} lx_peer_t;

/* Reads one request from a ROUTER without blocking: the routing id, an
 * optional empty delimiter, then the request frame, moved into *body (which
 * this initialises; the caller closes it). Returns 1 when a request was
 * read, 0 when none is waiting, -1 on error. *shape_ok is false when the
 * frames were not [id][request] or [id][""][request]. */
int lx_router_recv(void *sock, lx_peer_t *peer, zmq_msg_t *body, bool *shape_ok);

/* Sends one reply frame to a peer without blocking. Returns 0, or -1 when
 * it could not be queued (peer gone, or its queue full). */
int lx_router_send(void *sock, const lx_peer_t *peer, const void *buf, size_t len);

#endif
