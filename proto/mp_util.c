/* SPDX-License-Identifier: MIT
 *
 * mp_util.c: the few msgpack-c conveniences that every part needs: packing a
 * string in one call, and finding a key in a decoded map.
 */
#include <string.h>

#include "lx_proto.h"

void lx_mp_pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

void lx_mp_pack_cstr(msgpack_packer *pk, const char *s) {
  lx_mp_pack_str(pk, s, strlen(s));
}

bool lx_mp_str_eq(const msgpack_object *o, const char *s) {
  if (o->type != MSGPACK_OBJECT_STR)
    return false;
  /* One pass that stops at the first difference or at s's end (no strlen:
   * every log scan compares each key of each record with field names).
   * An empty string has a NULL pointer in msgpack-c: size 0 reads none. */
  uint32_t n = o->via.str.size, i = 0;
  while (i < n && s[i] && s[i] == o->via.str.ptr[i])
    i++;
  return i == n && s[i] == 0;
}

const msgpack_object *lx_mp_get(const msgpack_object *o, const char *key) {
  if (o->type != MSGPACK_OBJECT_MAP)
    return NULL;
  for (uint32_t i = 0; i < o->via.map.size; i++)
    if (lx_mp_str_eq(&o->via.map.ptr[i].key, key))
      return &o->via.map.ptr[i].val;
  return NULL;
}

void lx_put_u64be(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

uint64_t lx_get_u64be(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = (v << 8) | p[i];
  return v;
}
