/* SPDX-License-Identifier: MIT
 *
 * event.c: decode, validate and normalise one event (PROTOCOL.md "Events").
 *
 * Design: each map (the envelope and each type's body) is described by a
 * table of fields: key, kind, required, bounds. One walker checks a map
 * against its table, in three steps: every key of the map must be in the
 * table (else E_SCHEMA naming it), every required key must be present, and
 * every value must have the field's kind and range, checked before it is
 * read. While it checks, it re-packs the fields in table order, with
 * defaults filled: that is the normalised event, so the same content always
 * gives the same bytes, whatever key order or integer width a client used.
 */
#include <string.h>

#include "lx_proto.h"

#define AT_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define MINUTES_MAX 100000
#define EV_MAX_DEPTH 4

enum kind {
  K_STR,    /* UTF-8 string, length min..max */
  K_ID,     /* printable ASCII without space, length min..max */
  K_ENUM,   /* one of enums[] */
  K_UINT,   /* unsigned integer, min..max */
  K_INT,    /* signed integer, min..max (as int64) */
  K_INTNIL, /* K_INT or nil */
  K_BOOL,
  K_BIN,    /* binary of exactly min bytes */
  K_STRLIST, /* a list of min..max UTF-8 strings, each 1..LX_STR_MAX bytes */
  K_MAP,    /* the body: checked by the type's own table */
};

/* Where a validated value goes in lx_event_t. */
enum slot {
  S_NONE, S_ID, S_AT, S_UNIT, S_ACTOR, S_BY, S_APPEAL, S_CATEGORY,
  S_PRIORITY, S_OUTCOME, S_SATISFIED, S_ESC_KIND, S_ESC_FROM, S_ESC_TO,
  S_ESC_DEADLINE, S_ESC_NEXT, S_TYPE, S_V, S_CFG_HASH,
};

typedef struct field {
  const char *key;
  enum kind kind;
  bool required;
  int64_t min, max;
  const char *const *enums; /* NULL-terminated, for K_ENUM */
  enum slot slot;
  const char *dflt;         /* default for an absent K_ENUM, packed as given */
} field_t;

typedef struct schema {
  const char *name; /* "" for the envelope, "body" for bodies */
  const field_t *fields;
  int n;
} schema_t;

static const char *const visit_modes[] = {"periodic", "fixed", "roving", "appointment", "pairing", NULL};
static const char *const priorities[] = {"normal", "urgent", NULL};
static const char *const outcomes[] = {"resolved", "explained", "referred", NULL};
static const char *const esc_kinds[] = {"escalated", "overdue", "reminder", NULL};
static const char *const tiers[] = {"community", "township", "county", NULL};

#define STR(k, req, slot) {k, K_STR, req, req ? 1 : 0, LX_STR_MAX, NULL, slot, NULL}
#define APPEAL_ID(req) {"appeal", K_STR, req, 1, LX_APPEAL_ID_MAX, NULL, S_APPEAL, NULL}

static const field_t envelope_fields[] = {
    {"v", K_UINT, true, 0, INT64_MAX, NULL, S_V, NULL},
    {"id", K_ID, true, LX_ID_MIN, LX_ID_MAX, NULL, S_ID, NULL},
    {"type", K_STR, true, 1, 32, NULL, S_TYPE, NULL},
    {"at", K_INT, true, 0, AT_MAX, NULL, S_AT, NULL},
    {"unit", K_STR, true, 1, LX_STR_MAX, NULL, S_UNIT, NULL},
    {"actor", K_STR, true, 1, LX_ACTOR_MAX, NULL, S_ACTOR, NULL},
    {"by", K_STR, false, 1, LX_ACTOR_MAX, NULL, S_BY, NULL},
    {"body", K_MAP, true, 0, 0, NULL, S_NONE, NULL},
};

static const field_t visit_fields[] = {
    STR("household", true, S_NONE),
    {"mode", K_ENUM, true, 0, 0, visit_modes, S_NONE, NULL},
    {"minutes", K_UINT, false, 0, MINUTES_MAX, NULL, S_NONE, NULL},
    STR("note", false, S_NONE),
    APPEAL_ID(false),
};

static const field_t appeal_fields[] = {
    APPEAL_ID(true),
    STR("household", true, S_NONE),
    {"category", K_STR, true, 1, 64, NULL, S_CATEGORY, NULL},
    {"priority", K_ENUM, false, 0, 0, priorities, S_PRIORITY, "normal"},
    STR("summary", true, S_NONE),
};

static const field_t resolution_fields[] = {
    APPEAL_ID(true),
    {"outcome", K_ENUM, true, 0, 0, outcomes, S_OUTCOME, NULL},
    STR("note", true, S_NONE),
};

static const field_t feedback_fields[] = {
    APPEAL_ID(true),
    {"satisfied", K_BOOL, true, 0, 0, NULL, S_SATISFIED, NULL},
    STR("note", false, S_NONE),
};

static const field_t escalation_fields[] = {
    APPEAL_ID(true),
    {"kind", K_ENUM, true, 0, 0, esc_kinds, S_ESC_KIND, NULL},
    {"from", K_ENUM, true, 0, 0, tiers, S_ESC_FROM, NULL},
    {"to", K_ENUM, true, 0, 0, tiers, S_ESC_TO, NULL},
    {"deadline", K_INT, true, 0, AT_MAX, NULL, S_ESC_DEADLINE, NULL},
    {"next", K_INTNIL, true, 0, AT_MAX, NULL, S_ESC_NEXT, NULL},
};

static const field_t checkpoint_fields[] = {
    {"seq", K_UINT, true, 0, INT64_MAX, NULL, S_NONE, NULL},
    {"hash", K_BIN, true, 32, 32, NULL, S_NONE, NULL},
    {"key", K_BIN, true, 32, 32, NULL, S_NONE, NULL},
    {"sig", K_BIN, true, 64, 64, NULL, S_NONE, NULL},
};

static const field_t config_fields[] = {
    {"hash", K_BIN, true, 32, 32, NULL, S_CFG_HASH, NULL},
    {"changes", K_STRLIST, true, 0, 4096, NULL, S_NONE, NULL},
};

#define SCHEMA(name, f) {name, f, (int)(sizeof f / sizeof f[0])}
static const schema_t envelope = SCHEMA("", envelope_fields);
static const schema_t bodies[] = {
    [LX_EV_VISIT] = SCHEMA("body", visit_fields),
    [LX_EV_APPEAL] = SCHEMA("body", appeal_fields),
    [LX_EV_RESOLUTION] = SCHEMA("body", resolution_fields),
    [LX_EV_FEEDBACK] = SCHEMA("body", feedback_fields),
    [LX_EV_ESCALATION] = SCHEMA("body", escalation_fields),
    [LX_EV_CHECKPOINT] = SCHEMA("body", checkpoint_fields),
    [LX_EV_CONFIG] = SCHEMA("body", config_fields),
};

/* A UTF-8 check that refuses overlong forms, surrogates and values past
 * U+10FFFF, so a stored string is always text any client can decode. */
static bool utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    /* Most text here is ASCII: skip eight such bytes at a time. */
    if (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    uint8_t c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) { i++; continue; }
    else if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

/* Every map anywhere in the message must have string keys, none repeated. */
static int check_keys(const msgpack_object *o, lx_error_t *e) {
  if (o->type == MSGPACK_OBJECT_ARRAY) {
    for (uint32_t i = 0; i < o->via.array.size; i++)
      if (check_keys(&o->via.array.ptr[i], e))
        return e->code;
    return 0;
  }
  if (o->type != MSGPACK_OBJECT_MAP)
    return 0;
  const msgpack_object_kv *kv = o->via.map.ptr;
  for (uint32_t i = 0; i < o->via.map.size; i++) {
    if (kv[i].key.type != MSGPACK_OBJECT_STR)
      return lx_fail(e, LX_EDECODE, "map key %u is not a string", i);
    for (uint32_t j = 0; j < i; j++)
      if (kv[j].key.via.str.size == kv[i].key.via.str.size &&
          (kv[i].key.via.str.size == 0 ||
           memcmp(kv[j].key.via.str.ptr, kv[i].key.via.str.ptr, kv[i].key.via.str.size) == 0))
        return lx_fail(e, LX_EDECODE, "repeated map key \"%.*s\"",
                       (int)(kv[i].key.via.str.size > 64 ? 64 : kv[i].key.via.str.size),
                       kv[i].key.via.str.ptr);
    if (check_keys(&kv[i].val, e))
      return e->code;
  }
  return 0;
}

static int enum_index(const char *const *enums, const msgpack_object *o) {
  for (int i = 0; enums[i]; i++)
    if (lx_mp_str_eq(o, enums[i]))
      return i;
  return -1;
}

static void fill(lx_event_t *ev, enum slot slot, const msgpack_object *o, int idx) {
  lx_str_t s = {0};
  if (o->type == MSGPACK_OBJECT_STR)
    s = (lx_str_t){o->via.str.ptr, o->via.str.size};
  switch (slot) {
  case S_ID: ev->id = s; break;
  case S_UNIT: ev->unit = s; break;
  case S_ACTOR: ev->actor = s; break;
  case S_BY: ev->by = s; break;
  case S_APPEAL: ev->appeal = s; break;
  case S_CATEGORY: ev->category = s; break;
  case S_ESC_KIND: ev->esc_kind = s; break;
  case S_AT: ev->at = o->via.i64; break;
  case S_PRIORITY: ev->urgent = idx == 1; break;
  case S_OUTCOME: ev->outcome = LX_ST_RESOLVED + idx; break;
  case S_SATISFIED: ev->satisfied = o->via.boolean; break;
  case S_ESC_FROM: ev->esc_from = idx + 1; break;
  case S_ESC_TO: ev->esc_to = idx + 1; break;
  case S_ESC_DEADLINE: ev->esc_deadline = o->via.i64; break;
  case S_ESC_NEXT: ev->esc_next = o->type == MSGPACK_OBJECT_NIL ? -1 : o->via.i64; break;
  case S_CFG_HASH: ev->cfg_hash = (lx_str_t){o->via.bin.ptr, o->via.bin.size}; break;
  default: break;
  }
}

/* Checks one value against its field: types, ranges and enums; with
 * `text`, also the bytes of strings (UTF-8, an id's characters), which a
 * stored event need not have checked again. Returns 0 or E_SCHEMA naming it. */
static int check_value(const schema_t *sc, const field_t *f, const msgpack_object *o,
                       int *idx, bool text, lx_error_t *e) {
  const char *dot = sc->name[0] ? "." : "";
  switch (f->kind) {
  case K_STR:
  case K_ID:
  case K_ENUM:
    if (o->type != MSGPACK_OBJECT_STR)
      return lx_fail(e, LX_ESCHEMA, "%s%s%s: expected a string", sc->name, dot, f->key);
    if (f->kind == K_ENUM) {
      if ((*idx = enum_index(f->enums, o)) < 0)
        return lx_fail(e, LX_ESCHEMA, "%s%s%s: \"%.*s\" is not one of the allowed values",
                       sc->name, dot, f->key, (int)(o->via.str.size > 32 ? 32 : o->via.str.size),
                       o->via.str.ptr);
      return 0;
    }
    if ((int64_t)o->via.str.size < f->min || (int64_t)o->via.str.size > f->max)
      return lx_fail(e, LX_ESCHEMA, "%s%s%s: length %u is outside %lld..%lld bytes", sc->name,
                     dot, f->key, o->via.str.size, (long long)f->min, (long long)f->max);
    if (!text)
      return 0;
    if (!utf8_ok((const uint8_t *)o->via.str.ptr, o->via.str.size))
      return lx_fail(e, LX_ESCHEMA, "%s%s%s: not valid UTF-8", sc->name, dot, f->key);
    if (f->kind == K_ID)
      for (uint32_t i = 0; i < o->via.str.size; i++)
        if (o->via.str.ptr[i] <= 0x20 || o->via.str.ptr[i] >= 0x7f)
          return lx_fail(e, LX_ESCHEMA, "%s: only printable ASCII without spaces", f->key);
    return 0;
  case K_UINT:
  case K_INT:
  case K_INTNIL:
    if (f->kind == K_INTNIL && o->type == MSGPACK_OBJECT_NIL)
      return 0;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
      if (o->via.u64 > (uint64_t)f->max)
        return lx_fail(e, LX_ESCHEMA, "%s%s%s: %llu is above the maximum %lld", sc->name, dot,
                       f->key, (unsigned long long)o->via.u64, (long long)f->max);
      return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
      return lx_fail(e, LX_ESCHEMA, "%s%s%s: must not be negative", sc->name, dot, f->key);
    return lx_fail(e, LX_ESCHEMA, "%s%s%s: expected an integer", sc->name, dot, f->key);
  case K_BOOL:
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
      return lx_fail(e, LX_ESCHEMA, "%s%s%s: expected true or false", sc->name, dot, f->key);
    return 0;
  case K_BIN:
    if (o->type != MSGPACK_OBJECT_BIN || (int64_t)o->via.bin.size != f->min)
      return lx_fail(e, LX_ESCHEMA, "%s%s%s: expected %lld bytes of binary", sc->name, dot,
                     f->key, (long long)f->min);
    return 0;
  case K_MAP:
    if (o->type != MSGPACK_OBJECT_MAP)
      return lx_fail(e, LX_ESCHEMA, "%s%s%s: expected a map", sc->name, dot, f->key);
    return 0;
  case K_STRLIST:
    if (o->type != MSGPACK_OBJECT_ARRAY || (int64_t)o->via.array.size > f->max)
      return lx_fail(e, LX_ESCHEMA, "%s%s%s: expected a list of at most %lld strings", sc->name,
                     dot, f->key, (long long)f->max);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
      const msgpack_object *x = &o->via.array.ptr[i];
      if (x->type != MSGPACK_OBJECT_STR || x->via.str.size == 0 || x->via.str.size > LX_STR_MAX ||
          !utf8_ok((const uint8_t *)x->via.str.ptr, x->via.str.size))
        return lx_fail(e, LX_ESCHEMA, "%s%s%s[%u]: expected a UTF-8 string of 1 to %d bytes",
                       sc->name, dot, f->key, i, LX_STR_MAX);
    }
    return 0;
  }
  return 0;
}

#define FIELDS_MAX 16

/* Puts each value of the map in the slot of its field, in one pass; a key
 * the table does not list is E_SCHEMA. (Keys are already known to be
 * strings and unique.) */
static int fill_slots(const schema_t *sc, const msgpack_object *map,
                      const msgpack_object *slot[FIELDS_MAX], lx_error_t *e) {
  for (uint32_t i = 0; i < map->via.map.size; i++) {
    const msgpack_object *k = &map->via.map.ptr[i].key;
    int j = 0;
    for (; j < sc->n; j++)
      if (lx_mp_str_eq(k, sc->fields[j].key))
        break;
    if (j == sc->n)
      return lx_fail(e, LX_ESCHEMA, "%s%s%.*s: unknown key", sc->name, sc->name[0] ? "." : "",
                     (int)(k->via.str.size > 64 ? 64 : k->via.str.size), k->via.str.ptr);
    slot[j] = &map->via.map.ptr[i].val;
  }
  return 0;
}

static int walk_map(const schema_t *sc, const msgpack_object *map, lx_event_t *ev,
                    msgpack_packer *pk, const lx_schema_ctx_t *ctx, lx_error_t *e);

/* A value in a plugin type's body: a scalar, or (depth > 0) a list or a
 * map with string keys whose values are values one level down. A ranking
 * holds a list of maps of scalars (its rows), maps and lists of scalars. */
static bool plugin_value_ok(const msgpack_object *o, int depth) {
  switch (o->type) {
  case MSGPACK_OBJECT_EXT:
    return false;
  case MSGPACK_OBJECT_STR:
    return utf8_ok((const uint8_t *)o->via.str.ptr, o->via.str.size);
  case MSGPACK_OBJECT_ARRAY:
    for (uint32_t i = 0; i < o->via.array.size; i++)
      if (depth == 0 || !plugin_value_ok(&o->via.array.ptr[i], depth - 1))
        return false;
    return true;
  case MSGPACK_OBJECT_MAP:
    for (uint32_t i = 0; i < o->via.map.size; i++)
      if (depth == 0 || o->via.map.ptr[i].key.type != MSGPACK_OBJECT_STR ||
          !plugin_value_ok(&o->via.map.ptr[i].val, depth - 1))
        return false;
    return true;
  default:
    return true;
  }
}

/* A plugin type's body, packed as given (plugins are deterministic, so the
 * bytes are too). */
static int walk_plugin_body(const msgpack_object *body, lx_event_t *ev, msgpack_packer *pk,
                            const lx_schema_ctx_t *ctx, lx_error_t *e) {
  for (uint32_t i = 0; i < body->via.map.size; i++) {
    const msgpack_object_kv *kv = &body->via.map.ptr[i];
    int t = kv->val.type;
    if (!ctx->stored && !plugin_value_ok(&kv->val, 2))
      return lx_fail(e, LX_ESCHEMA, "body.%.*s: expected a scalar, or a list or map of them",
                     (int)kv->key.via.str.size, kv->key.via.str.ptr);
    if (lx_mp_str_eq(&kv->key, "appeal")) {
      if (t != MSGPACK_OBJECT_STR || kv->val.via.str.size == 0 ||
          kv->val.via.str.size > LX_APPEAL_ID_MAX)
        return lx_fail(e, LX_ESCHEMA, "body.appeal: expected a string of 1 to %d bytes",
                       LX_APPEAL_ID_MAX);
      ev->appeal = (lx_str_t){kv->val.via.str.ptr, kv->val.via.str.size};
    }
  }
  if (pk)
    msgpack_pack_object(pk, *body);
  return 0;
}

static int walk_body(const msgpack_object *body, lx_event_t *ev, msgpack_packer *pk,
                     const lx_schema_ctx_t *ctx, lx_error_t *e) {
  if (ev->type == LX_EV_PLUGIN)
    return walk_plugin_body(body, ev, pk, ctx, e);
  int rc = walk_map(&bodies[ev->type], body, ev, pk, ctx, e);
  if (rc)
    return rc;
  if (ev->category.n && ctx->category_ok &&
      !ctx->category_ok(ctx->arg, ev->category.p, ev->category.n))
    return lx_fail(e, LX_ESCHEMA, "body.category: \"%.*s\" is not a configured category",
                   (int)(ev->category.n > 64 ? 64 : ev->category.n), ev->category.p);
  return 0;
}

static int walk_map(const schema_t *sc, const msgpack_object *map, lx_event_t *ev,
                    msgpack_packer *pk, const lx_schema_ctx_t *ctx, lx_error_t *e) {
  const msgpack_object *slot[FIELDS_MAX];
  /* Only the table's slots: zeroing all FIELDS_MAX made the compiler emit a
   * `rep stos`, whose start-up cost showed in every log scan's profile. */
  memset(slot, 0, (size_t)sc->n * sizeof *slot);
  int rc = fill_slots(sc, map, slot, e);
  if (rc)
    return rc;
  int present = 0;
  for (int i = 0; i < sc->n; i++)
    present += (slot[i] != NULL || sc->fields[i].dflt != NULL) &&
               !(ctx->drop_by && sc->fields[i].slot == S_BY);
  if (pk)
    msgpack_pack_map(pk, present);
  for (int i = 0; i < sc->n; i++) {
    const field_t *f = &sc->fields[i];
    const msgpack_object *o = slot[i];
    int idx = -1;
    if (!o) {
      if (f->required)
        return lx_fail(e, LX_ESCHEMA, "%s%s%s: required", sc->name, sc->name[0] ? "." : "",
                       f->key);
      if (f->dflt && pk) {
        lx_mp_pack_cstr(pk, f->key);
        lx_mp_pack_cstr(pk, f->dflt);
      }
      continue;
    }
    if ((rc = check_value(sc, f, o, &idx, !ctx->stored, e)))
      return rc;
    fill(ev, f->slot, o, idx);
    if (f->slot == S_BY && ctx->drop_by)
      continue; /* read, but left out of the normalised bytes */
    if (pk)
      lx_mp_pack_cstr(pk, f->key);
    if (f->kind == K_MAP)
      rc = walk_body(o, ev, pk, ctx, e);
    else if (pk)
      msgpack_pack_object(pk, *o);
    if (rc)
      return rc;
  }
  return 0;
}

/* The version and type come first: a client of another protocol version
 * should hear E_VERSION, not a list of the keys it got wrong. */
static int check_head(const msgpack_object *root, lx_event_t *ev, const lx_schema_ctx_t *ctx,
                      lx_error_t *e) {
  const msgpack_object *id = lx_mp_get(root, "id");
  /* Echo any readable string id in the reply, even one that breaks the id
   * rules, so the client can match the rejection to its request. */
  if (id && id->type == MSGPACK_OBJECT_STR && id->via.str.size <= LX_STR_MAX &&
      utf8_ok((const uint8_t *)id->via.str.ptr, id->via.str.size))
    ev->id = (lx_str_t){id->via.str.size ? id->via.str.ptr : "", id->via.str.size};
  const msgpack_object *v = lx_mp_get(root, "v");
  if (!v)
    return lx_fail(e, LX_ESCHEMA, "v: required");
  if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER && v->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
    return lx_fail(e, LX_ESCHEMA, "v: expected an integer");
  if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 != LX_PROTO_VERSION)
    return lx_fail(e, LX_EVERSION, "v: protocol version %lld is not supported (this daemon speaks 1)",
                   (long long)v->via.i64);
  const msgpack_object *t = lx_mp_get(root, "type");
  if (!t)
    return lx_fail(e, LX_ESCHEMA, "type: required");
  if (t->type != MSGPACK_OBJECT_STR)
    return lx_fail(e, LX_ESCHEMA, "type: expected a string");
  ev->type = lx_ev_type_parse(t->via.str.ptr, t->via.str.size);
  ev->type_name = (lx_str_t){t->via.str.ptr, t->via.str.size};
  if (ev->type == LX_EV_NONE && ctx->allow_daemon_types && ctx->plugin_type &&
      ctx->plugin_type(ctx->arg, t->via.str.ptr, t->via.str.size))
    ev->type = LX_EV_PLUGIN;
  if (ev->type == LX_EV_NONE)
    return lx_fail(e, LX_ETYPE, "type: \"%.*s\" is not an event type",
                   (int)(t->via.str.size > 32 ? 32 : t->via.str.size), t->via.str.ptr);
  if (ev->type >= LX_EV_ESCALATION && !ctx->allow_daemon_types)
    return lx_fail(e, LX_ETYPE, "type: \"%s\" events are written only by the daemon",
                   lx_ev_type_name(ev->type));
  if (lx_mp_get(root, "by") && !ctx->allow_daemon_types)
    return lx_fail(e, LX_ESCHEMA, "by: unknown key (the daemon sets it from the client's key)");
  return 0;
}

int lx_event_decode(const uint8_t *buf, size_t len, const lx_schema_ctx_t *ctx,
                    msgpack_zone *zone, lx_event_t *ev, msgpack_sbuffer *norm,
                    lx_error_t *e) {
  memset(ev, 0, sizeof *ev);
  ev->esc_next = -1;
  if (len > LX_MSG_MAX)
    return lx_fail(e, LX_ETOOBIG, "message is %zu bytes; the limit is %d", len, LX_MSG_MAX);
  if (!ctx->stored && lx_mp_check(buf, len, EV_MAX_DEPTH, e))
    return e->code;
  msgpack_object root;
  size_t off = 0;
  if (msgpack_unpack((const char *)buf, len, &off, zone, &root) != MSGPACK_UNPACK_SUCCESS)
    return lx_fail(e, LX_EDECODE, "not well-formed MessagePack");
  if (root.type != MSGPACK_OBJECT_MAP)
    return lx_fail(e, LX_EDECODE, "expected a map at the top level");
  if ((!ctx->stored && check_keys(&root, e)) || check_head(&root, ev, ctx, e))
    return e->code;
  msgpack_packer pk;
  if (norm)
    msgpack_packer_init(&pk, norm, msgpack_sbuffer_write);
  int rc = walk_map(&envelope, &root, ev, norm ? &pk : NULL, ctx, e);
  if (rc)
    return rc;
  bool community = ev->type < LX_EV_ESCALATION;
  if (ctx->unit_ok && !ctx->unit_ok(ctx->arg, ev->unit.p, ev->unit.n, community))
    return lx_fail(e, LX_EUNIT, "unit: \"%.*s\" is not a configured %s",
                   (int)(ev->unit.n > 100 ? 100 : ev->unit.n), ev->unit.p,
                   community ? "community" : "unit");
  return 0;
}

static bool any_type(void *arg, const char *name, size_t len) { return true; }

int lx_event_content(const uint8_t *buf, size_t len, msgpack_zone *zone, lx_event_t *ev,
                     msgpack_sbuffer *norm) {
  static const lx_schema_ctx_t any = {.allow_daemon_types = true, .plugin_type = any_type,
                                      .drop_by = true};
  lx_error_t e;
  return lx_event_decode(buf, len, &any, zone, ev, norm, &e) ? LX_EDECODE : 0;
}

int lx_event_parse_stored(const uint8_t *buf, size_t len, msgpack_zone *zone, lx_event_t *ev) {
  static const lx_schema_ctx_t any = {.allow_daemon_types = true, .plugin_type = any_type,
                                      .stored = true};
  lx_error_t e;
  return lx_event_decode(buf, len, &any, zone, ev, NULL, &e) ? LX_EDECODE : 0;
}

int lx_event_add_by(const uint8_t *norm, size_t len, const char *by, size_t by_len,
                    msgpack_sbuffer *out) {
  msgpack_zone zone;
  msgpack_object o;
  size_t off = 0;
  msgpack_zone_init(&zone, 1024);
  int rc = LX_EINTERNAL;
  if (msgpack_unpack((const char *)norm, len, &off, &zone, &o) == MSGPACK_UNPACK_SUCCESS &&
      o.type == MSGPACK_OBJECT_MAP) {
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, o.via.map.size + 1);
    for (uint32_t i = 0; i < o.via.map.size; i++) {
      /* `by` goes where the envelope table puts it: just before the body. */
      if (lx_mp_str_eq(&o.via.map.ptr[i].key, "body")) {
        lx_mp_pack_cstr(&pk, "by");
        lx_mp_pack_str(&pk, by, by_len);
      }
      msgpack_pack_object(&pk, o.via.map.ptr[i].key);
      msgpack_pack_object(&pk, o.via.map.ptr[i].val);
    }
    rc = 0;
  }
  msgpack_zone_destroy(&zone);
  return rc;
}
