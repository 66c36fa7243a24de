/* SPDX-License-Identifier: MIT
 *
 * lx_proto.h: the wire contract of PROTOCOL.md in code.
 *
 * Every input path of the daemon goes through here: a frame is size-checked,
 * structurally pre-checked (mp_check.c) so that no length prefix can make
 * msgpack-c allocate more than the frame could hold, unpacked, and then
 * validated field by field. Validation never reads a value before checking
 * its type. The result is a normalised event: the same content always
 * encodes to the same bytes, which is what retries are compared on and
 * what the hash chain covers.
 */
#ifndef LX_PROTO_H
#define LX_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LX_PROTO_VERSION 1
#define LX_MSG_MAX (64 * 1024)       /* a whole message: larger is E_TOO_BIG */
#define LX_FRAME_MAX (1024 * 1024)   /* the transport refuses larger frames */
#define LX_STR_MAX 4096
#define LX_ID_MIN 16
#define LX_ID_MAX 64
#define LX_APPEAL_ID_MAX 64
#define LX_ACTOR_MAX 64
#define LX_ERRMSG_MAX 256

/* Error codes. 0 is success; each negative code is one wire code. */
enum lx_err {
  LX_OK = 0,
  LX_EDECODE = -1,
  LX_ETOOBIG = -2,
  LX_EVERSION = -3,
  LX_ESCHEMA = -4,
  LX_ETYPE = -5,
  LX_EUNIT = -6,
  LX_ECONFLICT = -7,
  LX_ESTATE = -8,
  LX_EDENIED = -9,
  LX_EFULL = -10,
  LX_EINTERNAL = -11,
  LX_EBADREQ = -12,
  LX_ENOTFOUND = -13,
};

/* The wire name of an error code: "E_SCHEMA". */
const char *lx_strerror(int code);

/* An error with its human reason, which names the field ("body.mode: ..."). */
typedef struct lx_error {
  int code;
  char msg[LX_ERRMSG_MAX];
} lx_error_t;

/* Sets e and returns code, so validators can `return lx_fail(e, ...)`. */
int lx_fail(lx_error_t *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum lx_ev_type {
  LX_EV_NONE = 0,
  LX_EV_VISIT,
  LX_EV_APPEAL,
  LX_EV_RESOLUTION,
  LX_EV_FEEDBACK,
  /* Written only by the daemon. */
  LX_EV_ESCALATION,
  LX_EV_CHECKPOINT,
  LX_EV_CONFIG, /* the configuration in force changed (PROTOCOL.md "config") */
  LX_EV_PLUGIN, /* a type a plugin declared: its name is in type_name */
};

const char *lx_ev_type_name(int type);
/* Returns the enum for a type name, LX_EV_NONE when unknown. */
int lx_ev_type_parse(const char *s, size_t len);

/* A string slice pointing into a buffer someone else owns. */
typedef struct lx_str {
  const char *p;
  size_t n;
} lx_str_t;

/* Appeal states; the numbers are stored, so never renumber. */
enum lx_status {
  LX_ST_OPEN = 1,
  LX_ST_RESOLVED = 2,
  LX_ST_EXPLAINED = 3,
  LX_ST_REFERRED = 4,
  LX_ST_CLOSED = 5,
};
const char *lx_status_name(int st);
int lx_status_parse(const char *s, size_t len);

/* A decoded, validated event. The slices point into the msgpack zone or the
 * frame it was decoded from; they live as long as those do. */
typedef struct lx_event {
  int type;      /* enum lx_ev_type */
  lx_str_t type_name;
  lx_str_t id;   /* id.p is NULL when the frame had no readable string id */
  int64_t at;
  lx_str_t unit;
  lx_str_t actor;
  lx_str_t by;   /* key name when CURVE is on; empty otherwise */
  lx_str_t appeal;   /* body.appeal, when the type has one (else n == 0) */
  /* appeal */
  lx_str_t category;
  bool urgent;
  /* resolution */
  int outcome;   /* enum lx_status: RESOLVED, EXPLAINED or REFERRED */
  /* feedback */
  bool satisfied;
  /* escalation (daemon-written) */
  int esc_from, esc_to;       /* tiers */
  int64_t esc_deadline;
  int64_t esc_next;           /* -1 when nil */
  lx_str_t esc_kind;
  /* config (daemon-written): body.hash, 32 bytes */
  lx_str_t cfg_hash;
} lx_event_t;

/* What the validator needs from the configuration, without depending on it:
 * the unit check and the category check are callbacks. Each returns true
 * when the value is acceptable. unit_ok's community flag asks for a
 * community path (client events); without it any configured unit will do
 * (a checkpoint stands at the county). */
typedef struct lx_schema_ctx {
  bool (*unit_ok)(void *arg, const char *path, size_t len, bool community);
  bool (*category_ok)(void *arg, const char *code, size_t len);
  void *arg;
  bool allow_daemon_types; /* true only for events the daemon writes */
  /* With allow_daemon_types: true for a type a plugin declared. Such an
   * event's body may be any map of scalars; a string `appeal` in it names
   * the appeal the record belongs to. NULL: no plugin types. */
  bool (*plugin_type)(void *arg, const char *name, size_t len);
  bool drop_by; /* leave `by` out of the normalised bytes (see lx_event_content) */
  /* The bytes are a record of the log, which passed every check when it was
   * stored (and which the hash chain and the audit vouch for): skip the
   * structural pre-check, the map key checks and the UTF-8 and id-character
   * checks of strings; types and enums are still read as they are filled in.
   * Never for bytes from outside (a frame, an import). */
  bool stored;
} lx_schema_ctx_t;

/* Checks the structure of a msgpack buffer without allocating: exactly one
 * object, no trailing bytes, depth at most max_depth, and no container
 * whose element count exceeds the bytes that remain. Returns 0 or
 * LX_EDECODE with a reason. */
int lx_mp_check(const uint8_t *buf, size_t len, int max_depth, lx_error_t *e);

/* Decodes one event frame and validates it against PROTOCOL.md.
 *
 * On success returns 0, fills *ev, and appends the normalised encoding of
 * the event to *norm (a msgpack sbuffer the caller owns). zone must be
 * initialised by the caller; slices in *ev point into it or into buf.
 * On failure returns a negative LX_E* code with e filled; ev->id is set if
 * the id could be read (so the reply can carry it). */
int lx_event_decode(const uint8_t *buf, size_t len, const lx_schema_ctx_t *ctx,
                    msgpack_zone *zone, lx_event_t *ev, msgpack_sbuffer *norm,
                    lx_error_t *e);

/* Writes to out the normalised event `norm` with `by` added to its envelope
 * (before `body`, as PROTOCOL.md's table orders it). Returns 0 or
 * LX_EINTERNAL. */
int lx_event_add_by(const uint8_t *norm, size_t len, const char *by, size_t by_len,
                    msgpack_sbuffer *out);

/* Re-reads a stored event and writes to norm its content: the normalised
 * bytes without `by`, which is what a retry is compared on. Returns 0 or
 * LX_EDECODE. */
int lx_event_content(const uint8_t *buf, size_t len, msgpack_zone *zone, lx_event_t *ev,
                     msgpack_sbuffer *norm);

/* Reads an already stored (normalised) event back. It was valid when it was
 * stored, so this only re-parses (lx_schema_ctx_t.stored): scans of the log
 * read every record through it. Returns 0 or LX_EDECODE. */
int lx_event_parse_stored(const uint8_t *buf, size_t len, msgpack_zone *zone,
                          lx_event_t *ev);

/* Small msgpack helpers shared by the daemon and the CLI (mp_util.c). */
void lx_mp_pack_str(msgpack_packer *pk, const char *s, size_t n);
void lx_mp_pack_cstr(msgpack_packer *pk, const char *s);
/* Looks a key up in a msgpack map object; returns NULL if absent or if o is
 * not a map. */
const msgpack_object *lx_mp_get(const msgpack_object *o, const char *key);
/* Big-endian 64-bit integers: seqs as LMDB keys and in the chain hash. */
void lx_put_u64be(uint8_t *p, uint64_t v);
uint64_t lx_get_u64be(const uint8_t *p);
/* True when o is a str equal to s. */
bool lx_mp_str_eq(const msgpack_object *o, const char *s);

#endif
