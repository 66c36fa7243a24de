/* SPDX-License-Identifier: MIT
 *
 * mp_check.c: a structural pre-check of MessagePack bytes.
 *
 * Why: msgpack-c's unpacker allocates a container's element array from its
 * declared count before it reads a single element, so a 64 KiB frame that
 * declares an array of 2^31 elements makes it reserve 32 GiB. This walk
 * reads only headers and lengths, allocates nothing, and refuses any count
 * or length that the remaining bytes cannot hold, any depth past the limit,
 * the reserved byte 0xc1, and trailing bytes. Only a buffer that passes is
 * given to msgpack_unpack.
 */
#include <string.h>

#include "lx_proto.h"

typedef struct walk {
  const uint8_t *p, *end;
  int max_depth;
  lx_error_t *e;
} walk_t;

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* Reads an n-byte big-endian length that follows the header byte. */
static int take_len(walk_t *w, int n, uint64_t *len) {
  if (w->end - w->p < n)
    return -1;
  *len = be(w->p, n);
  w->p += n;
  return 0;
}

static int skip(walk_t *w, uint64_t n) {
  if ((uint64_t)(w->end - w->p) < n)
    return -1;
  w->p += n;
  return 0;
}

static int walk_one(walk_t *w, int depth);

static int walk_items(walk_t *w, uint64_t n, int depth) {
  /* Every element takes at least one byte: a larger count is a lie. */
  if (n > (uint64_t)(w->end - w->p))
    return -1;
  if (depth > w->max_depth)
    return -2;
  for (uint64_t i = 0; i < n; i++) {
    int rc = walk_one(w, depth);
    if (rc)
      return rc;
  }
  return 0;
}

static int walk_one(walk_t *w, int depth) {
  if (w->p >= w->end)
    return -1;
  uint8_t b = *w->p++;
  uint64_t n;
  if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
    return 0;
  if ((b & 0xf0) == 0x80)
    return walk_items(w, 2u * (b & 0x0f), depth + 1);
  if ((b & 0xf0) == 0x90)
    return walk_items(w, b & 0x0f, depth + 1);
  if ((b & 0xe0) == 0xa0)
    return skip(w, b & 0x1f);
  switch (b) {
  case 0xc4: case 0xd9: return take_len(w, 1, &n) ? -1 : skip(w, n);
  case 0xc5: case 0xda: return take_len(w, 2, &n) ? -1 : skip(w, n);
  case 0xc6: case 0xdb: return take_len(w, 4, &n) ? -1 : skip(w, n);
  case 0xc7: return take_len(w, 1, &n) ? -1 : skip(w, n + 1);
  case 0xc8: return take_len(w, 2, &n) ? -1 : skip(w, n + 1);
  case 0xc9: return take_len(w, 4, &n) ? -1 : skip(w, n + 1);
  case 0xca: case 0xce: case 0xd2: return skip(w, 4);
  case 0xcb: case 0xcf: case 0xd3: return skip(w, 8);
  case 0xcc: case 0xd0: return skip(w, 1);
  case 0xcd: case 0xd1: return skip(w, 2);
  case 0xd4: return skip(w, 2);
  case 0xd5: return skip(w, 3);
  case 0xd6: return skip(w, 5);
  case 0xd7: return skip(w, 9);
  case 0xd8: return skip(w, 17);
  case 0xdc: return take_len(w, 2, &n) ? -1 : walk_items(w, n, depth + 1);
  case 0xdd: return take_len(w, 4, &n) ? -1 : walk_items(w, n, depth + 1);
  case 0xde: return take_len(w, 2, &n) ? -1 : walk_items(w, 2 * n, depth + 1);
  case 0xdf: return take_len(w, 4, &n) ? -1 : walk_items(w, 2 * n, depth + 1);
  default: return -3; /* 0xc1: never used */
  }
}

int lx_mp_check(const uint8_t *buf, size_t len, int max_depth, lx_error_t *e) {
  walk_t w = {buf, buf + len, max_depth, e};
  if (len == 0)
    return lx_fail(e, LX_EDECODE, "empty frame: expected one MessagePack map");
  int rc = walk_one(&w, 0);
  if (rc == -1)
    return lx_fail(e, LX_EDECODE, "truncated MessagePack: a length or count runs past the end of the frame");
  if (rc == -2)
    return lx_fail(e, LX_EDECODE, "MessagePack nested deeper than %d levels", max_depth);
  if (rc == -3)
    return lx_fail(e, LX_EDECODE, "invalid MessagePack byte 0xc1");
  if (w.p != w.end)
    return lx_fail(e, LX_EDECODE, "%zu trailing bytes after the MessagePack object",
                   (size_t)(w.end - w.p));
  return 0;
}
