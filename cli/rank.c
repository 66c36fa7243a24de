/* SPDX-License-Identifier: MIT
 *
 * rank.c: `lianxin rank`, the red and black lists (红黑榜) of a period as
 * the rank plugin recomputes them from the log (the `rank` query op).
 *
 * By default it prints a table a person reads: each unit's rank, path and
 * name (from the `units` op), the three rates and the score as
 * percentages, and whether the unit is on the red or the black list. With
 * --json it prints the daemon's replies unchanged, as JSON, for scripts and
 * for comparing with a stored `ranking` record.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msgpack.h>
#include <zmq.h>

#include "cli.h"
#include "json_mp.h"

typedef struct rank_opts {
  const char *period; /* NULL: the daemon's current period */
  const char *tier;   /* NULL: both */
  bool json;
} rank_opts_t;

/* The name of the unit at path, from a `units` reply; "" when unknown. */
static void unit_name(const msgpack_object *units, const msgpack_object *path, char *out,
                      size_t cap)
{
  out[0] = '\0';
  const msgpack_object *list = units ? mp_get(units, "units") : NULL;
  if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY || path->type != MSGPACK_OBJECT_STR)
    return;
  for (uint32_t i = 0; i < list->via.array.size; i++) {
    const msgpack_object *u = &list->via.array.ptr[i], *p = mp_get(u, "path");
    const msgpack_object *n = mp_get(u, "name");
    if (p != NULL && p->type == MSGPACK_OBJECT_STR && p->via.str.size == path->via.str.size &&
        memcmp(p->via.str.ptr, path->via.str.ptr, p->via.str.size) == 0 && n != NULL &&
        n->type == MSGPACK_OBJECT_STR) {
      snprintf(out, cap, "%.*s", (int)n->via.str.size, n->via.str.ptr);
      return;
    }
  }
}

/* A rate as "66.7%", nil as "-". */
static void put_rate(const msgpack_object *o, int width)
{
  char buf[16] = "-";
  if (o != NULL && (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32))
    snprintf(buf, sizeof buf, "%.1f%%", o->via.f64 * 100);
  else if (o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
    snprintf(buf, sizeof buf, "%.1f%%", (double)o->via.u64 * 100);
  printf(" %*s", width, buf);
}

static int64_t int_of(const msgpack_object *o)
{
  return o != NULL && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)o->via.u64 : 0;
}

static bool listed(const msgpack_object *list, const msgpack_object *path)
{
  if (list == NULL || list->type != MSGPACK_OBJECT_ARRAY)
    return false;
  for (uint32_t i = 0; i < list->via.array.size; i++)
    if (msgpack_object_equal(list->via.array.ptr[i], *path))
      return true;
  return false;
}

static void print_table(const msgpack_object *reply, const msgpack_object *units)
{
  const msgpack_object *b = mp_get(reply, "ranking"), *w = b ? mp_get(b, "weights") : NULL;
  const msgpack_object *period = mp_get(b, "period"), *tier = mp_get(b, "tier");
  const msgpack_object *rows = mp_get(b, "rows"), *red = mp_get(b, "red");
  const msgpack_object *black = mp_get(b, "black");
  if (period == NULL || tier == NULL || rows == NULL || rows->type != MSGPACK_OBJECT_ARRAY)
    return;
  printf("%.*s, %.*s tier (%s)", (int)period->via.str.size, period->via.str.ptr,
         (int)tier->via.str.size, tier->via.str.ptr,
         mp_is_true(mp_get(reply, "final")) ? "final" : "so far: the period has not ended");
  if (w != NULL) {
    fputs("; weights: response", stdout);
    put_rate(mp_get(w, "response"), 0);
    fputs(", resolution", stdout);
    put_rate(mp_get(w, "resolution"), 0);
    fputs(", satisfaction", stdout);
    put_rate(mp_get(w, "satisfaction"), 0);
  }
  printf("\n%4s  %-12s %8s %9s %10s %12s %7s  %-5s  %s\n", "rank", "unit", "received",
         "response", "resolution", "satisfaction", "score", "list", "name");
  for (uint32_t i = 0; i < rows->via.array.size; i++) {
    const msgpack_object *r = &rows->via.array.ptr[i], *unit = mp_get(r, "unit");
    const msgpack_object *rank = mp_get(r, "rank");
    char name[200];
    if (unit == NULL || unit->type != MSGPACK_OBJECT_STR)
      continue;
    unit_name(units, unit, name, sizeof name);
    if (rank != NULL && rank->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
      printf("%4" PRIu64, rank->via.u64);
    else
      printf("%4s", "-");
    printf("  %-12.*s %8" PRId64, (int)unit->via.str.size, unit->via.str.ptr,
           int_of(mp_get(r, "received")));
    put_rate(mp_get(r, "response_rate"), 9);
    put_rate(mp_get(r, "resolution_rate"), 10);
    put_rate(mp_get(r, "satisfaction_rate"), 12);
    put_rate(mp_get(r, "score"), 7);
    printf("  %-5s  %s\n", listed(red, unit) ? "red" : listed(black, unit) ? "black" : "",
           name);
  }
}

/* One request; *r holds the reply. Returns 0, EXIT_REJECTED after
 * reporting a refusal, or EXIT_USAGE on a transport error. */
static int ask(cli_t *c, void *s, const char *op, const rank_opts_t *o, const char *tier,
               reply_t *r)
{
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1 + (tier != NULL) + (o->period != NULL));
  pack_cstr(&pk, "op");
  pack_cstr(&pk, op);
  if (tier != NULL) {
    pack_cstr(&pk, "tier");
    pack_cstr(&pk, tier);
  }
  if (o->period != NULL) {
    pack_cstr(&pk, "period");
    pack_cstr(&pk, o->period);
  }
  int rc = query_roundtrip(c, s, &sb, r) ? EXIT_USAGE : 0;
  msgpack_sbuffer_destroy(&sb);
  if (rc == 0 && !mp_is_true(mp_get(&r->u.data, "ok"))) {
    report_refusal(op, &r->u.data);
    reply_free(r);
    rc = EXIT_REJECTED;
  }
  return rc;
}

static void parse_opts(cli_t *c, int argc, char **argv, rank_opts_t *o)
{
  static const struct option own[] = {
    {"period", required_argument, NULL, OPT_FROM},
    {"tier", required_argument, NULL, OPT_UNIT},
    {"json", no_argument, NULL, OPT_JSON},
    {"compact", no_argument, NULL, OPT_COMPACT},
    {NULL, 0, NULL, 0},
  };
  int opt;
  *o = (rank_opts_t){0};
  while ((opt = cmd_getopt(c, argc, argv, own)) != -1) {
    if (opt == OPT_FROM)
      o->period = optarg;
    else if (opt == OPT_UNIT)
      o->tier = optarg;
    else if (opt == OPT_JSON)
      o->json = true;
    else if (opt == OPT_COMPACT)
      c->compact = true;
  }
  if (optind < argc) {
    cli_err("rank: unexpected argument '%s'", argv[optind]);
    cmd_usage_exit(c);
  }
  if (o->tier != NULL && strcmp(o->tier, "community") && strcmp(o->tier, "township")) {
    cli_err("rank: --tier expects community or township; got '%s'", o->tier);
    cmd_usage_exit(c);
  }
}

int cmd_rank(cli_t *c, int argc, char **argv)
{
  static const char *const both[] = {"community", "township"};
  rank_opts_t o;
  reply_t units, r[2];
  parse_opts(c, argc, argv, &o);
  void *s = socket_open(c, c->query, 0);
  if (s == NULL)
    return EXIT_USAGE;
  int n = o.tier ? 1 : 2, got = 0, rc = 0;
  for (; got < n && rc == 0; got++)
    if ((rc = ask(c, s, "rank", &o, o.tier ? o.tier : both[got], &r[got])))
      break;
  bool have_units = rc == 0 && !o.json && ask(c, s, "units", &(rank_opts_t){0}, NULL, &units) == 0;
  if (rc == 0 && o.json) {
    char err[160];
    cJSON *all = n == 1 ? NULL : cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
      cJSON *j = lx_mp_to_json(&r[i].u.data, err, sizeof err);
      if (all != NULL && j != NULL)
        cJSON_AddItemToArray(all, j);
      else if (j != NULL)
        all = j;
    }
    print_json(all, !c->compact);
    cJSON_Delete(all);
  } else if (rc == 0) {
    for (int i = 0; i < n; i++) {
      if (i)
        putchar('\n');
      print_table(&r[i].u.data, have_units ? &units.u.data : NULL);
    }
  }
  for (int i = 0; i < got; i++)
    reply_free(&r[i]);
  if (have_units)
    reply_free(&units);
  zmq_close(s);
  return rc;
}
