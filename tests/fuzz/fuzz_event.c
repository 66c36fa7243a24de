/* SPDX-License-Identifier: MIT
 *
 * fuzz_event.c: libFuzzer harness for the event decoder (proto/event.c,
 * proto/mp_check.c), the path every ingest frame takes.
 *
 * Input: one mode byte, then the frame. Bit 0 of the mode byte picks the
 * schema context: clear, a client's (the sample config's communities and
 * categories); set, the daemon's own (allow_daemon_types, with the escalate
 * plugin's types "warning" and "unanswered" declared), so escalation,
 * checkpoint and plugin bodies are reached too.
 *
 * Besides "no sanitizer report", each input must keep these promises:
 *  - failure: the code returned is err.code, one of the codes a decode can
 *    give (E_DECODE, E_TOO_BIG, E_VERSION, E_SCHEMA, E_TYPE, E_UNIT), and
 *    err.msg is a non-empty NUL-terminated string; an echoed id is readable;
 *  - success: the event is of a type the context allows, its unit passes
 *    unit_ok, and its normalised bytes are one well-formed MessagePack map
 *    that lx_event_parse_stored reads back to the same fields, and that
 *    decodes again with the same context to exactly the same bytes
 *    (normalisation is idempotent: retries and the hash chain rely on it).
 */
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "fuzz_util.h"
#include "lx_proto.h"

static lx_config_t g_cfg;

static bool unit_ok(void *arg, const char *path, size_t len, bool community) {
  const lx_config_t *cfg = arg;
  int i = lx_config_find_unit(cfg, path, len);
  return i >= 0 && (!community || cfg->units[i].tier == LX_TIER_COMMUNITY);
}

static bool category_ok(void *arg, const char *code, size_t len) {
  return lx_config_find_category(arg, code, len) >= 0;
}

static bool plugin_type(void *arg, const char *name, size_t len) {
  static const char *const types[] = {"warning", "unanswered", NULL};
  for (int i = 0; types[i]; i++)
    if (strlen(types[i]) == len && memcmp(types[i], name, len) == 0)
      return true;
  return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char file[PATH_MAX], *err = NULL;
  fuzz_sample_config(file, sizeof file);
  if (lx_config_load(file, &g_cfg, &err)) {
    fprintf(stderr, "fuzz_event: cannot load %s (set LX_SOURCE_DIR):\n%s", file,
            err ? err : "");
    free(err);
    abort();
  }
  return 0;
}

/* Reads every byte of a slice, so ASan sees a slice that points outside
 * live memory; returns a value the optimiser cannot drop. */
static volatile unsigned g_sink;
static void touch(lx_str_t s) {
  unsigned h = 0;
  for (size_t i = 0; i < s.n; i++)
    h = h * 31 + (unsigned char)s.p[i];
  g_sink += h;
}

static bool slice_eq(lx_str_t a, lx_str_t b) {
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static void check_failure(int rc, const lx_error_t *e, const lx_event_t *ev) {
  FUZZ_CHECK(rc == e->code, "returned %d but err.code is %d", rc, e->code);
  FUZZ_CHECK(rc == LX_EDECODE || rc == LX_ETOOBIG || rc == LX_EVERSION || rc == LX_ESCHEMA ||
                 rc == LX_ETYPE || rc == LX_EUNIT,
             "unexpected code %d", rc);
  FUZZ_CHECK(memchr(e->msg, 0, sizeof e->msg) != NULL, "err.msg is not NUL-terminated");
  FUZZ_CHECK(e->msg[0] != 0, "err.msg is empty for %s", lx_strerror(rc));
  if (ev->id.p) {
    FUZZ_CHECK(ev->id.n <= LX_STR_MAX, "echoed id of %zu bytes", ev->id.n);
    touch(ev->id);
  }
}

static void check_fields(const lx_event_t *a, const lx_event_t *b) {
  FUZZ_CHECK(a->type == b->type, "type %d read back as %d", a->type, b->type);
  FUZZ_CHECK(slice_eq(a->type_name, b->type_name), "type name changed");
  FUZZ_CHECK(slice_eq(a->id, b->id), "id changed");
  FUZZ_CHECK(a->at == b->at, "at changed");
  FUZZ_CHECK(slice_eq(a->unit, b->unit), "unit changed");
  FUZZ_CHECK(slice_eq(a->actor, b->actor), "actor changed");
  FUZZ_CHECK(slice_eq(a->by, b->by), "by changed");
  FUZZ_CHECK(slice_eq(a->appeal, b->appeal), "body.appeal changed");
  FUZZ_CHECK(slice_eq(a->category, b->category), "body.category changed");
  FUZZ_CHECK(a->urgent == b->urgent, "priority changed");
  FUZZ_CHECK(a->outcome == b->outcome, "outcome changed");
  FUZZ_CHECK(a->satisfied == b->satisfied, "satisfied changed");
  FUZZ_CHECK(a->esc_from == b->esc_from && a->esc_to == b->esc_to, "escalation tiers changed");
  FUZZ_CHECK(a->esc_deadline == b->esc_deadline && a->esc_next == b->esc_next,
             "escalation times changed");
  FUZZ_CHECK(slice_eq(a->esc_kind, b->esc_kind), "escalation kind changed");
}

static void check_success(const lx_schema_ctx_t *ctx, const lx_event_t *ev,
                          const msgpack_sbuffer *norm) {
  lx_error_t e;
  FUZZ_CHECK(ev->type > LX_EV_NONE && ev->type <= LX_EV_PLUGIN, "type %d", ev->type);
  FUZZ_CHECK(ctx->allow_daemon_types || ev->type <= LX_EV_FEEDBACK,
             "a client may not send type %d", ev->type);
  FUZZ_CHECK(ev->id.p && ev->id.n >= LX_ID_MIN && ev->id.n <= LX_ID_MAX, "id of %zu bytes",
             ev->id.n);
  FUZZ_CHECK(ev->actor.n >= 1 && ev->actor.n <= LX_ACTOR_MAX, "actor of %zu bytes", ev->actor.n);
  FUZZ_CHECK(ev->appeal.n <= LX_APPEAL_ID_MAX, "appeal of %zu bytes", ev->appeal.n);
  FUZZ_CHECK(unit_ok(ctx->arg, ev->unit.p, ev->unit.n, ev->type < LX_EV_ESCALATION),
             "unit \"%.*s\" accepted", (int)ev->unit.n, ev->unit.p);
  touch(ev->id), touch(ev->type_name), touch(ev->actor), touch(ev->by), touch(ev->appeal);
  touch(ev->category), touch(ev->esc_kind);

  FUZZ_CHECK(norm->size > 0 && norm->size <= 2 * LX_MSG_MAX, "normalised to %zu bytes",
             norm->size);
  FUZZ_CHECK(lx_mp_check((const uint8_t *)norm->data, norm->size, 4, &e) == 0,
             "normalised bytes fail the pre-check: %s", e.msg);

  /* Stored bytes read back to the same event. */
  msgpack_zone z2;
  lx_event_t ev2;
  msgpack_zone_init(&z2, 1024);
  int rc = lx_event_parse_stored((const uint8_t *)norm->data, norm->size, &z2, &ev2);
  FUZZ_CHECK(rc == 0, "lx_event_parse_stored refused the normalised event (%d)", rc);
  check_fields(ev, &ev2);
  msgpack_zone_destroy(&z2);

  /* Normalising the normalised event changes nothing. */
  msgpack_zone z3;
  msgpack_sbuffer norm2;
  lx_event_t ev3;
  msgpack_zone_init(&z3, 1024);
  msgpack_sbuffer_init(&norm2);
  memset(&e, 0xa5, sizeof e);
  rc = lx_event_decode((const uint8_t *)norm->data, norm->size, ctx, &z3, &ev3, &norm2, &e);
  FUZZ_CHECK(rc == 0, "the normalised event is refused: %s %.*s", lx_strerror(rc),
             (int)sizeof e.msg, e.msg);
  FUZZ_CHECK(norm2.size == norm->size && memcmp(norm2.data, norm->data, norm->size) == 0,
             "normalisation is not idempotent (%zu bytes, then %zu)", norm->size, norm2.size);
  check_fields(ev, &ev3);
  msgpack_sbuffer_destroy(&norm2);
  msgpack_zone_destroy(&z3);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  lx_schema_ctx_t ctx = {unit_ok, category_ok, &g_cfg, false, NULL};
  if (data[0] & 1) {
    ctx.allow_daemon_types = true;
    ctx.plugin_type = plugin_type;
  }
  /* The frame keeps libFuzzer's exact-size allocation: its end is the
   * buffer's end, so any read past it is an ASan report. */
  const uint8_t *buf = data + 1;
  size_t len = size - 1;

  msgpack_zone zone;
  msgpack_sbuffer norm;
  lx_event_t ev;
  lx_error_t err;
  msgpack_zone_init(&zone, 2048);
  msgpack_sbuffer_init(&norm);
  memset(&err, 0xa5, sizeof err); /* so an unterminated message shows */
  int rc = lx_event_decode(buf, len, &ctx, &zone, &ev, &norm, &err);
  if (fuzz_verbose())
    fprintf(stderr, "fuzz_event: %s context: %s%s%.*s\n", ctx.allow_daemon_types ? "daemon" : "client",
            rc ? lx_strerror(rc) : "accepted", rc ? " " : "", rc ? (int)sizeof err.msg : 0,
            err.msg);
  if (rc)
    check_failure(rc, &err, &ev);
  else
    check_success(&ctx, &ev, &norm);
  msgpack_sbuffer_destroy(&norm);
  msgpack_zone_destroy(&zone);
  return 0;
}
