/* SPDX-License-Identifier: MIT
 *
 * lianxin.c: the command-line client of the Lianxin daemon.
 *
 * It lets a person or a shell script do what field apps and auditors do over
 * the wire: publish events (JSON in, one JSON ack out per event), replay the
 * log, and ask for the head, the unit tree, counters and an appeal's state.
 * It speaks PROTOCOL.md only, through one DEALER socket per endpoint: each
 * request is exactly one msgpack frame and each reply one frame, so the
 * same code path works whether the daemon is local or across a network.
 *
 * This file holds what the commands share (small helpers, the transport,
 * option parsing), the small commands, the table of commands with their
 * help, and main; the larger commands have files of their own (cli.h).
 *
 * Exit codes: 0 success; 1 the daemon (or the local JSON check) rejected
 * something; 2 usage, input or transport errors, including a timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <msgpack.h>
#include <sodium.h>
#include <zmq.h>

#include "cli.h"
#include "json_mp.h"

#define DEFAULT_INGEST "tcp://127.0.0.1:7601"
#define DEFAULT_ALERTS "tcp://127.0.0.1:7602"
#define DEFAULT_QUERY "tcp://127.0.0.1:7603"
#define DEFAULT_TIMEOUT_MS 5000

static const struct cli_cmd *cmd_find(const char *name);

/* --- small helpers ------------------------------------------------------- */

void cli_err(const char *fmt, ...)
{
  va_list ap;
  fflush(stdout); /* keep stdout and stderr in order on a terminal */
  fputs("lianxin: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}


int64_t mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parses a whole decimal integer in [min, max]; false on anything else. */
bool parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
    return false;
  *out = v;
  return true;
}

void pack_op(msgpack_sbuffer *sb, const char *op)
{
  msgpack_packer pk;
  msgpack_sbuffer_init(sb);
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  pack_cstr(&pk, "op");
  pack_cstr(&pk, op);
}

void pack_cstr(msgpack_packer *pk, const char *s)
{
  msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Looks a key up in a msgpack map; NULL when absent or o is not a map. */
const msgpack_object *mp_get(const msgpack_object *o, const char *key)
{
  if (o->type != MSGPACK_OBJECT_MAP)
    return NULL;
  size_t n = strlen(key);
  for (uint32_t i = 0; i < o->via.map.size; i++) {
    const msgpack_object *k = &o->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, key, n) == 0)
      return &o->via.map.ptr[i].val;
  }
  return NULL;
}

bool mp_is_true(const msgpack_object *o)
{
  return o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

bool mp_uint(const msgpack_object *o, uint64_t *out)
{
  if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return false;
  *out = o->via.u64;
  return true;
}

void print_json(const cJSON *j, bool pretty)
{
  char *s = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
  if (s != NULL) {
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
  }
}

/* --- transport ----------------------------------------------------------- */

/* Reads line `line` (0-based) of a key file into out (a Z85 key, 40 chars). */
static int read_key(const char *path, int line, char out[41])
{
  FILE *f = fopen(path, "r");
  char buf[256];
  int rc = -1;
  if (f == NULL) {
    cli_err("%s: %s", path, strerror(errno));
    return -1;
  }
  for (int i = 0; i <= line && fgets(buf, sizeof buf, f) != NULL; i++) {
    if (i == line) {
      buf[strcspn(buf, "\r\n")] = '\0';
      if (strlen(buf) == 40) {
        memcpy(out, buf, 41);
        rc = 0;
      }
    }
  }
  fclose(f);
  if (rc < 0)
    cli_err("%s: line %d is not a Z85 key", path, line + 1);
  return rc;
}

static int socket_curve(const cli_t *c, void *s)
{
  char server[41], pub[41], sec[41];
  if (c->key_file == NULL && c->server_key_file == NULL)
    return 0;
  if (c->key_file == NULL || c->server_key_file == NULL) {
    cli_err("CURVE needs both --key and --server-key");
    return -1;
  }
  if (read_key(c->server_key_file, 0, server) < 0 || read_key(c->key_file, 0, pub) < 0 ||
      read_key(c->key_file, 1, sec) < 0)
    return -1;
  if (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server, 41) != 0 ||
      zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 41) != 0 ||
      zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 41) != 0) {
    cli_err("cannot enable CURVE: %s", zmq_strerror(errno));
    return -1;
  }
  sodium_memzero(sec, sizeof sec);
  return 0;
}

/* Opens a socket of this type connected to ep. hwm > 0 raises both
 * high-water marks so a pipelined window never blocks or drops. A SUB
 * subscribes to `subscribe` before connecting. Returns NULL after reporting. */
void *socket_open_type(cli_t *c, int type, const char *ep, int hwm, const char *subscribe)
{
  void *s = zmq_socket(c->zctx, type);
  int zero = 0;
  if (s == NULL) {
    cli_err("cannot create socket: %s", zmq_strerror(errno));
    return NULL;
  }
  zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(s, ZMQ_SNDTIMEO, &c->timeout_ms, sizeof c->timeout_ms);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &c->timeout_ms, sizeof c->timeout_ms);
  if (hwm > 0) {
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
  }
  if (socket_curve(c, s) < 0) {
    zmq_close(s);
    return NULL;
  }
  if (subscribe != NULL && zmq_setsockopt(s, ZMQ_SUBSCRIBE, subscribe, strlen(subscribe)) != 0) {
    cli_err("cannot subscribe: %s", zmq_strerror(errno));
    zmq_close(s);
    return NULL;
  }
  if (zmq_connect(s, ep) != 0) {
    cli_err("cannot connect to %s: %s", ep, zmq_strerror(errno));
    zmq_close(s);
    return NULL;
  }
  return s;
}

/* Opens a DEALER connected to ep (see socket_open_type). */
void *socket_open(cli_t *c, const char *ep, int hwm)
{
  return socket_open_type(c, ZMQ_DEALER, ep, hwm, NULL);
}

void reply_free(reply_t *r)
{
  msgpack_unpacked_destroy(&r->u);
  free(r->buf);
  r->buf = NULL;
}

/* Receives one frame (honouring the socket's receive timeout) and unpacks
 * it as a map. Returns 0, or -1 after reporting a timeout or a bad frame. */
int reply_recv(cli_t *c, void *s, const char *ep, reply_t *r)
{
  zmq_msg_t m;
  size_t off = 0;
  zmq_msg_init(&m);
  msgpack_unpacked_init(&r->u);
  r->buf = NULL;
  if (zmq_msg_recv(&m, s, 0) < 0) {
    if (errno == EAGAIN)
      cli_err("no reply from %s within %d ms", ep, c->timeout_ms);
    else
      cli_err("receive from %s: %s", ep, zmq_strerror(errno));
    zmq_msg_close(&m);
    return -1;
  }
  r->len = zmq_msg_size(&m);
  r->buf = malloc(r->len ? r->len : 1);
  if (r->buf != NULL)
    memcpy(r->buf, zmq_msg_data(&m), r->len);
  zmq_msg_close(&m);
  if (r->buf == NULL || msgpack_unpack_next(&r->u, r->buf, r->len, &off) != MSGPACK_UNPACK_SUCCESS ||
      off != r->len || r->u.data.type != MSGPACK_OBJECT_MAP) {
    cli_err("reply from %s is not one msgpack map", ep);
    reply_free(r);
    return -1;
  }
  return 0;
}

/* Sends one request on the query socket s and waits for its reply. */
int query_roundtrip(cli_t *c, void *s, const msgpack_sbuffer *req, reply_t *r)
{
  if (zmq_send(s, req->data, req->size, 0) < 0) {
    cli_err("send to %s: %s", c->query, zmq_strerror(errno));
    return -1;
  }
  return reply_recv(c, s, c->query, r);
}

/* Reports a failed query reply as "what: CODE: error". */
void report_refusal(const char *what, const msgpack_object *reply)
{
  const msgpack_object *code = mp_get(reply, "code"), *msg = mp_get(reply, "error");
  bool cs = code != NULL && code->type == MSGPACK_OBJECT_STR;
  bool ms = msg != NULL && msg->type == MSGPACK_OBJECT_STR;
  cli_err("%s: %.*s: %.*s", what, cs ? (int)code->via.str.size : 1, cs ? code->via.str.ptr : "?",
          ms ? (int)msg->via.str.size : 1, ms ? msg->via.str.ptr : "?");
}

/* --- option parsing shared by every command ------------------------------ */

static const struct option global_opts[] = {
  {"ingest", required_argument, NULL, OPT_INGEST},
  {"query", required_argument, NULL, OPT_QUERY},
  {"alerts", required_argument, NULL, OPT_ALERTS},
  {"timeout", required_argument, NULL, OPT_TIMEOUT},
  {"key", required_argument, NULL, OPT_KEY},
  {"server-key", required_argument, NULL, OPT_SERVER_KEY},
  {"help", no_argument, NULL, 'h'},
  {NULL, 0, NULL, 0},
};

static const char main_help[] =
  "usage: lianxin [OPTIONS] COMMAND [ARGS...]\n"
  "\n"
  "Client of the Lianxin daemon (lianxind). Speaks PROTOCOL.md: msgpack over\n"
  "ZeroMQ; reads and prints JSON.\n"
  "\n"
  "Commands:\n"
  "  publish [FILE|-]   send events (JSON object, array, or JSON Lines) to ingest\n"
  "  replay             print log records as JSON lines\n"
  "  head               the newest record, its chain hash and the last checkpoint\n"
  "  units              the configured unit tree and appeal categories\n"
  "  stats              the daemon's counters\n"
  "  appeal ID          an appeal's state (now, or --at a past time)\n"
  "  watch PREFIX       print alerts about units under PREFIX as they come\n"
  "  rank               a period's red and black lists, recomputed from the log\n"
  "  quota              field days per cadre this year (or --year), who is behind\n"
  "  keygen NAME        write a CURVE key pair (or --sign: an Ed25519 pair)\n"
  "  passwd NAME        print a users-file line for lianxin-web (password on stdin)\n"
  "  verify             recompute the hash chain, checkpoints and head (auditors)\n"
  "  backup DIR         a consistent, compacted copy of a store, daemon running\n"
  "  export             the log as JSON Lines (with each event's exact bytes)\n"
  "  mirror-check       compare a county's NATS JetStream stream with the log\n"
  "  import FILE        a new store from an export, verified line by line\n"
  "  audit              rebuild the state from the log, compare, re-check escalations\n"
  "  help [COMMAND]     this text, or a command's\n"
  "\n"
  "Options (before or after the command):\n"
  "  --ingest EP        ingest endpoint (env LIANXIN_INGEST; default " DEFAULT_INGEST ")\n"
  "  --query EP         query endpoint (env LIANXIN_QUERY; default " DEFAULT_QUERY ")\n"
  "  --alerts EP        alerts endpoint (env LIANXIN_ALERTS; default " DEFAULT_ALERTS ")\n"
  "  --timeout MS       how long to wait for any reply (default 5000)\n"
  "  --key FILE         CURVE: this client's NAME.key (env LIANXIN_KEY)\n"
  "  --server-key FILE  CURVE: the daemon's NAME.pub (env LIANXIN_SERVER_KEY)\n"
  "  -h, --help         help\n"
  "\n"
  "Exit status: 0 ok; 1 rejected by the daemon (or invalid JSON input);\n"
  "2 usage, input or transport error (including a timeout).\n";

static int global_opt(cli_t *c, int o, const char *arg)
{
  int64_t v;
  switch (o) {
  case OPT_INGEST: c->ingest = arg; return 0;
  case OPT_QUERY: c->query = arg; return 0;
  case OPT_ALERTS: c->alerts = arg; return 0;
  case OPT_KEY: c->key_file = arg; return 0;
  case OPT_SERVER_KEY: c->server_key_file = arg; return 0;
  case OPT_TIMEOUT:
    if (!parse_i64(arg, 1, 3600000, &v)) {
      cli_err("--timeout: expected milliseconds from 1 to 3600000, got '%s'", arg);
      return -1;
    }
    c->timeout_ms = (int)v;
    return 0;
  }
  return -1;
}

static bool is_global_opt(int o)
{
  return o == OPT_INGEST || o == OPT_QUERY || o == OPT_TIMEOUT || o == OPT_KEY ||
         o == OPT_SERVER_KEY || o == OPT_ALERTS;
}

void cmd_usage_exit(const cli_t *c)
{
  fprintf(stderr, "Try 'lianxin %s --help'.\n", c->cmd->name);
  exit(EXIT_USAGE);
}

/* getopt_long over the command's own options plus the global ones. Handles
 * global options and --help itself; returns the command's next option, or
 * -1 when done. A bad option ends the program with EXIT_USAGE. */
int cmd_getopt(cli_t *c, int argc, char **argv, const struct option *own)
{
  struct option all[32];
  size_t n = 0;
  for (; own != NULL && own[n].name != NULL; n++)
    all[n] = own[n];
  for (size_t i = 0; global_opts[i].name != NULL; i++)
    all[n++] = global_opts[i];
  all[n] = (struct option){NULL, 0, NULL, 0};
  for (;;) {
    int o = getopt_long(argc, argv, "h", all, NULL);
    if (o == 'h') {
      fputs(c->cmd->help, stdout);
      exit(0);
    }
    if (o == '?' || (is_global_opt(o) && global_opt(c, o, optarg) < 0))
      cmd_usage_exit(c);
    if (!is_global_opt(o))
      return o;
  }
}

/* Parses options of commands that only take the global ones and --compact. */
static int cmd_plain_opts(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"compact", no_argument, NULL, OPT_COMPACT},
    {NULL, 0, NULL, 0},
  };
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1)
    if (o == OPT_COMPACT)
      c->compact = true;
  return optind;
}

/* --- head, units, stats, appeal ----------------------------------------- */

/* --since, --until, --at: a time as people type it (timeparse.c). */
void time_opt(cli_t *c, const char *name, const char *arg, int64_t *out)
{
  if (!lx_time_parse(arg, out)) {
    cli_err("%s: --%s expects %s; got '%s'", c->cmd->name, name, LX_TIME_FORMS, arg);
    cmd_usage_exit(c);
  }
}

/* Sends one query, prints the reply as JSON; exit 1 when ok is not true. */
static int query_print(cli_t *c, const msgpack_sbuffer *req)
{
  void *s = socket_open(c, c->query, 0);
  reply_t r;
  char err[160];
  int rc = EXIT_USAGE;
  if (s == NULL)
    return EXIT_USAGE;
  if (query_roundtrip(c, s, req, &r) == 0) {
    cJSON *j = lx_mp_to_json(&r.u.data, err, sizeof err);
    if (j == NULL) {
      cli_err("reply cannot be shown as JSON: %s", err);
    } else {
      print_json(j, !c->compact);
      rc = mp_is_true(mp_get(&r.u.data, "ok")) ? 0 : EXIT_REJECTED;
      cJSON_Delete(j);
    }
    reply_free(&r);
  }
  zmq_close(s);
  return rc;
}

static int cmd_simple(cli_t *c, int argc, char **argv)
{
  int i = cmd_plain_opts(c, argc, argv);
  if (i < argc) {
    cli_err("%s: unexpected argument '%s'", c->cmd->name, argv[i]);
    cmd_usage_exit(c);
  }
  msgpack_sbuffer sb;
  pack_op(&sb, c->cmd->name); /* head, units and stats are named as their op */
  int rc = query_print(c, &sb);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

static int cmd_appeal(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"at", required_argument, NULL, OPT_AT},
    {"compact", no_argument, NULL, OPT_COMPACT},
    {NULL, 0, NULL, 0},
  };
  int64_t at = 0;
  bool has_at = false;
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1) {
    if (o == OPT_COMPACT) {
      c->compact = true;
    } else if (o == OPT_AT) {
      time_opt(c, "at", optarg, &at);
      has_at = true;
    }
  }
  if (argc - optind != 1) {
    cli_err("appeal: expected exactly one appeal ID");
    cmd_usage_exit(c);
  }
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, has_at ? 3 : 2);
  pack_cstr(&pk, "op");
  pack_cstr(&pk, "appeal");
  pack_cstr(&pk, "appeal");
  pack_cstr(&pk, argv[optind]);
  if (has_at) {
    pack_cstr(&pk, "at");
    msgpack_pack_int64(&pk, at);
  }
  int rc = query_print(c, &sb);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

/* --- keygen --------------------------------------------------------------- */

/* Creates path with exactly this mode (whatever the umask) and content. An
 * existing file is never overwritten: it may be a key already registered. */
static int write_new_file(const char *path, const char *text, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    cli_err("%s: %s", path, strerror(errno));
    return -1;
  }
  size_t n = strlen(text);
  bool ok = fchmod(fd, mode) == 0 && write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
  int saved = errno;
  if (close(fd) != 0 || !ok) {
    cli_err("%s: %s", path, strerror(ok ? errno : saved));
    unlink(path);
    return -1;
  }
  return 0;
}

/* Writes BASE.pub (public) and BASE.key (secret, 0600); on failure leaves
 * neither behind. */
static int write_pair(const char *base, const char *pub_ext, const char *pub,
                      const char *key_ext, const char *key)
{
  char pub_path[PATH_MAX], key_path[PATH_MAX];
  if (snprintf(pub_path, sizeof pub_path, "%s%s", base, pub_ext) >= (int)sizeof pub_path ||
      snprintf(key_path, sizeof key_path, "%s%s", base, key_ext) >= (int)sizeof key_path) {
    cli_err("keygen: name too long");
    return -1;
  }
  if (write_new_file(key_path, key, 0600) < 0)
    return -1;
  if (write_new_file(pub_path, pub, 0644) < 0) {
    unlink(key_path);
    return -1;
  }
  return 0;
}

static int keygen_curve(const char *name)
{
  char pub[41], sec[41], pub_text[48], key_text[96];
  if (zmq_curve_keypair(pub, sec) != 0) {
    cli_err("keygen: this libzmq cannot make CURVE keys: %s", zmq_strerror(errno));
    return EXIT_USAGE;
  }
  snprintf(pub_text, sizeof pub_text, "%s\n", pub);
  snprintf(key_text, sizeof key_text, "%s\n%s\n", pub, sec);
  int rc = write_pair(name, ".pub", pub_text, ".key", key_text);
  sodium_memzero(sec, sizeof sec);
  sodium_memzero(key_text, sizeof key_text);
  if (rc < 0)
    return EXIT_USAGE;
  printf("%s\n", pub);
  return 0;
}

static int keygen_sign(const char *name)
{
  unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
  char pub_text[2 * sizeof pk + 2], key_text[2 * sizeof sk + 2];
  crypto_sign_keypair(pk, sk);
  lx_hex(pub_text, pk, sizeof pk);
  lx_hex(key_text, sk, sizeof sk);
  strcat(pub_text, "\n");
  strcat(key_text, "\n");
  int rc = write_pair(name, ".sign.pub", pub_text, ".sign.key", key_text);
  sodium_memzero(sk, sizeof sk);
  sodium_memzero(key_text, sizeof key_text);
  if (rc < 0)
    return EXIT_USAGE;
  fputs(pub_text, stdout);
  return 0;
}

static int cmd_keygen(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"sign", no_argument, NULL, OPT_SIGN},
    {NULL, 0, NULL, 0},
  };
  bool sign = false;
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1)
    sign = sign || o == OPT_SIGN;
  if (argc - optind != 1) {
    cli_err("keygen: expected exactly one NAME");
    cmd_usage_exit(c);
  }
  return sign ? keygen_sign(argv[optind]) : keygen_curve(argv[optind]);
}

/* --- help and main ------------------------------------------------------- */

static int cmd_help(cli_t *c, int argc, char **argv)
{
  cmd_getopt(c, argc, argv, NULL);
  const struct cli_cmd *cmd = optind < argc ? cmd_find(argv[optind]) : NULL;
  if (optind < argc && cmd == NULL) {
    cli_err("help: unknown command '%s'", argv[optind]);
    return EXIT_USAGE;
  }
  fputs(cmd != NULL ? cmd->help : main_help, stdout);
  return 0;
}

static const struct cli_cmd commands[] = {
  {"publish", cmd_publish,
   "usage: lianxin publish [--window N] [--fill] [FILE|-]\n"
   "\n"
   "Sends events to the ingest endpoint and prints one ack per input event as\n"
   "a JSON line, in input order. The input (FILE, or stdin when absent or '-')\n"
   "is one JSON object, a JSON array of objects, or JSON Lines (one object per\n"
   "line; blank lines are skipped). Each object is sent as one msgpack event.\n"
   "\n"
   "A line that is not valid JSON is not sent; it prints\n"
   "  {\"ok\":false,\"id\":null,\"code\":\"E_DECODE\",\"error\":\"line N: ...\"}\n"
   "\n"
   "  --window N   events in flight at once (default 256)\n"
   "  --fill       add v (1), id (a random UUID) and at (now, ms) when absent\n"
   "\n"
   "Example:\n"
   "  echo '{\"type\":\"visit\",\"unit\":\"qd.hx.dy\",\"actor\":\"cadre-7\",\n"
   "        \"body\":{\"household\":\"hh-001\",\"mode\":\"periodic\"}}' | lianxin publish --fill\n"
   "\n"
   "Exit status: 0 all accepted (a retry, dup:true, counts as accepted); 1 any\n"
   "rejected; 2 usage, input or transport error (no ack within --timeout).\n"},
  {"replay", cmd_replay,
   "usage: lianxin replay [--from SEQ] [--to SEQ] [--limit N] [--since TIME]\n"
   "                      [--until TIME] [--unit PATH] [--types a,b] [--appeal ID]\n"
   "\n"
   "Pages through the log and prints each record as a JSON line:\n"
   "  {\"seq\":N,\"rat\":MS,\"hash\":\"hex\",\"ev\":{the event}}\n"
   "Filters combine with AND.\n"
   "\n"
   "  --from SEQ    first seq (default 1)\n"
   "  --to SEQ      last seq\n"
   "  --limit N     records per page (default 1000, at most 10000)\n"
   "  --since TIME  receive time at or after TIME\n"
   "  --until TIME  receive time at or before TIME\n"
   "  --unit PATH   units under PATH (a prefix at a code boundary)\n"
   "  --types LIST  comma-separated event types\n"
   "  --appeal ID   the records that name appeal ID\n"
   "\n"
   "TIME is milliseconds since the epoch, or a date: 2026-11-01 (local\n"
   "midnight), 2026-11-01T08:00[:SS[.mmm]] (local time), or either with Z or an\n"
   "offset: 2026-11-01T08:00+08:00, 2026-11-01T00:00Z. Local is this machine's\n"
   "time zone (TZ).\n"},
  {"head", cmd_simple,
   "usage: lianxin head [--compact]\n"
   "\n"
   "Prints the newest record's seq and chain hash and the seq of the newest\n"
   "checkpoint, as JSON (--compact: on one line). Exit 1 if ok is false.\n"},
  {"units", cmd_simple,
   "usage: lianxin units [--compact]\n"
   "\n"
   "Prints the configured unit tree (every county, township and community)\n"
   "and the appeal categories, as JSON. Exit 1 if ok is false.\n"},
  {"stats", cmd_simple,
   "usage: lianxin stats [--compact]\n"
   "\n"
   "Prints the daemon's counters (events, appeals_open, escalations,\n"
   "uptime_ms, ...) as JSON. Exit 1 if ok is false.\n"},
  {"appeal", cmd_appeal,
   "usage: lianxin appeal [--at TIME] [--compact] ID\n"
   "\n"
   "Prints appeal ID's state: status, tier, deadline, the seqs of its events.\n"
   "  --at TIME  the state as it was at that time: ms since the epoch, or\n"
   "             2026-11-01 (local midnight), 2026-11-01T08:00 (local),\n"
   "             2026-11-01T08:00+08:00, 2026-11-01T00:00Z\n"
   "Exit 1 if ok is false (E_NOTFOUND when there is no such appeal).\n"},
  {"watch", cmd_watch,
   "usage: lianxin watch [--from SEQ] [--count N] [--json] PREFIX\n"
   "\n"
   "Subscribes to the alerts endpoint (--alerts) and prints each alert about\n"
   "a unit under PREFIX as one line, until SIGINT or SIGTERM (exit 0).\n"
   "PREFIX is a unit path such as qd.hx (a trailing dot is allowed): that unit\n"
   "and everything below it. An empty PREFIX ('' or '.') means every unit.\n"
   "\n"
   "No alert is missed: watch remembers the highest seq it has handled, and\n"
   "when a live alert leaves a gap after it (alerts dropped while this client\n"
   "was slow or reconnecting) it first replays the escalation, warning,\n"
   "unanswered, quota and hotspot records in the gap from the query endpoint\n"
   "(--query) and prints them as the daemon would have sent them.\n"
   "\n"
   "  --from SEQ   first print the alerts already in the log from SEQ on, then\n"
   "               the live ones (without it: from the next live alert)\n"
   "  --count N    exit after printing N alerts\n"
   "  --json       print each alert's map as a JSON line; alerts that came\n"
   "               from replay carry \"replayed\":true\n"
   "\n"
   "A line looks like\n"
   "  2026-03-05T18:00:00+08:00 seq 42 escalated qd.hx.dy (\u4e1c\u56ed\u793e\u533a) appeal AP-1\n"
   "    community\u2192township next 2026-03-12T18:00:00+08:00\n"
   "(on one line), ending in \"(replayed)\" when it came from replay. The unit's\n"
   "name (from the daemon's units, asked once at start) follows its path. The\n"
   "assessment plugins' alerts read\n"
   "  2026-04-01T00:00:00+08:00 seq 57 quota qd.hx 2026-03 behind: c1 3/15 days\n"
   "    (60 a year), leader-1 1/23 days (90 a year)\n"
   "  2026-03-08T09:12:00+08:00 seq 63 hotspot qd.hx.dy jobs: 5 appeals in 7 days\n"
   "    since 2026-03-02T10:00:00+08:00 (baseline 0.00)\n"
   "(each on one line). Times are\n"
   "shown in this machine's local time zone (TZ=UTC for UTC) with the offset.\n"
   "--timeout bounds each query round trip only; waiting for alerts never\n"
   "times out.\n"
   "\n"
   "Exit status: 0 interrupted, or N alerts printed; 1 the daemon refused a\n"
   "replay; 2 usage or transport error (including a query timeout).\n"},
  {"rank", cmd_rank,
   "usage: lianxin rank [--period P] [--tier community|township] [--json [--compact]]\n"
   "\n"
   "Prints the ranking of the units of a tier for a period (红黑榜), as the\n"
   "rank plugin recomputes it from the log (the rank op): each unit's rank,\n"
   "appeals received, response, resolution and satisfaction rates, score,\n"
   "and whether it is on the red or the black list, with its name.\n"
   "\n"
   "  --period P  2026-11 (a month), 2026-Q4 (a quarter) or 2026 (a year);\n"
   "              default: the daemon's current period (as configured)\n"
   "  --tier T    community or township; default: both\n"
   "  --json      the daemon's reply as JSON (both tiers: an array of two);\n"
   "              --compact: on one line\n"
   "\n"
   "A period that has not ended is marked \"so far\". Exit 1 if the daemon\n"
   "refuses (E_BADREQ for a malformed period; E_DENIED for a field key).\n"},
  {"quota", cmd_quota,
   "usage: lianxin quota [--year YEAR] [--unit PATH] [--json]\n"
   "\n"
   "Field-day quotas (下沉驻村天数, docs/assessment.md): for each cadre (an actor\n"
   "with a visit that year) its field days (distinct local dates of its visits),\n"
   "the days it owes a year, the share expected by now (required x months ended\n"
   "/ 12, rounded up) and whether it is behind, by township (the one where it\n"
   "recorded most visits). Recomputed by the daemon on each request, as of now\n"
   "(or the end of a past year). A supervisor key sees its jurisdiction only.\n"
   "\n"
   "  --year YEAR  the year (default: this year, in this machine's time zone)\n"
   "  --unit PATH  townships under PATH only (qd, or qd.hx)\n"
   "  --json       the daemon's reply as JSON instead of the table\n"
   "\n"
   "Exit status: 0 shown; 1 refused by the daemon (E_BADREQ, E_DENIED); 2 usage\n"
   "or transport error.\n"},
  {"keygen", cmd_keygen,
   "usage: lianxin keygen [--sign] NAME\n"
   "\n"
   "Writes a CURVE key pair: NAME.pub (the Z85 public key) and NAME.key (mode\n"
   "0600: the public key, then the secret key), and prints the public key.\n"
   "With --sign: an Ed25519 signing pair, NAME.sign.pub (64 hex digits) and\n"
   "NAME.sign.key (mode 0600, 128 hex digits). Existing files are never\n"
   "overwritten.\n"},
  {"passwd", cmd_passwd,
   "usage: lianxin passwd [--jurisdiction PATH] NAME\n"
   "\n"
   "Reads a password from stdin (twice and without echo on a terminal) and\n"
   "prints the line of lianxin-web's users file (web.users) for NAME:\n"
   "  - {name: \"NAME\", password_hash: \"$argon2id$...\", jurisdiction: \"PATH\"}\n"
   "The hash is libsodium's crypto_pwhash_str (Argon2id, interactive cost).\n"},
  {"verify", cmd_verify,
   "usage: lianxin verify [--query EP | --data DIR] [--key FILE.sign.pub]\n"
   "                      [--from SEQ] [--to SEQ]\n"
   "\n"
   "Reads the whole log (or the range) and recomputes what PROTOCOL.md lets\n"
   "anyone check: seqs without gaps, every record's chain hash\n"
   "  h(n) = BLAKE2b-256(h(n-1) || u64be(seq) || u64be(rat) || ev), h(0) = 0...0,\n"
   "every checkpoint record (it names the record before it and that record's\n"
   "hash, carries the --key public key, and its Ed25519 signature holds), and\n"
   "the head (seq, hash and newest checkpoint).\n"
   "\n"
   "  --query EP    online, through replay pages (the default: the query endpoint);\n"
   "                the range ends at the head as it is when verify starts\n"
   "  --data DIR    offline, straight from a store directory: a backup, or a\n"
   "                daemon's data dir (read-only; the daemon may keep running)\n"
   "  --key FILE    the daemon's checkpoint public key (NAME.sign.pub). Without\n"
   "                it checkpoints are not checked against a trusted key. (Here\n"
   "                --key is not the CURVE key: for CURVE set LIANXIN_KEY.)\n"
   "  --from SEQ    start at SEQ: the hash of SEQ-1 is taken on trust from the log\n"
   "  --to SEQ      stop at SEQ (the head is then not checked)\n"
   "\n"
   "Prints one line:\n"
   "  OK: N records, seq A..B, K checkpoints verified, head HEX\n"
   "  FAIL at seq S: hash mismatch | gap (expected S, got T) | bad checkpoint\n"
   "    signature | checkpoint hash mismatch | checkpoint key mismatch | head mismatch\n"
   "with the details of a failure on stderr.\n"
   "\n"
   "Exit status: 0 everything holds; 1 a failure; 2 usage or I/O error.\n"},
  {"backup", cmd_backup,
   "usage: lianxin backup [--data SRC] DIR\n"
   "\n"
   "Copies the store in SRC (default ./data) to DIR, which must not exist or be\n"
   "empty, while the daemon keeps serving: one consistent snapshot (a committed\n"
   "state, never half a batch), compacted. `lianxind --data DIR` starts from the\n"
   "copy and `lianxin verify --data DIR` checks it. Prints the copy's head:\n"
   "  backup: DIR: seq N, head HEX, checkpoint C, BYTES bytes\n"
   "Exit status: 0 done; 2 usage or I/O error (nothing is left in DIR).\n"},
  {"export", cmd_export,
   "usage: lianxin export [--query EP | --data DIR] [--key FILE.sign.pub]\n"
   "                      [--from SEQ] [--to SEQ]\n"
   "\n"
   "Writes the log (or the range) to stdout as JSON Lines, one record a line:\n"
   "  {\"seq\":N,\"rat\":MS,\"hash\":\"HEX\",\"ev\":{the event},\"ev_msgpack\":\"HEX\"}\n"
   "ev_msgpack is the exact stored bytes in lowercase hex (what the chain\n"
   "covers; import rebuilds from it). The chain is verified on the way (--key:\n"
   "checkpoints too, as in verify); a log that does not verify is still\n"
   "exported whole, and the exit status is 1. A summary goes to stderr.\n"
   "Exit status: 0 exported and verified; 1 exported, does not verify; 2 usage\n"
   "or I/O error.\n"},
  {"import", cmd_import,
   "usage: lianxin import --data NEWDIR [--config FILE] [--key FILE.sign.pub] FILE|-\n"
   "\n"
   "Builds a new store in NEWDIR (which must not exist or be empty) from an\n"
   "export of the whole log. Each line is checked as it is read: the chain\n"
   "(the first bad seq is named), ev against ev_msgpack, the event against the\n"
   "protocol (well-formed, in the daemon's normalised form), receive times in\n"
   "order, ids unique, appeal states; --key checks checkpoints as verify does.\n"
   "A refused file leaves no store behind. The records are stored through the\n"
   "daemon's own apply path, so the dedup index, the appeals and their\n"
   "histories and the counters are rebuilt with the log and head.\n"
   "  --config FILE  the daemon's configuration: its plugins run on every record\n"
   "                 too, so their state (the escalate plugin's deadlines) is\n"
   "                 rebuilt and lianxind can start from NEWDIR. Without it\n"
   "                 plugin state is missing: a store for auditors.\n"
   "\n"
   "Prints: imported N records, seq 1..N, K checkpoints ..., head HEX, into NEWDIR\n"
   "or:     FAIL at seq S: what was wrong\n"
   "Exit status: 0 imported; 1 the file was refused; 2 usage or I/O error.\n"},
  {"audit", cmd_audit,
   "usage: lianxin audit [--config FILE] [--data DIR]\n"
   "\n"
   "Rebuilds every derived state of the store in DIR (default ./data; a live\n"
   "daemon's, which keeps serving, or a backup) from its log alone, through the\n"
   "daemon's own apply path and plugins (from FILE, default config/lianxin.yaml),\n"
   "in a scratch store, and compares it with the stored state database by\n"
   "database (all but x.progress, outside systems' progress such as the\n"
   "JetStream mirror's, which does not follow from the log); re-checks every escalation (the appeal was open at the tier it\n"
   "left and its deadline had passed on the configured calendar; `next` follows\n"
   "the calendar) and looks for escalations that were due and are missing.\n"
   "Prints the report: each discrepancy with its seq or appeal, then\n"
   "  N records replayed, A appeals checked, E escalations checked, D discrepancies\n"
   "Exit status: 0 no discrepancy; 1 discrepancies; 2 the audit could not run.\n"},
  {"mirror-check", cmd_mirror_check,
   "usage: lianxin mirror-check --nats URL [--stream NAME] [--query EP | --data DIR]\n"
   "\n"
   "Compares the stream the jetstream plugin mirrors to (PROTOCOL.md, \"Mirror to\n"
   "NATS JetStream\") with the log: message k must be record k, with Lx-Seq k,\n"
   "the record's chain hash as Lx-Hash and its ev bytes as data, and the stream\n"
   "must hold exactly the log's records. The stream's state is read first, then\n"
   "the log (online through replay pages, or --data offline), so a live daemon\n"
   "may keep appending.\n"
   "\n"
   "  --nats URL     a node of the cluster (nats://HOST:PORT)\n"
   "  --stream NAME  default: LX_ and the county code of the log's first record\n"
   "\n"
   "Prints one line:\n"
   "  OK: stream S holds the log's N record(s), every seq and chain hash equal\n"
   "  DIFFER: the first difference (a missing or extra message, another Lx-Seq,\n"
   "    Lx-Hash or data, records not mirrored yet)\n"
   "Exit status: 0 they agree; 1 a difference; 2 usage, I/O or NATS error.\n"},
  {"help", cmd_help, "usage: lianxin help [COMMAND]\n"},
};

static const struct cli_cmd *cmd_find(const char *name)
{
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static const char *env_or(const char *name, const char *dflt)
{
  const char *v = getenv(name);
  return v != NULL && *v != '\0' ? v : dflt;
}

int main(int argc, char **argv)
{
  cli_t c = {
    .ingest = env_or("LIANXIN_INGEST", DEFAULT_INGEST),
    .alerts = env_or("LIANXIN_ALERTS", DEFAULT_ALERTS),
    .query = env_or("LIANXIN_QUERY", DEFAULT_QUERY),
    .timeout_ms = DEFAULT_TIMEOUT_MS,
    .key_file = env_or("LIANXIN_KEY", NULL),
    .server_key_file = env_or("LIANXIN_SERVER_KEY", NULL),
  };
  char prog[64];
  int o;
  argv[0] = "lianxin"; /* getopt names the program in its messages */
  while ((o = getopt_long(argc, argv, "+h", global_opts, NULL)) != -1) {
    if (o == 'h') {
      fputs(main_help, stdout);
      return 0;
    }
    if (o == '?' || global_opt(&c, o, optarg) < 0) {
      fputs("Try 'lianxin --help'.\n", stderr);
      return EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    fputs(main_help, stderr);
    return EXIT_USAGE;
  }
  c.cmd = cmd_find(argv[optind]);
  if (c.cmd == NULL) {
    cli_err("unknown command '%s'", argv[optind]);
    fputs("Try 'lianxin --help'.\n", stderr);
    return EXIT_USAGE;
  }
  snprintf(prog, sizeof prog, "lianxin %s", c.cmd->name);
  argv[optind] = prog;
  argc -= optind;
  argv += optind;
  optind = 0; /* glibc: start afresh on the command's own arguments */
  if (sodium_init() < 0) {
    cli_err("cannot initialise libsodium");
    return EXIT_USAGE;
  }
  c.zctx = zmq_ctx_new();
  if (c.zctx == NULL) {
    cli_err("cannot create a ZeroMQ context: %s", zmq_strerror(errno));
    return EXIT_USAGE;
  }
  int rc = c.cmd->fn(&c, argc, argv);
  fflush(stdout);
  zmq_ctx_term(c.zctx);
  return rc;
}
