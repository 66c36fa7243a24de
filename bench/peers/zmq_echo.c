/* SPDX-License-Identifier: MIT
 *
 * zmq_echo.c: the transport's limit for bench/compare: a ZeroMQ ROUTER that
 * answers every event at once with the ack lianxind would send
 * ({ok: true, id: ID, seq: N, dup: false}), and stores nothing.
 *
 * lx-loadgen drives it exactly as it drives lianxind (same client code, same
 * DEALER sockets, same event bytes, same ack check), so the row is the round
 * trip of ZeroMQ plus one MessagePack decode and encode per event: what no
 * ZeroMQ server can beat on this machine.
 *
 *   zmq_echo --bind tcp://127.0.0.1:PORT [--max-seconds S]
 *
 * Runs until SIGTERM or SIGINT, or --max-seconds (default 3600) at most.
 */
#include "common.h"

#include <msgpack.h>
#include <signal.h>
#include <zmq.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
  (void)sig;
  g_stop = 1;
}

/* Finds the "id" string of an event map; false if there is none. */
static bool find_id(const void *data, size_t len, msgpack_unpacked *u, const char **id, uint32_t *n)
{
  size_t off = 0;
  if (msgpack_unpack_next(u, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
      u->data.type != MSGPACK_OBJECT_MAP)
    return false;
  const msgpack_object_map *m = &u->data.via.map;
  for (uint32_t i = 0; i < m->size; i++) {
    const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == 2 &&
        memcmp(k->via.str.ptr, "id", 2) == 0 && v->type == MSGPACK_OBJECT_STR) {
      *id = v->via.str.ptr;
      *n = v->via.str.size;
      return true;
    }
  }
  return false;
}

int main(int argc, char **argv)
{
  const char *bind = NULL;
  double max_seconds = 3600;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--bind") == 0)
      bind = argv[i + 1];
    else if (strcmp(argv[i], "--max-seconds") == 0)
      max_seconds = atof(argv[i + 1]);
    else
      die("usage: zmq_echo --bind EP [--max-seconds S]");
  }
  if (!bind || max_seconds <= 0)
    die("usage: zmq_echo --bind EP [--max-seconds S]");
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  void *ctx = zmq_ctx_new();
  void *s = zmq_socket(ctx, ZMQ_ROUTER);
  int zero = 0, one = 1, hwm = 100000; /* as lianxind sets its sockets */
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
  if (zmq_bind(s, bind) != 0)
    die("zmq_echo: bind %s: %s", bind, zmq_strerror(errno));
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_unpacked u;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_unpacked_init(&u);
  uint64_t seq = 0;
  int64_t stop = mono_ns() + (int64_t)(max_seconds * 1e9);
  zmq_msg_t env[8], body;
  while (!g_stop && mono_ns() < stop) {
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 200) <= 0)
      continue;
    /* Drain what is there: envelope frames, then the body. */
    while (!g_stop) {
      int nenv = 0, more = 0;
      size_t ml = sizeof more;
      zmq_msg_init(&body);
      if (zmq_msg_recv(&body, s, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&body);
        break;
      }
      zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
      while (more) {
        if (nenv < 8)
          env[nenv++] = body;
        else
          zmq_msg_close(&body);
        zmq_msg_init(&body);
        zmq_msg_recv(&body, s, 0);
        zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
      }
      const char *id = NULL;
      uint32_t idn = 0;
      bool ok = find_id(zmq_msg_data(&body), zmq_msg_size(&body), &u, &id, &idn);
      msgpack_sbuffer_clear(&sb);
      msgpack_pack_map(&pk, 4);
      msgpack_pack_str_with_body(&pk, "ok", 2);
      ok ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
      msgpack_pack_str_with_body(&pk, "id", 2);
      ok ? msgpack_pack_str_with_body(&pk, id, idn) : msgpack_pack_nil(&pk);
      if (ok) {
        msgpack_pack_str_with_body(&pk, "seq", 3);
        msgpack_pack_uint64(&pk, ++seq);
      } else {
        msgpack_pack_str_with_body(&pk, "code", 4);
        msgpack_pack_str_with_body(&pk, "E_DECODE", 8);
      }
      msgpack_pack_str_with_body(&pk, "dup", 3);
      msgpack_pack_false(&pk);
      for (int i = 0; i < nenv; i++) {
        zmq_msg_send(&env[i], s, ZMQ_SNDMORE);
        zmq_msg_close(&env[i]); /* empty after a send; frees it after a failure */
      }
      zmq_send(s, sb.data, sb.size, 0);
      zmq_msg_close(&body);
    }
  }
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return 0;
}
