/* SPDX-License-Identifier: MIT
 *
 * quota.c: `lianxin quota`, the field-day table (PROTOCOL.md "Assessment",
 * the `quota` query op; docs/assessment.md "Quotas").
 *
 * The daemon recomputes the rows; this command only shows them: grouped by
 * township under the township's name (from the `units` op, so a reader sees
 * 和兴镇, not only qd.hx), one line a cadre with its days, the share
 * expected by now and what it owes a year, and "behind" where it is. With
 * --json it prints the daemon's reply as it came.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "cli.h"
#include "json_mp.h"

static int64_t int_of(const msgpack_object *o)
{
  if (o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
    return (int64_t)o->via.u64;
  return o != NULL && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? o->via.i64 : 0;
}

static bool str_eq(const msgpack_object *o, const msgpack_object *p)
{
  return o != NULL && p != NULL && o->type == MSGPACK_OBJECT_STR && p->type == MSGPACK_OBJECT_STR &&
         o->via.str.size == p->via.str.size &&
         memcmp(o->via.str.ptr, p->via.str.ptr, o->via.str.size) == 0;
}

/* The name of unit `path` in a `units` reply, or NULL. */
static const msgpack_object *unit_name(const msgpack_object *units, const msgpack_object *path)
{
  const msgpack_object *list = mp_get(units, "units");
  for (uint32_t i = 0; list != NULL && list->type == MSGPACK_OBJECT_ARRAY && i < list->via.array.size; i++)
    if (str_eq(mp_get(&list->via.array.ptr[i], "path"), path))
      return mp_get(&list->via.array.ptr[i], "name");
  return NULL;
}

static void put_str(const msgpack_object *o, int width)
{
  if (o == NULL || o->type != MSGPACK_OBJECT_STR) {
    printf("%-*s", width, "?");
    return;
  }
  int n = (int)o->via.str.size;
  for (int i = 0; i < n; i++)
    putchar((unsigned char)o->via.str.ptr[i] < 0x20 ? '?' : o->via.str.ptr[i]);
  for (int i = n; i < width; i++)
    putchar(' ');
}

static void print_table(const msgpack_object *q, const msgpack_object *units)
{
  const msgpack_object *rows = mp_get(q, "rows");
  char as_of[48];
  cli_fmt_time(int_of(mp_get(q, "as_of")), as_of);
  uint32_t n = rows != NULL && rows->type == MSGPACK_OBJECT_ARRAY ? rows->via.array.size : 0;
  uint32_t behind = 0;
  for (uint32_t i = 0; i < n; i++)
    behind += mp_is_true(mp_get(&rows->via.array.ptr[i], "behind"));
  printf("Field days (下沉驻村天数) in %" PRId64 ", as of %s: %" PRIu32 " cadre%s, %" PRIu32
         " behind\n", int_of(mp_get(q, "year")), as_of, n, n == 1 ? "" : "s", behind);
  const msgpack_object *last = NULL;
  for (uint32_t i = 0; i < n; i++) {
    const msgpack_object *r = &rows->via.array.ptr[i], *unit = mp_get(r, "unit");
    if (!str_eq(unit, last)) {
      const msgpack_object *name = unit_name(units, unit);
      putchar('\n');
      if (name != NULL) {
        put_str(name, 0);
        fputs(" (", stdout);
        put_str(unit, 0);
        fputs(")\n", stdout);
      } else {
        put_str(unit, 0);
        putchar('\n');
      }
      printf("  %-24s %5s %9s %9s\n", "cadre", "days", "expected", "required");
      last = unit;
    }
    fputs("  ", stdout);
    put_str(mp_get(r, "actor"), 24);
    printf(" %5" PRId64 " %9" PRId64 " %9" PRId64 "%s\n", int_of(mp_get(r, "days")),
           int_of(mp_get(r, "expected")), int_of(mp_get(r, "required")),
           mp_is_true(mp_get(r, "behind")) ? "  behind" : "");
  }
}

/* One query round trip; 0 with *r filled, or an exit status. */
static int ask(cli_t *c, void *s, const msgpack_sbuffer *req, reply_t *r, const char *what)
{
  if (query_roundtrip(c, s, req, r) != 0)
    return EXIT_USAGE;
  if (!mp_is_true(mp_get(&r->u.data, "ok"))) {
    report_refusal(what, &r->u.data);
    reply_free(r);
    return EXIT_REJECTED;
  }
  return 0;
}

static int show(cli_t *c, void *s, const msgpack_sbuffer *req, bool json)
{
  reply_t q, u;
  char err[160];
  int rc = ask(c, s, req, &q, "quota");
  if (rc)
    return rc;
  if (json) {
    cJSON *j = lx_mp_to_json(&q.u.data, err, sizeof err);
    if (j == NULL)
      cli_err("quota: the reply cannot be shown as JSON: %s", err);
    else
      print_json(j, !c->compact);
    cJSON_Delete(j);
    reply_free(&q);
    return j == NULL ? EXIT_USAGE : 0;
  }
  msgpack_sbuffer ub;
  msgpack_packer pk;
  msgpack_sbuffer_init(&ub);
  msgpack_packer_init(&pk, &ub, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  pack_cstr(&pk, "op");
  pack_cstr(&pk, "units");
  rc = ask(c, s, &ub, &u, "units");
  msgpack_sbuffer_destroy(&ub);
  if (rc == 0) {
    print_table(&q.u.data, &u.u.data);
    reply_free(&u);
  }
  reply_free(&q);
  return rc;
}

int cmd_quota(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"year", required_argument, NULL, OPT_YEAR},
    {"unit", required_argument, NULL, OPT_UNIT},
    {"json", no_argument, NULL, OPT_JSON},
    {"compact", no_argument, NULL, OPT_COMPACT},
    {NULL, 0, NULL, 0},
  };
  time_t now = time(NULL);
  struct tm tm;
  int64_t year = localtime_r(&now, &tm) ? tm.tm_year + 1900 : 1970;
  const char *unit = NULL;
  bool json = false;
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1) {
    if (o == OPT_YEAR && !parse_i64(optarg, 1970, 9999, &year)) {
      cli_err("quota: --year expects a year from 1970 to 9999; got '%s'", optarg);
      cmd_usage_exit(c);
    }
    unit = o == OPT_UNIT ? optarg : unit;
    json = json || o == OPT_JSON;
    c->compact = c->compact || o == OPT_COMPACT;
  }
  if (optind < argc) {
    cli_err("quota: unexpected argument '%s'", argv[optind]);
    cmd_usage_exit(c);
  }
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, unit ? 3 : 2);
  pack_cstr(&pk, "op");
  pack_cstr(&pk, "quota");
  pack_cstr(&pk, "year");
  msgpack_pack_int64(&pk, year);
  if (unit) {
    pack_cstr(&pk, "unit");
    pack_cstr(&pk, unit);
  }
  void *s = socket_open(c, c->query, 0);
  int rc = s ? show(c, s, &sb, json) : EXIT_USAGE;
  if (s)
    zmq_close(s);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}
