/* SPDX-License-Identifier: MIT
 *
 * dclient.c: requests to the daemon's query socket (dclient.h). The
 * gateway's HTTP threads each own a DEALER; every request waits at most
 * its timeout, so a daemon that is down costs a request that long and
 * never blocks the gateway for good. ZeroMQ reconnects by itself when the
 * daemon comes back.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "dclient.h"

static void *g_ctx;
static const lxw_conf_t *g_conf;
static char g_pub[41], g_sec[41], g_server[41];
static atomic_bool g_up;
static __thread void *tl_sock;

/* Reads the first (and second) Z85 line of a key file. */
static int read_key_lines(const char *path, char *l1, char *l2, char *err, size_t errlen) {
  FILE *f = fopen(path, "r");
  char buf[128];
  if (!f) {
    snprintf(err, errlen, "%s: cannot open", path);
    return -1;
  }
  int ok = fgets(buf, sizeof buf, f) && strlen(buf) >= 40;
  if (ok)
    memcpy(l1, buf, 40), l1[40] = 0;
  if (ok && l2)
    ok = fgets(buf, sizeof buf, f) && strlen(buf) >= 40 && (memcpy(l2, buf, 40), l2[40] = 0, 1);
  fclose(f);
  if (!ok)
    snprintf(err, errlen, "%s: expected %s Z85 key line%s", path, l2 ? "two" : "a",
             l2 ? "s (public, secret)" : " (the public key)");
  return ok ? 0 : -1;
}

int lxw_dc_init(const lxw_conf_t *c, char *err, size_t errlen) {
  g_conf = c;
  g_ctx = zmq_ctx_new();
  if (!g_ctx) {
    snprintf(err, errlen, "zmq_ctx_new failed");
    return -1;
  }
  atomic_store(&g_up, true);
  if (!c->secure)
    return 0;
  return read_key_lines(c->key, g_pub, g_sec, err, errlen) ||
                 read_key_lines(c->server_key, g_server, NULL, err, errlen)
             ? -1
             : 0;
}

void *lxw_dc_context(void) { return g_ctx; }

int lxw_dc_secure(void *sock) {
  if (!g_conf->secure)
    return 0;
  return zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, g_server, 40) ||
                 zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, g_pub, 40) ||
                 zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, g_sec, 40)
             ? -1
             : 0;
}

static void *link_sock(void) {
  if (tl_sock)
    return tl_sock;
  void *s = zmq_socket(g_ctx, ZMQ_DEALER);
  int zero = 0, ivl = 100;
  if (!s)
    return NULL;
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
  if (lxw_dc_secure(s) || zmq_connect(s, g_conf->query)) {
    zmq_close(s);
    return NULL;
  }
  return tl_sock = s;
}

int lxw_mp_unpack_copy(msgpack_unpacked *out, const char *data, size_t n) {
  if (!out->zone && !(out->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE)))
    return -1;
  char *copy = msgpack_zone_malloc(out->zone, n ? n : 1);
  size_t off = 0;
  if (!copy)
    return -1;
  memcpy(copy, data, n);
  return msgpack_unpack(copy, n, &off, out->zone, &out->data) == MSGPACK_UNPACK_SUCCESS ? 0 : -1;
}

int lxw_dc_call(const char *req, size_t len, msgpack_unpacked *out, int timeout_ms) {
  void *s = link_sock();
  if (!s || zmq_send(s, req, len, ZMQ_DONTWAIT) < 0) {
    atomic_store(&g_up, false);
    return -1;
  }
  zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
  zmq_msg_t m;
  if (zmq_poll(&it, 1, timeout_ms) == 1) {
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, s, 0) >= 0) {
      bool ok = lxw_mp_unpack_copy(out, zmq_msg_data(&m), zmq_msg_size(&m)) == 0 &&
                out->data.type == MSGPACK_OBJECT_MAP;
      zmq_msg_close(&m);
      atomic_store(&g_up, ok);
      return ok ? 0 : -1;
    }
    zmq_msg_close(&m);
  }
  /* No answer: a fresh socket, so its late answer is never read as the
   * answer to the next request. */
  zmq_close(s);
  tl_sock = NULL;
  atomic_store(&g_up, false);
  return -1;
}

int lxw_dc_op(const char *op, int n_extra, lxw_pack_fn extra, void *arg, msgpack_unpacked *out) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1 + (uint32_t)n_extra);
  lxw_mp_pack_cstr(&pk, "op");
  lxw_mp_pack_cstr(&pk, op);
  if (extra)
    extra(&pk, arg);
  int rc = lxw_dc_call(sb.data, sb.size, out, LXW_QUERY_TIMEOUT_MS);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

bool lxw_dc_up(void) { return atomic_load(&g_up); }

/* --- MessagePack helpers ------------------------------------------------------ */

void lxw_mp_pack_cstr(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

const msgpack_object *lxw_mp_get(const msgpack_object *m, const char *key) {
  if (!m || m->type != MSGPACK_OBJECT_MAP)
    return NULL;
  size_t n = strlen(key);
  for (uint32_t i = 0; i < m->via.map.size; i++) {
    const msgpack_object *k = &m->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
      return &m->via.map.ptr[i].val;
  }
  return NULL;
}

bool lxw_mp_ok(const msgpack_object *m) {
  const msgpack_object *ok = lxw_mp_get(m, "ok");
  return ok && ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean;
}

const char *lxw_mp_str(const msgpack_object *o, char *buf, size_t n) {
  buf[0] = 0;
  if (o && o->type == MSGPACK_OBJECT_STR && n) {
    size_t k = o->via.str.size < n - 1 ? o->via.str.size : n - 1;
    memcpy(buf, o->via.str.ptr, k);
    buf[k] = 0;
  }
  return buf;
}

const char *lxw_mp_code(const msgpack_object *m, char *buf, size_t n) {
  return lxw_mp_str(lxw_mp_get(m, "code"), buf, n);
}

int64_t lxw_mp_int(const msgpack_object *o, int64_t dflt) {
  if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    return (int64_t)o->via.u64;
  if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return o->via.i64;
  return dflt;
}

static cJSON *str_json(const char *p, size_t n) {
  char small[256], *s = n < sizeof small ? small : malloc(n + 1);
  if (!s)
    return NULL;
  memcpy(s, p, n);
  s[n] = 0;
  cJSON *j = cJSON_CreateString(s);
  if (s != small)
    free(s);
  return j;
}

static cJSON *map_json(const msgpack_object *o) {
  cJSON *j = cJSON_CreateObject();
  for (uint32_t i = 0; j && i < o->via.map.size; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key;
    char key[256];
    if (k->type == MSGPACK_OBJECT_STR)
      lxw_mp_str(k, key, sizeof key);
    else
      snprintf(key, sizeof key, "%lld", (long long)lxw_mp_int(k, 0));
    cJSON *v = lxw_mp_to_json(&o->via.map.ptr[i].val);
    if (!v) {
      cJSON_Delete(j);
      return NULL;
    }
    cJSON_AddItemToObject(j, key, v);
  }
  return j;
}

cJSON *lxw_mp_to_json(const msgpack_object *o) {
  static const char hex[] = "0123456789abcdef";
  switch (o->type) {
  case MSGPACK_OBJECT_NIL:
    return cJSON_CreateNull();
  case MSGPACK_OBJECT_BOOLEAN:
    return cJSON_CreateBool(o->via.boolean);
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    return cJSON_CreateNumber((double)o->via.u64);
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    return cJSON_CreateNumber((double)o->via.i64);
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    return cJSON_CreateNumber(o->via.f64);
  case MSGPACK_OBJECT_STR:
    return str_json(o->via.str.ptr, o->via.str.size);
  case MSGPACK_OBJECT_BIN: {
    char *h = malloc(o->via.bin.size * 2 + 1);
    if (!h)
      return NULL;
    for (uint32_t i = 0; i < o->via.bin.size; i++)
      h[2 * i] = hex[(uint8_t)o->via.bin.ptr[i] >> 4], h[2 * i + 1] = hex[o->via.bin.ptr[i] & 15];
    h[o->via.bin.size * 2] = 0;
    cJSON *j = cJSON_CreateString(h);
    free(h);
    return j;
  }
  case MSGPACK_OBJECT_ARRAY: {
    cJSON *j = cJSON_CreateArray();
    for (uint32_t i = 0; j && i < o->via.array.size; i++) {
      cJSON *v = lxw_mp_to_json(&o->via.array.ptr[i]);
      if (!v) {
        cJSON_Delete(j);
        return NULL;
      }
      cJSON_AddItemToArray(j, v);
    }
    return j;
  }
  case MSGPACK_OBJECT_MAP:
    return map_json(o);
  default:
    return cJSON_CreateNull();
  }
}
