/* SPDX-License-Identifier: MIT
 *
 * zsock.c: see zsock.h for the ZMQ_FD rule this file exists to keep.
 */
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "zsock.h"

static void on_poll(uv_poll_t *h, int status, int events) {
  lx_zsock_t *zs = h->data;
  if (zs->closing)
    return;
  if (status < 0)
    lx_warn("zsock", "poll: %s", uv_strerror(status));
  zs->on_input(zs);
}

static void on_idle(uv_idle_t *h) {
  lx_zsock_t *zs = h->data;
  uv_idle_stop(h);
  zs->idle_active = false;
  if (!zs->closing)
    zs->on_input(zs);
}

int lx_zsock_init(uv_loop_t *loop, lx_zsock_t *zs, void *sock, lx_zsock_cb on_input,
                  void *data) {
  int fd;
  size_t len = sizeof fd;
  if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len))
    return UV_EINVAL;
  zs->sock = sock;
  zs->on_input = on_input;
  zs->data = data;
  zs->idle_active = false;
  zs->closing = false;
  int rc = uv_poll_init(loop, &zs->poll, fd);
  if (rc)
    return rc;
  zs->poll.data = zs;
  uv_idle_init(loop, &zs->idle);
  zs->idle.data = zs;
  zs->open_handles = 2;
  rc = uv_poll_start(&zs->poll, UV_READABLE, on_poll);
  if (rc == 0)
    lx_zsock_rearm(zs); /* messages may already be queued: no edge will come */
  return rc;
}

bool lx_zsock_readable(lx_zsock_t *zs) {
  int ev = 0;
  size_t len = sizeof ev;
  if (zmq_getsockopt(zs->sock, ZMQ_EVENTS, &ev, &len))
    return false;
  return (ev & ZMQ_POLLIN) != 0;
}

void lx_zsock_rearm(lx_zsock_t *zs) {
  if (!zs->idle_active && !zs->closing && lx_zsock_readable(zs)) {
    zs->idle_active = true;
    uv_idle_start(&zs->idle, on_idle);
  }
}

void lx_zsock_kick(lx_zsock_t *zs) {
  if (!zs->idle_active && !zs->closing && zs->open_handles) {
    zs->idle_active = true;
    uv_idle_start(&zs->idle, on_idle);
  }
}

static void on_closed(uv_handle_t *h) {
  lx_zsock_t *zs = h->data;
  zs->open_handles--;
}

void lx_zsock_close(lx_zsock_t *zs) {
  if (zs->closing || zs->open_handles == 0)
    return;
  zs->closing = true; /* no more rearming; the close callbacks count down */
  uv_close((uv_handle_t *)&zs->poll, on_closed);
  uv_close((uv_handle_t *)&zs->idle, on_closed);
}

int lx_router_recv(void *sock, lx_peer_t *peer, zmq_msg_t *body, bool *shape_ok) {
  zmq_msg_t part;
  int more = 1, nparts = 0;
  size_t len = sizeof more;
  *shape_ok = true;
  peer->rid_len = 0;
  peer->delim = false;
  zmq_msg_init(body);
  while (more) {
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, nparts == 0 ? ZMQ_DONTWAIT : 0) < 0) {
      int err = errno;
      zmq_msg_close(&part);
      if (nparts == 0 && err == EAGAIN)
        return 0;
      zmq_msg_close(body);
      zmq_msg_init(body);
      return -1;
    }
    zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len);
    size_t n = zmq_msg_size(&part);
    if (nparts == 0) {
      peer->rid_len = n > sizeof peer->rid ? sizeof peer->rid : n;
      memcpy(peer->rid, zmq_msg_data(&part), peer->rid_len);
    } else if (nparts == 1 && n == 0 && more) {
      peer->delim = true; /* a REQ client's empty delimiter */
    } else {
      if (zmq_msg_size(body) || nparts > (peer->delim ? 2 : 1))
        *shape_ok = false; /* a request is exactly one frame */
      zmq_msg_move(body, &part);
    }
    zmq_msg_close(&part);
    nparts++;
  }
  if (nparts < 2)
    *shape_ok = false;
  return 1;
}

int lx_router_send(void *sock, const lx_peer_t *peer, const void *buf, size_t len) {
  /* ROUTER_MANDATORY makes an unknown or gone peer an error (EHOSTUNREACH)
   * instead of a silent drop; either way the reply cannot be delivered and
   * the caller only counts it. DONTWAIT: a peer that never reads its replies
   * must not block the loop. */
  if (zmq_send(sock, peer->rid, peer->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
    return -1;
  if (peer->delim && zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
    return -1;
  return zmq_send(sock, buf, len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}
