/* SPDX-License-Identifier: MIT
 *
 * fuzz_query.c: libFuzzer harness for the query socket's request path,
 * lx_query_answer (daemon/net/query.c): one request frame in, one reply out.
 *
 * Setup (once): a daemon struct with only what a query touches: the sample
 * config, an LMDB store in a scratch directory holding a small history
 * stored through lx_apply_record, as ingest stores events (three appeals
 * through their states, visits, an escalation, plugin records, a
 * checkpoint; three commits with increasing receive times), and zeroed
 * stats; no sockets, no loop, no plugins (n_hosts 0).
 *
 * Input: the request frame itself, as a client sends it. Each frame is
 * answered four times: for a plain socket (no client) and, as with CURVE
 * on, for a field key at qd.hx.dy, a supervisor of township qd.hx and an
 * auditor.
 *
 * Promises checked for every answer: the reply is exactly one well-formed
 * MessagePack map with string keys, none repeated, holding a boolean "ok";
 * ok is true exactly when lx_query_answer returned 0; a refusal carries
 * "code" (the wire name of the code returned) and "error" strings, and its
 * code is one a request can cause (E_DECODE, E_TOO_BIG, E_BADREQ,
 * E_NOTFOUND, and E_DENIED for a confined key), never E_INTERNAL on a
 * healthy store; every replayed record carries an `ev` that reads back as a
 * stored event and, for a confined key, lies inside its jurisdiction, as
 * does an appeal it is shown; the query counter moves by one.
 */
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "apply.h"
#include "clock.h"
#include "daemon.h"
#include "fuzz_util.h"

static lx_daemon_t g_d;
static char g_dir[PATH_MAX];

/* Who asks. Only the role and the jurisdiction matter to query.c. */
static const lx_client_t g_field = {"fuzz-field", {1}, LX_ROLE_FIELD, "qd.hx.dy", 8};
static const lx_client_t g_supervisor = {"fuzz-supervisor", {2}, LX_ROLE_SUPERVISOR, "qd.hx", 5};
static const lx_client_t g_auditor = {"fuzz-auditor", {3}, LX_ROLE_AUDITOR, "qd", 2};
static const lx_client_t *const g_askers[] = {NULL, &g_field, &g_supervisor, &g_auditor};

static bool confined(const lx_client_t *c) {
  return c && c->role != LX_ROLE_AUDITOR && c->role != LX_ROLE_ADMIN;
}

static bool inside(const lx_client_t *c, const char *unit, size_t n) {
  return !confined(c) || lx_within(c->jur, c->jur_len, unit, n);
}

/* --- the history the store holds -------------------------------------------- */

#define RAT0 1767571200000ULL /* 2026-01-05T00:00:00Z */
#define HOUR 3600000ULL

static void pk_str(msgpack_packer *pk, const char *s) { lx_mp_pack_cstr(pk, s); }

/* Packs the envelope up to "body", whose map the caller packs next. */
static void envelope(msgpack_packer *pk, int n, const char *type, const char *unit,
                     const char *actor, uint64_t at) {
  static unsigned next_id;
  char id[40];
  snprintf(id, sizeof id, "fuzz-seed-event-%08u", ++next_id);
  msgpack_pack_map(pk, 7);
  pk_str(pk, "v"), msgpack_pack_uint64(pk, 1);
  pk_str(pk, "id"), pk_str(pk, id);
  pk_str(pk, "type"), pk_str(pk, type);
  pk_str(pk, "at"), msgpack_pack_uint64(pk, at);
  pk_str(pk, "unit"), pk_str(pk, unit);
  pk_str(pk, "actor"), pk_str(pk, actor);
  pk_str(pk, "body"), msgpack_pack_map(pk, n);
}

/* Body fields: "k=v" strings, "k?" true, "k!" false, "k#N" an integer,
 * "k~" nil, "k%N" N bytes of binary. */
static void body(msgpack_packer *pk, const char *const *kv) {
  for (; *kv; kv++) {
    const char *s = *kv, *op = s + strcspn(s, "=?!#~%");
    lx_mp_pack_str(pk, s, (size_t)(op - s));
    switch (*op) {
    case '=': pk_str(pk, op + 1); break;
    case '?': msgpack_pack_true(pk); break;
    case '!': msgpack_pack_false(pk); break;
    case '#': msgpack_pack_uint64(pk, strtoull(op + 1, NULL, 10)); break;
    case '~': msgpack_pack_nil(pk); break;
    case '%': {
      uint8_t b[64] = {0};
      size_t n = strtoul(op + 1, NULL, 10);
      msgpack_pack_bin_with_body(pk, b, n > sizeof b ? sizeof b : n);
      break;
    }
    default: abort();
    }
  }
}

typedef struct seed_ev {
  const char *type, *unit, *actor;
  const char *kv[8];
} seed_ev_t;

/* Batches are separated by a NULL type. */
static const seed_ev_t history[] = {
    {"appeal", "qd.hx.dy", "cadre-7",
     {"appeal=AP-1", "household=hh-001", "category=housing", "priority=urgent",
      "summary=roof leaks", NULL}},
    {"visit", "qd.hx.dy", "cadre-7",
     {"household=hh-001", "mode=appointment", "minutes#45", "appeal=AP-1", NULL}},
    {"resolution", "qd.hx.dy", "cadre-7",
     {"appeal=AP-1", "outcome=explained", "note=repair funds next quarter", NULL}},
    {"feedback", "qd.hx.dy", "cadre-7", {"appeal=AP-1", "satisfied!", "note=too slow", NULL}},
    {NULL, NULL, NULL, {NULL}},
    {"escalation", "qd.hx.dy", "escalate",
     {"appeal=AP-1", "kind=escalated", "from=community", "to=township", "deadline#1767862800000",
      "next#1768467600000", NULL}},
    {"warning", "qd.hx.dy", "escalate",
     {"appeal=AP-1", "tier=township", "deadline#1768467600000", NULL}},
    {"appeal", "qd.xs.sq", "cadre-12",
     {"appeal=AP-2", "household=hh-204", "category=jobs", "summary=looking for work", NULL}},
    {"resolution", "qd.xs.sq", "cadre-12",
     {"appeal=AP-2", "outcome=resolved", "note=placed at the co-op", NULL}},
    {"feedback", "qd.xs.sq", "cadre-12", {"appeal=AP-2", "satisfied?", NULL}},
    {NULL, NULL, NULL, {NULL}},
    {"visit", "qd.nh.hb", "cadre-3", {"household=hh-310", "mode=periodic", NULL}},
    {"appeal", "qd.nh.wh", "cadre-3",
     {"appeal=AP-3", "household=hh-322", "category=public-order", "summary=noise at night",
      NULL}},
    {"unanswered", "qd.nh.wh", "escalate", {"appeal=AP-3", "tier=community", "due#1767700800000", NULL}},
    {"checkpoint", "qd", "lianxind", {"seq#13", "hash%32", "key%32", "sig%64", NULL}},
};

static bool unit_ok(void *arg, const char *path, size_t len, bool community) {
  const lx_config_t *cfg = arg;
  int i = lx_config_find_unit(cfg, path, len);
  return i >= 0 && (!community || cfg->units[i].tier == LX_TIER_COMMUNITY);
}

static bool any_type(void *arg, const char *name, size_t len) { return true; }

/* Validates one seed event and stores it through lx_apply_record, the
 * function the live ingest path uses: dedup, appeal state and history,
 * append, counters, checkpoint marker. */
static void store_one(MDB_txn *txn, const seed_ev_t *se, uint64_t rat) {
  lx_schema_ctx_t ctx = {unit_ok, NULL, &g_d.cfg, true, any_type};
  msgpack_sbuffer raw, norm;
  msgpack_packer pk;
  msgpack_zone zone;
  lx_event_t ev;
  lx_error_t e;
  int n = 0;
  while (se->kv[n])
    n++;
  msgpack_sbuffer_init(&raw);
  msgpack_sbuffer_init(&norm);
  msgpack_zone_init(&zone, 1024);
  msgpack_packer_init(&pk, &raw, msgpack_sbuffer_write);
  envelope(&pk, n, se->type, se->unit, se->actor, rat - 60000);
  body(&pk, se->kv);
  if (lx_event_decode((const uint8_t *)raw.data, raw.size, &ctx, &zone, &ev, &norm, &e))
    fuzz_fail(__FILE__, __LINE__, "seed event", "%s: %s", se->type, e.msg);
  uint8_t content[LX_HASH_LEN];
  crypto_generichash(content, sizeof content, (const uint8_t *)norm.data, norm.size, NULL, 0);
  lx_apply_t a = {.ev = &ev, .bytes = (const uint8_t *)norm.data, .len = norm.size,
                  .content = content, .rat = rat};
  int rc = lx_apply_record(&g_d, txn, &a);
  if (rc || a.err.code || a.dup)
    fuzz_fail(__FILE__, __LINE__, "seed store", "storing %s failed: %d %s", se->type, rc,
              a.err.code ? a.err.msg : "");
  msgpack_zone_destroy(&zone);
  msgpack_sbuffer_destroy(&norm);
  msgpack_sbuffer_destroy(&raw);
}

static void fill_store(void) {
  size_t n = sizeof history / sizeof history[0];
  uint64_t rat = RAT0;
  for (size_t i = 0; i < n;) {
    MDB_txn *txn;
    if (lx_store_begin(g_d.store, &txn))
      abort();
    for (; i < n && history[i].type; i++, rat += HOUR)
      store_one(txn, &history[i], rat);
    if (lx_store_commit(g_d.store, txn))
      abort();
    i++; /* the batch separator */
  }
}

static void cleanup(void) {
  lx_store_free(&g_d.store);
  lx_config_free(&g_d.cfg);
  fuzz_rmtree(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char file[PATH_MAX], *errors = NULL, err[512];
  if (sodium_init() < 0 || lx_clock_init())
    abort();
  fuzz_sample_config(file, sizeof file);
  if (lx_config_load(file, &g_d.cfg, &errors)) {
    fprintf(stderr, "fuzz_query: cannot load %s (set LX_SOURCE_DIR):\n%s", file,
            errors ? errors : "");
    abort();
  }
  fuzz_mkdtemp(g_dir, sizeof g_dir, "query");
  if (lx_store_open(&g_d.store, g_dir, 1u << 20, 64u << 20, err, sizeof err)) {
    fprintf(stderr, "fuzz_query: %s\n", err);
    abort();
  }
  atexit(cleanup);
  fill_store();
  g_d.started_ms = lx_clock_now_ms();
  return 0;
}

/* --- the reply's shape ------------------------------------------------------ */

static const msgpack_object *get(const msgpack_object *m, const char *key) {
  return lx_mp_get(m, key);
}

static void check_replay(const lx_client_t *who, const msgpack_object *root) {
  const msgpack_object *recs = get(root, "records"), *next = get(root, "next"),
                       *head = get(root, "head");
  FUZZ_CHECK(recs && recs->type == MSGPACK_OBJECT_ARRAY, "replay reply without records");
  FUZZ_CHECK(next && next->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "replay reply without next");
  FUZZ_CHECK(head && head->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "replay reply without head");
  uint64_t prev = 0;
  for (uint32_t i = 0; i < recs->via.array.size; i++) {
    const msgpack_object *r = &recs->via.array.ptr[i];
    const msgpack_object *seq = get(r, "seq"), *ev = get(r, "ev"), *hash = get(r, "hash");
    FUZZ_CHECK(seq && seq->type == MSGPACK_OBJECT_POSITIVE_INTEGER, "record %u: no seq", i);
    FUZZ_CHECK(seq->via.u64 > prev && seq->via.u64 <= head->via.u64,
               "record %u: seq %llu after %llu (head %llu)", i,
               (unsigned long long)seq->via.u64, (unsigned long long)prev,
               (unsigned long long)head->via.u64);
    FUZZ_CHECK(seq->via.u64 < next->via.u64, "record %u: seq %llu not before next %llu", i,
               (unsigned long long)seq->via.u64, (unsigned long long)next->via.u64);
    prev = seq->via.u64;
    FUZZ_CHECK(hash && hash->type == MSGPACK_OBJECT_BIN && hash->via.bin.size == LX_HASH_LEN,
               "record %u: bad hash", i);
    FUZZ_CHECK(ev && ev->type == MSGPACK_OBJECT_BIN, "record %u: no ev", i);
    msgpack_zone z;
    lx_event_t e;
    msgpack_zone_init(&z, 1024);
    FUZZ_CHECK(lx_event_parse_stored((const uint8_t *)ev->via.bin.ptr, ev->via.bin.size, &z,
                                     &e) == 0,
               "record %u: ev does not read back", i);
    FUZZ_CHECK(inside(who, e.unit.p, e.unit.n), "record %u at %.*s shown to %s (%s)", i,
               (int)e.unit.n, e.unit.p, who->name, who->jur);
    msgpack_zone_destroy(&z);
  }
}

static void check_reply(const lx_client_t *who, int rc, const msgpack_sbuffer *out) {
  lx_error_t e;
  FUZZ_CHECK(out->size > 0, "empty reply");
  FUZZ_CHECK(lx_mp_check((const uint8_t *)out->data, out->size, 8, &e) == 0,
             "reply fails the pre-check: %s", e.msg);
  msgpack_zone z;
  msgpack_object root;
  size_t off = 0;
  msgpack_zone_init(&z, 4096);
  int urc = msgpack_unpack(out->data, out->size, &off, &z, &root);
  FUZZ_CHECK(urc == MSGPACK_UNPACK_SUCCESS && off == out->size, "reply is not one object (%d)",
             urc);
  FUZZ_CHECK(root.type == MSGPACK_OBJECT_MAP, "reply is not a map");
  for (uint32_t i = 0; i < root.via.map.size; i++) {
    const msgpack_object *k = &root.via.map.ptr[i].key;
    FUZZ_CHECK(k->type == MSGPACK_OBJECT_STR, "reply key %u is not a string", i);
    for (uint32_t j = 0; j < i; j++)
      FUZZ_CHECK(!(k->via.str.size == root.via.map.ptr[j].key.via.str.size &&
                   memcmp(k->via.str.ptr, root.via.map.ptr[j].key.via.str.ptr,
                          k->via.str.size) == 0),
                 "reply key \"%.*s\" repeated", (int)k->via.str.size, k->via.str.ptr);
  }
  const msgpack_object *ok = get(&root, "ok");
  FUZZ_CHECK(ok && ok->type == MSGPACK_OBJECT_BOOLEAN, "reply without a boolean ok");
  if (!ok->via.boolean) {
    const msgpack_object *code = get(&root, "code"), *error = get(&root, "error");
    FUZZ_CHECK(rc != 0, "ok:false but lx_query_answer returned 0");
    FUZZ_CHECK(code && lx_mp_str_eq(code, lx_strerror(rc)), "code does not name %s",
               lx_strerror(rc));
    FUZZ_CHECK(error && error->type == MSGPACK_OBJECT_STR && error->via.str.size > 0,
               "refusal without an error text");
    FUZZ_CHECK(rc == LX_EDECODE || rc == LX_ETOOBIG || rc == LX_EBADREQ ||
                   rc == LX_ENOTFOUND || (rc == LX_EDENIED && confined(who)),
               "request from %s answered %s: %.*s", who ? who->name : "a plain socket",
               lx_strerror(rc), (int)error->via.str.size, error->via.str.ptr);
  } else {
    FUZZ_CHECK(rc == 0, "ok:true but lx_query_answer returned %d", rc);
    const msgpack_object *a = get(&root, "appeal"), *unit = a ? get(a, "unit") : NULL;
    if (get(&root, "records"))
      check_replay(who, &root);
    if (a)
      FUZZ_CHECK(unit && unit->type == MSGPACK_OBJECT_STR &&
                     inside(who, unit->via.str.ptr, unit->via.str.size),
                 "appeal shown to %s (%s)", who->name, who->jur);
  }
  msgpack_zone_destroy(&z);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  msgpack_sbuffer out;
  msgpack_zone zone;
  msgpack_sbuffer_init(&out);
  msgpack_zone_init(&zone, 4096);
  for (size_t i = 0; i < sizeof g_askers / sizeof g_askers[0]; i++) {
    const lx_client_t *who = g_askers[i];
    uint64_t before = g_d.stats.queries;
    int rc = lx_query_answer(&g_d, who, data, size, &out, &zone);
    if (fuzz_verbose())
      fprintf(stderr, "fuzz_query: %s: %s, %zu-byte reply\n", who ? who->name : "plain",
              rc ? lx_strerror(rc) : "ok", out.size);
    FUZZ_CHECK(g_d.stats.queries == before + 1, "queries counted %llu times",
               (unsigned long long)(g_d.stats.queries - before));
    check_reply(who, rc, &out);
    msgpack_sbuffer_clear(&out);
    msgpack_zone_clear(&zone);
  }
  msgpack_sbuffer_destroy(&out);
  msgpack_zone_destroy(&zone);
  return 0;
}
