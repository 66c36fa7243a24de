/* SPDX-License-Identifier: MIT
 *
 * lxp.h: small helpers the assessment plugins (quota, hotspot) share, kept
 * header-only so each plugin stays one shared object that sees nothing of
 * the daemon but lx/plugin.h: local calendar arithmetic on the configured
 * utc_offset, big-endian keys, MessagePack packing, reading a record's
 * envelope and body, and integer settings.
 *
 * Dates use the proleptic Gregorian day count of Howard Hinnant's
 * "chrono-compatible low-level date algorithms" (days since 1970-01-01),
 * so a local date, month and year are pure integer arithmetic.
 */
#ifndef LXP_H
#define LXP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lx/plugin.h"

#define LXP_DAY_MS 86400000LL

/* --- calendar ----------------------------------------------------------------- */

static inline int64_t lxp_floor_div(int64_t a, int64_t b) {
  return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static inline int64_t lxp_days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = lxp_floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static inline void lxp_civil_from_days(int64_t z, int *y, int *m, int *d) {
  z += 719468;
  int64_t era = lxp_floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* The local day number (days since 1970-01-01, local) of a time. */
static inline int64_t lxp_local_day(int64_t ms, int offset_min) {
  return lxp_floor_div(ms + (int64_t)offset_min * 60000, LXP_DAY_MS);
}

/* The UTC time at which local month `m` (1..12) of year `y` begins; m = 13
 * is January of the next year, so lxp_month_start(y, m + 1) ends month m. */
static inline int64_t lxp_month_start(int y, int m, int offset_min) {
  y += (m - 1) / 12;
  m = (m - 1) % 12 + 1;
  return lxp_days_from_civil(y, m, 1) * LXP_DAY_MS - (int64_t)offset_min * 60000;
}

/* --- keys ------------------------------------------------------------------------ */

static inline void lxp_put_be(uint8_t *p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}

static inline uint64_t lxp_get_be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

static inline bool lxp_slice_is(lx_slice_t s, const char *name) {
  return s.n == strlen(name) && memcmp(s.p, name, s.n) == 0;
}

/* Whether path lies under prefix at a code boundary ("" holds everything). */
static inline bool lxp_under(const char *path, const char *prefix) {
  size_t n = strlen(prefix);
  return n == 0 || (strncmp(path, prefix, n) == 0 && (path[n] == 0 || path[n] == '.'));
}

/* --- MessagePack ---------------------------------------------------------------- */

static inline void lxp_pack_str(msgpack_packer *pk, const char *s, size_t n) {
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

static inline void lxp_pack_key(msgpack_packer *pk, const char *k) { lxp_pack_str(pk, k, strlen(k)); }

static inline void lxp_pack_kv_str(msgpack_packer *pk, const char *k, const char *v, size_t n) {
  lxp_pack_key(pk, k);
  lxp_pack_str(pk, v, n);
}

static inline void lxp_pack_kv_int(msgpack_packer *pk, const char *k, int64_t v) {
  lxp_pack_key(pk, k);
  msgpack_pack_int64(pk, v);
}

static inline bool lxp_key_is(const msgpack_object *k, const char *name) {
  size_t n = strlen(name);
  return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
         memcmp(k->via.str.ptr, name, n) == 0;
}

static inline const msgpack_object *lxp_get(const msgpack_object *map, const char *key) {
  if (!map || map->type != MSGPACK_OBJECT_MAP)
    return NULL;
  for (uint32_t i = 0; i < map->via.map.size; i++)
    if (lxp_key_is(&map->via.map.ptr[i].key, key))
      return &map->via.map.ptr[i].val;
  return NULL;
}

static inline bool lxp_int(const msgpack_object *o, int64_t *out) {
  if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
    *out = (int64_t)o->via.u64;
    return true;
  }
  if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
    *out = o->via.i64;
    return true;
  }
  return false;
}

/* Unpacks a stored record's event into *root (zone must be initialised). */
static inline bool lxp_unpack_ev(const lx_rec_t *r, msgpack_zone *z, msgpack_object *root) {
  size_t off = 0;
  return msgpack_unpack((const char *)r->ev, r->ev_len, &off, z, root) ==
             MSGPACK_UNPACK_SUCCESS && root->type == MSGPACK_OBJECT_MAP;
}

/* Publishes the record's body, as it is stored, as the alert's fields. */
static inline void lxp_publish_body(const lx_host_api_t *api, lx_host_t *host, const lx_rec_t *r,
                                    const char *kind) {
  msgpack_zone z;
  msgpack_object root;
  msgpack_zone_init(&z, 1024);
  const msgpack_object *body = lxp_unpack_ev(r, &z, &root) ? lxp_get(&root, "body") : NULL;
  if (body && body->type == MSGPACK_OBJECT_MAP) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *body);
    api->publish(host, r, kind, r->unit, (const uint8_t *)sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
  }
  msgpack_zone_destroy(&z);
}

/* --- settings ---------------------------------------------------------------------- */

/* An integer from min to max written as v (NULL: dflt); -1 after reporting. */
static inline int lxp_conf_int_value(const lx_host_api_t *api, lx_host_t *host, const char *key,
                                     const char *v, long dflt, long min, long max, long *out) {
  char *end;
  *out = dflt;
  if (!v)
    return 0;
  long n = strtol(v, &end, 10);
  if (*v == 0 || *end || n < min || n > max) {
    api->conf_error(host, key, "expected an integer from %ld to %ld", min, max);
    return -1;
  }
  *out = n;
  return 0;
}

static inline int lxp_conf_int(const lx_host_api_t *api, lx_host_t *host, const char *key,
                               long dflt, long min, long max, long *out) {
  return lxp_conf_int_value(api, host, key, api->conf_str(host, key), dflt, min, max, out);
}

/* The same, for a setting kept as an int. */
static inline int lxp_conf_int_i(const lx_host_api_t *api, lx_host_t *host, const char *key,
                                 int dflt, int min, int max, int *out) {
  long v;
  int rc = lxp_conf_int(api, host, key, dflt, min, max, &v);
  *out = (int)v;
  return rc;
}

#endif
