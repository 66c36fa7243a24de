/* SPDX-License-Identifier: MIT
 *
 * open311.c: the Open311 GeoReport v2 view (PROTOCOL.md, "The web
 * gateway"): services.json from the categories, requests.json and
 * requests/ID.json from the daemon's `appeals` op. An appeal is a service
 * request; its household never appears (the daemon's rows do not carry
 * it), and its summary only when web.open311.publish_summary is true.
 *
 * requests.json follows GeoReport v2's limits: "Default query limit is a
 * span of 90 days or first 1000 requests returned, whichever is smallest",
 * and start_date / end_date "may not span more than 90 days". So a request
 * without dates covers the 90 days up to the daemon's clock (the `units`
 * reply carries it: on a test clock, "today" is the daemon's), one with a
 * single date the 90 days from or up to it, and a longer range is a 400.
 * At most REQUESTS_MAX requests, in appeal id order (the spec names no
 * order; the daemon pages by id).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dclient.h"
#include "http.h"

#define REQUESTS_MAX 1000                  /* GeoReport v2's "first 1000 requests" */
#define WINDOW_MS (90LL * 24 * 3600 * 1000) /* its "span of 90 days" */
#define ID_MAX 64

/* The names a row needs: category and unit names from `units`. */
typedef struct names {
  msgpack_unpacked u;
  const msgpack_object *units, *cats;
} names_t;

static int names_load(names_t *n) {
  msgpack_unpacked_init(&n->u);
  if (lxw_dc_op("units", 0, NULL, NULL, &n->u) || !lxw_mp_ok(&n->u.data))
    return -1;
  n->units = lxw_mp_get(&n->u.data, "units");
  n->cats = lxw_mp_get(&n->u.data, "category_names");
  return 0;
}

static const char *unit_name(const names_t *n, const char *path, size_t len, char *buf, size_t bn) {
  buf[0] = 0;
  for (uint32_t i = 0; n->units && n->units->type == MSGPACK_OBJECT_ARRAY && i < n->units->via.array.size; i++) {
    const msgpack_object *p = lxw_mp_get(&n->units->via.array.ptr[i], "path");
    if (p && p->type == MSGPACK_OBJECT_STR && p->via.str.size == len && memcmp(p->via.str.ptr, path, len) == 0)
      return lxw_mp_str(lxw_mp_get(&n->units->via.array.ptr[i], "name"), buf, bn);
  }
  return buf;
}

/* The unit that holds the appeal now: its community, township or county. */
static const char *agency(const names_t *n, const char *unit, const char *tier, char *buf, size_t bn) {
  int keep = strcmp(tier, "county") == 0 ? 1 : strcmp(tier, "township") == 0 ? 2 : 3;
  size_t len = 0;
  for (int codes = 0; unit[len] && codes < keep; len++)
    if (unit[len + 1] == '.' || unit[len + 1] == 0)
      codes++;
  return unit_name(n, unit, len, buf, bn);
}

static void add_time(cJSON *j, const char *key, const msgpack_object *o, int offset) {
  char iso[40];
  if (!o || (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER && o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)) {
    cJSON_AddNullToObject(j, key);
    return;
  }
  lxw_iso_time(lxw_mp_int(o, 0), offset, iso, sizeof iso);
  cJSON_AddStringToObject(j, key, iso);
}

static cJSON *request_json(lxw_req_t *r, const names_t *n, const msgpack_object *row) {
  char id[ID_MAX + 1], unit[128], tier[16], status[16], cat[70], name[200];
  lxw_mp_str(lxw_mp_get(row, "appeal"), id, sizeof id);
  lxw_mp_str(lxw_mp_get(row, "unit"), unit, sizeof unit);
  lxw_mp_str(lxw_mp_get(row, "tier"), tier, sizeof tier);
  lxw_mp_str(lxw_mp_get(row, "status"), status, sizeof status);
  lxw_mp_str(lxw_mp_get(row, "category"), cat, sizeof cat);
  const msgpack_object *reopened = lxw_mp_get(row, "reopened");
  bool closed = strcmp(status, "resolved") == 0 || strcmp(status, "closed") == 0;
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "service_request_id", id);
  cJSON_AddStringToObject(j, "status", closed ? "closed" : "open");
  if (strcmp(status, "open") != 0)
    cJSON_AddStringToObject(j, "status_notes", status);
  else if (reopened && reopened->type == MSGPACK_OBJECT_BOOLEAN && reopened->via.boolean)
    cJSON_AddStringToObject(j, "status_notes", "reopened");
  else
    cJSON_AddNullToObject(j, "status_notes");
  cJSON_AddStringToObject(j, "service_code", cat);
  cJSON_AddStringToObject(j, "service_name", lxw_mp_str(lxw_mp_get(n->cats, cat), name, sizeof name));
  if (r->conf->publish_summary) {
    char *sum = malloc(4097);
    if (sum)
      cJSON_AddStringToObject(j, "description", lxw_mp_str(lxw_mp_get(row, "summary"), sum, 4097));
    free(sum);
  }
  cJSON_AddStringToObject(j, "agency_responsible", agency(n, unit, tier, name, sizeof name));
  cJSON_AddNullToObject(j, "service_notice");
  add_time(j, "requested_datetime", lxw_mp_get(row, "opened"), r->conf->utc_offset_min);
  add_time(j, "updated_datetime", lxw_mp_get(row, "updated"), r->conf->utc_offset_min);
  add_time(j, "expected_datetime", lxw_mp_get(row, "deadline"), r->conf->utc_offset_min);
  return j;
}

static enum MHD_Result services(lxw_req_t *r) {
  names_t n;
  if (names_load(&n)) {
    msgpack_unpacked_destroy(&n.u);
    return lxw_reply_down(r);
  }
  cJSON *out = cJSON_CreateArray();
  for (uint32_t i = 0; n.cats && n.cats->type == MSGPACK_OBJECT_MAP && i < n.cats->via.map.size; i++) {
    char code[70], name[200];
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "service_code", lxw_mp_str(&n.cats->via.map.ptr[i].key, code, sizeof code));
    cJSON_AddStringToObject(s, "service_name", lxw_mp_str(&n.cats->via.map.ptr[i].val, name, sizeof name));
    cJSON_AddStringToObject(s, "description", name);
    cJSON_AddBoolToObject(s, "metadata", 0);
    cJSON_AddStringToObject(s, "type", "realtime");
    cJSON_AddStringToObject(s, "keywords", "");
    cJSON_AddStringToObject(s, "group", "");
    cJSON_AddItemToArray(out, s);
  }
  msgpack_unpacked_destroy(&n.u);
  return lxw_reply_json(r, 200, out);
}

typedef struct list_req {
  const char *only, *category, *status;
  int64_t since, until;
  bool has_since, has_until;
  char after[ID_MAX + 1];
} list_req_t;

static void pack_list(msgpack_packer *pk, void *arg) {
  list_req_t *q = arg;
  lxw_mp_pack_cstr(pk, "limit");
  msgpack_pack_uint32(pk, REQUESTS_MAX);
  if (q->only)
    lxw_mp_pack_cstr(pk, "appeal"), lxw_mp_pack_cstr(pk, q->only);
  if (q->category)
    lxw_mp_pack_cstr(pk, "category"), lxw_mp_pack_cstr(pk, q->category);
  if (q->after[0])
    lxw_mp_pack_cstr(pk, "after"), lxw_mp_pack_cstr(pk, q->after);
  if (q->has_since)
    lxw_mp_pack_cstr(pk, "since"), msgpack_pack_int64(pk, q->since);
  if (q->has_until)
    lxw_mp_pack_cstr(pk, "until"), msgpack_pack_int64(pk, q->until);
  if (q->status) {
    bool open = strcmp(q->status, "open") == 0;
    lxw_mp_pack_cstr(pk, "status");
    msgpack_pack_array(pk, open ? 3 : 2);
    lxw_mp_pack_cstr(pk, open ? "open" : "resolved");
    lxw_mp_pack_cstr(pk, open ? "explained" : "closed");
    if (open)
      lxw_mp_pack_cstr(pk, "referred");
  }
}

static int n_list_keys(const list_req_t *q) {
  return 1 + !!q->only + !!q->category + !!q->after[0] + q->has_since + q->has_until + !!q->status;
}

/* Pages the daemon's `appeals` into out until REQUESTS_MAX or the end. */
static int list(lxw_req_t *r, list_req_t *q, const names_t *n, cJSON *out) {
  int count = 0; /* cJSON_GetArraySize walks the list: keep the count here */
  for (;;) {
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (lxw_dc_op("appeals", n_list_keys(q), pack_list, q, &u) || !lxw_mp_ok(&u.data)) {
      msgpack_unpacked_destroy(&u);
      return -1;
    }
    const msgpack_object *rows = lxw_mp_get(&u.data, "appeals"), *next = lxw_mp_get(&u.data, "next");
    for (uint32_t i = 0; rows && rows->type == MSGPACK_OBJECT_ARRAY && i < rows->via.array.size &&
                         count < REQUESTS_MAX; i++, count++)
      cJSON_AddItemToArray(out, request_json(r, n, &rows->via.array.ptr[i]));
    bool more = next && next->type == MSGPACK_OBJECT_STR && count < REQUESTS_MAX;
    if (more)
      lxw_mp_str(next, q->after, sizeof q->after);
    msgpack_unpacked_destroy(&u);
    if (!more)
      return 0;
  }
}

static int read_list_args(lxw_req_t *r, list_req_t *q, char *bad, size_t bn) {
  static const char *const allowed[] = {"service_code", "status", "start_date", "end_date",
                                        "jurisdiction_id", NULL};
  const char *s, *e;
  if (lxw_args_check(r, allowed, bad, bn))
    return -1;
  q->category = lxw_arg(r, "service_code");
  q->status = lxw_arg(r, "status");
  if (q->category && (!*q->category || strlen(q->category) > 64))
    return snprintf(bad, bn, "service_code: expected a service code"), -1;
  if (q->status && strcmp(q->status, "open") != 0 && strcmp(q->status, "closed") != 0)
    return snprintf(bad, bn, "status: expected open or closed"), -1;
  if ((s = lxw_arg(r, "start_date")) && lxw_iso_parse(s, r->conf->utc_offset_min, &q->since))
    return snprintf(bad, bn, "start_date: expected an ISO 8601 time such as 2026-11-02T09:00:00+08:00"), -1;
  if ((e = lxw_arg(r, "end_date")) && lxw_iso_parse(e, r->conf->utc_offset_min, &q->until))
    return snprintf(bad, bn, "end_date: expected an ISO 8601 time such as 2026-11-30T18:00:00+08:00"), -1;
  q->has_since = s != NULL, q->has_until = e != NULL;
  if ((q->has_since && q->since < 0) || (q->has_until && q->until < 0) ||
      (s && e && q->since > q->until))
    return snprintf(bad, bn, "start_date: must not be after end_date, nor before 1970"), -1;
  if (s && e && q->until - q->since > WINDOW_MS)
    return snprintf(bad, bn, "start_date, end_date: the range may not span more than 90 days "
                    "(GeoReport v2); ask for it 90 days at a time"), -1;
  return 0;
}

/* The 90-day window of a request that gave one date or none, placed by
 * the daemon's clock (now). */
static void default_window(list_req_t *q, int64_t now) {
  if (q->has_since && !q->has_until)
    q->until = q->since + WINDOW_MS;
  else if (q->has_until && !q->has_since)
    q->since = q->until > WINDOW_MS ? q->until - WINDOW_MS : 0;
  else if (!q->has_since)
    q->until = now, q->since = now > WINDOW_MS ? now - WINDOW_MS : 0;
  q->has_since = q->has_until = true;
}

static enum MHD_Result requests(lxw_req_t *r, const char *only) {
  list_req_t q = {.only = only};
  char bad[160];
  names_t n;
  if (!only && read_list_args(r, &q, bad, sizeof bad))
    return lxw_reply_error(r, 400, "E_BADREQ", "%s", bad);
  if (names_load(&n)) {
    msgpack_unpacked_destroy(&n.u);
    return lxw_reply_down(r);
  }
  if (!only)
    default_window(&q, lxw_mp_int(lxw_mp_get(&n.u.data, "now"), 0));
  cJSON *out = cJSON_CreateArray();
  int rc = list(r, &q, &n, out);
  msgpack_unpacked_destroy(&n.u);
  if (rc) {
    cJSON_Delete(out);
    return lxw_reply_down(r);
  }
  if (only && cJSON_GetArraySize(out) == 0) {
    cJSON_Delete(out);
    return lxw_reply_error(r, 404, "E_NOTFOUND", "no service request \"%s\"", only);
  }
  return lxw_reply_json(r, 200, out);
}

enum MHD_Result lxw_open311(lxw_req_t *r, const char *rest) {
  if (strcmp(rest, "services.json") == 0)
    return services(r);
  if (strcmp(rest, "requests.json") == 0)
    return requests(r, NULL);
  size_t n = strlen(rest);
  if (strncmp(rest, "requests/", 9) == 0 && n > 9 + 5 && strcmp(rest + n - 5, ".json") == 0 &&
      n - 14 <= ID_MAX) {
    static const char *const allowed[] = {"jurisdiction_id", NULL};
    char id[ID_MAX + 1], bad[128];
    memcpy(id, rest + 9, n - 14);
    id[n - 14] = 0;
    if (lxw_args_check(r, allowed, bad, sizeof bad))
      return lxw_reply_error(r, 400, "E_BADREQ", "%s", bad);
    if (!strchr(id, '/'))
      return requests(r, id);
  }
  return lxw_reply_error(r, 404, "E_NOTFOUND", "no such Open311 resource");
}
