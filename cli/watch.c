/* SPDX-License-Identifier: MIT
 *
 * watch.c: `lianxin watch PREFIX`, a supervisor's view of the alerts.
 *
 * It subscribes to the alerts socket (PROTOCOL.md "Alerts") at PREFIX + "."
 * and prints each alert. Every alert is a record of the log, so nothing is
 * lost when the daemon drops alerts for a slow subscriber or while the
 * connection is re-made: watch keeps `last`, the highest seq it has handled,
 * and when a live alert's seq S leaves a gap (S > last + 1) it replays
 * [last + 1, S - 1] through the query socket first, turning each
 * `escalation`, `warning`, `unanswered`, `ranking`, `quota` and `hotspot`
 * record into the alert the daemon made of it (plugins/escalate/escalate.c,
 * publish(); the assessment plugins publish their record's body as it is). With --from it first
 * replays from that seq to the head, having subscribed before, so nothing
 * published meanwhile is lost; live alerts already replayed are skipped.
 *
 * The daemon publishes alert seqs that are not consecutive (other records
 * sit between them), so most gaps hold no alert: the replay is cheap and
 * comes back empty.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "cli.h"
#include "json_mp.h"

/* A function's verdict: keep going, or the exit status to end with. */
#define W_GO (-1)

/* The record types whose records the daemon publishes as alerts. */
static const char *const alert_types[] = {"escalation", "warning", "unanswered", "ranking",
                                          "quota", "hotspot", NULL};

static volatile sig_atomic_t watch_stop;

static void on_stop_signal(int sig)
{
  (void)sig;
  watch_stop = 1;
}

typedef struct watch {
  cli_t *c;
  void *sub, *q;
  char unit[128];  /* PREFIX without its trailing dot; "" = every unit */
  bool json;
  bool no_types;   /* the daemon refused the types filter: filter here */
  bool has_last;
  uint64_t last;   /* every seq up to this one has been handled */
  int64_t count;   /* stop after this many alerts; 0 = never */
  int64_t printed;
  reply_t units;   /* the daemon's `units` reply, for unit names; ok false if none */
  bool has_units;
} watch_t;

/* --- small helpers ------------------------------------------------------- */

static bool mp_str_is(const msgpack_object *o, const char *s)
{
  size_t n = strlen(s);
  return o != NULL && o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
         memcmp(o->via.str.ptr, s, n) == 0;
}

/* Accepts a unit path prefix: codes of 1 to 32 of a-z 0-9 - joined by dots,
 * with an optional trailing dot, or "" / "." for every unit. Copies it
 * without the trailing dot into out. */
static bool parse_prefix(const char *s, char *out, size_t cap)
{
  size_t n = strlen(s);
  if (n > 0 && s[n - 1] == '.')
    n--;
  if (n >= cap)
    return false;
  for (size_t i = 0, code = 0; i < n; i++) {
    char ch = s[i];
    if (ch == '.') {
      if (code == 0)
        return false;
      code = 0;
    } else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-') {
      if (++code > 32)
        return false;
    } else {
      return false;
    }
    if (i == n - 1 && code == 0)
      return false;
  }
  memcpy(out, s, n);
  out[n] = '\0';
  return true;
}

/* ms since the epoch as ISO 8601 in the local time zone, e.g.
 * 2026-03-05T18:00:00+08:00 (seconds: alerts are about deadlines). */
void cli_fmt_time(int64_t ms, char out[48])
{
  time_t t = (time_t)(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
  struct tm tm;
  char off[8];
  if (localtime_r(&t, &tm) == NULL || strftime(out, 48, "%Y-%m-%dT%H:%M:%S", &tm) == 0 ||
      strftime(off, sizeof off, "%z", &tm) != 5) {
    snprintf(out, 48, "%" PRId64, ms);
    return;
  }
  size_t n = strlen(out);
  snprintf(out + n, 48 - n, "%.3s:%.2s", off, off + 3);
}

/* Prints a string with control characters replaced, so that one alert is
 * always one line whatever a client put in an appeal id. */
static void put_text(const char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    putchar((unsigned char)p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i]);
}

/* Prints a value: a time for time fields, else the value itself. */
static void put_value(const msgpack_object *o, bool is_time)
{
  char buf[48];
  switch (o->type) {
  case MSGPACK_OBJECT_STR:
    put_text(o->via.str.ptr, o->via.str.size);
    break;
  case MSGPACK_OBJECT_NIL:
    fputs("none", stdout);
    break;
  case MSGPACK_OBJECT_BOOLEAN:
    fputs(o->via.boolean ? "true" : "false", stdout);
    break;
  case MSGPACK_OBJECT_POSITIVE_INTEGER:
    if (is_time && o->via.u64 <= INT64_MAX) {
      cli_fmt_time((int64_t)o->via.u64, buf);
      fputs(buf, stdout);
    } else {
      printf("%" PRIu64, o->via.u64);
    }
    break;
  case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    if (is_time) {
      cli_fmt_time(o->via.i64, buf);
      fputs(buf, stdout);
    } else {
      printf("%" PRId64, o->via.i64);
    }
    break;
  default: {
    char err[160];
    cJSON *j = lx_mp_to_json(o, err, sizeof err);
    char *s = j != NULL ? cJSON_PrintUnformatted(j) : NULL;
    fputs(s != NULL ? s : "?", stdout);
    free(s);
    cJSON_Delete(j);
  }
  }
}

static bool is_time_key(const char *k)
{
  return strcmp(k, "at") == 0 || strcmp(k, "deadline") == 0 || strcmp(k, "next") == 0 ||
         strcmp(k, "due") == 0;
}

/* One alert as text:
 *   AT seq N KIND UNIT appeal ID FROM→TO next T          (escalated)
 *   AT seq N KIND UNIT appeal ID TIER deadline T next T  (overdue, reminder)
 *   AT seq N warning UNIT appeal ID TIER deadline T
 *   AT seq N unanswered UNIT appeal ID TIER due T
 *   AT seq N ranking COUNTY PERIOD TIER red P,P,P black P,P,P
 *   AT seq N quota UNIT 2026-03 behind: ACTOR DAYS/EXPECTED days (REQUIRED a year), ...
 *   AT seq N hotspot UNIT CATEGORY: N appeals in W days since T (baseline B)
 * Fields of kinds this client does not know follow as " key value". */
static void put_field(const char *label, const msgpack_object *o, bool is_time)
{
  if (label != NULL)
    printf(" %s", label);
  putchar(' ');
  put_value(o, is_time);
}

/* A ranking's red or black list: " red qd.hx.dy,qd.hx.xc" ("-" when empty). */
static void put_paths(const char *label, const msgpack_object *o)
{
  if (o == NULL || o->type != MSGPACK_OBJECT_ARRAY)
    return;
  printf(" %s ", label);
  if (o->via.array.size == 0)
    putchar('-');
  for (uint32_t i = 0; i < o->via.array.size; i++) {
    if (i)
      putchar(',');
    put_value(&o->via.array.ptr[i], false);
  }
}

static int64_t int_or(const msgpack_object *o, int64_t dflt)
{
  if (o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
    return (int64_t)o->via.u64;
  return o != NULL && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? o->via.i64 : dflt;
}

/*   AT seq N quota UNIT 2026-03 behind: c1 3/15 days (60 a year), ... */
static void print_quota(const msgpack_object *a)
{
  const msgpack_object *behind = mp_get(a, "behind");
  printf(" %04" PRId64 "-%02" PRId64 " behind:", int_or(mp_get(a, "year"), 0),
         int_or(mp_get(a, "month"), 0));
  if (behind == NULL || behind->type != MSGPACK_OBJECT_ARRAY)
    return;
  for (uint32_t i = 0; i < behind->via.array.size; i++) {
    const msgpack_object *r = &behind->via.array.ptr[i], *actor = mp_get(r, "actor");
    printf("%s ", i ? "," : "");
    if (actor != NULL)
      put_value(actor, false);
    printf(" %" PRId64 "/%" PRId64 " days (%" PRId64 " a year)", int_or(mp_get(r, "days"), 0),
           int_or(mp_get(r, "expected"), 0), int_or(mp_get(r, "required"), 0));
  }
}

/*   AT seq N hotspot UNIT jobs: 5 appeals in 7 days since T (baseline 0.4) */
static void print_hotspot(const msgpack_object *a)
{
  const msgpack_object *cat = mp_get(a, "category"), *first = mp_get(a, "first");
  const msgpack_object *base = mp_get(a, "baseline");
  if (cat != NULL)
    put_field(NULL, cat, false);
  printf(": %" PRId64 " appeals in %" PRId64 " days since", int_or(mp_get(a, "count"), 0),
         int_or(mp_get(a, "window_days"), 0));
  if (first != NULL)
    put_field(NULL, first, true);
  if (base != NULL && (base->type == MSGPACK_OBJECT_FLOAT64 || base->type == MSGPACK_OBJECT_FLOAT32))
    printf(" (baseline %.2f)", base->via.f64);
}

/* The configured name of the unit at path o ("东园社区"), or NULL. */
static const msgpack_object *unit_name(const watch_t *w, const msgpack_object *o)
{
  const msgpack_object *list = w->has_units ? mp_get(&w->units.u.data, "units") : NULL;
  if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY || o->type != MSGPACK_OBJECT_STR)
    return NULL;
  for (uint32_t i = 0; i < list->via.array.size; i++) {
    const msgpack_object *u = &list->via.array.ptr[i], *path = mp_get(u, "path");
    if (path != NULL && path->type == MSGPACK_OBJECT_STR && path->via.str.size == o->via.str.size &&
        memcmp(path->via.str.ptr, o->via.str.ptr, o->via.str.size) == 0)
      return mp_get(u, "name");
  }
  return NULL;
}

static void print_text(const watch_t *w, const msgpack_object *a, bool replayed)
{
  static const char *const shown[] = {"seq", "kind", "unit", "at", "appeal", "from",
                                      "to", "tier", "deadline", "next", "due", "period",
                                      "red", "black", NULL};
  const msgpack_object *at = mp_get(a, "at"), *seq = mp_get(a, "seq"), *kind = mp_get(a, "kind");
  const msgpack_object *unit = mp_get(a, "unit"), *appeal = mp_get(a, "appeal");
  const msgpack_object *from = mp_get(a, "from"), *to = mp_get(a, "to"), *tier = mp_get(a, "tier");
  const msgpack_object *v;
  if (at != NULL)
    put_value(at, true);
  else
    fputs("-", stdout);
  if (seq != NULL)
    put_field("seq", seq, false);
  if (kind != NULL)
    put_field(NULL, kind, false);
  if (unit != NULL) {
    const msgpack_object *name = unit_name(w, unit);
    put_field(NULL, unit, false);
    if (name != NULL && name->type == MSGPACK_OBJECT_STR) {
      fputs(" (", stdout);
      put_text(name->via.str.ptr, name->via.str.size);
      putchar(')');
    }
  }
  bool quota = kind != NULL && mp_str_is(kind, "quota"), hot = kind != NULL && mp_str_is(kind, "hotspot");
  if (quota || hot) {
    quota ? print_quota(a) : print_hotspot(a);
    fputs(replayed ? " (replayed)\n" : "\n", stdout);
    return;
  }
  if (appeal != NULL)
    put_field("appeal", appeal, false);
  if ((v = mp_get(a, "period")) != NULL)
    put_field(NULL, v, false);
  bool moved = from != NULL && to != NULL && from->type == MSGPACK_OBJECT_STR &&
               to->type == MSGPACK_OBJECT_STR && !msgpack_object_equal(*from, *to);
  if (moved) {
    put_field(NULL, from, false);
    fputs("\u2192", stdout);
    put_value(to, false);
  } else if (tier != NULL || to != NULL) {
    put_field(NULL, tier != NULL ? tier : to, false);
  }
  /* An escalation's deadline is the one that passed when it moved up; the
   * next one is what matters then. */
  if ((v = mp_get(a, "deadline")) != NULL && !moved)
    put_field("deadline", v, true);
  if ((v = mp_get(a, "due")) != NULL)
    put_field("due", v, true);
  if ((v = mp_get(a, "next")) != NULL)
    put_field("next", v, true);
  put_paths("red", mp_get(a, "red"));
  put_paths("black", mp_get(a, "black"));
  for (uint32_t i = 0; i < a->via.map.size; i++) {
    const msgpack_object *k = &a->via.map.ptr[i].key;
    char name[64];
    bool known = false;
    if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof name)
      continue;
    memcpy(name, k->via.str.ptr, k->via.str.size);
    name[k->via.str.size] = '\0';
    for (size_t j = 0; shown[j] != NULL && !known; j++)
      known = strcmp(shown[j], name) == 0;
    if (!known) {
      putchar(' ');
      put_text(name, strlen(name));
      put_field(NULL, &a->via.map.ptr[i].val, is_time_key(name));
    }
  }
  if (replayed)
    fputs(" (replayed)", stdout);
  putchar('\n');
}

/* Prints one alert (a msgpack map). Returns W_GO, or 0 once --count is
 * reached. */
static int emit(watch_t *w, const msgpack_object *a, bool replayed)
{
  if (w->json) {
    char err[160];
    cJSON *j = lx_mp_to_json(a, err, sizeof err);
    if (j == NULL) {
      cli_err("watch: an alert cannot be shown as JSON: %s", err);
    } else {
      if (replayed)
        cJSON_AddTrueToObject(j, "replayed");
      print_json(j, false);
      cJSON_Delete(j);
    }
  } else {
    print_text(w, a, replayed);
  }
  fflush(stdout);
  w->printed++;
  return w->count > 0 && w->printed >= w->count ? 0 : W_GO;
}

/* --- replay: filling a gap ------------------------------------------------ */

/* The `ranking` alert of the rank plugin: {seq, kind, unit, at} and the
 * body's period, tier, red and black. Returns 1 when it was built. */
static int ranking_alert(const msgpack_object *rec, uint64_t seq, uint64_t rat,
                         msgpack_sbuffer *sb)
{
  static const char *const keys[] = {"period", "tier", "red", "black"};
  const msgpack_object *evb = mp_get(rec, "ev");
  msgpack_unpacked u;
  size_t off = 0;
  int built = 0;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, evb->via.bin.ptr, evb->via.bin.size, &off) == MSGPACK_UNPACK_SUCCESS) {
    const msgpack_object *body = mp_get(&u.data, "body"), *unit = mp_get(&u.data, "unit");
    const msgpack_object *v[4];
    built = body != NULL && body->type == MSGPACK_OBJECT_MAP;
    for (int i = 0; i < 4 && built; i++)
      built = (v[i] = mp_get(body, keys[i])) != NULL;
    if (built) {
      msgpack_packer pk;
      msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
      msgpack_pack_map(&pk, 8);
      pack_cstr(&pk, "seq");
      msgpack_pack_uint64(&pk, seq);
      pack_cstr(&pk, "kind");
      pack_cstr(&pk, "ranking");
      pack_cstr(&pk, "unit");
      msgpack_pack_object(&pk, *unit);
      pack_cstr(&pk, "at");
      msgpack_pack_uint64(&pk, rat);
      for (int i = 0; i < 4; i++) {
        pack_cstr(&pk, keys[i]);
        msgpack_pack_object(&pk, *v[i]);
      }
    }
  }
  msgpack_unpacked_destroy(&u);
  return built;
}

/* Builds the alert the daemon publishes for this record, or returns 1 when
 * the record is not one that makes an alert. The map is
 *   {seq, kind, unit, at: rat, ...body without kind, [tier: body.to]}
 * in that order, as in plugins/escalate/escalate.c. */
static int record_alert(const msgpack_object *rec, msgpack_sbuffer *sb, char *why, size_t whylen)
{
  uint64_t seq, rat;
  const msgpack_object *evb = mp_get(rec, "ev");
  if (!mp_uint(mp_get(rec, "seq"), &seq) || !mp_uint(mp_get(rec, "rat"), &rat) || evb == NULL ||
      evb->type != MSGPACK_OBJECT_BIN) {
    snprintf(why, whylen, "a record lacks seq, rat or ev");
    return -1;
  }
  msgpack_unpacked u;
  size_t off = 0;
  int rc = 1;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, evb->via.bin.ptr, evb->via.bin.size, &off) != MSGPACK_UNPACK_SUCCESS ||
      u.data.type != MSGPACK_OBJECT_MAP) {
    snprintf(why, whylen, "record %" PRIu64 ": ev is not a msgpack map", seq);
    msgpack_unpacked_destroy(&u);
    return -1;
  }
  const msgpack_object *ev = &u.data, *type = mp_get(ev, "type"), *unit = mp_get(ev, "unit");
  const msgpack_object *body = mp_get(ev, "body");
  const msgpack_object nil = {.type = MSGPACK_OBJECT_NIL}; /* mp_get finds nothing in it */
  if (body == NULL || body->type != MSGPACK_OBJECT_MAP)
    body = &nil;
  if (mp_str_is(type, "ranking") && unit != NULL && unit->type == MSGPACK_OBJECT_STR) {
    msgpack_unpacked_destroy(&u);
    return 1 - ranking_alert(rec, seq, rat, sb);
  }
  bool known = false;
  for (size_t i = 0; alert_types[i] != NULL && !known; i++)
    known = mp_str_is(type, alert_types[i]);
  bool esc = mp_str_is(type, "escalation");
  const msgpack_object *kind = esc ? mp_get(body, "kind") : type;
  const msgpack_object *appeal = mp_get(body, "appeal");
  /* The daemon publishes escalate's records only about an appeal; quota and
   * hotspot records concern a township or a community as a whole. */
  bool whole_unit = mp_str_is(type, "quota") || mp_str_is(type, "hotspot");
  if (known && unit != NULL && unit->type == MSGPACK_OBJECT_STR &&
      body->type == MSGPACK_OBJECT_MAP && kind != NULL && kind->type == MSGPACK_OBJECT_STR &&
      (whole_unit ||
       (appeal != NULL && appeal->type == MSGPACK_OBJECT_STR && appeal->via.str.size > 0))) {
    msgpack_packer pk;
    uint32_t kept = 0;
    const msgpack_object_map *m = &body->via.map;
    for (uint32_t i = 0; i < m->size; i++)
      kept += !mp_str_is(&m->ptr[i].key, "kind");
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 4 + kept + esc);
    pack_cstr(&pk, "seq");
    msgpack_pack_uint64(&pk, seq);
    pack_cstr(&pk, "kind");
    msgpack_pack_object(&pk, *kind);
    pack_cstr(&pk, "unit");
    msgpack_pack_object(&pk, *unit);
    pack_cstr(&pk, "at");
    msgpack_pack_uint64(&pk, rat);
    for (uint32_t i = 0; i < m->size; i++) {
      if (mp_str_is(&m->ptr[i].key, "kind"))
        continue;
      msgpack_pack_object(&pk, m->ptr[i].key);
      msgpack_pack_object(&pk, m->ptr[i].val);
    }
    if (esc) {
      const msgpack_object *to = mp_get(body, "to");
      pack_cstr(&pk, "tier");
      if (to != NULL)
        msgpack_pack_object(&pk, *to);
      else
        msgpack_pack_nil(&pk);
    }
    rc = 0;
  }
  msgpack_unpacked_destroy(&u);
  return rc;
}

/* Prints the alert made from one replayed record, if it makes one. */
static int replay_record(watch_t *w, const msgpack_object *rec)
{
  msgpack_sbuffer sb;
  char why[160];
  msgpack_sbuffer_init(&sb);
  int rc = record_alert(rec, &sb, why, sizeof why);
  if (rc < 0) {
    cli_err("watch: replay: %s", why);
    msgpack_sbuffer_destroy(&sb);
    return EXIT_USAGE;
  }
  if (rc > 0) {
    msgpack_sbuffer_destroy(&sb);
    return W_GO;
  }
  msgpack_unpacked u;
  size_t off = 0;
  msgpack_unpacked_init(&u);
  msgpack_unpack_next(&u, sb.data, sb.size, &off); /* made just above */
  rc = emit(w, &u.data, true);
  msgpack_unpacked_destroy(&u);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

/* Sends a request on the query socket and waits for its reply at most
 * --timeout ms, waking to notice SIGINT and SIGTERM. */
static int query_call(watch_t *w, const msgpack_sbuffer *req, reply_t *r)
{
  if (zmq_send(w->q, req->data, req->size, 0) < 0) {
    if (watch_stop)
      return 0;
    cli_err("send to %s: %s", w->c->query, zmq_strerror(errno));
    return EXIT_USAGE;
  }
  int64_t end = mono_ms() + w->c->timeout_ms;
  for (;;) {
    if (watch_stop)
      return 0;
    int64_t left = end - mono_ms();
    if (left <= 0) {
      cli_err("no reply from %s within %d ms", w->c->query, w->c->timeout_ms);
      return EXIT_USAGE;
    }
    zmq_pollitem_t it = {w->q, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&it, 1, left < 200 ? (long)left : 200);
    if (n < 0 && errno != EINTR) {
      cli_err("poll: %s", zmq_strerror(errno));
      return EXIT_USAGE;
    }
    if (n > 0 && (it.revents & ZMQ_POLLIN))
      return reply_recv(w->c, w->q, w->c->query, r) == 0 ? W_GO : EXIT_USAGE;
  }
}

/* Asks the daemon for its unit tree once, so text lines show each unit's
 * name beside its path. Without an answer the lines show paths only. */
static void load_names(watch_t *w)
{
  msgpack_sbuffer sb;
  pack_op(&sb, "units");
  w->has_units = query_call(w, &sb, &w->units) == W_GO;
  msgpack_sbuffer_destroy(&sb);
}

static void pack_request(const watch_t *w, msgpack_sbuffer *sb, uint64_t from, bool has_to,
                         uint64_t to)
{
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2 + has_to + (w->unit[0] != '\0') + !w->no_types);
  pack_cstr(&pk, "op");
  pack_cstr(&pk, "replay");
  pack_cstr(&pk, "from");
  msgpack_pack_uint64(&pk, from);
  if (has_to) {
    pack_cstr(&pk, "to");
    msgpack_pack_uint64(&pk, to);
  }
  if (w->unit[0] != '\0') {
    pack_cstr(&pk, "unit");
    pack_cstr(&pk, w->unit);
  }
  if (!w->no_types) {
    pack_cstr(&pk, "types");
    msgpack_pack_array(&pk, sizeof alert_types / sizeof alert_types[0] - 1);
    for (size_t i = 0; alert_types[i] != NULL; i++)
      pack_cstr(&pk, alert_types[i]);
  }
}

/* A daemon whose replay knows only the protocol's own type names refuses
 * plugin types with E_BADREQ "types[i]: ..."; watch then asks for every
 * record under the unit and picks the alert types itself. */
static bool types_refused(const msgpack_object *reply)
{
  const msgpack_object *code = mp_get(reply, "code"), *msg = mp_get(reply, "error");
  return mp_str_is(code, "E_BADREQ") && msg != NULL && msg->type == MSGPACK_OBJECT_STR &&
         msg->via.str.size >= 5 && memcmp(msg->via.str.ptr, "types", 5) == 0;
}

/* Replays the alert records from `from` to the head (or to `to`), printing
 * each, and moves `last` past everything it has seen. */
static int replay_range(watch_t *w, uint64_t from, bool has_to, uint64_t to)
{
  for (;;) {
    msgpack_sbuffer sb;
    reply_t r;
    uint64_t next = 0, head = 0;
    msgpack_sbuffer_init(&sb);
    pack_request(w, &sb, from, has_to, to);
    int rc = query_call(w, &sb, &r);
    msgpack_sbuffer_destroy(&sb);
    if (rc != W_GO)
      return rc;
    if (!mp_is_true(mp_get(&r.u.data, "ok"))) {
      if (!w->no_types && types_refused(&r.u.data)) {
        w->no_types = true;
        reply_free(&r);
        continue;
      }
      report_refusal("watch: replay", &r.u.data);
      reply_free(&r);
      return EXIT_REJECTED;
    }
    const msgpack_object *recs = mp_get(&r.u.data, "records");
    if (recs == NULL || recs->type != MSGPACK_OBJECT_ARRAY ||
        !mp_uint(mp_get(&r.u.data, "next"), &next) || !mp_uint(mp_get(&r.u.data, "head"), &head)) {
      cli_err("watch: replay: reply lacks records, next or head");
      reply_free(&r);
      return EXIT_USAGE;
    }
    rc = W_GO;
    for (uint32_t i = 0; i < recs->via.array.size && rc == W_GO; i++)
      rc = replay_record(w, &recs->via.array.ptr[i]);
    reply_free(&r);
    if (rc != W_GO)
      return rc;
    if (next > 0 && (!w->has_last || next - 1 > w->last)) {
      w->last = next - 1;
      w->has_last = true;
    }
    if (next > head || (has_to && next > to))
      return W_GO;
    if (next <= from) {
      cli_err("watch: replay: the daemon did not advance past seq %" PRIu64, from);
      return EXIT_USAGE;
    }
    from = next;
  }
}

/* --- live alerts ---------------------------------------------------------- */

/* Handles one live alert: fills the gap before it, then prints it. */
static int live_alert(watch_t *w, const void *data, size_t len)
{
  msgpack_unpacked u;
  size_t off = 0;
  uint64_t seq;
  int rc = W_GO;
  msgpack_unpacked_init(&u);
  if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
      u.data.type != MSGPACK_OBJECT_MAP || !mp_uint(mp_get(&u.data, "seq"), &seq) || seq == 0) {
    cli_err("watch: an alert from %s is not a msgpack map with a seq; skipped", w->c->alerts);
    msgpack_unpacked_destroy(&u);
    return W_GO;
  }
  if (w->has_last && seq <= w->last) {
    msgpack_unpacked_destroy(&u);
    return W_GO; /* printed from replay already */
  }
  if (w->has_last && seq > w->last + 1)
    rc = replay_range(w, w->last + 1, true, seq - 1);
  if (rc == W_GO) {
    rc = emit(w, &u.data, false);
    w->last = seq;
    w->has_last = true;
  }
  msgpack_unpacked_destroy(&u);
  return rc;
}

/* Receives every alert already queued: a topic frame, then the map. */
static int live_drain(watch_t *w)
{
  for (;;) {
    zmq_msg_t topic, body;
    int more = 0;
    size_t ml = sizeof more;
    zmq_msg_init(&topic);
    if (zmq_msg_recv(&topic, w->sub, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&topic);
      if (errno == EAGAIN || errno == EINTR)
        return W_GO;
      cli_err("receive from %s: %s", w->c->alerts, zmq_strerror(errno));
      return EXIT_USAGE;
    }
    zmq_getsockopt(w->sub, ZMQ_RCVMORE, &more, &ml);
    zmq_msg_close(&topic);
    if (!more)
      continue; /* not an alert: ignore */
    zmq_msg_init(&body);
    if (zmq_msg_recv(&body, w->sub, 0) < 0) {
      zmq_msg_close(&body);
      cli_err("receive from %s: %s", w->c->alerts, zmq_strerror(errno));
      return EXIT_USAGE;
    }
    /* Any further frames belong to this message: drop them. */
    for (zmq_getsockopt(w->sub, ZMQ_RCVMORE, &more, &ml); more;
         zmq_getsockopt(w->sub, ZMQ_RCVMORE, &more, &ml)) {
      zmq_msg_t extra;
      zmq_msg_init(&extra);
      zmq_msg_recv(&extra, w->sub, 0);
      zmq_msg_close(&extra);
    }
    int rc = live_alert(w, zmq_msg_data(&body), zmq_msg_size(&body));
    zmq_msg_close(&body);
    if (rc != W_GO)
      return rc;
  }
}

static int watch_loop(watch_t *w)
{
  while (!watch_stop) {
    zmq_pollitem_t it = {w->sub, 0, ZMQ_POLLIN, 0};
    /* Wakes now and then: a signal may land on a thread other than this. */
    int n = zmq_poll(&it, 1, 200);
    if (n < 0 && errno != EINTR) {
      cli_err("poll: %s", zmq_strerror(errno));
      return EXIT_USAGE;
    }
    if (n > 0 && (it.revents & ZMQ_POLLIN)) {
      int rc = live_drain(w);
      if (rc != W_GO)
        return rc;
    }
  }
  return 0;
}

/* --- the command ---------------------------------------------------------- */

int cmd_watch(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"from", required_argument, NULL, OPT_FROM},
    {"count", required_argument, NULL, OPT_COUNT},
    {"json", no_argument, NULL, OPT_JSON},
    {NULL, 0, NULL, 0},
  };
  watch_t w = {.c = c};
  int64_t from = 0;
  bool has_from = false;
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1) {
    if (o == OPT_JSON) {
      w.json = true;
    } else if (o == OPT_FROM) {
      if (!parse_i64(optarg, 1, INT64_MAX, &from)) {
        cli_err("watch: --from expects a seq from 1, got '%s'", optarg);
        cmd_usage_exit(c);
      }
      has_from = true;
    } else if (o == OPT_COUNT) {
      if (!parse_i64(optarg, 1, INT64_MAX, &w.count)) {
        cli_err("watch: --count expects a number from 1, got '%s'", optarg);
        cmd_usage_exit(c);
      }
    }
  }
  if (argc - optind != 1) {
    cli_err("watch: expected exactly one PREFIX (a unit path such as qd.hx; '' for all)");
    cmd_usage_exit(c);
  }
  if (!parse_prefix(argv[optind], w.unit, sizeof w.unit)) {
    cli_err("watch: PREFIX '%s' is not a unit path (codes of a-z 0-9 - joined by dots)",
            argv[optind]);
    cmd_usage_exit(c);
  }
  char topic[sizeof w.unit + 1];
  snprintf(topic, sizeof topic, "%s%s", w.unit, w.unit[0] != '\0' ? "." : "");

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal; /* no SA_RESTART: interrupt the poll */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  /* Subscribe before replaying, so that what is published meanwhile waits
   * in the socket; what was replayed already is skipped by seq. */
  int rc = EXIT_USAGE;
  w.sub = socket_open_type(c, ZMQ_SUB, c->alerts, 0, topic);
  w.q = w.sub != NULL ? socket_open_type(c, ZMQ_DEALER, c->query, 0, NULL) : NULL;
  if (w.q != NULL && !w.json)
    load_names(&w);
  if (w.q != NULL) {
    rc = has_from ? replay_range(&w, (uint64_t)from, false, 0) : W_GO;
    if (rc == W_GO && has_from && (!w.has_last || w.last < (uint64_t)from - 1)) {
      w.last = (uint64_t)from - 1; /* nothing before --from, ever */
      w.has_last = true;
    }
    if (rc == W_GO)
      rc = watch_loop(&w);
  }
  fflush(stdout);
  if (w.q != NULL)
    zmq_close(w.q);
  if (w.sub != NULL)
    zmq_close(w.sub);
  if (w.has_units)
    reply_free(&w.units);
  return rc;
}
