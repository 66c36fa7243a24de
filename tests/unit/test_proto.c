/* SPDX-License-Identifier: MIT
 *
 * test_proto.c: unit tests of the event decoder and validator (proto/).
 *
 * A table of cases, each a valid event of some type with one change (a key
 * replaced, removed or added), and the error code and field the daemon must
 * answer with. Plus the structural attacks (truncation, lying length
 * prefixes, deep nesting, repeated keys) and normalisation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "lx_proto.h"

typedef struct kv {
  const char *key;
  char kind; /* s: str, i: int, u: negative int, b: bool, n: nil, B: bin, f: float, m: map, a: array, x: remove */
  const char *s;
  int64_t i;
} kv_t;

#define END {NULL, 0, NULL, 0}
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

static const kv_t env_base[] = {
    {"v", 'i', NULL, 1},          {"id", 's', "01JD7Y3ZKQ8W5N2M4P6R8T0V2X", 0},
    {"type", 's', "visit", 0},    {"at", 'i', NULL, 1795000000000},
    {"unit", 's', "qd.hx.dy", 0}, {"actor", 's', "cadre-7", 0},
    END,
};

static const kv_t body_visit[] = {{"household", 's', "hh-1", 0}, {"mode", 's', "roving", 0}, END};
static const kv_t body_appeal[] = {{"appeal", 's', "ap-1", 0}, {"household", 's', "hh-1", 0},
                                   {"category", 's', "jobs", 0}, {"summary", 's', "needs work", 0},
                                   END};
static const kv_t body_resolution[] = {{"appeal", 's', "ap-1", 0}, {"outcome", 's', "resolved", 0},
                                       {"note", 's', "done", 0}, END};
static const kv_t body_feedback[] = {{"appeal", 's', "ap-1", 0}, {"satisfied", 'b', NULL, 1}, END};

static void pack_kv(msgpack_packer *pk, const kv_t *kv) {
  lx_mp_pack_cstr(pk, kv->key);
  switch (kv->kind) {
  case 's': lx_mp_pack_cstr(pk, kv->s); break;
  case 'i': msgpack_pack_int64(pk, kv->i); break;
  case 'b': kv->i ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
  case 'n': msgpack_pack_nil(pk); break;
  case 'B': msgpack_pack_bin_with_body(pk, kv->s, strlen(kv->s)); break;
  case 'f': msgpack_pack_double(pk, 1.5); break;
  case 'm': msgpack_pack_map(pk, 0); break;
  case 'a': msgpack_pack_array(pk, 1); msgpack_pack_int(pk, 1); break;
  }
}


static const kv_t *find(const kv_t *kv, const char *key) {
  for (; kv && kv->key; kv++)
    if (strcmp(kv->key, key) == 0)
      return kv;
  return NULL;
}

/* Packs base with overrides applied: a same-named override replaces the
 * base entry (kind 'x' removes it), and new keys are appended. */
static void pack_map(msgpack_packer *pk, const kv_t *base, const kv_t *over, const kv_t *body_base,
                     const kv_t *body_over) {
  kv_t all[32];
  int n = 0;
  for (const kv_t *b = base; b->key; b++) {
    const kv_t *o = find(over, b->key);
    if (!o || o->kind != 'x')
      all[n++] = o ? *o : *b;
  }
  for (const kv_t *o = over; o && o->key; o++)
    if (!find(base, o->key) && o->kind != 'x')
      all[n++] = *o;
  bool body = body_base && !find(over, "body");
  msgpack_pack_map(pk, n + body);
  for (int i = 0; i < n; i++)
    pack_kv(pk, &all[i]);
  if (body) {
    lx_mp_pack_cstr(pk, "body");
    pack_map(pk, body_base, body_over, NULL, NULL);
  }
}

static bool unit_ok(void *arg, const char *p, size_t n, bool community) {
  static const char *const units[] = {"qd", "qd.hx", "qd.hx.dy", "qd.xs.sq"};
  for (int i = 0; i < 4; i++)
    if (strlen(units[i]) == n && memcmp(units[i], p, n) == 0)
      return !community || i >= 2;
  return false;
}

static bool category_ok(void *arg, const char *p, size_t n) {
  return (n == 4 && memcmp(p, "jobs", 4) == 0) || (n == 7 && memcmp(p, "housing", 7) == 0);
}

static const lx_schema_ctx_t ctx = {unit_ok, category_ok, NULL, false};

typedef struct decoded {
  int rc;
  lx_event_t ev;
  lx_error_t err;
  msgpack_sbuffer norm;
  msgpack_zone zone;
  msgpack_sbuffer in;
} decoded_t;

static void decode_buf(decoded_t *d, const void *buf, size_t len) {
  msgpack_sbuffer_init(&d->norm);
  msgpack_zone_init(&d->zone, 2048);
  d->err.code = 0;
  d->err.msg[0] = 0;
  d->rc = lx_event_decode(buf, len, &ctx, &d->zone, &d->ev, &d->norm, &d->err);
}

static void decode_kv(decoded_t *d, const kv_t *body, const kv_t *env_over,
                      const kv_t *body_over) {
  msgpack_packer pk;
  msgpack_sbuffer_init(&d->in);
  msgpack_packer_init(&pk, &d->in, msgpack_sbuffer_write);
  pack_map(&pk, env_base, env_over, body, body_over);
  decode_buf(d, d->in.data, d->in.size);
}

static void done(decoded_t *d) {
  msgpack_sbuffer_destroy(&d->norm);
  msgpack_sbuffer_destroy(&d->in);
  msgpack_zone_destroy(&d->zone);
}

typedef struct ecase {
  const char *name;
  const char *type;
  kv_t env[4];
  kv_t body[4];
  int code;
  const char *field; /* must appear in the error text */
} ecase_t;

static const ecase_t cases[] = {
    {"v missing", "visit", {{"v", 'x'}, END}, {END}, LX_ESCHEMA, "v"},
    {"v string", "visit", {{"v", 's', "1"}, END}, {END}, LX_ESCHEMA, "v"},
    {"v float", "visit", {{"v", 'f'}, END}, {END}, LX_ESCHEMA, "v"},
    {"v 2", "visit", {{"v", 'i', NULL, 2}, END}, {END}, LX_EVERSION, "v"},
    {"v 0", "visit", {{"v", 'i', NULL, 0}, END}, {END}, LX_EVERSION, "v"},
    {"v -1", "visit", {{"v", 'i', NULL, -1}, END}, {END}, LX_EVERSION, "v"},
    {"type missing", "visit", {{"type", 'x'}, END}, {END}, LX_ESCHEMA, "type"},
    {"type int", "visit", {{"type", 'i', NULL, 3}, END}, {END}, LX_ESCHEMA, "type"},
    {"type unknown", "visit", {{"type", 's', "party"}, END}, {END}, LX_ETYPE, "type"},
    {"type escalation", "visit", {{"type", 's', "escalation"}, END}, {END}, LX_ETYPE, "daemon"},
    {"type checkpoint", "visit", {{"type", 's', "checkpoint"}, END}, {END}, LX_ETYPE, "daemon"},
    {"id missing", "visit", {{"id", 'x'}, END}, {END}, LX_ESCHEMA, "id"},
    {"id short", "visit", {{"id", 's', "abc"}, END}, {END}, LX_ESCHEMA, "id"},
    {"id long", "visit", {{"id", 's', "0123456789012345678901234567890123456789012345678901234567890123X"}, END}, {END}, LX_ESCHEMA, "id"},
    {"id space", "visit", {{"id", 's', "0123456789 0123456789"}, END}, {END}, LX_ESCHEMA, "id"},
    {"id bin", "visit", {{"id", 'B', "01234567890123456789"}, END}, {END}, LX_ESCHEMA, "id"},
    {"at missing", "visit", {{"at", 'x'}, END}, {END}, LX_ESCHEMA, "at"},
    {"at negative", "visit", {{"at", 'i', NULL, -5}, END}, {END}, LX_ESCHEMA, "at"},
    {"at string", "visit", {{"at", 's', "today"}, END}, {END}, LX_ESCHEMA, "at"},
    {"at too far", "visit", {{"at", 'i', NULL, 253402300800000}, END}, {END}, LX_ESCHEMA, "at"},
    {"unit missing", "visit", {{"unit", 'x'}, END}, {END}, LX_ESCHEMA, "unit"},
    {"unit int", "visit", {{"unit", 'i', NULL, 7}, END}, {END}, LX_ESCHEMA, "unit"},
    {"unit unknown", "visit", {{"unit", 's', "qd.hx.zz"}, END}, {END}, LX_EUNIT, "unit"},
    {"unit township", "visit", {{"unit", 's', "qd.hx"}, END}, {END}, LX_EUNIT, "unit"},
    {"unit county", "visit", {{"unit", 's', "qd"}, END}, {END}, LX_EUNIT, "unit"},
    {"unit malformed", "visit", {{"unit", 's', "QD..x"}, END}, {END}, LX_EUNIT, "unit"},
    {"actor missing", "visit", {{"actor", 'x'}, END}, {END}, LX_ESCHEMA, "actor"},
    {"actor empty", "visit", {{"actor", 's', ""}, END}, {END}, LX_ESCHEMA, "actor"},
    {"actor long", "visit", {{"actor", 's', "a-very-long-actor-name-that-goes-on-and-on-past-sixty-four-bytes-x"}, END}, {END}, LX_ESCHEMA, "actor"},
    {"by from client", "visit", {{"by", 's', "phone-1"}, END}, {END}, LX_ESCHEMA, "by"},
    {"unknown envelope key", "visit", {{"tpye", 's', "x"}, END}, {END}, LX_ESCHEMA, "tpye"},
    {"empty envelope key (fuzz)", "visit", {{"", 'i', NULL, 0}, END}, {END}, LX_ESCHEMA, "unknown key"},
    {"empty body key (fuzz)", "visit", {END}, {{"", 'i', NULL, 0}, END}, LX_ESCHEMA, "body.: unknown key"},
    {"body missing", "visit", {{"body", 'x'}, END}, {END}, LX_ESCHEMA, "body"},
    {"body not map", "visit", {{"body", 'a'}, END}, {END}, LX_ESCHEMA, "body"},
    {"visit household missing", "visit", {END}, {{"household", 'x'}, END}, LX_ESCHEMA, "body.household"},
    {"visit household empty", "visit", {END}, {{"household", 's', ""}, END}, LX_ESCHEMA, "body.household"},
    {"visit household map", "visit", {END}, {{"household", 'm'}, END}, LX_ESCHEMA, "body.household"},
    {"visit mode bad", "visit", {END}, {{"mode", 's', "drive-by"}, END}, LX_ESCHEMA, "body.mode"},
    {"visit mode missing", "visit", {END}, {{"mode", 'x'}, END}, LX_ESCHEMA, "body.mode"},
    {"visit minutes negative", "visit", {END}, {{"minutes", 'i', NULL, -1}, END}, LX_ESCHEMA, "body.minutes"},
    {"visit minutes huge", "visit", {END}, {{"minutes", 'i', NULL, 100001}, END}, LX_ESCHEMA, "body.minutes"},
    {"visit minutes string", "visit", {END}, {{"minutes", 's', "30"}, END}, LX_ESCHEMA, "body.minutes"},
    {"visit appeal too long", "visit", {END}, {{"appeal", 's', "a-very-long-appeal-id-that-goes-on-and-on-past-sixty-four-bytes-x"}, END}, LX_ESCHEMA, "body.appeal"},
    {"visit unknown body key", "visit", {END}, {{"colour", 's', "red"}, END}, LX_ESCHEMA, "body.colour"},
    {"appeal category unknown", "appeal", {END}, {{"category", 's', "weather"}, END}, LX_ESCHEMA, "body.category"},
    {"appeal category missing", "appeal", {END}, {{"category", 'x'}, END}, LX_ESCHEMA, "body.category"},
    {"appeal priority bad", "appeal", {END}, {{"priority", 's', "high"}, END}, LX_ESCHEMA, "body.priority"},
    {"appeal summary missing", "appeal", {END}, {{"summary", 'x'}, END}, LX_ESCHEMA, "body.summary"},
    {"appeal id missing", "appeal", {END}, {{"appeal", 'x'}, END}, LX_ESCHEMA, "body.appeal"},
    {"appeal id empty", "appeal", {END}, {{"appeal", 's', ""}, END}, LX_ESCHEMA, "body.appeal"},
    {"resolution outcome bad", "resolution", {END}, {{"outcome", 's', "ignored"}, END}, LX_ESCHEMA, "body.outcome"},
    {"resolution note missing", "resolution", {END}, {{"note", 'x'}, END}, LX_ESCHEMA, "body.note"},
    {"feedback satisfied int", "feedback", {END}, {{"satisfied", 'i', NULL, 1}, END}, LX_ESCHEMA, "body.satisfied"},
    {"feedback satisfied missing", "feedback", {END}, {{"satisfied", 'x'}, END}, LX_ESCHEMA, "body.satisfied"},
    {"feedback note nil", "feedback", {END}, {{"note", 'n'}, END}, LX_ESCHEMA, "body.note"},
    {"visit note bin", "visit", {END}, {{"note", 'B', "x"}, END}, LX_ESCHEMA, "body.note"},
};

static const kv_t *body_for(const char *type) {
  if (strcmp(type, "appeal") == 0) return body_appeal;
  if (strcmp(type, "resolution") == 0) return body_resolution;
  if (strcmp(type, "feedback") == 0) return body_feedback;
  return body_visit;
}

static void test_error_cases(void **state) {
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const ecase_t *c = &cases[i];
    kv_t env[6];
    int n = 0;
    env[n++] = (kv_t){"type", 's', c->type, 0};
    for (const kv_t *o = c->env; o->key; o++)
      env[n++] = *o; /* a later entry for "type" wins in find() only if first; keep order */
    env[n] = (kv_t)END;
    /* The case's own "type" override, if any, must win over the default. */
    if (find(c->env, "type"))
      env[0] = *find(c->env, "type");
    decoded_t d;
    decode_kv(&d, body_for(c->type), env, c->body);
    if (d.rc != c->code || !strstr(d.err.msg, c->field))
      fail_msg("case \"%s\": got %s \"%s\", want %s naming %s", c->name, lx_strerror(d.rc),
               d.err.msg, lx_strerror(c->code), c->field);
    done(&d);
  }
}

static void test_valid_types(void **state) {
  const char *types[] = {"visit", "appeal", "resolution", "feedback"};
  for (int i = 0; i < 4; i++) {
    kv_t env[] = {{"type", 's', types[i], 0}, END};
    decoded_t d;
    decode_kv(&d, body_for(types[i]), env, NULL);
    if (d.rc)
      fail_msg("%s: %s %s", types[i], lx_strerror(d.rc), d.err.msg);
    assert_int_equal(d.ev.type, i + 1);
    assert_int_equal(d.ev.at, 1795000000000);
    assert_int_equal(d.ev.unit.n, 8);
    done(&d);
  }
}

/* Key order and integer width do not change the stored bytes; a default
 * priority is filled in. */
static void test_normalisation(void **state) {
  kv_t env1[] = {{"type", 's', "appeal", 0}, END};
  decoded_t a, b;
  decode_kv(&a, body_appeal, env1, NULL);
  assert_int_equal(a.rc, 0);
  /* Same content, keys in reverse order, v as a uint64 on the wire. */
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 7);
  lx_mp_pack_cstr(&pk, "body");
  msgpack_pack_map(&pk, 4);
  for (int i = 3; i >= 0; i--)
    pack_kv(&pk, &body_appeal[i]);
  for (int i = 5; i >= 1; i--) {
    kv_t kv = env_base[i];
    if (strcmp(kv.key, "type") == 0)
      kv.s = "appeal";
    pack_kv(&pk, &kv);
  }
  lx_mp_pack_cstr(&pk, "v");
  msgpack_pack_uint64(&pk, 1);
  msgpack_sbuffer_init(&b.in);
  decode_buf(&b, sb.data, sb.size);
  assert_int_equal(b.rc, 0);
  assert_int_equal(a.norm.size, b.norm.size);
  assert_memory_equal(a.norm.data, b.norm.data, a.norm.size);
  assert_non_null(memmem(a.norm.data, a.norm.size, "priority", 8));
  assert_non_null(memmem(a.norm.data, a.norm.size, "normal", 6));
  msgpack_sbuffer_destroy(&sb);
  done(&a);
  done(&b);
}

static int decode_raw(const void *buf, size_t len, lx_error_t *e) {
  msgpack_zone zone;
  msgpack_sbuffer norm;
  lx_event_t ev;
  msgpack_zone_init(&zone, 1024);
  msgpack_sbuffer_init(&norm);
  int rc = lx_event_decode(buf, len, &ctx, &zone, &ev, &norm, e);
  msgpack_zone_destroy(&zone);
  msgpack_sbuffer_destroy(&norm);
  return rc;
}

static void test_structural_attacks(void **state) {
  lx_error_t e;
  /* Empty, not a map, truncated, trailing bytes, reserved byte. */
  assert_int_equal(decode_raw("", 0, &e), LX_EDECODE);
  assert_int_equal(decode_raw("\x01", 1, &e), LX_EDECODE);
  assert_int_equal(decode_raw("\x81\xa1v", 3, &e), LX_EDECODE);
  assert_int_equal(decode_raw("\x80\x01", 2, &e), LX_EDECODE);
  assert_int_equal(decode_raw("\x81\xc1\x01", 3, &e), LX_EDECODE);
  /* An array32 claiming 2^31 elements in 8 bytes: refused before msgpack-c
   * can reserve 32 GiB for it. */
  assert_int_equal(decode_raw("\x81\xa1x\xdd\x80\x00\x00\x00", 8, &e), LX_EDECODE);
  assert_non_null(strstr(e.msg, "truncated"));
  /* A str32 claiming 4 GiB. */
  assert_int_equal(decode_raw("\x81\xa1x\xdb\xff\xff\xff\xff", 8, &e), LX_EDECODE);
  /* A map with a non-string key, and one with a repeated key. */
  assert_int_equal(decode_raw("\x81\x01\x01", 3, &e), LX_EDECODE);
  assert_int_equal(decode_raw("\x82\xa1v\x01\xa1v\x01", 7, &e), LX_EDECODE);
  assert_non_null(strstr(e.msg, "repeated"));
  /* Empty keys (msgpack-c gives them a NULL pointer), found by fuzzing:
   * one is an unknown key, two are a repeated key; neither may crash. */
  assert_int_equal(decode_raw("\x82\xa0\x00\xa1v\x01", 6, &e), LX_ESCHEMA);
  assert_int_equal(decode_raw("\x82\xa0\x00\xa0\x01", 5, &e), LX_EDECODE);
  /* Nesting deeper than the limit. */
  uint8_t deep[64];
  size_t n = 0;
  for (int i = 0; i < 20; i++) {
    deep[n++] = 0x81;
    deep[n++] = 0xa1;
    deep[n++] = 'k';
  }
  deep[n++] = 0x01;
  assert_int_equal(decode_raw(deep, n, &e), LX_EDECODE);
  assert_non_null(strstr(e.msg, "nested"));
}

static void test_too_big(void **state) {
  static uint8_t big[LX_MSG_MAX + 1];
  lx_error_t e;
  memset(big, 0, sizeof big);
  assert_int_equal(decode_raw(big, sizeof big, &e), LX_ETOOBIG);
}

static void test_invalid_utf8(void **state) {
  kv_t env[] = {{"type", 's', "visit", 0}, END};
  const char *bad[] = {"\xff", "\xc0\xaf", "\xed\xa0\x80", "\xe4\xb8", "\xf4\x90\x80\x80"};
  for (int i = 0; i < 5; i++) {
    kv_t body[] = {{"note", 's', bad[i], 0}, END};
    decoded_t d;
    decode_kv(&d, body_visit, env, body);
    assert_int_equal(d.rc, LX_ESCHEMA);
    assert_non_null(strstr(d.err.msg, "UTF-8"));
    done(&d);
  }
  kv_t good[] = {{"note", 's', "东园社区 ok", 0}, END};
  decoded_t d;
  decode_kv(&d, body_visit, env, good);
  assert_int_equal(d.rc, 0);
  done(&d);
}

/* The reply to a rejected event carries the id when it could be read. */
static void test_id_echoed_on_error(void **state) {
  kv_t env[] = {{"type", 's', "visit", 0}, END};
  kv_t body[] = {{"mode", 's', "nope", 0}, END};
  decoded_t d;
  decode_kv(&d, body_visit, env, body);
  assert_int_equal(d.rc, LX_ESCHEMA);
  assert_int_equal(d.ev.id.n, strlen("01JD7Y3ZKQ8W5N2M4P6R8T0V2X"));
  done(&d);
}

static void test_stored_parse(void **state) {
  kv_t env[] = {{"type", 's', "resolution", 0}, END};
  decoded_t d;
  decode_kv(&d, body_resolution, env, NULL);
  assert_int_equal(d.rc, 0);
  lx_event_t ev;
  msgpack_zone z;
  msgpack_zone_init(&z, 1024);
  assert_int_equal(lx_event_parse_stored((const uint8_t *)d.norm.data, d.norm.size, &z, &ev), 0);
  assert_int_equal(ev.type, LX_EV_RESOLUTION);
  assert_int_equal(ev.outcome, LX_ST_RESOLVED);
  assert_int_equal(ev.appeal.n, 4);
  msgpack_zone_destroy(&z);
  done(&d);
}

/* A plugin type's body: scalars, and lists and maps of them (a quota's
 * `behind`); ext values and bad UTF-8 inside are refused under the body
 * key, a non-string key as anywhere in a frame, and nesting past the frame's depth limit is E_DECODE. */
static bool quota_type(void *arg, const char *name, size_t len) {
  return len == 5 && memcmp(name, "quota", 5) == 0;
}

static int plugin_event(int variant, lx_error_t *err) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_zone z;
  lx_event_t ev;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 7);
  for (const kv_t *kv = env_base; kv->key; kv++)
    if (strcmp(kv->key, "type") != 0)
      pack_kv(&pk, kv);
  lx_mp_pack_cstr(&pk, "type");
  lx_mp_pack_cstr(&pk, "quota");
  lx_mp_pack_cstr(&pk, "body");
  msgpack_pack_map(&pk, 2);
  lx_mp_pack_cstr(&pk, "year");
  msgpack_pack_int(&pk, 2026);
  lx_mp_pack_cstr(&pk, "behind");
  msgpack_pack_array(&pk, 1);
  switch (variant) {
  case 0: /* [{actor: "c1", days: 3}] */
    msgpack_pack_map(&pk, 2);
    lx_mp_pack_cstr(&pk, "actor");
    lx_mp_pack_cstr(&pk, "c1");
    lx_mp_pack_cstr(&pk, "days");
    msgpack_pack_int(&pk, 3);
    break;
  case 1: msgpack_pack_ext_with_body(&pk, "x", 1, 1); break;
  case 2: msgpack_pack_map(&pk, 1); msgpack_pack_int(&pk, 1); msgpack_pack_int(&pk, 2); break;
  case 3: msgpack_pack_str_with_body(&pk, "\xff", 1); break;
  default: msgpack_pack_array(&pk, 1); msgpack_pack_array(&pk, 1); msgpack_pack_int(&pk, 1); break;
  }
  lx_schema_ctx_t ctx = {.allow_daemon_types = true, .plugin_type = quota_type};
  msgpack_zone_init(&z, 1024);
  int rc = lx_event_decode((const uint8_t *)sb.data, sb.size, &ctx, &z, &ev, NULL, err);
  msgpack_zone_destroy(&z);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

static void test_plugin_bodies(void **state) {
  lx_error_t err;
  assert_int_equal(plugin_event(0, &err), 0);
  /* an ext value and bad UTF-8 inside: E_SCHEMA under the body key */
  for (int v = 1; v <= 3; v += 2) {
    memset(&err, 0, sizeof err);
    assert_int_equal(plugin_event(v, &err), LX_ESCHEMA);
    assert_non_null(strstr(err.msg, "body.behind"));
  }
  /* a non-string key: E_DECODE, as anywhere in a frame (PROTOCOL.md) */
  assert_int_equal(plugin_event(2, &err), LX_EDECODE);
  assert_int_equal(plugin_event(4, &err), LX_EDECODE);
}

static void test_names(void **state) {
  assert_string_equal(lx_strerror(LX_ETOOBIG), "E_TOO_BIG");
  assert_string_equal(lx_strerror(LX_ENOTFOUND), "E_NOTFOUND");
  assert_string_equal(lx_strerror(-99), "E_INTERNAL");
  assert_int_equal(lx_ev_type_parse("feedback", 8), LX_EV_FEEDBACK);
  assert_int_equal(lx_ev_type_parse("feed", 4), LX_EV_NONE);
  assert_string_equal(lx_status_name(LX_ST_EXPLAINED), "explained");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_error_cases),    cmocka_unit_test(test_valid_types),
      cmocka_unit_test(test_normalisation),  cmocka_unit_test(test_structural_attacks),
      cmocka_unit_test(test_too_big),        cmocka_unit_test(test_invalid_utf8),
      cmocka_unit_test(test_id_echoed_on_error), cmocka_unit_test(test_stored_parse),
      cmocka_unit_test(test_names), cmocka_unit_test(test_plugin_bodies),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
