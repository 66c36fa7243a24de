/* SPDX-License-Identifier: MIT
 *
 * json_mp.c: the JSON <-> MessagePack mapping of the CLI (see json_mp.h).
 *
 * cJSON keeps every number as a double, which is exact only up to 2^53, and
 * prints doubles with 15 significant digits. Event times and sequence
 * numbers fit easily, but the CLI must not quietly
 * change a value a person typed or a record the daemon stored, so integers
 * beyond 10^15 - 1 travel as cJSON_Raw nodes holding their decimal digits,
 * in both directions.
 */
#include "json_mp.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Integers up to this magnitude survive both the trip through a double
 * (exact to 2^53) and cJSON's printing (which uses 15 significant digits when
 * they read back within an epsilon, and so would print 2^53 as
 * 9.00719925474099e+15). Larger ones travel as their own decimal digits. */
#define EXACT_INT_MAX 999999999999999.0 /* 10^15 - 1 */

char *lx_hex(char *out, const void *p, size_t n)
{
  static const char digits[] = "0123456789abcdef";
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = '\0';
  return out;
}

/* --- JSON text -> cJSON, keeping big integers exact --------------------- */

/* Finds the next number literal at or after p. Numbers are the only JSON
 * tokens that start with '-' or a digit once strings are skipped, so the
 * n-th literal found this way belongs to the n-th number node in document
 * order. */
static const char *next_number(const char *p, const char *end)
{
  while (p < end) {
    if (*p == '"') {
      for (p++; p < end && *p != '"'; p++)
        if (*p == '\\')
          p++;
      p++;
    } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
      return p;
    } else {
      p++;
    }
  }
  return NULL;
}

static size_t number_len(const char *p, const char *end, bool *integral)
{
  const char *q = p;
  *integral = true;
  while (q < end && strchr("+-.eE0123456789", *q) && *q != '\0') {
    if (*q == '.' || *q == 'e' || *q == 'E')
      *integral = false;
    q++;
  }
  return (size_t)(q - p);
}

/* Walks the siblings from node on, in document order, turning integer
 * literals that a double cannot hold into raw nodes with their own digits. */
static int keep_big_ints(cJSON *node, const char **cur, const char *end)
{
  for (; node != NULL; node = node->next) {
    if (cJSON_IsNumber(node)) {
      const char *p = next_number(*cur, end);
      if (p == NULL)
        return -1;
      bool integral;
      size_t n = number_len(p, end, &integral);
      *cur = p + n;
      if (integral && fabs(node->valuedouble) > EXACT_INT_MAX) {
        char *digits = strndup(p, n);
        if (digits == NULL)
          return -1;
        node->type = cJSON_Raw;
        node->valuestring = digits; /* freed by cJSON_Delete */
      }
    } else if (node->child != NULL && keep_big_ints(node->child, cur, end) < 0) {
      return -1;
    }
  }
  return 0;
}

cJSON *lx_json_parse(const char *text, size_t len, size_t *err_off)
{
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (j == NULL) {
    *err_off = end != NULL && end >= text ? (size_t)(end - text) : 0;
    return NULL;
  }
  /* cJSON stops after the first value; anything but whitespace after it
   * means the text was not one value. */
  for (const char *p = end; p < text + len; p++) {
    if (*p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
      *err_off = (size_t)(p - text);
      cJSON_Delete(j);
      return NULL;
    }
  }
  const char *cur = text;
  if (keep_big_ints(j, &cur, text + len) < 0) {
    *err_off = 0;
    cJSON_Delete(j);
    return NULL;
  }
  return j;
}

/* --- cJSON -> msgpack ---------------------------------------------------- */

static void pack_double_as_number(msgpack_packer *pk, double d)
{
  /* An integral value packs as an integer so that `v`, `at` and `minutes`
   * arrive with the integer types the protocol requires. */
  if (isfinite(d) && d == trunc(d)) {
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
      msgpack_pack_int64(pk, (int64_t)d);
      return;
    }
    if (d >= 0 && d < 18446744073709551616.0) {
      msgpack_pack_uint64(pk, (uint64_t)d);
      return;
    }
  }
  msgpack_pack_double(pk, d);
}

/* Packs the digits kept by keep_big_ints() exactly when they fit 64 bits. */
static int pack_raw_number(msgpack_packer *pk, const char *s, char *err, size_t errlen)
{
  char *end;
  errno = 0;
  if (s[0] == '-') {
    long long v = strtoll(s, &end, 10);
    if (*end == '\0' && errno == 0)
      return msgpack_pack_int64(pk, v);
  } else {
    unsigned long long v = strtoull(s, &end, 10);
    if (*end == '\0' && errno == 0)
      return msgpack_pack_uint64(pk, v);
  }
  double d = strtod(s, &end);
  if (*end != '\0' || end == s) {
    snprintf(err, errlen, "raw JSON value is not a number: %.40s", s);
    return -1;
  }
  return msgpack_pack_double(pk, d);
}

int lx_json_pack(msgpack_packer *pk, const cJSON *j, char *err, size_t errlen)
{
  if (cJSON_IsObject(j) || cJSON_IsArray(j)) {
    size_t n = 0;
    for (const cJSON *c = j->child; c != NULL; c = c->next)
      n++;
    if (cJSON_IsObject(j))
      msgpack_pack_map(pk, n);
    else
      msgpack_pack_array(pk, n);
    for (const cJSON *c = j->child; c != NULL; c = c->next) {
      if (cJSON_IsObject(j)) {
        const char *k = c->string != NULL ? c->string : "";
        msgpack_pack_str_with_body(pk, k, strlen(k));
      }
      if (lx_json_pack(pk, c, err, errlen) < 0)
        return -1;
    }
    return 0;
  }
  if (cJSON_IsString(j))
    return msgpack_pack_str_with_body(pk, j->valuestring, strlen(j->valuestring));
  if (cJSON_IsTrue(j))
    return msgpack_pack_true(pk);
  if (cJSON_IsFalse(j))
    return msgpack_pack_false(pk);
  if (cJSON_IsNull(j))
    return msgpack_pack_nil(pk);
  if (cJSON_IsNumber(j)) {
    pack_double_as_number(pk, j->valuedouble);
    return 0;
  }
  if (cJSON_IsRaw(j))
    return pack_raw_number(pk, j->valuestring, err, errlen);
  snprintf(err, errlen, "JSON value of type %d has no msgpack form", j->type);
  return -1;
}

/* --- msgpack -> cJSON ---------------------------------------------------- */

static cJSON *json_int(bool negative, uint64_t u, int64_t i)
{
  char digits[24];
  if (negative) {
    if (i >= -(int64_t)EXACT_INT_MAX)
      return cJSON_CreateNumber((double)i);
    snprintf(digits, sizeof digits, "%" PRId64, i);
  } else {
    if (u <= (uint64_t)EXACT_INT_MAX)
      return cJSON_CreateNumber((double)u);
    snprintf(digits, sizeof digits, "%" PRIu64, u);
  }
  return cJSON_CreateRaw(digits);
}

/* Creates a JSON string from a length-delimited one (msgpack strings are not
 * NUL-terminated). */
static cJSON *json_str(const char *p, size_t n)
{
  char *s = malloc(n + 1);
  if (s == NULL)
    return NULL;
  memcpy(s, p, n);
  s[n] = '\0';
  cJSON *j = cJSON_CreateString(s);
  free(s);
  return j;
}

static cJSON *json_hex(const void *p, size_t n)
{
  char *s = malloc(2 * n + 1);
  if (s == NULL)
    return NULL;
  cJSON *j = cJSON_CreateString(lx_hex(s, p, n));
  free(s);
  return j;
}

static cJSON *json_map(const msgpack_object_map *m, char *err, size_t errlen)
{
  cJSON *obj = cJSON_CreateObject();
  for (uint32_t i = 0; obj != NULL && i < m->size; i++) {
    const msgpack_object *k = &m->ptr[i].key;
    if (k->type != MSGPACK_OBJECT_STR) {
      snprintf(err, errlen, "map key of msgpack type %d is not a string", (int)k->type);
      cJSON_Delete(obj);
      return NULL;
    }
    cJSON *v = lx_mp_to_json(&m->ptr[i].val, err, errlen);
    char *key = strndup(k->via.str.ptr, k->via.str.size);
    if (v == NULL || key == NULL) {
      cJSON_Delete(v);
      free(key);
      cJSON_Delete(obj);
      return NULL;
    }
    cJSON_AddItemToObject(obj, key, v);
    free(key);
  }
  return obj;
}

static cJSON *json_array(const msgpack_object_array *a, char *err, size_t errlen)
{
  cJSON *arr = cJSON_CreateArray();
  for (uint32_t i = 0; arr != NULL && i < a->size; i++) {
    cJSON *v = lx_mp_to_json(&a->ptr[i], err, errlen);
    if (v == NULL) {
      cJSON_Delete(arr);
      return NULL;
    }
    cJSON_AddItemToArray(arr, v);
  }
  return arr;
}

cJSON *lx_mp_to_json(const msgpack_object *o, char *err, size_t errlen)
{
  cJSON *j = NULL;
  switch (o->type) {
  case MSGPACK_OBJECT_NIL:
    j = cJSON_CreateNull();
    break;
  case MSGPACK_OBJECT_BOOLEAN:
    j = cJSON_CreateBool(o->via.boolean);
    break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    j = json_int(false, o->via.u64, 0);
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    j = json_int(true, 0, o->via.i64);
    break;
  case MSGPACK_OBJECT_FLOAT32:
  case MSGPACK_OBJECT_FLOAT64:
    j = cJSON_CreateNumber(o->via.f64);
    break;
  case MSGPACK_OBJECT_STR:
    j = json_str(o->via.str.ptr, o->via.str.size);
    break;
  case MSGPACK_OBJECT_BIN:
    j = json_hex(o->via.bin.ptr, o->via.bin.size);
    break;
  case MSGPACK_OBJECT_ARRAY:
    return json_array(&o->via.array, err, errlen);
  case MSGPACK_OBJECT_MAP:
    return json_map(&o->via.map, err, errlen);
  default:
    /* Neither the protocol nor JSON has ext values; refuse rather than guess. */
    snprintf(err, errlen, "msgpack ext value (type %d) has no JSON form", (int)o->via.ext.type);
    return NULL;
  }
  if (j == NULL)
    snprintf(err, errlen, "out of memory");
  return j;
}

cJSON *lx_mp_buf_to_json(const void *buf, size_t len, char *err, size_t errlen)
{
  msgpack_unpacked u;
  size_t off = 0;
  cJSON *j = NULL;
  msgpack_unpacked_init(&u);
  int rc = msgpack_unpack_next(&u, buf, len, &off);
  if (rc != MSGPACK_UNPACK_SUCCESS)
    snprintf(err, errlen, "not well-formed msgpack");
  else if (off != len)
    snprintf(err, errlen, "%zu bytes after the msgpack value", len - off);
  else
    j = lx_mp_to_json(&u.data, err, errlen);
  msgpack_unpacked_destroy(&u);
  return j;
}
