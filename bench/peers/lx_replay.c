/* SPDX-License-Identifier: MIT
 *
 * lx_replay.c: the replay reader for lianxind in bench/compare.
 *
 * One DEALER on the query socket pages through the whole log as an auditor's
 * client would (PROTOCOL.md, "Query socket"): {op: replay, from: F, limit:
 * 10000}, wait for the reply, decode it, count its records, continue at its
 * `next`, until `next` passes the head seen in the first reply. One request
 * in flight at a time.
 *
 *   lx_replay --target tcp://127.0.0.1:PORT [--max-seconds S]
 *
 * Prints REPLAY records=N secs=S rps=R (common.h). Bounded: every page must
 * advance `next`, each reply may take 10 s at most, and --max-seconds.
 */
#include "common.h"

#include <msgpack.h>
#include <zmq.h>

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
  size_t kl = strlen(key);
  if (m->type != MSGPACK_OBJECT_MAP)
    return NULL;
  for (uint32_t i = 0; i < m->via.map.size; i++) {
    const msgpack_object *k = &m->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
        memcmp(k->via.str.ptr, key, kl) == 0)
      return &m->via.map.ptr[i].val;
  }
  return NULL;
}

int main(int argc, char **argv)
{
  bopts_t o = BOPTS_DEFAULTS;
  o.mode = "replay";
  bopts_parse(&o, argc, argv, "  --target EP         lianxind's query endpoint\n");
  void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
  int zero = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_connect(s, o.target) != 0)
    die("lx_replay: connect %s: %s", o.target, zmq_strerror(errno));
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_unpacked u;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_unpacked_init(&u);
  uint64_t from = 1, head = UINT64_MAX;
  long got = 0, bytes = 0;
  int rc = 0;
  double cpu0 = self_cpu_s();
  int64_t t0 = mono_ns(), stop = t0 + (int64_t)(o.max_seconds * 1e9);
  while (from <= head && mono_ns() < stop) {
    msgpack_sbuffer_clear(&sb);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, "replay", 6);
    msgpack_pack_str_with_body(&pk, "from", 4);
    msgpack_pack_uint64(&pk, from);
    msgpack_pack_str_with_body(&pk, "limit", 5);
    msgpack_pack_uint64(&pk, 10000);
    zmq_send(s, sb.data, sb.size, 0);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 10000) <= 0) {
      fprintf(stderr, "lx_replay: no reply within 10 s (from %" PRIu64 ")\n", from);
      rc = 1;
      break;
    }
    zmq_msg_t m;
    zmq_msg_init(&m);
    zmq_msg_recv(&m, s, 0);
    size_t off = 0;
    bytes += (long)zmq_msg_size(&m);
    int ur = msgpack_unpack_next(&u, zmq_msg_data(&m), zmq_msg_size(&m), &off);
    const msgpack_object *ok = ur == MSGPACK_UNPACK_SUCCESS ? map_get(&u.data, "ok") : NULL;
    const msgpack_object *recs = map_get(&u.data, "records"), *next = map_get(&u.data, "next"),
                         *h = map_get(&u.data, "head");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean || !recs ||
        recs->type != MSGPACK_OBJECT_ARRAY || !next || next->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        !h || h->type != MSGPACK_OBJECT_POSITIVE_INTEGER || next->via.u64 <= from) {
      fprintf(stderr, "lx_replay: bad reply at from %" PRIu64 "\n", from);
      zmq_msg_close(&m);
      rc = 1;
      break;
    }
    if (head == UINT64_MAX)
      head = h->via.u64; /* replay the log as it was when we started */
    got += (long)recs->via.array.size;
    from = next->via.u64;
    zmq_msg_close(&m);
  }
  double secs = (double)(mono_ns() - t0) / 1e9;
  replay_report(got, secs, cpu0);
  fprintf(stderr, "lx_replay: %ld records, %ld reply bytes\n", got, bytes);
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
  zmq_close(s);
  zmq_ctx_term(ctx);
  return rc;
}
