/* SPDX-License-Identifier: MIT
 *
 * backup.c: `lianxin backup`, `lianxin export` and `lianxin import`.
 *
 * backup: a consistent, compacted copy of a store while the daemon keeps
 * serving. This separate process opens the store's LMDB environment the way
 * the daemon does and runs mdb_env_copy2(MDB_CP_COMPACT), which copies one
 * read transaction's snapshot: a state the daemon committed, never half a
 * batch. The copy is a store lianxind starts from.
 *
 * export: the log as JSON Lines, one record per line:
 *   {"seq":N,"rat":MS,"hash":"hex","ev":{the event},"ev_msgpack":"hex"}
 * `ev` is for people; `ev_msgpack` is the exact stored bytes (lowercase
 * hex), which the chain covers and import rebuilds from. The chain is
 * checked while exporting; a broken one is exported all the same (for
 * forensics) and the exit status says so.
 *
 * import: a NEW store from such a file. Every line is checked as it is
 * read: the chain (the first bad seq is named), `ev` against `ev_msgpack`,
 * the event against the protocol's schema (well-formed and in the daemon's
 * normalised form), receive times never decreasing. The records are written
 * in large transactions through the very function the daemon stores records
 * with (lx_apply_record, daemon/store/apply.h: dedup index, appeal states and
 * histories, counters, the head's checkpoint marker), and the hash the store
 * computes must equal the file's. With --config the plugins the
 * configuration names are loaded and run their apply on every record too,
 * so their state (the escalate plugin's deadline index and the deadlines it
 * sets) is rebuilt and a daemon can take the store over; without it, that
 * plugin state is missing and import makes a store for auditors.
 * A refused file leaves no store behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "apply.h"
#include "audit.h"
#include "audit_tools.h"
#include "calendar.h"
#include "json_mp.h"
#include "log.h"
#include "lx_proto.h"
#include "plugin_host.h"
#include "store.h"

static void path_in(char *out, size_t n, const char *dir, const char *file)
{
  snprintf(out, n, "%s/%s", dir, file);
}

/* fsyncs a file or a directory; returns 0 or -1 with errno. */
static int sync_path(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int rc = fsync(fd);
  int saved = errno;
  close(fd);
  errno = saved;
  return rc;
}

/* Removes what an unfinished backup or import left in dir; the directory
 * itself only when this run created it. */
static void remove_store(const char *dir, bool created)
{
  char p[4096];
  path_in(p, sizeof p, dir, "data.mdb");
  unlink(p);
  path_in(p, sizeof p, dir, "lock.mdb");
  unlink(p);
  if (created)
    rmdir(dir);
}

/* Checks that dir may receive a new store and creates it if missing.
 * Returns 0, or EXIT_USAGE after reporting. */
static int prepare_dir(const char *what, const char *dir, bool *created)
{
  bool exists;
  if (!au_dir_fresh(dir, &exists)) {
    cli_err("%s: %s %s", what, dir,
            exists ? "is not an empty directory (the copy needs a new or empty one)"
                   : "cannot be created here");
    return EXIT_USAGE;
  }
  *created = !exists;
  if (!exists && mkdir(dir, 0750) != 0) {
    cli_err("%s: %s: %s", what, dir, strerror(errno));
    return EXIT_USAGE;
  }
  return 0;
}

/* Reads meta "head" of a store directory nobody else uses (a fresh copy)
 * without leaving a lock file in it. Returns 0 or an LMDB error. */
static int read_copy_head(const char *dir, au_head_t *h, uint64_t *bytes)
{
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi meta;
  MDB_envinfo info;
  MDB_stat st;
  memset(h, 0, sizeof *h);
  int rc = au_env_open(&env, dir, MDB_RDONLY | MDB_NOLOCK);
  if (rc)
    return rc;
  if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == 0) {
    if ((rc = mdb_dbi_open(txn, "meta", 0, &meta)) == 0) {
      MDB_val k = {4, "head"}, v;
      rc = mdb_get(txn, meta, &k, &v);
      if (rc == 0 && v.mv_size == 24 + AU_HASH) {
        h->seq = lx_get_u64be(v.mv_data);
        h->rat = lx_get_u64be((uint8_t *)v.mv_data + 8);
        memcpy(h->hash, (uint8_t *)v.mv_data + 16, AU_HASH);
        h->checkpoint = lx_get_u64be((uint8_t *)v.mv_data + 16 + AU_HASH);
      } else if (rc == 0) {
        rc = MDB_CORRUPTED;
      } else if (rc == MDB_NOTFOUND) {
        rc = 0;
      }
    }
    mdb_txn_abort(txn);
  }
  mdb_env_info(env, &info);
  mdb_env_stat(env, &st);
  *bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
  mdb_env_close(env);
  return rc;
}

/* --- lianxin backup -------------------------------------------------------- */

int cmd_backup(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"data", required_argument, NULL, OPT_DATA},
    {NULL, 0, NULL, 0},
  };
  const char *src = "./data";
  char p[4096];
  struct stat st;
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1)
    if (o == OPT_DATA)
      src = optarg;
  if (argc - optind != 1) {
    cli_err("backup: expected exactly one DIR (where the copy goes)");
    cmd_usage_exit(c);
  }
  const char *dst = argv[optind];
  path_in(p, sizeof p, src, "data.mdb");
  if (stat(p, &st) != 0) {
    cli_err("backup: %s: not a store directory (%s: %s)", src, p, strerror(errno));
    return EXIT_USAGE;
  }
  bool created;
  if (prepare_dir("backup", dst, &created) != 0)
    return EXIT_USAGE;

  /* The daemon's own flags (MDB_NOTLS, 64 dbs, 256 readers): this process
   * joins its lock table as one more reader. A store this process may not
   * write is opened read-only without the lock file. */
  MDB_env *env;
  int rc = au_env_open(&env, src, au_dir_writable(src) ? 0 : MDB_RDONLY | MDB_NOLOCK);
  if (rc) {
    cli_err("backup: %s: cannot open the store: %s", src, mdb_strerror(rc));
    remove_store(dst, created);
    return EXIT_USAGE;
  }
  /* The daemon may grow the map while we copy: adopt its size and retry. */
  for (int tries = 0; (rc = mdb_env_copy2(env, dst, MDB_CP_COMPACT)) == MDB_MAP_RESIZED && tries < 8;
       tries++) {
    remove_store(dst, false);
    mdb_env_set_mapsize(env, 0);
  }
  mdb_env_close(env);
  path_in(p, sizeof p, dst, "data.mdb");
  if (rc == 0 && (sync_path(p) != 0 || sync_path(dst) != 0))
    rc = errno;
  if (rc) {
    cli_err("backup: copying %s to %s: %s", src, dst, mdb_strerror(rc));
    remove_store(dst, created);
    return EXIT_USAGE;
  }

  au_head_t h;
  uint64_t bytes = 0;
  char hex[65];
  if ((rc = read_copy_head(dst, &h, &bytes)) != 0) {
    cli_err("backup: the copy in %s cannot be read back: %s", dst, mdb_strerror(rc));
    return EXIT_USAGE;
  }
  printf("backup: %s: seq %" PRIu64 ", head %s, checkpoint %" PRIu64 ", %" PRIu64 " bytes\n", dst,
         h.seq, lx_hex(hex, h.hash, 32), h.checkpoint, bytes);
  return 0;
}

/* --- lianxin export -------------------------------------------------------- */

typedef struct exp_out {
  FILE *f;
  char *hex;
  size_t cap;
} exp_out_t;

/* Writes one record as a JSON line. Returns 0 or -1 (out of memory). */
static int export_line(exp_out_t *o, const au_rec_t *r)
{
  char hash[65], err[160];
  if (o->cap < 2 * r->ev_len + 1) {
    size_t cap = 2 * r->ev_len + 1 > 4096 ? 2 * r->ev_len + 1 : 4096;
    char *b = realloc(o->hex, cap);
    if (b == NULL)
      return -1;
    o->hex = b;
    o->cap = cap;
  }
  lx_hex(o->hex, r->ev, r->ev_len);
  cJSON *j = lx_mp_buf_to_json(r->ev, r->ev_len, err, sizeof err);
  bool decoded = j != NULL;
  char *ev = decoded ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  fprintf(o->f, "{\"seq\":%" PRIu64 ",\"rat\":%" PRIu64 ",\"hash\":\"%s\",\"ev\":", r->seq, r->rat,
          lx_hex(hash, r->hash, 32));
  if (ev != NULL) {
    fputs(ev, o->f);
    free(ev);
  } else {
    /* Nothing is hidden: the bytes are in ev_msgpack, the reason here. */
    cJSON *e = cJSON_CreateString(decoded ? "cannot print" : err);
    char *es = e != NULL ? cJSON_PrintUnformatted(e) : NULL;
    fprintf(o->f, "null,\"ev_error\":%s", es != NULL ? es : "\"?\"");
    free(es);
    cJSON_Delete(e);
  }
  fprintf(o->f, ",\"ev_msgpack\":\"%s\"}\n", o->hex);
  return 0;
}

int cmd_export(cli_t *c, int argc, char **argv)
{
  au_range_args_t a;
  if (au_range_cmd(c, argc, argv, "export", &a))
    return EXIT_USAGE;
  const char *data = a.data, *key_path = a.key_path;
  uint64_t from = a.from, to = a.to;
  uint8_t *key = a.key;

  au_src_t s;
  au_vf_t v;
  au_rec_t r;
  exp_out_t out = {.f = stdout};
  static char obuf[1 << 20];
  setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
  int rc = au_src_open(&s, c, data, from > 1 ? from - 1 : 1, to);
  if (rc != 0) {
    au_src_close(&s);
    return rc;
  }
  au_vf_init(&v, from, key_path != NULL ? key : NULL);
  uint64_t n = 0;
  while ((rc = au_src_next(&s, &r)) == 1) {
    au_vf_record(&v, &r); /* a failure is remembered; the export goes on */
    if (r.seq < from)
      continue; /* the record before --from: the chain's anchor only */
    if (export_line(&out, &r) < 0) {
      cli_err("export: out of memory");
      rc = -1;
      break;
    }
    n++;
  }
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_err("export: writing the output: %s", strerror(errno));
    rc = -1;
  }
  int status = 0;
  if (rc < 0) {
    status = EXIT_USAGE;
  } else if (v.fail_seq != 0 || (s.at_end && v.n > 0 && au_vf_head(&v, &s.head))) {
    cli_err("export: the exported log does not verify:");
    fflush(stdout);
    if (v.detail[0] != '\0')
      fprintf(stderr, "  seq %" PRIu64 ": %s\n", v.fail_seq, v.detail);
    fprintf(stderr, "  FAIL at seq %" PRIu64 ": %s\n", v.fail_seq, v.what);
    status = EXIT_REJECTED;
  } else {
    char hex[65];
    fprintf(stderr, "export: %" PRIu64 " records, seq %" PRIu64 "..%" PRIu64 ", chain verified, head %s\n",
            n, n ? v.first : 0, n ? v.last : 0, lx_hex(hex, v.prev, 32));
  }
  free(out.hex);
  au_vf_free(&v);
  au_src_close(&s);
  setvbuf(stdout, NULL, _IOLBF, 0);
  return status;
}

/* --- lianxin import -------------------------------------------------------- */

#define IMP_CHUNK_RECS 20000
#define IMP_CHUNK_BYTES (64u << 20)
#define IMP_REFUSED 1000 /* the file is refused: the reason is in imp.what */

typedef struct imp_rec {
  uint64_t seq, rat;
  size_t off, len;
  uint8_t hash[32];
} imp_rec_t;

typedef struct imp {
  lx_daemon_t d; /* what lx_apply_record needs: the store, and the plugins */
  imp_rec_t *recs;
  size_t n, cap;
  uint8_t *arena;
  size_t alen, acap;
  msgpack_zone zone;
  msgpack_sbuffer content;
  uint64_t fail_seq;
  long fail_line; /* the line refused, when it was refused as it was read */
  char what[400];
} imp_t;

static int imp_refuse(imp_t *im, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int imp_refuse(imp_t *im, uint64_t seq, const char *fmt, ...)
{
  va_list ap;
  im->fail_seq = seq;
  va_start(ap, fmt);
  vsnprintf(im->what, sizeof im->what, fmt, ap);
  va_end(ap);
  return IMP_REFUSED;
}

/* Stores one record exactly as the daemon does: lx_apply_record (dedup,
 * appeal state, append, indexes, checkpoint marker, and with --config the
 * plugins' apply). The chain hash the store computes must be the file's. */
static int imp_apply(imp_t *im, MDB_txn *txn, const imp_rec_t *r)
{
  const uint8_t *ev = im->arena + r->off;
  char a[65], b[65];
  lx_event_t e;
  msgpack_zone_clear(&im->zone);
  msgpack_sbuffer_clear(&im->content);
  if (lx_event_content(ev, r->len, &im->zone, &e, &im->content) != 0)
    return imp_refuse(im, r->seq, "the event cannot be read back");
  lx_apply_t ap = {.ev = &e, .bytes = ev, .len = r->len,
                   .content = (const uint8_t *)im->content.data, .content_len = im->content.size,
                   .rat = r->rat};
  int rc = lx_apply_record(&im->d, txn, &ap);
  if (rc)
    return rc;
  if (ap.err.code)
    return imp_refuse(im, r->seq, "the daemon would not have stored it: %s: %s",
                      lx_strerror(ap.err.code), ap.err.msg);
  if (ap.dup)
    return imp_refuse(im, r->seq, "id \"%.*s\" is already the id of seq %" PRIu64, (int)e.id.n,
                      e.id.p, ap.seq);
  const uint8_t *h = lx_store_head_tx_hash(im->d.store);
  if (ap.seq != r->seq || memcmp(h, r->hash, LX_HASH_LEN) != 0) {
    cli_err("import: internal error: the store chained seq %" PRIu64 " to %s, the file has seq %"
            PRIu64 " %s", ap.seq, lx_hex(a, h, 32), r->seq, lx_hex(b, r->hash, 32));
    return LX_EINTERNAL;
  }
  return 0;
}

/* Writes the chunk in one transaction, growing the map when it is full.
 * Returns 0, IMP_REFUSED, or EXIT_USAGE after reporting. */
static int imp_flush(imp_t *im)
{
  if (im->n == 0)
    return 0;
  for (;;) {
    MDB_txn *txn;
    int rc = lx_store_begin(im->d.store, &txn);
    if (rc) {
      cli_err("import: cannot begin a write transaction: %s", lx_strerror(rc));
      return EXIT_USAGE;
    }
    for (size_t i = 0; i < im->n && rc == 0; i++)
      rc = imp_apply(im, txn, &im->recs[i]);
    if (rc == 0)
      rc = lx_store_commit(im->d.store, txn);
    else
      lx_store_abort(im->d.store, txn);
    if (rc == LX_EFULL && lx_store_grow(im->d.store) == 0)
      continue; /* run the whole chunk again in the larger map */
    if (rc == IMP_REFUSED)
      return rc;
    if (rc) {
      cli_err("import: writing the store: %s%s", lx_strerror(rc),
              rc == LX_EFULL ? " (the map is at its ceiling, or the disk is full)" : "");
      return EXIT_USAGE;
    }
    im->n = 0;
    im->alen = 0;
    return 0;
  }
}

static int imp_push(imp_t *im, const au_rec_t *r)
{
  if (im->n == im->cap) {
    size_t cap = im->cap ? im->cap * 2 : 1024;
    imp_rec_t *p = realloc(im->recs, cap * sizeof *p);
    if (p == NULL)
      return -1;
    im->recs = p;
    im->cap = cap;
  }
  if (im->acap - im->alen < r->ev_len) {
    size_t cap = im->acap ? im->acap : 1 << 20;
    while (cap - im->alen < r->ev_len)
      cap *= 2;
    uint8_t *p = realloc(im->arena, cap);
    if (p == NULL)
      return -1;
    im->arena = p;
    im->acap = cap;
  }
  imp_rec_t *d = &im->recs[im->n++];
  d->seq = r->seq;
  d->rat = r->rat;
  d->off = im->alen;
  d->len = r->ev_len;
  memcpy(d->hash, r->hash, 32);
  memcpy(im->arena + im->alen, r->ev, r->ev_len);
  im->alen += r->ev_len;
  return 0;
}

/* A JSON integer 0 .. 2^53 (or an exact big one that lx_json_parse kept
 * raw), as seq and rat are written. */
static bool json_u64(const cJSON *j, uint64_t *out)
{
  if (cJSON_IsRaw(j)) {
    int64_t v;
    if (!parse_i64(j->valuestring, 0, INT64_MAX, &v))
      return false;
    *out = (uint64_t)v;
    return true;
  }
  if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > 9007199254740992.0 ||
      j->valuedouble != (double)(uint64_t)j->valuedouble)
    return false;
  *out = (uint64_t)j->valuedouble;
  return true;
}

static bool any_type(void *arg, const char *name, size_t len)
{
  return true;
}

typedef struct imp_line {
  uint8_t *ev;
  size_t cap;
  msgpack_sbuffer norm;
  msgpack_zone zone;
} imp_line_t;

/* Checks one line and adds its record to the chunk. Returns 0,
 * IMP_REFUSED, or EXIT_USAGE. */
static int imp_line(imp_t *im, imp_line_t *L, au_vf_t *v, const char *text, size_t len, long line,
                    uint64_t *last_rat)
{
  static const lx_schema_ctx_t any = {.allow_daemon_types = true, .plugin_type = any_type};
  size_t eo;
  uint64_t seq, rat;
  uint8_t hash[32];
  cJSON *j = lx_json_parse(text, len, &eo);
  int rc = 0;
  if (j == NULL || !cJSON_IsObject(j)) {
    rc = imp_refuse(im, 0, "line %ld: %s", line, j == NULL ? "invalid JSON" : "not a JSON object");
    goto out;
  }
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(j, "seq");
  const cJSON *jr = cJSON_GetObjectItemCaseSensitive(j, "rat");
  const cJSON *jh = cJSON_GetObjectItemCaseSensitive(j, "hash");
  const cJSON *je = cJSON_GetObjectItemCaseSensitive(j, "ev");
  const cJSON *jm = cJSON_GetObjectItemCaseSensitive(j, "ev_msgpack");
  if (!json_u64(js, &seq) || !json_u64(jr, &rat) || !cJSON_IsString(jh) ||
      !au_unhex(jh->valuestring, strlen(jh->valuestring), hash, 32) || !cJSON_IsString(jm) ||
      je == NULL) {
    rc = imp_refuse(im, 0,
                    "line %ld: not an exported record: seq and rat (integers), hash (64 hex "
                    "digits), ev and ev_msgpack (hex) are required",
                    line);
    goto out;
  }
  size_t hn = strlen(jm->valuestring);
  if (hn / 2 > L->cap) {
    uint8_t *p = realloc(L->ev, hn / 2 + 1);
    if (p == NULL) {
      cli_err("import: out of memory");
      rc = EXIT_USAGE;
      goto out;
    }
    L->ev = p;
    L->cap = hn / 2 + 1;
  }
  if (hn % 2 != 0 || !au_unhex(jm->valuestring, hn, L->ev, hn / 2)) {
    rc = imp_refuse(im, seq, "line %ld: ev_msgpack is not hex", line);
    goto out;
  }
  au_rec_t r = {.seq = seq, .rat = rat, .hash = hash, .ev = L->ev, .ev_len = hn / 2};
  if (au_vf_record(v, &r)) {
    rc = imp_refuse(im, v->fail_seq, "%s", v->what);
    if (v->fail_seq == 1 && seq != 1)
      cli_err("import: a new store starts at seq 1: export the whole log (without --from)");
    goto out;
  }
  char err[160];
  cJSON *d = lx_mp_buf_to_json(r.ev, r.ev_len, err, sizeof err);
  bool same = d != NULL && cJSON_Compare(d, je, true);
  cJSON_Delete(d);
  if (!same) {
    rc = imp_refuse(im, seq, "ev does not match ev_msgpack");
    goto out;
  }
  lx_event_t e;
  lx_error_t le;
  msgpack_zone_clear(&L->zone);
  msgpack_sbuffer_clear(&L->norm);
  if (lx_event_decode(r.ev, r.ev_len, &any, &L->zone, &e, &L->norm, &le) != 0) {
    rc = imp_refuse(im, seq, "not a well-formed event: %s: %s", lx_strerror(le.code), le.msg);
    goto out;
  }
  if (L->norm.size != r.ev_len || memcmp(L->norm.data, r.ev, r.ev_len) != 0) {
    rc = imp_refuse(im, seq, "the event is not in the daemon's normalised form");
    goto out;
  }
  if (rat < *last_rat) {
    rc = imp_refuse(im, seq, "receive time %" PRIu64 " is before the previous record's %" PRIu64,
                    rat, *last_rat);
    goto out;
  }
  *last_rat = rat;
  if (imp_push(im, &r) < 0) {
    cli_err("import: out of memory");
    rc = EXIT_USAGE;
  }
out:
  if (rc == IMP_REFUSED)
    im->fail_line = line;
  cJSON_Delete(j);
  return rc;
}

/* --config: the daemon's configuration, so that the plugins it names run
 * their apply on every record, as in the daemon, and their state (the
 * escalate plugin's deadline index, the deadlines on appeals) is rebuilt.
 * Returns 0, or EXIT_USAGE after reporting. */
static int imp_plugins(imp_t *im)
{
  char *errors = NULL;
  im->d.loop = uv_loop_new();
  if (im->d.loop == NULL || lx_calendar_new(&im->d.cfg, &im->d.cal) != 0 ||
      lx_plugins_load(&im->d, &errors) != 0) {
    cli_err("import: cannot load the plugins of %s:\n%s", im->d.cfg.file ? im->d.cfg.file : "?",
            errors ? errors : "");
    free(errors);
    return EXIT_USAGE;
  }
  return 0;
}

static void imp_close(imp_t *im)
{
  if (im->d.hosts != NULL)
    lx_plugins_close(&im->d);
  free(im->d.hosts);
  im->d.hosts = NULL;
  im->d.n_hosts = 0;
  if (im->d.loop != NULL) {
    uv_run(im->d.loop, UV_RUN_DEFAULT); /* the plugins' timers close */
    uv_loop_close(im->d.loop);
    free(im->d.loop);
    im->d.loop = NULL;
  }
  lx_calendar_free(&im->d.cal);
  lx_store_free(&im->d.store);
}

int cmd_import(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"data", required_argument, NULL, OPT_DATA},
    {"key", required_argument, NULL, OPT_SIGN_PUB},
    {"config", required_argument, NULL, OPT_CONFIG},
    {NULL, 0, NULL, 0},
  };
  const char *dir = NULL, *key_path = NULL, *config = NULL;
  uint8_t key[32];
  char err[512];
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1) {
    if (o == OPT_DATA)
      dir = optarg;
    else if (o == OPT_SIGN_PUB)
      key_path = optarg;
    else if (o == OPT_CONFIG)
      config = optarg;
  }
  if (argc - optind != 1 || dir == NULL) {
    cli_err("import: expected one FILE (or - for stdin) and --data NEWDIR");
    cmd_usage_exit(c);
  }
  const char *path = argv[optind];
  if (key_path != NULL && au_read_sign_pub(key_path, key) < 0)
    return EXIT_USAGE;
  lx_log_level = LX_LOG_WARN; /* the store's "map grown" lines are for the daemon's log */
  imp_t im = {0};
  if (config != NULL) {
    char *errors = NULL;
    if (lx_config_load(config, &im.d.cfg, &errors) != 0) {
      cli_err("import: %s", errors ? errors : "invalid configuration");
      free(errors);
      return EXIT_USAGE;
    }
  }
  FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
  if (in == NULL) {
    cli_err("import: %s: %s", path, strerror(errno));
    lx_config_free(&im.d.cfg);
    return EXIT_USAGE;
  }
  bool created;
  if (prepare_dir("import", dir, &created) != 0) {
    if (in != stdin)
      fclose(in);
    lx_config_free(&im.d.cfg);
    return EXIT_USAGE;
  }
  imp_line_t L = {0};
  au_vf_t v;
  msgpack_zone_init(&im.zone, 4096);
  msgpack_sbuffer_init(&im.content);
  msgpack_zone_init(&L.zone, 4096);
  msgpack_sbuffer_init(&L.norm);
  au_vf_init(&v, 1, key_path != NULL ? key : NULL);
  int rc = 0;
  if (lx_store_open(&im.d.store, dir, 256ull << 20, 1ull << 40, err, sizeof err) != 0) {
    cli_err("import: %s", err);
    rc = EXIT_USAGE;
  } else if (config != NULL) {
    rc = imp_plugins(&im);
  }

  char *line = NULL;
  size_t lcap = 0;
  ssize_t len;
  long lineno = 0;
  uint64_t last_rat = 0;
  while (rc == 0 && (len = getline(&line, &lcap, in)) >= 0) {
    lineno++;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      len--;
    if (strspn(line, " \t") >= (size_t)len)
      continue;
    rc = imp_line(&im, &L, &v, line, (size_t)len, lineno, &last_rat);
    if (rc == 0 && (im.n >= IMP_CHUNK_RECS || im.alen >= IMP_CHUNK_BYTES))
      rc = imp_flush(&im);
  }
  if (rc == 0 && ferror(in)) {
    cli_err("import: reading %s: %s", path, strerror(errno));
    rc = EXIT_USAGE;
  }
  if (rc == 0)
    rc = imp_flush(&im);
  if (rc == 0 && v.n == 0)
    rc = imp_refuse(&im, 0, "%s holds no records", path);

  if (rc == 0) {
    char hex[65];
    printf("imported %" PRIu64 " records, seq 1..%" PRIu64 ", %" PRIu64 " checkpoints %s, head %s, into %s\n",
           v.n, v.last, v.cps, key_path ? "verified" : "not checked (no --key)",
           lx_hex(hex, v.prev, 32), dir);
    if (config == NULL)
      cli_err("import: without --config no plugin ran: plugin state (the escalate plugin's "
              "deadlines) is not rebuilt");
  } else if (rc == IMP_REFUSED) {
    if (v.detail[0] != '\0' && v.fail_seq != 0)
      cli_err("import: seq %" PRIu64 ": %s", v.fail_seq, v.detail);
    if (im.fail_seq != 0)
      printf("FAIL at seq %" PRIu64 ": %s\n", im.fail_seq, im.what);
    else
      printf("FAIL: %s\n", im.what);
    if (im.fail_line > 0 && im.fail_seq != 0)
      cli_err("import: %s, line %ld: refused; no store was written", path, im.fail_line);
    else
      cli_err("import: %s refused; no store was written", path);
    rc = EXIT_REJECTED;
  }
  imp_close(&im);
  lx_config_free(&im.d.cfg);
  if (rc != 0)
    remove_store(dir, created);
  free(line);
  if (in != stdin)
    fclose(in);
  free(im.recs);
  free(im.arena);
  free(L.ev);
  msgpack_sbuffer_destroy(&L.norm);
  msgpack_zone_destroy(&L.zone);
  msgpack_zone_destroy(&im.zone);
  msgpack_sbuffer_destroy(&im.content);
  au_vf_free(&v);
  return rc;
}

/* audit: the daemon's own rebuild-and-compare (daemon/store/audit.c), run here on
 * a store directory: a live daemon's (it keeps serving) or a backup. */
int cmd_audit(cli_t *c, int argc, char **argv)
{
  static const struct option own[] = {
    {"data", required_argument, NULL, OPT_DATA},
    {"config", required_argument, NULL, OPT_CONFIG},
    {NULL, 0, NULL, 0},
  };
  const char *data = "./data", *config = "config/lianxin.yaml";
  int o;
  while ((o = cmd_getopt(c, argc, argv, own)) != -1) {
    if (o == OPT_DATA)
      data = optarg;
    else if (o == OPT_CONFIG)
      config = optarg;
  }
  if (argc != optind) {
    cli_err("audit: unexpected argument %s", argv[optind]);
    cmd_usage_exit(c);
  }
  return lx_audit_run(config, data, stdout);
}
