/* SPDX-License-Identifier: MIT
 *
 * cli.h: what the parts of the `lianxin` client share.
 *
 * lianxin.c holds the option parsing, the transport and the small commands;
 * publish.c holds `publish`, replay.c `replay`, watch.c `watch` and
 * quota.c `quota`; verify.c
 * and backup.c the auditor's tools (verify, backup, export, import;
 * audit_tools.h); timeparse.c the parser of the times people type.
 * Everything here is defined in lianxin.c unless said otherwise.
 */
#ifndef LX_CLI_H
#define LX_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <getopt.h>
#include <msgpack.h>
#include <cjson/cJSON.h>

#define EXIT_REJECTED 1
#define EXIT_USAGE 2

typedef struct cli {
  const char *ingest;
  const char *alerts;
  const char *query;
  int timeout_ms;
  const char *key_file;        /* CURVE: our NAME.key */
  const char *server_key_file; /* CURVE: the daemon's NAME.pub */
  bool compact;
  const struct cli_cmd *cmd;   /* the command being run, for its help text */
  void *zctx;
} cli_t;

typedef int (*cli_cmd_fn)(cli_t *c, int argc, char **argv);

struct cli_cmd {
  const char *name;
  cli_cmd_fn fn;
  const char *help;
};

/* Option values: the global ones first (see is_global_opt), then every
 * command's own. */
enum {
  OPT_INGEST = 256, OPT_QUERY, OPT_TIMEOUT, OPT_KEY, OPT_SERVER_KEY, OPT_ALERTS, OPT_COMPACT,
  OPT_WINDOW, OPT_FILL, OPT_FROM, OPT_TO, OPT_LIMIT, OPT_SINCE, OPT_UNTIL,
  OPT_UNIT, OPT_TYPES, OPT_APPEAL, OPT_AT, OPT_SIGN, OPT_COUNT, OPT_JSON,
  OPT_DATA, OPT_SIGN_PUB, OPT_CONFIG, OPT_YEAR,
};

/* One reply frame, unpacked. The objects point into buf. */
typedef struct reply {
  char *buf;
  size_t len;
  msgpack_unpacked u;
} reply_t;

void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int64_t mono_ms(void);
bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);
void pack_cstr(msgpack_packer *pk, const char *s);
/* Initialises sb with the request {"op": op}; the caller destroys sb. */
void pack_op(msgpack_sbuffer *sb, const char *op);
const msgpack_object *mp_get(const msgpack_object *o, const char *key);
bool mp_is_true(const msgpack_object *o);
bool mp_uint(const msgpack_object *o, uint64_t *out);
void print_json(const cJSON *j, bool pretty);

/* Opens a ZeroMQ socket of this type (with CURVE when configured) and
 * connects it to ep; a SUB subscribes to `subscribe` first. NULL after
 * reporting. */
void *socket_open_type(cli_t *c, int type, const char *ep, int hwm, const char *subscribe);
/* Opens a DEALER connected to ep (see socket_open_type). */
void *socket_open(cli_t *c, const char *ep, int hwm);
void reply_free(reply_t *r);
int reply_recv(cli_t *c, void *s, const char *ep, reply_t *r);
/* Sends one request on the query socket s and waits for its reply. */
int query_roundtrip(cli_t *c, void *s, const msgpack_sbuffer *req, reply_t *r);
void report_refusal(const char *what, const msgpack_object *reply);

int cmd_getopt(cli_t *c, int argc, char **argv, const struct option *own);
void cmd_usage_exit(const cli_t *c) __attribute__((noreturn));
/* Parses a --since, --until or --at value (lx_time_parse) into *out; exits
 * with the command's usage on a bad one. */
void time_opt(cli_t *c, const char *name, const char *arg, int64_t *out);

/* timeparse.c: a time as people type it, to ms since the epoch: integer
 * ms, 2026-11-01 (local midnight), 2026-11-01T08:00[:SS[.fff]] (local),
 * with Z or an offset (+08:00, +0800, +08). False when s is none of these
 * or before the epoch. */
bool lx_time_parse(const char *s, int64_t *ms);
#define LX_TIME_FORMS "milliseconds since the epoch, 2026-11-01 (local midnight), " \
  "2026-11-01T08:00 (local time), 2026-11-01T08:00+08:00 or 2026-11-01T00:00Z"

/* verify.c, backup.c: verify, backup, export, import (see audit_tools.h). */
int cmd_verify(cli_t *c, int argc, char **argv);
int cmd_backup(cli_t *c, int argc, char **argv);
int cmd_export(cli_t *c, int argc, char **argv);
int cmd_import(cli_t *c, int argc, char **argv);
int cmd_audit(cli_t *c, int argc, char **argv);
int cmd_mirror_check(cli_t *c, int argc, char **argv);

/* publish.c, replay.c, watch.c, quota.c */
int cmd_publish(cli_t *c, int argc, char **argv);
int cmd_replay(cli_t *c, int argc, char **argv);
int cmd_watch(cli_t *c, int argc, char **argv);
/* passwd.c */
int cmd_passwd(cli_t *c, int argc, char **argv);
/* rank.c */
int cmd_rank(cli_t *c, int argc, char **argv);
/* quota.c */
int cmd_quota(cli_t *c, int argc, char **argv);
/* watch.c: ms since the epoch as local time with its offset,
 * 2026-03-05T18:00:00+08:00 (TZ decides what is local). */
void cli_fmt_time(int64_t ms, char out[48]);

#endif
