/* SPDX-License-Identifier: MIT
 *
 * replay.c: `lianxin replay`, which pages through the log on the query
 * endpoint and prints each record as a JSON line, its event decoded.
 *
 * The daemon sends at most --limit records a page and says where the next
 * page starts (next) and where the log ends (head); replay asks page after
 * page until it has everything that was asked for, so no reply grows with
 * the log. The filters go with every page and the daemon applies them.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <msgpack.h>
#include <zmq.h>

#include "cli.h"
#include "json_mp.h"

#define DEFAULT_PAGE 1000
#define MAX_PAGE 10000

typedef struct replay_opts {
  int64_t from, to, since, until, limit;
  bool has_to, has_since, has_until;
  const char *unit, *types, *appeal;
} replay_opts_t;

/* Packs "a,b" as ["a", "b"]; empty names (",," or a trailing comma) are
 * skipped. The first pass counts, the second packs. */
static void pack_types(msgpack_packer *pk, const char *types)
{
  for (int pass = 0, n = 0; pass < 2; pass++) {
    if (pass == 1)
      msgpack_pack_array(pk, (size_t)n);
    for (const char *p = types; *p != '\0';) {
      size_t len = strcspn(p, ",");
      if (len > 0 && pass == 0)
        n++;
      else if (len > 0)
        msgpack_pack_str_with_body(pk, p, len);
      p += len + (p[len] == ',');
    }
  }
}

static void pack_replay(msgpack_packer *pk, const replay_opts_t *o, int64_t from)
{
  size_t n = 3 + o->has_to + o->has_since + o->has_until + (o->unit != NULL) +
             (o->types != NULL) + (o->appeal != NULL);
  msgpack_pack_map(pk, n);
  pack_cstr(pk, "op");
  pack_cstr(pk, "replay");
  pack_cstr(pk, "from");
  msgpack_pack_int64(pk, from);
  pack_cstr(pk, "limit");
  msgpack_pack_int64(pk, o->limit);
  if (o->has_to) {
    pack_cstr(pk, "to");
    msgpack_pack_int64(pk, o->to);
  }
  if (o->has_since) {
    pack_cstr(pk, "since");
    msgpack_pack_int64(pk, o->since);
  }
  if (o->has_until) {
    pack_cstr(pk, "until");
    msgpack_pack_int64(pk, o->until);
  }
  if (o->unit != NULL) {
    pack_cstr(pk, "unit");
    pack_cstr(pk, o->unit);
  }
  if (o->types != NULL) {
    pack_cstr(pk, "types");
    pack_types(pk, o->types);
  }
  if (o->appeal != NULL) {
    pack_cstr(pk, "appeal");
    pack_cstr(pk, o->appeal);
  }
}

/* Prints one record as a JSON line with its `ev` bytes decoded. A record
 * whose event cannot be decoded keeps `ev` as hex and says why in
 * `ev_error`, so nothing is hidden from an auditor. */
static int print_record(const msgpack_object *rec)
{
  char err[160];
  cJSON *j = lx_mp_to_json(rec, err, sizeof err);
  if (j == NULL || !cJSON_IsObject(j)) {
    cli_err("replay: record cannot be shown as JSON: %s", j == NULL ? err : "not a map");
    cJSON_Delete(j);
    return -1;
  }
  const msgpack_object *ev = mp_get(rec, "ev");
  if (ev != NULL && ev->type == MSGPACK_OBJECT_BIN) {
    cJSON *d = lx_mp_buf_to_json(ev->via.bin.ptr, ev->via.bin.size, err, sizeof err);
    if (d != NULL)
      cJSON_ReplaceItemInObjectCaseSensitive(j, "ev", d);
    else
      cJSON_AddStringToObject(j, "ev_error", err);
  }
  print_json(j, false);
  cJSON_Delete(j);
  return 0;
}

/* Prints a page; returns 0, or -1 if the reply is not shaped as specified. */
static int replay_page(const msgpack_object *reply, uint64_t *next, uint64_t *head)
{
  const msgpack_object *recs = mp_get(reply, "records");
  if (recs == NULL || recs->type != MSGPACK_OBJECT_ARRAY || !mp_uint(mp_get(reply, "next"), next) ||
      !mp_uint(mp_get(reply, "head"), head)) {
    cli_err("replay: reply lacks records, next or head");
    return -1;
  }
  for (uint32_t i = 0; i < recs->via.array.size; i++)
    if (print_record(&recs->via.array.ptr[i]) < 0)
      return -1;
  return 0;
}

/* Pages until the daemon says everything asked for was sent: next > head,
 * or next > to when --to was given. */
static int replay_run(cli_t *c, void *s, const replay_opts_t *o)
{
  uint64_t from = (uint64_t)o->from;
  for (;;) {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    reply_t r;
    uint64_t next = 0, head = 0;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_replay(&pk, o, (int64_t)from);
    int rc = query_roundtrip(c, s, &sb, &r);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0)
      return EXIT_USAGE;
    if (!mp_is_true(mp_get(&r.u.data, "ok"))) {
      report_refusal("replay", &r.u.data);
      reply_free(&r);
      return EXIT_REJECTED;
    }
    rc = replay_page(&r.u.data, &next, &head);
    reply_free(&r);
    if (rc < 0)
      return EXIT_USAGE;
    if (next > head || (o->has_to && next > (uint64_t)o->to))
      return 0;
    if (next <= from) {
      cli_err("replay: the daemon did not advance past seq %" PRIu64, from);
      return EXIT_USAGE;
    }
    from = next;
  }
}

static void replay_int_opt(cli_t *c, const char *name, const char *arg, int64_t min, int64_t max,
                           int64_t *out)
{
  if (!parse_i64(arg, min, max, out)) {
    cli_err("replay: --%s expects an integer from %" PRId64 " to %" PRId64 ", got '%s'", name,
            min, max, arg);
    cmd_usage_exit(c);
  }
}

int cmd_replay(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"from", required_argument, NULL, OPT_FROM},   {"to", required_argument, NULL, OPT_TO},
    {"limit", required_argument, NULL, OPT_LIMIT}, {"since", required_argument, NULL, OPT_SINCE},
    {"until", required_argument, NULL, OPT_UNTIL}, {"unit", required_argument, NULL, OPT_UNIT},
    {"types", required_argument, NULL, OPT_TYPES}, {"appeal", required_argument, NULL, OPT_APPEAL},
    {NULL, 0, NULL, 0},
  };
  replay_opts_t o = {.from = 1, .limit = DEFAULT_PAGE};
  int op;
  while ((op = cmd_getopt(c, argc, argv, own)) != -1) {
    switch (op) {
    case OPT_FROM: replay_int_opt(c, "from", optarg, 1, INT64_MAX, &o.from); break;
    case OPT_TO: replay_int_opt(c, "to", optarg, 0, INT64_MAX, &o.to); o.has_to = true; break;
    case OPT_LIMIT: replay_int_opt(c, "limit", optarg, 1, MAX_PAGE, &o.limit); break;
    case OPT_SINCE: time_opt(c, "since", optarg, &o.since); o.has_since = true; break;
    case OPT_UNTIL: time_opt(c, "until", optarg, &o.until); o.has_until = true; break;
    case OPT_UNIT: o.unit = optarg; break;
    case OPT_TYPES: o.types = optarg; break;
    case OPT_APPEAL: o.appeal = optarg; break;
    }
  }
  if (optind < argc) {
    cli_err("replay: unexpected argument '%s'", argv[optind]);
    cmd_usage_exit(c);
  }
  void *s = socket_open(c, c->query, 0);
  if (s == NULL)
    return EXIT_USAGE;
  int rc = replay_run(c, s, &o);
  zmq_close(s);
  return rc;
}
