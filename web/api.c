/* SPDX-License-Identifier: MIT
 *
 * api.c: /metrics and the dashboard's JSON endpoints (/api/units,
 * /api/appeals, /api/ranking, /api/rates, /api/alerts, /api/me), each a
 * translation of daemon queries, with the rows narrowed to the user's
 * jurisdiction.
 *
 * The units tree with its counts costs the daemon a pass over its
 * appeals, so the answer is kept for UNITS_TTL_MS and shared by every
 * user: a room of dashboards refreshing asks the daemon once a second.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alerts.h"
#include "dclient.h"
#include "http.h"

#define UNITS_TTL_MS 1000

static int64_t mono_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* --- /metrics -------------------------------------------------------------------- */

static void put(lxw_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(lxw_buf_t *b, const char *fmt, ...) {
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n > 0)
    lxw_buf_put(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static void metric_head(lxw_buf_t *b, const char *name, const char *type, const char *help) {
  put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family with one label, from a map {label value: count}. */
static void labelled(lxw_buf_t *b, const msgpack_object *map, const char *name, const char *label) {
  for (uint32_t i = 0; map && map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
    char v[64];
    lxw_mp_str(&map->via.map.ptr[i].key, v, sizeof v);
    put(b, "%s{%s=\"%s\"} %lld\n", name, label, v, (long long)lxw_mp_int(&map->via.map.ptr[i].val, 0));
  }
}

static double mp_num(const msgpack_object *o) {
  if (o && (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32))
    return o->via.f64;
  return (double)lxw_mp_int(o, 0);
}

static void histogram(lxw_buf_t *b, const msgpack_object *h) {
  const char *name = "lianxin_commit_duration_seconds";
  const msgpack_object *bk = lxw_mp_get(h, "buckets");
  metric_head(b, name, "histogram", "time of each LMDB commit with its flush to disk");
  for (uint32_t i = 0; bk && bk->type == MSGPACK_OBJECT_ARRAY && i < bk->via.array.size; i++) {
    const msgpack_object *e = &bk->via.array.ptr[i];
    if (e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 2)
      put(b, "%s_bucket{le=\"%g\"} %lld\n", name, mp_num(&e->via.array.ptr[0]),
          (long long)lxw_mp_int(&e->via.array.ptr[1], 0));
  }
  long long count = (long long)lxw_mp_int(lxw_mp_get(h, "count"), 0);
  put(b, "%s_bucket{le=\"+Inf\"} %lld\n", name, count);
  put(b, "%s_sum %.9f\n%s_count %lld\n", name, mp_num(lxw_mp_get(h, "sum")), name, count);
}

static void daemon_metrics(lxw_buf_t *b, const msgpack_object *st) {
  metric_head(b, "lianxin_head_seq", "gauge", "seq of the newest record in the log");
  put(b, "lianxin_head_seq %lld\n", (long long)lxw_mp_int(lxw_mp_get(st, "events"), 0));
  metric_head(b, "lianxin_events_total", "counter", "records stored, by type");
  labelled(b, lxw_mp_get(st, "types"), "lianxin_events_total", "type");
  metric_head(b, "lianxin_appeals_open", "gauge", "open appeals, by the tier that holds them");
  labelled(b, lxw_mp_get(st, "appeals_open_tier"), "lianxin_appeals_open", "tier");
  metric_head(b, "lianxin_alerts_total", "counter", "alerts published since the daemon started, by kind");
  labelled(b, lxw_mp_get(st, "alerts"), "lianxin_alerts_total", "kind");
  metric_head(b, "lianxin_store_bytes", "gauge", "bytes of the LMDB store in use");
  put(b, "lianxin_store_bytes %lld\n", (long long)lxw_mp_int(lxw_mp_get(st, "store_bytes"), 0));
  metric_head(b, "lianxin_uptime_seconds", "gauge", "time since the daemon started");
  put(b, "lianxin_uptime_seconds %.3f\n", (double)lxw_mp_int(lxw_mp_get(st, "uptime_ms"), 0) / 1000);
  histogram(b, lxw_mp_get(st, "commit_seconds"));
}

enum MHD_Result lxw_metrics(lxw_req_t *r) {
  static const char *const none[] = {NULL};
  char bad[128];
  if (lxw_args_check(r, none, bad, sizeof bad))
    return lxw_reply_error(r, 400, "E_BADREQ", "%s", bad);
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  bool up = lxw_dc_op("stats", 0, NULL, NULL, &u) == 0 && lxw_mp_ok(&u.data);
  lxw_buf_t b = {0};
  metric_head(&b, "lianxin_up", "gauge", "1 when the daemon answers the gateway's queries");
  put(&b, "lianxin_up %d\n", up ? 1 : 0);
  if (up)
    daemon_metrics(&b, &u.data);
  msgpack_unpacked_destroy(&u);
  uint64_t reqs, refused;
  lxw_http_counts(&reqs, &refused);
  metric_head(&b, "lianxin_web_alerts_following", "gauge",
              "1 once the gateway follows the daemon's alerts (/api/alerts answers 503 before)");
  put(&b, "lianxin_web_alerts_following %d\n", lxw_alerts_ready() ? 1 : 0);
  metric_head(&b, "lianxin_web_sse_clients", "gauge", "open /api/alerts streams");
  put(&b, "lianxin_web_sse_clients %d\n", lxw_sse_clients());
  metric_head(&b, "lianxin_web_requests_total", "counter", "HTTP requests the gateway received");
  put(&b, "lianxin_web_requests_total %llu\n", (unsigned long long)reqs);
  metric_head(&b, "lianxin_web_login_refused_total", "counter", "requests answered 401");
  put(&b, "lianxin_web_login_refused_total %llu\n", (unsigned long long)refused);
  enum MHD_Result rc = b.p ? lxw_reply_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", b.p, b.n)
                           : MHD_NO;
  free(b.p);
  return rc;
}

/* --- /api/units -------------------------------------------------------------------- */

static pthread_mutex_t g_units_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_units;       /* the daemon's last `units` reply with counts */
static size_t g_units_len;
static int64_t g_units_at = -1000000;

static void pack_counts(msgpack_packer *pk, void *arg) {
  lxw_mp_pack_cstr(pk, "counts");
  msgpack_pack_true(pk);
}

/* Copies the (cached or fresh) units reply into u. Returns 0 or -1. */
static int units_reply(msgpack_unpacked *u) {
  pthread_mutex_lock(&g_units_mu);
  int rc = 0;
  if (mono_ms() - g_units_at >= UNITS_TTL_MS) {
    rc = lxw_dc_op("units", 1, pack_counts, NULL, u);
    if (rc == 0 && lxw_mp_ok(&u->data)) {
      msgpack_sbuffer sb;
      msgpack_sbuffer_init(&sb);
      msgpack_pack_object(&(msgpack_packer){&sb, msgpack_sbuffer_write}, u->data);
      free(g_units);
      g_units_len = sb.size;
      g_units = msgpack_sbuffer_release(&sb);
      g_units_at = mono_ms();
    }
    pthread_mutex_unlock(&g_units_mu);
    return rc;
  }
  if (lxw_mp_unpack_copy(u, g_units, g_units_len))
    rc = -1;
  pthread_mutex_unlock(&g_units_mu);
  return rc;
}

enum MHD_Result lxw_api_units(lxw_req_t *r) {
  static const char *const none[] = {NULL};
  char bad[128];
  if (lxw_args_check(r, none, bad, sizeof bad))
    return lxw_reply_error(r, 400, "E_BADREQ", "%s", bad);
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  if (units_reply(&u)) {
    msgpack_unpacked_destroy(&u);
    return lxw_reply_down(r);
  }
  const msgpack_object *units = lxw_mp_get(&u.data, "units");
  cJSON *out = cJSON_CreateArray();
  for (uint32_t i = 0; units && units->type == MSGPACK_OBJECT_ARRAY && i < units->via.array.size; i++) {
    char path[LXW_JUR_MAX + 1];
    lxw_mp_str(lxw_mp_get(&units->via.array.ptr[i], "path"), path, sizeof path);
    if (lxw_within(r->user->jur, path, strlen(path)))
      cJSON_AddItemToArray(out, lxw_mp_to_json(&units->via.array.ptr[i]));
  }
  msgpack_unpacked_destroy(&u);
  return lxw_reply_json(r, 200, out);
}

/* --- /api/appeals?unit=PATH: a unit's open appeals ------------------------------------ */

typedef struct appeals_req {
  const char *unit;
  const char *after;
} appeals_req_t;

static void pack_appeals(msgpack_packer *pk, void *arg) {
  appeals_req_t *a = arg;
  lxw_mp_pack_cstr(pk, "unit");
  lxw_mp_pack_cstr(pk, a->unit);
  lxw_mp_pack_cstr(pk, "status");
  msgpack_pack_array(pk, 1);
  lxw_mp_pack_cstr(pk, "open");
  lxw_mp_pack_cstr(pk, "limit");
  msgpack_pack_uint32(pk, 1000);
  if (a->after) {
    lxw_mp_pack_cstr(pk, "after");
    lxw_mp_pack_cstr(pk, a->after);
  }
}

static bool is_path(const char *p) {
  size_t n = strlen(p);
  return n > 0 && n <= LXW_JUR_MAX && strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789-.") == n &&
         p[0] != '.' && !strstr(p, "..");
}

/* Checks a unit or prefix argument against the user's jurisdiction:
 * returns 0 (inside), 1 (wider: narrowed to it), or answers and returns -1. */
static int confine(lxw_req_t *r, const char *arg, const char **out, enum MHD_Result *rc) {
  if (!arg) {
    *out = r->user->jur;
    return 1;
  }
  if (!is_path(arg)) {
    *rc = lxw_reply_error(r, 400, "E_BADREQ", "expected a unit path such as qd.hx (a-z 0-9 - .)");
    return -1;
  }
  if (lxw_within(r->user->jur, arg, strlen(arg))) {
    *out = arg;
    return 0;
  }
  size_t n = strlen(arg);
  if (arg[n - 1] == '.')
    n--;
  if (n < strlen(r->user->jur) && strncmp(r->user->jur, arg, n) == 0 && r->user->jur[n] == '.') {
    *out = r->user->jur;
    return 1;
  }
  *rc = lxw_reply_error(r, 403, "E_DENIED", "\"%.100s\" is outside your jurisdiction (%s)", arg,
                        r->user->jur);
  return -1;
}

enum MHD_Result lxw_api_appeals(lxw_req_t *r) {
  static const char *const allowed[] = {"unit", "after", NULL};
  char bad[128];
  enum MHD_Result rc = MHD_NO;
  appeals_req_t a = {.after = lxw_arg(r, "after")};
  if (lxw_args_check(r, allowed, bad, sizeof bad))
    return lxw_reply_error(r, 400, "E_BADREQ", "%s", bad);
  if (a.after && (!*a.after || strlen(a.after) > 64))
    return lxw_reply_error(r, 400, "E_BADREQ", "after: expected an appeal id");
  if (confine(r, lxw_arg(r, "unit"), &a.unit, &rc) < 0)
    return rc;
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  if (lxw_dc_op("appeals", a.after ? 4 : 3, pack_appeals, &a, &u) || !lxw_mp_ok(&u.data)) {
    msgpack_unpacked_destroy(&u);
    return lxw_reply_down(r);
  }
  cJSON *j = lxw_mp_to_json(&u.data);
  msgpack_unpacked_destroy(&u);
  return lxw_reply_json(r, 200, j);
}

/* --- /api/ranking?period=P&tier=T ---------------------------------------------------- */

static bool valid_period(const char *p) {
  int y, n;
  char c, extra;
  size_t len = strlen(p);
  if (len == 4)
    return sscanf(p, "%4d%c", &y, &extra) == 1 && y >= 1970;
  if (len == 7 && sscanf(p, "%4d-%2d%c", &y, &n, &extra) == 2)
    return p[4] == '-' && y >= 1970 && n >= 1 && n <= 12 && p[5] >= '0' && p[6] >= '0';
  return len == 7 && sscanf(p, "%4d-%c%d", &y, &c, &n) == 3 && c == 'Q' && n >= 1 && n <= 4 &&
         y >= 1970;
}

typedef struct rank_req {
  char period[24];
  const char *tier;
} rank_req_t;

/* Without a period the daemon takes its current one, by its own clock. */
static void pack_rank(msgpack_packer *pk, void *arg) {
  rank_req_t *q = arg;
  if (q->period[0]) {
    lxw_mp_pack_cstr(pk, "period");
    lxw_mp_pack_cstr(pk, q->period);
  }
  lxw_mp_pack_cstr(pk, "tier");
  lxw_mp_pack_cstr(pk, q->tier);
}

/* Asks the daemon's `rank` op; the reply goes into u. Returns 0 or -1
 * (the daemon did not answer). */
static int rank_op(rank_req_t *q, msgpack_unpacked *u) {
  return lxw_dc_op("rank", q->period[0] ? 2 : 1, pack_rank, q, u);
}

/* The answer to a refused `rank`: not enabled (no rank plugin) or the
 * daemon's own error. */
static enum MHD_Result rank_refused(lxw_req_t *r, const msgpack_object *reply) {
  char code[32], msg[200];
  lxw_mp_code(reply, code, sizeof code);
  lxw_mp_str(lxw_mp_get(reply, "error"), msg, sizeof msg);
  if (strcmp(code, "E_BADREQ") == 0 && strstr(msg, "op:"))
    return lxw_reply_error(r, 404, "E_NOTENABLED",
                           "the ranking is not enabled: the daemon has no rank plugin");
  return lxw_reply_error(r, strcmp(code, "E_DENIED") == 0 ? 403 : 400, code[0] ? code : "E_BADREQ",
                         "%s", msg);
}

/* Keeps the rows and list entries inside the user's jurisdiction. */
static void narrow_ranking(cJSON *ranking, const char *jur) {
  static const char *const lists[] = {"rows", "red", "black"};
  for (int k = 0; k < 3; k++) {
    cJSON *l = cJSON_GetObjectItemCaseSensitive(ranking, lists[k]), *it = l ? l->child : NULL;
    while (it) {
      cJSON *next = it->next;
      cJSON *unit = cJSON_IsString(it) ? it : cJSON_GetObjectItemCaseSensitive(it, "unit");
      if (!cJSON_IsString(unit) || !lxw_within(jur, unit->valuestring, strlen(unit->valuestring)))
        cJSON_Delete(cJSON_DetachItemViaPointer(l, it));
      it = next;
    }
  }
}

static enum MHD_Result ranking_answer(lxw_req_t *r, msgpack_object *reply) {
  if (!lxw_mp_ok(reply))
    return rank_refused(r, reply);
  cJSON *j = lxw_mp_to_json(reply);
  narrow_ranking(cJSON_GetObjectItemCaseSensitive(j, "ranking"), r->user->jur);
  return lxw_reply_json(r, 200, j);
}

enum MHD_Result lxw_api_ranking(lxw_req_t *r) {
  static const char *const allowed[] = {"period", "tier", NULL};
  char bad[128];
  rank_req_t q = {.tier = lxw_arg(r, "tier")};
  const char *period = lxw_arg(r, "period");
  if (lxw_args_check(r, allowed, bad, sizeof bad))
    return lxw_reply_error(r, 400, "E_BADREQ", "%s", bad);
  if (!q.tier || (strcmp(q.tier, "community") != 0 && strcmp(q.tier, "township") != 0))
    return lxw_reply_error(r, 400, "E_BADREQ", "tier: expected community or township");
  if (period && !valid_period(period))
    return lxw_reply_error(r, 400, "E_BADREQ", "period: expected 2026-11, 2026-Q4 or 2026");
  if (period)
    snprintf(q.period, sizeof q.period, "%s", period);
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  enum MHD_Result rc = rank_op(&q, &u) ? lxw_reply_down(r) : ranking_answer(r, &u.data);
  msgpack_unpacked_destroy(&u);
  return rc;
}

/* --- /api/rates?months=N: the chart's response and resolution rates by month ------------ */

#define RATES_MONTHS_MAX 24

/* The daemon's clock as a local year and month (calendar.utc_offset):
 * the chart's months end with the daemon's, which on a test clock is not
 * the browser's. Returns 0 or -1 (the daemon did not answer). */
static int daemon_month(lxw_req_t *r, int *year, int *month) {
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  int rc = lxw_dc_op("units", 0, NULL, NULL, &u) || !lxw_mp_ok(&u.data) ? -1 : 0;
  if (rc == 0) {
    time_t t = (time_t)(lxw_mp_int(lxw_mp_get(&u.data, "now"), 0) / 1000) +
               r->conf->utc_offset_min * 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    *year = tm.tm_year + 1900, *month = tm.tm_mon + 1;
  }
  msgpack_unpacked_destroy(&u);
  return rc;
}

/* Sums a month's rank rows inside the user's jurisdiction into one point:
 * each appeal counts once per tier (in its community and its township),
 * so the sum over one tier's rows counts it once. */
static cJSON *rates_point(const char *period, const msgpack_object *reply, const char *jur) {
  const msgpack_object *rows = lxw_mp_get(lxw_mp_get(reply, "ranking"), "rows");
  int64_t rec = 0, resp = 0, res = 0;
  for (uint32_t i = 0; rows && rows->type == MSGPACK_OBJECT_ARRAY && i < rows->via.array.size; i++) {
    const msgpack_object *row = &rows->via.array.ptr[i];
    char unit[LXW_JUR_MAX + 1];
    lxw_mp_str(lxw_mp_get(row, "unit"), unit, sizeof unit);
    if (!lxw_within(jur, unit, strlen(unit)))
      continue;
    rec += lxw_mp_int(lxw_mp_get(row, "received"), 0);
    resp += lxw_mp_int(lxw_mp_get(row, "responded"), 0);
    res += lxw_mp_int(lxw_mp_get(row, "resolved"), 0);
  }
  const msgpack_object *final = lxw_mp_get(reply, "final");
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "period", period);
  cJSON_AddBoolToObject(p, "final", final && final->type == MSGPACK_OBJECT_BOOLEAN && final->via.boolean);
  cJSON_AddNumberToObject(p, "received", (double)rec);
  cJSON_AddNumberToObject(p, "responded", (double)resp);
  cJSON_AddNumberToObject(p, "resolved", (double)res);
  if (rec) {
    cJSON_AddNumberToObject(p, "response_rate", (double)resp / (double)rec);
    cJSON_AddNumberToObject(p, "resolution_rate", (double)res / (double)rec);
  } else {
    cJSON_AddNullToObject(p, "response_rate");
    cJSON_AddNullToObject(p, "resolution_rate");
  }
  return p;
}

enum MHD_Result lxw_api_rates(lxw_req_t *r) {
  static const char *const allowed[] = {"months", NULL};
  char bad[128], *end;
  const char *arg = lxw_arg(r, "months");
  if (lxw_args_check(r, allowed, bad, sizeof bad))
    return lxw_reply_error(r, 400, "E_BADREQ", "%s", bad);
  long n = arg ? strtol(arg, &end, 10) : 6;
  if (arg && (!*arg || *end || n < 1 || n > RATES_MONTHS_MAX))
    return lxw_reply_error(r, 400, "E_BADREQ", "months: expected 1 to %d", RATES_MONTHS_MAX);
  int y, m;
  if (daemon_month(r, &y, &m))
    return lxw_reply_down(r);
  /* A community's supervisor has no township row of its own: its community's row. */
  int dots = 0;
  for (const char *c = r->user->jur; *c; c++)
    dots += *c == '.';
  rank_req_t q = {.tier = dots >= 2 ? "community" : "township"};
  cJSON *months = cJSON_CreateArray();
  for (long i = n - 1; i >= 0; i--) {
    int k = (y * 12 + (m - 1)) - (int)i;
    snprintf(q.period, sizeof q.period, "%04d-%02d", k / 12, k % 12 + 1);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int down = rank_op(&q, &u);
    if (down || !lxw_mp_ok(&u.data)) {
      enum MHD_Result rc = down ? lxw_reply_down(r) : rank_refused(r, &u.data);
      msgpack_unpacked_destroy(&u);
      cJSON_Delete(months);
      return rc;
    }
    cJSON_AddItemToArray(months, rates_point(q.period, &u.data, r->user->jur));
    msgpack_unpacked_destroy(&u);
  }
  cJSON *j = cJSON_CreateObject();
  cJSON_AddBoolToObject(j, "ok", 1);
  cJSON_AddStringToObject(j, "tier", q.tier);
  cJSON_AddItemToObject(j, "months", months);
  return lxw_reply_json(r, 200, j);
}

/* --- /api/alerts?prefix=qd.hx. --------------------------------------------------------- */

enum MHD_Result lxw_api_alerts(lxw_req_t *r) {
  static const char *const allowed[] = {"prefix", "last_event_id", NULL};
  char bad[128];
  enum MHD_Result rc = MHD_NO;
  const char *prefix;
  if (lxw_args_check(r, allowed, bad, sizeof bad))
    return lxw_reply_error(r, 400, "E_BADREQ", "%s", bad);
  if (confine(r, lxw_arg(r, "prefix"), &prefix, &rc) < 0)
    return rc;
  /* The browser's EventSource sends Last-Event-ID when it reconnects; a
   * page that was reloaded passes the id it kept as last_event_id. */
  const char *last = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
  if (!last)
    last = lxw_arg(r, "last_event_id");
  uint64_t last_id = 0;
  if (last) {
    char *end;
    if (!*last || strlen(last) > 19 || strspn(last, "0123456789") != strlen(last))
      return lxw_reply_error(r, 400, "E_BADREQ", "Last-Event-ID: expected a record seq");
    last_id = strtoull(last, &end, 10);
  }
  if (!lxw_alerts_ready())
    return lxw_reply_down(r);
  char path[LXW_JUR_MAX + 2];
  snprintf(path, sizeof path, "%s", prefix);
  size_t n = strlen(path);
  if (n && path[n - 1] == '.')
    path[n - 1] = 0;
  struct MHD_Response *resp = lxw_sse_response(r->conn, path, last_id, last != NULL);
  if (!resp)
    return MHD_NO;
  rc = MHD_queue_response(r->conn, 200, resp);
  MHD_destroy_response(resp);
  return rc;
}

/* --- /api/me: who is logged in ---------------------------------------------------------- */

enum MHD_Result lxw_api_me(lxw_req_t *r) {
  cJSON *j = cJSON_CreateObject();
  cJSON_AddStringToObject(j, "name", r->user->name);
  cJSON_AddStringToObject(j, "jurisdiction", r->user->jur);
  cJSON_AddNumberToObject(j, "utc_offset_minutes", r->conf->utc_offset_min);
  return lxw_reply_json(r, 200, j);
}
